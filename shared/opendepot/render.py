"""Rendering published files: CSV and Parquet files, and the version's Data Package.

Published files are written to local files (a temporary directory the caller owns), never held
whole in memory: ``render_level`` writes one table, ``LevelWriter`` appends a level's rows part by
part (the same bytes for CSV; for Parquet only the row groups differ), formatting CSV slices and
Parquet row groups on ``RENDER_THREADS`` threads. A ``RenderedFile`` carries the path, size and
sha256 (of the CSV as it is written; of the Parquet file read back in chunks once closed).

- CSV in the dialect Santé publique France's reusers already read: ``;`` separator, UTF-8
  without BOM, LF, ISO dates, text quoted, numbers bare, empty cell for missing.
- CSV cannot run in a spreadsheet (OWASP's CSV injection rule): a text cell starting with
  ``=``, ``+``, ``-``, ``@``, tab or carriage return is written with a leading ``'``
  (``=1+2`` -> ``'=1+2``), quoted as any other text; only string columns are looked at, and
  only a slice holding such a cell is rewritten (``neutralised``). Numbers, dates and the
  Parquet file keep the values as staged (``-7`` stays ``-7``).
- Parquet: zstd, typed columns (codes are strings, counts int64, dates date32), null for missing.
  The AWS SDK for pandas Lambda layer builds Arrow without zstd; there (only) the codec falls back
  to snappy, which every Parquet reader also reads. ``PARQUET_CODEC`` says which one is in use.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import os
from collections import deque
from collections.abc import Collection, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Self

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

CSV_MIME = "text/csv"
PARQUET_MIME = "application/vnd.apache.parquet"
FORMATS = {"csv": CSV_MIME, "parquet": PARQUET_MIME}
TABLE_SCHEMA_TYPES = {
    pa.string(): "string",
    pa.int64(): "integer",
    pa.float64(): "number",
    pa.date32(): "date",
    pa.bool_(): "boolean",
}


LICENSES = {
    "lov2": {
        "name": "etalab-2.0",
        "title": "Licence Ouverte / Open Licence version 2.0",
        "path": "https://www.etalab.gouv.fr/licence-ouverte-open-licence",
    },
    "odc-odbl": {
        "name": "ODbL-1.0",
        "title": "Open Data Commons Open Database License 1.0",
        "path": "https://opendatacommons.org/licenses/odbl/1-0/",
    },
}
"""Data Package licence objects for the registry's udata licence ids."""


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file (``hashlib.file_digest``: read in pieces, never whole)."""
    with path.open("rb") as f:
        return hashlib.file_digest(
            f, lambda: hashlib.new(algorithm, usedforsecurity=algorithm != "md5")
        ).hexdigest()


@dataclass(frozen=True)
class RenderedFile:
    """One published file, written to a local file, and what the manifest says of it."""

    name: str
    """File name without directory, e.g. ``donnees-hospitalieres-covid19-dep.csv``."""
    level: str
    format: str
    """``csv`` or ``parquet``."""
    path: Path
    """The local file holding the content (in the caller's temporary directory)."""
    rows: int
    size: int
    """Bytes."""
    sha256: str

    @classmethod
    def written(cls, name: str, level: str, fmt: str, path: Path, rows: int) -> RenderedFile:
        """Describe a file once it is closed: its size and sha256, read back in chunks."""
        return cls(name, level, fmt, path, rows, path.stat().st_size, file_digest(path))

    @property
    def mime(self) -> str:
        return FORMATS[self.format]


CSV_BATCH_ROWS = 65_536
"""Rows Arrow's CSV writer formats at a time (its default, 1,024, spends a third more time per
row in per-batch work; the bytes written do not depend on it)."""
CSV_OPTIONS = pacsv.WriteOptions(delimiter=";", quoting_style="needed", batch_size=CSV_BATCH_ROWS)
"""The published CSV dialect (see module docstring)."""
CSV_NO_HEADER = pacsv.WriteOptions(delimiter=";", quoting_style="needed", include_header=False,
                                   batch_size=CSV_BATCH_ROWS)


PARQUET_CODEC = "zstd" if pa.Codec.is_available("zstd") else "snappy"
"""Parquet compression: zstd, or snappy where this Arrow build lacks zstd (see module docstring)."""


def to_parquet(table: pa.Table) -> bytes:
    """Parquet bytes, compressed with ``PARQUET_CODEC``."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression=PARQUET_CODEC)
    return sink.getvalue()


def file_names(dataset_name: str, level: str) -> dict[str, str]:
    """Format -> published file name of one level (CSV first, as the manifest lists them)."""
    return {fmt: f"{dataset_name}-{level}.{fmt}" for fmt in FORMATS}


RENDER_THREADS = max(2, min(4, os.cpu_count() or 1))
"""Threads formatting levels' files: CSV slices and Parquet files at once (Arrow's writers
release the GIL). A Lambda of 3008 MB has two vCPUs."""
INLINE_ROWS = 65_536
"""Fewer rows than this are formatted on the calling thread, the Parquet file then the CSV (a few
milliseconds of work: handing them to other threads costs as much, more on a busy machine)."""
_POOL = ThreadPoolExecutor(max_workers=RENDER_THREADS, thread_name_prefix="opendepot-render")
"""The formatting threads, shared by every ``LevelWriter`` of the process and kept between
publications (starting threads costs each publication several milliseconds, more on a busy
machine). Its tasks are leaves (a Parquet write, a CSV slice): writers using it at once, from
several threads, never wait for each other's tasks."""
CSV_SLICE_ROWS = 131_072
"""Rows formatted as CSV in one piece: slices are formatted on ``RENDER_THREADS`` threads and
written in order, at most ``2 * RENDER_THREADS`` of them in memory at once."""


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""First characters of a text cell a spreadsheet could run as a formula (OWASP's CSV injection
rule)."""
FORMULA_ESCAPE = "'"
"""Written before such a cell in the published CSV (spreadsheets then show it as text)."""


def formula_cells(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Boolean mask (False for null cells) of the cells of a string column whose first character
    is one of ``FORMULA_START`` (first character cut, then looked up: twice as fast as a
    regular expression)."""
    first = pc.utf8_slice_codeunits(column, 0, 1)
    return pc.is_in(first, value_set=pa.array(FORMULA_START, first.type))


