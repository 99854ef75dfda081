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
    the rows' sort order and about five float64 arrays of the published rows (50 bytes a row).
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
        order, same = self.daily._sorted(rows, s)
        rows.keys.pk_sorted = None
        days = np.array([np.nan if x is None else float(x.toordinal())
                         for x in s.values[s.date]], np.float64)
        day = days[s.codes[s.date][order]]
        one_day = same[1:] & (np.diff(day) == 1.0)  # sorted position i + 1 vs i
        del day
        group = np.cumsum(~same) - 1  # series of each sorted row
        for m in cumulative:
            read = rows.measure(m)
            if read is not None:
                _flag(self, s, m, order, group, one_day, read[0][order],
                      rows.run.issues.warnings)


def medians(group: np.ndarray, values: np.ndarray, n_groups: int,
            least: int) -> np.ndarray:
    """Median of ``values`` per ``group`` id (0..``n_groups`` - 1), NaN for the groups with fewer
    than ``least`` values. Shape ``(n_groups,)``, float64."""
    out = np.full(n_groups, np.nan)
    if values.size == 0:
        return out
    o = np.lexsort((values, group))
    sorted_values = values[o]
    counts = np.bincount(group, minlength=n_groups)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    has = counts >= max(least, 1)
    low = starts[has] + (counts[has] - 1) // 2
    high = starts[has] + counts[has] // 2
    out[has] = (sorted_values[low] + sorted_values[high]) / 2
    return out


def _flag(check: ImplausibleRise, s: Series, m: str, order: np.ndarray, group: np.ndarray,
          one_day: np.ndarray, v: np.ndarray, warnings: IssueList) -> None:
    """Warn on measure ``m``'s implausible rises; ``v``: its values in sorted ``order``."""
    p = check.dataset.plausibility
    rise = np.diff(v)  # sorted position i + 1 vs i
    later = group[1:]
    positive = one_day & (rise > 0)  # NaN compares False
    median = medians(later[positive], rise[positive], int(group[-1]) + 1, p.rise_history)
    base = median[later]
    with np.errstate(invalid="ignore"):
        flagged = np.flatnonzero(positive & (rise >= p.rise_minimum)
                                 & (rise > p.rise_factor * base))
    shown = flagged[: warnings.room()]
    for i in shown:
        row, prev = int(order[i + 1]), int(order[i])
        where = tuple(s.values[k][s.codes[k][row]] for k in s.series)
        area = fmt_key(tuple(s.series), where).replace(f"{AREA}=FR", "France")
        warnings.add(issue(
            "implausible-rise", line=int(s.lines[row]), field=m, cell=num(v[i + 1]),
            area=area, rise=num(rise[i]), day=s.values[s.date][s.codes[s.date][row]],
            before=num(v[i]), day_before=s.values[s.date][s.codes[s.date][prev]],
            times=f"{rise[i] / base[i]:.0f}", median=num(base[i]), factor=num(p.rise_factor)))
    warnings.count(flagged.size - shown.size, "implausible-rise")
