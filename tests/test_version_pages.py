"""Versions paged out of the manifest (issue 14, item 1): a dataset published every day keeps a
manifest of bounded size, its older versions moved to immutable pages, and every reader (the
versions list, one version, its changes, time travel, the feeds, the announcements) answers as
it would with every version inline. The national test counts of SPF (real rows), one figure
revised each day, published through the pipeline more than ``2 * VERSION_PAGE_SIZE`` times."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest

from conftest import REAL, CountingStore, Pipeline
from functions.index_api import app as index_api
from opendepot import atom, contracts, index, layout, notify, version_pages
from opendepot.contracts import Manifest, VersionsPage
from opendepot.storage import MemoryQueue, MemoryStore, ObjectInfo
from test_changes_api import FRA
from test_index_api import API, body, raw
from test_index_api_contract import SETTINGS, check_against_openapi, get

K = contracts.VERSION_PAGE_SIZE
DAYS = 2 * K + 11
"""Publications: one page out (the first ``K`` versions), ``K + 11`` versions inline."""
START = datetime(2021, 1, 1, 9, tzinfo=UTC)
SOURCE = REAL / FRA / "paugier-mirror" / "2020-09-07_5c325db" / "sp-pos-quot-france.csv"
BUCKET = SETTINGS.published_bucket
CSV = index.resource_id(FRA, "fra", "csv")


class PageCountingStore(CountingStore):
    """Counts ``get``s per key, and reads of pages of versions."""

    def page_reads(self) -> int:
        return sum(n for k, n in self.gets.items() if k.startswith(f"{FRA}/versions/"))


def day_file(day: int) -> bytes:
    """The first day of the real file (11 age classes), its first row's positive tests revised
    by ``day`` (women's and total, so ``P = P_f + P_h`` still holds)."""
    header, *rows = SOURCE.read_text("utf-8").splitlines()[:12]
    first = rows[0].split(";")
    first[2], first[4] = str(int(first[2]) + day), str(int(first[4]) + day)
    return "\n".join([header, ";".join(first), *rows[1:]]).encode("utf-8") + b"\n"


def publish_days(
    p: Pipeline, days: range, sizes: list[int] | None = None
) -> list[str]:
    """Publish one revision on each of ``days`` (from ``START``); the versions, oldest first
    (and each manifest's size, appended to ``sizes``)."""
    versions = []
    for day in days:
        p.now = START + timedelta(days=day)
        assert p.drop(f"{FRA}/spf/day-{day:04d}.csv", day_file(day)).status == "accepted"
        outcome = p.publish(FRA)
        assert outcome.created and outcome.version is not None
        versions.append(outcome.version)
        if sizes is not None:
            sizes.append(len(p.published(layout.manifest_key(FRA))))
    return versions


def stored_manifest(store: MemoryStore) -> dict[str, Any]:
    return json.loads(store.get(BUCKET, layout.manifest_key(FRA)))


def inline_copy(store: MemoryStore) -> PageCountingStore:
    """The published bucket as it would be with every version inline: the same objects, the
    manifest's pages folded back into its ``versions`` and removed."""
    copy, manifest = PageCountingStore(), stored_manifest(store)
    for o in store.list(BUCKET, ""):
        if not o.key.startswith(f"{FRA}/versions/"):
            copy.put(BUCKET, o.key, store.get(BUCKET, o.key), o.content_type or "text/plain")
    for page in manifest.pop("version_pages"):
        manifest["versions"] += json.loads(store.get(BUCKET, page["path"]))["versions"]
    copy.put(BUCKET, layout.manifest_key(FRA), json.dumps(manifest).encode(), "application/json")
    return copy


@pytest.fixture(scope="module")
def daily() -> dict[str, Any]:
    """``DAYS`` daily versions, each manifest's size in bytes, and the same bucket with every
    version inline."""
    p = Pipeline(PageCountingStore(), MemoryQueue(), SETTINGS, START)
    sizes: list[int] = []
    versions = publish_days(p, range(DAYS), sizes)
    return {"pipeline": p, "versions": versions, "sizes": sizes, "inline": inline_copy(p.store)}


def answers(store: MemoryStore, *paths: str) -> list[Any]:
    """What the index answers (JSON bodies, or the text of a feed, or a redirect's target)
    for ``paths`` (``path?query``), served from ``store`` by a fresh reader."""
    index_api.configure(store, SETTINGS, clock=lambda: START + timedelta(days=DAYS))
    out = []
    for target in paths:
        path, _, query = target.partition("?")
        r = get(path, query)
        check_against_openapi(path, "GET", r)
        if r["statusCode"] == 302:
            out.append(r["headers"]["Location"])
        else:
            out.append(raw(r).decode("utf-8") if path.endswith(".atom") else body(r))
    return out


# --- the manifest -------------------------------------------------------------------------------


def test_page_size__every_feed_entry_and_the_version_before_it_stay_inline() -> None:
    assert K >= atom.FEED_SIZE


def test_manifest__at_most_2k_inline__the_oldest_k_in_one_immutable_page(
    daily: dict[str, Any],
) -> None:
    p, versions = daily["pipeline"], daily["versions"]
    m = stored_manifest(p.store)
    newest_first = versions[::-1]
    assert [v["version"] for v in m["versions"]] == newest_first[: DAYS - K]
    first, last = versions[0], versions[K - 1]
    key = f"{FRA}/versions/{first}--{last}.json"
    assert key == layout.versions_page_key(FRA, first, last)
    assert m["version_pages"] == [{"path": key, "first": first, "last": last, "count": K}]
    page = json.loads(p.published(key))
    assert page["dataset"] == FRA
    assert [v["version"] for v in page["versions"]] == newest_first[DAYS - K:]
    # the entries moved as the manifest had them: the first version's revised figure (day 0)
    oldest = page["versions"][-1]
    assert (oldest["published_at"], oldest["rows"]) == ("2021-01-01T09:01:05Z", {"fra": 11})
    assert oldest["changes"]["previous"] is None
    info = p.store.head(BUCKET, key)
    assert isinstance(info, ObjectInfo) and info.cache_control is not None
    assert "immutable" in info.cache_control
    parsed = Manifest.from_json(m)
    assert parsed.version_count == DAYS and len(parsed.versions) == DAYS - K


def test_manifest__size_bounded_whatever_the_history(daily: dict[str, Any]) -> None:
    sizes = daily["sizes"]
    biggest = sizes[2 * K - 1]  # 2K versions inline: the most a manifest ever holds
    assert max(sizes) == biggest
    assert sizes[2 * K] < sizes[K] + 400  # K + 1 inline again, plus the page's entry
    assert sizes[-1] < biggest
    # ...while the history grew: with every version inline, the manifest would be much bigger
    inline = len(daily["inline"].get(BUCKET, layout.manifest_key(FRA)))  # compact JSON
    assert inline > 1.4 * len(json.dumps(stored_manifest(daily["pipeline"].store)))


def test_old_manifest__without_version_pages_parses_and_round_trips(
    daily: dict[str, Any],
) -> None:
    old = stored_manifest(daily["inline"])  # every version inline, no "version_pages"
    assert "version_pages" not in old
    parsed = Manifest.from_json(old)
    assert (parsed.version_pages, len(parsed.versions)) == ((), DAYS)
    assert parsed.to_json() == old
    # its next publication pages it out K at a time, oldest first, the same way each time
    paged, pages = version_pages.page_out(parsed, size=10)
    assert len(paged.versions) == 11 and [len(p.versions) for p in pages] == [10] * (
        (DAYS - 11) // 10)
    assert version_pages.page_out(parsed, size=10) == (paged, pages)
    everything = [v.version for p in pages for v in p.versions]
    assert [v.version for v in paged.versions] + everything == [v["version"] for v in old[
        "versions"]]
    assert [e.path for e in paged.version_pages] == [version_pages.page_key(p) for p in pages]
    assert VersionsPage.from_json(json.loads(version_pages.page_bytes(pages[0]))) == pages[0]
    assert version_pages.page_out(paged, size=10) == (paged, [])


# --- the readers ----------------------------------------------------------------------------------


def test_versions_list__every_version_as_if_inline(daily: dict[str, Any]) -> None:
    base = f"/api/1/datasets/{FRA}/versions/"
    paths = [f"{base}?page_size=100&page=1", f"{base}?page_size=100&page=2",
             *(f"{base}{quote(v)}/" for v in daily["versions"][:: K // 5])]
    paged = answers(daily["pipeline"].store, *paths)
    assert paged == answers(daily["inline"], *paths)
    listed = paged[0]["data"] + paged[1]["data"]
    assert paged[0]["total"] == DAYS
    assert [d["version"] for d in listed] == daily["versions"][::-1]
    first = listed[-1]
    assert (first["published_at"], first["rows"], first["uploads"][0]["new"]) == (
        "2021-01-01T09:01:05Z", {"fra": 11}, True)
    assert listed[-2]["changes"] == f"{API}{base}{quote(daily['versions'][1])}/changes/"


def test_time_travel__to_the_first_versions_redirects_to_their_files(
    daily: dict[str, Any],
) -> None:
    v = daily["versions"]
    moments = ["2021-01-01T09:01:05Z", "2021-01-02T00:00:00Z", "2021-01-20",
               f"{(START + timedelta(days=K)).date()}T09:00:00Z", "2030-01-01"]
    paths = [f"/api/1/datasets/r/{CSV}?at={quote(m)}" for m in moments]
    store = daily["pipeline"].store
    found = answers(store, *paths)
    assert found == answers(daily["inline"], *paths)
    assert found == [f"{SETTINGS.public_base_url}/{FRA}/{version}/{FRA}-fra.csv"
                     for version in (v[0], v[0], v[18], v[K - 1], v[-1])]
    # a moment when an inline version was in force reads no page
    store.gets.clear()
    later = f"{(START + timedelta(days=K + 1)).date()}T09:00:00Z"
    assert answers(store, f"/api/1/datasets/r/{CSV}?at={quote(later)}") == [
        f"{SETTINGS.public_base_url}/{FRA}/{v[K]}/{FRA}-fra.csv"]
    assert store.page_reads() == 0


def test_changes__of_the_first_versions_and_of_the_oldest_inline(daily: dict[str, Any]) -> None:
    v = daily["versions"]
    paths = [f"/api/1/datasets/{FRA}/versions/{quote(version)}/changes/"
             for version in (v[0], v[1], v[K - 1], v[K], v[K + 1], v[-1])]
    found = answers(daily["pipeline"].store, *paths)
    assert found == answers(daily["inline"], *paths)
    assert (found[0]["previous"], found[0]["note"]) == (None, "no previous version")
    assert [d["previous"] for d in found[1:]] == [v[0], v[K - 2], v[K - 1], v[K], v[-2]]
    # each later day revised the first row's figures by one: one row changed, no row added
    assert found[1]["rows"] == {"before": 11, "after": 11, "added": 0, "removed": 0,
                                "changed": 1, "unchanged": 10}
    assert found[3]["rows"] == found[1]["rows"]


def test_feeds__the_same_entries__no_page_read(daily: dict[str, Any]) -> None:
    paths = [f"/api/1/datasets/{FRA}/versions.atom", "/api/1/datasets/recent.atom"]
    store = daily["pipeline"].store
    store.gets.clear()
    found = answers(store, *paths)
    assert store.page_reads() == 0
    assert found == answers(daily["inline"], *paths)
    newest = daily["versions"][::-1][: atom.FEED_SIZE + 1]
    assert found[0].count("<entry>") == atom.FEED_SIZE
    # each entry links to its version, the last one's text names the version before it
    assert all(f"versions/{quote(v)}/" in found[0] for v in newest[:-1])
    assert f"versions/{quote(newest[-1])}/" not in found[0] and newest[-1] in found[0]


def test_announcement__of_a_paged_out_version_as_if_inline(daily: dict[str, Any]) -> None:
    v, title = daily["versions"], "Tests"
    sent: dict[str, list[dict[str, Any]]] = {}
    for name in ("pipeline", "inline"):
        store = daily[name].store if name == "pipeline" else daily[name]
        notifier = notify.MemoryNotifier()
        for version in (v[0], v[K - 1], v[K], v[-1]):
            notify.announce(notifier, store, SETTINGS, title, FRA, version, None)
        sent[name] = [a.body for a in notifier.sent]
    assert sent["pipeline"] == sent["inline"]
    assert [b["previous"] for b in sent["pipeline"]] == [None, v[K - 2], v[K - 1], v[-2]]


# --- a small page size: several pages, a crash between a page and the switch -------------------


class CrashOnce(MemoryStore):
    """Fails the first manifest write after a page was written (a dying process)."""

    def __init__(self) -> None:
        super().__init__()
        self.armed, self.crashed = False, False

    def put(self, bucket: str, key: str, body: Any, *args: Any, **kw: Any) -> str:
        if key.startswith(f"{FRA}/versions/"):
            self.armed = True
        elif self.armed and not self.crashed and key == layout.manifest_key(FRA):
            self.crashed = True
            raise SystemExit("crash before the switch")
        return super().put(bucket, key, body, *args, **kw)


def test_small_pages__crash_after_a_page__retry_rewrites_it__readers_as_if_inline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(contracts, "VERSION_PAGE_SIZE", 3)
    p = Pipeline(CrashOnce(), MemoryQueue(), SETTINGS, START)
    versions = publish_days(p, range(6))
    p.now = START + timedelta(days=6)
    assert p.drop(f"{FRA}/spf/day-0006.csv", day_file(6)).status == "accepted"
    with pytest.raises(SystemExit):
        p.publish(FRA)  # the page of the 3 oldest versions is written, the manifest is not
    stale = stored_manifest(p.store)
    assert len(stale["versions"]) == 6 and "version_pages" not in stale
    assert [o.key for o in p.store.list(BUCKET, f"{FRA}/versions/")] == [
        layout.versions_page_key(FRA, versions[0], versions[2])]
    outcome = p.publish(FRA)  # the retry: the same page, the same bytes, then the switch
    assert outcome.created and outcome.version is not None
    versions += [outcome.version, *publish_days(p, range(7, 13))]
    m = stored_manifest(p.store)
    assert [e["count"] for e in m["version_pages"]] == [3, 3, 3]
    assert [e["first"] for e in m["version_pages"]] == [versions[6], versions[3], versions[0]]
    assert len(m["versions"]) == 4 and m["versions"][0]["version"] == versions[-1]
    # fewer than FEED_SIZE + 1 inline: the feed reads the pages, and says the same
    base = f"/api/1/datasets/{FRA}/versions/"
    paths = [f"{base}?page_size=100", f"/api/1/datasets/{FRA}/versions.atom",
             f"{base}{quote(versions[3])}/changes/", f"/api/1/datasets/r/{CSV}?at=2021-01-02"]
    found = answers(p.store, *paths)
    assert found == answers(inline_copy(p.store), *paths)
    assert [d["version"] for d in found[0]["data"]] == versions[::-1]
    assert found[1].count("<entry>") == 13 and found[2]["previous"] == versions[2]
    assert found[3].endswith(f"/{versions[0]}/{FRA}-fra.csv")

