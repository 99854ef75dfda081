"""A publication's rows cut into parts by ranges of key values, each part consolidated alone.

Every publication goes through these steps (``opendepot.levels`` drives them):

1. ``key_counts`` reads the first primary-key column of the staged files and ``plan_partitions``
   cuts its sorted distinct values into ranges of about ``partition_rows`` rows. A small
   publication, or one that needs the whole table at once, is one part (``Partitioning.whole``);
2. ``read_uploads`` streams the staged files (oldest upload first) in record batches conformed to
   one schema, each row tagged with its upload's provenance when the dataset declares it and with
   its position across the uploads (``ORDER``) when there are several uploads. For several parts
   ``spill`` writes each row into its part's Arrow IPC file; one part is gathered in memory;
3. ``consolidate_part`` keeps the newest upload's row of each key (largest ``ORDER``) and sorts the
   part by key. Every row of one first-column value lands in one part, so the parts, one after
   the other, are the whole consolidated table (``consolidated_parts``).

Shapes: tables are Arrow tables; row counts are ints; files are local paths the caller owns.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from opendepot import keysort
from opendepot.memory import release_memory

ORDER = "__order"
"""Column of the rows read from several uploads: position across them, oldest first (newest
wins)."""
PROVENANCE = ("producer", "upload_id")
"""Columns added to every row of a dataset that declares ``provenance``."""
SPILL_OPTIONS = pa.ipc.IpcWriteOptions(
    compression="lz4" if pa.Codec.is_available("lz4") else None
)
"""Arrow IPC options of the partition files (lz4 keeps them small in a Lambda's /tmp)."""


@dataclass(frozen=True)
class Upload:
    """One selected upload's staged Parquet file, downloaded, and what its rows are tagged with."""

    path: Path
    """The local staged Parquet file."""
    producer: str
    """The producer that sent it (the ``producer`` column under provenance)."""
    upload_id: str
    """Its upload id (the ``upload_id`` column under provenance)."""
    rows: int | None = None
    """Rows, from the upload record (None: read from the file's metadata when needed)."""
    tagged: bool = False
    """True for a table whose rows already carry their ``PROVENANCE`` columns (the previous
    version's table, ``opendepot.incremental``): read as they are, not tagged with this
    upload's."""

    def count(self) -> int:
        """Rows of the staged file: the record's figure, else the Parquet footer's."""
        if self.rows is not None:
            return self.rows
        return int(pq.ParquetFile(self.path).metadata.num_rows)


def staged_schema(field_names: Sequence[str], paths: Sequence[Path], *, provenance: bool
                  ) -> pa.Schema:
    """The consolidated table's schema: each staged file's fields in ``field_names``' order,
    unified as ``concat_tables(promote_options="permissive")`` does, then ``PROVENANCE`` (text)
    when ``provenance``."""
    schemas = []
    for path in paths:
        schema = pq.read_schema(path)
        fields = [schema.field(f) for f in field_names if f in schema.names]
        schemas.append(pa.schema(fields, metadata=schema.metadata))
    unified = pa.unify_schemas(schemas, promote_options="permissive")
    if provenance:
        for name in PROVENANCE:
            unified = unified.append(pa.field(name, pa.string()))
    return unified


def _conform(batch: pa.RecordBatch | pa.Table, schema: pa.Schema) -> pa.Table:
    """``batch`` with exactly ``schema``'s columns: cast where the type differs, null where
    absent (as ``concat_tables(promote_options="permissive")`` fills them)."""
    names = batch.schema.names
    columns = []
    for f in schema:
        if f.name not in names:
            columns.append(pa.nulls(batch.num_rows, f.type))
            continue
        column = batch.column(names.index(f.name))
        columns.append(column if column.type == f.type else column.cast(f.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _read_batches(path: Path, schema: pa.Schema, batch_rows: int) -> Iterator[pa.Table]:
    """A staged file in record batches of at most ``batch_rows``, conformed to ``schema``."""
    file = pq.ParquetFile(path)
    present = [c for c in schema.names if c in file.schema_arrow.names]
    try:
        for batch in file.iter_batches(batch_size=batch_rows, columns=present, use_threads=False):
            yield _conform(batch, schema)
    finally:
        file.close()


def read_uploads(
    uploads: Sequence[Upload], schema: pa.Schema, batch_rows: int, *, tag_order: bool
) -> Iterator[pa.Table]:
    """The uploads' rows (oldest upload first) in tables of at most ``batch_rows`` rows, with
    ``schema``'s columns; ``PROVENANCE`` columns, when ``schema`` has them, hold each upload's
    producer and id (a ``tagged`` upload's own). With ``tag_order`` every row also gets
    ``ORDER``, its position across the uploads."""
    staged = pa.schema([f for f in schema if f.name not in PROVENANCE])
    tagged = all(name in schema.names for name in PROVENANCE)
    position = 0
    for upload in uploads:
        for table in _read_batches(upload.path, schema if upload.tagged else staged, batch_rows):
            n = table.num_rows
            if tagged and not upload.tagged:
                table = table.append_column(schema.field("producer"),
                                            pa.array([upload.producer] * n, pa.string()))
                table = table.append_column(schema.field("upload_id"),
                                            pa.array([upload.upload_id] * n, pa.string()))
            if tag_order:
                table = table.append_column(ORDER, pa.array(np.arange(position, position + n)))
            position += n
            yield table


def key_counts(
    paths: Sequence[Path], schema: pa.Schema, column: str, batch_rows: int
) -> pa.Table:
    """Distinct values of ``column`` across the staged files, sorted as ``sort_by`` sorts
    (nulls last), with their row counts (columns ``value``, ``count``). Reads that column only."""
    one = pa.schema([schema.field(column)])
    total = pa.table({"value": pa.array([], one.field(0).type), "count": pa.array([], pa.int64())})
    for path in paths:
        for batch in _read_batches(path, one, batch_rows):
            counts = pc.value_counts(batch.column(0).combine_chunks())
            part = pa.table({"value": counts.field("values"), "count": counts.field("counts")})
            total = add_counts(total, part)
    return total.sort_by([("value", "ascending")])


def add_counts(a: pa.Table, b: pa.Table) -> pa.Table:
    """Two (value, count) tables as one, counts of equal values added."""
    both = pa.concat_tables([a, b.cast(a.schema)])
    summed = both.group_by("value", use_threads=False).aggregate([("count", "sum")])
    return summed.rename_columns({"count_sum": "count"}).select(["value", "count"])


@dataclass(frozen=True)
class Partitioning:
    """Ranges of one column's sorted distinct values, one part each."""

    column: str
    """The column whose values choose a row's part."""
    values: pa.Array
    """The column's distinct values, sorted (nulls last); empty for ``whole``."""
    part_of: np.ndarray
    """Part of each value (non-decreasing: part ``i`` holds values before part ``i + 1``'s)."""
    rows: tuple[int, ...]
    """Rows per part, as counted (before duplicates of a key are dropped)."""

    @classmethod
    def whole(cls, column: str, rows: int) -> Partitioning:
        """A single part holding every value of ``column`` (``rows`` rows)."""
        return cls(column, pa.nulls(0), np.zeros(0, np.int64), (rows,))

    @property
    def parts(self) -> int:
        """How many parts (at least one)."""
        return len(self.rows)

    def parts_of(self, column: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """The part of each value of ``column`` (every value must be one of ``values``).

        Raises:
            ValueError: a value the partitioning was not planned from.
        """
        if self.parts == 1:
            return np.zeros(len(column), np.int64)
        found = pc.index_in(column, value_set=self.values)
        if found.null_count:  # the plan was made from these values: a bug if not
            raise ValueError(f"{self.column}: a value the partitioning does not know")
        return np.asarray(self.part_of[found.to_numpy(zero_copy_only=False).astype(np.int64)])


def plan_partitions(column: str, counts: pa.Table, partition_rows: int) -> Partitioning:
    """Cut the sorted distinct values (``key_counts``) into ``ceil(rows / partition_rows)``
    ranges balanced by row count. A value's rows all go to one part, so a part may hold more
    than ``partition_rows`` rows, and there may be fewer parts (one when a single value holds
    most rows)."""
    n = counts["count"].to_numpy().astype(np.int64)
    total = int(n.sum())
    k = max(1, -(-total // max(1, partition_rows)))
    before = np.cumsum(n) - n
    raw = np.minimum(before * k // max(1, total), k - 1)
    _, part_of = np.unique(raw, return_inverse=True)  # consecutive part numbers
    rows = np.bincount(part_of, weights=n, minlength=1) if len(n) else np.zeros(1)
    return Partitioning(column, counts["value"].combine_chunks(), part_of.astype(np.int64),
                        tuple(int(r) for r in rows))


class Spill:
    """Rows split by a ``Partitioning`` into one Arrow IPC file per part, in arrival order
    within a part. ``write`` tables, then ``close`` for the files (in part order)."""

    def __init__(
        self, directory: Path, name: str, schema: pa.Schema, partitioning: Partitioning
    ) -> None:
        self.partitioning = partitioning
        self.files = [directory / f"{name}-{i:05d}.arrow" for i in range(partitioning.parts)]
        self._writers = [pa.ipc.new_file(str(f), schema, options=SPILL_OPTIONS)
                         for f in self.files]

    def write(self, table: pa.Table) -> None:
        """Append each row to its part's file."""
        part = self.partitioning.parts_of(table[self.partitioning.column])
        order = np.argsort(part, kind="stable")  # rows of a part together, in their order
        grouped = table.take(pa.array(order))
        start = 0
        for i, end in enumerate(np.cumsum(np.bincount(part, minlength=len(self._writers)))):
            if end > start:
                self._writers[i].write_table(grouped.slice(start, end - start))
            start = end

    def write_to(self, part: int, table: pa.Table) -> None:
        """Append ``table``'s rows, all of part ``part``, to its file."""
        self._writers[part].write_table(table)

    def close(self) -> list[Path]:
        """Close every part file; returns them in part order."""
        for w in self._writers:
            w.close()
        return self.files


def spill(
    tables: Iterable[pa.Table], schema: pa.Schema, partitioning: Partitioning, directory: Path
) -> list[Path]:
    """Write ``tables`` (of ``schema``, e.g. ``read_uploads``) into one Arrow IPC file per part
    of ``partitioning``, rows in arrival order within a part. Returns the part files, in key
    order."""
    parts = Spill(directory, "part", schema, partitioning)
    try:
        for table in tables:
            parts.write(table)
    finally:
        files = parts.close()
    return files


def _last_of_each_key(table: pa.Table, key: list[str]) -> pa.Array:
    """Mask of the last row of each run of equal keys (``table`` sorted by ``key``; nulls equal
    nulls, as in ``group_by``)."""
    n = table.num_rows
    last = np.ones(n, dtype=bool)
    if n < 2:
        return pa.array(last)
    later = np.zeros(n - 1, dtype=bool)
    for k in key:
        column = table[k].combine_chunks()
        a, b = column.slice(0, n - 1), column.slice(1)
        differs = pc.not_equal(a, b)
        if column.null_count:
            differs = pc.if_else(pc.is_null(differs), pc.xor(pc.is_null(a), pc.is_null(b)), differs)
        later |= differs.to_numpy(zero_copy_only=False)
    last[:-1] = later
    return pa.array(last)


def _take_by_column(table: pa.Table, indices: pa.Array) -> pa.Table:
    """``table.take(indices)``, one column at a time: each input column is released once taken
    when the caller holds no other reference to ``table`` (else the peak is that of ``take``)."""
    schema = table.schema
    columns = []
    for _ in schema.names:
        columns.append(table.column(0).take(indices))
        table = table.remove_column(0)
    return pa.Table.from_arrays(columns, schema=schema)


def consolidate_part(table: pa.Table, key: Sequence[str]) -> pa.Table:
    """One part's rows as published: when they carry ``ORDER`` (several uploads) the newest row
    of each ``key`` (largest ``ORDER``), without that column; sorted by ``key`` (a stable sort:
    rows of equal keys keep their order). Without a key, the rows as they are."""
    key = list(key)
    if ORDER in table.column_names:
        if not key:
            return table.drop_columns([ORDER])
        # sorted with the upload order last: the newest row of a key ends its run
        order = keysort.table_order(table, [*key, ORDER])
        keys = table.select(key).take(order)
        order = order.filter(_last_of_each_key(keys, key))
        del keys
        return _take_by_column(table.drop_columns([ORDER]), order)
    return _take_by_column(table, keysort.table_order(table, key)) if key else table


def read_part(file: Path) -> pa.Table:
    """One spilled part, then its file deleted (its space is free for the next)."""
    with pa.OSFile(str(file), "rb") as source:
        table = pa.ipc.open_file(source).read_all()
    file.unlink()
    return table


COLUMN_THREADS = 2
"""Columns read and put in key order at once by ``consolidate_columns`` (Arrow's Parquet and
IPC readers and its ``take`` release the GIL; a Lambda of 3008 MB has two vCPUs)."""
PARALLEL_ROWS = 262_144
"""Rows from which ``consolidate_columns`` uses its threads (below, the calling thread alone)."""
_COLUMNS = ThreadPoolExecutor(COLUMN_THREADS, thread_name_prefix="opendepot-columns")
"""Those threads, kept between publications (its tasks are leaves: a column read and taken)."""

Column = Callable[[str], pa.ChunkedArray]
"""One column of a part's rows, read alone, by name."""


def consolidate_columns(column: Column, schema: pa.Schema, key: Sequence[str]) -> pa.Table:
    """``consolidate_part`` of the table of ``schema`` whose columns ``column`` reads, one
    column at a time: the key columns (and ``ORDER``) first, for the order, then each other
    column read and put in that order (``COLUMN_THREADS`` at once). Memory holds the result,
    the key columns and one column as read per thread, never the whole part twice (the same
    rows, values and chunks as ``consolidate_part``: ``take`` gives one chunk). ``key`` not
    empty. Below ``PARALLEL_ROWS`` rows, on the calling thread alone."""
    key = list(key)
    names = [n for n in schema.names if n != ORDER]
    sort_keys = [*key, ORDER] if ORDER in schema.names else key
    keys = pa.table({k: column(k) for k in sort_keys})
    order = keysort.table_order(keys, sort_keys)
    if ORDER in schema.names:  # the newest row of a key ends its run
        order = order.filter(_last_of_each_key(keys.select(key).take(order), key))

    def taken(name: str) -> pa.ChunkedArray:
        return (keys[name] if name in keys.column_names else column(name)).take(order)

    several = len(order) >= PARALLEL_ROWS  # else not worth the threads' wake-ups
    columns = list(_COLUMNS.map(taken, names) if several else map(taken, names))
    return pa.Table.from_arrays(columns, schema=pa.schema([schema.field(n) for n in names]))


class UploadColumns:
    """Columns of ``read_uploads``'s tables read one at a time across the uploads (one chunk per
    row group of each staged file): conformed (``_conform``), tagged with ``PROVENANCE`` and
    ``ORDER`` as ``read_uploads`` tags them. Call with a column's name; each thread opens each
    file once (``close`` closes them all). ``schema``: the tables' schema."""

    def __init__(self, uploads: Sequence[Upload], schema: pa.Schema, *, tag_order: bool) -> None:
        staged = pa.schema([f for f in schema if f.name not in PROVENANCE])
        out = schema if all(name in schema.names for name in PROVENANCE) else staged
        self.schema = out.append(pa.field(ORDER, pa.int64())) if tag_order else out
        self.uploads = list(uploads)
        self._local = threading.local()
        self._opened: list[pq.ParquetFile] = []
        self._lock = threading.Lock()
        self.rows = [self._file(i).metadata.num_rows for i in range(len(self.uploads))]

    def _file(self, i: int) -> pq.ParquetFile:
        files = self._local.__dict__.setdefault("files", {})
        if i not in files:
            files[i] = pq.ParquetFile(self.uploads[i].path)
            with self._lock:
                self._opened.append(files[i])
        return files[i]

    def __call__(self, name: str) -> pa.ChunkedArray:
        kind = self.schema.field(name).type
        chunks: list[pa.Array] = []
        position = 0
        for i, (upload, n) in enumerate(zip(self.uploads, self.rows, strict=True)):
            if name == ORDER:
                chunks.append(pa.array(np.arange(position, position + n)))
            elif name in PROVENANCE and not upload.tagged:
                chunks.append(pa.array([getattr(upload, name)] * n, kind))
            elif name in self._file(i).schema_arrow.names:
                read = self._file(i).read(columns=[name], use_threads=False).column(0)
                chunks.extend((read if read.type == kind else read.cast(kind)).chunks)
            else:
                chunks.append(pa.nulls(n, kind))
            position += n
        return pa.chunked_array(chunks, kind)

    def close(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        for file in opened:
            file.close()


def part_columns(file: Path) -> tuple[pa.Schema, Column]:
    """The schema of a spilled part file and a reader of one of its columns (Arrow IPC reads
    the fields asked for only)."""
    with pa.OSFile(str(file), "rb") as source:
        schema = pa.ipc.open_file(source).schema

    def column(name: str) -> pa.ChunkedArray:
        options = pa.ipc.IpcReadOptions(included_fields=[schema.get_field_index(name)])
        with pa.OSFile(str(file), "rb") as source:
            return pa.ipc.open_file(source, options=options).read_all().column(0)

    return schema, column


def consolidated_parts(files: Sequence[Path], key: Sequence[str]) -> Iterator[pa.Table]:
    """Each spilled part file in turn, through ``consolidate_part`` (``consolidate_columns``
    with a key: read column by column). One after the other, the parts are the whole
    consolidated table. A consumer holding no part while asking for the next keeps one part in
    memory at a time."""
    for file in files:
        if key:
            schema, column = part_columns(file)
            table = consolidate_columns(column, schema, key)
            file.unlink()
        else:
            table = consolidate_part(read_part(file), key)
        yield table
        del table
        release_memory()
