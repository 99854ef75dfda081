"""Cold-start wiring shared by the Lambda handlers: settings, AWS clients, ports, registry.

Built once per process and reused by every invocation; tests replace it with ``use(...)``.
This is the only module besides ``storage`` that creates boto3 clients.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

from opendepot.config import Settings
from opendepot.notify import NO_NOTIFIER, Notifier, SnsNotifier
from opendepot.registry import Cog, Registry, load_cog, load_registry
from opendepot.storage import Queue, S3Store, SqsQueue, Store


@dataclass(frozen=True)
class Runtime:
    """Everything a handler needs besides the event."""

    settings: Settings
    """Buckets, queue URL and limits (``Settings.from_env`` on Lambda)."""
    store: Store
    """Object storage (``S3Store`` on AWS and the local stack, ``MemoryStore`` in tests)."""
    queue: Queue
    """Where validate sends publish requests (``SqsQueue`` or ``MemoryQueue``)."""
    registry: Registry
    """Every dataset descriptor, parsed at load."""
    cog: Cog
    """INSEE COG 2020 departments and regions (codes checked and rolled up)."""
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    """The current time, timezone-aware UTC (tests pass a fixed clock)."""
    notifier: Notifier = NO_NOTIFIER
    """Where publish announces each new version (``SnsNotifier`` on the topic of
    ``Settings.versions_topic_arn``; ``NO_NOTIFIER`` without one; ``MemoryNotifier`` in tests)."""


_override: Runtime | None = None


@cache
def _default() -> Runtime:
    import boto3  # noqa: PLC0415 - only on the AWS/moto path

    settings = Settings.from_env()
    topic = settings.versions_topic_arn
    return Runtime(
        settings=settings,
        store=S3Store(boto3.client("s3")),
        queue=SqsQueue(boto3.client("sqs")),
        registry=load_registry(),
        cog=load_cog(),
        notifier=SnsNotifier(boto3.client("sns"), topic) if topic else NO_NOTIFIER,
    )


def current() -> Runtime:
    """The runtime in force: the one set by ``use``, else the default built from the env."""
    return _override if _override is not None else _default()


def use(runtime: Runtime | None) -> None:
    """Install a runtime (tests, local stack) or, with None, go back to the default."""
    global _override
    _override = runtime
    _default.cache_clear()
