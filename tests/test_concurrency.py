"""Conditional writes: a publication that loses the race for the manifest fails, and its retry
from fresh state publishes every upload; immutable version files are never overwritten."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from conftest import HOSP, Pipeline
from opendepot.publication import publish_dataset
from opendepot.registry import load_cog, load_registry
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
    descriptor = dict(registry.get(HOSP).descriptor, mode="append")
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
    from opendepot.publication import _put_immutable

    bucket = pipeline.settings.published_bucket
    _put_immutable(pipeline.store, bucket, f"{HOSP}/v1/f.csv", b"a;b\n", "text/csv")
    _put_immutable(pipeline.store, bucket, f"{HOSP}/v1/f.csv", b"a;b\n", "text/csv")  # a retry
    with pytest.raises(PreconditionFailed):
        _put_immutable(pipeline.store, bucket, f"{HOSP}/v1/f.csv", b"other\n", "text/csv")
    assert pipeline.published(f"{HOSP}/v1/f.csv") == b"a;b\n"
