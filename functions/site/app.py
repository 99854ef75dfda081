"""site function: SQS batches of ``{"dataset", "version"}`` -> the static site, refreshed once.

Publish sends one ``contracts.SiteMessage`` per new version (``Settings.site_queue_url``). The
event source debounces (``MaximumBatchingWindowInSeconds``, ``BatchSize`` in ``template.yaml``)
and one invocation refreshes the union of its batch's datasets once (``site.build.refresh``: the
home once, each dataset's page once, the dashboards reading any of them once, unless
``Settings.site_dashboards`` is off); ``ReservedConcurrentExecutions: 1``, so two refreshes
never race on the home page. Pages whose stored bytes are the same are not put
(``site.PageWriter``). A malformed message is a batch item failure (the dead-letter queue keeps
it after ``maxReceiveCount`` receives); the others are refreshed. A refresh that fails is logged
with its exception, counted (``SiteRefreshesFailed``) and fails the whole batch (the handler
raises: every message returns to the queue, then to its dead-letter queue).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, cast

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from opendepot import runtime
from opendepot.contracts import ContractError, SiteMessage

logger = Logger(service="opendepot-site")
metrics = Metrics(namespace="opendepot", service="site")
processor = BatchProcessor(  # failures logged as ours
    event_type=EventType.SQS, logger=cast(logging.Logger, logger))


def refresh(datasets: dict[str, str]) -> None:
    """Refresh the site for ``datasets`` (dataset -> newest version asked for), once.

    Raises: whatever ``site.build.refresh`` raises (logged and counted first)."""
    from opendepot.site import build  # noqa: PLC0415 - Jinja2 and the dashboards: here only

    rt, started = runtime.current(), time.perf_counter()
    try:
        out = build.refresh(rt.store, rt.settings, rt.registry, datasets=list(datasets),
                            now=rt.clock(), dashboards=rt.settings.site_dashboards)
    except Exception as exc:  # storage, an unreadable document, a template: the queue retries
        logger.exception("site not refreshed", extra={
            "datasets": datasets, "error": f"{type(exc).__name__}: {exc}"})
        metrics.add_metric(name="SiteRefreshesFailed", unit=MetricUnit.Count, value=1)
        raise
    metrics.add_metric(name="SiteRefreshSeconds", unit=MetricUnit.Seconds,
                       value=round(time.perf_counter() - started, 3))
    metrics.add_metric(name="SiteFilesWritten", unit=MetricUnit.Count, value=out.written)
    logger.info("site refreshed", extra={"datasets": datasets, "written": out.written,
                                         "unchanged": out.unchanged})


@metrics.log_metrics(raise_on_empty_metrics=False)
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    asked: dict[str, str] = {}

    def record_handler(record: SQSRecord) -> None:
        try:
            message = SiteMessage.from_json(json.loads(record.body))
        except (ValueError, ContractError) as exc:  # kept by the dead-letter queue
            logger.error("malformed site request",
                         extra={"body": record.body[:500], "error": str(exc)})
            raise
        asked[message.dataset] = max(asked.get(message.dataset, ""), message.version)

    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context)
    if asked:
        refresh(asked)
    return response
