"""Totals: a total row (``sexe`` 0) smaller than the sum of its parts: a warning, or an error
that refuses the file where the dataset says so (``plausibility.totalBelowParts``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from opendepot import keysort
from opendepot.cells import ARROW_TYPES
from opendepot.checks.base import Check, Keys, Rows, Run, fmt_key, num
from opendepot.issues import IssueList, issue
from opendepot.registry import Dataset

ADDITIVE = ("stock", "cumulative", "incidence")
"""Measure kinds whose total is the sum of its parts (a rate is not)."""


@dataclass
class Groups:
    """The published rows grouped by every key column but one total dimension."""

    dim: str
    """The total dimension (``sexe``)."""
    others: list[str]
    """The other key columns, which name a group."""
    cols: list[np.ndarray]
    """Their codes, on the published rows."""
    group: np.ndarray
    """Group id of each published row (intp)."""
    n_groups: int
    is_total: np.ndarray
    """Published rows that are the total row of their group."""


def total_groups(keys: Keys, dataset: Dataset, dim: str, code: object) -> Groups | None:
    """The published rows grouped around the total code ``code`` of ``dim`` (None when the
    dataset has no other key column, or no row holds the total code)."""
    others = [k for k in dataset.primary_key if k != dim]
    if dim not in dataset.field_names or not others:
        return None
    wanted = pa.scalar(code).cast(ARROW_TYPES[dataset.field(dim).type]).as_py()
    total_code = next(
        (i for i, x in enumerate(keys.values[dim]) if x is not None and x == wanted), None)
    if total_code is None:
        return None
    good = keys.good
    everything = bool(good.all())
    dims = keys.codes[dim] if everything else keys.codes[dim][good]
    is_total = dims == total_code
    if not is_total.any():
        return None
    cols = [keys.codes[k] if everything else keys.codes[k][good] for k in others]
    # any packing groups the rows; the last key column (the day, in a daily file) most
    # significant keeps the sums of rows next to each other in nearby bins (day-major files)
    packed = keysort.pack(cols[::-1], [keys.size(k) for k in others][::-1])
    if packed is None:
        order = np.lexsort(cols[::-1])
        group = np.empty(order.size, np.int64)
        group[order] = np.cumsum(~keysort.same_as_previous(cols, order)) - 1
        n_groups = int(group.max()) + 1
    else:
        group, n_groups = keysort.group_ids(*packed)
    del packed
    # numpy.bincount counts on intp: converted once here rather than by every call (and
    # without a second copy beside the first at its peak)
    return Groups(dim, others, cols, group.astype(np.intp, copy=False), n_groups, is_total)


Measure = Callable[[str], tuple[np.ndarray, int] | None]
"""A measure of the published rows as float64 (NaN for missing) and its missing count, None when
every value is missing (``Rows.measure``)."""


class TotalsBelowParts(Check):
    """A total row (``totals``: ``sexe`` 0, ``cl_age90`` "0") smaller than the sum of its parts,
    where every part has a value (additive measures only), on the published rows; parts summed
    per key with ``numpy.bincount`` over packed codes.

    ``plausibility.totalBelowParts``: ``warning`` (default) gives ``total-below-parts``
    warnings once the file is accepted; ``error`` gives ``total-below-parts-error`` errors
    before the verdict (the ``end`` hook) and refuses the file. Either way the measures are read
    back from the staged rows one at a time (``Rows.measure``), never kept while the file is
    read."""

    emits = ("total-below-parts", "total-below-parts-error")

    @classmethod
    def applies(cls, dataset: Dataset) -> bool:
        return bool(dataset.totals)

    def start(self, run: Run) -> None:
        self.strict = self.dataset.plausibility.total_below_parts == "error"
        self.measures = [m for m, kind in self.dataset.measures.items()
                         if m in self.dataset.field_names and kind in ADDITIVE]

    def end(self, rows: Rows) -> None:
        if not self.strict or not self.measures or rows.rejection:
            return  # (a file already refused, e.g. for duplicated keys: groups are meaningless)
        errors = rows.run.issues.errors
        before = errors.by_type.get("total-below-parts-error", 0)
        self._each(rows, rows.measure, "total-below-parts-error")
        found = errors.by_type.get("total-below-parts-error", 0) - before
        if found:
            rows.reject(f"{found} total row value(s) below the sum of their parts; the "
                        f"totals of {self.dataset.name} never are, so the file is refused")

    def accepted(self, rows: Rows) -> None:
        if not self.strict:
            self._each(rows, rows.measure, "total-below-parts")

    def _each(self, rows: Rows, measure: Measure, slug: str) -> None:
        if not self.measures:
            return
        for dim, code in self.dataset.totals.items():
            g = total_groups(rows.keys, self.dataset, dim, code)
            if g is not None:
                self._below(rows, g, code, measure, slug)

    def _below(self, rows: Rows, g: Groups, code: object, measure: Measure, slug: str) -> None:
        keys, found = rows.keys, rows.run.issues.of(slug)
        totals = np.flatnonzero(g.is_total)  # in line order
        t_group = g.group[totals]
        # parts per group: every row of the group but its totals (no copy of the parts' groups)
        size = (np.bincount(g.group, minlength=g.n_groups)
                - np.bincount(t_group, minlength=g.n_groups))
        t_size = size[t_group]
        del size
        with_parts = t_size > 0
        lines = keys.lines if bool(keys.good.all()) else keys.lines[keys.good]
        for m in self.measures:
            read = measure(m)
            if read is None:
                continue  # no value at all: no group has every part counted
            v, n_missing = read
            total = v[totals]
            if n_missing:
                counted_part = ~g.is_total & ~np.isnan(v)
                counted = np.bincount(g.group[counted_part], minlength=g.n_groups)[t_group]
                np.copyto(v, 0.0, where=~counted_part)  # v now holds the parts to sum, 0 elsewhere
                del counted_part
                complete = with_parts & (counted == t_size)
            else:  # every part counted: the counts are the sizes
                v[totals] = 0.0  # v now holds the parts to sum, 0 elsewhere
                complete = with_parts
            psum = np.bincount(g.group, weights=v, minlength=g.n_groups)[t_group]
            del v
            # decimal measures (populations) carry rounding noise: compare with a tolerance
            below = np.flatnonzero(complete & (total < psum))
            below = below[~np.isclose(total[below], psum[below], rtol=1e-9, atol=1e-9)]
            _warn(found, g, keys, lines, totals, below, total, psum, m, code, slug)


def _warn(warnings: IssueList, g: Groups, keys: Keys, lines: np.ndarray, totals: np.ndarray,
          below: np.ndarray, total: np.ndarray, psum: np.ndarray, m: str, code: object,
          slug: str = "total-below-parts") -> None:
    shown = below[: warnings.room()]
    for i in shown:
        row = int(totals[i])
        where = fmt_key(tuple(g.others), tuple(
            keys.value(k, c[row]) for k, c in zip(g.others, g.cols, strict=True)))
        warnings.add(issue(slug, line=int(lines[row]), field=m,
                           cell=num(total[i]), where=where, dim=g.dim, code=code,
                           parts=num(psum[i])))
    warnings.count(below.size - shown.size, slug)
