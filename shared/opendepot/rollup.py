"""Geographic roll-ups and the source-priority table, from the consolidated table.

- region of a department from the INSEE COG (975, 977, 978 have none: they count in the
  national level only);
- rows are summed within the other primary-key dimensions (``sexe``, ``jour``...), so a total
  code (``sexe`` 0) is never summed with its parts;
- a roll-up is a number only when every member area has a value: the members of a region (or of
  the nation) are the areas of that region present anywhere in the dataset, so a missing row or
  a null value makes the roll-up null, never a partial sum.

``Rollups`` takes the consolidated table part by part (``opendepot.partitions``): the national
level from partial sums and counts per part (one row per combination of the other dimensions:
small), added up; the region level by spilling each part's rows, with their region, into one
file per range of regions (``region_counts`` + ``plan_partitions``), then summed range by range,
each range holding its regions whole. The members are the distinct areas of all parts. With one
part this is the whole table's computation (``rollup``), which the tests also call directly.

Sums of integers do not depend on the order of addition, sums of floats do: the publication cuts
datasets with float roll-ups into one part only (``opendepot.levels``).

Sums run on integer codes (``_group_sums``): each row's group is packed from the codes of its
area and dimensions (``keysort``: value order, nulls last), so the groups in packed order are
the rows in (area, dims) order; ``np.add.at`` sums int64 values, which wrap around on overflow
as Arrow's int64 sums do, so every sum is Arrow's. Roll-ups without such codes or sums (an area
column that is not text, float or unsigned measures, dimensions of other types than ``CODED``'s,
keys past 62 bits) are Arrow's ``group_by``, the reference; so is the adding up of the national
partial sums of several parts (``_combine_partials``). ``by`` chooses: ``auto`` (codes where
they can be, else Arrow), ``arrow`` (Arrow only), ``codes`` (codes only: ``ValueError`` where a
grouping of rows cannot be made on codes).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from opendepot import keysort
from opendepot.memory import release_memory
from opendepot.partitions import Partitioning, Spill, add_counts, read_part
from opendepot.registry import NATIONAL_CODE, Cog, Dataset

ADDITIVE = {"stock", "cumulative", "incidence"}
"""Measure kinds that are summed in roll-ups; rates, indices and ``distinct`` counts (a count
of distinct units, e.g. companies, which a sum would count once per area) are not rolled up."""
By = Literal["auto", "codes", "arrow"]
"""How rows are grouped and summed (see module docstring)."""


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


def prioritise(
    table: pa.Table, key: list[str], field: str, order: list[Any],
    then: dict[str, Any] | None = None,
) -> pa.Table:
    """One row per ``key``: the row whose ``field`` comes first in ``order`` (values not in
    ``order`` come after, in the order of the table: the newest upload's rows are last, so among
    equals the last row wins). Input rows are never merged or summed. Sorted by ``key``.
    ``then``: ``{"field", "last"}``: between equal ranks, rows whose ``field`` is in ``last``
    lose."""
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


def consolidated_table(dataset: Dataset, table: pa.Table) -> pa.Table | None:
    """The dataset's declared ``consolidated`` table (``prioritise`` of the whole consolidated
    table), or None when it declares none."""
    spec = dataset.consolidated
    if spec is None:
        return None
    then = {"field": spec.then_field, "last": list(spec.then_last)} if spec.then_field else None
    return prioritise(table, list(spec.key), spec.priority_field, list(spec.priority_order), then)


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


def _decline(what: str, by: By) -> None:
    """Raise when ``by`` asks for codes only and ``what`` cannot be grouped on codes."""
    if by == "codes":
        raise ValueError(f"{what}: not summable on integer codes (the Arrow fallback is needed)")


def sum_complete(
    table: pa.Table, area: str, dims: list[str], measures: list[str], expected: pa.Table,
    *, by: By = "auto",
) -> pa.Table:
    """Group by (area, dims); each measure summed, null unless every member has a value.
    ``expected``: ``area`` -> ``__members`` (int64). Sorted by (area, dims).

    Raises:
        ValueError: ``by="codes"`` and the rows cannot be grouped on codes.
    """
    if _is_text(table[area].type) and by != "arrow":
        codes = keysort.Codes()
        codes.add(table[area])
        ranked, values = codes.finish()
        known = dict(zip(expected[area].to_pylist(), expected["__members"].to_pylist(),
                         strict=True))
        # a null area, or one ``expected`` lacks, has no members: its sums are null (as a join)
        members = np.array([-1 if v is None else known.get(v, -1) for v in values], np.int64)
        groups = _group_sums(table, ranked, len(values), dims, measures)
        if groups is not None:
            areas = pa.array(values, table[area].type)
            return _complete_groups(table, groups, area, areas, members, dims, measures)
    _decline(area, by)
    return _complete(_partial_sums(table, area, dims, measures), area, dims, measures, expected)


def _is_text(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


CODED = (pa.types.is_string, pa.types.is_large_string, pa.types.is_integer, pa.types.is_date,
         pa.types.is_boolean)
"""Dimension types summed on codes: ``keysort``'s codes group and order them as Arrow does."""


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
        if not any(t(table[d].type) for t in CODED):
            return None
        coded = keysort.column_codes(table[d])
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


