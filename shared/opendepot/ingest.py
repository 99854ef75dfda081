"""The validate step for one S3 object: route, check, validate, report, stage, ask to publish.

``ingest`` is called by ``functions/validate`` once per S3 event record. It writes through the
storage and queue ports only, and in this order, so a crash anywhere is repaired by the queue's
retry: staged Parquet and upload record, then the publish message, then the report (the report
is the "done" marker that makes a redelivery of the same object version a no-op).

Refusals before any read: an event from another bucket (``ignored``: not an input key, so our
own outputs never trigger us), an unsafe or unroutable key, an unknown dataset, a producer the
registry does not allow, an object over the size limit. Their report goes to
``reports/_refused/{upload_id}.json`` when the key cannot be trusted as a path, else
``reports/{dataset}/{producer}/{upload_id}.json``.

Every upload gets a report, even one that can never be processed. The object, or its version,
gone before it is read (``NotFound``: deleted, or the version removed) is a rejection
(``object-gone``), not a failure to retry: it will not come back. When S3 holds a checksum of
the object (``x-amz-checksum-*``: the producer's, or the one S3 computes), the bytes read are
checked against it and the report records it (``opendepot.checksum``); a mismatch raises
``ChecksumMismatch``: S3 refuses an upload whose checksum does not match, so the copy read was
damaged on its way, an infrastructure failure retried like others. Infrastructure failures
raise and are retried by the queue;
on the last receive ``functions/validate`` calls ``report_failure``, whose report (status
``failed``, ``processing-failed``) says so and what to do. Such a report does not make the
upload a duplicate: redriven from the dead-letter queue, it is validated again and its report
replaces the failure report.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO, Literal, cast

from opendepot import layout, reuses, upload_index
from opendepot.config import Settings
from opendepot.contracts import PublishMessage, UploadRecord
from opendepot.issues import Issue, issue
from opendepot.keys import KeyRejected, route
from opendepot.registry import Cog, Dataset, Registry
from opendepot.render import PARQUET_MIME
from opendepot.report import build_report, refusal_report
from opendepot.site import HTML
from opendepot.site.report_page import html_key, report_html, source_context
from opendepot.storage import (
    COMPUTABLE_CHECKSUMS,
    Checksum,
    ChecksumDigest,
    ChecksumMismatch,
    NotFound,
    Queue,
    Store,
)
from opendepot.validate import Limits, Validation, refused, validate_file

log = logging.getLogger(__name__)

Status = Literal["accepted", "rejected", "ignored", "duplicate", "held", "failed"]

FAILED: Literal["failed"] = "failed"
"""``opendepot.status`` of a failure report (``report_failure``): not a final answer."""


@dataclass(frozen=True)
class ObjectEvent:
    """One S3 ``ObjectCreated`` record, key already decoded."""

    bucket: str
    key: str
    size: int
    etag: str
    version_id: str | None
    sequencer: str
    event_time: datetime
    event_name: str = "ObjectCreated:Put"


@dataclass(frozen=True)
class IngestOutcome:
    """What happened to one object."""

    status: Status
    key: str
    message: str
    upload_id: str | None = None
    dataset: str | None = None
    producer: str | None = None
    report_key: str | None = None
    report: dict[str, Any] | None = None


class _Hashing:
    """A binary file being written that hashes what goes through it: SHA-256, and the
    algorithm of the object's S3 checksum when it is a whole-object one computed here."""

    def __init__(self, out: BinaryIO, stored: Checksum | None = None) -> None:
        self.out = out
        self.sha256 = hashlib.sha256()
        self.stored = stored
        computable = (stored is not None and stored.type == "FULL_OBJECT"
                      and stored.algorithm in COMPUTABLE_CHECKSUMS)
        self.digest = (ChecksumDigest(stored.algorithm)
                       if computable and stored is not None and stored.algorithm != "SHA256"
                       else None)
        self.computes = computable

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        if self.digest is not None:
            self.digest.update(data)
        return self.out.write(data)

    def checksum(self) -> dict[str, Any] | None:
        """The report's ``checksum`` record: the stored checksum (None: none), the value
        computed over the bytes written and whether they agree (None: not computed, ``note``
        says why)."""
        stored = self.stored
        if stored is None:
            return None
        computed = None
        if self.computes:
            computed = (self.digest.value() if self.digest is not None
                        else base64.b64encode(self.sha256.digest()).decode("ascii"))
        record: dict[str, Any] = {
            "algorithm": stored.algorithm, "type": stored.type, "value": stored.value,
            "computed": computed,
            "verified": None if computed is None else computed == stored.value,
        }
        if computed is None:
            record["note"] = (
                "a multipart upload's composite checksum (of its parts' checksums) cannot be "
                "recomputed from the content" if stored.type != "FULL_OBJECT" else
                f"{stored.algorithm} is not an algorithm opendepot computes: recorded, not "
                "verified")
        return record