def neutralised(table: pa.Table) -> pa.Table:
    """``table`` with every formula-like text cell (``formula_cells``) of its string columns
    prefixed with ``FORMULA_ESCAPE``; the same table (no copy) when it has none. Other columns
    (numbers, dates) are never looked at. Shape and schema unchanged."""
    for i, f in enumerate(table.schema):
        if not (pa.types.is_string(f.type) or pa.types.is_large_string(f.type)):
            continue
        column = table.column(i)
        hit = formula_cells(column)
        if not pc.any(hit).as_py():
            continue
        escaped = pc.binary_join_element_wise(
            pa.scalar(FORMULA_ESCAPE, f.type), column, pa.scalar("", f.type))
        table = table.set_column(i, f, pc.if_else(hit, escaped, column))
    return table


def csv_bytes(table: pa.Table, header: bool) -> pa.Buffer:
    """``table`` as published CSV (``CSV_OPTIONS``), with or without the header line; formula-like
    text cells written with a leading ``'`` (``neutralised``)."""
    sink = pa.BufferOutputStream()
    options = CSV_OPTIONS if header else CSV_NO_HEADER
    pacsv.write_csv(neutralised(table), sink, options)
    return sink.getvalue()


class LevelWriter:
    """Writes one level's CSV and Parquet files, part by part (rows already in their final order),
    or whole (``render_level``).

    Each part's Parquet row groups are written on one thread while its CSV is formatted in slices
    of ``CSV_SLICE_ROWS`` rows on the others (``_POOL``), then written in order and hashed on the
    way. The
    CSV bytes are those of one ``pyarrow.csv.write_csv`` of all the rows (a header, then each
    slice's lines); the Parquet file holds the same table, its row groups ending at part
    boundaries (each part is one ``ParquetWriter.write_table``), so only a level written whole
    (``render_level``) has the bytes of one ``pyarrow.parquet.write_table``.
    Use as a context manager, or call ``close``.
    """

    def __init__(self, dataset_name: str, level: str, schema: pa.Schema, directory: Path) -> None:
        self.level = level
        self.schema = schema
        self.rows = 0
        self._names = file_names(dataset_name, level)
        self._paths = {fmt: directory / name for fmt, name in self._names.items()}
        self._csv: BinaryIO | None = self._paths["csv"].open("wb")
        self._sha256 = hashlib.sha256()
        self._header = True
        self._parquet: pq.ParquetWriter | None = pq.ParquetWriter(
            str(self._paths["parquet"]), schema, compression=PARQUET_CODEC
        )
        self._pool = _POOL

    def write(self, table: pa.Table) -> None:
        """Append rows (their schema must be the writer's); returns once both files hold them."""
        csv, parquet = self._csv, self._parquet
        if csv is None or parquet is None:
            raise ValueError(f"level {self.level}: writer closed")
        if table.num_rows < INLINE_ROWS:  # not worth a thread's wake-up: here, in turn
            parquet.write_table(table)
            self._out(csv_bytes(table, self._header))
            self._header = False
            self.rows += table.num_rows
            return
        pending: deque[Future[pa.Buffer]] = deque()
        written = self._pool.submit(parquet.write_table, table)
        try:
            for start in range(0, max(table.num_rows, 1), CSV_SLICE_ROWS):
                if len(pending) >= 2 * RENDER_THREADS:
                    self._out(pending.popleft().result())
                piece = table.slice(start, CSV_SLICE_ROWS)
                pending.append(self._pool.submit(csv_bytes, piece, self._header))
                self._header = False
            while pending:
                self._out(pending.popleft().result())
        finally:  # no thread may still use the table, or a writer being closed, past here
            concurrent.futures.wait([written, *pending])
        written.result()
        self.rows += table.num_rows

    @property
    def closed(self) -> bool:
        """True once both files are closed (``close``, or leaving the ``with`` block)."""
        return self._csv is None and self._parquet is None

    def _out(self, data: pa.Buffer) -> None:
        assert self._csv is not None
        self._csv.write(data)
        self._sha256.update(data)

    def close(self) -> list[RenderedFile]:
        """Close both files and describe them (CSV, then Parquet)."""
        if self._header and self._csv is not None:  # no rows at all: the header line still
            self.write(self.schema.empty_table())
        self._shut()
        paths, names = self._paths, self._names
        csv = RenderedFile(names["csv"], self.level, "csv", paths["csv"], self.rows,
                           paths["csv"].stat().st_size, self._sha256.hexdigest())
        return [csv, RenderedFile.written(names["parquet"], self.level, "parquet",
                                          paths["parquet"], self.rows)]

    def _shut(self) -> None:  # (``write`` returns once its tasks are done: none in flight)
        csv, parquet = self._csv, self._parquet
        self._csv = self._parquet = None
        try:
            if csv is not None:
                csv.close()
        finally:
            if parquet is not None:
                parquet.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        """Closes the files if ``close`` was not called (after an error: no description)."""
        if self._csv is not None or self._parquet is not None:
            self._shut()


