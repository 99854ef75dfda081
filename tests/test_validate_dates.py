"""Dates that broke validate (year 0, a typo year making a gap of centuries), found while checking
its fast paths against its exact ones: each case asserts the exact path's (and Frictionless')
answer, and that the fast path gives the same."""

from __future__ import annotations

import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from opendepot import cells as C
from opendepot.registry import load_registry
from test_validate_fast import DEPARTMENTS, HEADER, PLAIN_ROWS, both, cells, field, run

GROUPED = "donnees-hospitalieres-groupees-covid19"  # dates: %d/%m/%Y first, then ISO


# Year 0: Arrow's cast to date32 and its strptime both read 0000-01-01 (Python, Frictionless and
# every later step cannot: the key codes' to_pylist raised OverflowError, and the whole file was
# rejected as "could not be validated"). It is a type error on its line, like 2020-02-30.

@pytest.mark.parametrize("cell", ["0000-01-01", "01/01/0000", "0000-02-29"])
def test_year_zero_date__a_type_error_on_its_line_both_ways(cell):
    v = both(HEADER + f"01;0;{cell};1;1;1;1\n" + PLAIN_ROWS)
    assert cells(v) == [("type-error", 2, "jour", cell)]
    assert v.errors.items[0].message == (
        f"Line 2, column jour: value {cell!r} is not a date (%Y-%m-%d or %d/%m/%Y)")
    assert v.accepted and v.rows_left_out == 1 and v.table.num_rows == 384


def test_year_zero_date__beside_dates_arrow_cannot_cast_the_same_error():
    body = HEADER + "01;0;0000-01-01;1;1;1;1\n01;0;17/03/2020;1;1;1;1\n" + PLAIN_ROWS
    v = both(body)
    assert cells(v) == [("type-error", 2, "jour", "0000-01-01")]
    assert v.table.column("jour")[0].as_py() == datetime.date(2020, 3, 17)


@pytest.mark.parametrize("cell", ["01/01/0000", "0000-01-01"])
def test_year_zero_date__in_a_dataset_whose_first_format_is_not_iso(cell):
    body = "jour;hosp;rea;rad;dc\n" + "".join(
        f"{d:02d}/04/2020;1;1;1;1\n" for d in range(1, 29)) + f"{cell};1;1;1;1\n"
    v = both(body, load_registry().get(GROUPED))
    assert cells(v) == [("type-error", 30, "jour", cell)]


def test_fast_cells__year_zero_left_to_the_exact_path_which_flags_it():
    col = pa.chunked_array([["2020-03-18", "0000-01-01"], [""]])
    assert C.fast_cells(field("jour"), col, ("", "NA")) is None
    missing = np.array([False, False, True])
    typed, bad, _ = C.cast_field(field("jour"), col, missing)
    assert bad.tolist() == [False, True, False]
    assert typed.to_pylist() == [datetime.date(2020, 3, 18), None, None]
    plain = pa.chunked_array([["2020-03-18", "0001-01-01", "9999-12-31"]])
    assert C.fast_cells(field("jour"), plain, ("",))[1].to_pylist() == [
        datetime.date(2020, 3, 18), datetime.date(1, 1, 1), datetime.date(9999, 12, 31)]
    assert pc.any(pc.less(C.cast_field(field("jour"), plain, np.zeros(3, bool))[0],
                          C.FIRST_DAY)).as_py() is False


# A typo in a year (0202 for 2020) made a gap of 664,000 days per area: every missing day was
# formatted to name five of them (75 s for 300 rows; 0001 to 9999 would take minutes a file).

def test_missing_day_gap_of_centuries__same_warning_without_formatting_every_day():
    deps = DEPARTMENTS[:20]
    body = HEADER + "".join(f"{d};0;{day};1;1;1;1\n" for day in ("0202-03-18", "2020-03-18")
                            for d in deps)
    v = run(body)  # (15 s when every missing day was formatted; speed is the bench's, not here)
    gaps = [w for w in v.warnings.items if w.type == "missing-day"]
    days = (datetime.date(2020, 3, 18) - datetime.date(202, 3, 18)).days - 1
    assert [(w.row_number, w.cell, w.note) for w in gaps] == [
        (22 + i, "2020-03-18", f"{days} day(s) missing") for i in range(20)]
    assert gaps[0].message == (
        "Line 22: no row for dep 01 on 0202-03-19, 0202-03-20, 0202-03-21, 0202-03-22, "
        "0202-03-23 ... (between 0202-03-18 and 2020-03-18); the gap is not filled")


@pytest.mark.parametrize("gap, named", [(2, "2020-03-19"),
                                        (6, "2020-03-19, 2020-03-20, 2020-03-21, 2020-03-22, "
                                            "2020-03-23"),
                                        (7, "2020-03-19, 2020-03-20, 2020-03-21, 2020-03-22, "
                                            "2020-03-23 ...")])
def test_missing_day__five_days_named_at_most_as_before(gap, named):
    later = datetime.date(2020, 3, 18) + datetime.timedelta(days=gap)
    body = HEADER + f"01;0;2020-03-18;1;1;1;1\n01;0;{later};1;1;1;1\n"
    v = run(body, fast=False)
    (w,) = [w for w in v.warnings.items if w.type == "missing-day"]
    assert w.message == (f"Line 3: no row for dep 01 on {named} (between 2020-03-18 and "
                         f"{later}); the gap is not filled")
    assert w.note == f"{gap - 1} day(s) missing"
