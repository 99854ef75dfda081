"""The static site (issue 15) in real headless Chromium, over the real published files.

Every page loads with no console error, no failed request and no request to another host;
the national hospitalisation tile equals the published CSV; the area picker changes the view
and the URL, and the URL restores the view; each chart's CSV download equals its table; the
screenshots at 1280x800 and 390x844 are written; axe-core finds no serious or critical
violation; each dashboard's first view weighs under 1 MB; without JavaScript the tiles and
tables are there. Fixtures: conftest.py (one browser, one pass over the pages: ``tour``).
"""

from __future__ import annotations

import csv
import io
import json
import re
import struct
import subprocess
import sys
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest

from browser.conftest import (
    REPORT_CASE,
    REPORT_PATH,
    SHOTS,
    VIEWPORTS,
    Load,
    Published,
    fresh_page,
    tour_paths,
)
from conftest import CASES

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

WEIGHT_LIMIT = 1_000_000
"""A dashboard's first view: at most this many bytes transferred (scripts included)."""
BLOCKING = ("serious", "critical")
HOSP = "donnees-hospitalieres-covid19"


def every_load(tour: dict[str, dict[str, Load]]) -> list[Load]:
    return [load for by in tour.values() for load in by.values()]


def boards(published: Published) -> list[str]:
    return [p for p, kind in tour_paths(published).items() if kind == "dashboard"]


def test_site__builds_from_the_real_published_files(published: Published) -> None:
    assert not published.build_error, published.build_error
    paths = published.site_paths()
    assert "" in paths and "dashboards/epidemic/" in paths, paths
    assert {f"datasets/{f.dataset}/" for f in published.files} <= set(paths), paths


def test_every_page__no_console_error_no_failed_request_no_other_host(
        published: Published, tour: dict[str, dict[str, Load]]) -> None:
    problems = [f"{ld.path or '/'} ({ld.viewport}): {what}: {x}" for ld in every_load(tour)
                for what, xs in (("console", ld.console), ("failed", ld.failed),
                                 ("other host", ld.foreign)) for x in xs]
    hint = ("\n(favicon.ico: the page declares no icon; <link rel=\"icon\" href=\"data:,\"> "
            "in its head stops the browser asking for one)"
            if any("favicon.ico" in p for p in problems) else "")
    assert not problems, "\n".join(problems) + hint
    assert all(ld.lang == "fr" for ld in every_load(tour)), {
        ld.path: ld.lang for ld in every_load(tour) if ld.lang != "fr"}


def test_html_validation_report__loads_clean_and_shows_every_error(
        published: Published, tour: dict[str, dict[str, Load]], browser: Any) -> None:
    assert REPORT_PATH in published.extra, "opendepot validate --html wrote no report"
    loads = tour[REPORT_PATH.lstrip("/")]
    assert all(not (ld.console or ld.failed or ld.foreign) for ld in loads.values()), [
        (ld.viewport, ld.console, ld.failed, ld.foreign) for ld in loads.values()]
    done = subprocess.run(
        [sys.executable, "-m", "opendepot.cli", "validate", "--json", "--dataset", HOSP,
         str(CASES / REPORT_CASE)], capture_output=True, timeout=120, check=False)
    errors = json.loads(done.stdout)["tasks"][0]["errors"]
    with fresh_page(browser) as page:
        page.goto(published.files_url + REPORT_PATH)
        text = re.sub(r"\s+", " ", page.evaluate("document.body.textContent"))
    assert REPORT_CASE in text and "Refusé" in text, text[:500]
    missing = [e["message"] for e in errors if re.sub(r"\s+", " ", e["message"]) not in text]
    assert len(errors) == 15 and not missing, missing


