"""The data behind the dashboards: published tables read through the manifests, filtered to
the declared rows, and the series and figures computed from them.

Rules (from the 2020 dashboard's bug reports):

- a total row (``sexe`` 0, ``cl_age90`` 0) is never summed with its parts: sources filter to
  the declared rows, and rows that are still not one per (area, day) are a declaration error;
- a day without a row, or with an empty value, is missing: never zero-filled, never joined by
  a line; a daily difference or a 7-day average needs every day it is made of.

Time series are read with Arrow (``grid``): only the columns they use, one batch of rows at a
time (``tabular.ParquetSource``: by ranges when the object is large and the store can), kept
rows only; the values go into one dense ``float64`` array per column, area × day (NaN: no row,
or an empty cell). Memory is those arrays and the kept rows, not the published table: the ×100
bench file (11 M rows, 36,500 days) keeps 3.7 M rows and 4 arrays of 101 × 36,500 values.
Series (``DailySeries``) are NumPy arrays; ``differences``, ``rolling`` and ``per_100k`` take
and give lists (``None`` missing), ``*_array`` NumPy arrays (NaN missing).
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from opendepot.config import Settings
from opendepot.contracts import Manifest, Resource
from opendepot.publication import read_manifest
from opendepot.registry import load_cog
from opendepot.site.dashboards import Dashboard, DashboardError, Indicator, Source
from opendepot.storage import Store
from opendepot.tabular import ParquetSource

Value = float | None
"""A figure, or None when missing."""
PER = 100_000
"""Figures per 100,000 inhabitants."""
BATCH_ROWS = 1 << 20
"""Rows read at once by ``grid`` (a row group of the published files)."""
EPOCH = date(1970, 1, 1)


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

    def resource(self, dataset: str, table: str) -> Resource | None:
        """The Parquet file of ``table`` (level) of ``dataset``, or None (not published)."""
        m = self.manifest(dataset)
        return None if m is None else next(
            (r for r in m.resources if r.level == table and r.format == "parquet"), None)

    def frame(self, dataset: str, table: str) -> pd.DataFrame | None:
        """The published table ``table`` (level) of ``dataset``, whole, or None (not published):
        for snapshots (small tables); time series read ``parquet``."""
        key = (dataset, table)
        if key not in self._frames:
            r = self.resource(dataset, table)
            self._frames[key] = None if r is None else pq.read_table(io.BytesIO(
                self.store.get(self.settings.published_bucket, r.path))).to_pandas()
        return self._frames[key]

    def parquet(self, dataset: str, table: str) -> pq.ParquetFile | None:
        """The published table ``table`` of ``dataset`` opened for reading (its footer read;
        columns and row groups on demand), or None (not published)."""
        r = self.resource(dataset, table)
        if r is None:
            return None
        source = ParquetSource(self.store, self.settings.published_bucket, r.path, r.bytes)
        return pq.ParquetFile(source.open())


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


def _codes(src: Source, level: str, column: pa.Array) -> pa.Array:
    """``_area_codes`` in Arrow: each row's area code (string), null for other areas."""
    raw = pc.cast(column, pa.string())
    if src.area_column is None:
        return raw
    template = src.area_codes.get(level)
    if template is None:
        raise DashboardError(f"sources.{src.name}.area.codes.{level}: required")
    none = pa.scalar(None, pa.string())
    if "{code}" not in template:
        return pc.if_else(pc.equal(raw, template), pa.scalar("FR"), none)
    prefix, suffix = template.split("{code}", 1)
    ok = pc.and_(pc.starts_with(raw, prefix), pc.ends_with(raw, suffix))
    code = pc.utf8_slice_codeunits(raw, len(prefix), -len(suffix) if suffix else None)
    return pc.if_else(ok, code, none)


def _kept(src: Source, batch: pa.RecordBatch) -> pa.Array:
    """Which rows ``src.filters`` keep, compared as text as ``rows`` does (an integer column
    with the value as an integer, when its text is the same: ``0`` and ``"0"``)."""
    keep = pa.array(np.ones(batch.num_rows, dtype=bool))
    for col, want in src.filters.items():
        column, text = batch.column(col), str(want)
        value: Any = text
        if pa.types.is_integer(column.type) and re.fullmatch(r"-?[1-9][0-9]*|0", text):
            value = pa.scalar(int(text), column.type)
        else:
            column = pc.cast(column, pa.string())
        keep = pc.and_(keep, pc.equal(column, value))
    return pc.fill_null(keep, False)


