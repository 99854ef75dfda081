"""Dashboards declared, not coded (issue 15 items 4, 5, 7): the real files published through the
pipeline, then ``dashboard_pages``; figures checked against the real source files (pandas), the
published CSVs, and each chart's CSV against its HTML table. No browser here (tests/browser/)."""

from __future__ import annotations

import copy
import io
import json
import posixpath
import re
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from conftest import REAL, Pipeline
from opendepot.config import Settings
from opendepot.publication import read_manifest
from opendepot.registry import load_registry
from opendepot.site import Page, assets
from opendepot.site.dashboards import (
    DashboardError,
    check_against,
    dashboard_batches,
    dashboard_pages,
    load_dashboards,
    parse_dashboard,
)
from opendepot.site.dashboards_data import cell, differences, rolling
from opendepot.storage import MemoryQueue, MemoryStore

HOSP = "donnees-hospitalieres-covid19"
STOCK = REAL / HOSP / "donnees-hospitalieres-covid19-2021-03-17-17h03.csv"
FONDS = REAL / "fonds-solidarite"
DEP_FILE = FONDS / "fonds-solidarite-volet-1-departemental-naf-2022-06-29.csv"
REG_FILE = FONDS / "fonds-solidarite-volet-1-regional-naf-2022-06-29.csv"
REAL_FILES = [  # (dataset, producer, file): the newest real file of each, per infra/real_sources
    (HOSP, "spf", STOCK),
    ("sp-pos-quot-fra", "spf", REAL / "sp-pos-quot-fra/paugier-mirror/2022-03-21_194f6d9/sp-pos-quot-france.csv"),
    ("sp-pos-quot-dep", "spf", REAL / "sp-pos-quot-dep/paugier-mirror/2020-09-06_e948df2/sp-pos-quot-dep.csv"),
    ("chiffres-cles", "opencovid19-fr", REAL / "opencovid19-fr/dist/2020-10-31_9c91c00/chiffres-cles.csv"),
    ("fonds-solidarite", "dgfip", DEP_FILE),
    ("fonds-solidarite-regional", "dgfip", REG_FILE),
]
WEIGHT_LIMIT = 1_000_000


@pytest.fixture(scope="module")
def published() -> Pipeline:
    """The real files published once for the module (the ``pipeline`` fixture's setup, module
    scoped: publishing and building every page takes some 25 s)."""
    p = Pipeline(MemoryStore(), MemoryQueue(), Settings(publish_queue_url="memory://publish.fifo"),
                 datetime(2026, 11, 29, 8, 0, tzinfo=UTC))
    for dataset, producer, path in REAL_FILES:
        outcome = p.drop(f"{dataset}/{producer}/{path.name}", path.read_bytes())
        assert outcome.status == "accepted", outcome
        p.publish(dataset)
    return p


@pytest.fixture(scope="module")
def site(published: Pipeline) -> dict[str, Page]:
    pages = dashboard_pages(published.store, published.settings, load_registry(), None)
    return {p.path: p for p in pages}


