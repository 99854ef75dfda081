"""Shared fixtures: where the real data and the cases are, the in-memory pipeline; and test ids
every pytest-xdist worker agrees on (`make check` runs on two workers)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opendepot.config import Settings
from opendepot.ingest import IngestOutcome, ObjectEvent, ingest
from opendepot.publication import PublishOutcome, publish_dataset
from opendepot.registry import load_cog, load_registry
from opendepot.storage import MemoryQueue, MemoryStore

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("OPENDEPOT_SHARED_DATA", ROOT.parent / "shared" / "data"))
REAL = SHARED_DATA / "real"
CASES = SHARED_DATA / "cases"
HOSP = "donnees-hospitalieres-covid19"


GZIP_MAGIC = b"\x1f\x8b"


def pytest_make_parametrize_id(config: pytest.Config, val: object, argname: str) -> str | None:
    """Test ids of gzip bodies leave out the header's mtime (bytes 4..8): a body compressed at
    collection time gets the same id in every ``make check`` worker (pytest-xdist requires
    every worker to collect the same ids)."""
    if isinstance(val, bytes) and val.startswith(GZIP_MAGIC) and len(val) >= 10:
        digest = hashlib.sha256(val[:4] + bytes(4) + val[8:]).hexdigest()[:12]
        return f"gzip-{digest}"
    return None


def need(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"missing shared data {path}: the checkout must sit beside ../shared")
    return path


@pytest.fixture(scope="session")
def real_dir() -> Path:
    return need(REAL)


@pytest.fixture(scope="session")
def cases_dir() -> Path:
    return need(CASES)


@dataclass
class Pipeline:
    """validate + publish over the in-memory store, with a controllable clock."""

    store: MemoryStore
    queue: MemoryQueue
    settings: Settings
    now: datetime
    seq: int = 0

    def drop(self, key: str, body: bytes, *, version_id: str | None = None) -> IngestOutcome:
        self.seq += 1
        self.now += timedelta(minutes=1)
        etag = self.store.put(self.settings.incoming_bucket, key, body, "text/csv")
        event = ObjectEvent(
            bucket=self.settings.incoming_bucket,
            key=key,
            size=len(body),
            etag=etag,
            version_id=version_id or f"v{self.seq}",
            sequencer=f"{self.seq:016X}",
            event_time=self.now,
        )
        return self.ingest(event)

    def ingest(self, event: ObjectEvent) -> IngestOutcome:
        return ingest(self.store, self.queue, self.settings, load_registry(), load_cog(), event)

    def publish(self, dataset: str = HOSP) -> PublishOutcome:
        self.now += timedelta(seconds=5)
        ds = load_registry().get(dataset)
        assert ds is not None
        return publish_dataset(self.store, self.settings, load_registry(), load_cog(), ds, self.now)

    def published(self, key: str) -> bytes:
        return self.store.get(self.settings.published_bucket, key)


@pytest.fixture
def pipeline() -> Pipeline:
    return Pipeline(
        MemoryStore(),
        MemoryQueue(),
        Settings(publish_queue_url="memory://publish.fifo"),
        datetime(2026, 11, 29, 8, 0, tzinfo=UTC),
    )


@pytest.fixture(scope="session")
def every_real_published() -> Pipeline:
    """Every real file mapped to a dataset (``infra.real_files.collect_real``), dropped in
    publication order, then every dataset published: built once per session (and per xdist
    worker), for tests that only read what was published."""
    from infra.real_files import collect_real

    p = Pipeline(MemoryStore(), MemoryQueue(), Settings(publish_queue_url="memory://publish.fifo"),
                 datetime(2026, 11, 29, 8, 0, tzinfo=UTC))
    files, _ = collect_real(REAL)
    for f in files:
        p.drop(f"{f.dataset}/{f.producer}/{f.name}", f.read())
    for d in load_registry():
        p.publish(d.name)
    return p


class CountingStore(MemoryStore):
    """A MemoryStore that counts ``get``s per key (what a test reads through it)."""

    def __init__(self) -> None:
        super().__init__()
        self.gets: dict[str, int] = {}

    def get(self, bucket: str, key: str, *, version_id: str | None = None) -> bytes:
        self.gets[key] = self.gets.get(key, 0) + 1
        return super().get(bucket, key, version_id=version_id)
