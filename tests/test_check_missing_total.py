"""The ``missing-total`` check (``opendepot.checks.missing_total``), added as a plug-in: quiet
on the real hospital files, whose groups all have their total row; one warning per group of
parts without its total in a file built here."""

from __future__ import annotations

import tempfile

import pytest
from report_invariant import assert_agrees

from conftest import HOSP, REAL
from opendepot import checks
from opendepot.checks.missing_total import MissingTotal
from opendepot.registry import load_cog, load_registry
from opendepot.validate import validate, validate_file

HEADER = "dep;sexe;jour;hosp;rea;rad;dc\n"


def hosp():
    return load_registry().get(HOSP)


def test_registered_for_datasets_declaring_totals_only():
    assert MissingTotal in checks.CHECKS
    names = [type(c).__name__ for c in checks.checklist(hosp(), load_cog())]
    assert "MissingTotal" in names
    no_totals = load_registry().get("indicateurs-suivi-epidemie-covid-france")
    assert not no_totals.totals
    assert "MissingTotal" not in [type(c).__name__ for c in checks.checklist(no_totals, load_cog())]


@pytest.mark.parametrize("name", sorted(p.name for p in (REAL / HOSP).glob("*.csv")))
def test_real_hospital_files__never_fires(real_dir, name):
    with tempfile.TemporaryDirectory() as work:
        v = validate_file(str(real_dir / HOSP / name), hosp(), load_cog(), name=name,
                          workdir=work)
    assert v.accepted and "missing-total" not in v.warnings.by_type
    assert_agrees(v)


def test_parts_without_their_total__one_warning_per_group_at_its_first_line():
    body = HEADER + (
        "75;0;2020-03-18;10;1;1;1\n75;1;2020-03-18;6;1;1;1\n75;2;2020-03-18;4;0;0;0\n"
        "13;1;2020-03-18;2;1;1;1\n13;2;2020-03-18;1;0;0;0\n"  # no 13/0 on the 18th
        "75;1;2020-03-19;7;1;1;1\n75;0;2020-03-19;12;1;1;1\n75;2;2020-03-19;5;0;0;0\n"
        "13;2;2020-03-19;3;0;0;0\n"  # no 13/0 on the 19th either
    )
    v = assert_agrees(validate(body.encode(), hosp(), load_cog(), name="t.csv"))
    assert v.accepted
    found = [(w.row_number, w.message, w.note) for w in v.warnings.items
             if w.type == "missing-total"]
    assert found == [
        (5, "Line 5, dep=13, jour=2020-03-18: rows for sexe 1, 2 but no total row (sexe 0)",
         "no sexe 0"),
        (10, "Line 10, dep=13, jour=2020-03-19: rows for sexe 2 but no total row (sexe 0)",
         "no sexe 0"),
    ]
    assert v.warnings.by_type["missing-total"] == 2


def test_a_file_without_any_total_row__not_warned():
    body = HEADER + "75;1;2020-03-18;6;1;1;1\n75;2;2020-03-18;4;0;0;0\n"
    v = validate(body.encode(), hosp(), load_cog(), name="t.csv")
    assert v.accepted and "missing-total" not in v.warnings.by_type
