"""Dead letters back to their queues: the logic of ``opendepot redrive``.

A message lands in a dead-letter queue (DLQ) after the queue's ``maxReceiveCount`` failed
receives (``template.yaml``: 5). Once the cause is fixed, ``redrive`` moves every message of the
DLQ back to its source queue, where the function picks it up again: the body and message
attributes unchanged, and for a FIFO queue its ``MessageGroupId`` (the dataset: publications stay
serialised) and ``MessageDeduplicationId``. A message is deleted from the DLQ only after its send
succeeded, so a failure or a crash midway loses nothing: run it again (a message sent but not yet
deleted is then sent twice, which the functions absorb: they are idempotent, and within SQS's
5-minute window a FIFO queue drops the second copy by its deduplication id. On AWS a message
reaches a DLQ 5 visibility timeouts after it was sent, long after the original's window closed).

The queues are found from their redrive policies: every queue of the stack (its name starts with
the stack name) whose ``RedrivePolicy`` targets a DLQ. No boto3 here: callers pass an SQS client.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

Echo = Callable[[str], None]
"""Where ``redrive`` says what it does, one line per message (``print`` by default)."""

KEPT_ATTRIBUTE_KEYS = ("DataType", "StringValue", "BinaryValue")


class RedriveError(RuntimeError):
    """The queues to redrive cannot be found, or a message cannot be moved."""


@dataclass(frozen=True)
class QueuePair:
    """A source queue and the dead-letter queue its redrive policy targets."""

    name: str
    """Short name: the source queue's name without the stack prefix and ``.fifo`` (``validate``)."""
    source_url: str
    """URL of the source queue, where messages go back to."""
    dlq_url: str
    """URL of the dead-letter queue."""
    fifo: bool
    """FIFO queues: messages keep their group and deduplication ids."""


@dataclass(frozen=True)
class Moved:
    """One dead letter, moved back (or only listed, in a dry run)."""

    message_id: str
    """Its SQS message id (kept across the move to the DLQ)."""
    receive_count: int
    """Times it was received: by its function, then by this move (``ApproximateReceiveCount``)."""
    summary: str
    """What it is about: the S3 object(s) of a notification, or the compact JSON body."""
    group_id: str | None = None
    """``MessageGroupId`` (FIFO)."""


@dataclass
class RedriveResult:
    """What one ``redrive`` call did on one queue pair."""

    queue: str
    """Short name of the source queue."""
    dry_run: bool
    """Nothing was moved: messages were only listed, and left in the DLQ."""
    moved: list[Moved] = field(default_factory=list)
    """Messages sent back (dry run: that would be)."""
    failed: list[tuple[Moved, str]] = field(default_factory=list)
    """Messages whose send failed, with the error; they stay in the DLQ."""


def _short_name(queue_name: str, stack: str) -> str:
    return queue_name.removeprefix(f"{stack}-").removesuffix(".fifo")


def find_queue_pairs(sqs: Any, stack: str) -> dict[str, QueuePair]:
    """The queues of ``stack`` that redrive to a DLQ, by short name (``validate``, ``publish``).

    Raises:
        RedriveError: no queue of the stack has a redrive policy.
    """
    urls = sqs.list_queues(QueueNamePrefix=stack).get("QueueUrls", [])
    by_arn: dict[str, str] = {}
    policies: dict[str, dict[str, Any]] = {}
    for url in urls:
        attrs = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["QueueArn", "RedrivePolicy"]
        ).get("Attributes", {})
        by_arn[attrs["QueueArn"]] = url
        if attrs.get("RedrivePolicy"):
            policies[url] = json.loads(attrs["RedrivePolicy"])
    pairs = {}
    for url, policy in policies.items():
        dlq = by_arn.get(policy.get("deadLetterTargetArn", ""))
        if dlq is None:
            continue
        name = url.rstrip("/").rsplit("/", 1)[-1]
        short = _short_name(name, stack)
        pairs[short] = QueuePair(short, url, dlq, name.endswith(".fifo"))
    if not pairs:
        raise RedriveError(
            f"no queue named {stack}-* has a dead-letter queue"
            + (f" (queues found: {', '.join(urls)})" if urls else " (no queue found)")
        )
    return dict(sorted(pairs.items()))