def published_csv(page: Any, published: Published, dataset: str, level: str
                  ) -> list[dict[str, str]]:
    """The rows of ``dataset``'s published CSV at ``level``, found through the HTTP index
    and fetched over HTTP (following its links, as a reuser would)."""
    doc = page.request.get(f"{published.url}/api/1/datasets/{dataset}/").json()
    urls = [r["url"] for r in doc["resources"]
            if str(r.get("format", "")).lower() == "csv"
            and urlsplit(r["url"]).path.endswith(f"-{level}.csv")]
    assert urls, [r["url"] for r in doc["resources"]]
    answer = page.request.get(urljoin(published.url + "/", urls[0]))
    assert answer.ok and urlsplit(answer.url).hostname == "127.0.0.1", answer.url
    return read_csv(answer.text())


def read_csv(text: str) -> list[dict[str, str]]:
    header = text.split("\n", 1)[0]
    delimiter = ";" if header.count(";") > header.count(",") else ","
    return list(csv.DictReader(io.StringIO(text), delimiter=delimiter))


TILES_JS = """() => [...document.querySelectorAll('li.tile')]
  .filter(t => t.getClientRects().length > 0)
  .map(t => ({indicator: t.dataset.indicator, level: t.dataset.level, area: t.dataset.area,
              date: t.dataset.date,
              value: t.querySelector('.value') && t.querySelector('.value').dataset.value,
              text: t.querySelector('.value') && t.querySelector('.value').textContent.trim()}))"""


def test_epidemic_hosp_tile__equals_the_published_fra_csv_on_the_stock_files_last_day(
        published: Published, browser: Any) -> None:
    stock = next(f for f in published.files if f.dataset == HOSP)
    last_day = max(r["jour"] for r in read_csv(stock.read().decode("utf-8-sig")))
    assert last_day == "2021-03-17"  # the newest real stock file, 2021-03-17-17h03
    with fresh_page(browser) as page:
        rows = published_csv(page, published, HOSP, "fra")
        expected = [r["hosp"] for r in rows if r["sexe"] == "0" and r["jour"] == last_day]
        page.goto(f"{published.url}/dashboards/epidemic/", wait_until="networkidle")
        tiles = [t for t in page.evaluate(TILES_JS)
                 if t["indicator"] == "hosp" and t["level"] == "fra"]
    assert len(expected) == 1 and tiles, (expected, tiles)
    assert tiles[0]["date"] == last_day, tiles
    assert float(tiles[0]["value"]) == float(expected[0]), (tiles, expected)
    digits = re.sub(r"\D", "", tiles[0]["text"])
    assert digits == str(int(float(expected[0]))), tiles  # shown as published, French spacing


def view_of(page: Any) -> list[tuple[Any, ...]]:
    return sorted(tuple(t.values()) for t in page.evaluate(TILES_JS))


def test_area_picker__updates_the_view_and_the_url__the_url_restores_the_view(
        published: Published, browser: Any) -> None:
    with fresh_page(browser) as page:
        page.goto(f"{published.url}/dashboards/epidemic/", wait_until="networkidle")
        picker = page.locator("form.controls select[name=area]")
        options = picker.locator("option").evaluate_all("os => os.map(o => o.value)")
        target = "dep-75" if "dep-75" in options else options[-1]
        level, _, code = target.partition("-")
        before = view_of(page)
        picker.select_option(target)
        page.wait_for_function(
            "v => new URLSearchParams(location.search).get('area') === v", arg=target)
        page.wait_for_function(
            "([l, c]) => document.querySelector(`li.tile[data-level='${l}'][data-area='${c}']`)",
            arg=[level, code])
        page.wait_for_load_state("networkidle")
        after, url = view_of(page), page.url
        assert parse_qs(urlsplit(url).query)["area"] == [target]
        assert after != before and any(t[1] == level and t[2] == code for t in after), after
        fresh = page.context.new_page()
        fresh.goto(url, wait_until="networkidle")
        fresh.wait_for_function(
            "([l, c]) => document.querySelector(`li.tile[data-level='${l}'][data-area='${c}']`)",
            arg=[level, code])
        assert view_of(fresh) == after
        assert fresh.locator("form.controls select[name=area]").input_value() == target


NUMBER = re.compile(r"^-?\d+(?:\.(\d+))?$")


