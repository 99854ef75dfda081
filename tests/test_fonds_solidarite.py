"""Business support (issue 15): the solidarity fund's real files, departmental and regional,
dropped in publication order into one store (as the demo does) and published after each file;
the published values compared with figures read here, independently, from the source files.

- ``fonds-solidarite``: one row per (dep, NAF section), department level only (no roll-up: the
  producer's regional file is authoritative, statistical secrecy makes a sum differ from it);
- ``fonds-solidarite-regional``: one row per (reg, NAF section), national total of the number of
  aids and the amount; ``nombre_entreprises`` (measure kind ``distinct``) is never summed.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import REAL, Pipeline
from opendepot import layout
from opendepot.config import Settings
from opendepot.ingest import IngestOutcome
from opendepot.registry import load_descriptor, load_registry, parse_dataset
from opendepot.rollup import ADDITIVE, rolled_up_measures
from opendepot.storage import MemoryQueue, MemoryStore

DEP = "fonds-solidarite"
REG = "fonds-solidarite-regional"
PRODUCER = "dgfip"
FOLDER = REAL / "fonds-solidarite"
DEP_DAYS = ("2020-04-29", "2020-11-18", "2021-12-09", "2022-06-29")
REG_DAYS = ("2020-04-29", "2022-06-29")


def dep_file(day: str) -> Path:
    return FOLDER / f"fonds-solidarite-volet-1-departemental-naf-{day}.csv"


def reg_file(day: str) -> Path:
    return FOLDER / f"fonds-solidarite-volet-1-regional-naf-{day}.csv"


def source_rows(path: Path) -> list[dict[str, str]]:
    """A source file's rows as text (comma CSV, quoted only where a label holds a comma)."""
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def keyed(rows: list[dict[str, str]], area: str) -> dict[tuple[str, str], dict[str, str]]:
    return {(r[area], r["code_section"]): r for r in rows}


@dataclass
class Published:
    """One publication: the upload's outcome and every published level (CSV as text rows)."""

    outcome: IngestOutcome
    version: str | None = None
    levels: dict[str, list[dict[str, str]]] = field(default_factory=dict)


@dataclass
class Run:
    """Every real file of both datasets, oldest publication first, in one store."""

    pipeline: Pipeline
    after: dict[tuple[str, str], Published] = field(default_factory=dict)
    """(dataset, day) -> what that file's publication left published."""

    def table(self, dataset: str, level: str) -> list[dict[str, str]]:
        body = self.pipeline.published(layout.latest_key(dataset, level, "csv"))
        return list(csv.DictReader(io.StringIO(body.decode("utf-8")), delimiter=";"))

    def manifest(self, dataset: str) -> dict:
        return json.loads(self.pipeline.published(layout.manifest_key(dataset)))

    def changes(self, dataset: str, day: str) -> dict:
        version = self.after[(dataset, day)].version
        assert version is not None
        return json.loads(self.pipeline.published(layout.changes_key(dataset, version)))

    def stored_report(self, dataset: str, day: str) -> dict:
        outcome = self.after[(dataset, day)].outcome
        assert outcome.report_key is not None
        body = self.pipeline.store.get(self.pipeline.settings.internal_bucket, outcome.report_key)
        return json.loads(body)


@pytest.fixture(scope="module")
def run() -> Run:
    if not FOLDER.is_dir():
        pytest.skip(f"real data not found: {FOLDER}")
    pipeline = Pipeline(MemoryStore(), MemoryQueue(),
                        Settings(publish_queue_url="memory://publish.fifo"),
                        datetime(2026, 11, 29, 8, 0, tzinfo=UTC))
    files = sorted([(day, DEP, dep_file(day)) for day in DEP_DAYS]
                   + [(day, REG, reg_file(day)) for day in REG_DAYS])
    out = Run(pipeline)
    for day, dataset, path in files:
        outcome = pipeline.drop(f"{dataset}/{PRODUCER}/{path.name}", path.read_bytes())
        pipeline.publish(dataset)
        done = Published(outcome)
        if outcome.status == "accepted":
            manifest = out.manifest(dataset)
            done.version = manifest["version"]
            done.levels = {level: out.table(dataset, level) for level in manifest["rows"]}
        out.after[(dataset, day)] = done
    return out


def number(text: str) -> float | None:
    return None if text == "" else float(text)


# ------------------------------------------------------------------------------ departmental


