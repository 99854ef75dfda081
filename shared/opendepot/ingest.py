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
from typing import Any, BinaryIO, Literal

from opendepot.config import Settings
from opendepot.keys import KeyRejected, route, upload_id
from opendepot.consolidate import upload_order
from opendepot.publication import staged_records
from opendepot.registry import Cog, Dataset, Registry
from opendepot.render import PARQUET_MIME
from opendepot.report import build_report, issue_dict, refusal_report
from opendepot.storage import Queue, Store
from opendepot.validate import Issue, Validation, validate_file

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
    previous = [
        r for r in staged_records(store, settings, dataset.name) if r.get("producer") == producer
    ]
    if not previous:
        return None
    last = max(previous, key=upload_order)
    checks = [("rows", last.get("rows"), v.rows_published, guard.max_row_loss_percent),
              ("areas", last.get("areas"), v.areas, guard.max_area_loss_percent)]
    for what, before, now, limit in checks:
        if limit is None or not before or now is None:
            continue
        loss = 100.0 * (before - now) / before
        if loss > limit:
            return Issue(
                "snapshot-shrink",
                f"this upload has {now} {what}, {loss:.0f}% fewer than the {before} of the "
                f"previous upload ({last['key']}, {last['received_at']}); more than the "
                f"{limit}% the dataset allows, so it is held, not published. If it is right, "
                f"upload it again with '.confirm' before the extension: {_confirm_name(key)}",
                note=f"{what}: {before} -> {now}",
            )
    return None


def _confirm_name(key: str) -> str:
    name = key.rsplit("/", 1)[-1]
    stem, dot, ext = name.rpartition(".")
    return f"{stem}.confirm.{ext}" if dot else f"{name}.confirm"


def _write_report(store: Store, settings: Settings, key: str, report: dict[str, Any]) -> None:
    body = json.dumps(report, ensure_ascii=False, indent=1, default=str).encode("utf-8")
    store.put(settings.internal_bucket, key, body, "application/json")


def ingest(
    store: Store,
    queue: Queue,
    settings: Settings,
    registry: Registry,
    cog: Cog,
    event: ObjectEvent,
) -> IngestOutcome:
    """Validate one uploaded object and stage it for publication (see module docstring).

    Raises only for infrastructure failures (storage, queue), so the message is retried.
    """
    key = event.key
    if event.bucket != settings.incoming_bucket:
        return IngestOutcome("ignored", key, f"not an input key (bucket {event.bucket})")
    uid = upload_id(event.event_time, key, event.version_id, event.etag, event.sequencer)
    context: dict[str, Any] = {
        "key": key,
        "bucket": event.bucket,
        "version_id": event.version_id,
        "etag": event.etag,
        "sequencer": event.sequencer,
        "received_at": event.event_time.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "size": event.size,
        "upload_id": uid,
    }

    def refuse(issue: Issue, report_key: str, **ids: str) -> IngestOutcome:
        report = refusal_report(issue, {**context, **ids})
        _write_report(store, settings, report_key, report)
        return IngestOutcome("rejected", key, issue.message, uid, report_key=report_key, report=report, **ids)

    try:
        routed = route(key)
    except KeyRejected as exc:
        return refuse(Issue(exc.reason, f"{exc} (key {key!r})", cell=key), f"reports/_refused/{uid}.json")
    dataset = registry.get(routed.dataset)
    if dataset is None:
        known = ", ".join(d.name for d in registry)
        msg = f"unrecognized input file {key!r}: no dataset {routed.dataset!r} (registered: {known})"
        return refuse(Issue("unrouted-key", msg, cell=key), f"reports/_refused/{uid}.json")
    ids = {"dataset": dataset.name, "producer": routed.producer}
    report_key = f"reports/{dataset.name}/{routed.producer}/{uid}.json"
    if store.head(settings.internal_bucket, report_key) is not None:
        return IngestOutcome("duplicate", key, "this object version was already processed", uid,
                             report_key=report_key, **ids)
    if routed.producer not in dataset.producers:
        allowed = ", ".join(dataset.producers[:8]) + (
            f" and {len(dataset.producers) - 8} more" if len(dataset.producers) > 8 else "")
        msg = f"producer {routed.producer!r} may not publish {dataset.name} (allowed: {allowed})"
        return refuse(Issue("producer-not-allowed", msg, cell=key), report_key, **ids)
    if event.size > settings.max_object_bytes:
        msg = (f"{key!r} is {event.size} bytes, over the limit of {settings.max_object_bytes} "
               f"bytes; it was not read")
        return refuse(Issue("object-too-large", msg, cell=str(event.size)), report_key, **ids)

    # The object is streamed to local disk (the Lambda's ephemeral storage), hashed on the way;
    # validation reads it batch by batch and stages the accepted rows as Parquet beside it.
    with tempfile.TemporaryDirectory(prefix="opendepot-") as workdir:
        source = os.path.join(workdir, "upload")
        with open(source, "wb") as f:
            hashing = _Hashing(f)
            size = store.get_file(event.bucket, key, hashing, version_id=event.version_id)
        sha256 = hashing.sha256.hexdigest()
        v = validate_file(source, dataset, cog, name=key, workdir=workdir,
                          max_errors=settings.max_errors, max_bytes=settings.max_object_bytes)
        report = build_report(v, None, {**context, **ids}, size=size, sha256=sha256)
        held = None
        if v.accepted and not routed.confirmed:
            held = shrink_check(store, settings, dataset, routed.producer, v, key)
        if held is not None:
            report["valid"] = False
            report["tasks"][0]["errors"].insert(0, issue_dict(held))
            report["stats"]["errors"] += 1
            report["tasks"][0]["stats"]["errors"] += 1
            report["opendepot"].update(status="held", rejection=held.message)
            _write_report(store, settings, report_key, report)
            return IngestOutcome("held", key, held.message, uid, report_key=report_key,
                                 report=report, **ids)
        if v.accepted:
            staged_key = f"staging/{dataset.name}/{routed.producer}/{uid}.parquet"
            with open(str(v.staged), "rb") as staged:
                store.put(settings.internal_bucket, staged_key, staged, PARQUET_MIME)
            record = {
                **context,
                **ids,
                "rows": v.rows_published,
                "rows_left_out": v.rows_left_out,
                "areas": v.areas,
                "sha256": sha256,
                "bytes": size,
                "report_key": report_key,
                "staged_key": staged_key,
            }
            store.put(
                settings.internal_bucket,
                f"staging/{dataset.name}/{routed.producer}/{uid}.json",
                json.dumps(record, ensure_ascii=False, indent=1).encode("utf-8"),
                "application/json",
            )
            queue.send(settings.publish_queue_url, {"dataset": dataset.name, "upload_id": uid},
                       group_id=dataset.name)
    _write_report(store, settings, report_key, report)
    status: Status = "accepted" if v.accepted else "rejected"
    return IngestOutcome(status, key, v.rejection or "accepted", uid, report_key=report_key,
                         report=report, **ids)
