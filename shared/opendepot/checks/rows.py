"""Row checks: blank rows and exact duplicate rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from opendepot.checks.base import Batch, Check, Run
from opendepot.issues import Issue, issue
from opendepot.registry import Dataset


class BlankRows(Check):
    """A row whose every cell is empty once trimmed: a ``blank-row`` error, not a key."""

    emits = ("blank-row",)

    def batch(self, batch: Batch) -> None:
        if batch.blank.any():
            batch.report(batch.blank, batch.table.column(0),
                         lambda line, _v, _i: issue("blank-row", line=line))
            batch.bad |= batch.blank
            batch.not_keys |= batch.blank


ROW_HASH_KEYS = ("opendepot-rows-1", "opendepot-rows-2")
"""The two 16-character keys of ``pandas.util.hash_pandas_object`` that make a row's 128-bit
hash."""


def row_hashes(columns: list[pa.ChunkedArray]) -> list[int]:
    """A 128-bit hash of each row's cells (two 64-bit pandas hashes with different keys): about
    100 bytes per distinct row kept across batches, where the cells themselves take ten times
    more. Two different rows share a hash with probability about rows² / 2**129."""
    frame = pd.DataFrame({i: c.to_numpy(zero_copy_only=False) for i, c in enumerate(columns)})
    first, second = (pd.util.hash_pandas_object(frame, index=False, hash_key=k).to_numpy()
                     for k in ROW_HASH_KEYS)
    return [(int(a) << 64) | int(b) for a, b in zip(first, second, strict=True)]


class DuplicateRows(Check):
    """With ``errorBudget.exactDuplicateRows`` set to ``leave-out``, a row equal in every
    (trimmed) cell to an earlier one, in any batch, is a ``duplicate-row`` row error, left out
    within the error budget, instead of a primary-key conflict: nothing is picked between
    different values."""

    emits = ("duplicate-row",)

    @classmethod
    def applies(cls, dataset: Dataset) -> bool:
        return dataset.error_budget.exact_duplicate_rows == "leave-out"

    def start(self, run: Run) -> None:
        self.seen: dict[int, int] = {}
        """Row hash (``row_hashes``) -> its first line."""

    def batch(self, batch: Batch) -> None:
        n = batch.size
        dup = np.zeros(n, dtype=bool)
        first_line = np.zeros(n, dtype=np.int64)
        for i, row in enumerate(row_hashes(batch.trimmed)):
            seen = self.seen.get(row)
            if seen is None:
                self.seen[row] = int(batch.lines[i])
            elif not batch.blank[i]:
                dup[i], first_line[i] = True, seen
        if dup.any():
            def make(line: int, _v: Any, i: int) -> Issue:
                return issue("duplicate-row", line=line, first=int(first_line[i]))

            batch.report(dup, batch.table.column(0), make)
            batch.bad |= dup
            batch.not_keys |= dup
