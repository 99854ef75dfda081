"""Test oracles: a publication's tables computed the plain way, on whole tables, with Arrow only.

Production renders every publication through ``opendepot.levels`` (parts, consolidation per
part, roll-ups summed on integer codes). These are the computations it replaced, kept here to
check it against: every upload read whole, the newest upload's row of each key kept by Arrow's
``group_by`` (``consolidate``), the roll-ups summed by Arrow's ``group_by`` (``rollup``), each
level written in one piece (``render_whole``). Only the source-priority table and the file
writers are production's (there is one way of computing each).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from opendepot.feeds import Feeds
from opendepot.partitions import Upload
from opendepot.registry import NATIONAL_CODE, Cog, Dataset
from opendepot.render import RenderedFile, render_level
from opendepot.rollup import consolidated_table, rolled_up_measures, rollup_levels


def consolidate(dataset: Dataset, uploads: Sequence[tuple[Upload, pa.Table]]) -> pa.Table:
    """One table from the uploads (oldest first) and their rows: on a repeated primary key the
    newest upload's row wins. Sorted by primary key (then ``producer`` under provenance)."""
    tables = []
    for upload, table in uploads:
        t = table.select([f for f in dataset.field_names if f in table.column_names])
        if dataset.provenance:
            n = t.num_rows
            t = t.append_column("producer", pa.array([upload.producer] * n, pa.string()))
            t = t.append_column("upload_id", pa.array([upload.upload_id] * n, pa.string()))
        tables.append(t)
    table = pa.concat_tables(tables, promote_options="permissive")
    pk = list(dataset.primary_key)
    if dataset.provenance and pk and "producer" not in pk:
        pk.append("producer")
    if len(tables) > 1 and pk:
        table = table.append_column("__order", pa.array(np.arange(table.num_rows)))
        last = table.group_by(pk, use_threads=False).aggregate([("__order", "max")])
        keep = pc.is_in(table["__order"], value_set=last["__order_max"])
        table = table.filter(keep).drop_columns(["__order"])
    return table.sort_by([(k, "ascending") for k in pk]) if pk else table


def _sums(table: pa.Table, area: str, dims: list[str], measures: list[str],
          members: pa.Table) -> pa.Table:
    """Group by (area, dims): each measure's sum, null unless every member area has a value.
    ``members``: ``area`` -> ``__members``."""
    aggs = [(m, "sum") for m in measures] + [(m, "count") for m in measures]
    grouped = table.group_by([area, *dims], use_threads=False).aggregate(aggs)
    grouped = grouped.join(members, keys=area, join_type="left outer")
    columns = {c: grouped[c] for c in [area, *dims]}
    for m in measures:
        total = grouped[f"{m}_sum"]
        complete = pc.equal(grouped[f"{m}_count"], grouped["__members"])
        columns[m] = pc.if_else(complete, total, pa.scalar(None, total.type))
    return pa.table(columns).sort_by([(c, "ascending") for c in [area, *dims]])


def rollup(dataset: Dataset, table: pa.Table, cog: Cog) -> dict[str, pa.Table]:
    """Every published table of the whole consolidated ``table``: the producer's level, the
    ``consolidated`` table, then ``reg`` (departments of the COG's regions; members: the
    departments present) and ``fra`` (members: every area present)."""
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
        region = {d: v["reg"] for d, v in cog.departments.items()}
        regions = pa.array([region.get(d) for d in base[geo.field].to_pylist()], pa.string())
        with_reg = base.append_column("reg", regions).filter(pc.is_valid(regions))
        pairs = with_reg.group_by(["reg", geo.field], use_threads=False).aggregate([])
        members = pairs.group_by("reg", use_threads=False).aggregate([(geo.field, "count")])
        out["reg"] = _sums(with_reg, "reg", dims, measures,
                           members.rename_columns(["reg", "__members"]))
    if "fra" in levels:
        nation = base.append_column("fra", pa.array([NATIONAL_CODE] * base.num_rows, pa.string()))
        members = pa.table({"fra": [NATIONAL_CODE],
                            "__members": pa.array([len(pc.unique(base[geo.field]))], pa.int64())})
        out["fra"] = _sums(nation, "fra", dims, measures, members)
    return out


@dataclass(frozen=True)
class Whole:
    """What ``render_whole`` wrote: as ``opendepot.levels.Levels``, without parts."""

    files: list[RenderedFile]
    schemas: dict[str, pa.Schema]
    rows: dict[str, int]
    coverage: dict[str, str] | None


def render_whole(
    dataset: Dataset, uploads: Sequence[Upload], fed: Feeds, cog: Cog, work: Path
) -> Whole:
    """The publication of ``uploads`` (and ``fed`` rows) the plain way: each staged file read
    whole, ``consolidate``, ``rollup``, each level written in one piece into ``work``."""
    read = [(u, pq.read_table(u.path)) for u in uploads]
    table = fed.extend(consolidate(dataset, read), cog)
    levels = rollup(dataset, table, cog)
    files: list[RenderedFile] = []
    for level, t in levels.items():
        files.extend(render_level(dataset.name, level, t, work))
    coverage = None
    if dataset.time_field:
        mm = pc.min_max(table[dataset.time_field])
        coverage = {"start": str(mm["min"]), "end": str(mm["max"])}
    return Whole(files, {lv: t.schema for lv, t in levels.items()},
                 {lv: t.num_rows for lv, t in levels.items()}, coverage)
