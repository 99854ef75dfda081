"""Announcing new versions (issue 14, item 4): the publish function sends one message per new
version (none when a publication finds nothing new) to the SNS topic reusers subscribe to; a
subscribed SQS queue receives exactly those messages. Real files, published through the publish
function's own handler: in memory, on moto's SNS and SQS (in process), and on the local stack
created from ``template.yaml``."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from conftest import HOSP, Pipeline
from functions.publish import app as publish_app
from opendepot import atom, feeds, layout, runtime
from opendepot.contracts import PublishMessage
from opendepot.notify import NO_NOTIFIER, MemoryNotifier, Notifier, SnsNotifier
from opendepot.registry import load_cog, load_registry
from opendepot.storage import MemoryQueue, MemoryStore, StorageError
from test_changes_api import FRA, FRA_FILES, MIRROR
from test_index_api import API, FILES
from test_index_api_contract import SETTINGS

REGION = "eu-west-3"
HOSP_23 = MIRROR / "2020-03-23_3f62f18" / "covid_hospit.csv"


class Record:
    """The SQS record the publish function receives."""

    def __init__(self, dataset: str) -> None:
        self.body = json.dumps(PublishMessage(dataset, "x").to_json())


@pytest.fixture
def pipeline() -> Pipeline:
    return Pipeline(MemoryStore(), MemoryQueue(), SETTINGS, datetime(2026, 11, 29, 8, tzinfo=UTC))


@contextmanager
def publishing(p: Pipeline, notifier: Notifier = NO_NOTIFIER) -> Iterator[None]:
    """The publish function's runtime over the pipeline's store, with ``notifier`` (also used
    by ``test_site_pages``)."""
    runtime.use(runtime.Runtime(p.settings, p.store, p.queue, load_registry(), load_cog(),
                                clock=lambda: p.now, notifier=notifier))
    publish_app.metrics.clear_metrics()
    try:
        yield
    finally:
        runtime.use(None)
        publish_app.metrics.clear_metrics()


def drop_and_publish(p: Pipeline, dataset: str, path: Any) -> None:
    assert p.drop(f"{dataset}/spf/{path.parent.name}-{path.name}",
                  path.read_bytes()).status == "accepted"
    p.now = p.now.replace(second=30)
    publish_app.record_handler(Record(dataset))


def manifest(p: Pipeline, dataset: str) -> dict[str, Any]:
    return json.loads(p.published(f"{dataset}/manifest.json"))


# --- in memory --------------------------------------------------------------------------------


def test_one_announcement_per_new_version__none_for_a_republication(pipeline: Pipeline) -> None:
    notifier = MemoryNotifier()
    with publishing(pipeline, notifier):
        drop_and_publish(pipeline, FRA, FRA_FILES[0])
        drop_and_publish(pipeline, FRA, FRA_FILES[1])
        publish_app.record_handler(Record(FRA))  # redelivered: nothing new, nothing said
        assert publish_app.metrics.metric_set["VersionsAnnounced"]["Value"] == [1.0, 1.0]
    m = manifest(pipeline, FRA)
    v2, v1 = (v["version"] for v in m["versions"])
    assert [(a.dataset, a.version) for a in notifier.sent] == [(FRA, v1), (FRA, v2)]
    first, second = (a.body for a in notifier.sent)
    assert (first["previous"], first["changes"], first["rows"]) == (None, None, {"fra": 1254})
    changes = json.loads(pipeline.published(f"{FRA}/{v2}/changes.json"))
    assert second == {
        "type": "opendepot.version", "dataset": FRA,
        "dataset_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"opendepot:{FRA}")),
        "title": "Tests virologiques COVID-19 en France par jour, sexe et classe d'âge (SI-DEP)",
        "version": v2, "published_at": m["published_at"], "previous": v1, "rows": {"fra": 2277},
        "uploads": m["versions"][0]["upload_ids"],
        "changes": {"rows": {"before": 1254, "after": 2277, "added": 1023, "removed": 0,
                             "changed": 1254, "unchanged": 0},
                    "cells_changed": changes["cells"]["changed"], "drops_published": False,
                    "schema_additive": False, "warnings": []},
        "links": {
            "dataset": f"{API}/api/1/datasets/{FRA}/",
            "versions": f"{API}/api/1/datasets/{FRA}/versions/",
            "version": f"{API}/api/1/datasets/{FRA}/versions/{v2}/",
            "changes": f"{API}/api/1/datasets/{FRA}/versions/{v2}/changes/",
            "changed_cells": f"{FILES}/{FRA}/{v2}/changes.csv",
            "feed": f"{API}/api/1/datasets/{FRA}/versions.atom",
            "files": [{"id": r["id"], "name": r["name"], "level": "fra", "format": r["format"],
                       "rows": 2277, "url": f"{FILES}/{r['path']}",
                       "latest": f"{API}/api/1/datasets/r/{r['id']}"} for r in m["resources"]],
        },
    }
    announced = notifier.sent[1]
    assert announced.attributes() == {"dataset": FRA}
    assert announced.subject == f"opendepot: {FRA} {v2}"
    assert announced.text.splitlines()[2] == (
        f"Rows: fra 2277. Against {v1}: 1023 rows added, 0 removed, 1254 changed "
        f"({changes['cells']['changed']} cells).")


def test_failed_announcement__logged_and_counted_the_version_stays(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture,
) -> None:
    class Down:
        def send(self, announcement: Any) -> str | None:
            raise ConnectionError("SNS is down")

    with publishing(pipeline, Down()):
        drop_and_publish(pipeline, HOSP, HOSP_23)  # does not raise: the message is done
        assert publish_app.metrics.metric_set["NotificationsFailed"]["Value"] == [1.0]
        assert "VersionsAnnounced" not in publish_app.metrics.metric_set
    (failure,) = [r for r in caplog.records if r.getMessage() == "new version not announced"]
    (version,) = manifest(pipeline, HOSP)["versions"]  # published all the same
    assert (failure.levelname, failure.version, failure.error) == (
        "ERROR", version["version"], "ConnectionError: SNS is down")
    assert failure.exc_info is not None
    marker = layout.announced_key(HOSP, version["version"])
    assert pipeline.store.head(pipeline.settings.internal_bucket, marker) is None
    # no marker: the next run (the queue's retry, a redelivery) announces it, then never again
    notifier = MemoryNotifier()
    with publishing(pipeline, notifier):
        publish_app.record_handler(Record(HOSP))
        publish_app.record_handler(Record(HOSP))
    assert [(a.dataset, a.version, a.body["changes"]) for a in notifier.sent] == [
        (HOSP, version["version"], None)]  # a first version: no comparison
    assert json.loads(pipeline.store.get(pipeline.settings.internal_bucket, marker)) == {
        "dataset": HOSP, "version": version["version"], "message_id": "memory-1"}


class LatestFailsOnce(MemoryStore):
    """A store whose next copy to a ``latest/`` key fails (after the manifest switch) once
    ``armed``."""

    armed = False

    def copy(self, bucket: str, src_key: str, dst_key: str, *,
             cache_control: str | None = None) -> None:
        if self.armed and f"/{layout.LATEST}/" in dst_key:
            self.armed = False
            raise StorageError(f"s3://{bucket}/{dst_key}: copy failed")
        super().copy(bucket, src_key, dst_key, cache_control=cache_control)


def test_failure_after_the_switch__the_retry_announces_once_and_asks_the_dependents() -> None:
    """The run that switched the manifest fails on a ``latest/`` copy: nothing was announced
    nor asked. Its retry finds nothing new to publish (created is False) but no marker: it
    announces the version (the headline read from its changes.json), asks the datasets fed by
    this one, writes the marker; a later run sends nothing."""
    p = Pipeline(LatestFailsOnce(), MemoryQueue(), SETTINGS, datetime(2026, 11, 29, 8, tzinfo=UTC))
    notifier = MemoryNotifier()
    (dependent,) = feeds.dependents(load_registry(), HOSP)

    def asked() -> list[Any]:
        return [b for _, b, g in p.queue.sent if g == dependent]

    with publishing(p, notifier):
        drop_and_publish(p, FRA, FRA_FILES[0])
        assert isinstance(p.store, LatestFailsOnce)
        p.store.armed = True  # the second FRA version's run fails after its switch
        with pytest.raises(StorageError, match="copy failed"):
            drop_and_publish(p, FRA, FRA_FILES[1])
        v2 = manifest(p, FRA)["version"]
        assert [a.version for a in notifier.sent] == [manifest(p, FRA)["versions"][1]["version"]]
        publish_app.record_handler(Record(FRA))  # the retry
        publish_app.record_handler(Record(FRA))  # a redelivery: marker present, nothing sent
        assert publish_app.metrics.metric_set["VersionsAnnounced"]["Value"] == [1.0, 1.0]

        p.store.armed = True  # the same for a dataset that feeds another one
        with pytest.raises(StorageError, match="copy failed"):
            drop_and_publish(p, HOSP, HOSP_23)
        assert asked() == []
        publish_app.record_handler(Record(HOSP))
        publish_app.record_handler(Record(HOSP))
    hosp = manifest(p, HOSP)["version"]
    assert [(a.dataset, a.version) for a in notifier.sent[1:]] == [(FRA, v2), (HOSP, hosp)]
    stored = json.loads(p.published(f"{FRA}/{v2}/changes.json"))
    assert notifier.sent[1].body["changes"] == atom.headline_of(stored)
    assert notifier.sent[1].body["changes"]["rows"]["added"] == 1023
    assert asked() == [PublishMessage(dependent, f"{HOSP}@{hosp}").to_json()]
    assert p.published(layout.latest_key(FRA, "fra", "csv")) == p.published(
        f"{FRA}/{v2}/{FRA}-fra.csv")  # the retry repaired latest/ too
    markers = p.store.list(p.settings.internal_bucket, layout.ANNOUNCED)
    assert [m.key for m in markers] == [layout.announced_key(HOSP, hosp)] + [
        layout.announced_key(FRA, v["version"]) for v in reversed(manifest(p, FRA)["versions"])]


# --- on moto's SNS and SQS ----------------------------------------------------------------------


def subscribe(sns: Any, sqs: Any, topic: str, name: str, only: list[str] | None = None) -> str:
    """A queue subscribed to ``topic`` (``only``: a filter policy on the dataset)."""
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"]
    attributes = {"FilterPolicy": json.dumps({"dataset": only})} if only else {}
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes=attributes)
    return str(url)


def received(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Every message waiting in the queue (SNS envelopes), deleted."""
    out = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        for message in batch:
            out.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return out


