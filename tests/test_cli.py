"""``opendepot validate``: offline validation of a local file, human or JSON report, exit codes."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from importlib.metadata import entry_points

import frictionless
import pytest

from conftest import HOSP, ROOT
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


# ------------------------------------------------------------- the layer and the demo plug-in

LAYER = ROOT / "shared" / "opendepot"
OUTSIDE_THE_LAYER = {"infra", "functions", "bench", "tests", "conftest"}


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter on this checkout (as the console script sees it)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "shared"), str(ROOT)])}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def test_layer_sources__import_nothing_from_infra_functions_bench_or_tests():
    """An AST scan of every module of the layer, imports inside functions included."""
    offenders = []
    for path in sorted(LAYER.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            offenders += [f"{path.relative_to(ROOT)}:{node.lineno} {name}" for name in names
                          if name.split(".")[0] in OUTSIDE_THE_LAYER]
    assert offenders == []
    assert len(list(LAYER.rglob("*.py"))) > 20  # the scan saw the package


def test_every_layer_module_imported__leaves_infra_unimported():
    done = _run_python(
        "import importlib, json, pkgutil, sys, opendepot\n"
        "names = [m.name for m in pkgutil.walk_packages(opendepot.__path__, 'opendepot.')]\n"
        "for name in names: importlib.import_module(name)\n"
        "from opendepot.cli import build_parser\n"
        "build_parser(plugins=False).parse_args(['validate', 'x.csv'])\n"
        "print(json.dumps({'modules': names, 'infra': sorted(m for m in sys.modules\n"
        "                  if m.split('.')[0] in ('infra', 'functions', 'bench'))}))\n"
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert {"opendepot.cli", "opendepot.storage", "opendepot.validate", "opendepot.runtime"} <= set(
        seen["modules"])
    assert seen["infra"] == []


def test_demo__is_the_infra_plugin_of_the_entry_point_group():
    import infra.cli
    from opendepot.cli import PLUGIN_GROUP, SUBCOMMANDS, build_parser

    assert [e.value for e in entry_points(group=PLUGIN_GROUP) if e.name == "demo"] == [
        "infra.cli:DEMO"]
    args = build_parser().parse_args(["demo", "--once", "--port", "0", "--dataset", HOSP])
    assert SUBCOMMANDS["demo"] is infra.cli.DEMO
    assert (args.once, args.port, args.dataset, args.producer) == (True, 0, HOSP, "spf")


def test_layer_without_infra__demo_says_why_and_validate_still_runs(cases_dir):
    case = cases_dir / "C13-dep-type-inference.csv"
    done = _run_python(
        "import sys\n"
        "sys.modules['infra'] = None  # the Lambda layer: no local stack beside it\n"
        "from opendepot.cli import main\n"
        "demo = main(['demo', '--once', '--port', '0'])\n"
        f"valid = main(['validate', {str(case)!r}, '--dataset', {HOSP!r}, '--max-lines', '0'])\n"
        "print('exit codes', demo, valid)\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "exit codes 2 0"
    assert done.stdout.startswith(f"ACCEPTED {case}: ")
    assert "opendepot demo: not available here (ModuleNotFoundError: " in done.stderr


def test_opendepot_demo_script__takes_the_demo_arguments(capsys):
    from infra.cli import main as demo_main

    with pytest.raises(SystemExit) as done:
        demo_main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: opendepot-demo ") and "--once" in out and "--template" in out
    with pytest.raises(SystemExit) as done:
        demo_main(["--no-such-option"])
    assert done.value.code == 2


def test_plugins__a_subcommand_from_an_installed_distribution_runs_and_a_wrong_object_is_refused(
    tmp_path, monkeypatch, capsys
):
    from opendepot import cli

    (tmp_path / "hello_plugin.py").write_text(
        "from opendepot.cli import Subcommand\n"
        "def configure(parser):\n"
        "    parser.add_argument('--code', type=int, default=7)\n"
        "    return lambda args: args.code\n"
        "HELLO = Subcommand('hello', 'says hello with an exit code', configure)\n"
        "WRONG = 'not a subcommand'\n"
    )
    dist = tmp_path / "hello_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hello-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{cli.PLUGIN_GROUP}]\nhello = hello_plugin:HELLO\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli, "SUBCOMMANDS", dict(cli.SUBCOMMANDS))
    assert "hello" in cli.load_plugins()
    assert cli.main(["hello", "--code", "3"]) == 3
    assert "says hello with an exit code" in cli.build_parser().format_help()

    (dist / "entry_points.txt").write_text(f"[{cli.PLUGIN_GROUP}]\nwrong = hello_plugin:WRONG\n")
    with pytest.raises(TypeError, match="wrong = hello_plugin:WRONG .* must name a Subcommand"):
        cli.load_plugins()