def _floats(column: pa.Array) -> pa.Array:
    """A column as float64 (``number``: an empty text is missing)."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        column = pc.if_else(pc.equal(pc.utf8_trim_whitespace(column), ""),
                            pa.scalar(None, column.type), column)
    return pc.cast(column, pa.float64())


@dataclass(frozen=True)
class Grid:
    """One source's kept rows at one level as dense arrays: ``values[column][area, day]``
    (NaN: no row, or an empty cell) for the areas ``codes`` (sorted) and the days from
    ``start``."""

    codes: tuple[str, ...]
    start: date
    days: int
    values: Mapping[str, np.ndarray]


def _rows(pf: pq.ParquetFile, src: Source, level: str,
          columns: Sequence[str]) -> Iterator[tuple[pa.Array, np.ndarray, pa.RecordBatch]]:
    """The kept rows of ``src`` at ``level``, one batch at a time: (area codes, days since
    1970, the batch's ``columns``), rows of other areas or without a day left out."""
    assert src.date is not None
    area = src.area_column or level
    read = list(dict.fromkeys([area, src.date, *src.filters, *columns]))
    for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=read):
        batch = batch.filter(_kept(src, batch))
        day = batch.column(src.date)
        if not pa.types.is_date32(day.type):  # text (ISO dates) or a timestamp
            day = pc.cast(day, pa.date32())
        codes = _codes(src, level, batch.column(area))
        ok = pc.and_(pc.is_valid(codes), pc.is_valid(day))
        yield (codes.filter(ok), pc.cast(day.filter(ok), pa.int32()).to_numpy(),
               batch.filter(ok))


def grid(tables: Tables, dash: Dashboard, src: Source, level: str,
         columns: Sequence[str]) -> Grid | None:
    """The rows of ``src`` at ``level`` kept by its filters, as a ``Grid`` of ``columns`` (a
    column the table lacks has no array); None when the dataset is not published.

    One read, one batch of rows at a time; of each batch only the kept rows' area (a number),
    day and values are kept until the grid is filled: 8 bytes per value, 8 per row.

    Raises: DashboardError when the kept rows are not one per area and day (a filter is
    missing, and summing them would add a total to its parts); StorageError."""
    pf = tables.parquet(src.dataset, src.levels[level])
    if pf is None:
        return None
    have = [c for c in dict.fromkeys(columns) if c in set(pf.schema_arrow.names)]
    index: dict[str, int] = {}
    parts = []
    for codes, day, batch in _rows(pf, src, level, have):
        encoded = pc.dictionary_encode(codes)
        ids = np.array([index.setdefault(c, len(index)) for c in encoded.dictionary.to_pylist()],
                       dtype=np.int32)
        parts.append((ids[encoded.indices.to_numpy(zero_copy_only=False)], day,
                      [_floats(batch.column(c)).to_numpy(zero_copy_only=False) for c in have]))
    names = sorted(index)
    rank = np.zeros(len(names), dtype=np.int64)
    rank[[index[n] for n in names]] = np.arange(len(names))
    spans = [(int(d.min()), int(d.max())) for _, d, _ in parts if len(d)]
    first = min((a for a, _ in spans), default=0)
    days = max((b for _, b in spans), default=first - 1) - first + 1
    seen = np.zeros(len(names) * days, dtype=bool)
    values = {c: np.full(len(names) * days, np.nan) for c in have}
    while parts:
        area, day, vals = parts.pop(0)
        cell = rank[area] * days + (day - first)
        before = np.count_nonzero(seen)
        seen[cell] = True
        if np.count_nonzero(seen) - before != len(cell):  # a cell seen twice
            raise DashboardError(f"{dash.file}: sources.{src.name}.filters: rows of {src.dataset}"
                                 f" ({src.levels[level]}) are not one per _area, {src.date}")
        for c, v in zip(have, vals, strict=True):
            values[c][cell] = v
    return Grid(tuple(names), EPOCH + timedelta(days=first), days,
                {c: v.reshape(len(names), days) for c, v in values.items()})


