"""Parity with the Frictionless validator (test-only dependency): same error types and the same
row numbers on real files, and opendepot's report loads as a Frictionless report."""

from __future__ import annotations

import json
from pathlib import Path

import frictionless
import pytest

from conftest import HOSP
from opendepot.registry import load_cog, load_registry
from opendepot.report import build_report
from opendepot.validate import validate


def frictionless_schema(columns: list[str]) -> frictionless.Schema:
    """The registry's Table Schema, restricted to the file's columns, without our extensions."""
    declared = load_registry().get(HOSP).schema
    fields = [{k: v for k, v in f.items() if k not in {"dateFormats", "optional"}}
              for f in declared["fields"] if f["name"] in columns]
    return frictionless.Schema.from_descriptor(
        {"fields": fields, "missingValues": declared["missingValues"],
         "primaryKey": declared["primaryKey"]})


def both(path: Path):
    ours = validate(path.read_bytes(), load_registry().get(HOSP), load_cog(), name=path.name)
    resource = frictionless.Resource(
        path=path.name,
        basepath=str(path.parent),
        schema=frictionless_schema(list(ours.labels)),
        dialect=frictionless.Dialect.from_descriptor({"csv": {"delimiter": ";"}}),
    )
    theirs = frictionless.validate(resource, limit_errors=10000)
    return ours, theirs


@pytest.mark.e2e
@pytest.mark.parametrize(
    "relative",
    [
        "donnees-hospitalieres-covid19/donnees-hospitalieres-covid19-2020-11-07-19h00.csv",
        "donnees-hospitalieres-covid19/opencovid19-fr-mirror/2020-03-25_8b00bef/covid_hospit.csv",
    ],
)
def test_real_file__same_errors_and_row_numbers_as_frictionless(real_dir, relative):
    ours, theirs = both(real_dir / relative)
    want = sorted((e.type, e.row_number) for e in theirs.tasks[0].errors)
    got = sorted((e.type, e.row_number) for e in ours.errors.items)
    assert want, "the real file has defects Frictionless finds"
    assert got == want


def test_case_file__same_errors_and_row_numbers_as_frictionless(cases_dir):
    ours, theirs = both(cases_dir / "C03-duplicate-day-first-upload.csv")
    assert sorted((e.type, e.row_number) for e in ours.errors.items) == sorted(
        (e.type, e.row_number) for e in theirs.tasks[0].errors)


@pytest.mark.parametrize(
    "name",
    [
        "C01-separator-change-unsplittable.csv",
        "C03-duplicate-day-first-upload.csv",
        "C06-corsica-20.csv",
        "C08-leading-zero-lost.csv",
    ],
)
def test_report__loads_as_a_frictionless_report(cases_dir, name):
    raw = (cases_dir / name).read_bytes()
    v = validate(raw, load_registry().get(HOSP), load_cog(), name=name)
    report = json.loads(json.dumps(build_report(v, raw, {"key": f"{HOSP}/spf/{name}"})))
    loaded = frictionless.Report.from_descriptor(report)
    assert loaded.valid == v.valid
    assert loaded.stats["errors"] == v.errors.total
    assert [(e.type, getattr(e, "row_number", None)) for e in loaded.tasks[0].errors] == [
        (e.type, e.row_number if e.type not in {"extra-label", "missing-label", "format-error"}
         else None) for e in v.errors.items]
