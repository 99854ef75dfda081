"""A snapshot dashboard (``kind: snapshot``, e.g. business support): cumulative totals broken
down by one dimension (``breakdown``, e.g. the NAF section), for France, a region or a
department.

An area's figure is the sum of its own breakdown rows (one area's rows: the breakdown's values
do not overlap), never a sum across areas: France comes from the source declared for ``fra``
(the producer's regional file and its national roll-up), a region from the regional file, a
department from the departmental file. An indicator with no source at a level (``distinct``
counts at ``fra``) is not shown: its ``absent`` text says why.

Under ``dashboards/{slug}/``: ``""`` (France) and ``{area}/`` for every area, ``data/index.json``,
``data/{area}/top.csv`` (the top-N table and bar chart), ``data/map-{indicator}.csv`` (one row,
one column per area code) and ``data/map.csv`` (the map's table).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import pandas as pd
from markupsafe import Markup, escape

from opendepot.registry import Registry
from opendepot.site import CSV, JSON, Page, fr_date, maps, render, root_of
from opendepot.site.charts import bar_chart_svg, figure, format_value
from opendepot.site.dashboards import Dashboard, Indicator
from opendepot.site.dashboards_data import (
    Area,
    Tables,
    Value,
    area_total,
    areas,
    cell,
    csv_text,
    number,
    snapshot_rows,
    versions_of,
)
from opendepot.site.dashboards_timeseries import raw

Frames = dict[str, dict[str, dict[str, pd.DataFrame]]]
"""Level -> source name -> area code -> that area's rows."""
EMPTY = pd.DataFrame()
DISTINCT_NOTE = "somme des sections d'activité de la zone : une entreprise n'en a qu'une"
"""Shown under a ``distinct`` count: it is summed over the breakdown of one area only."""


def _fmt(ind: Indicator) -> str:
    return "euro" if ind.unit == "€" else "int"


def area_rows(dash: Dashboard, frames: Frames, ind: Indicator, area: Area) -> pd.DataFrame | None:
    """The breakdown rows of ``area`` for ``ind`` (None: no source at that level, or not
    published)."""
    src = dash.source_of(ind, area.level)
    by_area = None if src is None else frames[area.level].get(src.name)
    if by_area is None:
        return None
    return by_area.get(area.code, EMPTY)


def figure_of(dash: Dashboard, frames: Frames, ind: Indicator, area: Area) -> tuple[Value, str]:
    """``ind``'s total for ``area`` and, when None, why."""
    src = dash.source_of(ind, area.level)
    other = None if src is None or ind.distinct else src.totals.get(area.level)
    if src is not None and other is not None and src.name in frames[other]:
        parts = list(frames[other][src.name].values())
        value = area_total(pd.concat(parts), ind.column) if parts else None
        return value, "" if value is not None else "non publié (valeur manquante)"
    part = area_rows(dash, frames, ind, area)
    if part is None:
        return None, ind.absent.get(area.level, "non publié à ce niveau")
    if part.empty or ind.column not in part:
        return None, "pas de donnée publiée pour ce territoire"
    value = area_total(part, ind.column)
    if value is None:
        return None, "non publié (cellule masquée)"
    return value, DISTINCT_NOTE if ind.distinct else ""


def tile_html(dash: Dashboard, frames: Frames, ind: Indicator, area: Area,
              day: date | None) -> Markup:
    """One ``li.tile`` of the DOM contract (no delta: a snapshot has no previous day)."""
    value, why = figure_of(dash, frames, ind, area)
    text = format_value(value, _fmt(ind)) if value is not None else "–"
    return Markup(
        f'<li class="tile{" no-data" if value is None else ""}" data-indicator="{escape(ind.id)}" '
        f'data-level="{area.level}" data-area="{escape(area.code)}" '
        f'data-date="{day.isoformat() if day else ""}">'
        f'<span class="label">{escape(ind.label)}</span>'
        f'<span class="value" data-value="{raw(value)}">{escape(text)}</span>'
        + (f'<span class="why muted">{escape(why)}</span>' if why else "") + "</li>")


def top_table(
    dash: Dashboard, frames: Frames, area: Area, names: Mapping[str, str]
) -> tuple[list[str], list[list[str]], list[tuple[str, Value]]] | None:
    """The top-N breakdown rows of ``area`` by ``top.by``: CSV header and cells, bar items."""
    top, bd = dash.top, dash.breakdown
    assert top is not None and bd is not None
    by = dash.indicator(top.by)
    part = area_rows(dash, frames, by, area)
    if part is None or part.empty:
        return None
    cols = [dash.indicator(c) for c in top.columns
            if area_rows(dash, frames, dash.indicator(c), area) is not None
            and c in part and part[c].notna().any()]
    ranked = part.assign(_by=part[by.column].map(number)).sort_values(
        ["_by", bd.column], ascending=[False, True], na_position="last").head(top.n)
    header = [bd.column, bd.label] + [c.column for c in cols]
    table = [[str(r[bd.column]), names.get(str(r[bd.column]), "")]
             + [cell(number(r[c.column]), 2 if c.unit == "€" else 0) for c in cols]
             for _, r in ranked.iterrows()]
    bars = [(f"{r[0]} {r[1]}", number(v)) for r, v in zip(table, ranked["_by"], strict=True)]
    return header, table, bars


def labels(dash: Dashboard, frames: Frames) -> dict[str, str]:
    """Breakdown code -> its label, from any table that has the label column (a roll-up table
    has only the codes)."""
    bd = dash.breakdown
    assert bd is not None
    out: dict[str, str] = {}
    for per in frames.values():
        for by_area in per.values():
            for frame in by_area.values():
                if bd.label not in frame:
                    break
                out.update(zip(frame[bd.column].astype(str), frame[bd.label].astype(str),
                               strict=True))
    return out


