"""The bench's peers (``bench.peers``: DuckDB with the core checks, Polars without) publish the
same rows as opendepot from the real hospital file cut to its first 3,000 rows (ten days, the
last one cut short, so its roll-ups are null), and the bench reports the comparison
(``bench.comparison``) and the functions' cold start and size (``bench.coldstart``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from bench import coldstart, comparison, peers
from bench.filestore import FilePipeline
from bench.run import Collected, Runner, Workload, measure_peers, summarise_peers_only
from bench.workloads import write_head
from conftest import HOSP

REAL_NAME = "donnees-hospitalieres-covid19-2021-03-17-17h03.csv"
ROWS = 3000


@pytest.fixture(scope="module")
def small(real_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("small") / REAL_NAME
    assert write_head(path, ROWS, real_dir / HOSP / REAL_NAME) == ROWS
    return path


@pytest.fixture(scope="module")
def opendepot_files(small: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """opendepot's published files of ``small`` (validate + publish over the directory store),
    copied out, and its validation report."""
    out = tmp_path_factory.mktemp("opendepot")
    with FilePipeline(tmp_path_factory.mktemp("store")) as p:
        key = p.key_for(small.name)
        _, response = p.validate(p.upload(key, small))
        assert response == {"batchItemFailures": []}
        report = p.report(key)
        _, response = p.publish(p.publish_messages())
        assert response == {"batchItemFailures": []}
        manifest = p.manifest()
        for r in manifest["resources"]:
            name = r["path"].rsplit("/", 1)[-1]
            shutil.copyfile(p.store.path(p.settings.published_bucket, r["path"]), out / name)
    return {"dir": out, "report": report, "rows": manifest["rows"]}


@pytest.fixture(scope="module")
def spec() -> peers.Spec:
    return peers.Spec.load()


def test_spec_reads_the_declaration_and_the_cog(spec):
    assert list(spec.fields) == ["dep", "sexe", "jour", "hosp", "rea", "HospConv", "SSR_USLD",
                                 "autres", "rad", "dc"]
    assert spec.key == ["dep", "sexe", "jour"]
    assert spec.cumulative == ["rad", "dc"]
    assert spec.enums == {"sexe": [0, 1, 2]}
    assert spec.region_of["2A"] == "94" and spec.region_of["971"] == "01"
    assert {"975", "977", "978", "2B"} <= set(spec.known)
    assert "975" not in spec.region_of
    assert spec.level_columns("reg")[:3] == ["reg", "sexe", "jour"]


def test_duckdb_and_polars_publish_opendepots_rows(small, opendepot_files, spec, tmp_path):
    digests = {"opendepot": peers.level_digests(peers.output_files(opendepot_files["dir"]), spec)}
    con = peers.duckdb_connect(spec)
    steps = peers.duckdb_publish(con, spec, small, tmp_path / "duckdb")
    assert steps["refused"] is False
    digests["duckdb"] = peers.level_digests(peers.output_files(tmp_path / "duckdb"), spec)
    peers.polars_publish(spec, small, tmp_path / "polars")
    digests["polars"] = peers.level_digests(peers.output_files(tmp_path / "polars"), spec)

    same = peers.compare(digests)
    assert same["mismatches"] == []
    assert same["equal"] is True
    assert opendepot_files["rows"] == {"dep": 3000, "reg": 525, "fra": 30}
    for tool in ("opendepot", "duckdb", "polars"):
        assert {lv: same["rows"][lv][tool] for lv in peers.LEVELS} == opendepot_files["rows"]
    # the figures themselves: France, both sexes, first day; the last day (cut short) is null
    fra = pq.read_table(peers.output_files(tmp_path / "polars")["fra"]["parquet"]).to_pylist()
    first = fra[0]
    assert (first["fra"], first["sexe"], str(first["jour"])) == ("FR", 0, "2020-03-18")
    assert (first["hosp"], first["rea"], first["rad"], first["dc"]) == (2972, 771, 816, 218)
    assert first["HospConv"] is None  # a declared column the file lacks
    last = fra[-1]
    assert (last["sexe"], str(last["jour"]), last["hosp"], last["dc"]) == (2, "2020-03-27", None,
                                                                          None)


def test_duckdb_checks_find_what_opendepot_finds(small, opendepot_files, spec, tmp_path):
    con = peers.duckdb_connect(spec)
    steps = peers.duckdb_publish(con, spec, small, tmp_path)
    checks = steps["checks"]
    warned = opendepot_files["report"]["tasks"][0]["stats"]["warningsByType"]
    assert checks["decrease_rad"] + checks["decrease_dc"] == warned["cumulative-decrease"] == 54
    assert steps["errors"] == 0


def test_duckdb_refuses_a_file_with_errors(small, spec, tmp_path):
    lines = small.read_text().splitlines()
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([*lines, lines[1],  # a duplicate key
                              '"99";"0";"2020-03-18";1;0;1;0',  # an unknown department
                              '"01";"7";"2020-03-18";-3;0;1;0']) + "\n")  # bad sexe, negative
    con = peers.duckdb_connect(spec)
    out = tmp_path / "out"
    steps = peers.duckdb_publish(con, spec, bad, out)
    c = steps["checks"]
    assert (c["duplicate_keys"], c["unknown_area"], c["enum_sexe"], c["negative_hosp"]) == (
        1, 1, 1, 1)
    assert steps["refused"] is True and steps["errors"] == 4
    assert not any(out.iterdir())  # nothing written


def test_compare_is_loud_on_a_changed_row(small, spec, tmp_path):
    for tool in ("a", "b"):
        peers.polars_publish(spec, small, tmp_path / tool)
    csv = peers.output_files(tmp_path / "b")["fra"]["csv"]
    text = csv.read_text()
    assert ";2972;771;" in text
    csv.write_text(text.replace(";2972;771;", ";2973;771;", 1))
    same = peers.compare({tool: peers.level_digests(peers.output_files(tmp_path / tool), spec)
                          for tool in ("a", "b")})
    assert same["equal"] is False
    assert len(same["mismatches"]) == 1 and same["mismatches"][0].startswith("b fra.csv")
    printed = comparison.table([{"name": "real", "rows": ROWS, "same_rows": same}])
    assert printed.startswith("!!! real: THE TOOLS DID NOT PUBLISH THE SAME ROWS: b fra.csv")
    target = comparison.targets({"real": {"ratio_to_duckdb_checked": 2.0, "same_rows": same}})
    assert [(t["value"], t["met"]) for t in target] == [(2.0, False), ("NO, ROWS DIFFER", False)]


def test_bench_children_and_results_keys(small, tmp_path):
    """The bench's own path: opendepot's handlers over the file store and both peers in child
    processes, then the workload's line of results.json and the table."""
    run = Runner(tmp_path, mem_gib=8.0, verbose=False)
    w = Workload("tiny", small, ROWS, 1, 0, 0.0, 240.0)
    c = Collected()
    measure_peers(w, run, tmp_path, c)
    line = summarise_peers_only(w, c)
    for key in ("opendepot_file_store_seconds", "ratio_to_duckdb_checked", "ratio_to_polars",
                "same_rows", "duckdb_checked", "polars"):
        assert key in line, key
    assert isinstance(line["ratio_to_duckdb_checked"], float)
    assert isinstance(line["ratio_to_polars"], float)
    assert line["same_rows"]["equal"] is True, line["same_rows"]
    assert line["same_rows"]["rows"]["fra"] == {"opendepot": 30, "duckdb": 30, "polars": 30}
    assert line["duckdb_checked"]["checks"]["decrease_dc"] == 10
    # the site function, measured on its own after publish (not in opendepot's seconds)
    assert line["opendepot_file_store"]["site_seconds"] > 0
    assert line["opendepot_file_store"]["peak_rss_mib"]["site"] > 0
    assert "site_failed" not in line["opendepot_file_store"]
    assert not any(k.endswith("_without_site") for k in line)
    for tool in ("duckdb_checked", "polars"):
        assert line[tool]["peak_rss_mib"] > line[tool]["baseline_rss_mib"] > 0
    printed = comparison.table([line])
    assert "tiny" in printed and printed.splitlines()[3].rstrip().endswith("yes")
    targets = comparison.targets({"real": line})
    assert [t["met"] for t in targets][1] is True