class Doc(HTMLParser):
    """The parts of a dashboard page the tests read: tiles, chart figures (CSV link, table
    rows), the SVG paths of the charts."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tiles: list[dict[str, Any]] = []
        self.charts: dict[str, dict[str, Any]] = {}
        self.links: list[str] = []
        self._chart: dict[str, Any] | None = None
        self._tile: dict[str, Any] | None = None
        self._span: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._in_table = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        cls = a.get("class", "").split()
        if tag == "a":
            self.links.append(a.get("href", ""))
        if tag == "li" and "tile" in cls:
            self._tile = {**a, "value": None, "delta": None, "text": ""}
            self.tiles.append(self._tile)
        elif tag == "span" and self._tile is not None and cls and cls[0] in ("value", "delta"):
            self._span = cls[0]
            self._tile[cls[0]] = a.get("data-value")
        elif tag == "figure" and "chart" in cls:
            self._chart = {"rows": [], "header": [], "paths": {}}
            self.charts[a["data-chart"]] = self._chart
        elif self._chart is not None:
            if tag == "a" and "csv" in cls:
                self._chart["csv"] = a["href"]
            elif tag == "path":
                self._chart["paths"][a.get("class", "")] = a.get("d", "")
            elif tag == "table" and "chart-data" in cls:
                self._in_table = True
            elif tag == "tr" and self._in_table:
                self._row = []
            elif tag in ("td", "th") and self._row is not None:
                self._cell = []

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._span == "value" and self._tile is not None:
            self._tile["text"] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "span":
            self._span = None
        elif tag == "li":
            self._tile = None
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._chart is not None:
            key = "rows" if self._chart["header"] else "header"
            self._chart[key] = self._chart[key] + [self._row] if key == "rows" else self._row
            self._row = None
        elif tag == "table":
            self._in_table = False
        elif tag == "figure":
            self._chart = None


def page_doc(site: dict[str, Page], path: str) -> Doc:
    return Doc(site[path].body.decode("utf-8"))


def resolve(page_path: str, href: str) -> str:
    """The site path a relative ``href`` of the page at ``page_path`` points at."""
    folder = page_path if page_path.endswith("/") else page_path.rsplit("/", 1)[0] + "/"
    return posixpath.normpath(posixpath.join(folder, href))


def tile(doc: Doc, indicator: str, level: str) -> dict[str, Any]:
    found = [t for t in doc.tiles if t["data-indicator"] == indicator and t["data-level"] == level]
    assert len(found) == 1, (indicator, level, doc.tiles)
    return found[0]


def real_stock() -> pd.DataFrame:
    return pd.read_csv(STOCK, sep=";", dtype={"dep": str, "sexe": int})


def published_csv(p: Pipeline, dataset: str, level: str) -> pd.DataFrame:
    manifest, _ = read_manifest(p.store, p.settings, dataset)
    assert manifest is not None
    path = next(r.path for r in manifest.resources if r.level == level and r.format == "csv")
    return pd.read_csv(io.BytesIO(p.published(path)), sep=";", dtype=str)


def test_national_hosp_tile__equals_the_published_fra_csv_and_the_real_file_on_its_last_day(
        published: Pipeline, site: dict[str, Page]) -> None:
    real = real_stock()
    total = real[real["sexe"] == 0]
    last = total["jour"].max()
    before = (date.fromisoformat(last) - timedelta(days=1)).isoformat()
    fra = published_csv(published, HOSP, "fra")
    expected = fra[(fra["sexe"] == "0") & (fra["jour"] == last)]["hosp"].tolist()
    assert expected == [str(total[total["jour"] == last]["hosp"].sum())]
    for path in ("dashboards/epidemic/", "dashboards/epidemic/fra/"):
        t = tile(page_doc(site, path), "hosp", "fra")
        assert (t["data-date"], t["data-area"], t["value"]) == (last, "FR", expected[0])
        assert re.sub(r"\D", "", t["text"]) == expected[0]
        assert int(t["delta"]) == (total[total["jour"] == last]["hosp"].sum()
                                   - total[total["jour"] == before]["hosp"].sum())


def test_department_tile__is_the_sexe_0_row__never_sexe_0_plus_its_parts(
        site: dict[str, Page]) -> None:
    real = real_stock()
    last = real["jour"].max()
    paris = real[(real["dep"] == "75") & (real["jour"] == last)].set_index("sexe")["hosp"]
    t = tile(page_doc(site, "dashboards/epidemic/dep-75/"), "hosp", "dep")
    assert int(t["value"]) == paris[0] != paris.sum()


def test_a_source_without_its_total_filter__is_refused_naming_the_field(
        published: Pipeline) -> None:
    data = json.loads((resources.files("opendepot.datasets") / "dashboards" / "epidemic.json")
                      .read_text("utf-8"))
    data["sources"]["hospital"]["filters"] = {}
    dash = parse_dashboard(data, "epidemic.json")
    with pytest.raises(DashboardError, match=r"epidemic\.json: sources\.hospital\.filters"):
        dashboard_pages(published.store, published.settings, load_registry(), {HOSP},
                        dashboards=(dash,))


def test_chart_csvs__equal_their_html_tables(site: dict[str, Page]) -> None:
    checked = 0
    for path in ("dashboards/epidemic/", "dashboards/epidemic/reg-11/",
                 "dashboards/business-support/", "dashboards/business-support/dep-75/"):
        doc = page_doc(site, path)
        assert doc.charts, path
        for name, chart in doc.charts.items():
            body = site[resolve(path, chart["csv"])].body.decode("utf-8")
            lines = [line.split(";") for line in body.splitlines()]
            assert lines[0] == chart["header"], (path, name)
            assert lines[1:] == chart["rows"] and chart["rows"], (path, name)
            checked += 1
    assert checked >= 10


def test_missing_days__are_empty_cells_and_gaps__never_zeros(
        published: Pipeline, site: dict[str, Page]) -> None:
    cc = published_csv(published, "chiffres-cles", "consolide")
    fra = cc[cc["maille_code"] == "FRA"].set_index("date")["cas_confirmes_ehpad"]
    doc = page_doc(site, "dashboards/epidemic/")
    chart = doc.charts["cas_confirmes_ehpad"]
    rows = {r[0]: r for r in chart["rows"]}
    days = sorted(rows)
    missing = [d for d in days if d not in fra.index or pd.isna(fra.get(d))]
    assert missing, "the real FRA series has days without a nursing-home figure"
    for d in missing:
        assert rows[d][1:] == ["", "", ""], rows[d]
    for d in days:
        if d not in missing:
            assert rows[d][1] == fra[d]
    # the day after a missing day has no difference, and the line is cut (several 'M' moves)
    after = (date.fromisoformat(missing[0]) + timedelta(days=1)).isoformat()
    if after in rows:
        assert rows[after][2] == ""
    assert chart["paths"]["line"].count("M") > 1


def test_differences_and_averages__need_every_day() -> None:
    assert differences([10, 12, None, 15, 20]) == [None, 2, None, None, 5]
    assert rolling([1, 1, 1, 1, 1, 1, 1, None, 2]) == [None] * 6 + [1.0, None, None]


def test_business_support_france__companies_absent__aids_and_amount_the_regional_file_sum(
        site: dict[str, Page]) -> None:
    reg = pd.read_csv(REG_FILE, dtype={"reg": str})
    dep = pd.read_csv(DEP_FILE, dtype={"dep": str, "reg": str})
    doc = page_doc(site, "dashboards/business-support/")
    companies = tile(doc, "nombre_entreprises", "fra")
    assert companies["value"] == "" and companies["text"] == "–"
    html = site["dashboards/business-support/"].body.decode("utf-8")
    assert ("non publié : une entreprise active dans plusieurs régions y serait comptée "
            "plusieurs fois") in html
    assert str(dep["nombre_entreprises"].sum()) not in html
    assert str(reg["nombre_entreprises"].sum()) not in html
    # what the figures are comes from the declaration (asOf), and the secrecy gaps are said
    assert "Totaux depuis l&#39;ouverture du fonds, tels que dans la version" in html
    assert "celles sous le seuil du secret statistique manquent" in html
    assert int(tile(doc, "nombre_aides", "fra")["value"]) == reg["nombre_aides"].sum()
    assert float(tile(doc, "montant_total", "fra")["value"]) == pytest.approx(
        reg["montant_total"].sum(), abs=0.01)
    idf = page_doc(site, "dashboards/business-support/reg-11/")
    assert int(tile(idf, "nombre_entreprises", "reg")["value"]) == \
        reg[reg["reg"] == "11"]["nombre_entreprises"].sum()
    paris = page_doc(site, "dashboards/business-support/dep-75/")
    assert int(tile(paris, "nombre_aides", "dep")["value"]) == \
        dep[dep["dep"] == "75"]["nombre_aides"].sum()
    top = paris.charts["top"]["rows"]
    ranked = dep[dep["dep"] == "75"].sort_values("montant_total", ascending=False)
    assert [r[0] for r in top] == ranked["code_section"].head(10).tolist()


def test_every_area_has_its_page__linked_without_javascript(site: dict[str, Page]) -> None:
    for board in ("epidemic", "business-support"):
        doc = page_doc(site, f"dashboards/{board}/")
        pages = {resolve(f"dashboards/{board}/", h) for h in doc.links if h.endswith("/dep-75/")}
        assert pages == {f"dashboards/{board}/dep-75"}
        assert f"dashboards/{board}/dep-75/" in site and f"dashboards/{board}/reg-11/" in site
        index = json.loads(site[f"dashboards/{board}/data/index.json"].body)
        assert {a["id"] for a in index["areas"]} >= {"fra", "reg-11", "dep-75", "dep-2A"}


def test_first_view__under_1_mb_with_its_stylesheet_script_and_index(
        site: dict[str, Page]) -> None:
    shipped = {p.path: len(p.body) for p in assets()}
    for board in ("epidemic", "business-support"):
        weight = (len(site[f"dashboards/{board}/"].body) + shipped["assets/site.css"]
                  + shipped["assets/dashboard.js"]
                  + len(site[f"dashboards/{board}/data/index.json"].body))
        print(board, weight)
        assert 0 < weight < WEIGHT_LIMIT, (board, weight)


def test_changed__builds_only_the_dashboards_reading_it(published: Pipeline) -> None:
    pages = dashboard_pages(published.store, published.settings, load_registry(),
                            {"fonds-solidarite"})
    assert pages and {p.path.split("/")[1] for p in pages} == {"business-support"}
    assert dashboard_pages(published.store, published.settings, load_registry(),
                           {"production-masques"}) == []


def declaration(slug: str) -> dict[str, Any]:
    return copy.deepcopy(json.loads(
        (resources.files("opendepot.datasets") / "dashboards" / f"{slug}.json").read_text("utf-8")))


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d["indicators"][0].update(kind="rate"),
     r"epidemic\.json: indicators\[0\]\.kind: expected one of cumulative, incidence, stock"),
    (lambda d: d["indicators"][1].update(source="nowhere"),
     r"epidemic\.json: indicators\[1\]\.source: unknown source 'nowhere'"),
    (lambda d: d.update(tiles=["hosp", "icu"]), r"epidemic\.json: tiles\[1\]: unknown 'icu'"),
    (lambda d: d["sources"]["hospital"]["levels"].update(com="com"),
     r"epidemic\.json: sources\.hospital\.levels\.com: not a level"),
    (lambda d: d.pop("title"), r"epidemic\.json: title: required"),
    (lambda d: d["map"].update(default="P_f"), r"epidemic\.json: map\.default"),
])
def test_a_bad_declaration__names_the_file_and_the_field(edit: Any, message: str) -> None:
    data = declaration("epidemic")
    edit(data)
    with pytest.raises(DashboardError, match=message):
        parse_dashboard(data, "epidemic.json")


def test_a_declaration_reading_an_unknown_column__names_it() -> None:
    data = declaration("business-support")
    data["indicators"][2]["column"] = "entreprises"
    dash = parse_dashboard(data, "business-support.json")
    with pytest.raises(DashboardError,
                       match=r"business-support\.json: indicators\[2\]\.column: 'entreprises'"):
        check_against(dash, load_registry())


def test_shipped_declarations__load_and_fit_the_registry() -> None:
    dashes = {d.slug: d for d in load_dashboards()}
    assert set(dashes) == {"epidemic", "business-support"}
    for d in dashes.values():
        check_against(d, load_registry())
    assert dashes["epidemic"].sources["hospital"].filters == {"sexe": 0}
    assert Path(dashes["epidemic"].file).name == "epidemic.json"


def test_map_and_area_csvs__hold_the_published_values_by_day(site: dict[str, Page]) -> None:
    real = real_stock()
    total = real[real["sexe"] == 0]
    last = total["jour"].max()
    doc = page_doc(site, "dashboards/epidemic/")
    link = next(h for h in doc.links if "data/map-" in h)
    lines = [r.split(";") for r in site[resolve("dashboards/epidemic/", link)].body.decode()
             .splitlines()]
    by_day = {r[0]: dict(zip(lines[0], r, strict=True)) for r in lines[1:]}
    expected = total[total["jour"] == last].set_index("dep")["hosp"]
    assert {c: int(v) for c, v in by_day[last].items() if c != "date" and v} == \
        {c: int(v) for c, v in expected.items()}
    area = [r.split(";") for r in site["dashboards/epidemic/data/dep-75.csv"].body.decode()
            .splitlines()]
    row = dict(zip(area[0], next(r for r in area if r[0] == last), strict=True))
    assert int(row["hosp"]) == expected["75"]
    assert "cas_confirmes_ehpad" not in row  # nursing homes: France only, never made up


def test_timeseries_batches__one_area_at_a_time_then_the_map_and_index(
        published: Pipeline, site: dict[str, Page]) -> None:
    """The site writes each batch before the next is built: a batch holds one area's pages and
    files (memory is one area's, not the dashboard's)."""
    epidemic = (d for d in load_dashboards() if d.slug == "epidemic")
    batches = list(dashboard_batches(published.store, published.settings, load_registry(),
                                     {HOSP}, dashboards=tuple(epidemic)))
    areas = [{p.path.split("/")[2] for p in b if not p.path.startswith("dashboards/epidemic/data/")}
             for b in batches[:-1]]
    assert len(batches) == 1 + 18 + 101 + 1  # France, the regions, the departments, then data
    assert areas[0] == {"", "fra"} and all(len(a) == 1 for a in areas[1:])
    assert {p.path for p in batches[-1]} >= {"dashboards/epidemic/data/index.json",
                                             "dashboards/epidemic/data/map-hosp.csv"}
    assert {p.path: p.body for b in batches for p in b} == {
        k: p.body for k, p in site.items() if k.startswith("dashboards/epidemic/")}


def test_chart_csv__cells_as_the_scalar_formatting_of_the_real_series(
        site: dict[str, Page]) -> None:
    """The chart files are written column by column (Arrow); each cell is what ``cell`` gives
    for the published value, its difference and its 7-day average, day by day."""
    real = real_stock()
    paris = real[(real["dep"] == "75") & (real["sexe"] == 0)].set_index("jour")["dc"]
    days = pd.date_range(paris.index.min(), paris.index.max()).strftime("%Y-%m-%d")
    values = [float(paris[d]) if d in paris.index else None for d in days]
    daily = differences(values)
    expected = [f"{d};{cell(v)};{cell(x)};{cell(m, 1)}"
                for d, v, x, m in zip(days, values, daily, rolling(daily), strict=True)]

    body = site["dashboards/epidemic/data/dep-75/dc.csv"].body.decode("utf-8")

    assert body.splitlines() == ["date;dc;dc_jour;dc_moy7", *expected]
    assert len(expected) == 365 and any("." in line.rsplit(";", 1)[1] for line in expected)
