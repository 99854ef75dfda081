"""chiffres-cles: key figures from many producers, published by source and consolidated.

Every real chiffres-cles file (OpenCOVID19-fr's nightly consolidated CSV, four versions, and the
per-source YAML bulletins) goes through validate and publish (in-memory store) under the
dataset and producer ``infra/real_sources/chiffres_cles.json`` gives it, after the real SPF
hospital file, which feeds its department rows. Published values are checked against figures
computed here, independently, from the source files.

Some behaviours need engine features that are not there yet (probed below, not assumed): the
tests that need them are skipped with the reason.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from conftest import HOSP, REAL, ROOT, Pipeline
from opendepot import feeds, layout
from opendepot.config import Settings
from opendepot.consolidate import select_uploads
from opendepot.contracts import FedUpload, Manifest, UploadRecord
from opendepot.ingest import IngestOutcome
from opendepot.registry import load_cog, load_registry
from opendepot.rollup import rollup
from opendepot.storage import MemoryQueue, MemoryStore
from opendepot.validate import validate

CC = "chiffres-cles"
FEED = "sante-publique-france-donnees-hospitalieres"
MAPPING = ROOT / "infra" / "real_sources" / "chiffres_cles.json"
HOSP_FILE = REAL / HOSP / "donnees-hospitalieres-covid19-2021-03-17-17h03.csv"
DIST_KEY = f"{CC}/opencovid19-fr/chiffres-cles.csv"  # the nightly build always writes this key
BROKEN = "opencovid19-fr/dist/2020-10-31_9c91c00/chiffres-cles.csv"
PRIORITY = ["ministere-sante", FEED, "sante-publique-france-data", "sante-publique-france",
            "agences-regionales-sante", "prefectures", "opencovid19-fr", "lperez31-historical-data"]
BLOCKS = ("donneesNationales", "donneesMondiales", "donneesRegionales", "donneesDepartementales")


# ------------------------------------------------------------------ engine features, probed


def _engine_gaps() -> dict[str, str]:
    """Engine features chiffres-cles needs, missing from the engine in this checkout."""
    ds, cog = load_registry().get(CC), load_cog()
    days = pd.date_range("2020-01-01", periods=120).strftime("%Y-%m-%d")
    header = "date,granularite,maille_code,maille_nom,deces,source_nom,source_url,source_type\n"
    body = header + "".join(f"{d},departement,DEP-01,Ain,{i},Préfecture de l'Ain,,prefectures\n"
                            for i, d in enumerate(days))
    gaps = {}
    try:
        validate(body.encode(), ds, cog, name=f"{CC}/prefecture-01/probe.csv")
    except Exception as exc:  # noqa: BLE001 - probing for a known crash
        gaps["validate"] = (f"validate() crashes on a dataset without a geography field "
                            f"({type(exc).__name__}: {exc}) - feature request F0")
        return gaps
    dup = body + body.splitlines()[-1] + "\n"
    v = validate(dup.encode(), ds, cog, name=f"{CC}/prefecture-01/probe.csv")
    if not (v.accepted and v.rows_left_out == 1):
        gaps["duplicate-row"] = ("an exact duplicate row is a primary-key error that rejects "
                                 "the file, not a row error within the error budget - "
                                 "feature request F2")
    producers = ["opencovid19-fr", "opencovid19-fr", "ars-corse", "ars-corse"]
    records = [UploadRecord(key=f"{CC}/{p}/{i}", bucket="in", version_id=None, etag="e",
                            sequencer=f"{i:016X}", received_at=f"2020-01-0{i}T00:00:00Z", size=1,
                            upload_id=f"u{i}", dataset=CC, producer=p, rows=1, rows_left_out=0,
                            areas=1, sha256="", bytes=1, report_key="", staged_key="")
               for i, p in enumerate(producers, 1)]
    if len(select_uploads(ds, records)) != 3:
        gaps["producer-modes"] = ("the dataset-wide mode applies to every producer; "
                                  "'producerModes' (opencovid19-fr: snapshot) is ignored - "
                                  "feature request F1")
    tie = pa.table({"date": ["2020-04-15"] * 2, "maille_code": ["FRA"] * 2,
                    "source_type": ["ministere-sante"] * 2,
                    "producer": ["ministere-sante", "opencovid19-fr"]})
    if rollup(ds, tie, cog)["consolide"]["producer"].to_pylist() != ["ministere-sante"]:
        gaps["priority-then"] = ("between rows of equal source priority the row is picked by "
                                 "sort order, not by the declared 'then' (producer's own row "
                                 "before OpenCOVID19-fr's copy) - feature request F3")
    return gaps


GAPS = _engine_gaps()


def needs(*features: str) -> pytest.MarkDecorator:
    missing = [GAPS[f] for f in ("validate", *features) if f in GAPS]
    return pytest.mark.skipif(bool(missing), reason="; ".join(missing))


# ------------------------------------------------------------------ independent counts


def real_files() -> list[tuple[Path, str, str]]:
    """(path, producer, key) of every mapped file, in publication order (date in the path)."""
    out = []
    for entry in json.loads(MAPPING.read_text("utf-8")):
        assert entry["dataset"] == CC
        for path in sorted(REAL.glob(entry["glob"])):
            own = f"{CC}/{entry['producer']}/{path.name}"
            key = DIST_KEY if path.name == "chiffres-cles.csv" else own
            out.append((path, entry["producer"], key))

    def when(item: tuple[Path, str, str]) -> str:
        return re.search(r"\d{4}-\d{2}-\d{2}", str(item[0].relative_to(REAL))).group(0)

    return sorted(out, key=lambda item: (when(item), str(item[0])))


def areas_in(path: Path) -> int:
    """Area blocks of a bulletin, counted from its parsed YAML."""
    doc = yaml.safe_load(path.read_bytes())
    return sum(len(doc[b]) if isinstance(doc.get(b), list) else int(isinstance(doc.get(b), dict))
               for b in BLOCKS)


def dist_frame(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def dist_left_out(df: pd.DataFrame) -> tuple[int, int]:
    """(exact duplicate rows, rows coded COM-974 - La Réunion is department 974, not a COM)."""
    return int(df.duplicated().sum()), int((df.maille_code == "COM-974").sum())


def dist_rows(path: Path) -> int:
    df = dist_frame(path)
    return len(df) - sum(dist_left_out(df))


def rel(path: Path) -> str:
    return str(path.relative_to(REAL))


# ------------------------------------------------------------------ the run


@dataclass
class Published:
    sources: pd.DataFrame
    consolide: pd.DataFrame
    manifest: Manifest


@dataclass
class Run:
    pipeline: Pipeline
    outcomes: dict[str, IngestOutcome]
    hosp_version: str
    before: Published
    confirmed: IngestOutcome | None = None
    after: Published | None = None


def read_published(p: Pipeline) -> Published:
    def table(name: str) -> pd.DataFrame:
        df = pq.read_table(io.BytesIO(p.published(layout.latest_key(CC, name, "parquet"))))
        df = df.to_pandas()
        df["date"] = df["date"].astype(str)
        return df

    manifest = Manifest.from_json(json.loads(p.published(layout.manifest_key(CC))))
    return Published(table("sources"), table("consolide"), manifest)


@pytest.fixture(scope="module")
def run() -> Run:
    p = Pipeline(MemoryStore(), MemoryQueue(), Settings(publish_queue_url="q"),
                 datetime(2026, 11, 29, tzinfo=UTC))
    assert p.drop(f"{HOSP}/spf/{HOSP_FILE.name}", HOSP_FILE.read_bytes()).status == "accepted"
    hosp_version = p.publish(HOSP).version
    outcomes = {rel(path): p.drop(key, path.read_bytes()) for path, _, key in real_files()}
    assert p.publish(CC).created
    out = Run(p, outcomes, hosp_version, read_published(p))
    if outcomes[BROKEN].status == "held":
        out.confirmed = p.drop(f"{CC}/opencovid19-fr/chiffres-cles.confirm.csv",
                               (REAL / BROKEN).read_bytes())
        assert p.publish(CC).created
        out.after = read_published(p)
    return out


# ------------------------------------------------------------------ tests


def test_mapping__covers_every_real_chiffres_cles_file_once():
    on_disk = {rel(p) for p in (REAL / "opencovid19-fr").rglob("*")
               if p.name == "chiffres-cles.csv" or p.suffix in (".yaml", ".yml")}
    mapped = [rel(path) for path, _, _ in real_files()]
    assert sorted(mapped) == sorted(on_disk) and len(on_disk) == 18
    allowed = set(load_registry().get(CC).producers)
    assert {producer for _, producer, _ in real_files()} <= allowed


def test_invalid_yaml_bulletin__rejected_with_a_report_naming_the_line(pipeline):
    path = REAL / "opencovid19-fr" / "agences-regionales-sante" / "corse" / "2020-03-27.yaml"
    out = pipeline.drop(f"{CC}/ars-corse/{path.name}", path.read_bytes())
    assert out.status == "rejected"
    (error,) = out.report["tasks"][0]["errors"]
    assert error["type"] == "format-error"
    assert error["message"].startswith("the file is not valid YAML: line 25, column 1: found "
                                       "character '\\t' that cannot start any token")
    assert not pipeline.store.list(pipeline.settings.internal_bucket, layout.staging_prefix(CC))


@needs()
def test_yaml_bulletins__accepted_or_rejected_for_their_real_defects(run):
    yaml_files = {k: o for k, o in run.outcomes.items() if not k.endswith(".csv")}
    status = {k: o.status for k, o in yaml_files.items()}
    corse = "opencovid19-fr/agences-regionales-sante/corse/2020-03-27.yaml"
    assert status == {k: "rejected" if k == corse else "accepted" for k in yaml_files}
    assert len(status) == 14
    for key, o in yaml_files.items():
        if key != corse:
            stats = o.report["opendepot"]
            assert (stats["rows"], stats["rows_left_out"]) == (areas_in(REAL / key), 0), key
            assert o.report["tasks"][0]["errors"] == [], key
    assert "line 25, column 1" in yaml_files[corse].message


@needs("duplicate-row")
def test_consolidated_csv_versions__duplicates_and_bad_codes_left_out_within_budget(run):
    for key, o in run.outcomes.items():
        if not key.endswith(".csv"):
            continue
        df = dist_frame(REAL / key)
        duplicates, com_974 = dist_left_out(df)
        assert o.status in ("accepted", "held"), (key, o.message)
        assert o.report["opendepot"]["rows_left_out"] == duplicates + com_974
        errors = o.report["tasks"][0]["errors"]
        types = [e["type"] for e in errors if e["type"] != "snapshot-shrink"]
        assert types.count("duplicate-row") == duplicates
        bad_codes = [e for e in errors if e.get("fieldName") == "maille_code"]
        assert [e["cell"] for e in bad_codes] == ["COM-974"] * com_974
        assert len(types) == duplicates + com_974
        if key.startswith("opencovid19-fr/dist/2020-03-12"):
            assert (duplicates, com_974) == (0, 0)
        else:  # ARS Bretagne 2020-03-29: built from 2020-03-29.yaml and its "première version"
            assert (duplicates, com_974) == (5, 16)
            repeated = df[df.duplicated()]
            assert set(repeated.source_nom) == {"ARS Bretagne"}
            assert set(repeated.date) == {"2020-03-29"}
            lines = sorted(int(i) + 2 for i in repeated.index)  # header is line 1
            assert [e["rowNumber"] for e in errors if e["type"] == "duplicate-row"] == lines


@needs("duplicate-row", "producer-modes")
def test_broken_nightly_build__held_with_row_counts_then_published_on_confirm(run):
    held = run.outcomes[BROKEN]
    before = dist_rows(REAL / "opencovid19-fr/dist/2020-05-28_66f66c9/chiffres-cles.csv")
    now = dist_rows(REAL / BROKEN)
    assert (before, now) == (11840, 3355)  # 11,861 and 3,376 lines, 21 left out of each
    assert held.status == "held"
    first = held.report["tasks"][0]["errors"][0]
    assert first["type"] == "snapshot-shrink"
    assert f"this upload has {now} rows, 72% fewer than the {before} of the previous" in (
        first["message"])
    assert "chiffres-cles.confirm.csv" in first["message"]
    assert "more than the 20% the dataset allows, so it is held" in first["message"]
    assert held.report["opendepot"]["status"] == "held"
    # held: the previous snapshot stays published
    by_producer = run.before.sources.groupby("producer").size()
    assert by_producer["opencovid19-fr"] == before
    # confirmed: published, the rows it lost are gone from OpenCOVID19-fr's share
    assert run.confirmed is not None and run.confirmed.status == "accepted"
    assert run.after.sources.groupby("producer").size()["opencovid19-fr"] == now
    lost = set(run.before.sources.source_type) - set(run.after.sources.source_type)
    assert lost == {"sante-publique-france-data", "opencovid19-fr"}
    assert len(run.after.manifest.versions) == 2


@needs()
def test_by_source_table__keeps_every_source_row(run):
    expected: dict[str, int] = {}
    dist_current = None
    for path, producer, _ in real_files():
        o = run.outcomes[rel(path)]
        if o.status != "accepted":
            continue
        if path.suffix == ".csv":
            dist_current = path  # snapshot: the newest accepted nightly build
        else:
            expected[producer] = expected.get(producer, 0) + areas_in(path)
    expected["opencovid19-fr"] = dist_rows(dist_current)
    source = pd.read_csv(HOSP_FILE, sep=";", dtype={"dep": str})
    expected[FEED] = int((source.sexe == 0).sum())
    got = run.before.sources.groupby("producer").size().to_dict()
    assert got == expected
    assert len(run.before.sources) == sum(expected.values())
    assert run.before.manifest.rows["sources"] == sum(expected.values())


@needs()
@pytest.mark.parametrize(
    "state", ["before", pytest.param("after", marks=needs("duplicate-row", "producer-modes"))])
def test_consolidated_table__one_row_per_date_and_area_by_declared_priority(run, state):
    published = getattr(run, state)
    sources, consolide = published.sources, published.consolide
    key = ["date", "maille_code"]
    assert not consolide.duplicated(key).any()
    assert len(consolide) == len(sources.drop_duplicates(key))
    assert len(consolide) == published.manifest.rows["consolide"]
    rank = {s: i for i, s in enumerate(PRIORITY)}
    best = sources.assign(rank=sources.source_type.map(rank).fillna(len(PRIORITY)))
    best = best.groupby(key)["rank"].min()
    chosen = consolide.assign(rank=consolide.source_type.map(rank).fillna(len(PRIORITY)))
    assert (chosen.set_index(key)["rank"].sort_index() == best.sort_index()).all()
    # every consolidated row is one source row, whole (never merged)
    cols = [c for c in consolide.columns]
    merged = consolide.merge(sources[cols], on=cols, how="left", indicator=True)
    assert (merged["_merge"] == "both").all() and len(merged) == len(consolide)


@needs()
def test_ministry_ehpad_figure__in_by_source_table_and_wins_the_consolidated_row(run):
    doc = yaml.safe_load((REAL / "opencovid19-fr/ministere-sante/2020-04-15.yaml").read_bytes())
    figures = {"deces_ehpad": "decesEhpad", "cas_ehpad": "casEhpad",
               "cas_confirmes_ehpad": "casConfirmesEhpad",
               "cas_possibles_ehpad": "casPossiblesEhpad",
               "cas_confirmes": "casConfirmes", "deces": "deces", "reanimation": "reanimation"}
    want = {col: doc["donneesNationales"][k] for col, k in figures.items()}
    assert want["deces_ehpad"] == 6524
    s, c = run.before.sources, run.before.consolide
    rows = s[(s.date == "2020-04-15") & (s.maille_code == "FRA")]
    own = rows[rows.producer == "ministere-sante"]
    assert len(own) == 1
    assert own[list(want)].iloc[0].to_dict() == want
    assert own.iloc[0]["source_type"] == "ministere-sante" and own.iloc[0]["granularite"] == "pays"
    (winner,) = c[(c.date == "2020-04-15") & (c.maille_code == "FRA")].to_dict("records")
    assert winner["source_type"] == "ministere-sante"
    assert {k: winner[k] for k in want} == want
    may_28 = "opencovid19-fr/dist/2020-05-28_66f66c9/chiffres-cles.csv"
    if run.outcomes[may_28].status == "accepted":
        # OpenCOVID19-fr's own aggregate for that day is kept in the by-source table, and loses
        assert "opencovid19-fr" in set(rows.source_type)


@needs("duplicate-row", "priority-then")
def test_producer_own_row__wins_over_the_copy_relayed_by_opencovid19_fr(run):
    c = run.before.consolide
    (winner,) = c[(c.date == "2020-04-15") & (c.maille_code == "FRA")].to_dict("records")
    assert (winner["source_type"], winner["producer"]) == ("ministere-sante", "ministere-sante")
    relayed = run.before.sources
    relayed = relayed[(relayed.producer == "opencovid19-fr")
                      & (relayed.source_type == "ministere-sante")
                      & (relayed.date == "2020-04-15") & (relayed.maille_code == "FRA")]
    assert len(relayed) == 1  # the same figures, kept in the by-source table


@needs()
def test_hospital_feed__department_rows_match_the_hospital_file(run):
    source = pd.read_csv(HOSP_FILE, sep=";", dtype={"dep": str})
    source = source[source.sexe == 0]
    s, c = run.before.sources, run.before.consolide
    fed = s[s.producer == FEED]
    names = {"2A": "Corse-du-Sud", "971": "Guadeloupe", "75": "Paris"}
    for day in ["2020-03-24", "2020-11-01", "2021-03-16"]:
        for dep, name in names.items():
            (want,) = source[(source.dep == dep) & (source.jour == day)].to_dict("records")
            (got,) = fed[(fed.maille_code == f"DEP-{dep}") & (fed.date == day)].to_dict("records")
            assert (got["hospitalises"], got["reanimation"], got["gueris"], got["deces"]) == (
                want["hosp"], want["rea"], want["rad"], want["dc"])
            assert (got["granularite"], got["maille_nom"], got["source_type"]) == (
                "departement", name, FEED)
            assert got["upload_id"] == f"{HOSP}@{run.hosp_version}"
    # a department-day only the hospital file gives: its row is the consolidated one
    (row,) = c[(c.maille_code == "DEP-2A") & (c.date == "2021-03-16")].to_dict("records")
    assert row["producer"] == FEED and row["hospitalises"] == int(
        source[(source.dep == "2A") & (source.jour == "2021-03-16")].hosp.iloc[0])
    fed = run.before.manifest.uploads[-1]
    assert isinstance(fed, FedUpload)
    assert fed.upload_id == f"{HOSP}@{run.hosp_version}"
    assert (fed.feed.dataset, fed.feed.level, fed.producer) == (HOSP, "dep", FEED)
    assert fed.feed.path == layout.published_file_key(HOSP, run.hosp_version, "dep", "parquet")
    assert all(isinstance(u, UploadRecord) for u in run.before.manifest.uploads[:-1])


@needs()
def test_published_tables__by_source_and_consolidated_without_rollups(run):
    m = run.before.manifest
    assert set(m.rows) == {"sources", "consolide"}
    assert {r.name for r in m.resources} == {f"{CC}-sources", f"{CC}-consolide"}
    provenance = {"producer", "upload_id", "source_url", "source_nom"}
    assert provenance <= set(run.before.sources.columns)
    codes = set(run.before.sources.maille_code)
    assert {"FRA", "WORLD", "DEP-2A", "DEP-971", "REG-94", "COM-987", "COM-988"} <= codes


@needs()
def test_bad_area_codes_and_levels__rows_reported_by_pattern_and_enum(pipeline):
    body = ("date,granularite,maille_code,maille_nom,deces,source_nom,source_url\n"
            "2020-03-11,collectivite-outremer,COM-974,La Réunion,0,ARS La Réunion,\n"
            "2020-03-11,departement,DEP-20,Corse,1,x,\n"
            "2020-03-11,commune,DEP-2A,Corse-du-Sud,1,x,\n"
            "2020-03-11,departement,DEP-2B,Haute-Corse,1,x,\n").encode()
    out = pipeline.drop(f"{CC}/ars-corse/bad.csv", body)
    assert out.status == "rejected"
    errors = [(e["rowNumber"], e["fieldName"], e["cell"], e["note"])
              for e in out.report["tasks"][0]["errors"]]
    assert errors == [
        (4, "granularite", "commune", "constraint enum"),
        (2, "maille_code", "COM-974", "constraint pattern"),
        (3, "maille_code", "DEP-20", "constraint pattern"),
    ]


@needs()
def test_new_hospital_version__republishes_chiffres_cles(pipeline):
    assert feeds.dependents(load_registry(), HOSP) == [CC]

    def hospital(hosp: int) -> bytes:
        return ("dep;sexe;jour;hosp;rea;rad;dc\n" + "".join(
            f"{d};{s};2020-04-15;{hosp if s == 0 else 1};{t};{t};{t}\n"
            for d in ("2A", "2B") for s in (0, 1, 2)
            for t in [2 if s == 0 else 1])).encode()  # totals never below their parts

    pipeline.drop(f"{HOSP}/spf/v1.csv", hospital(10))
    first_hosp = pipeline.publish(HOSP).version
    bulletin = (REAL / "opencovid19-fr/ministere-sante/2020-04-15.yaml").read_bytes()
    assert pipeline.drop(f"{CC}/ministere-sante/2020-04-15.yaml", bulletin).status == "accepted"
    assert pipeline.publish(CC).created
    assert not pipeline.publish(CC).created  # nothing new: same uploads, same hospital version
    pipeline.drop(f"{HOSP}/spf/v2.csv", hospital(12))
    second_hosp = pipeline.publish(HOSP).version
    again = pipeline.publish(CC)
    assert again.created and f"{HOSP}@{second_hosp}" in again.upload_ids
    body = pipeline.published(layout.latest_key(CC, "sources", "parquet"))
    df = pq.read_table(io.BytesIO(body)).to_pandas()
    fed = df[df.producer == FEED].sort_values("maille_code")
    assert fed.maille_code.tolist() == ["DEP-2A", "DEP-2B"]
    assert fed.hospitalises.tolist() == [12, 12]
    assert set(fed.upload_id) == {f"{HOSP}@{second_hosp}"} != {f"{HOSP}@{first_hosp}"}