def test_package_sizes_count_the_layer(tmp_path):
    sizes = coldstart.package_sizes()
    deps = sizes["dependencies_mib"]
    assert {"pyarrow", "pandas", "numpy", "boto3", "botocore", "jinja2", "rdflib"} <= set(deps)
    assert "moto" not in deps and "duckdb" not in deps and "polars" not in deps  # not runtime
    assert deps["pyarrow"] > 50
    assert sizes["layer_mib"] == pytest.approx(
        sizes["opendepot_package_mib"] + sum(deps.values()), abs=0.5)
    assert 0.5 < sizes["opendepot_package_mib"] < sizes["shared_layer_mib"] < sizes["layer_mib"]
    assert set(sizes["functions_mib"]) == {"validate", "publish", "site", "index_api"}


def test_importtime_finds_the_handler_module():
    doc = coldstart.importtime("functions.publish.app", timeout=120)
    assert doc["total_seconds"] > 0
    assert "opendepot" in doc["by_package_seconds"]


def test_a_childs_peak_is_its_own_not_its_parents():
    """Linux carries ``ru_maxrss`` over fork and exec: read that way, a child of a process
    holding 256 MiB peaked at 256 MiB or more. ``bench.memory.peak`` is the child's own."""
    import subprocess
    import sys

    from bench import memory

    held = bytearray(256 * 1024 * 1024)
    held[::4096] = b"\1" * len(held[::4096])  # touched: resident
    assert memory.peak() > 256
    code = ("import resource; from bench import memory; "
            "print(memory.peak(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent, check=True)
    own, inherited = map(float, proc.stdout.split())
    del held
    assert own < 64  # an interpreter and bench.memory
    assert inherited > 256  # what ru_maxrss said