def _runs(column: pa.ChunkedArray, max_runs: int) -> list[tuple[int, int, Any]] | None:
    """(start, stop, value) of each run of equal values of ``column`` (a run may continue in
    the next chunk: then it is two runs), or None when there are more than ``max_runs``."""
    runs: list[tuple[int, int, Any]] = []
    at = 0
    for chunk in column.chunks:
        if len(chunk) == 0:  # no run (and ``starts`` below would have one)
            continue
        encoded = pc.run_end_encode(chunk)
        ends = encoded.run_ends.to_numpy()
        if len(runs) + len(ends) > max_runs:
            return None
        values = encoded.values.to_pylist()
        starts = np.concatenate(([0], ends[:-1]))
        runs.extend((at + int(a), at + int(b), v) for a, b, v in zip(starts, ends, values,
                                                                     strict=True))
        at += len(chunk)
    return runs


def with_region(base: pa.Table, area: str, cog: Cog) -> pa.Table:
    """``base`` (departments in column ``area``) with their ``reg``; departments without one
    (975, 977, 978, unknown codes) dropped."""
    codes = pa.array(list(cog.departments), pa.string())
    regions = pa.array([d["reg"] for d in cog.departments.values()], pa.string())
    reg = regions.take(pc.index_in(base[area], value_set=codes))
    out = base.append_column("reg", reg)
    return out.filter(pc.is_valid(out["reg"]))


def region_counts(counts: pa.Table, cog: Cog) -> pa.Table:
    """``key_counts`` of a department column -> the same of their regions (departments without
    a region left out), sorted."""
    deps = pa.table({"dep": counts["value"], "count": counts["count"]})
    with_reg = with_region(deps, "dep", cog)
    return add_counts(
        pa.table({"value": pa.array([], pa.string()), "count": pa.array([], pa.int64())}),
        pa.table({"value": with_reg["reg"], "count": with_reg["count"]}),
    ).sort_by([("value", "ascending")])


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
    base: pa.Table, area: str, dims: list[str], measures: list[str], cog: Cog, by: By
) -> pa.Table:
    """The ``reg`` level of the departments in column ``area`` (``with_region``,
    ``_region_members``), summed on the departments' codes when it can be."""
    if _is_text(base[area].type) and by != "arrow":
        codes = keysort.Codes()
        codes.add(base[area])
        deps, values = codes.finish()
        region_of = [cog.region_of(v) for v in values[:-1]]
        regions = sorted({r for r in region_of if r is not None})
        number: dict[str | None, int] = {r: i for i, r in enumerate(regions)}
        # departments without a region (and the null code, last) are left out: code len(regions)
        region_code = np.array([*(number.get(r, len(regions)) for r in region_of), len(regions)])
        members = np.bincount(region_code, minlength=len(regions) + 1)
        groups = _group_sums(base, region_code[deps], len(regions), dims, measures)
        if groups is not None:
            return _complete_groups(base, groups, "reg", pa.array(regions, pa.string()),
                                    members, dims, measures)
    _decline("reg", by)
    with_reg = with_region(base, area, cog)
    expected = _region_members(with_reg, area)
    return _complete(_partial_sums(with_reg, "reg", dims, measures), "reg", dims, measures,
                     expected)


