"""Crash safety: a failure injected at every storage and queue write (put, copy, delete, send) of
validate and publish in turn, then the queue's retry. After each, the published state equals the
state of a run without a crash, every object a manifest references exists with its recorded size
and checksum, no original upload is lost, and no object of the published bucket is left that
neither the catalog nor a manifest names (a failed publication's version folder is deleted by
its retry: ``opendepot.pending``)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.history import APPEND, append_series
from conftest import HOSP
from opendepot import index_shards, layout, upload_index
from opendepot.config import Settings
from opendepot.contracts import Catalog, Manifest, UploadRecord
from opendepot.ingest import ObjectEvent, ingest
from opendepot.publication import publish_dataset
from opendepot.registry import load_cog, load_registry
from opendepot.storage import MemoryQueue, MemoryStore

WRITES = {"put", "copy", "send", "delete"}


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
    ds = load_registry().get(HOSP)
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
        retries += deliver(store, queue, settings, ds, event, t0 + timedelta(minutes=i))
    return memory, faults, retries


def deliver(store: Any, queue: Any, settings: Settings, ds: Any, event: ObjectEvent,
            at: datetime, *, accepted: bool = False) -> int:
    """Validate ``event`` then publish once per publish request it sent, each step retried like
    a queue would (5 receives) while it crashes; returns the retries. ``accepted``: the upload
    must be accepted."""
    registry, cog, retries = load_registry(), load_cog(), 0
    sent_before = len(queue.sent)
    for _attempt in range(5):
        try:
            outcome = ingest(store, queue, settings, registry, cog, event)
            assert not accepted or outcome.status == "accepted"
            break
        except Crash:
            retries += 1
    for _ in queue.sent[sent_before:]:
        for attempt in range(5):
            try:
                publish_dataset(store, settings, registry, cog, ds,
                                at + timedelta(seconds=30 + attempt))
                break
            except Crash:
                retries += 1
    return retries


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


def named_objects(store: MemoryStore, settings: Settings) -> set[str]:
    """Every published key a reader can reach from ``catalog.json`` and the manifests: the
    catalog, each manifest, the files, data package and changes of every version it lists (and
    its pages of older versions, if any), its ``latest/`` copies and Parquet prefixes, and the
    Athena tables' symlink file of each version's Parquet files (``opendepot.athena``)."""
    bucket = store.buckets[settings.published_bucket]
    catalog = Catalog.from_json(json.loads(bucket[layout.CATALOG_KEY].body))
    named = {layout.CATALOG_KEY}
    for entry in catalog.datasets:
        named.add(entry.manifest_path)
        m = Manifest.from_json(json.loads(bucket[entry.manifest_path].body))
        named.add(m.datapackage_path)
        named |= {p for r in m.resources for p in (r.path, r.latest_path)}
        named |= {layout.parquet_key(m.dataset, r.level) for r in m.resources if r.format == "parquet"}
        named |= {str(page.path) for page in getattr(m, "version_pages", ())}
        levels = {r.name: r.level for r in m.resources}
        for v in m.versions:
            named |= {layout.athena_symlink_key(m.dataset, levels[f.name], v.version)
                      for f in v.resources if f.format == "parquet"}
            named.add(layout.datapackage_key(m.dataset, v.version))
            named |= {f.path for f in v.resources}
            if v.changes is not None:
                named |= {p for p in (v.changes.path, v.changes.csv_path) if p is not None}
    return named


def check_nothing_public_unnamed(store: MemoryStore, settings: Settings, where: str) -> None:
    """No object of the published bucket that no manifest (nor the catalog) names: a failed
    publication's version folder must be gone once it was retried."""
    public = set(store.buckets[settings.published_bucket])
    assert public - named_objects(store, settings) == set(), where


