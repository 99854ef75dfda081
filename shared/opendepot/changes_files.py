"""The files of ``opendepot.changes``: two versions' Parquet files read range by range, and the
changed-cells CSV written range by range.

``read_ranges`` cuts the rows of both files into ranges of the first key column's values (as
publication cuts its parts, ``opendepot.partitions``; the published files are in key order, so a
range reads few row groups) of about ``range_rows`` rows of both files together: memory follows
one range, not the files. Two files of ``range_rows`` rows or fewer in all are read whole, at
once (one ``ParquetFile.read`` each, on the calling thread: the usual case, small tables whose
fixed costs matter).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from opendepot.render import csv_bytes

CSV_MAX_ROWS = 1_000_000
"""Changed cells written to the CSV at most (all are counted): about 40 MB for the hospital
table."""


class ChangedCellsWriter:
    """The changed-cells CSV, written range by range in the published dialect (``;``, formula
    cells neutralised: ``render.csv_bytes``): the header line (``schema``'s names) at once, then
    at most ``max_rows`` rows. Use as a context manager, or call ``close``."""

    def __init__(self, path: Path, schema: pa.Schema, max_rows: int = CSV_MAX_ROWS) -> None:
        self.path = path
        self.max_rows = max_rows
        self.rows = 0
        """Rows written so far."""
        self._out: BinaryIO | None = path.open("wb")
        self._out.write(csv_bytes(schema.empty_table(), header=True))

    @property
    def room(self) -> int:
        """Rows that may still be written."""
        return max(0, self.max_rows - self.rows)

    def write(self, table: pa.Table) -> None:
        """Append changed cells (key columns, ``column``, ``old``, ``new``), cut to ``room``.

        Raises: ValueError (closed)."""
        if self._out is None:
            raise ValueError(f"{self.path}: writer closed")
        table = table.slice(0, self.room)
        if table.num_rows:
            self._out.write(csv_bytes(table, header=False))
        self.rows += table.num_rows

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

    def __enter__(self) -> ChangedCellsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- reading two Parquet files range by range -------------------------------------------------


def read_ranges(old: pq.ParquetFile, new: pq.ParquetFile, columns: Sequence[str],
                range_rows: int, *, whole: bool = False) -> Iterator[tuple[pa.Table, pa.Table]]:
    """(old, new) tables of each range of the first of ``columns`` (the key's first column),
    only ``columns``; ``whole``: one range (a key column retyped, no key)."""
    names = list(columns)
    ranges = None if whole else _ranges(old, new, names[0], range_rows)
    if ranges is None:
        yield old.read(columns=names, use_threads=False), new.read(columns=names,
                                                                   use_threads=False)
        return
    for lo, hi in ranges:
        yield _read_range(old, names, lo, hi), _read_range(new, names, lo, hi)


def _value_counts(file: pq.ParquetFile, column: str) -> dict[Any, int] | None:
    """Rows per value of ``column`` (None when it holds a null: no ranges then)."""
    counts: dict[Any, int] = {}
    for batch in file.iter_batches(columns=[column], batch_size=1 << 20):
        if batch.column(0).null_count:
            return None
        for item in pc.value_counts(batch.column(0)).to_pylist():
            counts[item["values"]] = counts.get(item["values"], 0) + item["counts"]
    return counts


def _ranges(old: pq.ParquetFile, new: pq.ParquetFile, first: str, range_rows: int
            ) -> list[tuple[Any, Any]] | None:
    """Inclusive ranges of the values of ``first``, about ``range_rows`` rows of both files
    each; None: read whole (a null first key, one range)."""
    if old.metadata.num_rows + new.metadata.num_rows <= range_rows:
        return None  # one range: no need to count the first column's values
    before, after = _value_counts(old, first), _value_counts(new, first)
    if before is None or after is None:
        return None
    out: list[list[Any]] = []
    total = 0
    for value in sorted(set(before) | set(after)):
        n = before.get(value, 0) + after.get(value, 0)
        if not out or total + n > range_rows:
            out.append([value, value])
            total = 0
        out[-1][1] = value
        total += n
    return [(lo, hi) for lo, hi in out] if len(out) > 1 else None


def _read_range(file: pq.ParquetFile, columns: list[str], lo: Any, hi: Any) -> pa.Table:
    """The rows whose first column (``columns[0]``) is within ``lo..hi``: only the row groups
    whose statistics overlap the range are read (all of them without statistics), then
    filtered. (``pyarrow.dataset`` would do the same; not every Arrow build has it.)"""
    first = columns[0]
    leaf = file.schema_arrow.get_field_index(first)
    groups = []
    for i in range(file.num_row_groups):
        stats = file.metadata.row_group(i).column(leaf).statistics
        if stats is None or not stats.has_min_max or not (stats.max < lo or stats.min > hi):
            groups.append(i)
    table = file.read_row_groups(groups, columns=columns)
    column = table.column(first)
    inside = pc.and_(pc.greater_equal(column, pa.scalar(lo, column.type)),
                     pc.less_equal(column, pa.scalar(hi, column.type)))
    return table.filter(inside)
