"""The primary key: each repeat of a key is an error naming the line of its first occurrence."""

from __future__ import annotations

import numpy as np

from opendepot import keysort
from opendepot.checks.base import Check, Rows, fmt_key, text
from opendepot.issues import issue
from opendepot.reading import clip
from opendepot.registry import Dataset


class PrimaryKey(Check):
    """Each repeat of a primary key is a ``primary-key`` error naming the line of its first
    occurrence, and rejects the file: duplicated rows are never resolved by picking one
    (missing values compare equal, as in Frictionless; blank rows and exact duplicates, already
    reported, are not keys). On integer codes: one packed key per row, a counting sort when
    keys are distinct; the sort is kept for the series check (``Keys.pk_sorted``)."""

    emits = ("primary-key",)

    @classmethod
    def applies(cls, dataset: Dataset) -> bool:
        return bool(dataset.primary_key)

    def end(self, rows: Rows) -> None:
        keys, errors = rows.keys, rows.run.issues.errors
        pk = list(self.dataset.primary_key)
        n = keys.lines.size
        if n == 0:
            return
        cols = [keys.codes[k] for k in pk]
        packed = keysort.pack(cols, [keys.size(k) for k in pk])
        if packed is None:
            order = np.lexsort(cols[::-1])
            same = keysort.same_as_previous(cols, order)
        else:
            order, distinct = keysort.sort_order(*packed)
            if distinct:
                keys.pk_sorted = order
                return
            ordered = packed[0][order]
            same = np.zeros(n, dtype=bool)
            same[1:] = ordered[1:] == ordered[:-1]
        if not same.any():
            return
        start = np.maximum.accumulate(np.where(same, 0, np.arange(n)))  # group's first sorted row
        repeats = order[same]
        first = order[start[same]]  # stable sort: the group's first row is its earliest
        by_line = np.argsort(repeats, kind="stable")
        repeats, first = repeats[by_line], first[by_line]
        shown = min(repeats.size, errors.room())
        for row, first_row in zip(repeats[:shown], first[:shown], strict=True):
            values = tuple(clip(text(keys.value(k, keys.codes[k][row]))) for k in pk)
            errors.add(issue("primary-key", line=int(keys.lines[row]), field=",".join(pk),
                             cell="/".join(text(x) for x in values),
                             key=fmt_key(tuple(pk), values), first=int(keys.lines[first_row])))
        errors.count(int(repeats.size) - shown, "primary-key")
        rows.reject("duplicated primary keys")
