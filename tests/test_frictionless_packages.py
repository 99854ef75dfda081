"""``frictionless validate`` (Frictionless 5, the Python API the CLI runs) says VALID for every
published ``datapackage.json``, its CSV read as tables and its Parquet copies as files (bytes and
sha256 checked: ``render.PARQUET_RESOURCE_TYPE``), and the Parquet copies stay described.

Published from the real files (``../shared/data/real``) by the in-memory pipeline; each version's
folder is written to a temporary directory so the package's relative paths resolve. The e2e test
publishes every real file of every dataset (`make check` leaves it out); the others publish a few
small real files.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import frictionless
import pyarrow.parquet as pq
import pytest

from conftest import HOSP, REAL, Pipeline
from functions.index_api import app as index_api
from opendepot import layout
from opendepot.config import Settings
from opendepot.registry import load_registry
from opendepot.render import PARQUET_RESOURCE_TYPE
from test_index_api import API, FILES, body, call, event

FONDS = "fonds-solidarite-regional"
FONDS_FILE = REAL / "fonds-solidarite" / "fonds-solidarite-volet-1-regional-naf-2022-06-29.csv"
MIRROR = REAL / HOSP / "opencovid19-fr-mirror" / "2020-03-23_3f62f18" / "covid_hospit.csv"
COLUMNS = ["rowNumber", "fieldName", "type", "note"]


def package_on_disk(p: Pipeline, dataset: str, into: Path) -> Path:
    """The current version's folder (``datapackage.json`` and its files) written under ``into``;
    the path of its ``datapackage.json``."""
    manifest = json.loads(p.published(layout.manifest_key(dataset)))
    key = manifest["datapackage_path"]
    bucket = p.settings.published_bucket
    for o in p.store.list(bucket, key.rpartition("/")[0] + "/"):
        target = into / o.key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(p.store.get(bucket, o.key))
    return into / key


def frictionless_report(path: Path) -> frictionless.Report:
    return frictionless.validate(str(path))


def parquet_resources(package: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in package["resources"] if r["format"] == "parquet"]


@pytest.fixture
def small(pipeline: Pipeline) -> Pipeline:
    """The hospital stock (the mirror's 23 March 2020 file) and the producer's regional
    solidarity-fund file of 29 June 2022 (its national roll-up has empty sections), published."""
    for key, path in ((f"{HOSP}/spf/covid_hospit.csv", MIRROR),
                      (f"{FONDS}/dgfip/{FONDS_FILE.name}", FONDS_FILE)):
        assert pipeline.drop(key, path.read_bytes()).status == "accepted"
        assert pipeline.publish(key.split("/")[0]).created
    return pipeline


@pytest.mark.parametrize(("dataset", "rows"), [
    (HOSP, {"dep": 1515, "reg": 270, "fra": 15}),
    (FONDS, {"reg": 322, "fra": 19}),
])
def test_real_files__frictionless_validate_says_valid(
    small: Pipeline, tmp_path: Path, dataset: str, rows: dict[str, int]
) -> None:
    path = package_on_disk(small, dataset, tmp_path)
    report = frictionless_report(path)
    assert report.valid, report.flatten(COLUMNS)
    package = json.loads(path.read_text("utf-8"))
    tasks = {t.name: t for t in report.tasks}
    assert len(tasks) == len(package["resources"]) == 2 * len(rows)
    for level, count in rows.items():
        csv = tasks[f"{dataset}-{level}-csv"]
        assert (csv.type, csv.stats["rows"]) == ("table", count)
        parquet = tasks[f"{dataset}-{level}-parquet"]
        assert parquet.type == "file"
        assert parquet.stats["bytes"] == (path.parent / f"{dataset}-{level}.parquet").stat().st_size


def test_parquet_copies__still_described_path_bytes_hash_schema_and_their_csv(
    small: Pipeline, tmp_path: Path
) -> None:
    path = package_on_disk(small, HOSP, tmp_path)
    package = json.loads(path.read_text("utf-8"))
    by_name = {r["name"]: r for r in package["resources"]}
    parquets = parquet_resources(package)
    assert [r["path"] for r in parquets] == [f"{HOSP}-{lv}.parquet" for lv in ("dep", "reg", "fra")]
    for r in parquets:
        data = (path.parent / r["path"]).read_bytes()
        assert r["type"] == PARQUET_RESOURCE_TYPE == "file"
        assert (r["bytes"], r["hash"]) == (len(data), "sha256:" + hashlib.sha256(data).hexdigest())
        assert r["mediatype"] == "application/vnd.apache.parquet"
        assert r["codec"] in ("zstd", "snappy")
        assert "rows" not in r  # frictionless counts rows of tables only: the CSV says them
        csv = by_name[r["alternateOf"]]
        assert (csv["format"], csv["path"]) == ("csv", r["path"].replace(".parquet", ".csv"))
        assert r["schema"] == csv["schema"]
        table = pq.read_table(path.parent / r["path"])
        assert table.num_rows == csv["rows"]
        assert table.column_names == [f["name"] for f in r["schema"]["fields"]]


@pytest.mark.parametrize("damage", ["truncated", "one byte changed"])
def test_damaged_parquet__frictionless_reports_its_bytes_or_hash(
    small: Pipeline, tmp_path: Path, damage: str
) -> None:
    path = package_on_disk(small, HOSP, tmp_path)
    parquet = path.parent / f"{HOSP}-reg.parquet"
    data = parquet.read_bytes()
    middle = len(data) // 2
    parquet.write_bytes(data[:-10] if damage == "truncated"
                        else data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:])
    report = frictionless_report(path)
    assert not report.valid
    found = {(t.name, e.type) for t in report.tasks for e in t.errors}
    want = {(f"{HOSP}-reg-parquet", "hash-count")}
    if damage == "truncated":
        want.add((f"{HOSP}-reg-parquet", "byte-count"))
    assert found == want


def test_rollup_level__summed_measures_not_required_where_sections_are_empty(
    small: Pipeline, tmp_path: Path
) -> None:
    """The national roll-up of the regional solidarity fund is empty where a region lacks the
    section (``rollup``: no partial sums); its schema must not call those measures required."""
    path = package_on_disk(small, FONDS, tmp_path)
    package = json.loads(path.read_text("utf-8"))
    schemas = {r["name"]: r["schema"] for r in package["resources"]}
    fields = {lv: {f["name"]: f for f in schemas[f"{FONDS}-{lv}-csv"]["fields"]}
              for lv in ("reg", "fra")}
    for measure in ("nombre_aides", "montant_total"):
        assert fields["reg"][measure]["constraints"] == {"required": True, "minimum": 0}
        assert fields["fra"][measure]["constraints"] == {"minimum": 0}
    assert fields["fra"]["code_section"]["constraints"]["required"] is True  # not a measure
    lines = (path.parent / f"{FONDS}-fra.csv").read_text("utf-8").splitlines()
    assert '"FR";"B";;' in lines


def test_served_datapackage__valid_descriptor_parquet_still_described(small: Pipeline) -> None:
    settings = Settings(published_bucket=small.settings.published_bucket,
                        public_base_url=FILES, api_base_url=API)
    index_api.configure(small.store, settings, clock=lambda: datetime(2026, 11, 29, tzinfo=UTC))
    try:
        r = call(event(path=f"/api/1/datasets/{HOSP}/datapackage.json"))
    finally:
        index_api.configure(None)
    assert r["statusCode"] == 200
    package = body(r)
    assert frictionless.Package.validate_descriptor(package).valid
    version = package["version"]
    for res in parquet_resources(package):
        key = res["path"].removeprefix(FILES + "/")
        assert key.startswith(f"{HOSP}/{version}/") and key.endswith(".parquet")
        data = small.published(key)
        assert (res["type"], res["bytes"], res["hash"]) == (
            "file", len(data), "sha256:" + hashlib.sha256(data).hexdigest())


# --- every real file -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def everything(every_real_published: Pipeline,
               tmp_path_factory: pytest.TempPathFactory) -> tuple[Pipeline, Path]:
    """Every real file published (the session's, ``conftest.every_real_published``); the
    folder the current versions are written to."""
    return every_real_published, tmp_path_factory.mktemp("published")


@pytest.mark.e2e
@pytest.mark.parametrize("dataset", [d.name for d in load_registry()])
def test_every_real_dataset__frictionless_validate_says_valid(
    everything: tuple[Pipeline, Path], dataset: str
) -> None:
    p, folder = everything
    path = package_on_disk(p, dataset, folder)
    report = frictionless_report(path)
    assert report.valid, report.flatten(COLUMNS)[:20]
    package = json.loads(path.read_text("utf-8"))
    parquets = parquet_resources(package)
    assert len(parquets) == len(package["resources"]) // 2 >= 1
    assert {t.name for t in report.tasks if t.type == "file"} == {r["name"] for r in parquets}
    for r in parquets:
        assert r["bytes"] == (path.parent / r["path"]).stat().st_size
