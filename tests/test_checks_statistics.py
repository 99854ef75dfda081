"""Totals and series checked as a statistician would (issue 13, item 8).

- ``plausibility.totalBelowParts``: a total row below the sum of its parts is an error that
  refuses the file for the SPF hospital datasets (never so in their real files), a warning
  elsewhere (the weekly hospital file, the tests files: they have some);
- ``missing-total``: parts without their total row, on a real file with total rows removed;
- ``implausible-rise``: a one-day rise of a cumulative series far above its own median rise.
Inputs are built here, mostly from the real files of ``../shared/data/real``.
"""

from __future__ import annotations

import copy
import io
import tempfile
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from report_invariant import assert_agrees

from conftest import HOSP, REAL
from opendepot import checks
from opendepot.checks.implausible_rise import ImplausibleRise, medians
from opendepot.registry import (
    RegistryError,
    load_cog,
    load_descriptor,
    load_registry,
    parse_dataset,
)
from opendepot.specs import Plausibility
from opendepot.validate import validate, validate_file

AGE = "donnees-hospitalieres-classe-age-covid19"
HEBDO = "donnees-hospitalieres-classe-age-hebdo-covid19"
GROUPED = "donnees-hospitalieres-groupees-covid19"
HOSP_FILE = REAL / HOSP / "donnees-hospitalieres-covid19-2021-03-17-17h03.csv"
HEADER = "dep;sexe;jour;hosp;rea;rad;dc\n"
STRICT = [AGE, HOSP]
"""The shipped datasets whose totals below their parts are errors (the SPF daily hospital files,
where it never happens in the real files)."""


def dataset(name: str, **plausibility: object):
    """A shipped dataset, its ``plausibility`` block replaced when options are given."""
    if not plausibility:
        return load_registry().get(name)
    d = load_descriptor(name)
    d["plausibility"] = plausibility
    return parse_dataset(d)


def strict(name: str):
    """A shipped dataset with ``plausibility.totalBelowParts: error``."""
    return dataset(name, totalBelowParts="error")


def run(body: str, ds=None):
    return assert_agrees(validate(body.encode(), ds or strict(HOSP), load_cog(), name="t.csv"))


def real_frame(path=HOSP_FILE) -> pd.DataFrame:
    return pd.read_csv(path, sep=";", dtype=str, keep_default_na=False)


def as_csv(frame: pd.DataFrame) -> bytes:
    out = io.StringIO()
    frame.to_csv(out, sep=";", index=False)
    return out.getvalue().encode()


# --- the descriptor ----------------------------------------------------------------------------


def test_plausibility__defaults_and_shipped_choices():
    assert Plausibility() == Plausibility("warning", 50.0, 100.0, 7)
    registry = load_registry()
    strict = sorted(d.name for d in registry if d.plausibility.total_below_parts == "error")
    assert strict == STRICT
    assert registry.get(HEBDO).plausibility.total_below_parts == "warning"
    assert registry.get("sp-pos-quot-fra").plausibility == Plausibility()


@pytest.mark.parametrize(("block", "message"), [
    ({"totalBelowParts": "refuse"},
     "plausibility.totalBelowParts: expected one of error, warning, got 'refuse'"),
    ({"riseFactor": "50"}, "plausibility.riseFactor: expected a number, got '50'"),
    ({"riseFactor": -1}, "plausibility.riseFactor: expected at least 0, got -1"),
    ({"riseHistory": 0}, "plausibility.riseHistory: expected at least 1, got 0"),
    ({"riseHistory": 2.5}, "plausibility.riseHistory: expected an integer, got 2.5"),
    ({"riseFactr": 10}, "plausibility.riseFactr: unknown key"),
])
def test_plausibility__parsed_strictly(block, message):
    d = copy.deepcopy(load_descriptor(HOSP))
    d["plausibility"] = block
    with pytest.raises(RegistryError) as exc:
        parse_dataset(d)
    assert str(exc.value) == f"{HOSP}.json: {message}"


def test_plausibility__parsed_values():
    ds = dataset(HOSP, totalBelowParts="warning", riseFactor=20, riseMinimum=5, riseHistory=3)
    assert ds.plausibility == Plausibility("warning", 20.0, 5.0, 3)


# --- total below parts ---------------------------------------------------------------------------

BELOW = HEADER + ("75;0;2020-03-18;10;1;1;1\n75;1;2020-03-18;7;1;1;1\n75;2;2020-03-18;5;0;0;0\n"
                  "13;0;2020-03-18;3;1;1;1\n13;1;2020-03-18;2;1;1;1\n13;2;2020-03-18;1;0;0;0\n")


