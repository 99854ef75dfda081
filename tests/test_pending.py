"""Pending markers (issue 14, item 2): a publication that dies between its uploads and its manifest
switch leaves its version folder public only until the next switch of the dataset, whose sweep
deletes it; a publication that may still switch (based on the current manifest) is left alone;
a published version's files are never deleted."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from conftest import HOSP, Pipeline
from opendepot import layout, pending
from opendepot.contracts import Manifest
from opendepot.publication import publish_dataset
from opendepot.registry import load_cog, load_registry
from opendepot.storage import PreconditionFailed

BODY = "dep;sexe;jour;hosp;rea;rad;dc\n{dep};0;2020-03-24;{n};1;1;1\n"
FILES = [f"{HOSP}-{lv}.{fmt}" for lv in ("dep", "reg", "fra") for fmt in ("csv", "parquet")]


class Died(Exception):
    """The publication's process dying at the manifest switch."""


class Recording:
    """Records every call (method, bucket, key); ``die_at_switch`` raises Died at the manifest
    put."""

    def __init__(self, inner: Any, die_at_switch: bool = False) -> None:
        self.inner, self.die, self.calls = inner, die_at_switch, []

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if not callable(target):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, *args[:2]))
            if self.die and name == "put" and args[1].endswith(layout.MANIFEST_NAME):
                raise Died(args[1])
            return target(*args, **kwargs)

        return call


def publish(p: Pipeline, store: Any) -> Any:
    p.now += timedelta(seconds=5)
    return publish_dataset(store, p.settings, load_registry(), load_cog(),
                           load_registry().get(HOSP), p.now)


def public(p: Pipeline) -> set[str]:
    return set(p.store.buckets[p.settings.published_bucket])


def markers(p: Pipeline) -> list[str]:
    return sorted(k for k in p.store.buckets[p.settings.internal_bucket]
                  if k.startswith(layout.pending_prefix(HOSP)))


def manifest(p: Pipeline) -> Manifest:
    return Manifest.from_json(json.loads(p.published(layout.manifest_key(HOSP))))


def test_layout__pending_keys():
    assert layout.pending_prefix(HOSP) == f"pending/{HOSP}/"
    assert layout.pending_key(HOSP, "2026-11-29-08h00m30s") == f"pending/{HOSP}/2026-11-29-08h00m30s.json"


def test_died_before_the_switch__files_public_until_the_retry_deletes_them(pipeline: Pipeline):
    pipeline.drop(f"{HOSP}/spf/a.csv", BODY.format(dep="75", n=10).encode())
    first = publish(pipeline, pipeline.store)
    assert markers(pipeline) == []  # deleted after its switch
    published = public(pipeline)
    pipeline.drop(f"{HOSP}/spf/b.csv", BODY.format(dep="75", n=11).encode())
    dying = Recording(pipeline.store, die_at_switch=True)
    with pytest.raises(Died):
        publish(pipeline, dying)
    dead = layout.version_id(pipeline.now)
    orphans = public(pipeline) - published
    assert orphans == {*(layout.version_file_key(HOSP, dead, f) for f in FILES),
                       layout.datapackage_key(HOSP, dead), layout.changes_key(HOSP, dead),
                       layout.changes_csv_key(HOSP, dead)}
    marker = pending.Marker.from_json(json.loads(
        pipeline.store.get(pipeline.settings.internal_bucket, layout.pending_key(HOSP, dead))))
    assert set(marker.keys) == orphans and marker.version == dead
    assert marker.base == pipeline.store.head(pipeline.settings.published_bucket,
                                              layout.manifest_key(HOSP)).etag
    # the marker went in before the first file of the version
    calls = [(m, k) for m, _, k in dying.calls if m == "put"]
    first_file = min(i for i, (_, k) in enumerate(calls) if k.startswith(f"{HOSP}/{dead}/"))
    assert calls.index(("put", layout.pending_key(HOSP, dead))) < first_file

    retry = Recording(pipeline.store)
    out = publish(pipeline, retry)
    assert out.created and out.version > dead > first.version
    assert not any(k.startswith(f"{HOSP}/{dead}/") for k in public(pipeline))
    assert markers(pipeline) == []
    assert [v.version for v in manifest(pipeline).versions] == [out.version, first.version]
    for v in manifest(pipeline).versions:  # every published version's files are still there
        assert {f.path for f in v.resources} <= public(pipeline)
    # the sweep lists only pending/{dataset}/, never the published bucket
    lists = [(b, k) for m, b, k in retry.calls if m == "list"]
    assert (pipeline.settings.internal_bucket, layout.pending_prefix(HOSP)) in lists
    assert not [b for b, _ in lists if b == pipeline.settings.published_bucket]


