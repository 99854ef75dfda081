"""Consolidation of staged uploads and geographic roll-ups.

Pure functions over Arrow tables. ``consolidate`` turns the staged uploads of one dataset into
one table at the producer's level; ``rollup`` computes the region and national levels:

- region of a department from the INSEE COG (975, 977, 978 have none: they count in the
  national level only);
- rows are summed within the other primary-key dimensions (``sexe``, ``jour``...), so a total
  code (``sexe`` 0) is never summed with its parts;
- a roll-up is a number only when every member area has a value: the members of a region (or of
  the nation) are the areas of that region present anywhere in the dataset, so a missing row or
  a null value makes the roll-up null, never a partial sum.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from opendepot.keys import sequencer_key
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
    return table.sort_by([(k, "ascending") for k in pk]) if pk else table


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


def _sum_complete(
    table: pa.Table, area: str, dims: list[str], measures: list[str], expected: pa.Table
) -> pa.Table:
    """Group by (area, dims); each measure summed, null unless every member has a value."""
    aggs = [(m, "sum") for m in measures] + [(m, "count") for m in measures]
    grouped = table.group_by([area, *dims], use_threads=False).aggregate(aggs)
    grouped = grouped.join(expected, keys=area, join_type="left outer")
    cols = {area: grouped[area]}
    for d in dims:
        cols[d] = grouped[d]
    for m in measures:
        complete = pc.equal(grouped[f"{m}_count"], grouped["__members"])
        cols[m] = pc.if_else(complete, grouped[f"{m}_sum"], pa.scalar(None, grouped[f"{m}_sum"].type))
    out = pa.table(cols)
    return out.sort_by([(area, "ascending")] + [(d, "ascending") for d in dims])


def rollup(dataset: Dataset, table: pa.Table, cog: Cog) -> dict[str, pa.Table]:
    """Tables per level: the producer's level as given, then each declared roll-up, and the
    declared ``consolidated`` table (one row per key, chosen by source priority).

    Input: the consolidated table. Output columns per level: the area code (``dep``, ``reg`` or
    ``fra``; ``fra`` is always ``FR``), the other primary-key dimensions, then the measures.
    """
    geo = dataset.geography
    out = {geo.level: table}
    spec = dataset.descriptor.get("consolidated")
    if spec:
        out[spec.get("name", "consolidated")] = prioritise(
            table, list(spec["key"]), spec["priority"]["field"], list(spec["priority"]["order"]),
            spec["priority"].get("then"),
        )
    if geo.field is None or not geo.rollups:
        return out
    dims = list(dataset.dimensions)
    measures = [m for m, kind in dataset.measures.items()
                if m in table.column_names and kind in ADDITIVE]
    base = table.select([geo.field, *dims, *measures])
    if "reg" in geo.rollups and geo.level == "dep":
        codes = pa.array(list(cog.departments), pa.string())
        regions = pa.array([d["reg"] for d in cog.departments.values()], pa.string())
        reg = regions.take(pc.index_in(base[geo.field], value_set=codes))
        with_reg = base.append_column("reg", reg)
        with_reg = with_reg.filter(pc.is_valid(with_reg["reg"]))
        members = pa.table({"dep": with_reg["dep"], "reg": with_reg["reg"]}).group_by(
            ["reg", "dep"], use_threads=False
        ).aggregate([])
        expected = members.group_by("reg", use_threads=False).aggregate([("dep", "count")])
        expected = expected.rename_columns(["reg", "__members"])
        out["reg"] = _sum_complete(with_reg, "reg", dims, measures, expected)
    if "fra" in geo.rollups:
        n_members = len(pc.unique(base[geo.field]))
        national = base.append_column("fra", pa.array([NATIONAL_CODE] * base.num_rows, pa.string()))
        expected = pa.table({"fra": [NATIONAL_CODE], "__members": pa.array([n_members], pa.int64())})
        out["fra"] = _sum_complete(national, "fra", dims, measures, expected)
    return out
