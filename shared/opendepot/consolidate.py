"""Consolidation of staged uploads and geographic roll-ups.

Pure functions over Arrow tables and local files. ``consolidate`` turns the staged uploads of one
dataset into one table at the producer's level; ``rollup`` computes the region and national
levels (together: the in-memory path, the reference):

- region of a department from the INSEE COG (975, 977, 978 have none: they count in the
  national level only);
- rows are summed within the other primary-key dimensions (``sexe``, ``jour``...), so a total
  code (``sexe`` 0) is never summed with its parts;
- a roll-up is a number only when every member area has a value: the members of a region (or of
  the nation) are the areas of that region present anywhere in the dataset, so a missing row or
  a null value makes the roll-up null, never a partial sum.

The streaming path gives the same tables within bounded memory, for large inputs (an external
sort by partition):

1. ``key_counts`` reads the first primary-key column of the staged files and ``plan_partitions``
   cuts its sorted distinct values into ranges of about ``partition_rows`` rows;
2. ``spill`` streams the staged files in record batches into one Arrow IPC file per range, each
   row tagged with its upload order when there are several uploads;
3. ``consolidated_parts`` reads the ranges in key order, keeps the newest upload's row of each
   key and sorts them. Every row of one first-column value lands in one part, so the parts, one
   after the other, are ``consolidate``'s table;
4. ``StreamingRollups`` takes the parts: the national level from partial sums and counts per
   part (one row per combination of the other dimensions: small), added up; the region level by
   spilling each part's rows, with their region, into one file per range of regions (planned
   from the area counts), then ``rollup``'s own computation on each range, whose regions are
   complete in it. The members are the distinct areas of all parts.

Sums of integers do not depend on the order of addition, sums of floats do: ``streamable``
keeps datasets with float roll-ups in memory.

Both paths sum on integer codes (``_group_sums``): each row's group is packed from the codes of
its area and dimensions (``keysort``: value order, nulls last), so the groups in packed order
are the rows in (area, dims) order; ``np.add.at`` sums int64 values, which wrap around on
overflow as Arrow's int64 sums do, so every sum is Arrow's. Roll-ups without such codes or
sums (an area column that is not text, float or unsigned measures, dimensions of other types
than ``CODED``'s, keys past 62 bits) are Arrow's ``group_by``, the reference; so is the adding up
of the streaming path's national partial sums (``_combine_partials``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from opendepot import keysort
from opendepot.keys import sequencer_key
from opendepot.memory import release_memory
from opendepot.registry import NATIONAL_CODE, Cog, Dataset

ADDITIVE = {"stock", "cumulative", "incidence"}
"""Measure kinds that are summed in roll-ups; rates and indices are not rolled up."""


@dataclass(frozen=True)
class StagedUpload:
    """An accepted upload and its typed rows."""

    record: dict
    """The upload record (see docs/design.md): upload_id, producer, received_at, sequencer..."""
    table: pa.Table


def upload_order(record: dict) -> tuple[str, str, str]:
    """Sort key of uploads, oldest first: arrival time, then S3 sequencer, then id."""
    return (
        record.get("received_at", ""),
        sequencer_key(record.get("sequencer", "") or ""),
        record["upload_id"],
    )


def _write_order(record: dict) -> tuple[str, str, str]:
    return (
        sequencer_key(record.get("sequencer", "") or ""),
        record.get("received_at", ""),
        record["upload_id"],
    )


def current_versions(records: Sequence[dict]) -> list[dict]:
    """Drop every upload superseded by a later write of the same key.

    For one key, S3's ``sequencer`` orders writes (compared right-padded with zeros), whatever
    the order in which the events arrived or their timestamps.
    """
    newest: dict[str, dict] = {}
    for r in records:
        seen = newest.get(r["key"])
        # without a sequencer (moto's events carry none) the arrival time decides
        if seen is None or _write_order(r) > _write_order(seen):
            newest[r["key"]] = r
    return list(newest.values())


def select_uploads(dataset: Dataset, records: Sequence[dict]) -> list[dict]:
    """The uploads a publication is made of, oldest first.

    Older writes of a key are dropped first (``current_versions``); then ``snapshot``: each
    producer's newest upload (it is that producer's full history); ``append``: every upload.
    """
    ordered = sorted(current_versions(records), key=upload_order)
    keep: dict[tuple[str, str], dict] = {}
    for r in ordered:  # snapshot producers: the newest upload replaces the older ones
        snapshot = dataset.mode_of(r["producer"]) == "snapshot"
        keep[(r["producer"], "" if snapshot else r["upload_id"])] = r
    return sorted(keep.values(), key=upload_order)


PROVENANCE = ("producer", "upload_id")
"""Columns added to every row of a dataset that declares ``provenance``."""


def consolidate(dataset: Dataset, uploads: Sequence[StagedUpload]) -> pa.Table:
    """One table from the selected uploads (oldest first): on a repeated primary key the newest
    upload's row wins. Sorted by primary key. Columns: the schema's fields, then ``producer``
    and ``upload_id`` when the dataset declares ``provenance`` (the key then includes
    ``producer``: a producer's newest upload wins over its own older rows only)."""
    if not uploads:
        raise ValueError("nothing to consolidate")
    tables = []
    for u in uploads:
        t = u.table.select([f for f in dataset.field_names if f in u.table.column_names])
        if dataset.provenance:
            n = t.num_rows
            t = t.append_column("producer", pa.array([u.record["producer"]] * n, pa.string()))
            t = t.append_column("upload_id", pa.array([u.record["upload_id"]] * n, pa.string()))
        tables.append(t)
    table = pa.concat_tables(tables, promote_options="permissive")
    pk = list(dataset.primary_key)
    if dataset.provenance and pk and "producer" not in pk:
        pk.append("producer")
    if len(tables) > 1 and pk:
        order = pa.array(np.arange(table.num_rows))
        table = table.append_column("__order", order)
        last = table.group_by(pk, use_threads=False).aggregate([("__order", "max")])
        keep = pc.is_in(table["__order"], value_set=last["__order_max"])
        table = table.filter(keep).drop_columns(["__order"])
    return table.take(keysort.table_order(table, pk)) if pk else table


def prioritise(
    table: pa.Table, key: list[str], field: str, order: list[str], then: dict | None = None
) -> pa.Table:
    """One row per ``key``: the row whose ``field`` comes first in ``order`` (values not in
    ``order`` come after, in the order of the table: the newest upload's rows are last, so among
    equals the last row wins). Input rows are never merged or summed. Sorted by ``key``."""
    rank = {v: i for i, v in enumerate(order)}
    values = table[field].to_pylist()
    n = table.num_rows
    score = np.array([rank.get(v, len(order)) for v in values], dtype=np.int64)
    if then:  # between equal ranks, values of ``then.field`` listed in ``then.last`` come last
        last = set(then.get("last", []))
        later = np.array([v in last for v in table[then["field"]].to_pylist()], dtype=np.int64)
        score = score * 2 + later
    # lower rank wins; among equal ranks the later row (newer upload) wins
    priority = score * (n + 1) + (n - np.arange(n))
    ranked = table.append_column("__priority", pa.array(priority))
    best = ranked.group_by(key, use_threads=False).aggregate([("__priority", "min")])
    keep = pc.is_in(ranked["__priority"], value_set=best["__priority_min"])
    return ranked.filter(keep).drop_columns(["__priority"]).sort_by([(k, "ascending") for k in key])


def _partial_sums(table: pa.Table, area: str, dims: list[str], measures: list[str]) -> pa.Table:
    """Group by (area, dims): ``{m}_sum`` and ``{m}_count`` (values present) of each measure."""
    aggs = [(m, "sum") for m in measures] + [(m, "count") for m in measures]
    return table.group_by([area, *dims], use_threads=False).aggregate(aggs)


def _combine_partials(
    partials: Sequence[pa.Table], area: str, dims: list[str], measures: list[str]
) -> pa.Table:
    """Partial sums of several parts as one: sums and counts added per (area, dims)."""
    if len(partials) == 1:
        return partials[0]
    table = pa.concat_tables(partials)
    columns = [f"{m}_{what}" for what in ("sum", "count") for m in measures]
    grouped = table.group_by([area, *dims], use_threads=False).aggregate(
        [(c, "sum") for c in columns]
    )
    names = {f"{c}_sum": c for c in columns}  # hash_sum names its output "{column}_sum"
    grouped = grouped.rename_columns([names.get(c, c) for c in grouped.column_names])
    return grouped.select(partials[0].column_names)


def _complete(
    grouped: pa.Table, area: str, dims: list[str], measures: list[str], expected: pa.Table
) -> pa.Table:
    """The roll-up from partial sums: each measure's sum, null unless every member has a value.
    Sorted by (area, dims)."""
    grouped = grouped.join(expected, keys=area, join_type="left outer")
    cols = {area: grouped[area]}
    for d in dims:
        cols[d] = grouped[d]
    for m in measures:
        complete = pc.equal(grouped[f"{m}_count"], grouped["__members"])
        total = grouped[f"{m}_sum"]
        cols[m] = pc.if_else(complete, total, pa.scalar(None, total.type))
    out = pa.table(cols)
    return out.take(keysort.table_order(out, [area, *dims]))


def _sum_complete(
    table: pa.Table, area: str, dims: list[str], measures: list[str], expected: pa.Table
) -> pa.Table:
    """Group by (area, dims); each measure summed, null unless every member has a value.
    ``expected``: ``area`` -> ``__members``. Sorted by (area, dims)."""
    if _is_text(table[area].type):
        codes = keysort.Codes()
        codes.add(table[area])
        ranked, values = codes.finish()
        known = dict(zip(expected[area].to_pylist(), expected["__members"].to_pylist()))
        # a null area, or one ``expected`` lacks, has no members: its sums are null (as a join)
        members = np.array([-1 if v is None else known.get(v, -1) for v in values], np.int64)
        groups = _group_sums(table, ranked, len(values), dims, measures)
        if groups is not None:
            areas = pa.array(values, table[area].type)
            return _complete_groups(table, groups, area, areas, members, dims, measures)
    return _arrow_sum_complete(table, area, dims, measures, expected)


def _arrow_sum_complete(
    table: pa.Table, area: str, dims: list[str], measures: list[str], expected: pa.Table
) -> pa.Table:
    """``_sum_complete`` by Arrow's ``group_by``: the reference."""
    return _complete(_partial_sums(table, area, dims, measures), area, dims, measures, expected)


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


CODED = (pa.types.is_string, pa.types.is_large_string, pa.types.is_integer, pa.types.is_date,
         pa.types.is_boolean)
"""Dimension types summed on codes: ``keysort``'s codes group and order them as Arrow does."""


def _key_codes(column: pa.ChunkedArray) -> tuple[np.ndarray, int] | None:
    """Codes of a dimension in value order, nulls last, and how many (``keysort``); None for
    types not in ``CODED``."""
    if not any(t(column.type) for t in CODED):
        return None
    return keysort.column_codes(column)


@dataclass(frozen=True)
class _Groups:
    """Rows grouped by (area, dims) and summed: the non-empty groups, in (area, dims) order."""

    rows: pa.Array
    """A row of each group (its dimensions are the group's)."""
    area: np.ndarray
    """The area code of each group."""
    sums: list[np.ndarray]
    """Per measure, int64: the sum of each group's values (0 without values)."""
    counts: list[np.ndarray]
    """Per measure, int64: how many values each group has."""


def _group_sums(
    table: pa.Table, area: np.ndarray, areas: int, dims: list[str], measures: list[str]
) -> _Groups | None:
    """``table``'s rows grouped by (area, dims) on integer codes, each measure summed as Arrow
    sums it (int64, wrapping around on overflow).

    ``area``: each row's area code, numbered in value order, ``areas`` for a row left out. None
    when a measure is not a signed integer, a dimension not ``CODED`` or the keys need more
    than 62 bits."""
    if not all(pa.types.is_signed_integer(table[m].type) for m in measures):
        return None
    codes, sizes = [area], [areas + 1]
    for d in dims:
        coded = _key_codes(table[d])
        if coded is None:
            return None
        codes.append(coded[0])
        sizes.append(coded[1])
    packed = keysort.pack(codes, sizes)
    if packed is None:
        return None
    group, n_groups = keysort.group_ids(*packed)
    group = group.astype(np.intp, copy=False)
    rows_in = np.bincount(group, minlength=n_groups)
    one_row = np.empty(n_groups, np.int64)
    one_row[group] = np.arange(group.size)
    kept = np.flatnonzero(rows_in)
    kept = kept[area[one_row[kept]] < areas]
    sums, counts = [], []
    for m in measures:
        column = table[m]
        ids, count = group, rows_in
        if column.null_count:  # the values only
            ids = group[pc.is_valid(column).to_numpy(zero_copy_only=False)]
            column, count = column.drop_null(), np.bincount(ids, minlength=n_groups)
        total = np.zeros(n_groups, np.int64)  # int64 sums wrap around on overflow, as Arrow's
        np.add.at(total, ids, column.to_numpy().astype(np.int64, copy=False))
        sums.append(total[kept])
        counts.append(count[kept])
    rows = one_row[kept]
    return _Groups(pa.array(rows), area[rows], sums, counts)


def _complete_groups(
    table: pa.Table,
    groups: _Groups,
    area: str,
    areas: pa.Array,
    members: np.ndarray,
    dims: list[str],
    measures: list[str],
) -> pa.Table:
    """``_complete``'s table from ``_group_sums``: ``areas`` the value of each area code,
    ``members`` how many members each has."""
    columns = {area: areas.take(pa.array(groups.area)),
               **{d: table[d].take(groups.rows) for d in dims}}
    expected = members[groups.area]
    for m, total, count in zip(measures, groups.sums, groups.counts, strict=True):
        columns[m] = pa.array(total, pa.int64(), mask=count != expected)
    return pa.table(columns)


def _with_region(base: pa.Table, area: str, cog: Cog) -> pa.Table:
    """``base`` (departments in column ``area``) with their ``reg``; departments without one
    (975, 977, 978, unknown codes) dropped."""
    codes = pa.array(list(cog.departments), pa.string())
    regions = pa.array([d["reg"] for d in cog.departments.values()], pa.string())
    reg = regions.take(pc.index_in(base[area], value_set=codes))
    with_reg = base.append_column("reg", reg)
    return with_reg.filter(pc.is_valid(with_reg["reg"]))


def _region_members(with_reg: pa.Table, area: str) -> pa.Table:
    """``reg`` -> ``__members``: how many distinct departments of the region are present."""
    members = pa.table({"dep": with_reg[area], "reg": with_reg["reg"]}).group_by(
        ["reg", "dep"], use_threads=False
    ).aggregate([])
    expected = members.group_by("reg", use_threads=False).aggregate([("dep", "count")])
    return expected.rename_columns(["reg", "__members"])


def _national_members(n_members: int) -> pa.Table:
    return pa.table({"fra": [NATIONAL_CODE], "__members": pa.array([n_members], pa.int64())})


def _with_nation(base: pa.Table) -> pa.Table:
    nation = pa.repeat(pa.scalar(NATIONAL_CODE, pa.string()), base.num_rows)
    return base.append_column("fra", nation)


def _region_rollup(
    base: pa.Table, area: str, dims: list[str], measures: list[str], cog: Cog
) -> pa.Table:
    """The ``reg`` level of the departments in column ``area`` (``_with_region``,
    ``_region_members``), summed on the departments' codes when it can be."""
    if _is_text(base[area].type):
        codes = keysort.Codes()
        codes.add(base[area])
        deps, values = codes.finish()
        region_of = [cog.region_of(v) for v in values[:-1]]
        regions = sorted({r for r in region_of if r is not None})
        number = {r: i for i, r in enumerate(regions)}
        # departments without a region (and the null code, last) are left out: code len(regions)
        region_code = np.array([*(number.get(r, len(regions)) for r in region_of), len(regions)])
        members = np.bincount(region_code, minlength=len(regions) + 1)
        groups = _group_sums(base, region_code[deps], len(regions), dims, measures)
        if groups is not None:
            return _complete_groups(base, groups, "reg", pa.array(regions, pa.string()),
                                    members, dims, measures)
    with_reg = _with_region(base, area, cog)
    return _arrow_sum_complete(with_reg, "reg", dims, measures, _region_members(with_reg, area))


def _national_sums(base: pa.Table, dims: list[str], measures: list[str]) -> _Groups | None:
    """``_group_sums`` of every row of ``base`` in one area (the nation)."""
    return _group_sums(base, np.zeros(base.num_rows, np.int8), 1, dims, measures)


def _national_rollup(base: pa.Table, area: str, dims: list[str], measures: list[str]) -> pa.Table:
    """The ``fra`` level of the areas in column ``area``: every distinct area is a member."""
    n_members = len(pc.unique(base[area]))
    groups = _national_sums(base, dims, measures)
    if groups is None:
        return _arrow_sum_complete(_with_nation(base), "fra", dims, measures,
                                   _national_members(n_members))
    return _complete_groups(base, groups, "fra", pa.array([NATIONAL_CODE], pa.string()),
                            np.array([n_members]), dims, measures)


def _national_partial_sums(base: pa.Table, dims: list[str], measures: list[str]) -> pa.Table:
    """``_partial_sums`` of ``_with_nation(base)`` by area ``fra``, on codes when it can be."""
    groups = _national_sums(base, dims, measures)
    if groups is None:
        return _partial_sums(_with_nation(base), "fra", dims, measures)
    nation = pa.array([NATIONAL_CODE], pa.string())
    columns = {"fra": nation.take(pa.array(groups.area)),
               **{d: base[d].take(groups.rows) for d in dims}}
    for m, total, count in zip(measures, groups.sums, groups.counts, strict=True):
        columns[f"{m}_sum"] = pa.array(total, pa.int64(), mask=count == 0)
    for m, count in zip(measures, groups.counts, strict=True):
        columns[f"{m}_count"] = pa.array(count, pa.int64())
    return pa.table(columns)


def rolled_up_measures(dataset: Dataset, columns: Sequence[str]) -> list[str]:
    """The measures summed in roll-ups: additive kinds present among ``columns``."""
    return [m for m, kind in dataset.measures.items() if m in columns and kind in ADDITIVE]


def rollup_levels(dataset: Dataset) -> list[str]:
    """The roll-up levels computed, in the order they are published (``reg``, then ``fra``)."""
    geo = dataset.geography
    if geo.field is None or not geo.rollups:
        return []
    return [lv for lv in ("reg", "fra")
            if lv in geo.rollups and (lv == "fra" or geo.level == "dep")]


def rollup(dataset: Dataset, table: pa.Table, cog: Cog) -> dict[str, pa.Table]:
    """Tables per level: the producer's level as given, then each declared roll-up, and the
    declared ``consolidated`` table (one row per key, chosen by source priority).

    Input: the consolidated table. Output columns per level: the area code (``dep``, ``reg`` or
    ``fra``; ``fra`` is always ``FR``), the other primary-key dimensions, then the measures.
    """
    geo = dataset.geography
    out = {geo.level: table}
    spec = dataset.consolidated
    if spec is not None:
        then = {"field": spec.then_field, "last": list(spec.then_last)} if spec.then_field else None
        out[spec.name] = prioritise(
            table, list(spec.key), spec.priority_field, list(spec.priority_order), then
        )
    levels = rollup_levels(dataset)
    if not levels or geo.field is None:
        return out
    dims = list(dataset.dimensions)
    measures = rolled_up_measures(dataset, table.column_names)
    base = table.select([geo.field, *dims, *measures])
    if "reg" in levels:
        out["reg"] = _region_rollup(base, geo.field, dims, measures, cog)
    if "fra" in levels:
        out["fra"] = _national_rollup(base, geo.field, dims, measures)
    return out


# --- the streaming path: bounded memory for large inputs (see module docstring) ----------------

ORDER = "__order"
"""Column of the spilled rows: position in the selected uploads, oldest first (newest wins)."""
SPILL_OPTIONS = pa.ipc.IpcWriteOptions(
    compression="lz4" if pa.Codec.is_available("lz4") else None
)
"""Arrow IPC options of the partition files (lz4 keeps them small in a Lambda's /tmp)."""


def staged_schema(dataset: Dataset, paths: Sequence[Path]) -> pa.Schema:
    """The consolidated table's schema: each staged file's fields in the schema's order,
    unified as ``consolidate``'s ``concat_tables(promote_options="permissive")`` does."""
    schemas = []
    for path in paths:
        schema = pq.read_schema(path)
        fields = [schema.field(f) for f in dataset.field_names if f in schema.names]
        schemas.append(pa.schema(fields, metadata=schema.metadata))
    return pa.unify_schemas(schemas, promote_options="permissive")


def streamable(dataset: Dataset, schema: pa.Schema) -> bool:
    """Whether the streaming path gives exactly ``consolidate`` + ``rollup``'s tables: a primary
    key, no ``provenance`` or ``consolidated`` table, roll-up measures of signed integers."""
    if not dataset.primary_key or dataset.provenance or dataset.consolidated is not None:
        return False
    if any(k not in schema.names for k in dataset.primary_key):
        return False
    if rollup_levels(dataset):
        if dataset.geography.field not in schema.names:
            return False
        measures = rolled_up_measures(dataset, schema.names)
        return all(pa.types.is_signed_integer(schema.field(m).type) for m in measures)
    return True


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.Table:
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
            total = _add_counts(total, part)
    return total.sort_by([("value", "ascending")])


def _add_counts(a: pa.Table, b: pa.Table) -> pa.Table:
    """Two (value, count) tables as one, counts of equal values added."""
    both = pa.concat_tables([a, b.cast(a.schema)])
    summed = both.group_by("value", use_threads=False).aggregate([("count", "sum")])
    return summed.rename_columns({"count_sum": "count"}).select(["value", "count"])


def region_counts(counts: pa.Table, cog: Cog) -> pa.Table:
    """``key_counts`` of a department column -> the same of their regions (departments without
    a region left out), sorted."""
    deps = pa.table({"dep": counts["value"], "count": counts["count"]})
    with_reg = _with_region(deps, "dep", cog)
    return _add_counts(
        pa.table({"value": pa.array([], pa.string()), "count": pa.array([], pa.int64())}),
        pa.table({"value": with_reg["reg"], "count": with_reg["count"]}),
    ).sort_by([("value", "ascending")])


@dataclass(frozen=True)
class Partitioning:
    """Ranges of one column's sorted distinct values, one part each."""

    column: str
    values: pa.Array
    """The column's distinct values, sorted (nulls last)."""
    part_of: np.ndarray
    """Part of each value (non-decreasing: part ``i`` holds values before part ``i + 1``'s)."""
    rows: tuple[int, ...]
    """Rows per part, as counted (before duplicates of a key are dropped)."""

    @property
    def parts(self) -> int:
        return len(self.rows)

    def parts_of(self, column: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """The part of each value of ``column`` (every value must be one of ``values``)."""
        found = pc.index_in(column, value_set=self.values)
        if found.null_count:  # the plan was made from these values: a bug if not
            raise ValueError(f"{self.column}: a value the partitioning does not know")
        return self.part_of[found.to_numpy(zero_copy_only=False).astype(np.int64)]


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

    def close(self) -> list[Path]:
        for w in self._writers:
            w.close()
        return self.files


def spill(
    paths: Sequence[Path],
    schema: pa.Schema,
    partitioning: Partitioning,
    directory: Path,
    batch_rows: int,
    *,
    tag_order: bool,
) -> list[Path]:
    """Stream the staged files (oldest upload first) in record batches into one Arrow IPC file
    per part of ``partitioning``. With ``tag_order`` every row gets ``ORDER``, its position
    across the uploads. Returns the part files, in key order."""
    out_schema = schema.append(pa.field(ORDER, pa.int64())) if tag_order else schema
    parts = Spill(directory, "part", out_schema, partitioning)
    position = 0
    try:
        for path in paths:
            for table in _read_batches(path, schema, batch_rows):
                n = table.num_rows
                if tag_order:
                    table = table.append_column(ORDER, pa.array(np.arange(position, position + n)))
                position += n
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


def _read_part(file: Path) -> pa.Table:
    """One spilled part, then its file deleted (its space is free for the next)."""
    with pa.OSFile(str(file), "rb") as source:
        table = pa.ipc.open_file(source).read_all()
    file.unlink()
    return table


def _take_by_column(table: pa.Table, indices: pa.Array) -> pa.Table:
    """``table.take(indices)``, one column at a time: each input column is released once taken
    when the caller holds no other reference to ``table`` (else the peak is that of ``take``)."""
    schema = table.schema
    columns = []
    for _ in schema.names:
        columns.append(table.column(0).take(indices))
        table = table.remove_column(0)
    return pa.Table.from_arrays(columns, schema=schema)


def consolidated_parts(
    files: Sequence[Path], key: Sequence[str], *, dedupe: bool
) -> Iterator[pa.Table]:
    """Each part file in turn, as ``consolidate`` gives its rows: with ``dedupe`` (several
    uploads) the newest row of each key (largest ``ORDER``); sorted by ``key``. One after the
    other, the parts are ``consolidate``'s table. A consumer holding no part while asking for
    the next keeps one part in memory at a time."""
    for file in files:
        table = _read_part(file)
        if dedupe:  # sorted with the upload order last: the newest row of a key ends its run
            order = keysort.table_order(table, [*key, ORDER])
            keys = table.select(list(key)).take(order)
            order = order.filter(_last_of_each_key(keys, list(key)))
            del keys
            table = _take_by_column(table.drop_columns([ORDER]), order)
        else:  # ``sort_by`` is a stable sort: so is this
            table = _take_by_column(table, keysort.table_order(table, list(key)))
        yield table
        del table
        release_memory()


class StreamingRollups:
    """``rollup``'s region and national tables from the consolidated table seen part by part
    (see module docstring, step 4): ``add`` each part, then ``levels_in_parts``."""

    def __init__(
        self,
        dataset: Dataset,
        cog: Cog,
        schema: pa.Schema,
        directory: Path,
        regions: Partitioning | None,
        batch_rows: int,
    ) -> None:
        """``regions``: ranges of region codes (``plan_partitions`` of ``region_counts``),
        needed when the dataset rolls up to ``reg``."""
        self.area = dataset.geography.field or ""
        self.levels = rollup_levels(dataset)  # none without an area column
        self.dims = list(dataset.dimensions)
        self.measures = rolled_up_measures(dataset, schema.names)
        self.cog = cog
        self.batch_rows = batch_rows
        self._areas: list[pa.Array] = []
        self._national: pa.Table | None = None
        self._regions: Spill | None = None
        region_rows = pa.schema([schema.field(c) for c in [*self.dims, *self.measures]]).append(
            pa.field("reg", pa.string()))
        self._no_regions = region_rows.empty_table()
        if "reg" in self.levels:
            if regions is None:
                raise ValueError("a region partitioning is needed to roll up to reg")
            self._regions = Spill(directory, "reg", region_rows, regions)

    def add(self, part: pa.Table) -> None:
        """Take one part of the consolidated table (at the producer's level)."""
        if not self.levels:
            return
        base = part.select([self.area, *self.dims, *self.measures])
        self._areas.append(pc.unique(base[self.area]))
        if self._regions is not None:  # in slices: one copy of a slice at a time
            for start in range(0, base.num_rows, self.batch_rows):
                rows = _with_region(base.slice(start, self.batch_rows), self.area, self.cog)
                self._regions.write(rows.select(self._no_regions.column_names))
        if "fra" in self.levels:
            sums = _national_partial_sums(base, self.dims, self.measures)
            self._national = sums if self._national is None else _combine_partials(
                [self._national, sums], "fra", self.dims, self.measures)

    def levels_in_parts(self) -> Iterator[tuple[str, Iterator[pa.Table]]]:
        """Each roll-up level (``reg``, then ``fra``) as its rows in order, part by part: the
        same rows as ``rollup``'s table. Call once, after the last ``add``."""
        if not self.levels:
            return
        if not self._areas:
            raise ValueError("roll-ups of no part: add the parts first")
        areas = pc.unique(pa.chunked_array(self._areas))
        if self._regions is not None:
            files = self._regions.close()
            expected = _region_members(
                _with_region(pa.table({self.area: areas}), self.area, self.cog), self.area)
            yield "reg", self._region_parts(files, expected)
        if self._national is not None:
            yield "fra", iter([_complete(self._national, "fra", self.dims, self.measures,
                                         _national_members(len(areas)))])

    def _region_parts(self, files: list[Path], expected: pa.Table) -> Iterator[pa.Table]:
        """Each range of regions holds every row of its regions: ``rollup``'s computation on it
        gives that range's rows of the region table, in order."""
        done = False
        for file in files:
            rows = _read_part(file)
            if rows.num_rows:
                yield _sum_complete(rows, "reg", self.dims, self.measures, expected)
                done = True
            del rows
            release_memory()
        if not done:  # no department with a region: the table is empty, as in ``rollup``
            yield _sum_complete(self._no_regions, "reg", self.dims, self.measures, expected)