def test_crash_at_every_write__retry_converges_to_the_crash_free_state(cases_dir):
    settings = Settings()
    clean, faults, retries = run(cases_dir, crash_at=None)
    assert retries == 0
    expected = published_state(clean, settings)
    assert expected["rows"] == {"dep": 2, "reg": 1, "fra": 1}
    assert expected["versions"] == 2  # the invalid upload published nothing
    check_nothing_public_unnamed(clean, settings, "no crash")
    # catalog, manifest; 2 versions of 6 files, a data package and changes.json, the second's
    # changes.csv; 6 latest/ copies, 3 Parquet prefixes; 2 versions of 3 Athena symlinks
    assert len(named_objects(clean, settings)) == 2 + 2 * (6 + 1 + 1) + 1 + 6 + 3 + 2 * 3
    writes = faults.count
    assert writes > 20 and {w.split()[0] for w in faults.log} == WRITES

    tried = 0
    for at in range(1, writes + 1):
        store, _, retries = run(cases_dir, crash_at=at)
        assert retries == 1, f"crash point {at} did not fire"
        assert published_state(store, settings) == expected, f"crash at write {at}: {faults.log[at - 1]}"
        check_invariants(store, settings)
        check_nothing_public_unnamed(store, settings, f"crash at write {at}: {faults.log[at - 1]}")
        tried += 1
    print(f"crash-injection harness: {tried} crash points tried, all converged")
    assert tried == writes


# --- an append dataset: the upload index's shards of folded keys (opendepot.index_shards) -------


def run_append(crash_at: int | None, days: int = 3) -> tuple[MemoryStore, Faults, int]:
    """``days`` real chiffres-cles days of ministere-sante (the history bench's uploads), each
    validated then published and retried like ``run``."""
    settings = Settings(publish_queue_url="memory://publish.fifo")
    faults = Faults(at=crash_at)
    memory = MemoryStore()
    store, queue = FaultyStore(memory, faults), FaultyQueue(faults)
    ds = load_registry().get(APPEND[0])
    series = append_series()
    t0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
    retries = 0
    for i in range(days):
        up = series.upload(i)
        etag = memory.put(settings.incoming_bucket, up.key, up.body, "text/csv")
        event = ObjectEvent(settings.incoming_bucket, up.key, len(up.body), etag, f"v{i}",
                            f"{i + 1:016X}", t0 + timedelta(minutes=i))
        retries += deliver(store, queue, settings, ds, event, t0 + timedelta(minutes=i),
                           accepted=True)
    return memory, faults, retries


def append_state(store: MemoryStore, settings: Settings) -> dict[str, Any]:
    """What readers see of the append dataset, and what its upload index says."""
    dataset = APPEND[0]
    bucket = store.buckets[settings.published_bucket]
    manifest = Manifest.from_json(json.loads(bucket[layout.manifest_key(dataset)].body))
    index, _ = upload_index.read(store, settings, dataset)
    assert index is not None
    return {
        "latest": {r.latest_path: hashlib.sha256(bucket[r.latest_path].body).hexdigest()
                   for r in manifest.resources},
        "uploads": len(manifest.upload_ids), "rows": dict(manifest.rows),
        "versions": len(manifest.versions),
        "index": (index.folded_count, sorted(index.shards.leaves), index.pending,
                  index.published_version is not None),
    }


def check_shards(store: MemoryStore, settings: Settings, where: str) -> None:
    """Every shard the index names exists, holds its leaf's keys, and every shard object
    stored is named by the index or in its ``expiring`` (deleted by the next publication)."""
    dataset = APPEND[0]
    index, _ = upload_index.read(store, settings, dataset)
    assert index is not None, where
    named = {layout.folded_shard_key(dataset, p, d) for p, d in index.shards.leaves.items() if d}
    stored = {k for k in store.buckets[settings.internal_bucket]
              if k.startswith(f"index/{dataset}/keys/")}
    assert named <= stored and stored - named <= set(index.expiring), where
    loaded = upload_index.load(store, settings, index)
    assert sum(len(loaded.shards.leaf_entries(p)) for p in index.shards.leaves) \
        == index.folded_count == 3, where


def test_append_crash_at_every_write__retry_converges_no_shard_lost_or_left(monkeypatch):
    monkeypatch.setattr(index_shards, "SHARD_MAX", 1)  # the second fold splits the root leaf
    settings = Settings()
    clean, faults, retries = run_append(crash_at=None)
    assert retries == 0
    expected = append_state(clean, settings)
    assert expected["versions"] == 3 and len(expected["index"][1]) == 16
    check_nothing_public_unnamed(clean, settings, "no crash")
    check_shards(clean, settings, "no crash")
    writes = faults.count
    assert {w.split()[0] for w in faults.log} >= {"put", "copy", "delete", "send"}
    for at in range(1, writes + 1):
        store, _, retries = run_append(crash_at=at)
        where = f"crash at write {at}: {faults.log[at - 1]}"
        assert retries == 1, where
        assert append_state(store, settings) == expected, where
        check_nothing_public_unnamed(store, settings, where)
        check_shards(store, settings, where)
