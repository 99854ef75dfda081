"""publish function: FIFO messages ``{"dataset", "upload_id"}`` -> a new published version.

The FIFO group (one per dataset) serialises publications of a dataset; the conditional manifest
switch guards against anything else. A failed message is retried by the queue.

After every run that leaves a version published (created by this run or not), the follow-ups
are driven by state, not by ``created``: unless the marker ``announced/{dataset}/{version}.json``
(``layout.announced_key``, internal bucket) exists, the datasets fed by this one are asked to
publish (``feeds``), the version is announced (``opendepot.notify``: the SNS topic reusers
subscribe to), then the marker is written (``If-None-Match``). So a run that died after the
manifest switch (``latest/`` copies, catalog, the Lambda itself) leaves no version unannounced:
its retry finds nothing new to publish, no marker, and announces; a run with nothing new and the
marker present sends nothing. An announcement that fails does not fail the message (the version
is published and in the Atom feeds): the failure is logged as an error, with the dataset and
version, and counted (``NotificationsFailed``, which has an alarm); no marker is written, so the
next run for the dataset (the retry, a redelivery) announces it. Delivery is at least once: a
marker that cannot be written after a sent announcement (logged) means a later run announces
again. A request to a dependent that cannot be sent raises (the message is retried, before any
announcement); dependents' publications are idempotent, so asking twice is harmless. Versions
published before markers existed have none: a run with nothing new announces such a current
version once. Without a topic (``NO_NOTIFIER``) the marker is written after the dependents.

After a run that created a version, and before the follow-ups, the site function is asked to
refresh the static site (``request_site``: ``contracts.SiteMessage`` ``{"dataset", "version"}``
to the site queue, ``Settings.site_queue_url``; ``functions/site/app.py`` builds the pages, so a
publication never waits for them). A request that cannot be sent never fails nor retries the
publication: the failure is logged with its exception and counted (``SiteRequestsFailed``), and
the next publication's request rebuilds the home (the dataset's own page waits for its next
version, or ``opendepot site build``). Without a site queue (``site_queue_url`` "") nothing is
sent.
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

from opendepot import atom, feeds, layout, notify, runtime
from opendepot.contracts import ContractError, PublishMessage, SiteMessage
from opendepot.publication import PublishOutcome, publish_dataset
from opendepot.storage import NotFound, PreconditionFailed

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
    if out.created:
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
    if out.created and out.version is not None:
        request_site(rt, dataset.name, out.version)
    if out.version is not None:
        follow_up(rt, dataset.title, out, out.version)


def request_site(rt: runtime.Runtime, dataset: str, version: str) -> bool:
    """Ask the site function to refresh the site after ``dataset``'s new ``version``
    (``SiteMessage`` to ``Settings.site_queue_url``): True when sent. No site queue: nothing is
    sent (False). A failure is logged with its exception and counted (``SiteRequestsFailed``),
    never raised: the version stays published and the next publication's request rebuilds the
    home."""
    if not rt.settings.site_queue_url:
        return False
    try:
        rt.queue.send(rt.settings.site_queue_url, SiteMessage(dataset, version).to_json())
    except Exception as exc:  # SQS unreachable, throttled, a missing queue: the data is out
        logger.exception("site refresh not requested",
                         extra={"version": version, "error": f"{type(exc).__name__}: {exc}"})
        metrics.add_metric(name="SiteRequestsFailed", unit=MetricUnit.Count, value=1)
        return False
    logger.info("site refresh requested", extra={"version": version})
    return True


def follow_up(rt: runtime.Runtime, title: str, out: PublishOutcome, version: str) -> None:
    """Unless ``version``'s marker (``layout.announced_key``) exists: ask the datasets fed by
    ``out.dataset`` to publish, announce the version, write the marker (see the module's
    docstring). ``version``: ``out.version``, the version now published.

    Raises: storage errors reading the marker, the queue's errors (the message is retried)."""
    bucket, key = rt.settings.internal_bucket, layout.announced_key(out.dataset, version)
    if rt.store.head(bucket, key) is not None:
        return
    # datasets fed by this one (registry ``feeds``) publish again with its version; the feed
    # graph is acyclic (tests/test_registry_feeds.py), so this always ends
    for dependent in feeds.dependents(rt.registry, out.dataset):
        request = PublishMessage(dependent, layout.fed_upload_id(out.dataset, version))
        rt.queue.send(rt.settings.publish_queue_url, request.to_json(), group_id=dependent)
        logger.info("asked a dependent dataset to publish", extra={"dependent": dependent})
    sent, message_id = announce(rt, title, out, version)
    if not sent:
        return
    body = json.dumps({"dataset": out.dataset, "version": version,
                       "message_id": message_id}).encode("utf-8")
    try:
        rt.store.put(bucket, key, body, "application/json", if_none_match=True)
    except PreconditionFailed:
        pass  # another run wrote it: the same version, announced
    except Exception as exc:  # announced all the same: a later run may announce it again
        logger.exception("announcement not recorded", extra={
            "version": version, "error": f"{type(exc).__name__}: {exc}"})


def announce(rt: runtime.Runtime, title: str, out: PublishOutcome,
             version: str) -> tuple[bool, str | None]:
    """Announce ``version`` of ``out.dataset`` (``notify.announce``; the change headline is
    ``out.changes`` when this run created the version, else read from its stored
    ``changes.json``): (done, or no topic to send to; the message id: None when nothing was
    sent). A failure is logged and counted, never raised (see the module's docstring)."""
    try:
        headline = out.changes if out.created else stored_headline(rt, out.dataset, version)
        message_id = notify.announce(rt.notifier, rt.store, rt.settings, title, out.dataset,
                                     version, headline)
    except Exception as exc:  # boto/SNS, the manifest read: the version stays published
        logger.exception("new version not announced",
                         extra={"version": version, "error": f"{type(exc).__name__}: {exc}"})
        metrics.add_metric(name="NotificationsFailed", unit=MetricUnit.Count, value=1)
        return False, None
    if message_id is not None:
        logger.info("new version announced", extra={"version": version,
                                                    "message_id": message_id})
        metrics.add_metric(name="VersionsAnnounced", unit=MetricUnit.Count, value=1)
    return True, message_id


def stored_headline(rt: runtime.Runtime, dataset: str, version: str) -> Mapping[str, Any] | None:
    """``atom.headline_of`` the version's stored ``changes.json`` (None: absent, or no
    comparison). Raises: storage errors, ValueError (not JSON)."""
    if isinstance(rt.notifier, notify.NoNotifier):
        return None  # nothing will be sent: nothing to read
    try:
        raw = rt.store.get(rt.settings.published_bucket, layout.changes_key(dataset, version))
    except NotFound:
        return None
    return atom.headline_of(json.loads(raw))


@metrics.log_metrics(raise_on_empty_metrics=False)
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