def test_on_moto__a_subscribed_queue_gets_exactly_one_message_per_new_version(
    pipeline: Pipeline,
) -> None:
    with mock_aws():
        sns, sqs = boto3.client("sns", REGION), boto3.client("sqs", REGION)
        topic = sns.create_topic(Name="opendepot-versions")["TopicArn"]
        everything = subscribe(sns, sqs, topic, "reuser")
        hospital_only = subscribe(sns, sqs, topic, "hospital-only", only=[HOSP])
        notifier = MemoryNotifier()

        class Both:
            def send(self, announcement: Any) -> str | None:
                notifier.send(announcement)
                return SnsNotifier(sns, topic).send(announcement)

        with publishing(pipeline, Both()):
            drop_and_publish(pipeline, FRA, FRA_FILES[0])
            drop_and_publish(pipeline, FRA, FRA_FILES[1])
            first = received(sqs, everything)
            publish_app.record_handler(Record(FRA))  # nothing new: nothing sent
            assert received(sqs, everything) == []
            drop_and_publish(pipeline, HOSP, HOSP_23)
            second = received(sqs, everything)
            hospital = received(sqs, hospital_only)
    got = [json.loads(e["Message"]) for e in first + second]
    assert got == [a.body for a in notifier.sent]
    assert [(b["dataset"], b["version"]) for b in got] == [
        (FRA, v["version"]) for v in reversed(manifest(pipeline, FRA)["versions"])] + [
        (HOSP, manifest(pipeline, HOSP)["version"])]
    assert [e["MessageAttributes"]["dataset"]["Value"] for e in first + second] == [
        FRA, FRA, HOSP]
    assert [e["Subject"] for e in second] == [f"opendepot: {HOSP} {got[2]['version']}"]
    assert [json.loads(e["Message"])["dataset"] for e in hospital] == [HOSP]


