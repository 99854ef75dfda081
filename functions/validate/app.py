"""validate function: SQS messages carrying S3 ObjectCreated events -> reports and staging.

One SQS message holds one S3 notification (``Records[]``), or an ``s3:TestEvent`` that is
skipped. Powertools' batch utility reports failed messages only, so one broken message does
not make the queue redeliver the whole batch. A problem of the file is a report; an
infrastructure failure (memory, disk, storage, timeouts: ``opendepot.failures``) raises, so
its message is a batch item failure: redelivered, then kept by the dead-letter queue. On the
last receive (``ApproximateReceiveCount`` reaching ``Settings.max_receives``, the queue's
``maxReceiveCount``) a failure first writes the upload's failure report
(``opendepot.ingest.report_failure``), then raises all the same. Held uploads are logged at
WARNING (an operator may have to confirm them), rejections and failures at ERROR.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any, cast

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes import S3Event
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from opendepot import runtime
from opendepot.ingest import IngestOutcome, ObjectEvent, ingest, report_failure
from opendepot.keys import decode_event_key
from opendepot.report import format_human

logger = Logger(service="opendepot-validate")
metrics = Metrics(namespace="opendepot", service="validate")
processor = BatchProcessor(  # failures logged as ours
    event_type=EventType.SQS, logger=cast(logging.Logger, logger))


def object_events(body: dict[str, Any]) -> list[ObjectEvent]:
    """The ObjectCreated records of one S3 notification, keys decoded (test events: none)."""
    if body.get("Event") == "s3:TestEvent" or "Records" not in body:
        return []
    return [
        ObjectEvent(
            bucket=r.s3.bucket.name,
            key=decode_event_key(r.s3.get_object.key),
            size=r.s3.get_object.size,
            etag=r.s3.get_object.etag,
            version_id=r.s3.get_object.version_id,
            sequencer=str(r.s3.get_object.get("sequencer") or ""),
            event_time=datetime.fromisoformat(r.event_time.replace("Z", "+00:00")),
            event_name=r.event_name,
        )
        for r in S3Event(body).records
        if r.event_name.startswith("ObjectCreated")
    ]


class AttemptUnfinished(RuntimeError):
    """What the failure report written before the last attempt says: if the function stops
    (its time limit, its memory) before any report, that one stays; otherwise the attempt's own
    report, or its failure's, replaces it."""


UNFINISHED = AttemptUnfinished(
    "the last attempt did not finish: the function stopped (its time limit or its memory) "
    "before it could write a report")


def record_handler(record: SQSRecord) -> None:
    rt = runtime.current()
    receives = int(record.attributes.approximate_receive_count or 1)
    for event in object_events(json.loads(record.body)):
        logger.append_keys(key=event.key, bucket=event.bucket)
        if receives >= rt.settings.max_receives:  # a report stays even if the process dies
            _report_failure(event, UNFINISHED, receives, log=False)
        try:
            out = ingest(rt.store, rt.queue, rt.settings, rt.registry, rt.cog, event)
        except Exception as exc:
            if receives >= rt.settings.max_receives:
                _report_failure(event, exc, receives)
            raise
        _log(out)


def _report_failure(
    event: ObjectEvent, error: Exception, receives: int, *, log: bool = True
) -> None:
    """The last receive failed (or is about to start: ``log`` False): write the upload's
    failure report, or log why it could not be written (the caller raises ``error`` either
    way, so the message goes to the DLQ)."""
    rt = runtime.current()
    try:
        out = report_failure(rt.store, rt.settings, rt.registry, event, error, receives)
    except Exception:
        logger.exception(f"could not write the failure report of {event.key} after {receives} "
                         f"receives ({type(error).__name__}: {error})")
        return
    if out is not None and log:
        _log(out)


def _log(out: IngestOutcome) -> None:
    """One outcome as a metric (``Files{Status}``) and a log line at its level."""
    logger.append_keys(dataset=out.dataset, producer=out.producer, upload_id=out.upload_id)
    extra = {"status": out.status, "report_key": out.report_key}
    metrics.add_metric(name=f"Files{out.status.capitalize()}", unit=MetricUnit.Count, value=1)
    if out.status == "accepted":
        logger.info(format_human(out.report or {}, max_lines=0), extra=extra)
    elif out.status == "held":
        logger.warning(f"held: {out.message}", extra=extra)
    elif out.status in ("rejected", "failed"):
        logger.error(format_human(out.report or {}, max_lines=5), extra=extra)
    else:
        logger.info(f"{out.status}: {out.message}", extra=extra)


@metrics.log_metrics(raise_on_empty_metrics=False)
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
