"""Implausible rises: a cumulative series that jumps in one day far beyond its usual daily rise."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from opendepot.checks.base import Check, Rows, fmt_key, num
from opendepot.checks.series import AREA, DailySeries
from opendepot.checks.series import _Series as Series  # the shape DailySeries gives
from opendepot.issues import IssueList, issue
from opendepot.registry import Cog, Dataset


class ImplausibleRise(Check):
    """On the published rows of a dataset with a date field and cumulative measures: a one-day
    rise (two consecutive days of one series: the key but the day) larger than
    ``plausibility.riseFactor`` times the series' median positive one-day rise, and at least
    ``plausibility.riseMinimum``, in a series with at least ``plausibility.riseHistory``
    positive one-day rises: an ``implausible-rise`` warning naming key, day and size.

    The median is the series' own, over its whole history (robust: one jump does not move it).
    Rises across a missing day, or from or to a missing value, are not one-day rises. Memory:
    the rows' sort order, one measure as float64, and the positive one-day rises (16 bytes
    each); the sorted rows are gone through ``WINDOW_ROWS`` at a time.
    """

    emits: ClassVar[tuple[str, ...]] = ("implausible-rise",)

    def __init__(self, dataset: Dataset, cog: Cog) -> None:
        super().__init__(dataset, cog)
        self.daily = DailySeries(dataset, cog)
        """Its series and their sort (the same as ``cumulative-decrease``'s)."""

    @classmethod
    def applies(cls, dataset: Dataset) -> bool:
        p = dataset.plausibility
        return (dataset.date_field is not None and p.rise_factor > 0
                and "cumulative" in dataset.measures.values())

    def accepted(self, rows: Rows) -> None:
        s = self.daily._series(rows)
        if s is None:
            return
        cumulative = [m for m, kind in self.dataset.measures.items() if kind == "cumulative"]
        order, same = self.daily._sorted(rows, s)  # cumulative-decrease's, when it ran
        rows.keys.pk_sorted = rows.keys.series_sorted = None  # their last use
        days = np.array([np.nan if x is None else float(x.toordinal())
                         for x in s.values[s.date]], np.float64)
        for m in cumulative:
            read = rows.measure(m)
            if read is not None:
                rises = positive_rises(order, same, days, s.codes[s.date], read[0])
                _flag(self, s, m, order, read[0], rises, rows.run.issues.warnings)


WINDOW_ROWS = 1 << 20
"""Sorted rows gone through at a time by ``positive_rises``."""


def positive_rises(order: np.ndarray, same: np.ndarray, day_of_code: np.ndarray,
                   date_codes: np.ndarray, values: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The one-day rises of the rows sorted by ``order`` (``same``: a sorted row is in the
    series of the one before it): for each pair of sorted positions (``j``, ``j + 1``) of one
    series, a day apart (``day_of_code`` of their ``date_codes``: day numbers, NaN for none),
    whose ``values`` rose: (``j``, the series of ``j + 1`` numbered from 0 in sorted order,
    the rise), ascending ``j``; and how many series there are. ``WINDOW_ROWS`` sorted rows at a
    time: never a whole sorted copy of the values."""
    n = order.size
    small = np.int32 if n < np.iinfo(np.int32).max else np.int64
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    series = 1 if n else 0  # series begun at sorted positions up to the window's first
    for a in range(0, max(n - 1, 0), WINDOW_ROWS):
        b = min(a + WINDOW_ROWS, n - 1)
        at = order[a : b + 1]
        rise = np.diff(values[at])  # NaN compares False below
        begins = ~same[a + 1 : b + 1]
        hit = np.flatnonzero(~begins & (np.diff(day_of_code[date_codes[at]]) == 1.0)
                             & (rise > 0))
        group = series + np.cumsum(begins) - 1
        found.append(((hit + a).astype(small), group[hit].astype(small), rise[hit]))
        series += int(begins.sum())
    if not found:
        return np.empty(0, small), np.empty(0, small), np.empty(0), series
    js, groups, rises = (np.concatenate(parts) for parts in zip(*found, strict=True))
    return js, groups, rises, series


def medians(group: np.ndarray, values: np.ndarray, n_groups: int,
            least: int) -> np.ndarray:
    """Median of ``values`` per ``group`` id (0..``n_groups`` - 1), NaN for the groups with fewer
    than ``least`` values. Shape ``(n_groups,)``, float64."""
    out = np.full(n_groups, np.nan)
    if values.size == 0:
        return out
    sorted_values = _sorted_in_groups(group, values, n_groups)
    counts = np.bincount(group, minlength=n_groups)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    has = counts >= max(least, 1)
    low = starts[has] + (counts[has] - 1) // 2
    high = starts[has] + counts[has] // 2
    out[has] = (sorted_values[low] + sorted_values[high]) / 2
    return out


def _sorted_in_groups(group: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """``values`` sorted by (``group``, value): ``values[np.lexsort((values, group))]``. Whole
    numbers (counts, their rises) with ``group`` non-decreasing (sorted rows) are sorted as one
    int64 key per value, the group above the value (one ``numpy.sort``, several times faster)."""
    low, high = float(values.min()), float(values.max())
    span = high - low + 1
    if (span < 2**31 and n_groups * span < 2**62 and bool((group[1:] >= group[:-1]).all())
            and bool((values == np.floor(values)).all())):
        key = group.astype(np.int64) * np.int64(span)
        key += (values - low).astype(np.int64)
        key.sort()
        key %= np.int64(span)
        return key.astype(np.float64) + low
    return values[np.lexsort((values, group))]


def _flag(check: ImplausibleRise, s: Series, m: str, order: np.ndarray, values: np.ndarray,
          rises: tuple[np.ndarray, np.ndarray, np.ndarray, int], warnings: IssueList) -> None:
    """Warn on measure ``m``'s implausible rises (``values``: its staged values; ``rises``:
    their ``positive_rises``)."""
    p = check.dataset.plausibility
    js, groups, rise, n_series = rises
    base = medians(groups, rise, n_series, p.rise_history)[groups]
    with np.errstate(invalid="ignore"):
        flagged = np.flatnonzero((rise >= p.rise_minimum) & (rise > p.rise_factor * base))
    shown = flagged[: warnings.room()]
    for f in shown:
        j = int(js[f])
        row, prev = int(order[j + 1]), int(order[j])
        where = tuple(s.values[k][s.codes[k][row]] for k in s.series)
        area = fmt_key(tuple(s.series), where).replace(f"{AREA}=FR", "France")
        warnings.add(issue(
            "implausible-rise", line=int(s.lines[row]), field=m, cell=num(values[row]),
            area=area, rise=num(rise[f]), day=s.values[s.date][s.codes[s.date][row]],
            before=num(values[prev]), day_before=s.values[s.date][s.codes[s.date][prev]],
            times=f"{rise[f] / base[f]:.0f}", median=num(base[f]), factor=num(p.rise_factor)))
    warnings.count(flagged.size - shown.size, "implausible-rise")