def describe(body: str) -> str:
    """A one-line summary of a message body: the ``s3://`` objects of an S3 notification,
    else the compact JSON (or the first 120 characters of a non-JSON body)."""
    try:
        doc = json.loads(body)
    except ValueError:
        return body[:120]
    if isinstance(doc, dict) and isinstance(doc.get("Records"), list):
        objects = [
            f"s3://{r['s3']['bucket']['name']}/{unquote_plus(r['s3']['object']['key'])}"
            for r in doc["Records"]
            if isinstance(r, dict) and "s3" in r
        ]
        return ", ".join(objects) or "S3 notification without objects"
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, sort_keys=True)[:200]


def _attributes(attrs: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        name: {k: v for k, v in a.items() if k in KEPT_ATTRIBUTE_KEYS}
        for name, a in attrs.items()
    }


def _dead_letters(
    sqs: Any, dlq_url: str, visibility: int, wait_seconds: int
) -> Iterator[dict[str, Any]]:
    """Receive the DLQ's messages, each once (received messages stay hidden ``visibility`` s).

    Only as many as the queue held at the start: a moved message that fails again comes back
    with a new id, and must wait for the next redrive instead of looping forever."""
    seen: set[str] = set()
    attrs = sqs.get_queue_attributes(
        QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    left = int(attrs.get("ApproximateNumberOfMessages", 0))
    while left > 0:
        messages = sqs.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=visibility,
            WaitTimeSeconds=wait_seconds,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        fresh = [m for m in messages if m["MessageId"] not in seen]
        if not fresh:
            return
        for m in fresh[:left]:
            seen.add(m["MessageId"])
            left -= 1
            yield m


def redrive(
    sqs: Any,
    pair: QueuePair,
    *,
    dry_run: bool = False,
    echo: Echo = print,
    visibility: int = 60,
    wait_seconds: int = 1,
) -> RedriveResult:
    """Move every message of ``pair.dlq_url`` back to ``pair.source_url`` (see module docstring).

    ``visibility``: seconds a received dead letter stays hidden while it is being moved (a
    dry run makes them visible again at the end). ``wait_seconds``: long polling, so an empty
    answer means an empty queue. Never raises for a failed send: it is in ``failed``.
    """
    result = RedriveResult(pair.name, dry_run)
    listed: list[str] = []
    stuck_groups: set[str] = set()  # a FIFO group keeps its order: nothing after a failure
    for m in _dead_letters(sqs, pair.dlq_url, visibility, wait_seconds):
        attrs = m.get("Attributes") or {}
        item = Moved(
            message_id=m["MessageId"],
            receive_count=int(attrs.get("ApproximateReceiveCount", 0)),
            summary=describe(m["Body"]),
            group_id=attrs.get("MessageGroupId"),
        )
        group = f" group {item.group_id}" if item.group_id else ""
        if dry_run:
            listed.append(m["ReceiptHandle"])
            result.moved.append(item)
            echo(f"would move {pair.name} {item.message_id}{group}: {item.summary}")
            continue
        send: dict[str, Any] = {"QueueUrl": pair.source_url, "MessageBody": m["Body"]}
        if m.get("MessageAttributes"):
            send["MessageAttributes"] = _attributes(m["MessageAttributes"])
        if pair.fifo:
            send["MessageGroupId"] = attrs["MessageGroupId"]
            if attrs.get("MessageDeduplicationId"):
                send["MessageDeduplicationId"] = attrs["MessageDeduplicationId"]
        try:
            if item.group_id in stuck_groups:
                raise RedriveError("an earlier message of its group was not moved")
            sqs.send_message(**send)
        except Exception as exc:  # noqa: BLE001 - reported; the message stays in the DLQ
            if item.group_id:
                stuck_groups.add(item.group_id)
            result.failed.append((item, f"{type(exc).__name__}: {exc}"))
            echo(f"NOT moved {pair.name} {item.message_id}{group}: {exc}")
            continue
        sqs.delete_message(QueueUrl=pair.dlq_url, ReceiptHandle=m["ReceiptHandle"])
        result.moved.append(item)
        echo(
            f"moved {pair.name} {item.message_id}{group} "
            f"(received {item.receive_count} times): {item.summary}"
        )
    for handle in listed:
        sqs.change_message_visibility(
            QueueUrl=pair.dlq_url, ReceiptHandle=handle, VisibilityTimeout=0
        )
    return result