def cell(value: str | None) -> tuple[str, Any]:
    """A CSV or table cell, comparable: ``("n", float, decimals)``, ``("", None)`` when
    empty or a dash, else the text."""
    text = (value or "").strip()
    plain = re.sub(r"[\s\u00a0\u202f]", "", text).replace("−", "-").replace(",", ".")
    if plain in ("", "–", "-", "—"):
        return ("", None)
    m = NUMBER.match(plain)
    if m:
        return ("n", (float(plain), len(m.group(1) or "")))
    return ("s", text)


def same(csv_value: str, shown: str) -> bool:
    a, b = cell(csv_value), cell(shown)
    if a[0] == b[0] == "n":
        (x, _), (y, digits) = a[1], b[1]
        return bool(abs(x - y) <= 0.5 * 10 ** -digits + 1e-9)
    return a == b


TABLE_JS = """f => [...f.querySelectorAll('table.chart-data tbody tr')].map(tr =>
  [...tr.children].map(c => c.dataset.value !== undefined ? c.dataset.value
    : (c.querySelector('time') ? c.querySelector('time').getAttribute('datetime')
    : c.textContent)))"""


def test_chart_csv_downloads__equal_their_tables(published: Published, browser: Any) -> None:
    checked: list[str] = []
    with fresh_page(browser) as page:
        for board in boards(published):
            page.goto(f"{published.url}/{board}", wait_until="networkidle")
            for figure in page.locator("figure.chart").all():
                name = figure.get_attribute("data-chart") or "?"
                href = figure.locator("a.csv").get_attribute("href")
                assert href and figure.locator("svg[role=img]").count() == 1, name
                answer = page.request.get(urljoin(page.url, href))
                assert answer.ok, (name, href, answer.status)
                rows = list(csv.reader(io.StringIO(answer.text()),
                                       delimiter=";" if ";" in answer.text().split("\n")[0]
                                       else ","))[1:]
                shown = figure.evaluate(TABLE_JS)
                assert len(rows) == len(shown) > 0, (name, len(rows), len(shown))
                bad = [(r, s) for r, s in zip(rows, shown, strict=True)
                       if len(r) != len(s) or not all(map(same, r, s))]
                assert not bad, (name, bad[:3])
                checked.append(f"{board}{name}")
    assert any(c.startswith("dashboards/epidemic/") for c in checked), checked


MAP_TABLE_JS = """f => Object.fromEntries([...f.querySelectorAll('table.map-data tr[data-row]')]
    .map(tr => [tr.dataset.row, tr.querySelectorAll('td')[2].textContent]))"""


