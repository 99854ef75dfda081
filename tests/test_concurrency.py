"""Conditional writes: a publication that loses the race for the manifest fails, and its retry
from fresh state publishes every upload; immutable version files are never overwritten; two
datasets publishing at once both end up in ``catalog.json`` (on the local stack)."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from conftest import HOSP, Pipeline
from infra.stack import LocalStack
from opendepot import layout
from opendepot.config import Settings
from opendepot.contracts import Catalog
from opendepot.ingest import ObjectEvent, ingest
from opendepot.publication import publish_dataset
from opendepot.registry import load_cog, load_descriptor, load_registry
from opendepot.storage import MemoryQueue, PreconditionFailed, S3Store

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

    def uploads() -> tuple[list[str], int]:
        """Uploads the versions brought (the winner took in c, which the loser had taken into
        the upload index, with b), and how many the current version is made of."""
        manifest = json.loads(pipeline.published(f"{HOSP}/manifest.json"))
        ids = [u for v in manifest["versions"] for u in v["upload_ids"]]
        records = [json.loads(pipeline.store.get(
            pipeline.settings.internal_bucket, f"staging/{HOSP}/spf/{u}.json")) for u in ids]
        return sorted(r["key"].rsplit("/", 1)[1] for r in records), manifest["versions"][0][
            "upload_count"]

    assert uploads() == (["a.csv", "b.csv", "c.csv"], 3)  # the loser did not overwrite it
    out = publish_dataset(pipeline.store, pipeline.settings, reg, cog, ds, pipeline.now + timedelta(seconds=3))
    assert not out.created and out.rows["dep"] == 3
    assert uploads() == (["a.csv", "b.csv", "c.csv"], 3)


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



NEW = "donnees-hospitalieres-nouveaux-covid19"
NEW_BODY = "dep;jour;incid_hosp;incid_rea;incid_dc;incid_rad\n{dep};2020-03-24;{n};1;1;1\n"
ROUNDS = 20
OFFSET = 1.0
"""Longest head start, in seconds, one of the two publications gets after the barrier (drawn
at random each round, and which one too): the rounds cover the phases in which one reads what
the other has not switched yet."""
STALL = 2.0
"""Longest delay of a request writing ``catalog.json`` (a slow network, an SDK retry with
backoff), drawn at random for each write: what lets a writer's view of the catalog age."""


class Slow:
    """A store whose writes of ``catalog.json`` wait a random delay (at most ``STALL``) before
    they are sent."""

    def __init__(self, inner, rng: random.Random) -> None:
        self.inner, self.rng = inner, rng

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def put(self, bucket, key, body, content_type, **kw):
        if key == layout.CATALOG_KEY:
            time.sleep(self.rng.uniform(0, STALL))
        return self.inner.put(bucket, key, body, content_type, **kw)


@pytest.mark.e2e
def test_two_datasets_publishing_at_once_on_the_local_stack__catalog_lists_both_new_versions(
        caplog):
    """Issue 14, item 2: two datasets' publications released together by a barrier (one of
    them up to ``OFFSET`` later), ``ROUNDS`` times, on moto's S3 (the local stack), each write
    of the catalog held up a random moment (``Slow``): after each round ``catalog.json`` lists
    both new versions (each publication puts its entry with ``If-Match`` and reads the catalog
    again when it lost the race). The former rebuild (every manifest read, the catalog written
    without a precondition) fails it: a writer held up after reading the manifests overwrites
    the other's newer catalog with one that lists the other's previous version."""
    registry, cog, rng = load_registry(), load_cog(), random.Random(14)
    caplog.set_level(logging.INFO, logger="opendepot.catalog")
    stale: list[str] = []
    with LocalStack(api_port=None) as stack:
        s3, settings, queue = S3Store(stack.s3), Settings.from_env(), MemoryQueue()
        store = Slow(s3, rng)
        t0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)

        def stage(key: str, body: bytes, at: datetime) -> None:
            put = stack.s3.put_object(Bucket=settings.incoming_bucket, Key=key, Body=body)
            event = ObjectEvent(settings.incoming_bucket, key, len(body), put["ETag"].strip('"'),
                                put.get("VersionId"), f"{int(at.timestamp()):016X}", at)
            assert ingest(s3, queue, settings, registry, cog, event).status == "accepted"

        for r in range(ROUNDS):
            now = t0 + timedelta(minutes=r)
            stage(f"{HOSP}/spf/h{r}.csv", BODY.format(dep="75", hosp=r).encode(), now)
            stage(f"{NEW}/spf/n{r}.csv", NEW_BODY.format(dep="92", n=r).encode(), now)
            barrier = threading.Barrier(2)
            late = {rng.choice((HOSP, NEW)): rng.uniform(0, OFFSET)}

            def run(name: str, now=now, barrier=barrier, late=late):
                ds = registry.get(name)
                barrier.wait(timeout=30)
                time.sleep(late.get(name, 0.0))
                return publish_dataset(store, settings, registry, cog, ds, now + timedelta(seconds=30))

            with ThreadPoolExecutor(2) as pool:
                outs = list(pool.map(run, (HOSP, NEW)))
            assert all(o.created for o in outs), r
            stored = Catalog.from_json(json.loads(s3.get(settings.published_bucket,
                                                         layout.CATALOG_KEY)))
            listed = {e.name: e.version for e in stored.datasets}
            if listed != {o.dataset: o.version for o in outs}:
                stale.append(f"round {r} ({late}): {listed}")
            assert {e.name: dict(e.rows) for e in stored.datasets} == {
                HOSP: {"dep": 1, "reg": 1, "fra": 1}, NEW: {"dep": 1, "reg": 1, "fra": 1}}
    lost = [r for r in caplog.records if r.getMessage() == "catalog changed meanwhile: read again"]
    print(f"{ROUNDS} rounds: {len(stale)} stale catalogs, {len(lost)} catalog writes lost the "
          "race and were retried")
    assert stale == []
    assert lost  # the race did happen
