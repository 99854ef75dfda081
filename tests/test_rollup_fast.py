"""Roll-ups on integer codes (``opendepot.rollup``, ``by="codes"``) against Arrow's ``group_by``
(``by="arrow"``), their reference and fallback: the same tables, types included, on the real
hospital file and on generated tables (nulls, missing rows, several dimensions, overseas
departments, sums past 2**53 and past int64), whole and part by part (``Rollups``); and the fast
path is the one taken (``by="codes"`` raises where it cannot be)."""

from __future__ import annotations

import itertools
import tempfile
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from publish_oracle import consolidate

from conftest import HOSP
from opendepot.partitions import Partitioning, Upload, plan_partitions
from opendepot.registry import Cog, Dataset, load_cog, load_descriptor, load_registry, parse_dataset
from opendepot.rollup import By, Rollups, region_counts, rollup, sum_complete
from opendepot.validate import validate
from test_publish_stream import NEW, source

LEVELS = ("reg", "fra")


def assert_same(got: dict[str, pa.Table], want: dict[str, pa.Table]) -> None:
    assert got.keys() == want.keys()
    for level in got:
        assert got[level].schema == want[level].schema, level
        assert got[level].equals(want[level]), level


def streamed(
    dataset: Dataset, table: pa.Table, cog: Cog, parts: int, by: By = "auto"
) -> dict[str, pa.Table]:
    """``Rollups``' levels of ``table`` added in ``parts`` slices, regions spilled in ranges of
    about a third of the rows, in batches of a tenth; with one part, the regions in one range
    (kept and summed whole, as a publication of one part does)."""
    area = dataset.geography.field
    counts = pc.value_counts(table[area].combine_chunks())
    deps = pa.table({"value": counts.field("values"), "count": counts.field("counts")})
    regions = (Partitioning.whole("reg", table.num_rows) if parts == 1 else
               plan_partitions("reg", region_counts(deps, cog), max(1, table.num_rows // 3)))
    with tempfile.TemporaryDirectory() as directory:
        batch_rows = max(7, table.num_rows // 10)
        rollups = Rollups(dataset, cog, table.schema, Path(directory), regions, batch_rows, by=by)
        size = -(-table.num_rows // parts) or 1
        for start in range(0, max(table.num_rows, 1), size):
            rollups.add(table.slice(start, size))
        return {level: pa.concat_tables(tables) for level, tables in rollups.levels_in_parts()}


# --- the real hospital file -------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_table(real_dir: Path) -> pa.Table:
    """The real 2021-03-17 file, validated and consolidated: 110,595 department rows."""
    path = real_dir / HOSP / NEW
    v = validate(path.read_bytes(), load_registry().get(HOSP), load_cog(), name=path.name)
    assert v.accepted and v.table is not None
    upload = Upload(path, "spf", "u1")
    return consolidate(load_registry().get(HOSP), [(upload, v.table)])


def test_real_hospital_file__fast_rollups_equal_arrow_fallback(real_table: pa.Table):
    ds, cog = load_registry().get(HOSP), load_cog()
    want = rollup(ds, real_table, cog, by="arrow")
    got = rollup(ds, real_table, cog, by="codes")
    assert {k: t.num_rows for k, t in got.items()} == {"dep": 110_595, "reg": 19_710, "fra": 1_095}
    assert_same(got, want)


def test_real_hospital_file__fast_rollups_hold_the_source_sums(
    real_table: pa.Table, real_dir: Path
):
    levels = rollup(load_registry().get(HOSP), real_table, load_cog(), by="codes")
    df = source(real_dir / HOSP / NEW)
    day = df[(df["jour"] == "2021-03-17") & (df["sexe"] == "0")]
    fra = levels["fra"].to_pandas()
    row = fra[(fra["jour"] == date(2021, 3, 17)) & (fra["sexe"] == 0)]
    assert row["fra"].tolist() == ["FR"]
    assert row["hosp"].tolist() == [day["hosp"].sum()] and row["dc"].tolist() == [day["dc"].sum()]
    # the file has no HospConv column: an entirely null measure rolls up to nulls
    assert levels["fra"]["HospConv"].null_count == levels["fra"].num_rows
    reg = levels["reg"].to_pandas()
    row = reg[(reg["reg"] == "11") & (reg["jour"] == date(2021, 3, 17)) & (reg["sexe"] == 0)]
    idf = day[day["dep"].isin(["75", "77", "78", "91", "92", "93", "94", "95"])]
    assert row["rea"].tolist() == [idf["rea"].sum()]


def test_real_hospital_file__streamed_on_codes_equal_arrow_fallback(real_table: pa.Table):
    ds, cog = load_registry().get(HOSP), load_cog()
    want = rollup(ds, real_table, cog, by="arrow")
    got = streamed(ds, real_table, cog, parts=4, by="codes")
    assert_same(got, {level: want[level] for level in LEVELS})
    # one part: the regions are kept and summed whole
    assert_same(streamed(ds, real_table, cog, parts=1, by="codes"),
                {level: want[level] for level in LEVELS})


# --- generated tables -------------------------------------------------------------------------

DEPS = ["01", "2A", "2B", "75", "92", "971", "976", "975", "977", "978", "99", None]
"""Departments of three regions, overseas ones with (971, 976) and without a region (975, 977,
978), an unknown code and a null one."""
DIMS: dict[str, tuple[pa.DataType, list[Any]]] = {
    "sexe": (pa.int64(), [0, 1, 2, None]),
    "jour": (pa.date32(), [date(2020, 3, 18), date(2020, 3, 19), date(2021, 3, 17), None]),
    "cl_age90": (pa.string(), ["09", "19", "90", None]),
    "ehpad": (pa.bool_(), [True, False, None]),
}
MEASURES: dict[str, tuple[pa.DataType, st.SearchStrategy[int]]] = {
    "hosp": (pa.int64(), st.one_of(
        st.integers(0, 50), st.integers(2**53 - 2, 2**53 + 2), st.integers(-(2**63), 2**63 - 1))),
    "rea": (pa.int32(), st.integers(-(2**31), 2**31 - 1)),
    "dc": (pa.int8(), st.integers(-128, 127)),
}


@cache
def dataset_with(dims: tuple[str, ...]) -> Dataset:
    """The hospital dataset keyed by department and ``dims``, measures ``MEASURES``."""
    descriptor = load_descriptor(HOSP)
    fields = [f for f in descriptor["schema"]["fields"] if f["name"] in {"dep", "sexe", "jour"}]
    fields += [{"name": "cl_age90", "type": "string"}, {"name": "ehpad", "type": "boolean"}]
    fields += [{"name": m, "type": "integer"} for m in MEASURES]
    descriptor["schema"] = {"fields": fields, "primaryKey": ["dep", *dims]}
    descriptor["measures"] = {"hosp": "stock", "rea": "stock", "dc": "cumulative"}
    return parse_dataset(descriptor)


@st.composite
def tables(draw: st.DrawFn) -> tuple[tuple[str, ...], pa.Table]:
    """(dims, table): a grid of departments × dimension values, rows missing, in any order, in
    one or two chunks; departments as string or large_string; measures with nulls, some
    entirely null."""
    dims = tuple(draw(st.lists(st.sampled_from(list(DIMS)), unique=True, max_size=3)))
    deps = draw(st.lists(st.sampled_from(DEPS), unique=True, max_size=8))
    values = [draw(st.lists(st.sampled_from(DIMS[d][1]), unique=True, min_size=1, max_size=3))
              for d in dims]
    grid = list(itertools.product(deps, *values))
    kept = draw(st.lists(st.sampled_from([True] * 5 + [False]), min_size=len(grid),
                         max_size=len(grid)))
    rows = draw(st.permutations([r for r, keep in zip(grid, kept, strict=True) if keep]))
    text = draw(st.sampled_from([pa.string(), pa.large_string()]))
    columns = {"dep": pa.array([r[0] for r in rows], text)}
    for i, d in enumerate(dims, start=1):
        columns[d] = pa.array([r[i] for r in rows], DIMS[d][0])
    for m in draw(st.lists(st.sampled_from(list(MEASURES)), unique=True, min_size=1)):
        kind, ints = MEASURES[m]
        value = st.none() if draw(st.integers(0, 5)) == 0 else st.one_of(st.none(), ints, ints)
        columns[m] = pa.array(draw(st.lists(value, min_size=len(rows), max_size=len(rows))), kind)
    table, cut = pa.table(columns), draw(st.integers(0, len(rows)))
    return dims, pa.concat_tables([table.slice(0, cut), table.slice(cut)])


EMPTY = pa.table({"dep": pa.array([], pa.string()), "sexe": pa.array([], pa.int64()),
                  "hosp": pa.array([], pa.int64())})
NO_DIMS = pa.table({"dep": ["01", "75", "975", None], "hosp": [1, 2, 3, None]})


@settings(max_examples=150, deadline=None)
@given(tables())
@example((("sexe",), EMPTY))
@example(((), NO_DIMS))
def test_generated_tables__fast_rollups_equal_arrow_fallback(
    case: tuple[tuple[str, ...], pa.Table],
):
    dims, table = case
    ds, cog = dataset_with(dims), load_cog()
    want = rollup(ds, table, cog, by="arrow")
    got = rollup(ds, table, cog, by="codes")
    assert_same(got, want)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(), st.integers(1, 3))
@example((("sexe",), EMPTY), 1)
@example(((), NO_DIMS), 2)
def test_generated_tables__streamed_on_codes_equal_arrow_fallback(
    case: tuple[tuple[str, ...], pa.Table], parts: int
):
    dims, table = case
    ds, cog = dataset_with(dims), load_cog()
    want = rollup(ds, table, cog, by="arrow")
    assert_same(streamed(ds, table, cog, parts, by="arrow"),
                {level: want[level] for level in LEVELS})
    got = streamed(ds, table, cog, parts, by="codes")
    assert_same(got, {level: want[level] for level in LEVELS})


# --- exact sums and the fallback --------------------------------------------------------------


def test_sums_past_2_53_and_past_int64__fast_path_wraps_as_arrow():
    table = pa.table({
        "dep": ["75", "92", "75", "92"],
        "sexe": [0, 0, 1, 1],
        "hosp": [2**53, 1, 2**62, 2**62 + 2**61],  # 2**53 + 1: not a float64
    })
    ds, cog = dataset_with(("sexe",)), load_cog()
    want = rollup(ds, table, cog, by="arrow")
    got = rollup(ds, table, cog, by="codes")
    assert_same(got, want)
    assert got["fra"]["hosp"].to_pylist() == [2**53 + 1, 2**62 + 2**62 + 2**61 - 2**64]
    assert got["reg"]["hosp"].to_pylist() == [2**53 + 1, 2**62 + 2**62 + 2**61 - 2**64]


@pytest.mark.parametrize(
    ("column", "values", "regions"),
    [("hosp", pa.array([1.5, 2.0, 0.25], pa.float64()),  # a float measure
      [("11", 0, 3.5), ("84", 1, 0.25)]),
     ("hosp", pa.array([1, 2, 3], pa.uint64()),  # unsigned: Arrow sums as uint64
      [("11", 0, 3), ("84", 1, 3)]),
     ("sexe", pa.array([0.0, 1.0, 0.5], pa.float64()),  # a float dimension: 75 and 92 apart
      [("11", 0.0, None), ("11", 1.0, None), ("84", 0.5, 3)])],
)
def test_measure_or_dimension_without_codes__arrow_fallback_taken(
    column: str, values: pa.Array, regions: list[tuple]
):
    table = pa.table({"dep": ["75", "92", "01"], "sexe": [0, 0, 1], "hosp": [1, 2, 3]})
    table = table.set_column(table.schema.get_field_index(column), column, values)
    ds, cog = dataset_with(("sexe",)), load_cog()
    with pytest.raises(ValueError, match="not summable on integer codes"):
        rollup(ds, table, cog, by="codes")
    with pytest.raises(ValueError, match="not summable on integer codes"):
        streamed(ds, table, cog, 2, by="codes")
    # Île-de-France (11) is 75 + 92, Auvergne-Rhône-Alpes (84) is 01; the nation has a member
    # without a value in every group, so its sums are null
    got = rollup(ds, table, cog)
    assert [(r["reg"], r["sexe"], r["hosp"]) for r in got["reg"].to_pylist()] == regions
    assert got["fra"]["hosp"].null_count == got["fra"].num_rows


def test_sum_complete_of_a_null_or_unexpected_area__null_sums_as_the_join_gives():
    table = pa.table({"reg": ["11", None, "84", "99", "11", "99", None],
                      "sexe": [0, 0, 0, 0, 1, 1, 1], "hosp": [5, 6, 7, 8, None, None, None]})
    expected = pa.table({"reg": ["11", "84"], "__members": pa.array([1, 1], pa.int64())})
    args = (table, "reg", ["sexe"], ["hosp"], expected)
    want = sum_complete(*args, by="arrow")
    got = sum_complete(*args, by="codes")
    assert got.equals(want) and got.schema == want.schema
    assert got.to_pylist() == [{"reg": "11", "sexe": 0, "hosp": 5},
                               {"reg": "11", "sexe": 1, "hosp": None},
                               {"reg": "84", "sexe": 0, "hosp": 7},
                               {"reg": "99", "sexe": 0, "hosp": None},
                               {"reg": "99", "sexe": 1, "hosp": None},
                               {"reg": None, "sexe": 0, "hosp": None},
                               {"reg": None, "sexe": 1, "hosp": None}]