# --- the local stack, from template.yaml --------------------------------------------------------


@pytest.mark.e2e
def test_local_stack__the_template_topic_announces_each_new_version_once() -> None:
    from infra.pump import Pump, bindings_for
    from infra.stack import LocalStack

    with LocalStack(api_port=None) as stack:
        runtime.use(None)  # the publish function builds its SNS client from the stack's env
        try:
            assert stack.versions_topic is not None
            topic = stack.versions_topic.arn
            assert stack.env["OPENDEPOT_VERSIONS_TOPIC_ARN"] == topic
            queue = subscribe(stack.sns, stack.sqs, topic, "reuser")
            pump = Pump(stack.sqs, bindings_for(stack))
            for path in FRA_FILES:
                stack.s3.put_object(Bucket=stack.incoming_bucket,
                                    Key=f"{FRA}/spf/{path.parent.name}.csv", Body=path.read_bytes())
                pump.run(timeout=120)
            messages = [json.loads(e["Message"]) for e in received(stack.sqs, queue)]
            # a publish request again (a redelivery): already published, nothing announced
            stack.sqs.send_message(QueueUrl=stack.publish_queue_url, MessageGroupId=FRA,
                                   MessageBody=json.dumps({"dataset": FRA, "upload_id": "again"}))
            pump.run(timeout=120)
            again = received(stack.sqs, queue)
            body = stack.s3.get_object(Bucket=stack.published_bucket, Key=f"{FRA}/manifest.json")
            m = json.loads(body["Body"].read())
        finally:
            runtime.use(None)
    assert [b["version"] for b in messages] == [v["version"] for v in reversed(m["versions"])]
    assert [b["rows"] for b in messages] == [{"fra": 1254}, {"fra": 2277}]
    assert messages[1]["changes"]["rows"]["added"] == 1023
    assert messages[1]["links"]["files"][0]["url"].startswith(stack.public_base_url)
    assert again == []