def map_values(dash: Dashboard, frames: Frames, ind: Indicator, level: str,
               all_areas: Sequence[Area]) -> dict[str, Value]:
    """Each area's total of ``ind`` at ``level``."""
    return {a.code: figure_of(dash, frames, ind, a)[0] for a in all_areas if a.level == level}


def map_html(dash: Dashboard, frames: Frames, all_areas: Sequence[Area],
             day: date | None) -> Markup:
    """The map of the default indicator (``maps.choropleth``) and its table (every indicator).
    ``day`` goes in the title ("au ..."): only a date of the data, never a publication date."""
    assert dash.map is not None
    ind = dash.indicator(dash.map.default)
    level = dash.map.level
    values = map_values(dash, frames, ind, level, all_areas)
    title = f"{ind.label} par département" + (f", au {fr_date(day)}" if day else "")
    fmt = functools.partial(format_value, fmt=_fmt(ind))
    return maps.choropleth(level, values, map_id=ind.id, title=title,  # type: ignore[arg-type]
                           unit="" if ind.unit == "€" else ind.unit, fmt=fmt)


def map_table(dash: Dashboard, frames: Frames,
              all_areas: Sequence[Area]) -> tuple[list[str], list[list[str]]]:
    """The map's table: area code, name, then each map indicator's total."""
    assert dash.map is not None
    inds = [dash.indicator(i) for i in dash.map.indicators]
    header = ["code", "nom"] + [i.column for i in inds]
    table = [[a.code, a.name] + [cell(figure_of(dash, frames, i, a)[0], 2 if i.unit == "€" else 0)
                                 for i in inds]
             for a in all_areas if a.level == dash.map.level]
    return header, table


def area_page(dash: Dashboard, frames: Frames, area: Area, path: str, all_areas: Sequence[Area],
              extra: Mapping[str, Any]) -> tuple[Page, list[Page]]:
    """The page of ``area`` at ``path`` and its files (the top-N CSV)."""
    root = root_of(path)
    base = f"{root}dashboards/{dash.slug}/"
    day = extra["last"]
    tiles = [tile_html(dash, frames, dash.indicator(i), area, day) for i in dash.tiles]
    charts, files = [], []
    found = top_table(dash, frames, area, extra["labels"]) if dash.top else None
    if found is not None and dash.top is not None and dash.breakdown is not None:
        header, table, bars = found
        by = dash.indicator(dash.top.by)
        caption = (f"Les {len(table)} premières sections d'activité par {by.label.lower()} — "
                   f"{area.name}")
        rel = f"data/{area.id}/top.csv"
        svg = bar_chart_svg(caption, bars, _fmt(by))
        charts.append(figure("top", caption, svg, base + rel, header, table,
                             dash.breakdown.note))
        files.append(Page(f"dashboards/{dash.slug}/{rel}", csv_text(header, table), CSV))
    body = render("dashboard.html", page_title=f"{dash.title} — {area.name}", root=root,
                  nav=dash.nav, dash=dash, area=area, areas=all_areas, tiles=tiles, charts=charts,
                  base=base, map_html=Markup(
                      f'{extra["map_svg"]}<p><a class="csv" href="{escape(base)}data/map.csv" '
                      "download>Télécharger les chiffres de chaque département (CSV)</a></p>")
                  if dash.map else None, **extra)
    return Page(path, body), files


def pages(dash: Dashboard, tables: Tables, registry: Registry) -> list[Page]:
    """Every page and data file of the snapshot dashboard ``dash``."""
    frames: Frames = {lv: {name: {str(code): part for code, part in frame.groupby("_area")}
                           for name, frame in snapshot_rows(tables, dash, lv).items()}
                      for lv in dash.levels}
    all_areas = areas(dash.levels)
    versions = versions_of(tables, dash)
    last = max((date.fromisoformat(v["published_at"][:10]) for v in versions), default=None)
    extra = {"versions": versions, "registry": registry, "last": last,
             "labels": labels(dash, frames),
             "map_svg": map_html(dash, frames, all_areas, None) if dash.map else None}
    out: list[Page] = []
    for area in all_areas:
        for path in ([f"dashboards/{dash.slug}/"] if area.level == "fra" else []) + [
                f"dashboards/{dash.slug}/{area.id}/"]:
            page, files = area_page(dash, frames, area, path, all_areas, extra)
            out.append(page)
            if path.endswith(f"{area.id}/"):
                out += files
    if dash.map is not None:
        header, table = map_table(dash, frames, all_areas)
        out.append(Page(f"dashboards/{dash.slug}/data/map.csv", csv_text(header, table), CSV))
        for k, ident in enumerate(dash.map.indicators):
            codes = [r[0] for r in table]
            row = [last.isoformat() if last else ""] + [r[2 + k] for r in table]
            out.append(Page(f"dashboards/{dash.slug}/data/map-{ident}.csv",
                            csv_text(["date", *codes], [row]), CSV))
    doc = {"dashboard": dash.slug, "first": last.isoformat() if last else None,
           "last": last.isoformat() if last else None,
           "areas": [{"id": a.id, "level": a.level, "code": a.code, "name": a.name}
                     for a in all_areas],
           "indicators": [{"id": i.id, "label": i.label, "short": i.short, "kind": i.kind,
                           "unit": i.unit, "levels": sorted(i.sources), "absent": dict(i.absent)}
                          for i in dash.indicators],
           "tiles": list(dash.tiles),
           "map": None if dash.map is None else {"level": dash.map.level,
                                                 "indicators": list(dash.map.indicators),
                                                 "default": dash.map.default}}
    body = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    out.append(Page(f"dashboards/{dash.slug}/data/index.json", body, JSON))
    return out
