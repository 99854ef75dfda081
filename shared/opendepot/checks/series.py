"""Daily series: cumulative counts that go down, and missing days, per area and dimension."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

import numpy as np

from opendepot import keysort
from opendepot.checks.base import Check, Rows, fmt_key
from opendepot.issues import IssueList, issue
from opendepot.registry import NATIONAL_CODE, Dataset

AREA = "__area"
"""The area column of a national file without one (one area: France)."""


@dataclass
class _Series:
    """The published rows' key codes, for the series checks."""

    codes: dict[str, np.ndarray]
    values: dict[str, list[Any]]
    lines: np.ndarray
    geo: str
    date: str
    series: list[str]
    """The key columns but the day (the area alone when there is none)."""
    everything: bool
    """Every row read is published (the codes are the keys' own arrays)."""


class DailySeries(Check):
    """On the published rows of a dataset with a date field: a cumulative measure going down
    from one day to the next in a series (``cumulative-decrease``), and days missing between
    an area's first and last (``missing-day``), both warnings. Packed integer codes sorted by
    series then day; values formatted only for the rows reported."""

    emits = ("cumulative-decrease", "missing-day")

    @classmethod
    def applies(cls, dataset: Dataset) -> bool:
        return dataset.date_field is not None

    def accepted(self, rows: Rows) -> None:
        s = self._series(rows)
        if s is None:
            return
        warnings = rows.run.issues.warnings
        cumulative = [m for m, kind in self.dataset.measures.items() if kind == "cumulative"]
        if cumulative:
            order, same = self._sorted(rows, s)
            for m in cumulative:
                read = rows.measure(m)
                if read is not None:  # (no value at all: nothing goes down)
                    _decrease_warnings(s, m, read[0], order, same, warnings)
            del order, same
        rows.keys.pk_sorted = None  # its last use (the series' sort is kept: ``_sorted``)
        _missing_days(s, warnings)

    def _series(self, rows: Rows) -> _Series | None:
        keys, date = rows.keys, self.dataset.date_field
        good = keys.good
        n = int(good.sum())
        if date is None or n == 0:
            return None
        everything = bool(good.all())
        codes = {k: c if everything else c[good] for k, c in keys.codes.items()}
        values = dict(keys.values)
        geo = self.dataset.geography.field
        if geo is None:
            geo = AREA
            codes[geo], values[geo] = np.zeros(n, np.int32), [NATIONAL_CODE, None]
        series = [k for k in self.dataset.primary_key if k != date] or [geo]
        lines = keys.lines if everything else keys.lines[good]
        return _Series(codes, values, lines, geo, date, series, everything)

    def _sorted(self, rows: Rows, s: _Series) -> tuple[np.ndarray, np.ndarray]:
        """(the rows' order by series then day, whether each sorted row is in the series of
        the one before it); the primary key's sort when it is the same key. Kept in
        ``Keys.series_sorted`` for the next series check (``ImplausibleRise``)."""
        if rows.keys.series_sorted is None:
            rows.keys.series_sorted = self._sort(rows, s)
        return rows.keys.series_sorted

    def _sort(self, rows: Rows, s: _Series) -> tuple[np.ndarray, np.ndarray]:
        n_days = len(s.values[s.date])
        cols = [s.codes[k] for k in s.series] + [s.codes[s.date]]
        pk_sorted = rows.keys.pk_sorted
        packed = keysort.pack(cols, [len(s.values[k]) for k in s.series] + [n_days])
        if s.everything and pk_sorted is not None and [*s.series, s.date] == list(
                self.dataset.primary_key):
            order = pk_sorted  # the same packing: the primary key's sort
        else:
            order = np.lexsort(cols[::-1]) if packed is None else keysort.sort_order(*packed)[0]
        if packed is None:
            return order, keysort.same_as_previous(cols[:-1], order)
        return order, same_series(packed[0], order, n_days)


