"""The static site's home and dataset pages (issue 15, items 1-6, without a browser): real files
published through the pipeline, then ``opendepot.site.build.refresh``; the figures on the pages
are checked against the real files and the published bytes. The publish function asks the site
function for a refresh after a new version (tests/test_handlers.py runs both on moto); a page
whose stored bytes are the same is not put again. The local demo's server serves the site
beside the API."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from conftest import CASES, HOSP, REAL, Pipeline
from functions.publish import app as publish_app
from infra.http_server import LocalHttpApi, SiteFiles
from opendepot import layout
from opendepot.config import Settings
from opendepot.contracts import PublishMessage, SiteMessage
from opendepot.registry import load_registry
from opendepot.site import Page, build, pages, write_pages
from opendepot.storage import MemoryStore
from test_http_server import call
from test_notify import publishing

HOSP_FILES = sorted((REAL / HOSP).glob(f"{HOSP}-*.csv"))  # 2020-11-07, then 2021-03-17
TXAD = "covid-hosp-txad"
TXAD_FILE = REAL / TXAD / "covid-hosp-txad-fra-2022-03-11-19h00.csv"
REJECTED = CASES / "C06-corsica-20.csv"  # Corsica as "20": rejected (CASES.md)


# ------------------------------------------------------------------------------ HTML reading

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        """The text inside, ASCII white space collapsed (narrow no-break spaces kept)."""
        inner = " ".join(c.text() if isinstance(c, Node) else c for c in self.children)
        return re.sub(r"[ \t\r\n]+", " ", inner).strip()

    def all(self, tag: str | None = None, **attrs: str) -> list[Node]:
        """Every descendant with ``tag`` (any when None) and the attributes ``attrs``
        (``data_x`` for ``data-x``, ``class_`` for ``class``, a word of it)."""
        out = []
        for c in self.children:
            if not isinstance(c, Node):
                continue
            if (tag is None or c.tag == tag) and all(_has(c, k, v) for k, v in attrs.items()):
                out.append(c)
            out += c.all(tag, **attrs)
        return out

    def one(self, tag: str | None = None, **attrs: str) -> Node:
        (found,) = self.all(tag, **attrs)
        return found


def _has(node: Node, key: str, value: str) -> bool:
    if key == "class_":
        return value in node.attrs.get("class", "").split()
    return node.attrs.get(key.replace("_", "-")) == value


class _Tree(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(body: bytes) -> Node:
    tree = _Tree()
    tree.feed(body.decode("utf-8"))
    return tree.root


def data_rows(path: Path) -> int:
    with path.open(encoding="utf-8", newline="") as f:
        return sum(1 for _ in csv.reader(f, delimiter=";")) - 1


# ------------------------------------------------------------------------------ fixtures


@dataclass
class Published:
    p: Pipeline
    versions: list[str]
    """The hospital dataset's versions, oldest first."""
    txad: str
    """covid-hosp-txad's version."""


@pytest.fixture
def published(pipeline: Pipeline) -> Published:
    versions = []
    for f in HOSP_FILES:
        assert pipeline.drop(f"{HOSP}/spf/{f.name}", f.read_bytes()).status == "accepted"
        out = pipeline.publish()
        assert out.created and out.version
        versions.append(out.version)
    assert pipeline.drop(f"{TXAD}/spf/{TXAD_FILE.name}", TXAD_FILE.read_bytes()).status \
        == "accepted"
    txad = pipeline.publish(TXAD)
    assert txad.version
    return Published(pipeline, versions, txad.version)


def refresh(
    p: Pipeline, now: datetime, datasets: list[str] | None = None, *, dashboards: bool = False,
) -> dict[str, Node]:
    """The HTML pages written, parsed (without the dashboards unless asked: they take seconds
    and have their own tests)."""
    written = build.refresh(p.store, p.settings, load_registry(), datasets=datasets, now=now,
                            dashboards=dashboards)
    return {page.path: parse(page.body) for page in written.pages
            if page.mime.startswith("text/html")}


def stored(p: Pipeline, path: str) -> bytes:
    return p.published(layout.site_key(path))


# ------------------------------------------------------------------------------ home


