"""A time-series dashboard (``kind: timeseries``, e.g. the epidemic): its pages and data files.

Under ``dashboards/{slug}/``:

- ``""`` (the dashboard's page): France on each indicator's last day, fully rendered (tiles,
  charts with their tables, the map of the default indicator with its table);
- ``{area}/`` for every area (``fra``, ``reg-11``, ``dep-75``): the same view of that area, so
  every area is readable without JavaScript (the page lists links to all of them in
  ``<noscript>``: a static site cannot answer the form's GET query);
- ``data/index.json``: areas, indicators, map, date range (what the script needs);
- ``data/{area}.csv``: the area's published values, one row per day (``date`` then one column
  per indicator, and ``{id}_pop`` where a population is published): the script draws the tiles
  of any day from it;
- ``data/{area}/{indicator}.csv``: the CSV of each chart (the same rows as its table);
- ``data/map-{indicator}.csv``: the map's values, one row per day, one column per area code.

``batches`` yields them one area at a time (its pages and chart files, then its
``data/{area}.csv``), then the map's files and ``index.json``: a caller that writes each batch
before the next holds one area's files in memory. Tables, CSV files and chart paths are written
by Arrow's kernels (``opendepot.site.columns``), not a Python string per day.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
from markupsafe import Markup, escape

from opendepot.registry import Registry
from opendepot.site import CSV, JSON, Page, columns, fr_date, maps, render, root_of
from opendepot.site.charts import figure, format_value, time_chart_svg
from opendepot.site.dashboards import Dashboard, Indicator
from opendepot.site.dashboards_data import (
    Area,
    DailySeries,
    Tables,
    Value,
    areas,
    daily_series,
    differences_array,
    grid,
    per_100k_array,
    rolling,
    rolling_array,
    versions_of,
)

Store = dict[str, dict[str, DailySeries]]
"""Indicator id -> area id -> its series."""


def load_series(dash: Dashboard, tables: Tables) -> Store:
    """Every indicator's series for every area of every level it has a source at: each source
    is read once per level (``grid``), with the columns of every indicator reading it there."""
    out: Store = {i.id: {} for i in dash.indicators}
    wanted: dict[tuple[str, str], list[Indicator]] = {}
    for ind in dash.indicators:
        for level in dash.levels:
            src = dash.source_of(ind, level)
            if src is not None:
                wanted.setdefault((src.name, level), []).append(ind)
    for (name, level), inds in wanted.items():
        src = dash.sources[name]
        cols = [i.column for i in inds] + ([src.population] if src.population else [])
        g = grid(tables, dash, src, level, cols)
        if g is None:  # not published
            continue
        for ind in inds:
            for code, series in daily_series(g, src, ind).items():
                out[ind.id][Area(level, code, "").id] = series
    return out


def raw(value: Value) -> str:
    """A figure as published (``data-value``): integers without ``.0``; ``""`` when missing."""
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


@dataclass(frozen=True)
class Tile:
    ind: Indicator
    area: Area
    day: date | None
    value: Value
    delta: Value
    per100k: Value
    note: str


def tile(dash: Dashboard, series: Store, ind: Indicator, area: Area, day: date | None) -> Tile:
    """The tile of ``ind`` for ``area`` on ``day`` (None: the series' last day): the value and
    its change since the previous day, when both days are known."""
    s = series[ind.id].get(area.id)
    if s is None:
        note = ind.absent.get(area.level) or (
            "non publié à ce niveau" if area.level not in ind.sources else "pas de donnée publiée")
        return Tile(ind, area, day, None, None, None, note)
    d = day or s.end
    value, before = s.at(d), s.at(d - timedelta(days=1))
    delta = value - before if value is not None and before is not None else None
    pop = s.population_at(d)
    i = (d - s.start).days
    week = (rolling(s.values[max(0, i - 6): i + 1], mean=False)[-1]
            if value is not None and i >= 6 else None)
    rate = week / pop * 100_000 if ind.kind == "incidence" and week is not None and pop else None
    note = "" if value is not None else "pas de donnée ce jour"
    return Tile(ind, area, d, value, delta, rate, note)


def tile_html(t: Tile) -> Markup:
    """One ``li.tile`` (DOM contract: data-indicator, data-level, data-area, data-date, span.value
    and span.delta with ``data-value``)."""
    day = t.day.isoformat() if t.day else ""
    unit = f" {t.ind.unit}" if t.ind.unit else ""
    parts = [f'<li class="tile{" no-data" if t.value is None else ""}" '
             f'data-indicator="{escape(t.ind.id)}" '
             f'data-level="{t.area.level}" data-area="{escape(t.area.code)}" data-date="{day}">',
             f'<span class="label">{escape(t.ind.short)}</span>',
             f'<span class="value" data-value="{raw(t.value)}">'
             f'{escape(format_value(t.value) + unit if t.value is not None else "–")}</span>']
    if t.delta is not None:
        sign = "+" if t.delta > 0 else ""
        parts.append(f'<span class="delta" data-value="{raw(t.delta)}">{sign}'
                     f'{escape(format_value(t.delta))} depuis la veille</span>')
    if t.per100k is not None:
        parts.append(f'<span class="rate muted">{escape(format_value(round(t.per100k, 1)))} pour '
                     "100 000 habitants sur 7 jours</span>")
    when = f"au {fr_date(t.day)}" if t.day and t.value is not None else t.note
    parts.append(f'<span class="when muted">{escape(when)}</span></li>')
    return Markup("".join(parts))


def chart_table(ind: Indicator, s: DailySeries) -> tuple[list[str], list[pa.Array], str]:
    """The CSV header, text columns (``columns``) and legend of ``ind``'s chart: stock: the
    value (and per 100,000); cumulative: the published total, the daily difference and its
    7-day average; incidence: the daily count, its 7-day average (and the 7-day rate per
    100,000)."""
    v, pop = s.values, s.population
    cols: list[tuple[str, np.ndarray, int]] = [(ind.id, v, 0)]
    legend = "Ligne : valeur publiée chaque jour."
    if ind.kind == "cumulative":
        daily = differences_array(v)
        cols += [(f"{ind.id}_jour", daily, 0), (f"{ind.id}_moy7", rolling_array(daily), 1)]
        legend = ("Barres : valeur du jour (différence avec la veille) ; ligne : moyenne sur "
                  "7 jours.")
    elif ind.kind == "incidence":
        cols.append((f"{ind.id}_moy7", rolling_array(v), 1))
        legend = "Barres : valeur du jour ; ligne : moyenne sur 7 jours."
        if pop is not None:
            cols.append((f"{ind.id}_7j_pour_100k",
                         per_100k_array(rolling_array(v, mean=False), pop), 1))
    elif pop is not None:
        cols.append((f"{ind.id}_pour_100k", per_100k_array(v, pop), 1))
    header = ["date"] + [c for c, _, _ in cols]
    text = [columns.days(s.start, len(v))] + [columns.fixed(a, dg) for _, a, dg in cols]
    return header, text, legend + " Un jour sans donnée reste vide."


def chart_html(ind: Indicator, area: Area, s: DailySeries, href: str) -> tuple[Markup, bytes]:
    """The chart figure of ``ind`` for ``area`` and its CSV bytes."""
    header, text, legend = chart_table(ind, s)
    v = s.values
    bars: np.ndarray | None
    if ind.kind == "stock":
        bars, line = None, v
    elif ind.kind == "cumulative":
        bars = differences_array(v)
        line = rolling_array(bars)
    else:
        bars, line = v, rolling_array(v)
    title = ind.daily or ind.label if ind.kind != "stock" else ind.label
    caption = f"{title} — {area.name}, du {fr_date(s.start)} au {fr_date(s.end)}"
    svg = time_chart_svg(f"{caption}. {legend}", s.start, bars, line)
    return (figure(ind.id, caption, svg, href, header, (), legend,
                   rows_html=columns.html_rows(text)), columns.csv(header, text))


def map_values(series: Store, ind: str, level: str,
               day: date | None) -> tuple[dict[str, Value], date | None]:
    """Each area's value of ``ind`` at ``level`` on ``day`` (None: the latest day any area has)."""
    of_level = {k.split("-", 1)[1]: s for k, s in series[ind].items() if k.startswith(level + "-")}
    if not of_level:
        return {}, day
    d = day or max(s.end for s in of_level.values())
    return {code: s.at(d) for code, s in of_level.items()}, d


def map_html(dash: Dashboard, series: Store, all_areas: Sequence[Area]) -> Markup:
    """The map of the default indicator on its last day (``maps.choropleth``), with its table."""
    assert dash.map is not None
    ind = dash.indicator(dash.map.default)
    values, day = map_values(series, ind.id, dash.map.level, None)
    names = {a.code: a.name for a in all_areas if a.level == dash.map.level}
    for code in names:
        values.setdefault(code, None)
    title = f"{ind.label} par département" + (f", au {fr_date(day)}" if day else "")
    return maps.choropleth(dash.map.level, values, map_id=ind.id, title=title,  # type: ignore[arg-type]
                           unit=ind.unit, fmt=format_value)


def area_page(
    dash: Dashboard, series: Store, area: Area, path: str, all_areas: Sequence[Area],
    extra: Mapping[str, Any],
) -> tuple[Page, list[Page]]:
    """The page of ``area`` at ``path`` and its charts' CSV files."""
    root = root_of(path)
    base = f"{root}dashboards/{dash.slug}/"
    tiles = [tile_html(tile(dash, series, dash.indicator(i), area, None)) for i in dash.tiles]
    charts, files = [], []
    for ident in dash.series:
        ind = dash.indicator(ident)
        s = series[ident].get(area.id)
        if s is None:
            why = tile(dash, series, ind, area, None).note
            charts.append(Markup(f'<p class="muted" data-chart-missing="{escape(ident)}">'
                                 f"{escape(ind.label)} : {escape(why)}.</p>"))
            continue
        rel = f"data/{area.id}/{ident}.csv"
        html, body = chart_html(ind, area, s, base + rel)
        charts.append(html)
        files.append(Page(f"dashboards/{dash.slug}/{rel}", body, CSV))
    body = render("dashboard.html", page_title=f"{dash.title} — {area.name}", root=root,
                  nav=dash.nav, dash=dash, area=area, areas=all_areas, tiles=tiles,
                  charts=charts, base=base, **extra)
    return Page(path, body), files


def _aligned(s: DailySeries, values: np.ndarray, start: date, days: int) -> np.ndarray:
    """``values`` (one per day of ``s``) placed on ``days`` days from ``start`` (NaN around)."""
    out = np.full(days, np.nan)
    i = (s.start - start).days
    out[i:i + len(values)] = values
    return out


def area_csv(dash: Dashboard, series: Store, area: Area) -> bytes | None:
    """``data/{area}.csv``: every indicator's published value per day (and population)."""
    mine = {i: series[i][area.id] for i in series if area.id in series[i]}
    if not mine:
        return None
    start, end = min(s.start for s in mine.values()), max(s.end for s in mine.values())
    days = (end - start).days + 1
    header, cols = ["date"], [columns.days(start, days)]
    for ident, s in mine.items():
        header.append(ident)
        cols.append(columns.raw(_aligned(s, s.values, start, days)))
        if s.population is not None:
            header.append(f"{ident}_pop")
            cols.append(columns.raw(_aligned(s, s.population, start, days)))
    return columns.csv(header, cols)


def map_csv(series: Store, ind: str, level: str) -> bytes | None:
    """``data/map-{ind}.csv``: one row per day, one column per area code of ``level``."""
    of_level = {k.split("-", 1)[1]: s for k, s in sorted(series[ind].items())
                if k.startswith(level + "-")}
    if not of_level:
        return None
    start = min(s.start for s in of_level.values())
    end = max(s.end for s in of_level.values())
    days = (end - start).days + 1
    codes = sorted(of_level)
    cols = [columns.days(start, days)] + [
        columns.raw(_aligned(of_level[c], of_level[c].values, start, days)) for c in codes]
    return columns.csv(["date", *codes], cols)


def index_json(dash: Dashboard, series: Store, all_areas: Sequence[Area]) -> bytes:
    """``data/index.json``: what the script needs to redraw a view."""
    ends = [s.end for per in series.values() for s in per.values()]
    starts = [s.start for per in series.values() for s in per.values()]
    doc = {
        "dashboard": dash.slug,
        "first": min(starts).isoformat() if starts else None,
        "last": max(ends).isoformat() if ends else None,
        "areas": [{"id": a.id, "level": a.level, "code": a.code, "name": a.name,
                   "data": any(a.id in per for per in series.values())} for a in all_areas],
        "indicators": [{"id": i.id, "label": i.label, "short": i.short, "kind": i.kind,
                        "unit": i.unit, "levels": sorted(i.sources),
                        "absent": dict(i.absent)} for i in dash.indicators],
        "tiles": list(dash.tiles),
        "map": None if dash.map is None else {
            "level": dash.map.level, "indicators": list(dash.map.indicators),
            "default": dash.map.default},
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def batches(dash: Dashboard, tables: Tables, registry: Registry) -> Iterator[list[Page]]:
    """Every page and data file of the time-series dashboard ``dash``, one area at a time
    (its pages, chart files and ``data/{area}.csv``), then the map's files and ``index.json``."""
    series = load_series(dash, tables)
    all_areas = areas(dash.levels)
    ends = [s.end for per in series.values() for s in per.values()]
    starts = [s.start for per in series.values() for s in per.values()]
    extra = {"versions": versions_of(tables, dash), "registry": registry,
             "first": min(starts) if starts else None, "last": max(ends) if ends else None,
             "map_html": map_html(dash, series, all_areas) if dash.map else None}
    for area in all_areas:
        out: list[Page] = []
        paths = [f"dashboards/{dash.slug}/{area.id}/"]
        if area.level == "fra":
            paths.insert(0, f"dashboards/{dash.slug}/")
        for path in paths:
            page, files = area_page(dash, series, area, path, all_areas, extra)
            out.append(page)
            if path.endswith(f"{area.id}/"):
                out += files
        body = area_csv(dash, series, area)
        if body is not None:
            out.append(Page(f"dashboards/{dash.slug}/data/{area.id}.csv", body, CSV))
        yield out
    out = []
    if dash.map is not None:
        for ident in dash.map.indicators:
            body = map_csv(series, ident, dash.map.level)
            if body is not None:
                out.append(Page(f"dashboards/{dash.slug}/data/map-{ident}.csv", body, CSV))
    out.append(Page(f"dashboards/{dash.slug}/data/index.json", index_json(dash, series, all_areas),
                    JSON))
    yield out


def pages(dash: Dashboard, tables: Tables, registry: Registry) -> list[Page]:
    """Every page and data file of the time-series dashboard ``dash`` (``batches``, in one
    list)."""
    return [p for batch in batches(dash, tables, registry) for p in batch]
