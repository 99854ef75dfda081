"""Crash safety: a failure injected at every storage and queue write of validate and publish in
turn, then the queue's retry. After each, the published state equals the state of a run without
a crash, every object a manifest references exists with its recorded size and checksum, and no
original upload is lost."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from conftest import HOSP
from opendepot import layout
from opendepot.config import Settings
from opendepot.contracts import Catalog, Manifest, UploadRecord
from opendepot.ingest import ObjectEvent, ingest
from opendepot.publication import publish_dataset
from opendepot.registry import load_cog, load_registry
from opendepot.storage import MemoryQueue, MemoryStore

WRITES = {"put", "copy", "send"}


class Crash(BaseException):
    """The injected failure: the process dying at that write. A ``BaseException``, so that no
    ``except Exception`` of the code under test (which may handle its own errors, e.g. a
    comparison that fails) can swallow what models a crash."""


@dataclass
class Faults:
    """Counts writes across the store and the queue; raises Crash at write number ``at``."""

    at: int | None = None
    count: int = 0
    log: list[str] = field(default_factory=list)

    def tick(self, what: str) -> None:
        self.count += 1
        self.log.append(what)
        if self.at is not None and self.count == self.at:
            self.at = None  # one crash per run; the retry goes through
            raise Crash(f"injected crash at write #{self.count} ({what})")


class FaultyStore:
    def __init__(self, inner: MemoryStore, faults: Faults) -> None:
        self.inner, self.faults = inner, faults

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if name not in WRITES:
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            self.faults.tick(f"{name} {args[1] if len(args) > 1 else ''}")
            return target(*args, **kwargs)

        return call


class FaultyQueue(MemoryQueue):
    def __init__(self, faults: Faults) -> None:
        super().__init__()
        self.faults = faults

    def send(self, queue_url: str, body: dict[str, Any], *, group_id: str | None = None) -> None:
        self.faults.tick("send")
        super().send(queue_url, body, group_id=group_id)


def run(cases_dir, crash_at: int | None) -> tuple[MemoryStore, Faults, int]:
    """Three uploads (valid, invalid, valid), each validated then published, every step retried
    like a queue would until it succeeds. Returns the store, the fault log and the retries."""
    settings = Settings(publish_queue_url="memory://publish.fifo")
    faults = Faults(at=crash_at)
    memory = MemoryStore()
    store, queue = FaultyStore(memory, faults), FaultyQueue(faults)
    registry, cog, ds = load_registry(), load_cog(), load_registry().get(HOSP)
    t0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
    bodies = [
        (cases_dir / "C10-duplicate-delivery-object.csv").read_bytes(),
        (cases_dir / "C06-corsica-20.csv").read_bytes(),
        (cases_dir / "C12-partial-publication-object.csv").read_bytes(),
    ]
    retries = 0
    for i, body in enumerate(bodies):
        key = f"{HOSP}/spf/daily-{i}.csv"
        etag = memory.put(settings.incoming_bucket, key, body, "text/csv")  # the producer's PUT
        event = ObjectEvent(settings.incoming_bucket, key, len(body), etag, f"v{i}",
                            f"{i + 1:016X}", t0 + timedelta(minutes=i))
        sent_before = len(queue.sent)
        for _attempt in range(5):
            try:
                ingest(store, queue, settings, registry, cog, event)
                break
            except Crash:
                retries += 1
        for _ in queue.sent[sent_before:]:
            for attempt in range(5):
                try:
                    publish_dataset(store, settings, registry, cog, ds,
                                    t0 + timedelta(minutes=i, seconds=30 + attempt))
                    break
                except Crash:
                    retries += 1
    return memory, faults, retries


def published_state(store: MemoryStore, settings: Settings) -> dict[str, Any]:
    """What readers see: the latest files' bytes, the manifest's uploads, rows and checksums."""
    bucket = store.buckets.get(settings.published_bucket, {})
    manifest = Manifest.from_json(json.loads(bucket[layout.manifest_key(HOSP)].body))
    catalog = Catalog.from_json(json.loads(bucket[layout.CATALOG_KEY].body))
    latest = {layout.latest_key(HOSP, lv, fmt) for lv in ("dep", "reg", "fra")
              for fmt in ("csv", "parquet")}
    return {
        "latest": {k: hashlib.sha256(o.body).hexdigest() for k, o in bucket.items() if k in latest},
        "uploads": list(manifest.upload_ids),
        "rows": dict(manifest.rows),
        "files": sorted((r.name, r.format, r.sha256) for r in manifest.resources),
        "versions": len(manifest.versions),
        "catalog": [(d.name, dict(d.rows)) for d in catalog.datasets],
    }


def check_invariants(store: MemoryStore, settings: Settings) -> None:
    bucket = store.buckets[settings.published_bucket]
    manifest = Manifest.from_json(json.loads(bucket[layout.manifest_key(HOSP)].body))
    for version in manifest.versions:
        for f in version.resources:
            obj = bucket[f.path]
            assert len(obj.body) == f.bytes
            assert hashlib.sha256(obj.body).hexdigest() == f.sha256
    for r in manifest.resources:
        assert hashlib.sha256(bucket[r.latest_path].body).hexdigest() == r.sha256
    # every upload the manifest is made of is still staged, as its record says
    internal = store.buckets[settings.internal_bucket]
    for u in manifest.uploads:
        assert isinstance(u, UploadRecord)
        assert UploadRecord.from_json(json.loads(
            internal[layout.staged_record_key(HOSP, u.producer, u.upload_id)].body)) == u
        assert u.staged_key in internal
    incoming = store.buckets[settings.incoming_bucket]
    assert sorted(incoming) == [f"{HOSP}/spf/daily-{i}.csv" for i in range(3)]


def test_crash_at_every_write__retry_converges_to_the_crash_free_state(cases_dir):
    settings = Settings()
    clean, faults, retries = run(cases_dir, crash_at=None)
    assert retries == 0
    expected = published_state(clean, settings)
    assert expected["rows"] == {"dep": 2, "reg": 1, "fra": 1}
    assert expected["versions"] == 2  # the invalid upload published nothing
    writes = faults.count
    assert writes > 20 and {w.split()[0] for w in faults.log} == WRITES

    tried = 0
    for at in range(1, writes + 1):
        store, _, retries = run(cases_dir, crash_at=at)
        assert retries == 1, f"crash point {at} did not fire"
        assert published_state(store, settings) == expected, f"crash at write {at}: {faults.log[at - 1]}"
        check_invariants(store, settings)
        tried += 1
    print(f"crash-injection harness: {tried} crash points tried, all converged")
    assert tried == writes
