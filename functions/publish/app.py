"""publish function: FIFO messages ``{"dataset", "upload_id"}`` -> a new published version.

The FIFO group (one per dataset) serialises publications of a dataset; the conditional manifest
switch guards against anything else. A failed message is retried by the queue.

Each new version is announced once, after the switch (``opendepot.notify``: the SNS topic
reusers subscribe to); a publication that found nothing new announces nothing. An announcement
that fails does not fail the message: the version is published and in the Atom feeds, and a
retry would find nothing new to announce (raising would only redeliver the message). The failure
is logged as an error, with the dataset and version, and counted (``NotificationsFailed``, which
has an alarm).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any, cast

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    SqsFifoPartialProcessor,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from opendepot import feeds, layout, notify, runtime
from opendepot.contracts import ContractError, PublishMessage
from opendepot.publication import publish_dataset

logger = Logger(service="opendepot-publish")
metrics = Metrics(namespace="opendepot", service="publish")
processor = SqsFifoPartialProcessor(logger=cast(logging.Logger, logger))  # failures logged as ours


def record_handler(record: SQSRecord) -> None:
    rt = runtime.current()
    try:
        message = PublishMessage.from_json(json.loads(record.body))
    except (ValueError, ContractError) as exc:  # kept by the dead-letter queue, for operators
        logger.error("malformed publish request",
                     extra={"body": record.body[:500], "error": str(exc)})
        raise
    dataset = rt.registry.get(message.dataset)
    if dataset is None:
        logger.error("publish request for an unknown dataset", extra={"message": message.to_json()})
        return
    logger.append_keys(dataset=dataset.name, upload_id=message.upload_id)
    started = time.perf_counter()
    out = publish_dataset(rt.store, rt.settings, rt.registry, rt.cog, dataset, rt.clock())
    if out.created and out.version is not None:
        announce(rt, dataset.title, dataset.name, out.version, out.changes)
        # datasets fed by this one (registry ``feeds``) publish again with its new version; the
        # feed graph is acyclic (tests/test_registry_feeds.py), so this always ends
        for dependent in feeds.dependents(rt.registry, dataset.name):
            request = PublishMessage(dependent, layout.fed_upload_id(dataset.name, out.version))
            rt.queue.send(rt.settings.publish_queue_url, request.to_json(), group_id=dependent)
            logger.info("asked a dependent dataset to publish", extra={"dependent": dependent})
        metrics.add_metric(name="VersionsPublished", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="RowsPublished", unit=MetricUnit.Count,
                           value=sum(out.rows.values()))
        metrics.add_metric(name="PublishSeconds", unit=MetricUnit.Seconds,
                           value=round(time.perf_counter() - started, 3))
    logger.info(
        "published new version" if out.created else "already published",
        extra={"version": out.version, "rows": out.rows, "uploads": list(out.upload_ids),
               "changes": out.changes},
    )


def announce(rt: runtime.Runtime, title: str, dataset: str, version: str,
             headline: Mapping[str, Any] | None) -> None:
    """Announce a new version (``notify.announce``); a failure is logged and counted, never
    raised (see the module's docstring)."""
    try:
        message_id = notify.announce(rt.notifier, rt.store, rt.settings, title, dataset, version,
                                     headline)
    except Exception as exc:  # boto/SNS, the manifest read: the version stays published
        logger.exception("new version not announced",
                         extra={"version": version, "error": f"{type(exc).__name__}: {exc}"})
        metrics.add_metric(name="NotificationsFailed", unit=MetricUnit.Count, value=1)
        return
    if message_id is not None:
        logger.info("new version announced", extra={"version": version,
                                                    "message_id": message_id})
        metrics.add_metric(name="VersionsAnnounced", unit=MetricUnit.Count, value=1)


@metrics.log_metrics(raise_on_empty_metrics=False)
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