def shrink_check(
    store: Store, settings: Settings, dataset: Dataset, producer: str, v: Validation, key: str
) -> Issue | None:
    """Hold a ``snapshot`` upload that loses more than the declared share of rows or areas of
    the producer's previous accepted upload (``shrinkGuard`` in the registry: on by default, 50%
    of rows or areas; off only for a dataset that opts out with a reason); ``v`` is the accepted
    validation (its ``rows_published`` and ``areas``). The issue's message names both counts and
    the file name to upload to confirm (``.confirm.``: ``keys.IncomingKey.confirmed``, which
    ``ingest`` reads to skip this check). None: published as usual."""
    guard = dataset.shrink_guard
    if guard is None or not guard.on or dataset.mode_of(producer) != "snapshot":
        return None
    last = upload_index.newest(store, settings, dataset.name, producer)
    if last is None:
        return None
    checks = [("rows", last.rows, v.rows_published, guard.max_row_loss_percent),
              ("areas", last.areas, v.areas, guard.max_area_loss_percent)]
    for what, before, now, limit in checks:
        if limit is None or not before or now is None:
            continue
        loss = 100.0 * (before - now) / before
        if loss > limit:  # shown rounded, but never "100%" while some are left, nor the limit
            shown = f"{min(round(loss), 99) if now else 100}"
            if round(loss) <= limit:
                shown = f"{loss:.1f}"
            return issue("snapshot-shrink", now=now, what=what, loss=shown, before=before,
                         previous=last.key, received_at=last.received_at, limit=limit,
                         confirm=_confirm_name(key))
    return None


def _confirm_name(key: str) -> str:
    name = key.rsplit("/", 1)[-1]
    stem, dot, ext = name.rpartition(".")
    return f"{stem}.confirm.{ext}" if dot else f"{name}.confirm"


def _write_report(store: Store, settings: Settings, key: str, report: dict[str, Any],
                  context: Mapping[int, str] | None = None) -> None:
    """Write ``report`` at ``key`` (JSON) and its page for people beside it
    (``opendepot.site.report_page``: ``.html``, with the upload's lines ``context``), the page
    first: the JSON is the "done" marker, so a crash between the two is retried whole. A page
    that cannot be rendered is logged and left out: the JSON report, the outcome, stays.

    Raises: StorageError."""
    try:
        page = report_html(report, context)
    except Exception:  # a template defect must not cost the upload its report
        log.exception("report page not rendered", extra={"report": key})
    else:
        store.put(settings.internal_bucket, html_key(key), page, HTML)
    body = json.dumps(report, ensure_ascii=False, indent=1, default=str).encode("utf-8")
    store.put(settings.internal_bucket, key, body, "application/json")


def _stage(
    store: Store, queue: Queue, settings: Settings, record: UploadRecord, staged: str
) -> None:
    """Stage an accepted upload: its Parquet (``staged``, a local file) at ``record.staged_key``,
    then its record, then its copy in the dataset's inbox (``upload_index.stage``), then the
    publish message. Each write is idempotent, so a retry after a
    crash between two of them repairs the state (the report, written last, marks it done)."""
    with open(staged, "rb") as body:
        store.put(settings.internal_bucket, record.staged_key, body, PARQUET_MIME)
    store.put(
        settings.internal_bucket,
        layout.staged_record_key(record.dataset, record.producer, record.upload_id),
        json.dumps(record.to_json(), ensure_ascii=False, indent=1).encode("utf-8"),
        "application/json",
    )
    upload_index.stage(store, settings, record)
    message = PublishMessage(record.dataset, record.upload_id)
    queue.send(settings.publish_queue_url, message.to_json(), group_id=record.dataset)


