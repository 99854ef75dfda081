"""``opendepot validate``: offline validation of a local file, human or JSON report, exit codes."""

from __future__ import annotations

import json

import frictionless
import pytest

from conftest import HOSP
from opendepot.cli import main


def test_validate_real_file__accepted_with_rows_left_out_and_exit_0(real_dir, capsys):
    path = real_dir / HOSP / "donnees-hospitalieres-covid19-2020-11-07-19h00.csv"
    assert main(["validate", str(path), "--dataset", HOSP, "--max-lines", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"ACCEPTED {path}: 71205 rows, 3 rows left out")
    assert "Line 2123, column dep: value '' breaks constraint 'required'" in out[2]
    assert main(["validate", str(path), "--dataset", HOSP, "--strict"]) == 1


def test_validate_invalid_file__rejected_names_line_column_value_and_exit_1(cases_dir, capsys):
    assert main(["validate", str(cases_dir / "C06-corsica-20.csv"), "--dataset", HOSP]) == 1
    out = capsys.readouterr().out
    assert "REJECTED" in out and "Line 4, column dep: '20' is not a valid department code" in out
    assert "; 1 error, 0 warnings" in out.splitlines()[0]  # singular where there is one


def test_validate_json__loads_as_a_frictionless_report(real_dir, capsys):
    path = real_dir / HOSP / "opencovid19-fr-mirror/2020-03-25_8b00bef/covid_hospit.csv"
    assert main(["validate", str(path), "--dataset", HOSP, "--json"]) == 1
    report = frictionless.Report.from_descriptor(json.loads(capsys.readouterr().out))
    assert not report.valid and report.stats["errors"] == 312
    assert report.tasks[0].errors[0].row_number == 2123


def test_validate_dataset_from_file_name__and_unknown_dataset_is_a_usage_error(real_dir, tmp_path, capsys):
    path = real_dir / HOSP / "donnees-hospitalieres-covid19-2021-03-17-17h03.csv"
    assert main(["validate", str(path)]) == 0
    other = tmp_path / "mystery.csv"
    other.write_text("a;b\n1;2\n")
    assert main(["validate", str(other)]) == 2
    assert "cannot tell the dataset from the file name 'mystery.csv'" in capsys.readouterr().err
    assert main(["validate", str(other), "--dataset", "nope"]) == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err
    assert main(["validate", str(tmp_path / "missing.csv"), "--dataset", HOSP]) == 2


@pytest.mark.parametrize("name", ["C01-separator-change-unsplittable.csv", "C13-dep-type-inference.csv"])
def test_validate_cases__exit_code_follows_acceptance(cases_dir, name):
    expected = 1 if "unsplittable" in name else 0
    assert main(["validate", str(cases_dir / name), "--dataset", HOSP]) == expected


def test_version__printed_with_exit_0(capsys):
    from opendepot import __version__

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"opendepot {__version__}"
