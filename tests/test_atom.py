"""Atom 1.0 feeds of new versions (issue 14, item 4): ``/api/1/datasets/recent.atom`` across
the catalog and ``/api/1/datasets/{id}/versions.atom`` per dataset, on real files published
through the pipeline, parsed by feedparser as a feed reader would."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import feedparser
import pytest

from conftest import HOSP, CountingStore, Pipeline
from functions.index_api import app as index_api
from opendepot import atom, index, layout
from opendepot.config import Settings
from opendepot.storage import MemoryQueue, MemoryStore
from test_changes_api import FRA, FRA_FILES, MIRROR, publish
from test_index_api import (
    API,
    BUCKET,
    COVID,
    FILES,
    UPLOAD_1,
    catalog_entry,
    covid_manifest,
    put_catalog,
    put_json,
    raw,
    version_entry,
)
from test_index_api_contract import SETTINGS, check_against_openapi, get

RECENT = "/api/1/datasets/recent.atom"
HOSP_23, HOSP_24 = (MIRROR / f / "covid_hospit.csv" for f in ("2020-03-23_3f62f18",
                                                               "2020-03-24_2c1018e"))


def version_urn(dataset: str, version: str) -> str:
    return "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"opendepot:{dataset}:version:{version}"))


def feed(path: str) -> Any:
    """GET ``path``: a 200 in Atom as the OpenAPI document says; parsed by feedparser."""
    r = get(path)
    assert r["statusCode"] == 200, r
    assert r["headers"]["Content-Type"] == "application/atom+xml; charset=utf-8"
    check_against_openapi(path, "GET", r)
    parsed = feedparser.parse(raw(r))
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    return parsed


def links(entry: Any, rel: str) -> list[tuple[str, str]]:
    return [(link["href"], link["type"]) for link in entry.links if link["rel"] == rel]


@pytest.fixture
def served() -> dict[str, Any]:
    """Two versions of the national test counts (SPF revised them), then one of the hospital
    file, published through the pipeline; the index over a store that counts its reads."""
    p = Pipeline(CountingStore(), MemoryQueue(), SETTINGS, datetime(2026, 11, 29, 8, tzinfo=UTC))
    fra = publish(p, FRA, FRA_FILES)
    hosp = publish(p, HOSP, [HOSP_23])
    index_api.configure(p.store, SETTINGS)
    return {"pipeline": p, "fra": fra, "hosp": hosp}


def test_recent_atom__the_newest_versions_of_every_dataset_as_atom_1_0(
    served: dict[str, Any],
) -> None:
    p, (v1, v2), (h1,) = served["pipeline"], served["fra"], served["hosp"]
    d = feed(RECENT)
    manifest = json.loads(p.published(layout.manifest_key(HOSP)))
    assert d.feed.id == "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, "opendepot:feed:recent"))
    assert d.feed.updated == manifest["published_at"]
    assert links(d.feed, "self") == [(f"{API}{RECENT}", "application/atom+xml")]
    # newest first: the hospital file, then SPF's revision, then the first national file
    assert [e.id for e in d.entries] == [version_urn(HOSP, h1), version_urn(FRA, v2),
                                         version_urn(FRA, v1)]
    assert [e.tags[0]["term"] for e in d.entries] == [HOSP, FRA, FRA]
    hosp, revised, first = d.entries
    assert hosp.title == f"Données hospitalières relatives à l'épidémie de COVID-19: version {h1}"
    assert hosp.updated == hosp.published == manifest["published_at"]
    assert hosp.summary == "Rows: dep 1515, reg 270, fra 15. First version."
    assert first.summary == "Rows: fra 1254. First version."
    stored = json.loads(p.published(layout.changes_key(FRA, v2)))
    assert revised.summary == (f"Rows: fra 2277. Against {v1}: 1023 rows added, 0 removed, "
                               f"1254 changed ({stored['cells']['changed']} cells).")
    # links: the version document, what changed, the changed cells, each file with its length
    version = json.loads(raw(get(f"/api/1/datasets/{FRA}/versions/{v2}/")))
    assert links(revised, "alternate") == [(version["uri"], "application/json")]
    assert links(revised, "related") == [
        (f"{API}/api/1/datasets/{FRA}/versions/{v2}/changes/", "application/json"),
        (f"{FILES}/{layout.changes_csv_key(FRA, v2)}", "text/csv")]
    assert [(e["href"], e["type"], int(e["length"])) for e in revised.enclosures] == [
        (f["url"], f["mime"], f["filesize"]) for f in version["resources"]]
    assert [e["href"] for e in revised.enclosures] == [
        f"{FILES}/{FRA}/{v2}/{FRA}-fra.csv", f"{FILES}/{FRA}/{v2}/{FRA}-fra.parquet"]


def test_versions_atom__one_dataset_by_slug_or_id(served: dict[str, Any]) -> None:
    v1, v2 = served["fra"]
    path = f"/api/1/datasets/{FRA}/versions.atom"
    d = feed(path)
    assert links(d.feed, "self") == [(f"{API}{path}", "application/atom+xml")]
    assert links(d.feed, "alternate") == [(f"{API}/api/1/datasets/{FRA}/", "application/json")]
    assert d.feed.title.endswith(": versions") and d.feed.author == "Santé publique France"
    assert [e.id for e in d.entries] == [version_urn(FRA, v2), version_urn(FRA, v1)]
    recent = {e.id: e for e in feed(RECENT).entries}
    assert [e.summary for e in d.entries] == [recent[e.id].summary for e in d.entries]
    by_id = get(f"/api/1/datasets/{index.dataset_id(FRA)}/versions.atom")
    assert raw(by_id) == raw(get(path))
    r = get("/api/1/datasets/inconnu/versions.atom")
    check_against_openapi("/api/1/datasets/inconnu/versions.atom", "GET", r)
    assert json.loads(raw(r)) == {"status": 404, "message": "dataset 'inconnu' not found"}


def test_dropped_dates__the_entry_warns(served: dict[str, Any]) -> None:
    """The hospital file of 23 March sent again after the 24 March one: the day published
    before is gone, and the entry says so."""
    p, h1 = served["pipeline"], served["hosp"][0]
    h2, h3 = publish(p, HOSP, [HOSP_24, HOSP_23])
    entries = feed(f"/api/1/datasets/{HOSP}/versions.atom").entries
    assert [e.id for e in entries] == [version_urn(HOSP, v) for v in (h3, h2, h1)]
    assert entries[0].summary == (
        f"Rows: dep 1515, reg 270, fra 15. Against {h2}: 0 rows added, 303 removed, 0 changed "
        "(0 cells). WARNING: values published before are missing from this version. "
        "Warning: 1 value(s) of jour published before are missing: 2020-03-23. "
        "Warning: history of jour shrank: 2020-03-18..2020-03-23 -> 2020-03-18..2020-03-22.")
    assert "WARNING" not in entries[1].summary


def test_feeds__etag_304_head_and_read_once_until_a_new_version(served: dict[str, Any]) -> None:
    p = served["pipeline"]
    store: CountingStore = p.store
    first = get(RECENT)
    assert first["headers"]["Cache-Control"] == "public, max-age=60"
    again = get(RECENT, **{"if-none-match": first["headers"]["ETag"]})
    assert (again["statusCode"], again["body"]) == (304, "")
    head = get(RECENT, method="HEAD")
    assert (head["statusCode"], head["body"]) == (200, "")
    gets = dict(store.gets)
    get(RECENT)
    get(f"/api/1/datasets/{FRA}/versions.atom")
    assert store.gets == gets  # catalog, manifests and changes.json: revalidated, not read
    # a new version rewrites the catalog: the feed has it first
    (h2,) = publish(p, HOSP, [HOSP_24])
    assert feed(RECENT).entries[0].id == version_urn(HOSP, h2)


def test_recent_atom__a_broken_manifest_leaves_that_dataset_out(served: dict[str, Any]) -> None:
    p, key = served["pipeline"], layout.manifest_key(HOSP)
    good = p.published(key)
    p.store.put(SETTINGS.published_bucket, key, b"{", "application/json")
    assert [e.tags[0]["term"] for e in feed(RECENT).entries] == [FRA, FRA]
    # repaired (the catalog unchanged): back at once
    p.store.put(SETTINGS.published_bucket, key, good, "application/json")
    assert [e.tags[0]["term"] for e in feed(RECENT).entries] == [HOSP, FRA, FRA]


def test_summary_text__a_version_without_a_recorded_comparison() -> None:
    assert atom.summary_text({"dep": 3}, None, "2026-01-01-00h00m00s") == (
        "Rows: dep 3. Published after 2026-01-01-00h00m00s; no comparison was recorded.")
    assert atom.headline_of({"rows": None, "note": "no previous version"}) is None


def test_feeds__hold_the_newest_feed_size_versions() -> None:
    store = MemoryStore()
    put_catalog(store, catalog_entry())
    days = [f"2026-10-{d:02d}" for d in range(1, 32)] + [f"2026-11-{d:02d}" for d in range(1, 25)]
    manifest = covid_manifest()
    manifest["versions"] = [version_entry(COVID, f"{day}-07h30m00s", f"{day}T07:30:00Z",
                                          [UPLOAD_1]) for day in days]
    put_json(store, f"{COVID}/manifest.json", manifest)
    index_api.configure(store, Settings(published_bucket=BUCKET))
    newest = [version_urn(COVID, f"{day}-07h30m00s") for day in reversed(days)][:atom.FEED_SIZE]
    assert (len(days), atom.FEED_SIZE) == (55, 20)
    for path in (RECENT, f"/api/1/datasets/{COVID}/versions.atom"):
        d = feed(path)
        assert [e.id for e in d.entries] == newest, path
        assert d.feed.updated == "2026-11-24T07:30:00Z"
        # no changes recorded, nothing before the oldest listed is said to be the first
        assert d.entries[-1].summary == (f"Rows: dep 110595, reg 41001, fra 2187. Published "
                                         f"after {days[-atom.FEED_SIZE - 1]}-07h30m00s; no comparison was "
                                         "recorded.")