@dataclass(frozen=True)
class _Upload:
    """One object being ingested: its event, upload id and report context."""

    event: ObjectEvent
    uid: str
    context: dict[str, Any]
    """The report's ``opendepot`` section so far (key, bucket, version, etag, size, upload id)."""

    @classmethod
    def of(cls, event: ObjectEvent) -> _Upload:
        uid = layout.upload_id(event.event_time, event.key, event.version_id, event.etag,
                               event.sequencer)
        received = event.event_time.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        context: dict[str, Any] = {
            "key": event.key, "bucket": event.bucket, "version_id": event.version_id,
            "etag": event.etag, "sequencer": event.sequencer, "received_at": received,
            "size": event.size, "upload_id": uid,
        }
        return cls(event, uid, context)


@dataclass(frozen=True)
class _Refusal:
    """Why an upload is refused before its content is read, and where its report goes."""

    why: Issue
    report_key: str
    ids: dict[str, str]


def _refusal(up: _Upload, settings: Settings, registry: Registry) -> _Refusal | tuple[Dataset, str]:
    """The refusal of an upload before any read (unsafe or unroutable key, unknown dataset,
    producer not allowed, object too large), else its dataset and producer."""
    key, uid = up.event.key, up.uid
    try:
        routed = route(key)
    except KeyRejected as exc:
        unsafe = issue(exc.reason, detail=f"{exc} (key {key!r})", cell=key)
        return _Refusal(unsafe, layout.refused_report_key(uid), {})
    dataset = registry.get(routed.dataset)
    if dataset is None:
        known = ", ".join(d.name for d in registry)
        msg = (f"unrecognized input file {key!r}: no dataset {routed.dataset!r} "
               f"(registered: {known})")
        return _Refusal(issue("unrouted-key", detail=msg, cell=key),
                        layout.refused_report_key(uid), {})
    ids = {"dataset": dataset.name, "producer": routed.producer}
    report_key = layout.report_key(dataset.name, routed.producer, uid)
    if routed.producer not in dataset.producers:
        allowed = ", ".join(dataset.producers[:8]) + (
            f" and {len(dataset.producers) - 8} more" if len(dataset.producers) > 8 else "")
        msg = f"producer {routed.producer!r} may not publish {dataset.name} (allowed: {allowed})"
        return _Refusal(issue("producer-not-allowed", detail=msg, cell=key), report_key, ids)
    if up.event.size > settings.max_object_bytes:
        msg = (f"{key!r} is {up.event.size} bytes, over the limit of {settings.max_object_bytes} "
               f"bytes; it was not read")
        return _Refusal(issue("object-too-large", detail=msg, cell=str(up.event.size)),
                        report_key, ids)
    return dataset, routed.producer


def ingest(
    store: Store,
    queue: Queue,
    settings: Settings,
    registry: Registry,
    cog: Cog,
    event: ObjectEvent,
) -> IngestOutcome:
    """Validate one uploaded object and stage it for publication (see module docstring).

    Raises only for infrastructure failures (storage, queue, memory, local disk, timeouts:
    ``opendepot.failures``), so the message is retried and, past the queue's retries, kept in
    its dead-letter queue; the caller reports it then (``report_failure``).
    """
    key = event.key
    if event.bucket != settings.incoming_bucket:
        return IngestOutcome("ignored", key, f"not an input key (bucket {event.bucket})")
    up = _Upload.of(event)
    if reuses.is_reuse_key(key):  # reuses/{reuser}/{file}: never a dataset
        return _reuse(store, settings, registry, up)
    found = _refusal(up, settings, registry)
    if isinstance(found, _Refusal):
        if found.ids and _reported(store, settings, found.report_key):
            return _duplicate(up, found.report_key, found.ids)
        report = refusal_report(found.why, {**up.context, **found.ids})
        _write_report(store, settings, found.report_key, report)
        return IngestOutcome("rejected", key, found.why.message, up.uid,
                             dataset=found.ids.get("dataset"), producer=found.ids.get("producer"),
                             report_key=found.report_key, report=report)
    dataset, producer = found
    report_key = layout.report_key(dataset.name, producer, up.uid)
    ids = {"dataset": dataset.name, "producer": producer}
    if _reported(store, settings, report_key):
        return _duplicate(up, report_key, ids)
    status, message, report, lines = _validate_and_stage(store, queue, settings, cog, up,
                                                          dataset, producer, report_key)
    _write_report(store, settings, report_key, report, lines)
    return IngestOutcome(status, key, message, up.uid, dataset=dataset.name, producer=producer,
                         report_key=report_key, report=report)