def render_level(
    dataset_name: str, level: str, table: pa.Table, directory: Path
) -> list[RenderedFile]:
    """Write the CSV and Parquet files of one level into ``directory`` (CSV, then Parquet)."""
    with LevelWriter(dataset_name, level, table.schema, directory) as writer:
        writer.write(table)
        return writer.close()


def render_parts(
    dataset_name: str, level: str, parts: Iterable[pa.Table], directory: Path
) -> tuple[list[RenderedFile], pa.Schema]:
    """Write a level given as parts (at least one, in order, one schema) with a ``LevelWriter``;
    returns its files and schema. Holds one part at a time."""
    remaining = iter(parts)
    part = next(remaining, None)
    if part is None:
        raise ValueError(f"level {level}: no rows, not even a schema")
    with LevelWriter(dataset_name, level, part.schema, directory) as writer:
        while part is not None:
            writer.write(part)
            del part  # hold no part while the next one is made
            part = next(remaining, None)
        return writer.close(), writer.schema


def level_schema(
    table: pa.Table | pa.Schema,
    declared: dict[str, Any],
    primary_key: list[str],
    summed: Collection[str] = (),
) -> dict[str, Any]:
    """Table Schema of one published level (from its table or Arrow schema): declared fields
    where they exist (title, description), the type from the Arrow column, and the level's own
    key columns. ``summed``: the measures of a roll-up level, sums over member areas that are
    empty unless every member has a value (``rollup``), so a declared ``required`` is dropped
    from their constraints (a roll-up of ``fonds-solidarite-regional`` has empty sections)."""
    by_name = {f["name"]: f for f in declared.get("fields", [])}
    fields = []
    for col in table if isinstance(table, pa.Schema) else table.schema:
        f = dict(by_name.get(col.name, {"name": col.name}))
        f["type"] = TABLE_SCHEMA_TYPES.get(col.type, "any")
        if col.name in summed and "required" in (f.get("constraints") or {}):
            f["constraints"] = {k: v for k, v in f["constraints"].items() if k != "required"}
            if not f["constraints"]:
                del f["constraints"]
        if col.name in ("reg", "fra") and col.name not in by_name:
            f["title"] = {"reg": "Région (code INSEE)", "fra": "France"}[col.name]
        fields.append(f)
    return {"fields": fields, "missingValues": [""], "primaryKey": primary_key}


