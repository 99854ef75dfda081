"""``catalog.json`` switched with ``If-Match`` (issue 14, item 2): a publication puts only its own
dataset's entry, from the manifest it just switched to, without reading any other manifest; a
lost race is read again and retried; a missing or unreadable catalog is rebuilt from every
manifest."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from conftest import HOSP, Pipeline
from opendepot import catalog, layout, publication
from opendepot.contracts import Catalog, Manifest
from opendepot.registry import Registry, load_cog, load_registry
from opendepot.storage import PreconditionFailed

NEW = "donnees-hospitalieres-nouveaux-covid19"
HOSP_BODY = "dep;sexe;jour;hosp;rea;rad;dc\n{dep};0;2020-03-24;{n};1;1;1\n"
NEW_BODY = "dep;jour;incid_hosp;incid_rea;incid_dc;incid_rad\n{dep};2020-03-24;{n};1;1;1\n"


class Counting:
    """Counts calls by (method, key); ``before_put(key)`` runs before each put of the catalog."""

    def __init__(self, inner: Any, before_put: Any = None) -> None:
        self.inner, self.before_put, self.calls = inner, before_put, []

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if not callable(target):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            key = args[1] if len(args) > 1 else ""
            self.calls.append((name, key))
            if name == "put" and key == layout.CATALOG_KEY and self.before_put is not None:
                self.before_put()
            return target(*args, **kwargs)

        return call


def publish_both(p: Pipeline, n: int = 10) -> None:
    p.drop(f"{HOSP}/spf/h{n}.csv", HOSP_BODY.format(dep="75", n=n).encode())
    p.drop(f"{NEW}/spf/n{n}.csv", NEW_BODY.format(dep="92", n=n).encode())
    assert p.publish(HOSP).created and p.publish(NEW).created


def stored(p: Pipeline) -> tuple[Catalog, str]:
    bucket = p.settings.published_bucket
    head = p.store.head(bucket, layout.CATALOG_KEY)
    assert head is not None
    return Catalog.from_json(json.loads(p.store.get(bucket, layout.CATALOG_KEY))), head.etag


def manifest(p: Pipeline, name: str) -> Manifest:
    return Manifest.from_json(json.loads(p.published(layout.manifest_key(name))))


def test_reexported_from_publication__the_same_functions():
    assert publication.rebuild_catalog is catalog.rebuild_catalog
    assert publication.catalog_entry is catalog.catalog_entry


def test_publication__puts_its_entry_reading_no_other_manifest(pipeline: Pipeline):
    publish_both(pipeline)
    before, _ = stored(pipeline)
    assert [e.name for e in before.datasets] == [HOSP, NEW]  # registry order
    pipeline.drop(f"{NEW}/spf/n11.csv", NEW_BODY.format(dep="92", n=11).encode())
    pipeline.now += timedelta(seconds=5)
    counting = Counting(pipeline.store)
    out = publication.publish_dataset(counting, pipeline.settings, load_registry(), load_cog(),
                                      load_registry().get(NEW), pipeline.now)
    assert out.created
    after, _ = stored(pipeline)
    assert after.datasets[0] == before.datasets[0]  # the other entry: unchanged
    assert after.datasets[1].version == out.version == manifest(pipeline, NEW).version
    assert after.datasets[1].rows == {"dep": 1, "reg": 1, "fra": 1}
    assert after.datasets[1] == catalog.catalog_entry(load_registry().get(NEW),
                                                       manifest(pipeline, NEW))
    # the other dataset's manifest is never read; the catalog once (head, get, put)
    assert not [c for c in counting.calls if c[1] == layout.manifest_key(HOSP)]
    assert [c for c in counting.calls if c[1] == layout.CATALOG_KEY] == [
        ("head", layout.CATALOG_KEY), ("get", layout.CATALOG_KEY), ("put", layout.CATALOG_KEY)]


def test_lost_race__read_again_and_both_entries_kept(pipeline: Pipeline):
    publish_both(pipeline)
    registry = load_registry()
    hosp, new = manifest(pipeline, HOSP), manifest(pipeline, NEW)
    hosp2 = replace(hosp, version="2027-01-01-00h00m00s", rows={"dep": 7, "reg": 7, "fra": 7})
    new2 = replace(new, version="2027-01-01-00h00m01s", rows={"dep": 9, "reg": 9, "fra": 9})

    def other() -> None:  # another dataset's publication writes the catalog meanwhile, once
        counting.before_put = None
        catalog.update_catalog(pipeline.store, pipeline.settings, registry,
                               registry.get(HOSP), hosp2, pipeline.now)

    counting = Counting(pipeline.store, other)
    assert catalog.update_catalog(counting, pipeline.settings, registry, registry.get(NEW), new2,
                                  pipeline.now)
    puts = [c for c in counting.calls if c == ("put", layout.CATALOG_KEY)]
    assert len(puts) == 2  # the first lost (If-Match), the second won
    after, _ = stored(pipeline)
    assert [(e.name, e.version, dict(e.rows)) for e in after.datasets] == [
        (HOSP, "2027-01-01-00h00m00s", {"dep": 7, "reg": 7, "fra": 7}),
        (NEW, "2027-01-01-00h00m01s", {"dep": 9, "reg": 9, "fra": 9})]


def test_every_attempt_lost__precondition_failed_propagates(pipeline: Pipeline, monkeypatch):
    publish_both(pipeline)
    monkeypatch.setattr(catalog, "RETRY_SLEEP", (0.0, 0.0))
    registry = load_registry()
    hosp = manifest(pipeline, HOSP)
    bumps = iter(range(100))

    def other() -> None:  # the catalog changes before every write
        i = next(bumps)
        catalog.update_catalog(pipeline.store, pipeline.settings, registry, registry.get(HOSP),
                               replace(hosp, rows={"dep": i, "reg": i, "fra": i}), pipeline.now)

    counting = Counting(pipeline.store)
    new2 = replace(manifest(pipeline, NEW), version="2027-01-01-00h00m01s")
    counting.before_put = other
    with pytest.raises(PreconditionFailed):
        catalog.update_catalog(counting, pipeline.settings, registry, registry.get(NEW), new2,
                               pipeline.now)
    assert catalog.ATTEMPTS == 10
    assert len([c for c in counting.calls if c == ("put", layout.CATALOG_KEY)]) == 10
    after, _ = stored(pipeline)
    assert after.datasets[1].version == manifest(pipeline, NEW).version  # never written


def test_missing_or_unreadable_catalog__rebuilt_from_every_manifest(pipeline: Pipeline):
    publish_both(pipeline)
    registry, bucket = load_registry(), pipeline.settings.published_bucket
    expected = [catalog.catalog_entry(registry.get(n), manifest(pipeline, n)) for n in (HOSP, NEW)]
    for broken in (None, b"{not json", b'{"generated_at": "x", "datasets": [{"name": 1}]}'):
        if broken is None:
            pipeline.store.delete(bucket, layout.CATALOG_KEY)
        else:
            pipeline.store.put(bucket, layout.CATALOG_KEY, broken, "application/json")
        assert catalog.update_catalog(pipeline.store, pipeline.settings, registry,
                                      registry.get(NEW), manifest(pipeline, NEW), pipeline.now)
        assert list(stored(pipeline)[0].datasets) == expected, broken
    # nothing changed: nothing written
    _, etag = stored(pipeline)
    assert not catalog.rebuild_catalog(pipeline.store, pipeline.settings, registry, pipeline.now)
    assert not catalog.update_catalog(pipeline.store, pipeline.settings, registry,
                                      registry.get(HOSP), manifest(pipeline, HOSP), pipeline.now)
    assert stored(pipeline)[1] == etag


def test_older_manifest__never_moves_an_entry_back(pipeline: Pipeline):
    publish_both(pipeline, 10)
    old = manifest(pipeline, NEW)
    pipeline.drop(f"{NEW}/spf/n11.csv", NEW_BODY.format(dep="92", n=11).encode())
    assert pipeline.publish(NEW).created
    current = stored(pipeline)[0].datasets[1].version
    assert current > old.version
    registry = load_registry()
    assert not catalog.update_catalog(pipeline.store, pipeline.settings, registry,
                                      registry.get(NEW), old, pipeline.now)
    assert stored(pipeline)[0].datasets[1].version == current


def test_registry_metadata__refreshed_in_every_entry(pipeline: Pipeline):
    publish_both(pipeline)
    registry = load_registry()
    renamed = Registry({**registry.datasets,
                        HOSP: replace(registry.get(HOSP), title="Titre corrigé")})
    assert catalog.update_catalog(pipeline.store, pipeline.settings, renamed, renamed.get(NEW),
                                  manifest(pipeline, NEW), pipeline.now)
    after, _ = stored(pipeline)
    assert [e.title for e in after.datasets] == ["Titre corrigé", registry.get(NEW).title]
    assert after.datasets[0].version == manifest(pipeline, HOSP).version
    # a dataset the registry no longer has leaves the catalog, as in a rebuild
    gone = Registry({NEW: registry.get(NEW)})
    catalog.update_catalog(pipeline.store, pipeline.settings, gone, gone.get(NEW),
                           manifest(pipeline, NEW), pipeline.now)
    assert [e.name for e in stored(pipeline)[0].datasets] == [NEW]
