"""Sorting and grouping rows by key columns on integer codes.

Each key column becomes dense integer codes numbered in value order (``Codes``), the codes of
several columns one packed int64 key (``pack``), and the keys are sorted by a counting sort
(a scatter into a grid of one cell per possible key) when they are distinct and the grid small,
else by NumPy's stable sort. Orders are those of Arrow's ``sort_indices`` (ascending, stable,
nulls last): strings compare by code point, which is UTF-8 byte order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


class Codes:
    """Dense integer codes of one column's values, batch after batch (equal values, equal codes).

    ``finish`` renumbers them in value order (nulls last), so sorting codes sorts values."""

    def __init__(self) -> None:
        self.index: dict[Any, int] = {}
        self.values: list[Any] = []
        self.chunks: list[np.ndarray] = []

    def add(self, col: pa.Array | pa.ChunkedArray) -> None:
        if len(col) == 0:  # (an empty chunked dictionary cannot be combined)
            return
        encoded = pc.dictionary_encode(col)
        if isinstance(encoded, pa.ChunkedArray):
            encoded = encoded.combine_chunks()
        dictionary = encoded.dictionary.to_pylist()
        mapping = np.empty(len(dictionary) + 1, np.int32)
        for j, value in enumerate(dictionary):
            code = self.index.get(value)
            if code is None:
                code = self.index[value] = len(self.values)
                self.values.append(value)
            mapping[j] = code
        mapping[-1] = -1  # null
        idx = pc.fill_null(encoded.indices, len(dictionary)).to_numpy(zero_copy_only=False)
        self.chunks.append(mapping[idx])

    def finish(self) -> tuple[np.ndarray, list[Any]]:
        """(codes in value order, in the smallest integer type that holds them; the value of
        each code); the last code is null."""
        raw = np.concatenate(self.chunks) if self.chunks else np.empty(0, np.int32)
        self.chunks = []
        order = sorted(range(len(self.values)), key=lambda i: self.values[i])
        small = next(t for t in (np.int8, np.int16, np.int32) if len(order) < np.iinfo(t).max)
        rank = np.empty(len(self.values) + 1, small)
        rank[order] = np.arange(len(order), dtype=small)
        rank[-1] = len(order)  # -1 (null) indexes the last slot: after every value
        return rank[raw], [self.values[i] for i in order] + [None]


def same_as_previous(codes: list[np.ndarray], order: np.ndarray) -> np.ndarray:
    """True where a sorted row has the same codes as the row before it (False for the first)."""
    same = np.ones(order.size, dtype=bool)
    if order.size:
        same[0] = False
    for c in codes:
        s = c[order]
        same[1:] &= s[1:] == s[:-1]
    return same


DENSE_CELLS_PER_ROW = 4
"""A counting sort (a scatter into a grid of one cell per possible key) is used when the grid has
at most this many cells per row (plus 2**20): keys like department × sex × day fill most of
their grid, and the scatter is linear where a sort is not."""


def pack(codes: list[np.ndarray], sizes: list[int]) -> tuple[np.ndarray, int] | None:
    """One integer key per row from code columns (mixed radix, the first column most
    significant: sorting the keys sorts the rows by the columns in order), int32 when every key
    fits, else int64; and the number of possible keys. None when they do not fit in 62 bits."""
    space = 1
    for s in sizes:
        space *= s
    if space >= 2**62:
        return None
    width: type[np.signedinteger[Any]] = np.int32 if space < np.iinfo(np.int32).max else np.int64
    key = np.zeros(len(codes[0]) if codes else 0, width)
    for c, s in zip(codes, sizes, strict=True):
        key *= s
        key += c
    return key, space


def dense(space: int, n: int) -> bool:
    return space <= DENSE_CELLS_PER_ROW * n + (1 << 20)


def sort_order(key: np.ndarray, space: int) -> tuple[np.ndarray, bool]:
    """(stable sort order of packed keys, whether the keys are known distinct): a counting sort
    when the keys are distinct and their grid small (``DENSE_CELLS_PER_ROW``), else NumPy's
    stable sort (then distinct is False: not checked)."""
    n = key.size
    if dense(space, n):
        index: type[np.signedinteger[Any]] = np.int32 if n < np.iinfo(np.int32).max else np.int64
        grid = np.full(space, -1, index)
        grid[key] = np.arange(n, dtype=index)
        order = grid[grid >= 0]
        del grid
        if order.size == n:  # every row in its own cell: the grid's order is the sort order
            return order, True
    return np.argsort(key, kind="stable"), False


def group_ids(key: np.ndarray, space: int) -> tuple[np.ndarray, int]:
    """(group id per row, number of ids) for packed keys: the key itself when its grid is small,
    else its rank among the distinct keys."""
    if dense(space, key.size):
        return key, space
    ids, inverse = np.unique(key, return_inverse=True)
    return inverse.reshape(-1), int(ids.size)


SORTABLE = (pa.types.is_string, pa.types.is_large_string, pa.types.is_integer, pa.types.is_date,
            pa.types.is_boolean, pa.types.is_dictionary)
"""Column types ``table_order`` sorts on codes (floats go to Arrow: NaN has its own place)."""


def table_order(table: pa.Table, keys: Sequence[str]) -> pa.Array:
    """Indices that sort ``table`` by ``keys`` (ascending, stable, nulls last): the result of
    ``pc.sort_indices(table, sort_keys=[(k, "ascending") for k in keys])``, on codes."""
    if not all(any(t(table.schema.field(k).type) for t in SORTABLE) for k in keys):
        return pc.sort_indices(table, sort_keys=[(k, "ascending") for k in keys])
    cols, sizes = [], []
    for k in keys:
        codes, size = column_codes(table[k])
        cols.append(codes)
        sizes.append(size)
    packed = pack(cols, sizes)
    order = np.lexsort(cols[::-1]) if packed is None else sort_order(*packed)[0]
    return pa.array(order.astype(np.int64, copy=False))


def column_codes(col: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, int]:
    """Codes of one column in value order, nulls last (sorting the codes sorts the values as
    ``sort_indices`` does), and how many codes there can be: an integer or date column's value
    less its smallest, any other column's ``Codes``."""
    numeric = _value_codes(col)
    if numeric is None:
        codes = Codes()
        codes.add(col)
        ranked, values = codes.finish()
        numeric = ranked, len(values)
    return numeric


def _value_codes(col: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, int] | None:
    """Codes of an integer or date32 column without a dictionary: the value less the smallest
    (missing: after every value), and how many codes; None for other types or a range wider
    than 2**32."""
    kind = col.type
    if not (pa.types.is_integer(kind) or pa.types.is_date32(kind)):
        return None
    try:
        ints = pc.cast(pc.cast(col, pa.int32()) if pa.types.is_date32(kind) else col, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # uint64 past int64
        return None
    bounds = pc.min_max(ints)
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    if low is None:  # every value missing
        return np.zeros(len(col), np.int64), 1
    if high - low > 2**32:
        return None
    filled = np.asarray(pc.fill_null(ints, high + 1).to_numpy(), dtype=np.int64)
    return filled - low, high - low + 2
