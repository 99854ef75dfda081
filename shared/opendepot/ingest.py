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
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO, Literal, cast

from opendepot import layout
from opendepot.config import Settings
from opendepot.consolidate import upload_order
from opendepot.contracts import PublishMessage, UploadRecord
from opendepot.issues import Issue, issue
from opendepot.keys import KeyRejected, route
from opendepot.publication import staged_records
from opendepot.registry import Cog, Dataset, Registry
from opendepot.render import PARQUET_MIME
from opendepot.report import build_report, refusal_report
from opendepot.storage import Queue, Store
from opendepot.validate import Validation, validate_file

Status = Literal["accepted", "rejected", "ignored", "duplicate", "held"]


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
    """A binary file being written that hashes (SHA-256) what goes through it."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        return self.out.write(data)


def shrink_check(
    store: Store, settings: Settings, dataset: Dataset, producer: str, v: Validation, key: str
) -> Issue | None:
    """Hold a ``snapshot`` upload that loses more than the declared share of rows or areas of
    the producer's previous accepted upload (``shrinkGuard`` in the registry); ``v`` is the
    accepted validation (its ``rows_published`` and ``areas``)."""
    guard = dataset.shrink_guard
    if not guard or dataset.mode_of(producer) != "snapshot":
        return None
    previous = [r for r in staged_records(store, settings, dataset.name) if r.producer == producer]
    if not previous:
        return None
    last = max(previous, key=upload_order)
    checks = [("rows", last.rows, v.rows_published, guard.max_row_loss_percent),
              ("areas", last.areas, v.areas, guard.max_area_loss_percent)]
    for what, before, now, limit in checks:
        if limit is None or not before or now is None:
            continue
        loss = 100.0 * (before - now) / before
        if loss > limit:
            return issue("snapshot-shrink", now=now, what=what, loss=loss, before=before,
                         previous=last.key, received_at=last.received_at, limit=limit,
                         confirm=_confirm_name(key))
    return None


def _confirm_name(key: str) -> str:
    name = key.rsplit("/", 1)[-1]
    stem, dot, ext = name.rpartition(".")
    return f"{stem}.confirm.{ext}" if dot else f"{name}.confirm"


def _write_report(store: Store, settings: Settings, key: str, report: dict[str, Any]) -> None:
    body = json.dumps(report, ensure_ascii=False, indent=1, default=str).encode("utf-8")
    store.put(settings.internal_bucket, key, body, "application/json")


def _stage(
    store: Store, queue: Queue, settings: Settings, record: UploadRecord, staged: str
) -> None:
    """Stage an accepted upload: its Parquet (``staged``, a local file) at ``record.staged_key``,
    then its record, then the publish message. Each write is idempotent, so a retry after a
    crash between two of them repairs the state (the report, written last, marks it done)."""
    with open(staged, "rb") as body:
        store.put(settings.internal_bucket, record.staged_key, body, PARQUET_MIME)
    store.put(
        settings.internal_bucket,
        layout.staged_record_key(record.dataset, record.producer, record.upload_id),
        json.dumps(record.to_json(), ensure_ascii=False, indent=1).encode("utf-8"),
        "application/json",
    )
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
    its dead-letter queue; nothing is reported for it then.
    """
    key = event.key
    if event.bucket != settings.incoming_bucket:
        return IngestOutcome("ignored", key, f"not an input key (bucket {event.bucket})")
    up = _Upload.of(event)
    found = _refusal(up, settings, registry)
    if isinstance(found, _Refusal):
        if found.ids and store.head(settings.internal_bucket, found.report_key) is not None:
            return _duplicate(up, found.report_key, found.ids)
        report = refusal_report(found.why, {**up.context, **found.ids})
        _write_report(store, settings, found.report_key, report)
        return IngestOutcome("rejected", key, found.why.message, up.uid,
                             dataset=found.ids.get("dataset"), producer=found.ids.get("producer"),
                             report_key=found.report_key, report=report)
    dataset, producer = found
    report_key = layout.report_key(dataset.name, producer, up.uid)
    ids = {"dataset": dataset.name, "producer": producer}
    if store.head(settings.internal_bucket, report_key) is not None:
        return _duplicate(up, report_key, ids)
    status, message, report = _validate_and_stage(store, queue, settings, cog, up, dataset,
                                                   producer, report_key)
    _write_report(store, settings, report_key, report)
    return IngestOutcome(status, key, message, up.uid, dataset=dataset.name, producer=producer,
                         report_key=report_key, report=report)


def _duplicate(up: _Upload, report_key: str, ids: dict[str, str]) -> IngestOutcome:
    return IngestOutcome("duplicate", up.event.key, "this object version was already processed",
                         up.uid, dataset=ids["dataset"], producer=ids["producer"],
                         report_key=report_key)


def _validate_and_stage(
    store: Store, queue: Queue, settings: Settings, cog: Cog, up: _Upload, dataset: Dataset,
    producer: str, report_key: str,
) -> tuple[Status, str, dict[str, Any]]:
    """Download, validate, hold or stage one upload: (status, message, report). The object is
    streamed to local disk (the Lambda's ephemeral storage), hashed on the way; validation reads
    it batch by batch and stages the accepted rows as Parquet beside it."""
    event, key = up.event, up.event.key
    ids = {"dataset": dataset.name, "producer": producer}
    with tempfile.TemporaryDirectory(prefix="opendepot-") as workdir:
        source = os.path.join(workdir, "upload")
        with open(source, "wb") as f:
            hashing = _Hashing(f)
            size = store.get_file(event.bucket, key, cast(BinaryIO, hashing),
                                  version_id=event.version_id)
        sha256 = hashing.sha256.hexdigest()
        v = validate_file(source, dataset, cog, name=key, workdir=workdir,
                          max_errors=settings.max_errors, max_bytes=settings.max_object_bytes)
        held = None
        if v.accepted and not route(key).confirmed:
            held = shrink_check(store, settings, dataset, producer, v, key)
        if held is not None:  # the held issue first; the report built once, from that list
            v = v.hold(held)
        report = build_report(v, None, {**up.context, **ids}, size=size, sha256=sha256)
        if held is not None:
            return "held", held.message, report
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
    return ("accepted" if v.accepted else "rejected"), v.rejection or "accepted", report