def _national_sums(base: pa.Table, dims: list[str], measures: list[str], by: By
                   ) -> _Groups | None:
    """``_group_sums`` of every row of ``base`` in one area (the nation); None with ``arrow``."""
    if by == "arrow":
        return None
    groups = _group_sums(base, np.zeros(base.num_rows, np.int8), 1, dims, measures)
    if groups is None:
        _decline("fra", by)
    return groups


def _national_rollup(
    base: pa.Table, area: str, dims: list[str], measures: list[str], by: By
) -> pa.Table:
    """The ``fra`` level of the areas in column ``area``: every distinct area is a member."""
    n_members = len(pc.unique(base[area]))
    groups = _national_sums(base, dims, measures, by)
    if groups is None:
        return _complete(_partial_sums(_with_nation(base), "fra", dims, measures), "fra", dims,
                         measures, _national_members(n_members))
    return _complete_groups(base, groups, "fra", pa.array([NATIONAL_CODE], pa.string()),
                            np.array([n_members]), dims, measures)


def _national_partial_sums(base: pa.Table, dims: list[str], measures: list[str], by: By
                           ) -> pa.Table:
    """``_partial_sums`` of ``_with_nation(base)`` by area ``fra``, on codes when it can be."""
    groups = _national_sums(base, dims, measures, by)
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


def rollup(dataset: Dataset, table: pa.Table, cog: Cog, *, by: By = "auto") -> dict[str, pa.Table]:
    """Every published table of one whole consolidated table: the producer's level as given,
    the declared ``consolidated`` table (one row per key, chosen by source priority), then each
    declared roll-up (``reg``, ``fra``).

    Output columns of a roll-up: the area code (``reg`` or ``fra``; ``fra`` is always ``FR``),
    the other primary-key dimensions, then the rolled-up measures.

    Raises:
        ValueError: ``by="codes"`` and some grouping cannot be made on codes.
    """
    geo = dataset.geography
    out = {geo.level: table}
    chosen = consolidated_table(dataset, table)
    if chosen is not None and dataset.consolidated is not None:
        out[dataset.consolidated.name] = chosen
    levels = rollup_levels(dataset)
    if not levels or geo.field is None:
        return out
    dims = list(dataset.dimensions)
    measures = rolled_up_measures(dataset, table.column_names)
    base = table.select([geo.field, *dims, *measures])
    if "reg" in levels:
        out["reg"] = _region_rollup(base, geo.field, dims, measures, cog, by)
    if "fra" in levels:
        out["fra"] = _national_rollup(base, geo.field, dims, measures, by)
    return out


