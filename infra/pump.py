"""The queue pump: what Lambda's SQS event source mapping does, in process.

``Pump`` receives up to ``batch_size`` messages from each bound queue, builds the Lambda SQS event
(``Records`` with ``messageId``, ``receiptHandle``, ``body``, ``attributes``, ``messageAttributes``,
``md5OfBody``, ``eventSource``, ``eventSourceARN``, ``awsRegion``), calls the handler with a fake
Lambda context, deletes the messages it did not list in ``batchItemFailures`` and makes the others
visible again after ``retry_delay`` seconds, so the queue retries them and its redrive policy moves
them to the dead-letter queue after ``maxReceiveCount`` receives. A handler that raises fails its
whole batch, as on Lambda. It runs until every bound queue is idle (no visible, in-flight or
delayed message). Everything is passed through: the validate handler skips ``s3:TestEvent``
itself, as it must on AWS.

A binding with a batching window (``MaximumBatchingWindowInSeconds``: the site queue) is
debounced as Lambda does it, without waiting out the window: its queue is received only when
the others had nothing to do, in batches of up to its ``BatchSize`` (several receives of 10), so
the requests sent while the others work are handled together. ``run(hold=...)`` leaves queues
alone for that run (neither received nor waited for): the demo holds the site queue while it
drops its files, then builds the site from every request at once.

    pump = Pump(stack.sqs, bindings_for(stack), on_batch=print)
    stats = pump.run()
"""

from __future__ import annotations

import base64
import importlib
import logging
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from infra.stack import PUBLISH_QUEUE, SITE_QUEUE, VALIDATE_QUEUE, LocalStack, QueueInfo

Handler = Callable[[dict[str, Any], Any], Any]

log = logging.getLogger(__name__)

# Used when template.yaml declares no SQS event for a queue.
DEFAULT_HANDLERS = {
    VALIDATE_QUEUE: ("ValidateFunction", "functions.validate.app", 10),
    PUBLISH_QUEUE: ("PublishFunction", "functions.publish.app", 10),
    SITE_QUEUE: ("SiteFunction", "functions.site.app", 100),
}


class PumpTimeout(RuntimeError):
    """The queues were still busy when the pump's time ran out."""


@dataclass
class LambdaContext:
    """The attributes and method of the Lambda context object handlers and Powertools use."""

    function_name: str
    """Function name."""
    memory_limit_in_mb: int = 128
    """Configured memory."""
    invoked_function_arn: str = ""
    """ARN the function was invoked with."""
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    """Invocation id."""
    function_version: str = "$LATEST"
    """Function version."""
    log_group_name: str = ""
    """CloudWatch log group."""
    log_stream_name: str = "local"
    """CloudWatch log stream."""
    timeout_s: int = 900
    """Configured timeout, for ``get_remaining_time_in_millis``."""
    identity: Any = None
    client_context: Any = None
    _started: float = field(default_factory=time.monotonic, repr=False)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self._started)) * 1000))


@dataclass(frozen=True)
class Binding:
    """A queue feeding a handler (one SQS event source mapping)."""

    queue: QueueInfo
    """The queue (url, arn, FIFO)."""
    handler: Handler
    """``lambda_handler(event, context)``."""
    function_name: str
    """Function name given in the context."""
    batch_size: int = 10
    """Records per invocation (SQS returns at most 10 per receive)."""
    memory_size: int = 128
    """Memory given in the context."""
    timeout: int = 900
    """Timeout given in the context."""
    report_batch_item_failures: bool = True
    """Honour ``batchItemFailures``; else a returned batch is all done."""
    batching_window: int = 0
    """``MaximumBatchingWindowInSeconds``: above 0, received only when the other queues had
    nothing to do (see the module docstring)."""


@dataclass(frozen=True)
class BatchResult:
    """What one invocation did (given to ``on_batch``)."""

    function_name: str
    """Function invoked."""
    queue: str
    """Logical id of the queue."""
    size: int
    """Records in the batch."""
    failed: int
    """Records returned to the queue."""
    seconds: float
    """Handler duration."""
    error: str | None = None
    """The exception the handler raised, if it did (the whole batch failed)."""