def _reported(store: Store, settings: Settings, report_key: str) -> bool:
    """Whether the upload has its final report at ``report_key``: one exists and is not a
    failure report (status ``failed``), which the upload's next processing replaces."""
    if store.head(settings.internal_bucket, report_key) is None:
        return False
    try:
        report = json.loads(store.get(settings.internal_bucket, report_key))
    except NotFound:
        return False
    except ValueError:  # not JSON: written by something else, but written; leave it
        return True
    od = report.get("opendepot") if isinstance(report, dict) else None
    return not (isinstance(od, dict) and od.get("status") == FAILED)


def report_failure(
    store: Store, settings: Settings, registry: Registry, event: ObjectEvent,
    error: BaseException, attempts: int,
) -> IngestOutcome | None:
    """Write the report of an upload that could not be processed: ``attempts`` tries failed,
    the last with ``error`` (called on the queue's last receive, before the message goes to
    the dead-letter queue). The report has status ``failed`` and one ``processing-failed``
    error naming the error's class and message (first 300 characters), the attempts and what
    to do; its ``opendepot.attempts`` is ``attempts``. ``ingest`` does not count it as done:
    a redriven upload is validated again and its report replaces this one.

    Returns the outcome (status ``failed``), or None when nothing was written: not an input
    key (``ingest`` ignores it), or the upload already has its final report.
    Raises what the store raises (the caller logs it and raises ``error``)."""
    if event.bucket != settings.incoming_bucket:
        return None
    up = _Upload.of(event)
    found = _refusal(up, settings, registry)
    if reuses.is_reuse_key(event.key):
        report_key, ids = reuses.report_target(event.key, up.uid)
    elif isinstance(found, _Refusal):
        report_key, ids = found.report_key, found.ids
    else:
        dataset, producer = found
        report_key = layout.report_key(dataset.name, producer, up.uid)
        ids = {"dataset": dataset.name, "producer": producer}
    if _reported(store, settings, report_key):
        return None
    kind = type(error).__name__
    text = " ".join(str(error).split())[:300] or "no message"
    why = issue("processing-failed", attempts=attempts, error=f"{kind} ({text})",
                error_type=kind)
    report = refusal_report(why, {**up.context, **ids, "attempts": attempts})
    report["opendepot"]["status"] = FAILED
    _write_report(store, settings, report_key, report)
    return IngestOutcome(FAILED, event.key, why.message, up.uid, dataset=ids.get("dataset"),
                         producer=ids.get("producer"), report_key=report_key, report=report)


def _duplicate(up: _Upload, report_key: str, ids: dict[str, str]) -> IngestOutcome:
    return IngestOutcome("duplicate", up.event.key, "this object version was already processed",
                         up.uid, dataset=ids.get("dataset"), producer=ids.get("producer"),
                         report_key=report_key)


def _reuse(store: Store, settings: Settings, registry: Registry, up: _Upload) -> IngestOutcome:
    """A reuse registration (``opendepot.reuses``): refused unread (unsafe or unroutable key,
    too large, gone), else checked and, when accepted, stored and indexed; the report last."""
    key, event = up.event.key, up.event
    report_key, ids = reuses.report_target(key, up.uid)
    if ids and _reported(store, settings, report_key):
        return _duplicate(up, report_key, ids)
    context = {**up.context, **ids}
    refusal = None
    try:
        reuses.route_reuse(key)
    except KeyRejected as exc:
        refusal = issue(exc.reason, detail=str(exc), cell=key)
    if refusal is None and event.size > reuses.MAX_BYTES:
        refusal = reuses.too_large(key, event.size)
    if refusal is None:
        try:
            body = store.get(event.bucket, key, version_id=event.version_id)
        except NotFound:
            refusal = issue("object-gone", cell=key, what=f"s3://{event.bucket}/{key}")
    if refusal is not None:
        report = refusal_report(refusal, context)
        status: Status = "rejected"
    else:
        done = reuses.register(store, settings, registry, body, context)
        v = done.validation
        if done.record is not None:
            context["reuse"] = {"id": done.record["id"], "datasets": len(done.record["datasets"])}
        report = build_report(v, body, context)
        status = "accepted" if v.accepted else "rejected"
    _write_report(store, settings, report_key, report)
    message = report["opendepot"].get("rejection") or "accepted"
    return IngestOutcome(status, key, message, up.uid, producer=ids.get("producer"),
                         report_key=report_key, report=report)


