"""Every real file in ../shared/data/real: `opendepot validate` answers with a report that loads
as a Frictionless report, never a crash; the files the demo drops are all mapped to a dataset."""

from __future__ import annotations

import json

import frictionless
import pytest

from infra.demo import awaiting_real, collect_real, real_sources
from opendepot.cli import main
from opendepot.registry import load_registry


def mapped(real_dir):
    files, unmapped = collect_real(real_dir)
    return files, unmapped


def test_every_real_input_file__is_mapped_to_a_registered_dataset(real_dir):
    files, unmapped = mapped(real_dir)
    registry = load_registry()
    assert unmapped == []
    assert {f.dataset for f in files} <= set(registry.datasets)
    assert len(files) == 58  # 66 files less the COG (2) and the SPF column dictionaries (6)
    assert [f.name for f in files if f.producer not in registry.get(f.dataset).producers] == []
    assert len(real_sources()) >= 16


def test_business_support_files__mapped_departmental_and_regional_none_awaiting(real_dir):
    assert awaiting_real(real_dir) == []  # issue 15 declared fonds-solidarite: nothing held back
    files, _ = collect_real(real_dir)
    fonds = {f.name: (f.dataset, f.producer, f.date) for f in files if "fonds-solidarite" in f.name}
    assert fonds == {
        f"fonds-solidarite-volet-1-{scale}-naf-{day}.csv": (dataset, "dgfip", day)
        for scale, dataset, days in (
            ("departemental", "fonds-solidarite",
             ("2020-04-29", "2020-11-18", "2021-12-09", "2022-06-29")),
            ("regional", "fonds-solidarite-regional", ("2020-04-29", "2022-06-29")))
        for day in days
    }


@pytest.mark.e2e  # every real file through the CLI: `make test` runs it, `make check` does not
def test_validate_every_real_file__json_loads_as_a_frictionless_report(real_dir, capsys):
    files, _ = mapped(real_dir)
    outcomes = {}
    for f in files:
        code = main(["validate", str(f.path), "--dataset", f.dataset, "--json"])
        report = json.loads(capsys.readouterr().out)
        loaded = frictionless.Report.from_descriptor(report)
        assert loaded.stats["errors"] == report["stats"]["errors"]
        outcomes[f.name] = (code, report["opendepot"]["status"])
    rejected = sorted(name for name, (code, _) in outcomes.items() if code)
    # the real defects: duplicated day (mirror 2020-03-25), a TAB-only line in ARS Corse's YAML
    assert rejected == ["2020-03-25_8b00bef-covid_hospit.csv", "2020-03-27.yaml"]