def test_total_below_parts__an_error_refusing_a_hospital_file():
    v = run(BELOW)
    assert not v.accepted and v.status == "rejected"
    assert v.rejection == ("1 total row value(s) below the sum of their parts; the totals of "
                           f"{HOSP} never are, so the file is refused")
    [e] = v.errors.items
    assert (e.type, e.row_number, e.field_name, e.cell, e.note) == (
        "total-below-parts-error", 2, "hosp", "10", "parts sum to 12")
    assert e.message == ("Line 2, column hosp, dep=75, jour=2020-03-18: the total row (sexe 0) "
                         "has 10, less than the sum of its parts 12; this dataset's totals are "
                         "never below their parts")
    assert "total-below-parts" not in v.warnings.by_type


def test_total_below_parts__a_warning_where_the_dataset_says_so():
    v = run(BELOW, dataset(HOSP, totalBelowParts="warning"))
    assert v.accepted and v.errors.total == 0
    assert [(w.type, w.row_number, w.cell) for w in v.warnings.items] == [
        ("total-below-parts", 2, "10")]


def test_total_below_parts_error__a_part_missing_or_a_row_left_out_is_not_compared():
    ds = strict(HOSP)
    body = HEADER + ("75;0;2020-03-18;10;1;1;1\n75;1;2020-03-18;7;NA;1;1\n"
                     "75;2;2020-03-18;5;1;0;0\n")  # hosp below: 10 < 12; rea: a part missing
    v = run(body, ds)
    assert [(e.field_name, e.cell) for e in v.errors.items] == [("hosp", "10")]
    budget = copy.deepcopy(load_descriptor(HOSP))
    budget["errorBudget"] = {"maxBadRowsPercent": 50}
    budget["plausibility"] = {"totalBelowParts": "error"}
    body = HEADER + "75;0;2020-03-18;10;1;1;1\n75;1;2020-03-18;x;1;1;1\n75;2;2020-03-18;5;0;0;0\n"
    left_out = run(body, parse_dataset(budget))  # the sexe 1 row is left out: 10 >= 5
    assert left_out.accepted and left_out.rows_left_out == 1
    assert left_out.errors.by_type == {"type-error": 1}


def test_total_below_parts_error__not_added_to_a_file_refused_for_duplicated_keys():
    v = run(BELOW + "75;1;2020-03-18;7;1;1;1\n")
    assert v.rejection == "duplicated primary keys"
    assert set(v.errors.by_type) == {"primary-key"}


def test_total_below_parts_error__real_file_with_one_total_lowered(real_dir):
    frame = real_frame()
    row = frame.index[(frame.dep == "13") & (frame.sexe == "0") & (frame.jour == "2021-03-01")]
    parts = frame[(frame.dep == "13") & (frame.sexe != "0") & (frame.jour == "2021-03-01")]
    frame.loc[row, "hosp"] = str(int(parts.hosp.astype(int).sum()) - 1)
    v = assert_agrees(validate(as_csv(frame), strict(HOSP), load_cog(), name="real.csv"))
    assert not v.accepted
    [e] = v.errors.items
    assert (e.type, e.row_number, e.field_name) == ("total-below-parts-error", int(row[0]) + 2,
                                                    "hosp")
    assert e.note == f"parts sum to {int(parts.hosp.astype(int).sum())}"


HOSPITAL_FILES = sorted(
    [(HOSP, p) for p in (REAL / HOSP).glob("*.csv")]
    + [(HOSP, p) for p in (REAL / HOSP / "opencovid19-fr-mirror").glob("*/*.csv")]
    + [(AGE, p) for p in (REAL / AGE).glob("*.csv")], key=str)


def file_id(x: object) -> str:
    return "/".join(x.parts[-2:]) if hasattr(x, "parts") else str(x)


@pytest.mark.parametrize(("name", "path"), HOSPITAL_FILES, ids=file_id)
def test_real_hospital_files__no_total_below_parts_error(real_dir, name, path):
    with tempfile.TemporaryDirectory() as work:
        v = validate_file(str(path), strict(name), load_cog(), name=path.name, workdir=work)
    assert "total-below-parts-error" not in v.errors.by_type
    assert "total-below-parts" not in v.warnings.by_type
    # one mirror file repeats a day (case C03): refused for that, as before
    assert v.accepted == (path.parent.name != "2020-03-25_8b00bef")


def test_real_hospital_files__are_there(real_dir):
    assert len(HOSPITAL_FILES) == 10


# --- missing total -------------------------------------------------------------------------------


def test_missing_total__real_file_with_a_total_row_removed(real_dir):
    frame = real_frame()
    gone = (frame.dep == "2A") & (frame.sexe == "0") & (frame.jour == "2020-12-25")
    first_part = frame.index[(frame.dep == "2A") & (frame.sexe == "1")
                             & (frame.jour == "2020-12-25")][0]
    v = assert_agrees(validate(as_csv(frame[~gone]), dataset(HOSP), load_cog(), name="r.csv",
                               max_errors=5000))  # (1,271 cumulative decreases listed first)
    assert v.accepted and v.warnings.by_type["missing-total"] == 1
    found = [(w.row_number, w.message) for w in v.warnings.items if w.type == "missing-total"]
    line = int(first_part) + 2 - 1  # header line 1; the removed row came before it
    assert found == [(line, f"Line {line}, dep=2A, jour=2020-12-25: rows for sexe 1, 2 but no "
                            "total row (sexe 0)")]


