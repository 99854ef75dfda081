"""A publication's parts read column by column (``partitions.consolidate_columns``) and its
regions spilled run by run (``rollup.Rollups``): the same tables as the row-batch path they
replace (``read_uploads`` + ``consolidate_part``, ``with_region`` slices), on the real hospital
file cut into uploads that overlap, lack a column, carry provenance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from conftest import HOSP
from opendepot.levels import producer_key
from opendepot.partitions import (
    ORDER,
    PROVENANCE,
    Upload,
    UploadColumns,
    consolidate_columns,
    consolidate_part,
    consolidated_parts,
    key_counts,
    part_columns,
    plan_partitions,
    read_part,
    read_uploads,
    spill,
    staged_schema,
)
from opendepot.registry import load_cog, load_registry
from opendepot.rollup import Rollups, region_counts, rollup
from opendepot.validate import validate_file

NEW = "donnees-hospitalieres-covid19-2021-03-17-17h03.csv"
KEY = ["dep", "sexe", "jour"]


@pytest.fixture(scope="module")
def staged(real_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> pa.Table:
    """The real file's staged rows, as the validate function stages them."""
    work = tmp_path_factory.mktemp("staged")
    v = validate_file(str(real_dir / HOSP / NEW), load_registry().get(HOSP), load_cog(),
                      name=NEW, workdir=str(work))
    assert v.accepted and v.rows_published == 110595
    return v.table


def uploads(staged: pa.Table, directory: Path) -> list[Upload]:
    """Three uploads: the first 200 days; days 150 on with ``hosp`` + 1 (newer: it wins) and
    ``rea`` missing; the last day again with ``dc`` stored as int32 (cast back to int64)."""
    days = pc.rank(staged["jour"], sort_keys="ascending", tiebreaker="dense").to_numpy()
    first = staged.filter(pa.array(days <= 200))
    second = staged.filter(pa.array(days >= 150))
    second = second.set_column(second.schema.get_field_index("hosp"), "hosp",
                               pc.add(second["hosp"], 1)).drop_columns(["rea"])
    third = staged.filter(pa.array(days == days.max()))
    third = third.set_column(third.schema.get_field_index("dc"), "dc",
                             third["dc"].cast(pa.int32()))
    out = []
    for i, table in enumerate((first, second, third)):
        path = directory / f"staged-{i}.parquet"
        pq.write_table(table, path)
        out.append(Upload(path, "spf" if i < 2 else "ars", f"u{i}", table.num_rows))
    return out


@pytest.mark.parametrize("provenance", [False, True])
def test_uploads_read_column_by_column__the_row_batch_paths_table(
    staged: pa.Table, tmp_path: Path, provenance: bool
):
    ups = uploads(staged, tmp_path)
    schema = staged_schema(load_registry().get(HOSP).field_names, [u.path for u in ups],
                           provenance=provenance)
    key = [*KEY, "producer"] if provenance else KEY
    columns = UploadColumns(ups, schema, tag_order=True)
    try:
        got = consolidate_columns(columns, columns.schema, key)
    finally:
        columns.close()
    want = consolidate_part(pa.concat_tables(list(read_uploads(ups, schema, 7_000,
                                                               tag_order=True))), key)
    assert got.schema == want.schema and got.equals(want)
    assert [c.num_chunks for c in got.columns] == [c.num_chunks for c in want.columns]
    assert ORDER not in got.column_names
    assert (PROVENANCE[0] in got.column_names) is provenance
    # newest upload wins: Paris, both sexes, 2020-09-01 (day 168) from the second upload
    def paris(t: pa.Table) -> dict:
        return [r for r in t.filter(pc.equal(t["dep"], "75")).to_pylist()
                if r["sexe"] == 0 and str(r["jour"]) == "2020-09-01"][0]

    assert paris(got)["hosp"] == paris(staged)["hosp"] + 1 == 294
    assert paris(got)["rea"] is None
    assert got.num_rows == (110595 if not provenance else 110595 + 303)


def test_spilled_parts_read_column_by_column__the_whole_parts(staged: pa.Table,
                                                              tmp_path: Path):
    ups = uploads(staged, tmp_path)
    schema = staged_schema(load_registry().get(HOSP).field_names, [u.path for u in ups],
                           provenance=False)
    counts = key_counts([u.path for u in ups], schema, "dep", 7_000)
    parts = plan_partitions("dep", counts, 40_000)
    assert parts.parts >= 3
    with_order = schema.append(pa.field(ORDER, pa.int64()))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    files_a = spill(read_uploads(ups, schema, 7_000, tag_order=True), with_order, parts,
                    tmp_path / "a")
    files_b = spill(read_uploads(ups, schema, 7_000, tag_order=True), with_order, parts,
                    tmp_path / "b")
    assert part_columns(files_a[0])[0] == with_order
    got = list(consolidated_parts(files_a, KEY))
    want = [consolidate_part(read_part(f), KEY) for f in files_b]
    assert len(got) == len(want) == parts.parts
    for g, w in zip(got, want, strict=True):
        assert g.equals(w)
    assert sum(t.num_rows for t in got) == 110595
    assert not any(f.exists() for f in files_a)  # each part file deleted once read


def test_regions_spilled_run_by_run__the_same_levels_as_by_slices(staged: pa.Table,
                                                                  tmp_path: Path):
    """Parts sorted by department (their key's first column) spill each department's rows as
    one run; the same parts shuffled take the slice path: the same region and national
    levels, those of the whole table's ``rollup``."""
    ds, cog = load_registry().get(HOSP), load_cog()
    table = consolidate_part(staged, producer_key(ds))
    deps = table["dep"].unique().sort()
    counts = pa.table({"value": deps, "count": pa.array(
        [table.filter(pc.equal(table["dep"], d)).num_rows for d in deps.to_pylist()])})
    regions = plan_partitions("reg", region_counts(counts, cog), 30_000)
    assert regions.parts >= 3
    whole = rollup(ds, table, cog)
    cuts = np.linspace(0, table.num_rows, 5).astype(int)
    for shuffle, name in ((False, "runs"), (True, "slices")):
        directory = tmp_path / name
        directory.mkdir()
        rollups = Rollups(ds, cog, table.schema, directory, regions, 7_000)
        for a, b in zip(cuts[:-1], cuts[1:], strict=True):
            part = table.slice(a, b - a)
            if shuffle:
                part = part.take(pa.array(np.random.default_rng(a).permutation(b - a)))
            rollups.add(part)
        levels = {lv: pa.concat_tables(list(parts)) for lv, parts in rollups.levels_in_parts()}
        for lv in ("reg", "fra"):
            assert levels[lv].equals(whole[lv]), (name, lv)
    assert whole["reg"].num_rows == 19710 and whole["fra"].num_rows == 1095