def _value(x: float) -> Value:
    return None if math.isnan(x) else float(x)


@dataclass(frozen=True)
class DailySeries:
    """One indicator of one area, every day from its first to its last (missing days NaN)."""

    start: date
    values: np.ndarray
    """As published, one float per day, NaN when missing."""
    population: np.ndarray | None = None
    """Reference population per day, when the source publishes one (else None)."""

    @property
    def dates(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range(len(self.values))]

    @property
    def end(self) -> date:
        return self.start + timedelta(days=len(self.values) - 1)

    def at(self, day: date) -> Value:
        """The value on ``day`` (None outside the series or missing)."""
        i = (day - self.start).days
        return _value(self.values[i]) if 0 <= i < len(self.values) else None

    def population_at(self, day: date) -> Value:
        """The reference population on ``day`` (None: none published, outside, missing)."""
        i = (day - self.start).days
        ok = self.population is not None and 0 <= i < len(self.values)
        return _value(self.population[i]) if ok and self.population is not None else None


def daily_series(g: Grid, src: Source, ind: Indicator) -> dict[str, DailySeries]:
    """``ind``'s series per area code, from ``grid``'s output: from each area's first known
    value to its last."""
    values = g.values.get(ind.column)
    if values is None:
        return {}
    pops = g.values.get(src.population) if src.population else None
    known = ~np.isnan(values)
    out: dict[str, DailySeries] = {}
    for a in np.flatnonzero(known.any(axis=1)):
        row = known[a]
        first, last = int(row.argmax()), g.days - 1 - int(row[::-1].argmax())
        pop = None if pops is None else pops[a, first:last + 1]
        out[g.codes[a]] = DailySeries(
            g.start + timedelta(days=first), values[a, first:last + 1],
            pop if pop is not None and not np.isnan(pop).all() else None)
    return out


def _array(values: Sequence[Value] | np.ndarray) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return values.astype(np.float64, copy=False)
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _list(values: np.ndarray) -> list[Value]:
    return [None if math.isnan(v) else v for v in values.tolist()]


def differences_array(values: np.ndarray) -> np.ndarray:
    """``differences`` over an array (NaN missing)."""
    out = np.full(len(values), np.nan)
    out[1:] = values[1:] - values[:-1]
    return out


def differences(values: Sequence[Value] | np.ndarray) -> list[Value]:
    """Day-to-day differences of a cumulative series: None where either day is missing (the
    first day has no previous one)."""
    return _list(differences_array(_array(values)))


def rolling_array(values: np.ndarray, days: int = 7, *, mean: bool = True) -> np.ndarray:
    """``rolling`` over an array (NaN missing)."""
    known = ~np.isnan(values)
    sums = np.concatenate([[0.0], np.cumsum(np.where(known, values, 0.0))])
    counts = np.concatenate([[0], np.cumsum(known)])
    end = np.arange(1, len(values) + 1)
    start = np.maximum(end - days, 0)
    whole = (end >= days) & (counts[end] - counts[start] == days)
    total = sums[end] - sums[start]
    return np.where(whole, total / days if mean else total, np.nan)


def rolling(values: Sequence[Value] | np.ndarray, days: int = 7, *,
            mean: bool = True) -> list[Value]:
    """The ``days``-day average (or sum) ending each day; None unless all of them are known."""
    return _list(rolling_array(_array(values), days, mean=mean))


def per_100k_array(values: np.ndarray, population: np.ndarray) -> np.ndarray:
    """``per_100k`` over arrays (NaN missing; a zero population gives NaN)."""
    ok = ~np.isnan(values) & ~np.isnan(population) & (population != 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ok, values / np.where(ok, population, 1.0) * PER, np.nan)


def per_100k(values: Sequence[Value] | np.ndarray,
             population: Sequence[Value] | np.ndarray) -> list[Value]:
    """``value / population * 100,000`` each day; None without both."""
    v, p = _array(values), _array(population)
    n = min(len(v), len(p))
    return _list(per_100k_array(v[:n], p[:n]))


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