@dataclass
class PumpStats:
    """Totals of a run."""

    invocations: int = 0
    """Handler calls."""
    handled: int = 0
    """Records passed to handlers (a retried record counts each time)."""
    failed: int = 0
    """Records returned to their queue."""
    errors: list[str] = field(default_factory=list)
    """Exceptions raised by handlers (one entry per failed invocation)."""
    per_queue: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Logical id of the queue -> (records handled, records failed)."""


def _message_attributes(attrs: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, a in attrs.items():
        v: dict[str, Any] = {
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": a.get("DataType", "String"),
        }
        if "StringValue" in a:
            v["stringValue"] = a["StringValue"]
        if "BinaryValue" in a:
            v["binaryValue"] = base64.b64encode(a["BinaryValue"]).decode("ascii")
        out[name] = v
    return out


def lambda_record(message: Mapping[str, Any], queue: QueueInfo, region: str) -> dict[str, Any]:
    """One ``Records[]`` entry of a Lambda SQS event, from a ``receive_message`` message."""
    attributes = {k: str(v) for k, v in (message.get("Attributes") or {}).items()}
    attributes.setdefault("ApproximateReceiveCount", "1")
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": attributes,
        "messageAttributes": _message_attributes(message.get("MessageAttributes") or {}),
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue.arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def _import_handler(module: str, name: str) -> Handler:
    handler = getattr(importlib.import_module(module), name)
    if not callable(handler):
        raise TypeError(f"{module}.{name} is not callable")
    return handler  # type: ignore[no-any-return]


def bindings_for(stack: LocalStack, handlers: Mapping[str, Handler] | None = None) -> list[Binding]:
    """The validate, publish and site bindings, as ``template.yaml`` declares them.

    ``handlers`` replaces a handler by the logical id of its queue or function (for tests);
    the others are imported from the template's ``CodeUri`` and ``Handler`` (e.g.
    ``functions.validate.app.lambda_handler``). Import after the stack started: handlers read
    their settings at import time.
    """
    handlers = dict(handlers or {})
    out: list[Binding] = []
    sources = {s.queue: s for s in stack.event_sources}
    for queue_id, (function_id, module, batch) in DEFAULT_HANDLERS.items():
        if queue_id not in stack.queues:  # an older template: no site queue
            continue
        src = sources.get(queue_id)
        override = handlers.get(queue_id) or handlers.get(src.function if src else function_id)
        if src is not None:
            handler = override or _import_handler(src.handler_module, src.handler_name)
            out.append(
                Binding(
                    stack.queues[queue_id],
                    handler,
                    src.function_name,
                    src.batch_size,
                    src.memory_size,
                    src.timeout,
                    src.report_batch_item_failures,
                    src.batching_window,
                )
            )
        else:
            handler = override or _import_handler(module, "lambda_handler")
            out.append(
                Binding(stack.queues[queue_id], handler, f"{stack.stack_name}-{function_id}", batch)
            )
    return out


class Pump:
    """Drains queues into handlers until every queue is idle."""

    def __init__(
        self,
        sqs: Any,
        bindings: list[Binding],
        *,
        region: str = "eu-west-3",
        account_id: str = "123456789012",
        retry_delay: int = 0,
        workers: int = 1,
        poll_interval: float = 0.05,
        on_batch: Callable[[BatchResult], None] | None = None,
    ) -> None:
        """``retry_delay``: seconds a failed record stays invisible before its retry (Lambda
        leaves it for the queue's visibility timeout; locally it comes back at once).
        ``workers``: concurrent invocations (FIFO groups are still one at a time)."""
        self.sqs = sqs
        self.bindings = bindings
        self.region = region
        self.account_id = account_id
        self.retry_delay = retry_delay
        self.workers = max(1, workers)
        self.poll_interval = poll_interval
        self.on_batch = on_batch
        self.stats = PumpStats()
        self._lock = threading.Lock()
        self._active = 0
        self._done = threading.Event()
        self._seen_errors: set[str] = set()
        self._held: frozenset[str] = frozenset()

    # -- one batch
    def _receive(self, b: Binding) -> list[dict[str, Any]]:
        """Up to ``b.batch_size`` messages (receives of at most 10, SQS's own limit)."""
        out: list[dict[str, Any]] = []
        while len(out) < max(1, b.batch_size):
            r = self.sqs.receive_message(
                QueueUrl=b.queue.url,
                MaxNumberOfMessages=max(1, min(10, b.batch_size - len(out))),
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
                WaitTimeSeconds=0,
            )
            got = list(r.get("Messages") or [])
            out += got
            if not got or b.batch_size <= 10:
                break
        return out

    def _invoke(self, b: Binding, messages: list[dict[str, Any]]) -> BatchResult:
        event = {"Records": [lambda_record(m, b.queue, self.region) for m in messages]}
        context = LambdaContext(
            function_name=b.function_name,
            memory_limit_in_mb=b.memory_size,
            invoked_function_arn=(
                f"arn:aws:lambda:{self.region}:{self.account_id}:function:{b.function_name}"
            ),
            log_group_name=f"/aws/lambda/{b.function_name}",
            timeout_s=b.timeout,
        )
        ids = [m["MessageId"] for m in messages]
        error: str | None = None
        started = time.monotonic()
        try:
            response = b.handler(event, context)
            failed = self._failed_ids(b, response, ids)
        except Exception as exc:  # noqa: BLE001 - a crash fails the whole batch, as on Lambda
            error = f"{b.function_name}: {type(exc).__name__}: {exc}"
            failed = set(ids)
            first = error not in self._seen_errors
            self._seen_errors.add(error)
            if first:
                log.error(
                    "%s raised; the batch returns to the queue\n%s",
                    b.function_name,
                    traceback.format_exc().rstrip(),
                )
            else:
                log.error("%s raised again: %s", b.function_name, error)
        seconds = time.monotonic() - started
        for m in messages:
            if m["MessageId"] in failed:
                self.sqs.change_message_visibility(
                    QueueUrl=b.queue.url,
                    ReceiptHandle=m["ReceiptHandle"],
                    VisibilityTimeout=self.retry_delay,
                )
            else:
                self.sqs.delete_message(QueueUrl=b.queue.url, ReceiptHandle=m["ReceiptHandle"])
        result = BatchResult(
            b.function_name, b.queue.logical_id, len(messages), len(failed), seconds, error
        )
        with self._lock:
            s = self.stats
            s.invocations += 1
            s.handled += len(messages)
            s.failed += len(failed)
            if error:
                s.errors.append(error)
            h, f = s.per_queue.get(b.queue.logical_id, (0, 0))
            s.per_queue[b.queue.logical_id] = (h + len(messages), f + len(failed))
        return result

    def _failed_ids(self, b: Binding, response: Any, ids: list[str]) -> set[str]:
        if not b.report_batch_item_failures or not response:
            return set()
        items = response.get("batchItemFailures") if isinstance(response, dict) else None
        if not items:
            return set()
        failed = {str((i or {}).get("itemIdentifier") or "") for i in items}
        if not failed <= set(ids):
            # Lambda treats an unknown or empty itemIdentifier as a failure of the whole batch
            log.error(
                "%s returned unknown batchItemFailures %s",
                b.function_name,
                sorted(failed - set(ids)),
            )
            return set(ids)
        return failed

    # -- the loop
    def idle(self) -> bool:
        """No visible, in-flight or delayed message in any bound queue (held ones aside)."""
        for b in self._active_bindings():
            a = self.sqs.get_queue_attributes(
                QueueUrl=b.queue.url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )["Attributes"]
            if any(int(v) for v in a.values()):
                return False
        return True

    def _active_bindings(self) -> list[Binding]:
        return [b for b in self.bindings if b.queue.logical_id not in self._held]

    def _round(self, bindings: list[Binding]) -> bool:
        """One receive (and invocation) per binding; True when some had messages."""
        got = False
        for b in bindings:
            with self._lock:
                self._active += 1
            try:
                messages = self._receive(b)
                if messages:
                    got = True
                    result = self._invoke(b, messages)
                    if self.on_batch:
                        self.on_batch(result)
            finally:
                with self._lock:
                    self._active -= 1
        return got

    def _worker(self, deadline: float | None) -> None:
        while not self._done.is_set():
            active = self._active_bindings()
            got = self._round([b for b in active if not b.batching_window])
            if not got:  # the others had nothing: the debounced queues' turn
                got = self._round([b for b in active if b.batching_window])
            if deadline is not None and time.monotonic() > deadline:  # even while busy: a
                self._done.set()  # message failing forever on a queue without DLQ must not hang
                raise PumpTimeout("queues still busy when the pump's time ran out")
            if got:
                continue
            with self._lock:
                nobody_busy = self._active == 0
            if nobody_busy and self.idle():
                self._done.set()
                return
            time.sleep(self.poll_interval)

    def run(self, timeout: float | None = None, *, hold: Collection[str] = ()) -> PumpStats:
        """Pump until every bound queue is idle; return the totals of this run. ``hold``:
        logical ids of queues left alone in this run (their messages wait for a later run).

        Raises:
            PumpTimeout: ``timeout`` seconds passed and a queue still holds messages.
        """
        self.stats = PumpStats()
        self._held = frozenset(hold)
        self._done.clear()
        deadline = None if timeout is None else time.monotonic() + timeout
        if self.workers == 1:
            self._worker(deadline)
            return self.stats
        failures: list[BaseException] = []

        def target() -> None:
            try:
                self._worker(deadline)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
                failures.append(exc)
                self._done.set()

        threads = [
            threading.Thread(target=target, name=f"pump-{i}", daemon=True)
            for i in range(self.workers)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if failures:
            raise failures[0]
        return self.stats
