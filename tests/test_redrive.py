"""Dead letters: a message that keeps failing lands in its dead-letter queue after the configured
receives, with the reason logged; ``opendepot redrive`` moves it back, and the fixed function
then processes it.

The local-stack tests run the real validate and publish handlers through the queue pump, with a
storage that fails until it is "fixed" (``runtime.use``); the unit tests run ``redrive`` on
moto in process. That a stand-in handler's failures reach the DLQ at all is shown in
``test_local_stack.py``.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
from moto import mock_aws

from conftest import HOSP
from infra.pump import Pump, bindings_for
from infra.stack import LocalStack
from opendepot import layout, runtime
from opendepot.cli import main
from opendepot.config import Settings
from opendepot.contracts import PublishMessage
from opendepot.redrive import QueuePair, RedriveError, describe, find_queue_pairs, redrive
from opendepot.registry import load_cog, load_registry
from opendepot.storage import S3Store, SqsQueue

KEY = f"{HOSP}/spf/C10-duplicate-delivery-object.csv"


class BrokenStore:
    """A store whose ``method`` fails on ``bucket`` (the outage the tests fix later)."""

    def __init__(self, inner: Any, method: str, bucket: str, reason: str) -> None:
        self.inner, self.method, self.bucket, self.reason = inner, method, bucket, reason

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if name != self.method:
            return target

        def broken(bucket: str, *args: Any, **kwargs: Any) -> Any:
            if bucket == self.bucket:
                raise RuntimeError(self.reason)
            return target(bucket, *args, **kwargs)

        return broken


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    with LocalStack(api_port=None) as s:
        runtime.use(None)
        try:
            yield s
        finally:
            runtime.use(None)


def _broken(stack: LocalStack, method: str, bucket: str, reason: str) -> None:
    store = BrokenStore(S3Store(stack.s3), method, bucket, reason)
    settings = Settings.from_env()
    runtime.use(runtime.Runtime(settings, store, SqsQueue(stack.sqs), load_registry(), load_cog()))


def _national(stack: LocalStack, day: str) -> list[int]:
    body = stack.s3.get_object(
        Bucket=stack.published_bucket, Key=layout.latest_key(HOSP, "fra", "csv")
    )["Body"].read()
    df = pd.read_csv(io.BytesIO(body), sep=";")
    return df[(df.jour == day) & (df.sexe == 0)].hosp.tolist()


def _dead(stack: LocalStack, queue_id: str) -> int:
    dlq = stack.queues[stack.queues[queue_id].dead_letter_queue or ""]
    return sum(stack.queue_depth(dlq.url))


# ------------------------------------------------------------------------------ local stack


@pytest.mark.e2e
def test_failing_validate__dead_letter_after_the_configured_receives_then_redrive_publishes(
    stack: LocalStack,
    cases_dir: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    queue = stack.validate_queue
    pump = Pump(stack.sqs, bindings_for(stack))
    pump.run(timeout=30)  # the s3:TestEvent: each later batch then holds the upload alone
    _broken(stack, "get_file", stack.incoming_bucket, "incoming bucket unreachable")
    stack.s3.put_object(Bucket=stack.incoming_bucket, Key=KEY,
                        Body=(cases_dir / "C10-duplicate-delivery-object.csv").read_bytes())

    with caplog.at_level(logging.ERROR, logger="infra.pump"):
        stats = pump.run(timeout=30)
    reasons = [r for r in caplog.records
               if r.name == "infra.pump" and "incoming bucket unreachable" in r.getMessage()]
    (report_key,) = [o["Key"] for o in stack.s3.list_objects_v2(
        Bucket=stack.internal_bucket, Prefix=layout.REPORTS).get("Contents", [])
        if o["Key"].endswith(".json")]  # its page (.html) is beside it

    def status() -> str:
        body = stack.s3.get_object(Bucket=stack.internal_bucket, Key=report_key)["Body"].read()
        return str(json.loads(body)["opendepot"]["status"])

    assert queue.max_receive_count == 5
    assert stats.per_queue["ValidateQueue"] == (5, 5)  # handled, failed: one per receive
    assert len(reasons) == 5 and all(r.levelno == logging.ERROR for r in reasons)
    assert _dead(stack, "ValidateQueue") == 1 and sum(stack.queue_depth(queue.url)) == 0
    assert status() == "failed"  # the last receive wrote the failure report
    capsys.readouterr()

    assert main(["redrive", "--queue", "validate"]) == 0
    out = capsys.readouterr().out
    runtime.use(None)  # fixed
    stats = pump.run(timeout=60)

    assert f"s3://{stack.incoming_bucket}/{KEY}" in out
    assert "(received 6 times)" in out  # 5 by the function, then the move
    assert "validate: moved 1 message(s) from opendepot-validate-dlq to opendepot-validate" in out
    assert stats.failed == 0 and _dead(stack, "ValidateQueue") == 0
    assert status() == "accepted"  # the redriven upload's report replaced it
    assert _national(stack, "2020-03-24") == [1692]


@pytest.mark.e2e
def test_failing_publish__redrive_all_gives_it_back_to_its_fifo_group_then_publishes(
    stack: LocalStack, cases_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pump = Pump(stack.sqs, bindings_for(stack))
    _broken(stack, "put", stack.published_bucket, "published bucket unreachable")
    stack.s3.put_object(Bucket=stack.incoming_bucket, Key=KEY,
                        Body=(cases_dir / "C10-duplicate-delivery-object.csv").read_bytes())
    stats = pump.run(timeout=30)
    assert stats.per_queue["PublishQueue"] == (5, 5)
    assert _dead(stack, "PublishQueue") == 1
    capsys.readouterr()

    assert main(["redrive", "--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert _dead(stack, "PublishQueue") == 1  # a dry run moves nothing
    assert main(["redrive"]) == 0
    out = capsys.readouterr().out
    (back,) = stack.sqs.receive_message(
        QueueUrl=stack.publish_queue_url, MessageSystemAttributeNames=["All"], VisibilityTimeout=0
    )["Messages"]
    runtime.use(None)  # fixed
    stats = pump.run(timeout=60)

    assert "would move publish" in dry and f"group {HOSP}" in dry
    assert "publish: would move 1 message(s)" in dry and "validate: would move 0 message(s)" in dry
    assert "publish: moved 1 message(s) from opendepot-publish-dlq.fifo to opendepot-publish.fifo" \
        in out
    assert back["Attributes"]["MessageGroupId"] == HOSP
    assert PublishMessage.from_json(json.loads(back["Body"])).dataset == HOSP
    assert stats.failed == 0 and _dead(stack, "PublishQueue") == 0
    assert _national(stack, "2020-03-24") == [1692]


# ------------------------------------------------------------------------------ unit (moto)


@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "eu-west-3"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield boto3.client("sqs")


def _pair(sqs: Any, name: str, fifo: bool) -> QueuePair:
    suffix = ".fifo" if fifo else ""
    extra = {"FifoQueue": "true", "ContentBasedDeduplication": "true"} if fifo else {}
    dlq = sqs.create_queue(QueueName=f"opendepot-{name}-dlq{suffix}", Attributes=extra)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 5})
    source = sqs.create_queue(QueueName=f"opendepot-{name}{suffix}",
                              Attributes={**extra, "RedrivePolicy": policy})["QueueUrl"]
    return QueuePair(name, source, dlq, fifo)


def _bodies(sqs: Any, url: str) -> list[tuple[str, str | None, str | None]]:
    out = []
    while messages := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
    ).get("Messages", []):
        for m in messages:
            a = m.get("Attributes", {})
            out.append((m["Body"], a.get("MessageGroupId"), a.get("MessageDeduplicationId")))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return out


def _depth(sqs: Any, url: str) -> int:
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"])


def test_find_queue_pairs__pairs_each_stack_queue_with_its_redrive_target(sqs: Any) -> None:
    validate, publish = _pair(sqs, "validate", False), _pair(sqs, "publish", True)
    sqs.create_queue(QueueName="other-validate")

    assert find_queue_pairs(sqs, "opendepot") == {"publish": publish, "validate": validate}
    with pytest.raises(RedriveError, match="no queue named nothing-"):
        find_queue_pairs(sqs, "nothing")


def test_redrive_fifo__keeps_group_dedup_id_and_order_and_empties_the_dlq(sqs: Any) -> None:
    pair = _pair(sqs, "publish", True)
    sent = [("a", "1"), ("b", "1"), ("a", "2"), ("a", "3")]
    for group, n in sent:
        sqs.send_message(QueueUrl=pair.dlq_url, MessageBody=json.dumps({"dataset": group, "n": n}),
                         MessageGroupId=group, MessageDeduplicationId=f"{group}-{n}")
    lines: list[str] = []

    result = redrive(sqs, pair, echo=lines.append, wait_seconds=0)

    assert [(m.group_id, json.loads(m.summary)["n"]) for m in result.moved] == sent
    assert result.failed == [] and _depth(sqs, pair.dlq_url) == 0
    back = _bodies(sqs, pair.source_url)
    assert sorted(back) == sorted(
        (json.dumps({"dataset": g, "n": n}), g, f"{g}-{n}") for g, n in sent
    )
    assert [json.loads(b)["n"] for b, g, _ in back if g == "a"] == ["1", "2", "3"]
    assert lines[0].startswith("moved publish ") and "group a" in lines[0]


def test_redrive_dry_run__lists_every_dead_letter_and_leaves_them_visible(sqs: Any) -> None:
    pair = _pair(sqs, "validate", False)
    for i in range(12):
        sqs.send_message(QueueUrl=pair.dlq_url, MessageBody=json.dumps({"i": i}))

    result = redrive(sqs, pair, dry_run=True, echo=lambda line: None, wait_seconds=0)

    assert len(result.moved) == 12 and result.dry_run
    assert _depth(sqs, pair.source_url) == 0
    visible = sqs.get_queue_attributes(QueueUrl=pair.dlq_url, AttributeNames=["All"])["Attributes"]
    assert visible["ApproximateNumberOfMessages"] == "12"


class _SendFails:
    """An SQS client whose ``send_message`` fails for bodies containing ``poison``."""

    def __init__(self, inner: Any, poison: str) -> None:
        self.inner, self.poison = inner, poison

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def send_message(self, **kwargs: Any) -> Any:
        if self.poison in kwargs["MessageBody"]:
            raise RuntimeError("queue refused the message")
        return self.inner.send_message(**kwargs)


def test_redrive_failed_send__message_stays_in_the_dlq_and_its_group_waits(sqs: Any) -> None:
    pair = _pair(sqs, "publish", True)
    for group, n in [("a", "poison"), ("a", "2"), ("b", "1")]:
        sqs.send_message(QueueUrl=pair.dlq_url, MessageBody=json.dumps({"g": group, "n": n}),
                         MessageGroupId=group, MessageDeduplicationId=f"{group}-{n}")

    result = redrive(_SendFails(sqs, "poison"), pair, echo=lambda line: None, wait_seconds=0)

    assert [json.loads(m.summary)["n"] for m in result.moved] == ["1"]
    assert [(json.loads(m.summary)["n"], why.split(":")[0]) for m, why in result.failed] == [
        ("poison", "RuntimeError"),
        ("2", "RedriveError"),  # an earlier message of group a is still dead
    ]
    assert _depth(sqs, pair.dlq_url) == 2
    assert [json.loads(b)["g"] for b, _, _ in _bodies(sqs, pair.source_url)] == ["b"]


def test_describe__names_the_objects_of_an_s3_notification_or_the_compact_body() -> None:
    record = {"s3": {"bucket": {"name": "in"}, "object": {"key": "ds/spf/a+b%C3%A9.csv"}}}
    notification = {"Records": [record]}

    assert describe(json.dumps(notification)) == "s3://in/ds/spf/a bé.csv"
    assert describe('{"upload_id": "u", "dataset": "d"}') == '{"dataset":"d","upload_id":"u"}'
    assert describe("not json") == "not json"


def test_cli_redrive__no_queues_for_the_stack_exits_2(
    sqs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    _pair(sqs, "validate", False)

    assert main(["redrive", "--stack", "elsewhere"]) == 2
    assert "no queue named elsewhere-*" in capsys.readouterr().err
    assert main(["redrive", "--queue", "publish"]) == 2
    assert "no dead-letter queue for publish" in capsys.readouterr().err


def test_redrive_while_the_fault_persists__one_pass_not_a_loop(monkeypatch):
    """A message that fails again at once comes back to the DLQ with a new id: redrive moves
    what the DLQ held when it started, once, and stops."""
    for k, v in {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t",
                 "AWS_DEFAULT_REGION": "eu-west-3"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        sqs = boto3.client("sqs")
        dlq = sqs.create_queue(QueueName="opendepot-validate-dlq")["QueueUrl"]
        sqs.send_message(QueueUrl=dlq, MessageBody='{"Records": []}')
        # the worst case: the source queue *is* where failures land, instantly
        result = redrive(sqs, QueuePair("validate", dlq, dlq, False), echo=lambda _: None,
                         visibility=0, wait_seconds=0)
        assert len(result.moved) == 1 and not result.failed
