"""Dashboards declared, not coded: the declarations and the pages built from them.

A dashboard is a JSON file next to the dataset descriptors
(``opendepot/datasets/dashboards/{slug}.json``, package data); adding one adds a dashboard,
without code. ``load_dashboards`` reads and checks them into typed dataclasses
(``Dashboard``); a bad declaration raises ``DashboardError`` naming the file and the field
(``epidemic.json: indicators[2].kind: expected one of cumulative, incidence, stock, got 'x'``).

A declaration holds:

- ``slug``, ``kind`` (``timeseries``: a daily series per area, with a date picker;
  ``snapshot``: one table of cumulative totals, broken down by a dimension), ``nav``, ``title``,
  ``intro``, ``asOf`` (snapshots: what the figures are, shown before the version's date),
  ``levels`` (among ``fra``, ``reg``, ``dep``);
- ``sources``: named reads of published tables: ``dataset``, ``levels`` (dashboard level ->
  the dataset's published table: ``fra``, ``reg``, ``dep`` or a consolidated table's name),
  ``totals`` (snapshots: ``{"fra": "reg"}``, a level's totals summed from all the rows of
  another level, for additive measures only), ``filters`` (column -> value: rows kept, e.g.
  ``{"sexe": 0}`` keeps the total row, which is
  never added to its parts), ``date`` (the date column of a time series), ``population``
  (a column of reference population, for figures per 100,000 inhabitants: only where the
  dataset publishes one), ``area`` (``{"column", "codes": {level: template}}`` when the table's
  area column is not named after the level, e.g. ``maille_code`` ``FRA``, ``DEP-{code}``);
- ``indicators``: ``id``, ``source`` (a source name, or level -> source name), ``column``,
  ``kind`` (``stock``; ``cumulative``: the daily values shown are the differences from one day
  to the next, with their 7-day average; ``incidence``: daily counts, with their 7-day average),
  ``label``, ``short``, ``daily``, ``unit``, ``distinct`` (a count of distinct units: never
  summed across areas), ``absent`` (level -> why the figure is not shown);
- ``tiles`` and ``series`` (indicator ids), ``map`` (``level``, ``indicators``, ``default``),
  and for snapshots ``breakdown`` (the dimension of the rows, e.g. ``code_section``) and
  ``top`` (``by``, ``n``, ``columns``: the top-N table of the breakdown).

``dashboard_batches`` builds the pages and data files of the dashboards that use a changed
dataset (``opendepot.site.dashboards_timeseries``, ``opendepot.site.dashboards_snapshot``), from
the published files of each dataset's current version (``opendepot.site.dashboards_data``), in
batches written one after the other (``dashboard_pages``: all of them in one list).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from opendepot.config import Settings
from opendepot.registry import Registry
from opendepot.site import Page
from opendepot.storage import Store

LEVELS = ("fra", "reg", "dep")
"""Dashboard levels, widest first."""
KINDS = ("cumulative", "incidence", "stock")
"""Indicator kinds (see module docstring)."""
DASHBOARD_KINDS = ("snapshot", "timeseries")


class DashboardError(ValueError):
    """A declaration that does not hold: the message names the file and the field."""


@dataclass(frozen=True)
class Source:
    """A named read of published tables (see module docstring, ``sources``)."""

    name: str
    dataset: str
    levels: Mapping[str, str]
    """Dashboard level -> published table (``layout.published_file_name``'s level)."""
    filters: Mapping[str, Any] = field(default_factory=dict)
    date: str | None = None
    population: str | None = None
    area_column: str | None = None
    area_codes: Mapping[str, str] = field(default_factory=dict)
    """Level -> template of the area code in ``area_column`` (``{code}`` the area's code)."""
    note: str = ""
    totals: Mapping[str, str] = field(default_factory=dict)
    """Snapshots: level -> the level whose rows, all of them, make that level's totals (e.g.
    ``{"fra": "reg"}``: France's total of an additive measure is the sum of every regional row;
    the roll-up per breakdown value is null where an area has no row for it). Never used for a
    ``distinct`` indicator."""


@dataclass(frozen=True)
class Indicator:
    """One measure shown (see module docstring, ``indicators``)."""

    id: str
    sources: Mapping[str, str]
    """Level -> source name; a level missing here has no figure."""
    column: str
    kind: str
    label: str
    short: str
    daily: str = ""
    unit: str = ""
    distinct: bool = False
    absent: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MapSpec:
    """The map (``map``): the level it draws, the indicators it can colour by, the default."""

    level: str
    indicators: tuple[str, ...]
    default: str


@dataclass(frozen=True)
class TopSpec:
    """The top table of a snapshot (``top``): the ``n`` breakdown values with the largest
    indicator ``by``, with the indicators ``columns``."""

    by: str
    n: int
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Breakdown:
    """The dimension a snapshot is broken down by (``breakdown``: e.g. the NAF section), its
    label, the title of its section and a note shown under it."""

    column: str
    label: str
    title: str
    note: str = ""


@dataclass(frozen=True)
class Dashboard:
    """One checked declaration."""

    file: str
    slug: str
    kind: str
    nav: str
    title: str
    intro: str
    levels: tuple[str, ...]
    sources: Mapping[str, Source]
    indicators: tuple[Indicator, ...]
    tiles: tuple[str, ...]
    series: tuple[str, ...]
    map: MapSpec | None
    breakdown: Breakdown | None = None
    top: TopSpec | None = None
    as_of: str = ""
    """What a snapshot's figures are (``asOf``, e.g. "Totaux depuis l'ouverture du fonds"),
    shown before the date of the version they come from."""

    @property
    def datasets(self) -> frozenset[str]:
        """The datasets the dashboard reads."""
        return frozenset(s.dataset for s in self.sources.values())

    def indicator(self, ident: str) -> Indicator:
        """The indicator ``ident``. Raises: KeyError."""
        for i in self.indicators:
            if i.id == ident:
                return i
        raise KeyError(ident)

    def source_of(self, ind: Indicator, level: str) -> Source | None:
        """The source of ``ind`` at ``level``, or None (no figure at that level)."""
        name = ind.sources.get(level)
        return self.sources[name] if name is not None else None


class _Reader:
    """Typed reads of one JSON object, errors naming ``file: path``."""

    def __init__(self, file: str, data: Any, path: str = "") -> None:
        self.file, self.path = file, path
        if not isinstance(data, dict):
            self.fail("", f"expected an object, got {type(data).__name__}")
        self.data: dict[str, Any] = data

    def fail(self, key: str, why: str) -> None:
        where = ".".join(p for p in (self.path, key) if p) or "(top)"
        raise DashboardError(f"{self.file}: {where}: {why}")

    def at(self, key: str) -> str:
        return ".".join(p for p in (self.path, key) if p)

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        if key not in self.data:
            if default is ...:
                self.fail(key, "required")
            return default
        value = self.data[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            self.fail(key, f"expected {names}, got {value!r}")
        return value

    def text(self, key: str, default: Any = ...) -> str:
        value: str = self.get(key, str, default)
        if value == "" and default is ...:
            self.fail(key, "must not be empty")
        return value

    def choice(self, key: str, allowed: tuple[str, ...], default: Any = ...) -> str:
        value = self.text(key, default)
        if value not in allowed:
            self.fail(key, f"expected one of {', '.join(allowed)}, got {value!r}")
        return value

    def names(self, key: str, allowed: set[str] | tuple[str, ...],
              default: Any = ...) -> tuple[str, ...]:
        values = self.get(key, list, default)
        for i, v in enumerate(values):
            if v not in allowed:
                known = ", ".join(sorted(allowed))
                self.fail(f"{key}[{i}]", f"unknown {v!r} (expected one of {known})")
        return tuple(values)

    def child(self, key: str, index: int | None = None) -> _Reader:
        data = self.data[key] if index is None else self.data[key][index]
        path = self.at(key) + (f"[{index}]" if index is not None else "")
        return _Reader(self.file, data, path)


def _source(r: _Reader, name: str, levels: tuple[str, ...]) -> Source:
    tables = r.get("levels", dict)
    for lv, table in tables.items():
        if lv not in levels:
            r.fail(f"levels.{lv}", f"not a level of the dashboard ({', '.join(levels)})")
        if not isinstance(table, str) or not table:
            r.fail(f"levels.{lv}", f"expected a table name, got {table!r}")
    for lv, other in r.get("totals", dict, {}).items():
        if lv not in tables or other not in tables:
            r.fail(f"totals.{lv}", "both levels must be levels of the source")
    area = r.get("area", dict, {})
    codes = area.get("codes", {}) if isinstance(area, dict) else {}
    if area and (not isinstance(area.get("column"), str) or not isinstance(codes, dict)):
        r.fail("area", "expected {\"column\": name, \"codes\": {level: template}}")
    return Source(
        name=name, dataset=r.text("dataset"), levels=dict(tables),
        filters=dict(r.get("filters", dict, {})), date=r.get("date", str, None),
        population=r.get("population", str, None), area_column=area.get("column"),
        area_codes=dict(codes), note=r.text("note", ""),
        totals=dict(r.get("totals", dict, {})))


def _indicator(r: _Reader, levels: tuple[str, ...], sources: Mapping[str, Source]) -> Indicator:
    raw = r.get("source", (str, dict))
    by_level = {lv: raw for lv in levels} if isinstance(raw, str) else dict(raw)
    for lv, name in by_level.items():
        if lv not in levels:
            r.fail(f"source.{lv}", f"not a level of the dashboard ({', '.join(levels)})")
        if name not in sources:
            r.fail("source", f"unknown source {name!r} (declared: {', '.join(sorted(sources))})")
    by_level = {lv: n for lv, n in by_level.items() if lv in sources[n].levels}
    absent = r.get("absent", dict, {})
    return Indicator(
        id=r.text("id"), sources=by_level, column=r.text("column"), kind=r.choice("kind", KINDS),
        label=r.text("label"), short=r.text("short", "") or r.text("label"),
        daily=r.text("daily", ""), unit=r.text("unit", ""),
        distinct=bool(r.get("distinct", bool, False)), absent=dict(absent))


def _map(r: _Reader, levels: tuple[str, ...], ids: tuple[str, ...]) -> MapSpec:
    spec = MapSpec(level=r.choice("level", levels), indicators=r.names("indicators", ids),
                   default=r.choice("default", ids))
    if spec.default not in spec.indicators:
        r.fail("default", f"{spec.default!r} is not one of the map's indicators")
    return spec


def parse_dashboard(data: Any, file: str) -> Dashboard:
    """Check one declaration (parsed JSON) into a ``Dashboard``.

    Raises: DashboardError naming ``file`` and the field."""
    r = _Reader(file, data)
    levels = r.names("levels", LEVELS)
    if not levels:
        r.fail("levels", "must not be empty")
    sources = {name: _source(r.child("sources").child(name), name, levels)
               for name in r.get("sources", dict)}
    indicators = tuple(_indicator(r.child("indicators", i), levels, sources)
                       for i in range(len(r.get("indicators", list))))
    ids = tuple(i.id for i in indicators)
    if len(set(ids)) != len(ids):
        r.fail("indicators", "ids must be unique")
    kind = r.choice("kind", DASHBOARD_KINDS)
    breakdown = top = None
    if kind == "snapshot":
        b = r.child("breakdown") if "breakdown" in r.data else None
        if b is None:
            r.fail("breakdown", "required for a snapshot dashboard")
        else:
            breakdown = Breakdown(b.text("column"), b.text("label"), b.text("title"),
                                  b.text("note", ""))
        if "top" in r.data:
            t = r.child("top")
            top = TopSpec(t.choice("by", ids), t.get("n", int), t.names("columns", ids))
    slug = r.text("slug")
    if f"{slug}.json" != file.rsplit("/", 1)[-1]:
        r.fail("slug", f"{slug!r} does not match the file name")
    return Dashboard(
        file=file, slug=slug, kind=kind, nav=r.text("nav", slug), title=r.text("title"),
        intro=r.text("intro"), levels=levels, sources=sources, indicators=indicators,
        tiles=r.names("tiles", ids), series=r.names("series", ids, ()),
        map=_map(r.child("map"), levels, ids) if "map" in r.data else None,
        breakdown=breakdown, top=top, as_of=r.text("asOf", ""))


def check_against(dash: Dashboard, registry: Registry) -> None:
    """Check that every source names a registered dataset, and every column it reads (indicator
    columns, filters, date, population) is a field of it.

    Raises: DashboardError naming the file and the field."""
    for s in dash.sources.values():
        ds = registry.get(s.dataset)
        where = f"{dash.file}: sources.{s.name}"
        if ds is None:
            raise DashboardError(f"{where}.dataset: no registered dataset {s.dataset!r}")
        known = set(ds.field_names) | set(LEVELS)
        for key, cols in (("filters", list(s.filters)), ("date", [s.date]),
                          ("population", [s.population]), ("area.column", [s.area_column])):
            for c in cols:
                if c is not None and c not in known:
                    raise DashboardError(f"{where}.{key}: {c!r} is not a field of {s.dataset}")
    for i, ind in enumerate(dash.indicators):
        for name in set(ind.sources.values()):
            ds = registry.get(dash.sources[name].dataset)
            if ds is not None and ind.column not in ds.field_names:
                raise DashboardError(f"{dash.file}: indicators[{i}].column: {ind.column!r} is not "
                                     f"a field of {ds.name}")


@functools.cache
def load_dashboards() -> tuple[Dashboard, ...]:
    """Every shipped declaration (``datasets/dashboards/*.json``), checked, by slug.

    Raises: DashboardError naming the file and field of the first bad declaration."""
    folder = resources.files("opendepot.datasets") / "dashboards"
    out = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            try:
                data = json.loads(entry.read_text("utf-8"))
            except json.JSONDecodeError as e:
                raise DashboardError(f"{entry.name}: (top): not JSON ({e})") from e
            out.append(parse_dashboard(data, entry.name))
    return tuple(out)


def dashboard_batches(
    store: Store, settings: Settings, registry: Registry, changed: set[str] | None,
    dashboards: tuple[Dashboard, ...] | None = None,
) -> Iterator[list[Page]]:
    """The pages and data files of every dashboard that reads a dataset in ``changed`` (None:
    every dashboard), from the published files of each dataset's current version, in batches:
    a time series yields each area's page with its files, then its data files; a snapshot (one
    small table) yields all its files at once. A caller that writes each batch before asking
    for the next holds one area's files in memory, not the site's.

    ``dashboards``: the declarations (default: ``load_dashboards()``). A dataset not published
    yet leaves its figures out ("non publié"), it does not fail.

    Raises: DashboardError (a declaration that does not fit the registry), StorageError,
    ContractError (an unreadable manifest)."""
    from opendepot.site import dashboards_snapshot, dashboards_timeseries
    from opendepot.site.dashboards_data import Tables

    tables = Tables(store, settings)
    for dash in dashboards if dashboards is not None else load_dashboards():
        if changed is not None and not dash.datasets & changed:
            continue
        check_against(dash, registry)
        if dash.kind == "timeseries":
            yield from dashboards_timeseries.batches(dash, tables, registry)
        else:
            yield dashboards_snapshot.pages(dash, tables, registry)


def dashboard_pages(
    store: Store, settings: Settings, registry: Registry, changed: set[str] | None,
    dashboards: tuple[Dashboard, ...] | None = None,
) -> list[Page]:
    """Every file of ``dashboard_batches``, in one list (tests, small sites).

    Raises: as ``dashboard_batches``."""
    return [p for batch in dashboard_batches(store, settings, registry, changed, dashboards)
            for p in batch]