def test_map__a_shared_day_and_indicator_redraw_its_table_from_that_days_csv_row(
        published: Published, browser: Any) -> None:
    """The map's table follows the view: a URL naming another indicator and a past day shows
    that day's values of that indicator (``data/map-{indicator}.csv``), never the first view's."""
    with fresh_page(browser) as page:
        page.goto(f"{published.url}/dashboards/epidemic/", wait_until="networkidle")
        choices = page.locator("form.controls select[name=indicator] option").evaluate_all(
            "os => os.map(o => o.value)")
        indicator = choices[1]  # not the first view's
        answer = page.request.get(urljoin(page.url, f"data/map-{indicator}.csv"))
        assert answer.ok, (indicator, answer.status)
        rows = list(csv.DictReader(io.StringIO(answer.text()), delimiter=";"))
        day = rows[len(rows) // 2]  # a past day, mid-series
        page.goto(f"{published.url}/dashboards/epidemic/?indicator={indicator}&date={day['date']}",
                  wait_until="networkidle")
        page.wait_for_function("i => document.querySelector('select[name=indicator]').value === i",
                               arg=indicator)
        shown = page.locator("figure.map").first.evaluate(MAP_TABLE_JS)
    assert len(shown) == 101
    bad = {code: (day.get(code), text) for code, text in shown.items()
           if not same(day.get(code) or "", text)}
    assert not bad, (indicator, day["date"], list(bad.items())[:5])
    assert sum(1 for code in shown if day.get(code)) > 90  # real values, not a blank table


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_screenshots__every_page_at_1280x800_and_390x844_listed_in_index_json(
        tour: dict[str, dict[str, Load]]) -> None:
    index = json.loads((SHOTS / "index.json").read_text("utf-8"))
    assert len(index) == 2 * len(tour) and {e["viewport"] for e in index} == set(VIEWPORTS)
    for entry in index:
        size = VIEWPORTS[entry["viewport"]]
        assert png_size((SHOTS / entry["file"]).read_bytes()) == (size["width"],
                                                                  size["height"]), entry


def test_axe_core__no_serious_or_critical_violation(tour: dict[str, dict[str, Load]]) -> None:
    found = [(ld.path or "/", v) for by in tour.values() for ld in by.values()
             for v in ld.axe or []]
    for path, v in found:
        if v["impact"] not in BLOCKING:
            print(f"axe {v['impact']}: {path}: {v['id']} ({v['help']}) {v['nodes']}")
    blocking = [f"{path}: {v['impact']} {v['id']} ({v['help']}): {v['nodes']}"
                for path, v in found if v["impact"] in BLOCKING]
    assert not blocking, "\n".join(blocking)
    axed = {ld.path for ld in every_load(tour) if ld.axe is not None}
    assert {"", "dashboards/epidemic/", REPORT_PATH.lstrip("/")} <= axed, axed


def test_dashboards_first_view__under_1_mb_transferred(
        published: Published, tour: dict[str, dict[str, Load]]) -> None:
    weights = {}
    for board in boards(published):
        for viewport, load in tour[board].items():
            largest = sorted(load.sizes.items(), key=lambda kv: -kv[1])[:5]
            weights[f"/{board} {viewport}"] = {
                "bytes": sum(load.sizes.values()), "requests": len(load.sizes),
                "largest": [{"url": urlsplit(u).path, "bytes": n} for u, n in largest]}
    (SHOTS / "weights.json").write_text(json.dumps(weights, indent=1), "utf-8")
    print(json.dumps({k: v["bytes"] for k, v in weights.items()}))
    assert len(weights) == 2 * len(boards(published)) >= 2, weights
    heavy = {k: v for k, v in weights.items() if not 0 < v["bytes"] < WEIGHT_LIMIT}
    assert not heavy, heavy


def test_mobile_390__no_horizontal_scroll(tour: dict[str, dict[str, Load]]) -> None:
    wide = {ld.path or "/": ld.overflow for ld in every_load(tour)
            if ld.viewport == "mobile" and ld.overflow > 0}
    assert not wide, wide


def test_without_javascript__tiles_charts_and_tables_present(
        published: Published, browser: Any) -> None:
    with fresh_page(browser, java_script_enabled=False) as page:
        pages = {p: k for p, k in tour_paths(published).items() if k in ("dashboard", "area")}
        for path, kind in pages.items():
            answer = page.goto(f"{published.url}/{path}")
            assert answer is not None and answer.ok, path
            tiles = page.evaluate(TILES_JS)
            assert tiles and all(t["value"] is not None and t["text"] for t in tiles), path
            charts = page.locator("figure.chart")
            for i in range(charts.count()):
                figure = charts.nth(i)
                assert figure.locator("svg[role=img]").count() == 1, (path, i)
                assert figure.locator("table.chart-data tbody tr").count() > 0, (path, i)
            if kind == "dashboard" and path == "dashboards/epidemic/":
                assert charts.count() > 0
        assert pages


def test_maps__coverage_counts_the_areas_drawn_with_data(
        published: Published, browser: Any) -> None:
    seen = 0
    with fresh_page(browser) as page:
        for board in boards(published):
            page.goto(f"{published.url}/{board}", wait_until="networkidle")
            for figure in page.locator("figure.map").all():
                areas = figure.locator("svg path[data-code]")
                empty = figure.locator("svg path[data-code].no-data")
                coverage = figure.locator("p.coverage")
                total, reported = areas.count(), areas.count() - empty.count()
                assert coverage.get_attribute("data-total") == str(total), board
                assert coverage.get_attribute("data-reported") == str(reported), board
                assert f"{reported} " in coverage.inner_text(), board
                seen += 1
    assert seen >= 1