class Rollups:
    """The roll-up levels (``rollup``'s ``reg`` and ``fra`` tables) of the consolidated table
    seen part by part (see module docstring): ``add`` each part in key order, then
    ``levels_in_parts`` once."""

    def __init__(
        self,
        dataset: Dataset,
        cog: Cog,
        schema: pa.Schema,
        directory: Path,
        regions: Partitioning | None,
        batch_rows: int,
        *,
        by: By = "auto",
    ) -> None:
        """``schema``: the parts'; ``directory``: where region rows are spilled; ``regions``:
        ranges of region codes (``plan_partitions`` of ``region_counts``), needed when the
        dataset rolls up to ``reg``; with a single range (``Partitioning.whole``) the parts'
        rows are kept and summed at the end instead (``rollup``'s computation); ``batch_rows``:
        rows given a region at a time.

        Raises:
            ValueError: the dataset rolls up to ``reg`` and ``regions`` is None.
        """
        self.area = dataset.geography.field or ""
        self.levels = rollup_levels(dataset)  # none without an area column
        self.dims = list(dataset.dimensions)
        self.measures = rolled_up_measures(dataset, schema.names)
        self.cog = cog
        self.batch_rows = batch_rows
        self.by: By = by
        self._areas: list[pa.Array] = []
        self._national: pa.Table | None = None
        self._regions: Spill | None = None
        self._kept: list[pa.Table] | None = None
        self._region_part: dict[str, int] = {}
        """Region -> its range of regions (``regions``' part)."""
        region_rows = pa.schema([schema.field(c) for c in [*self.dims, *self.measures]]).append(
            pa.field("reg", pa.string()))
        self._no_regions = region_rows.empty_table()
        if "reg" in self.levels:
            if regions is None:
                raise ValueError("a region partitioning is needed to roll up to reg")
            if regions.parts == 1:
                self._kept = []
            else:
                self._regions = Spill(directory, "reg", region_rows, regions)

    def add(self, part: pa.Table) -> None:
        """Take one part of the consolidated table (at the producer's level)."""
        if not self.levels:
            return
        base = part.select([self.area, *self.dims, *self.measures])
        self._areas.append(pc.unique(base[self.area]))
        if self._kept is not None:
            self._kept.append(base)
        if self._regions is not None:
            self._spill_regions(base)
        if "fra" in self.levels:
            sums = _national_partial_sums(base, self.dims, self.measures, self.by)
            self._national = sums if self._national is None else _combine_partials(
                [self._national, sums], "fra", self.dims, self.measures)

    def _spill_regions(self, base: pa.Table) -> None:
        """``base``'s rows with a region, with it, each into its range of regions' file, in
        their order. A part sorted by area (its key's first column) holds each area's rows in
        one run: each run goes to its file as it is, a slice (no copy, no look-up per row);
        else a slice of ``batch_rows`` at a time (``with_region``)."""
        assert self._regions is not None
        runs = _runs(base[self.area], max_runs=max(64, base.num_rows // 1024))
        if runs is None:  # in slices: one copy of a slice at a time
            for start in range(0, base.num_rows, self.batch_rows):
                rows = with_region(base.slice(start, self.batch_rows), self.area, self.cog)
                self._regions.write(rows.select(self._no_regions.column_names))
            return
        names = self._no_regions.column_names[:-1]  # the dimensions and measures, then "reg"
        for start, stop, area in runs:
            region = self.cog.region_of(area) if isinstance(area, str) else None
            if region is None:  # 975, 977, 978, unknown codes: the national level only
                continue
            part = self._region_part.get(region)
            if part is None:
                found = self._regions.partitioning.parts_of(pa.array([region], pa.string()))
                part = self._region_part[region] = int(found[0])
            rows = base.slice(start, stop - start).select(names)
            self._regions.write_to(part, rows.append_column(
                "reg", pa.repeat(pa.scalar(region, pa.string()), stop - start)))

    def levels_in_parts(self) -> Iterator[tuple[str, Iterator[pa.Table]]]:
        """Each roll-up level (``reg``, then ``fra``) as its rows in order, part by part: the
        same rows as ``rollup``'s table. Call once, after the last ``add``.

        Raises:
            ValueError: no part was added.
        """
        if not self.levels:
            return
        if not self._areas:
            raise ValueError("roll-ups of no part: add the parts first")
        areas = pc.unique(pa.chunked_array(self._areas))
        if self._kept is not None:
            base, self._kept = pa.concat_tables(self._kept), None
            yield "reg", iter([_region_rollup(base, self.area, self.dims, self.measures,
                                              self.cog, self.by)])
            del base
        if self._regions is not None:
            files = self._regions.close()
            expected = _region_members(
                with_region(pa.table({self.area: areas}), self.area, self.cog), self.area)
            yield "reg", self._region_parts(files, expected)
        if self._national is not None:
            yield "fra", iter([_complete(self._national, "fra", self.dims, self.measures,
                                         _national_members(len(areas)))])

    def _region_parts(self, files: list[Path], expected: pa.Table) -> Iterator[pa.Table]:
        """Each range of regions holds every row of its regions: ``sum_complete`` on it gives
        that range's rows of the region table, in order."""
        done = False
        for file in files:
            rows = read_part(file)
            if rows.num_rows:
                yield sum_complete(rows, "reg", self.dims, self.measures, expected, by=self.by)
                done = True
            del rows
            release_memory()
        if not done:  # no department with a region: the table is empty, as in ``rollup``
            yield sum_complete(self._no_regions, "reg", self.dims, self.measures, expected,
                               by=self.by)
