"""Conditional writes: a publication that loses the race for the manifest fails, and its retry
from fresh state publishes every upload; immutable version files are never overwritten."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from conftest import HOSP, Pipeline
from opendepot.publication import publish_dataset
from opendepot.registry import load_cog, load_descriptor, load_registry
from opendepot.storage import PreconditionFailed

BODY = "dep;sexe;jour;hosp;rea;rad;dc\n{dep};0;2020-03-24;{hosp};1;1;1\n"


class RacingStore:
    """Before the first manifest write, lets ``other`` publish: the manifest moved meanwhile."""

    def __init__(self, inner, other) -> None:
        self.inner, self.other, self.raced = inner, other, False

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def put(self, bucket, key, body, content_type, **kw):
        if key.endswith("manifest.json") and not self.raced:
            self.raced = True
            self.other()
        return self.inner.put(bucket, key, body, content_type, **kw)


def test_lost_race_for_the_manifest__fails_then_retry_publishes_every_upload(pipeline: Pipeline):
    registry, cog = load_registry(), load_cog()
    descriptor = dict(load_descriptor(HOSP), mode="append")
    from opendepot.registry import Registry, parse_dataset

    ds = parse_dataset(descriptor)
    reg = Registry({**registry.datasets, HOSP: ds})
    pipeline.drop(f"{HOSP}/spf/a.csv", BODY.format(dep="75", hosp=10).encode())
    publish_dataset(pipeline.store, pipeline.settings, reg, cog, ds, pipeline.now)

    def other() -> None:  # a second worker publishes upload b while we hold a stale manifest
        pipeline.drop(f"{HOSP}/spf/b.csv", BODY.format(dep="92", hosp=20).encode())
        publish_dataset(pipeline.store, pipeline.settings, reg, cog, ds, pipeline.now + timedelta(seconds=1))

    pipeline.drop(f"{HOSP}/spf/c.csv", BODY.format(dep="2A", hosp=30).encode())
    racing = RacingStore(pipeline.store, other)
    with pytest.raises(PreconditionFailed):  # it read the manifest before the other switch
        publish_dataset(racing, pipeline.settings, reg, cog, ds, pipeline.now + timedelta(seconds=2))

    def uploads() -> list[str]:
        manifest = json.loads(pipeline.published(f"{HOSP}/manifest.json"))
        return sorted(u["key"].rsplit("/", 1)[1] for u in manifest["uploads"])

    assert uploads() == ["a.csv", "b.csv", "c.csv"]  # the loser did not overwrite the winner
    out = publish_dataset(pipeline.store, pipeline.settings, reg, cog, ds, pipeline.now + timedelta(seconds=3))
    assert out.rows["dep"] == 3 and uploads() == ["a.csv", "b.csv", "c.csv"]


def test_version_files__never_overwritten_with_other_bytes(pipeline: Pipeline):
    from opendepot.publication import put_immutable

    bucket = pipeline.settings.published_bucket
    put_immutable(pipeline.store, bucket, f"{HOSP}/v1/f.csv", b"a;b\n", "text/csv")
    put_immutable(pipeline.store, bucket, f"{HOSP}/v1/f.csv", b"a;b\n", "text/csv")  # a retry
    with pytest.raises(PreconditionFailed):
        put_immutable(pipeline.store, bucket, f"{HOSP}/v1/f.csv", b"other\n", "text/csv")
    assert pipeline.published(f"{HOSP}/v1/f.csv") == b"a;b\n"


def test_uploads_run_at_once_within_the_byte_budget():
    """A version's files go up concurrently (``concurrency.each``), but never more than the
    budget of bodies at once: small ones together, one larger than the budget alone; every call
    ends before ``each`` returns, and the first failure is raised."""
    import threading
    import time

    from opendepot import concurrency, publication

    assert publication.STORAGE_THREADS == 4  # what publications use, with STORAGE_BYTES

    lock = threading.Lock()
    running: list[int] = []
    seen: list[tuple[int, ...]] = []
    ended: list[int] = []

    def put(size: int) -> None:
        with lock:
            running.append(size)
            seen.append(tuple(sorted(running)))
        time.sleep(0.05)
        with lock:
            running.remove(size)
            ended.append(size)
        if size == 13:
            raise OSError("injected")

    sizes = [40, 30, 20, 250, 10, 5]
    concurrency.each(put, sizes, lambda n: n, threads=4, budget=100)
    assert sorted(ended) == sorted(sizes)
    assert max(sum(s) for s in seen) <= 250 and all(sum(s) <= 100 for s in seen if 250 not in s)
    assert (250,) in seen  # the large body ran alone
    assert max(len(s) for s in seen) >= 3  # small ones did run together
    ended.clear()
    with pytest.raises(OSError, match="injected"):
        concurrency.each(put, [13, 20, 30], lambda n: n, threads=4, budget=100)
    assert sorted(ended) == [13, 20, 30]


def test_small_reads_run_at_once_and_keep_their_order():
    """Manifests and upload records are read several at a time (``concurrency.map_ordered``):
    results come back in the items' order whatever order the reads end in; a failure is raised
    after every read."""
    import threading
    import time

    from opendepot import concurrency

    started = threading.Barrier(3)  # the first three reads are all in flight at once
    ended: list[int] = []

    def read(n: int) -> str:
        if n < 3:
            started.wait(timeout=5)
        time.sleep(0.01 * (10 - n))  # later items end first
        ended.append(n)
        if n == 7:
            raise KeyError("gone")
        return f"manifest {n}"

    got = concurrency.map_ordered(read, list(range(7)), threads=4)
    assert got == [f"manifest {n}" for n in range(7)]
    assert ended != sorted(ended)
    ended.clear()
    with pytest.raises(KeyError, match="gone"):
        concurrency.map_ordered(read, list(range(10)), threads=4)
    assert sorted(ended) == list(range(10))
