"""Sorting on integer codes gives Arrow's own order: ``keysort.table_order`` against
``pyarrow.compute.sort_indices`` (ascending, stable, nulls last) on random tables with repeated
keys and nulls, on the counting-sort path and on the sort path."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opendepot import keysort


@contextmanager
def forced_grid(on: bool) -> Iterator[None]:
    """The counting sort's grid test forced on (every key set tries the grid) or off."""
    original = keysort.dense
    keysort.dense = (lambda space, n: True) if on else (lambda space, n: False)
    try:
        yield
    finally:
        keysort.dense = original


CODES = st.sampled_from(["01", "2A", "2B", "75", "971", "976", "é", "Z", ""])
DAYS = st.dates(min_value=dt.date(2020, 3, 1), max_value=dt.date(2020, 3, 20))


@st.composite
def tables(draw):
    n = draw(st.integers(0, 60))
    dep = draw(st.lists(st.none() | CODES, min_size=n, max_size=n))
    sexe = draw(st.lists(st.none() | st.integers(-1, 2), min_size=n, max_size=n))
    jour = draw(st.lists(st.none() | DAYS, min_size=n, max_size=n))
    flag = draw(st.lists(st.none() | st.booleans(), min_size=n, max_size=n))
    return pa.table({"dep": pa.array(dep, pa.string()), "sexe": pa.array(sexe, pa.int64()),
                     "jour": pa.array(jour, pa.date32()), "flag": pa.array(flag, pa.bool_())})


@pytest.mark.parametrize("counting_sort", [True, False])
@settings(max_examples=150, deadline=None)
@given(table=tables(), keys=st.permutations(["dep", "sexe", "jour", "flag"]), width=st.integers(1, 4))
def test_table_order__same_as_arrow_sort_indices(counting_sort, table, keys, width):
    keys = list(keys[:width])
    with forced_grid(counting_sort):
        ours = keysort.table_order(table, keys).to_pylist()
    arrow = pc.sort_indices(table, sort_keys=[(k, "ascending") for k in keys]).to_pylist()
    assert ours == arrow


def test_table_order__real_key_shape_distinct_keys_take_the_counting_sort(monkeypatch):
    """Department × sexe × day, day-major as SPF writes it: sorted into key order, by the
    counting sort (the keys are distinct and fill their grid)."""
    paths = []
    original = keysort.sort_order

    def recording(key, space):
        order, distinct = original(key, space)
        paths.append(distinct)
        return order, distinct

    monkeypatch.setattr(keysort, "sort_order", recording)
    deps, days = ["01", "02", "2A", "2B", "971"], [dt.date(2020, 3, d) for d in range(18, 25)]
    rows = [(d, s, j) for j in days for d in deps for s in (0, 1, 2)]
    table = pa.table({"dep": [r[0] for r in rows], "sexe": [r[1] for r in rows],
                      "jour": pa.array([r[2] for r in rows], pa.date32())})
    order = keysort.table_order(table, ["dep", "sexe", "jour"]).to_pylist()
    assert [rows[i] for i in order] == sorted(rows)
    assert paths == [True]


def test_table_order__integer_extremes_and_wide_ranges_same_as_arrow():
    table = pa.table({
        "wide": pa.array([2**62, -(2**63), None, 0, 2**63 - 1, 0], pa.int64()),
        "big": pa.array([2**64 - 1, 0, 2**63, None, 5, 5], pa.uint64()),
        "day": pa.array([dt.date(2021, 1, 2), None, dt.date(1970, 1, 1), dt.date(2021, 1, 2),
                         dt.date(1900, 5, 5), None], pa.date32()),
    })
    for keys in (["wide"], ["big"], ["day"], ["day", "big"], ["big", "wide", "day"]):
        ours = keysort.table_order(table, keys).to_pylist()
        assert ours == pc.sort_indices(table, sort_keys=[(k, "ascending") for k in keys]).to_pylist()
