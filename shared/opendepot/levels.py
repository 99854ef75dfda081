"""A publication's tables rendered to local files from its staged uploads: the one path.

``render_levels`` runs the same steps for every publication:

1. ``plan``: the consolidated table's schema and its parts. One part when the uploads hold at
   most ``Tuning.partition_rows`` rows, when the dataset needs the whole table at once
   (``whole_table_needed``: feeds, provenance, a ``consolidated`` table, float or unsigned
   roll-up measures, a key column missing), or when its first key column's values make a single
   range; else ranges of that column's values of about ``partition_rows`` rows each
   (``opendepot.partitions``), so memory stays bounded by about that many rows;
2. the parts, in key order: one part is the uploads' rows gathered in memory (plus the fed rows,
   ``opendepot.feeds``); several are spilled to part files first; each part is consolidated
   (newest upload wins, sorted by key: ``partitions.consolidate_part``), read column by column
   when it has a key (``partitions.consolidate_columns``: the key columns first, then each
   column read and put in key order, never the whole part twice in memory);
3. each part is appended to the producer level's CSV and Parquet files (``render.LevelWriter``)
   on a thread of its own while the roll-ups (``rollup.Rollups``) take it; the next part is made
   once it is written;
4. then the ``consolidated`` table (one part only) and the roll-up levels, part by part, while
   the last part is still being written.

Temporary files go to ``work``, which the caller owns and removes. A level written in one piece
has the bytes of one ``pyarrow.parquet.write_table``; several parts make several row groups.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from opendepot.feeds import Feeds
from opendepot.partitions import (
    ORDER,
    PARALLEL_ROWS,
    Partitioning,
    Upload,
    UploadColumns,
    consolidate_columns,
    consolidate_part,
    consolidated_parts,
    key_counts,
    plan_partitions,
    read_uploads,
    spill,
    staged_schema,
)
from opendepot.registry import Cog, Dataset
from opendepot.render import LevelWriter, RenderedFile, render_level, render_parts
from opendepot.rollup import (
    Rollups,
    consolidated_table,
    region_counts,
    rolled_up_measures,
    rollup_levels,
)

PARTITION_ROWS = 2_000_000
"""Rows per part, the publication's memory bound: ``ceil(rows / PARTITION_ROWS)`` parts."""
BATCH_ROWS = 131_072
"""Rows per record batch read from a staged file."""


@dataclass(frozen=True)
class Tuning:
    """How a publication is cut and read (the defaults are production's)."""

    partition_rows: int = PARTITION_ROWS
    """Rows per part: at most this many rows in all make one part."""
    batch_rows: int = BATCH_ROWS
    """Rows per record batch read from a staged file or given to the roll-ups."""


@dataclass(frozen=True)
class Plan:
    """How one publication is cut."""

    schema: pa.Schema
    """The consolidated table's schema (the dataset's fields present, then provenance)."""
    parts: Partitioning
    """Ranges of the first primary-key column (``Partitioning.whole``: one part)."""
    regions: Partitioning | None
    """Ranges of region codes, when the dataset rolls up to ``reg``."""


@dataclass(frozen=True)
class Levels:
    """A publication's files, written to local files, and what the manifest says of its levels."""

    files: list[RenderedFile]
    """Per level (producer's level, consolidated table, ``reg``, ``fra``): CSV, then Parquet."""
    schemas: dict[str, pa.Schema]
    """Level -> Arrow schema of its table, in the files' order."""
    rows: dict[str, int]
    """Level -> rows, in the files' order."""
    coverage: dict[str, str] | None
    """``{"start", "end"}``: first and last value of the time field at the producer's level
    (None without one)."""
    parts: int
    """Parts the producer's level was made in."""


def producer_key(dataset: Dataset) -> list[str]:
    """The key rows are consolidated and sorted on: the primary key, plus ``producer`` under
    provenance (a producer's newest upload wins over its own older rows only)."""
    key = list(dataset.primary_key)
    if dataset.provenance and key and "producer" not in key:
        key.append("producer")
    return key


def whole_table_needed(dataset: Dataset, schema: pa.Schema) -> bool:
    """Whether the dataset's tables need its whole consolidated table at once: feeds,
    provenance, a ``consolidated`` table, no primary key or a key column missing, or roll-up
    measures that are not signed integers (float sums depend on their order)."""
    if dataset.feeds or dataset.provenance or dataset.consolidated is not None:
        return True
    if not dataset.primary_key or any(k not in schema.names for k in dataset.primary_key):
        return True
    if rollup_levels(dataset):
        if dataset.geography.field not in schema.names:
            return True
        measures = rolled_up_measures(dataset, schema.names)
        return not all(pa.types.is_signed_integer(schema.field(m).type) for m in measures)
    return False


def plan(dataset: Dataset, uploads: Sequence[Upload], cog: Cog, tuning: Tuning) -> Plan:
    """The plan of a publication of ``uploads`` (oldest first, at least one). Reads the staged
    files' schemas, and for several parts the first key column (and the area column)."""
    paths = [u.path for u in uploads]
    schema = staged_schema(dataset.field_names, paths, provenance=dataset.provenance)
    rows = sum(u.count() for u in uploads)
    regions = Partitioning.whole("reg", rows) if "reg" in rollup_levels(dataset) else None
    column = dataset.primary_key[0] if dataset.primary_key else ""
    single = Plan(schema, Partitioning.whole(column, rows), regions)
    if rows <= tuning.partition_rows or whole_table_needed(dataset, schema):
        return single
    counts = key_counts(paths, schema, column, tuning.batch_rows)
    parts = plan_partitions(column, counts, tuning.partition_rows)
    if parts.parts < 2:
        return single
    area = dataset.geography.field
    if regions is not None and area is not None:
        if area != column:
            counts = key_counts(paths, schema, area, tuning.batch_rows)
        regions = plan_partitions("reg", region_counts(counts, cog), tuning.partition_rows)
    return Plan(schema, parts, regions)