# --- implausible rise ----------------------------------------------------------------------------


def test_medians__per_group_with_a_minimum_history():
    group = np.array([0, 0, 0, 1, 1, 2, 0, 1])
    values = np.array([5.0, 1.0, 3.0, 2.0, 4.0, 9.0, 7.0, 6.0])
    got = medians(group, values, 4, least=2)
    assert got[:2].tolist() == [4.0, 4.0]  # 1 3 5 7 -> 4; 2 4 6 -> 4
    assert np.isnan(got[2]) and np.isnan(got[3])  # one value; none
    assert medians(group, values, 4, least=1)[2] == 9.0


def grouped(days: int, rises: dict[int, int], start: date = date(2020, 3, 18)) -> str:
    """The national grouped file: ``dc`` rising by 10 a day, plus ``rises`` on given days."""
    lines, dc = ["jour;hosp;rea;rad;dc"], 100
    for i in range(days):
        dc += 10 + rises.get(i, 0)
        lines.append(f"{start + timedelta(days=i)};50;5;{100 + i};{dc}")
    return "\n".join(lines) + "\n"


def test_implausible_rise__warning_naming_series_day_and_size():
    v = run(grouped(40, {30: 990}), dataset(GROUPED))
    assert v.accepted
    [w] = [w for w in v.warnings.items if w.type == "implausible-rise"]
    assert (w.row_number, w.field_name, w.cell) == (32, "dc", "1400")
    assert w.message == (
        "Line 32, column dc, France: cumulative count rises by 1000 on 2020-04-17 (from 400 "
        "on 2020-04-16), 100x the series' median daily rise of 10; more than the 50x the "
        "dataset allows: a typo or a catch-up?")
    assert w.note == "rise 1000, median daily rise 10"


@pytest.mark.parametrize(("rises", "options", "why"), [
    ({30: 480}, {}, "490 is 49x the median: not more than 50x"),
    ({30: 80}, {"riseFactor": 5}, "90 is below the minimum of 100"),
    ({30: 990}, {"riseFactor": 0}, "the check is off"),
    ({30: 990}, {"riseHistory": 41}, "fewer one-day rises than the history asked"),
])
def test_implausible_rise__quiet(rises, options, why):
    v = run(grouped(40, rises), dataset(GROUPED, **options))
    assert v.accepted
    assert "implausible-rise" not in v.warnings.by_type, why


def test_implausible_rise__not_across_a_missing_day():
    body = grouped(40, {30: 990})
    lines = body.splitlines()
    del lines[31]  # the day before the jump: the rise spans two days
    v = run("\n".join(lines) + "\n", dataset(GROUPED))
    assert "implausible-rise" not in v.warnings.by_type
    assert v.warnings.by_type.get("missing-day") == 1


def test_implausible_rise__real_file_with_a_catch_up(real_dir):
    frame = real_frame()
    later = (frame.dep == "59") & (frame.sexe == "0") & (frame.jour >= "2021-02-01")
    frame.loc[later, "dc"] = (frame.loc[later, "dc"].astype(int) + 5000).astype(str)
    first = frame.index[later][0]
    v = assert_agrees(validate(as_csv(frame), dataset(HOSP, totalBelowParts="warning"),
                               load_cog(), name="real.csv", max_errors=5000))
    assert v.accepted
    rises = [w for w in v.warnings.items if w.type == "implausible-rise"]
    assert [(w.row_number, w.field_name) for w in rises] == [(int(first) + 2, "dc")]
    assert "dep=59, sexe=0: cumulative count rises by 50" in rises[0].message
    assert "on 2021-02-01" in rises[0].message


@pytest.mark.parametrize(("name", "path"), [
    (HOSP, HOSP_FILE), (AGE, REAL / AGE / "donnees-hospitalieres-classe-age-covid19-2021-05-06-19h05.csv"),
    (GROUPED, REAL / GROUPED / "donnees-hospitalieres-groupees-covid19-2020-10-19-19h00.csv"),
], ids=file_id)
def test_real_cumulative_series__no_implausible_rise(real_dir, name, path):
    assert ImplausibleRise in checks.CHECKS
    with tempfile.TemporaryDirectory() as work:
        v = validate_file(str(path), dataset(name), load_cog(), name=path.name, workdir=work)
    assert v.accepted
    assert "implausible-rise" not in v.warnings.by_type
