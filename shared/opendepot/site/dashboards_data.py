"""The data behind the dashboards: published tables read through the manifests, filtered to
the declared rows, and the series and figures computed from them.

Rules (from the 2020 dashboard's bug reports):

- a total row (``sexe`` 0, ``cl_age90`` 0) is never summed with its parts: sources filter to
  the declared rows, and rows that are still not one per (area, day) are a declaration error;
- a day without a row, or with an empty value, is missing: never zero-filled, never joined by
  a line; a daily difference or a 7-day average needs every day it is made of.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd
import pyarrow.parquet as pq

from opendepot.config import Settings
from opendepot.contracts import Manifest
from opendepot.publication import read_manifest
from opendepot.registry import load_cog
from opendepot.site.dashboards import Dashboard, DashboardError, Indicator, Source
from opendepot.storage import Store

Value = float | None
"""A figure, or None when missing."""
PER = 100_000
"""Figures per 100,000 inhabitants."""


@dataclass(frozen=True)
class Area:
    """An area of a dashboard: ``id`` as in URLs (``fra``, ``reg-11``, ``dep-75``)."""

    level: str
    code: str
    """The code in published tables: ``FR``, ``11``, ``75``."""
    name: str

    @property
    def id(self) -> str:
        return "fra" if self.level == "fra" else f"{self.level}-{self.code}"


FRANCE = Area("fra", "FR", "France")


def areas(levels: Sequence[str]) -> list[Area]:
    """France, the regions and the departments (INSEE COG 2020) of ``levels``, in that order."""
    cog = load_cog()
    out = [FRANCE] if "fra" in levels else []
    if "reg" in levels:
        out += [Area("reg", c, r["name"]) for c, r in sorted(cog.regions.items())]
    if "dep" in levels:
        out += [Area("dep", c, d["name"]) for c, d in sorted(cog.departments.items())]
    return out


class Tables:
    """Published tables of current versions, read once each (``{dataset}-{level}.parquet`` of
    the manifest's resources)."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store, self.settings = store, settings
        self._manifests: dict[str, Manifest | None] = {}
        self._frames: dict[tuple[str, str], pd.DataFrame | None] = {}

    def manifest(self, dataset: str) -> Manifest | None:
        """The current manifest of ``dataset``, or None (not published)."""
        if dataset not in self._manifests:
            self._manifests[dataset] = read_manifest(self.store, self.settings, dataset)[0]
        return self._manifests[dataset]

    def frame(self, dataset: str, table: str) -> pd.DataFrame | None:
        """The published table ``table`` (level) of ``dataset``, or None (not published)."""
        key = (dataset, table)
        if key not in self._frames:
            m = self.manifest(dataset)
            path = None if m is None else next(
                (r.path for r in m.resources if r.level == table and r.format == "parquet"), None)
            self._frames[key] = None if path is None else pq.read_table(io.BytesIO(
                self.store.get(self.settings.published_bucket, path))).to_pandas()
        return self._frames[key]


def _area_codes(src: Source, level: str, frame: pd.DataFrame) -> pd.Series:
    """The area code (``FR``, ``11``, ``75``) of each row, or None for rows of other areas."""
    if src.area_column is None:
        return frame[level].astype("string")
    template = src.area_codes.get(level)
    if template is None:
        raise DashboardError(f"sources.{src.name}.area.codes.{level}: required")
    raw = frame[src.area_column].astype("string")
    if "{code}" not in template:
        return raw.where(raw != template, "FR").where(raw == template, None)
    prefix, suffix = template.split("{code}", 1)
    ok = raw.str.startswith(prefix) & raw.str.endswith(suffix)
    return raw.str.slice(len(prefix), len(raw) if not suffix else -len(suffix)).where(ok, None)


def rows(tables: Tables, dash: Dashboard, src: Source, level: str) -> pd.DataFrame | None:
    """The rows of ``src`` at ``level`` kept by its filters, with an ``_area`` column (the area
    code), or None when the dataset is not published.

    Raises: DashboardError when the kept rows are not one per area (and day): a filter is
    missing, and summing them would add a total to its parts."""
    frame = tables.frame(src.dataset, src.levels[level])
    if frame is None:
        return None
    keep = pd.Series(True, index=frame.index)
    for col, want in src.filters.items():
        keep &= frame[col].astype("string") == str(want)
    out = frame[keep].copy()
    out["_area"] = _area_codes(src, level, out)
    out = out[out["_area"].notna()]
    key = ["_area"] + ([src.date] if src.date else [])
    if dash.kind == "snapshot" and dash.breakdown is not None:
        key.append(dash.breakdown.column)
    if out.duplicated(key).any():
        raise DashboardError(f"{dash.file}: sources.{src.name}.filters: rows of {src.dataset} "
                             f"({src.levels[level]}) are not one per {', '.join(key)}")
    return out


def number(value: object) -> Value:
    """A cell as a float, None when missing (None, NaN, NA)."""
    if value is None or value is pd.NA:
        return None
    f = float(str(value)) if not isinstance(value, (int, float)) else float(value)
    return None if math.isnan(f) else f


@dataclass(frozen=True)
class DailySeries:
    """One indicator of one area, every day from its first to its last (missing days None)."""

    start: date
    values: tuple[Value, ...]
    """As published, one per day."""
    population: tuple[Value, ...] = ()
    """Reference population per day, when the source publishes one (else empty)."""

    @property
    def dates(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range(len(self.values))]

    @property
    def end(self) -> date:
        return self.start + timedelta(days=len(self.values) - 1)

    def at(self, day: date) -> Value:
        """The value on ``day`` (None outside the series or missing)."""
        i = (day - self.start).days
        return self.values[i] if 0 <= i < len(self.values) else None


def daily_series(frame: pd.DataFrame, src: Source, ind: Indicator) -> dict[str, DailySeries]:
    """``ind``'s series per area code, from ``rows``' output."""
    out: dict[str, DailySeries] = {}
    assert src.date is not None
    days = pd.to_datetime(frame[src.date]).dt.date.tolist()
    codes = frame["_area"].astype(str).tolist()
    values = [number(v) for v in frame[ind.column].tolist()]
    pops = ([number(v) for v in frame[src.population].tolist()] if src.population
            else [None] * len(values))
    grouped: dict[str, dict[date, tuple[Value, Value]]] = {}
    for code, d, v, p in zip(codes, days, values, pops, strict=True):
        grouped.setdefault(code, {})[d] = (v, p)
    for code in sorted(grouped):
        by_day = grouped[code]
        present = [d for d, (v, _) in by_day.items() if v is not None]
        if not present:
            continue
        start, end = min(present), max(present)
        span = [start + timedelta(days=i) for i in range((end - start).days + 1)]
        got = [by_day.get(d, (None, None)) for d in span]
        pop = tuple(p for _, p in got)
        out[code] = DailySeries(start, tuple(v for v, _ in got),
                                pop if any(p is not None for p in pop) else ())
    return out


def differences(values: Sequence[Value]) -> list[Value]:
    """Day-to-day differences of a cumulative series: None where either day is missing (the
    first day has no previous one)."""
    return [None] + [b - a if a is not None and b is not None else None
                     for a, b in zip(values, values[1:], strict=False)]


def rolling(values: Sequence[Value], days: int = 7, *, mean: bool = True) -> list[Value]:
    """The ``days``-day average (or sum) ending each day; None unless all of them are known."""
    out: list[Value] = []
    total, run = 0.0, 0
    for i, v in enumerate(values):
        if v is None:
            total, run = 0.0, 0
        else:
            total += v
            run += 1
            if run > days:
                old = values[i - days]
                total -= old if old is not None else 0.0
        ok = run >= days
        out.append((total / days if mean else total) if ok else None)
    return out


def per_100k(values: Sequence[Value], population: Sequence[Value]) -> list[Value]:
    """``value / population * 100,000`` each day; None without both."""
    return [v / p * PER if v is not None and p else None
            for v, p in zip(values, population, strict=False)]


def cell(value: Value, digits: int = 0) -> str:
    """A CSV (and chart table) cell: integers bare, others with ``digits`` decimals, ``""``
    when missing."""
    if value is None:
        return ""
    if digits == 0:
        return str(int(round(value)))
    return f"{value:.{digits}f}"


def csv_text(header: Sequence[str], table: Sequence[Sequence[str]]) -> bytes:
    """A ``;``-separated UTF-8 CSV (cells are codes, dates and numbers: never quoted)."""
    lines = [";".join(header)] + [";".join(r) for r in table]
    return ("\n".join(lines) + "\n").encode("utf-8")


def snapshot_rows(
    tables: Tables, dash: Dashboard, level: str
) -> dict[str, pd.DataFrame]:
    """For a snapshot dashboard: each source's rows at ``level`` keyed by source name (only the
    sources of some indicator at that level, and published)."""
    out: dict[str, pd.DataFrame] = {}
    for ind in dash.indicators:
        src = dash.source_of(ind, level)
        if src is not None and src.name not in out:
            frame = rows(tables, dash, src, level)
            if frame is not None:
                out[src.name] = frame
    return out


def area_total(frame: pd.DataFrame, column: str) -> Value:
    """Sum of ``column`` over the breakdown rows of ONE area (``frame`` holds one area): None
    when a row has no value (a partial sum would be wrong)."""
    values = [number(v) for v in frame[column]] if column in frame else []
    if not values or any(v is None for v in values):
        return None
    return float(sum(v for v in values if v is not None))


def versions_of(tables: Tables, dash: Dashboard) -> list[dict[str, str]]:
    """The datasets read and their current versions (``dataset``, ``version``, ``published_at``),
    for the sources line of each page."""
    out = []
    for name in sorted(dash.datasets):
        m = tables.manifest(name)
        if m is not None:
            out.append({"dataset": name, "version": m.version, "published_at": m.published_at})
    return out