def _parts(
    dataset: Dataset, p: Plan, uploads: Sequence[Upload], fed: Feeds, cog: Cog, directory: Path,
    batch_rows: int,
) -> Iterator[pa.Table]:
    """The consolidated table's parts, in key order (see module docstring, step 2)."""
    several = len(uploads) > 1  # one upload: nothing to drop
    key = producer_key(dataset)
    if p.parts.parts == 1 and key:  # read column by column, each put in key order at once
        columns = UploadColumns(uploads, p.schema, tag_order=several)
        try:
            table = consolidate_columns(columns, columns.schema, key)
        finally:
            columns.close()
        yield fed.extend(table, cog)  # uploads, then fed rows
        return
    rows = read_uploads(uploads, p.schema, batch_rows, tag_order=several)
    if p.parts.parts == 1:
        tables = list(rows)
        whole = (pa.concat_tables(tables) if tables else
                 (p.schema.append(pa.field(ORDER, pa.int64())) if several else p.schema)
                 .empty_table())
        del tables
        yield fed.extend(consolidate_part(whole, key), cog)  # uploads, then fed rows
        return
    schema = p.schema.append(pa.field(ORDER, pa.int64())) if several else p.schema
    files = spill(rows, schema, p.parts, directory)
    for u in uploads:
        u.path.unlink()  # spilled: free the temporary space
    yield from consolidated_parts(files, key)


def _coverage(bounds: Sequence[Any]) -> dict[str, str] | None:
    """``{"start", "end"}`` from ``pc.min_max`` results of the time field (one per part)."""
    if not bounds:
        return None
    if len(bounds) == 1:
        mm = bounds[0]
    else:
        kind = bounds[0]["min"].type
        mm = pc.min_max(pa.array([b[k].as_py() for b in bounds for k in ("min", "max")], kind))
    return {"start": str(mm["min"]), "end": str(mm["max"])}


_WRITING = ThreadPoolExecutor(1, thread_name_prefix="opendepot-level")
"""The thread writing the producer's level (``render.LevelWriter.write``, which waits for its
formatting threads) while the calling thread rolls up, kept between publications."""


@contextmanager
def _written(last: Callable[[], Future[None] | None]) -> Iterator[None]:
    """On leaving, the write ``last()`` names (if any) is over, whatever happened: the writer is
    never closed under it."""
    try:
        yield
    finally:
        write = last()
        if write is not None:
            wait([write])


def render_levels(
    dataset: Dataset,
    uploads: Sequence[Upload],
    fed: Feeds,
    cog: Cog,
    work: Path,
    tuning: Tuning | None = None,
) -> Levels:
    """Every published table of a publication of ``uploads`` (oldest first, at least one) and
    ``fed`` rows, written to files in ``work`` (see module docstring). The staged files may be
    deleted once read.

    Raises:
        OSError: ``work`` is not writable or full (the publication is retried).
    """
    tuning = tuning or Tuning()
    p = plan(dataset, uploads, cog, tuning)
    level, date = dataset.geography.level, dataset.time_field
    directory = work / "parts"
    directory.mkdir()
    rollups = Rollups(dataset, cog, p.schema, directory, p.regions, tuning.batch_rows)
    whole: pa.Table | None = None
    bounds = []
    others: list[tuple[str, list[RenderedFile], pa.Schema, int]] = []
    written: Future[None] | None = None
    with LevelWriter(dataset.name, level, p.schema, work) as writer, _written(lambda: written):
        for i, part in enumerate(_parts(dataset, p, uploads, fed, cog, directory,
                                        tuning.batch_rows)):
            if part.num_rows >= PARALLEL_ROWS:
                written = _WRITING.submit(writer.write, part)  # rolled up while it is written
            else:  # small: not worth a thread's wake-up
                writer.write(part)
            rollups.add(part)
            if date:
                bounds.append(pc.min_max(part[date]))
            if p.parts.parts == 1:
                whole = part  # the consolidated table needs it whole
            del part
            if written is not None and i < p.parts.parts - 1:  # written before the next part
                written.result()  # is made: one part in memory
                written = None
        # the last part may still be being written: the other levels are made meanwhile
        chosen = consolidated_table(dataset, whole) if whole is not None else None
        del whole
        if chosen is not None and dataset.consolidated is not None:
            name = dataset.consolidated.name
            others.append((name, render_level(dataset.name, name, chosen, work), chosen.schema,
                           chosen.num_rows))
        del chosen
        for lv, level_parts in rollups.levels_in_parts():
            done, schema = render_parts(dataset.name, lv, level_parts, work)
            others.append((lv, done, schema, done[0].rows))
        if written is not None:
            written.result()
        files = writer.close()
    schemas, rows = {level: p.schema}, {level: writer.rows}
    for name, done, schema, n in others:
        files.extend(done)
        schemas[name], rows[name] = schema, n
    return Levels(files, schemas, rows, _coverage(bounds), p.parts.parts)