def test_home__lists_every_published_dataset_with_its_last_version_and_rows(
    published: Published,
) -> None:
    p = published.p
    html = refresh(p, p.now)
    home = parse(stored(p, ""))  # as written in the bucket, at site/index.html

    rows = {r.attrs["data-dataset"]: r for r in home.all("tr") if "data-dataset" in r.attrs}
    assert sorted(rows) == sorted([HOSP, TXAD])
    assert rows[HOSP].attrs["data-version"] == published.versions[-1]
    assert rows[TXAD].attrs["data-version"] == published.txad
    hosp = rows[HOSP]
    assert "Santé publique France" in hosp.text()
    assert hosp.one("th").one("a", href=f"./datasets/{HOSP}/").text().startswith(
        "Données hospitalières")
    # the last file's data lines, every one published at the departmental level
    dep = hosp.one("span", data_level="dep")
    assert int(dep.attrs["data-rows"]) == data_rows(HOSP_FILES[-1]) == 110595
    assert "110\u202f595" in dep.text()
    manifest = json.loads(p.published(layout.manifest_key(HOSP)))
    published_at = manifest["published_at"]
    assert hosp.one("time").attrs["datetime"] == published_at
    assert "29 novembre 2026" in hosp.one("time").text()
    # stable links: the API's permanent link of each current file, relative to the root
    links = {(a.attrs["data-level"], a.attrs["data-format"]): a.attrs["href"]
             for a in hosp.all("a") if "data-format" in a.attrs}
    assert links == {(r["level"], r["format"]): f"./api/1/datasets/r/{r['id']}"
                     for r in manifest["resources"]}
    assert "" in html and f"datasets/{HOSP}/" in html and f"datasets/{TXAD}/" in html
    assert home.one("html").attrs["lang"] == "fr"
    assert set(refresh(p, p.now, datasets=["no-such-dataset"])) == {""}  # skipped, home only