def test_departmental_files__each_accepted_published_at_department_level_only(run):
    seen = {day: (p.outcome.status, p.outcome.report["opendepot"]["rows"],
                  p.outcome.report["opendepot"]["rows_published"],
                  p.outcome.report["opendepot"]["rows_left_out"], sorted(p.levels))
            for (dataset, day), p in run.after.items() if dataset == DEP}
    assert seen == {
        "2020-04-29": ("accepted", 1632, 1632, 0, ["dep"]),
        "2020-11-18": ("accepted", 1733, 1730, 3, ["dep"]),  # 3 cells without a NAF section
        "2021-12-09": ("accepted", 1680, 1680, 0, ["dep"]),  # fewer cells: published, not held
        "2022-06-29": ("accepted", 1680, 1680, 0, ["dep"]),
    }
    assert run.manifest(DEP)["rows"] == {"dep": 1680}  # no reg or fra level is computed
    assert load_registry().get(DEP).levels == ("dep",)


def test_departmental_snapshot__each_version_is_its_file_not_a_sum(run):
    """Snapshot mode: each publication holds exactly its file's cells (cumulative since the fund
    opened), never the previous version's plus the new one's."""
    for day in DEP_DAYS:
        source = keyed([r for r in source_rows(dep_file(day)) if r["code_section"]], "dep")
        published = keyed(run.after[(DEP, day)].levels["dep"], "dep")
        assert published.keys() == source.keys(), day
        for key in (("75", "I"), ("2A", "I"), ("971", "G")):
            assert int(published[key]["nombre_aides"]) == int(source[key]["nombre_aides"])
            assert float(published[key]["montant_total"]) == float(source[key]["montant_total"])


def test_paris_accommodation_and_food__published_values_equal_the_2022_file(run):
    source = keyed(source_rows(dep_file("2022-06-29")), "dep")[("75", "I")]
    cell = keyed(run.table(DEP, "dep"), "dep")[("75", "I")]
    assert (source["nombre_aides"], source["nombre_entreprises"], source["montant_total"]) == (
        "182377", "17497", "1649963187.00")
    assert int(cell["nombre_aides"]) == 182377
    assert int(cell["nombre_entreprises"]) == 17497
    assert float(cell["montant_total"]) == 1649963187.00
    assert (cell["reg"], cell["libelle_departement"], cell["libelle_section"]) == (
        "11", "Paris", "Hébergement et restauration")


def test_2020_11_18__cells_without_a_naf_section_left_out_and_reported(run):
    outcome = run.after[(DEP, "2020-11-18")].outcome
    errors = [(e["type"], e["rowNumber"], e["fieldName"], e["cells"][6])
              for e in outcome.report["tasks"][0]["errors"]]
    assert errors == [("constraint-error", 596, "code_section", "67"),
                      ("constraint-error", 732, "code_section", "971"),
                      ("constraint-error", 1011, "code_section", "972")]
    published = run.after[(DEP, "2020-11-18")].levels["dep"]
    assert all(r["code_section"] for r in published)
    source = source_rows(dep_file("2020-11-18"))
    assert sum(int(r["nombre_aides"]) for r in published) == sum(
        int(r["nombre_aides"]) for r in source) - 9  # 3 aids in each cell left out


def test_2021_12_09__fewer_cells_published_and_the_loss_noted_in_its_report(run):
    before = {k for k, r in keyed(source_rows(dep_file("2020-11-18")), "dep").items()
              if r["code_section"]}
    after = set(keyed(source_rows(dep_file("2021-12-09")), "dep"))
    assert (len(before), len(after), len(before - after), len(after - before)) == (1730, 1680, 55, 5)
    note = run.stored_report(DEP, "2021-12-09")["opendepot"]["publication"]
    assert note["rows"]["before"] == 1730 and note["rows"]["after"] == 1680
    assert (note["rows"]["removed"], note["rows"]["added"]) == (55, 5)
    assert [k["missing"] for k in note["key_values"]] == [0, 0]  # every dep and section kept


def test_nombre_entreprises__empty_before_2021_then_the_files_values(run):
    for day in ("2020-04-29", "2020-11-18"):
        rows = run.after[(DEP, day)].levels["dep"]
        assert {r["nombre_entreprises"] for r in rows} == {""}, day  # optional column, absent
    changes = run.changes(DEP, "2021-12-09")
    assert changes["schema"]["added"] == []  # the column is declared: published empty before
    common = len({k for k, r in keyed(source_rows(dep_file("2020-11-18")), "dep").items()
                  if r["code_section"]} & set(keyed(source_rows(dep_file("2021-12-09")), "dep")))
    column = {c["name"]: c for c in changes["columns"]}["nombre_entreprises"]
    assert column["measure"] is True and column["changed"] == common == 1675
    source = keyed(source_rows(dep_file("2021-12-09")), "dep")
    published = keyed(run.after[(DEP, "2021-12-09")].levels["dep"], "dep")
    assert {k: int(r["nombre_entreprises"]) for k, r in published.items()} == {
        k: int(r["nombre_entreprises"]) for k, r in source.items()}