def _decrease_warnings(s: _Series, m: str, v: np.ndarray, order: np.ndarray, same: np.ndarray,
                       warnings: IssueList) -> None:
    flagged = decreases(v, order, same)
    shown = flagged[: warnings.room()]
    rows, prevs = order[shown], order[shown - 1]
    days, day_codes = s.values[s.date], s.codes[s.date]
    areas: dict[tuple[int, ...], str] = {}  # a series' text, made once
    series = zip(*(s.codes[k][rows].tolist() for k in s.series), strict=True)
    for codes, line, before_line, cell, before, day, day_before in zip(
            series, s.lines[rows].tolist(), s.lines[prevs].tolist(), v[rows].tolist(),
            v[prevs].tolist(), day_codes[rows].tolist(), day_codes[prevs].tolist(), strict=True):
        area = areas.get(codes)
        if area is None:
            where = tuple(s.values[k][c] for k, c in zip(s.series, codes, strict=True))
            area = areas[codes] = fmt_key(tuple(s.series), where).replace(f"{AREA}=FR",
                                                                         "France")
        warnings.add(issue("cumulative-decrease", line=line, field=m, cell=str(int(cell)),
                           area=area, before=int(before), day_before=days[day_before],
                           day=days[day], before_line=before_line))
    warnings.count(flagged.size - shown.size, "cumulative-decrease")


def _missing_days(s: _Series, warnings: IssueList) -> None:
    """Per area, consecutive dates more than one day apart."""
    n_days = len(s.values[s.date])
    dated = s.codes[s.date] != n_days - 1  # the last code is null
    all_dated = bool(dated.all())
    g_codes = s.codes[s.geo] if all_dated else s.codes[s.geo][dated]
    d_codes = s.codes[s.date] if all_dated else s.codes[s.date][dated]
    space = len(s.values[s.geo]) * n_days
    pair = g_codes.astype(np.int32 if space < np.iinfo(np.int32).max else np.int64)
    pair *= n_days
    pair += d_codes  # (area, day) packed, area first
    del g_codes, d_codes
    if keysort.dense(space, pair.size):
        present = np.flatnonzero(np.bincount(pair, minlength=space))  # sorted (area, day) ids
    else:
        present = np.unique(pair)
    epoch = datetime.date(1970, 1, 1).toordinal()
    day_numbers = (np.array([x.toordinal() for x in s.values[s.date][:-1]], np.int64)
                   - epoch).astype("datetime64[D]")
    d = day_numbers[present % n_days]
    g = present // n_days
    step = np.diff(d).astype(np.int64)
    gaps = np.flatnonzero((step > 1) & (g[1:] == g[:-1]))
    if gaps.size == 0:
        return
    _, first_index = np.unique(pair, return_index=True)  # earliest row of each (area, day)
    first_row = first_index if all_dated else np.flatnonzero(dated)[first_index]
    shown_gaps = gaps[: warnings.room()]
    for i in shown_gaps:
        start, end = d[i], d[i + 1]
        area = s.values[s.geo][g[i + 1]]
        n_missing = int(step[i]) - 1  # the days named: 5 at most (a typo year makes millions)
        days = ", ".join(str(start + k) for k in range(1, min(n_missing, 5) + 1))
        days += " ..." if n_missing > 5 else ""
        where = "" if s.geo == AREA else f"for {s.geo} {area} "
        warnings.add(issue("missing-day", line=int(s.lines[first_row[i + 1]]), field=s.date,
                           cell=str(end), where=where, days=days, start=start,
                           missing=n_missing))
    warnings.count(gaps.size - shown_gaps.size, "missing-day")


def same_series(key: np.ndarray, order: np.ndarray, n_days: int) -> np.ndarray:
    """True where a sorted row is in the same series as the one before it: packed keys whose day
    (their last digit, base ``n_days``) aside are equal; a million rows at a time."""
    same = np.zeros(order.size, dtype=bool)
    step = 1 << 20
    for start in range(1, order.size, step):
        stop = min(start + step, order.size)
        window = key[order[start - 1 : stop]] // n_days
        same[start:stop] = window[1:] == window[:-1]
    return same


def decreases(values: np.ndarray, order: np.ndarray, same: np.ndarray) -> np.ndarray:
    """Sorted positions ``i`` where ``values[order[i]] < values[order[i - 1]]`` and ``same[i]``
    (NaN compares False: never across a missing value); ``order`` taken a million rows at a
    time, so the sorted values are never all in memory."""
    found = []
    step = 1 << 20
    for start in range(1, order.size, step):
        stop = min(start + step, order.size)
        window = values[order[start - 1 : stop]]
        down = (window[1:] < window[:-1]) & same[start:stop]
        found.append(np.flatnonzero(down) + start)
    return np.concatenate(found) if found else np.empty(0, np.int64)