def test_sweep__rules_for_published_in_flight_and_abandoned_markers(pipeline: Pipeline):
    pipeline.drop(f"{HOSP}/spf/a.csv", BODY.format(dep="75", n=10).encode())
    out = publish(pipeline, pipeline.store)
    m = manifest(pipeline)
    store, settings, bucket = pipeline.store, pipeline.settings, pipeline.settings.published_bucket
    etag = store.head(bucket, layout.manifest_key(HOSP)).etag
    later = "2026-11-29-09h00m00s"
    abandoned = "2026-11-29-09h00m01s"
    for name in ("x.csv", "y.csv"):
        for v in (later, abandoned):
            store.put(bucket, layout.version_file_key(HOSP, v, name), b"a\n", "text/csv")
    # the current version (a crash after its switch), one based on the current manifest (maybe
    # still running), one based on an older manifest (can never switch), one unreadable
    pending.mark(store, settings, HOSP, out.version, None, FILES, pipeline.now)
    pending.mark(store, settings, HOSP, later, etag, ["x.csv", "y.csv"], pipeline.now)
    pending.mark(store, settings, HOSP, abandoned, "0" * 32, ["x.csv", "y.csv"], pipeline.now)
    store.put(settings.internal_bucket, layout.pending_key(HOSP, "junk"), b"{", "application/json")
    # a marker naming a key outside its folder (the manifest) never deletes it
    store.put(settings.internal_bucket, layout.pending_key(HOSP, "2026-11-29-09h00m02s"),
              json.dumps(pending.Marker(HOSP, "2026-11-29-09h00m02s", None, "x",
                                        (layout.manifest_key(HOSP),)).to_json()).encode(),
              "application/json")
    # a caller's stale view of the manifest (an ETag read before another switch) decides
    # nothing: the sweep reads the manifest again, and the run based on it keeps its files
    swept = pending.sweep(store, settings, HOSP, m, "2" * 32)
    assert later in swept.kept and later not in swept.removed
    assert store.head(bucket, layout.version_file_key(HOSP, later, "x.csv")) is not None
    pending.mark(store, settings, HOSP, out.version, None, FILES, pipeline.now)
    pending.mark(store, settings, HOSP, abandoned, "0" * 32, ["x.csv", "y.csv"], pipeline.now)
    store.put(settings.internal_bucket, layout.pending_key(HOSP, "2026-11-29-09h00m02s"),
              json.dumps(pending.Marker(HOSP, "2026-11-29-09h00m02s", None, "x",
                                        (layout.manifest_key(HOSP),)).to_json()).encode(),
              "application/json")
    swept = pending.sweep(store, settings, HOSP, m, etag)
    assert swept == pending.Swept(cleared=(out.version,), removed=(abandoned, "2026-11-29-09h00m02s"),
                                  kept=(later, "junk"), deleted_keys=5)
    assert store.head(bucket, layout.manifest_key(HOSP)) is not None
    assert {f.path for f in m.resources} <= public(pipeline)  # the current version: untouched
    assert store.head(bucket, layout.version_file_key(HOSP, later, "x.csv")) is not None
    assert store.head(bucket, layout.version_file_key(HOSP, abandoned, "x.csv")) is None
    assert markers(pipeline) == [layout.pending_key(HOSP, v) for v in ("2026-11-29-09h00m00s", "junk")]
    # once the manifest moves on, the marker of the run based on the old one is abandoned too
    moved = json.dumps(m.to_json(), indent=2).encode()  # the same manifest, a new ETag
    store.put(bucket, layout.manifest_key(HOSP), moved, "application/json", if_match=etag)
    swept = pending.sweep(store, settings, HOSP, m, etag)
    assert swept.removed == (later,) and swept.kept == ("junk",) and swept.deleted_keys == 5
    assert store.head(bucket, layout.version_file_key(HOSP, later, "x.csv")) is None


def test_marker__round_trips_and_refuses_a_wrong_shape():
    m = pending.Marker(HOSP, "2026-11-29-08h00m30s", None, "2026-11-29T08:00:30Z", ("a", "b"))
    assert pending.Marker.from_json(json.loads(json.dumps(m.to_json()))) == m
    for bad in ({}, {**m.to_json(), "keys": "a"}, {**m.to_json(), "base": 3}, []):
        with pytest.raises(ValueError):
            pending.Marker.from_json(bad)


def test_publication_in_flight__loses_its_files_only_when_it_can_no_longer_switch(
        pipeline: Pipeline):
    """Two publications of one dataset at once (the FIFO group normally prevents it): the one
    that switches first sweeps the other's files, whose switch then fails on If-Match; its retry
    publishes, and nothing unnamed is left."""
    pipeline.drop(f"{HOSP}/spf/a.csv", BODY.format(dep="75", n=10).encode())
    publish(pipeline, pipeline.store)
    pipeline.drop(f"{HOSP}/spf/b.csv", BODY.format(dep="75", n=11).encode())

    class Racing(Recording):
        def put(self, bucket, key, body, content_type, **kw):
            self.calls.append(("put", bucket, key))
            if key == layout.manifest_key(HOSP) and not self.die:
                self.die = True  # once: the other publication switches first
                publish(pipeline, pipeline.store)
            return self.inner.put(bucket, key, body, content_type, **kw)

    racing = Racing(pipeline.store)
    with pytest.raises(PreconditionFailed):
        publish(pipeline, racing)
    loser = [k for _, _, k in racing.calls if k.startswith(f"{HOSP}/2026")][0].split("/")[1]
    assert not any(k.startswith(f"{HOSP}/{loser}/") for k in public(pipeline))
    assert markers(pipeline) == []
    versions = [v.version for v in manifest(pipeline).versions]
    assert loser not in versions and len(versions) == 2