PARQUET_RESOURCE_TYPE = "file"
"""Frictionless resource ``type`` of a Parquet copy: read as bytes, so ``frictionless validate``
checks its ``bytes`` and ``hash``. Frictionless 5 parses Parquet through pandas (a null in an
integer column becomes NaN: false type and constraint errors; the byte count is never taken),
so a Parquet described as a table cannot validate. Its rows are the CSV's (``alternateOf``)."""


def package_resource(f: RenderedFile, schema: dict[str, Any]) -> dict[str, Any]:
    """The Data Package resource of one published file: ``{"name", "path", "format",
    "mediatype", "bytes", "hash", "schema"}`` plus, for CSV, ``rows``, ``encoding`` and
    ``dialect``; for Parquet, ``type`` (``PARQUET_RESOURCE_TYPE``), ``codec`` and
    ``alternateOf`` (the name of the CSV resource holding the same rows)."""
    stem = f.name.rsplit(".", 1)[0].lower()
    r: dict[str, Any] = {"name": f"{stem}-{f.format}", "path": f.name}
    if f.format == "parquet":
        r["type"] = PARQUET_RESOURCE_TYPE
    r.update(format=f.format, mediatype=f.mime, bytes=f.size, hash=f"sha256:{f.sha256}")
    if f.format == "csv":
        r["rows"] = f.rows
    r["schema"] = schema
    if f.format == "parquet":
        r["codec"] = PARQUET_CODEC  # not "compression": that names a whole-file zip/gz
        r["alternateOf"] = f"{stem}-csv"
    if f.format == "csv":
        r["encoding"] = "utf-8"
        r["dialect"] = {"delimiter": ";", "quoteChar": '"', "header": True}
    return r


def datapackage(
    dataset: Any, version: str, files: list[RenderedFile], schemas: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """A Frictionless Data Package describing one published version: one resource per file
    (``package_resource``: CSV a table, Parquet a file that is its alternate format).

    ``dataset`` is a registry ``Dataset``; ``schemas`` maps level -> Table Schema.
    """
    return {
        "name": dataset.name,
        "title": dataset.title,
        "description": dataset.description,
        "version": version,
        "licenses": [LICENSES.get(dataset.license, {"name": dataset.license})],
        "resources": [package_resource(f, schemas[f.level]) for f in files],
    }
