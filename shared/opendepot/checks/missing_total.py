"""Missing totals: part rows (``sexe`` 1 and 2) whose total row (``sexe`` 0) is absent."""

from __future__ import annotations

import numpy as np

from opendepot.checks.base import Check, Rows, fmt_key, text
from opendepot.checks.totals import total_groups
from opendepot.issues import issue
from opendepot.registry import Dataset


class MissingTotal(Check):
    """In a file that gives total rows (``totals``: ``sexe`` 0, ``cl_age90`` "0"), a group of
    part rows (same key but the total dimension) without its total row: one ``missing-total``
    warning per group, at its first line, on the published rows. A file without any total row
    (a file that gives parts only) is not warned about."""

    emits = ("missing-total",)

    @classmethod
    def applies(cls, dataset: Dataset) -> bool:
        return bool(dataset.totals)

    def accepted(self, rows: Rows) -> None:
        keys, warnings = rows.keys, rows.run.issues.warnings
        good = keys.good
        everything = bool(good.all())
        lines = keys.lines if everything else keys.lines[good]
        for dim, code in self.dataset.totals.items():
            g = total_groups(keys, self.dataset, dim, code)
            if g is None:
                continue  # no total row at all (or no other key column): nothing to miss
            has_total = np.bincount(g.group[g.is_total], minlength=g.n_groups) > 0
            orphans = np.flatnonzero(~g.is_total & ~has_total[g.group])  # in line order
            if orphans.size == 0:
                continue
            _, first = np.unique(g.group[orphans], return_index=True)
            starts = np.sort(orphans[first])  # each group's first row, in line order
            dims = keys.codes[dim] if everything else keys.codes[dim][good]
            shown = starts[: warnings.room()]
            for row in shown:
                members = orphans[g.group[orphans] == g.group[row]]
                parts = ", ".join(text(keys.value(dim, c)) for c in np.unique(dims[members]))
                where = fmt_key(tuple(g.others), tuple(
                    keys.value(k, c[row]) for k, c in zip(g.others, g.cols, strict=True)))
                warnings.add(issue("missing-total", line=int(lines[row]), where=where, dim=dim,
                                   code=code, parts=parts))
            warnings.count(starts.size - shown.size, "missing-total")