@dataclass(frozen=True)
class _Download:
    """An upload read to local disk, or why its content cannot be used (``problem``)."""

    size: int = 0
    """Bytes read."""
    sha256: str = ""
    """SHA-256 of the bytes read, hex ("" when nothing was read)."""
    checksum: dict[str, Any] | None = None
    """The report's ``checksum`` record (``_Hashing.checksum``); None: S3 holds none."""
    problem: Issue | None = None
    """``object-gone``: the upload is rejected, not validated."""


def _download(store: Store, up: _Upload, path: str) -> _Download:
    """Stream the upload's object (its version) to ``path``, hashed on the way, and check it
    against the S3 checksum ``head`` gives. An object or version that is gone (``NotFound``)
    will not come back: a problem, not a failure to retry.

    Raises ``ChecksumMismatch`` (an infrastructure failure, retried) when the bytes read do not
    give the stored checksum."""
    event = up.event
    version = event.version_id if event.version_id not in (None, "null") else None
    gone = issue("object-gone", cell=event.key, what=f"s3://{event.bucket}/{event.key}"
                 + (f" (version {version})" if version else ""))
    info = store.head(event.bucket, event.key, version_id=event.version_id)
    if info is None:
        return _Download(problem=gone)
    with open(path, "wb") as f:
        hashing = _Hashing(f, info.checksum)
        try:
            size = store.get_file(event.bucket, event.key, cast(BinaryIO, hashing),
                                  version_id=event.version_id)
        except NotFound:
            return _Download(problem=gone)
    record = hashing.checksum()
    if record is not None and record["verified"] is False:
        # S3 refused any PUT whose declared checksum did not match: what was read is corrupt
        # (transit, local disk), not the upload; retried, and on the last receive reported
        raise ChecksumMismatch(issue(
            "checksum-mismatch", cell=record["computed"], size=size,
            algorithm=record["algorithm"], expected=record["value"],
            computed=record["computed"]).message)
    return _Download(size, hashing.sha256.hexdigest(), record)


def _validate_and_stage(
    store: Store, queue: Queue, settings: Settings, cog: Cog, up: _Upload, dataset: Dataset,
    producer: str, report_key: str,
) -> tuple[Status, str, dict[str, Any], dict[int, str]]:
    """Download, validate, hold or stage one upload: (status, message, report, the lines of
    the decoded upload its page shows). The object is streamed to local disk (the Lambda's
    ephemeral storage), hashed on the way; validation reads it batch by batch and stages the
    accepted rows as Parquet beside it; when issues name lines, those lines and the ones around
    are read from the decoded text, still on disk (``report_page.source_context``)."""
    event, key = up.event, up.event.key
    ids = {"dataset": dataset.name, "producer": producer}
    with tempfile.TemporaryDirectory(prefix="opendepot-") as workdir:
        source = os.path.join(workdir, "upload")
        got = _download(store, up, source)
        context = {**up.context, **ids, "checksum": got.checksum}
        if got.problem is not None:
            report = build_report(refused(got.problem, key), None, context,
                                  size=got.size if got.sha256 else None, sha256=got.sha256 or None)
            return "rejected", got.problem.message, report, {}
        size, sha256 = got.size, got.sha256
        v = validate_file(source, dataset, cog, name=key, workdir=workdir,
                          max_errors=settings.max_errors, max_bytes=settings.max_object_bytes,
                          limits=Limits.of(settings))
        held = None
        if v.accepted and not route(key).confirmed:
            held = shrink_check(store, settings, dataset, producer, v, key)
        if held is not None:  # the held issue first; the report built once, from that list
            v = v.hold(held)
        report = build_report(v, None, context, size=size, sha256=sha256)
        lines = source_context(report, v.decoded)
        if held is not None:
            return "held", held.message, report, lines
        if v.accepted:
            record = UploadRecord(
                key=key, bucket=event.bucket, version_id=event.version_id, etag=event.etag,
                sequencer=event.sequencer, received_at=up.context["received_at"],
                size=event.size, upload_id=up.uid, dataset=dataset.name, producer=producer,
                rows=v.rows_published, rows_left_out=v.rows_left_out, areas=v.areas,
                sha256=sha256, bytes=size, report_key=report_key,
                staged_key=layout.staged_parquet_key(dataset.name, producer, up.uid),
            )
            _stage(store, queue, settings, record, str(v.staged))
    return ("accepted" if v.accepted else "rejected"), v.rejection or "accepted", report, lines