# ------------------------------------------------------------------------------ regional


def test_regional_files__accepted_with_a_national_level(run):
    assert {day: (p.outcome.status, sorted(p.levels))
            for (dataset, day), p in run.after.items() if dataset == REG} == {
        "2020-04-29": ("accepted", ["fra", "reg"]), "2022-06-29": ("accepted", ["fra", "reg"])}
    assert run.manifest(REG)["rows"] == {"reg": 322, "fra": 19}


def test_regional_2022__national_total_sums_aids_and_amount_per_complete_section(run):
    """A section every region reports is summed; a section some region lacks (a cell under the
    secrecy threshold, or none) has no national figure: never a partial sum."""
    source = source_rows(reg_file("2022-06-29"))
    regions: dict[str, set[str]] = {}
    for r in source:
        regions.setdefault(r["code_section"], set()).add(r["reg"])
    incomplete = sorted(s for s, regs in regions.items() if len(regs) < 18)
    assert incomplete == ["B", "D", "O"]
    national = {r["code_section"]: r for r in run.table(REG, "fra")}
    assert set(national) == set(regions) and len(national) == 19
    for section, row in national.items():
        parts = [r for r in source if r["code_section"] == section]
        if section in incomplete:
            assert (row["nombre_aides"], row["montant_total"]) == ("", ""), section
            continue
        assert int(row["nombre_aides"]) == sum(int(r["nombre_aides"]) for r in parts), section
        assert number(row["montant_total"]) == pytest.approx(
            sum(float(r["montant_total"]) for r in parts), abs=0.005), section
    assert int(national["I"]["nombre_aides"]) == 2_031_892
    assert float(national["I"]["montant_total"]) == 12_622_943_889.0


def test_regional_national_level__never_sums_nombre_entreprises(run):
    national = run.table(REG, "fra")
    assert list(national[0]) == ["fra", "code_section", "nombre_aides", "montant_total"]
    assert {r["fra"] for r in national} == {"FR"}
    regional = keyed(run.table(REG, "reg"), "reg")
    source = keyed(source_rows(reg_file("2022-06-29")), "reg")
    assert {k: int(r["nombre_entreprises"]) for k, r in regional.items()} == {
        k: int(r["nombre_entreprises"]) for k, r in source.items()}
    assert sum(int(r["nombre_entreprises"]) for r in source.values()) == 2_013_386


def test_regional_file__not_the_sum_of_the_departmental_one(run):
    """The two datasets publish the producer's own figures, each: 79 aids and 108,500 euros more
    in the regional file of 2020-04-29 than in its departmental file (secrecy)."""
    dep = run.after[(DEP, "2020-04-29")].levels["dep"]
    reg = run.after[(REG, "2020-04-29")].levels["reg"]
    aids = sum(int(r["nombre_aides"]) for r in reg) - sum(int(r["nombre_aides"]) for r in dep)
    euros = sum(float(r["montant_total"]) for r in reg) - sum(
        float(r["montant_total"]) for r in dep)
    assert (aids, round(euros, 2)) == (79, 108_500.0)


# ------------------------------------------------------------------------------ measure kind


def test_distinct_kind__declared_for_companies_and_left_out_of_roll_ups():
    registry = load_registry()
    for name in (DEP, REG):
        ds = registry.get(name)
        assert ds is not None and ds.measures["nombre_entreprises"] == "distinct"
        assert ds.primary_key == (ds.geography.field, "code_section")
        assert ds.field("code_section").constraints["enum"] == list("ABCDEFGHIJKLMNOPQRSTU")
        assert ds.field("nombre_entreprises").optional_column
        assert ds.mode == "snapshot" and ds.producers == (PRODUCER,)
    assert "distinct" not in ADDITIVE
    columns = registry.get(REG).field_names
    assert rolled_up_measures(registry.get(REG), columns) == ["nombre_aides", "montant_total"]
    d = load_descriptor(REG)
    d["measures"]["nombre_entreprises"] = "cumulative"  # what "distinct" prevents
    assert "nombre_entreprises" in rolled_up_measures(parse_dataset(d), columns)