def test_refresh__builds_the_dashboards_of_the_datasets_it_renders_after_their_pages(
    published: Published, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opendepot.site import dashboards

    asked: list[set[str] | None] = []

    def dashboard_batches(store: Any, settings: Any, registry: Any,
                          changed: set[str] | None) -> Iterator[list[Page]]:
        asked.append(changed)
        if changed == {TXAD}:
            raise RuntimeError("a dashboard that cannot be built")
        yield [Page("dashboards/epidemic/", b"<!doctype html><title>x</title>")]
        yield [Page("dashboards/epidemic/data/index.json", b"{}", "application/json")]

    monkeypatch.setattr(dashboards, "dashboard_batches", dashboard_batches)
    p = published.p
    one = build.refresh(p.store, p.settings, load_registry(), datasets=[HOSP], now=p.now)
    every = build.refresh(p.store, p.settings, load_registry(), datasets=None, now=p.now)
    p.store.delete(p.settings.published_bucket, layout.site_key(""))
    with pytest.raises(RuntimeError):
        build.refresh(p.store, p.settings, load_registry(), datasets=[TXAD], now=p.now)

    assert asked == [{HOSP}, None, {TXAD}]
    assert [x for x in one.paths if not x.startswith("assets/")] == [
        "", f"datasets/{HOSP}/", "dashboards/epidemic/", "dashboards/epidemic/data/index.json"]
    assert one.dashboards == ("dashboards/epidemic/", "dashboards/epidemic/data/index.json")
    assert set(every.paths) >= {"", f"datasets/{HOSP}/", f"datasets/{TXAD}/"}
    assert stored(p, "dashboards/epidemic/") == b"<!doctype html><title>x</title>"
    # the pages for people were written before the dashboards failed
    assert parse(stored(p, "")).one("tr", data_dataset=TXAD).attrs["data-version"] == \
        published.txad


def test_freshness__daily_turns_late_two_days_after_the_last_version(
    published: Published,
) -> None:
    p = published.p
    manifest = json.loads(p.published(layout.manifest_key(HOSP)))
    last = datetime.fromisoformat(manifest["published_at"].replace("Z", "+00:00"))

    on_time = refresh(p, last + timedelta(days=2))[""]
    late = refresh(p, last + timedelta(days=2, seconds=1))[""]

    assert on_time.one("tr", data_dataset=HOSP).attrs["data-freshness"] == "ok"
    row = late.one("tr", data_dataset=HOSP)
    assert row.attrs["data-freshness"] == "late"
    assert row.one("span", class_="badge").text() == "en retard"
    states = [r.attrs["data-freshness"] for r in late.all("tr") if "data-dataset" in r.attrs]
    assert f"2 jeux de données, dont {states.count('late')} en retard" in late.text()
    legend = late.one("ul", class_="legend").text()
    assert "quotidienne : en retard quand la dernière version a plus de 2 jours" in legend
    assert pages.late_days("weekly") == 8 and pages.late_days("irregular") is None


# ------------------------------------------------------------------------------ dataset page


def test_dataset_page__schema_resources_with_the_published_sizes_and_checksums_and_versions(
    published: Published,
) -> None:
    p = published.p
    page = refresh(p, p.now, datasets=[HOSP])[f"datasets/{HOSP}/"]
    assert parse(stored(p, f"datasets/{HOSP}/")).text() == page.text()
    manifest = json.loads(p.published(layout.manifest_key(HOSP)))

    hosp = page.one("table", class_="schema", data_level="dep").one("tr", data_field="hosp")
    cells = [c.text() for c in hosp.children if isinstance(c, Node)]
    assert cells[:3] == ["hosp", "integer", "Personnes hospitalisées"]
    assert "minimum : 0" in cells[4]
    sexe = page.one("table", data_level="dep").one("tr", data_field="sexe").text()
    assert "obligatoire" in sexe and "valeurs : 0, 1, 2" in sexe
    # every current file: its real size and sha256, computed here from the published bytes
    rows = page.one("table", class_="resources").all("tr", data_format="csv") + \
        page.one("table", class_="resources").all("tr", data_format="parquet")
    assert len(rows) == len(manifest["resources"]) == 6
    for r in manifest["resources"]:
        row = page.one("tr", data_resource=r["id"])
        body = p.published(r["path"])
        assert int(row.one("td", class_="num", data_bytes=str(len(body))).attrs["data-bytes"]) \
            == len(body)
        assert row.one("code", class_="checksum").text() == hashlib.sha256(body).hexdigest()
        assert row.one("a", class_="latest").attrs["href"] == f"../../api/1/datasets/r/{r['id']}"
    dep_csv = page.one("tr", data_level="dep", data_format="csv")
    assert dep_csv.one("td", data_bytes="3742202").text() == "3,7 Mo"
    # the versions, newest first, with what each changed
    versions = [r.attrs["data-version"] for r in page.one("table", class_="versions").all("tr")
                if "data-version" in r.attrs]
    assert versions == published.versions[::-1]
    newest = page.one("tr", data_version=published.versions[-1]).text()
    changes = json.loads(p.published(layout.changes_key(HOSP, published.versions[-1])))
    added = changes["rows"]["added"]
    assert added == 110595 - 71205 and f"{added:,}".replace(",", "\u202f") in newest
    assert "lignes ajoutées" in newest
    assert "Première version." in page.one("tr", data_version=published.versions[0]).text()
    facts = page.one("dl", class_="facts").text()
    assert "Licence Ouverte / Open Licence version 2.0" in facts and "quotidienne" in facts
    assert "du 18 mars 2020 au 17 mars 2021" in facts


def test_dataset_page__validation_of_the_ten_newest_uploads_per_dataset(
    published: Published,
) -> None:
    p = published.p
    rejected = [p.drop(f"{HOSP}/spf/corsica-{i:02}.csv", REJECTED.read_bytes())
                for i in range(11)]
    assert {r.status for r in rejected} == {"rejected"}

    page = refresh(p, p.now, datasets=[HOSP])[f"datasets/{HOSP}/"]

    uploads = page.one("table", class_="uploads").all("tr", data_producer="spf")
    assert len(uploads) == build.REPORTS_SHOWN == 10
    assert [u.attrs["data-upload"] for u in uploads] == [r.upload_id for r in rejected][:0:-1]
    assert {u.attrs["data-status"] for u in uploads} == {"rejected"}
    assert uploads[0].one("span", class_="badge").text() == "rejetée"
    assert "corsica-10.csv" in uploads[0].text()


def test_dataset_page__lists_accepted_uploads_with_their_rows_and_warnings(
    published: Published,
) -> None:
    p = published.p
    page = refresh(p, p.now, datasets=[HOSP])[f"datasets/{HOSP}/"]
    reports = {o.key for o in p.store.list(p.settings.internal_bucket, f"reports/{HOSP}/")
               if o.key.endswith(".json")}

    uploads = page.one("table", class_="uploads").all("tr", data_status="accepted")
    assert len(uploads) == 2 == len(reports)
    newest = json.loads(p.store.get(p.settings.internal_bucket, max(reports)))
    assert uploads[0].attrs["data-upload"] == newest["opendepot"]["upload_id"]
    assert HOSP_FILES[-1].name in uploads[0].text()
    assert "110\u202f595" in uploads[0].text()  # the file's data lines


# ------------------------------------------------------------------------------ publish hook


class Record:
    def __init__(self, dataset: str) -> None:
        self.body = json.dumps(PublishMessage(dataset, "x").to_json())


def test_publish_function__asks_for_the_site_once_per_new_version(pipeline: Pipeline) -> None:
    pipeline.settings = replace(pipeline.settings, site_queue_url="memory://site")
    f = HOSP_FILES[0]
    assert pipeline.drop(f"{HOSP}/spf/{f.name}", f.read_bytes()).status == "accepted"

    with publishing(pipeline):
        publish_app.record_handler(Record(HOSP))  # type: ignore[arg-type]
        publish_app.record_handler(Record(HOSP))  # type: ignore[arg-type]  # nothing new

    version = json.loads(pipeline.published(layout.manifest_key(HOSP)))["version"]
    site = [(body, group) for url, body, group in pipeline.queue.sent if url == "memory://site"]
    assert site == [({"dataset": HOSP, "version": version}, None)]  # standard queue: no group
    assert SiteMessage.from_json(site[0][0]) == SiteMessage(HOSP, version)
    assert pipeline.store.head(pipeline.settings.published_bucket, "site/index.html") is None


def test_publish_function__without_a_site_queue_sends_no_site_request(pipeline: Pipeline) -> None:
    f = HOSP_FILES[0]
    assert pipeline.drop(f"{HOSP}/spf/{f.name}", f.read_bytes()).status == "accepted"
    assert pipeline.settings.site_queue_url == ""

    with publishing(pipeline):
        publish_app.record_handler(Record(HOSP))  # type: ignore[arg-type]

    assert json.loads(pipeline.published(layout.manifest_key(HOSP)))["version"]
    assert all("dataset" in body and "version" not in body for _, body, _ in pipeline.queue.sent)


class CountingPuts(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.puts: list[str] = []

    def put(self, bucket: str, key: str, body: Any, content_type: str,  # type: ignore[override]
            **kwargs: Any) -> str:
        self.puts.append(key)
        return super().put(bucket, key, body, content_type, **kwargs)


def test_page_writer__puts_only_the_pages_whose_bytes_changed() -> None:
    store, settings = CountingPuts(), Settings()
    pages = [Page("", b"<p>home</p>"), Page("datasets/a/", b"<p>a</p>"),
             Page("assets/site.css", b"body{}", "text/css; charset=utf-8")]
    first = write_pages(store, settings, pages)
    stored = store.head(settings.published_bucket, "site/assets/site.css")
    store.puts.clear()

    second = write_pages(store, settings, [Page("", b"<p>home, later</p>"), *pages[1:]])

    assert (first.written, first.unchanged) == (3, 0)
    assert (second.written, second.unchanged) == (1, 2)
    assert store.puts == ["site/index.html"]
    assert store.head(settings.published_bucket, "site/assets/site.css") == stored
    assert store.get(settings.published_bucket, "site/index.html") == b"<p>home, later</p>"


# ------------------------------------------------------------------------------ local server


def test_local_server__serves_the_site_beside_the_api(published: Published) -> None:
    p = published.p
    refresh(p, p.now)
    calls = []

    def api(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.append(event["rawPath"])
        return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": "{}"}

    with LocalHttpApi(api, site=SiteFiles(p.store, p.settings.published_bucket)) as server:
        def get(path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
            return call(server, method, path)

        home = get("/")
        page = get(f"/datasets/{HOSP}/")
        folder = get(f"/datasets/{HOSP}")
        shared = get(f"/datasets/{HOSP}?area=dep-75&date=2020-11-01")
        css = get("/assets/site.css")
        missing = get("/datasets/nope/")
        head = get("/", "HEAD")
        api_answer = get("/api/1/datasets/")

    assert home[0] == 200 and home[1]["content-type"] == "text/html; charset=utf-8"
    assert home[2] == stored(p, "")
    assert page[0] == 200 and page[1]["content-type"].startswith("text/html")
    assert parse(page[2]).one("h1").text().startswith("Données hospitalières")
    assert folder[0] == 301 and folder[1]["location"] == f"/datasets/{HOSP}/"
    # a shared view keeps its query through the redirect
    assert shared[0] == 301
    assert shared[1]["location"] == f"/datasets/{HOSP}/?area=dep-75&date=2020-11-01"
    assert css[0] == 200 and css[1]["content-type"].startswith("text/css")
    assert missing[0] == 404 and missing[1]["content-type"].startswith("text/html")
    assert "Page introuvable" in missing[2].decode("utf-8")
    assert head[0] == 200 and head[2] == b"" and int(head[1]["content-length"]) == len(home[2])
    assert api_answer[0] == 200 and calls == ["/api/1/datasets/"]


def test_human_bytes__french_decimal_units() -> None:
    assert [pages.human_bytes(n) for n in (999, 47148, 3742202, 2_500_000_000)] == [
        "999 o", "47,1 ko", "3,7 Mo", "2,5 Go"]
