"""The Santé publique France hospital family besides the stock file (daily flows, age classes,
weekly admissions by age, services reporting cases, regional ICU admissions, the 2022 national
rates, the national grouped series): every real file published in order through validate and
publish (in-memory store), each accepted or rejected for a real defect, and published values
checked against figures computed here with pandas from the source files and INSEE's own COG file.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from conftest import Pipeline
from opendepot.config import Settings
from opendepot.ingest import IngestOutcome
from opendepot.registry import load_cog, load_registry
from opendepot.storage import MemoryQueue, MemoryStore
from opendepot.validate import validate
from test_real_hospital import publication_order

ROOT = Path(__file__).resolve().parents[1]
NOUV = "donnees-hospitalieres-nouveaux-covid19"
AGE = "donnees-hospitalieres-classe-age-covid19"
HEBDO = "donnees-hospitalieres-classe-age-hebdo-covid19"
ETAB = "donnees-hospitalieres-etablissements-covid19"
ICU = "covid-hospit-incid-reg"
TXAD = "covid-hosp-txad"
GROUPEES = "donnees-hospitalieres-groupees-covid19"
STOCK = "donnees-hospitalieres-covid19"
FAMILY = (NOUV, AGE, HEBDO, ETAB, ICU, TXAD, GROUPEES)
AGE_MEASURES = ["hosp", "rea", "HospConv", "SSR_USLD", "autres", "rad", "dc"]
NEW_COLUMNS = ["HospConv", "SSR_USLD", "autres"]


# --- publishing the real files ----------------------------------------------------------------


def upload_name(path: Path) -> str:
    """The file name dropped: mirrors' fixed names get their dated folder as a prefix."""
    if re.search(r"\d{4}-\d{2}-\d{2}", path.name):
        return path.name
    return f"{path.parent.name}-{path.name}"


@dataclass
class Published:
    """One dataset after every real file was dropped and published in order."""

    name: str
    pipeline: Pipeline
    outcomes: dict[str, IngestOutcome]

    @property
    def manifest(self) -> dict:
        return json.loads(self.pipeline.published(f"{self.name}/manifest.json"))

    def table(self, level: str, version: int = 0) -> pd.DataFrame:
        """A published level as pandas (Parquet); ``version`` 0 = current, 1 = the one before..."""
        v = self.manifest["versions"][version]
        path = next(r["path"] for r in v["resources"]
                    if r["name"] == f"{self.name}-{level}" and r["format"] == "parquet")
        df = pq.read_table(io.BytesIO(self.pipeline.published(path))).to_pandas()
        if "jour" in df:
            df["jour"] = df["jour"].astype(str)
        return df

    def summary(self) -> dict[str, tuple[str, int, int, int]]:
        """file -> (status, rows read, warnings, rows left out)."""
        return {
            k: (o.status, o.report["opendepot"]["rows"], o.report["stats"]["warnings"],
                o.report["opendepot"]["rows_left_out"])
            for k, o in self.outcomes.items()
        }


@pytest.fixture(scope="module")
def family(real_dir) -> Callable[[str], Published]:
    """Publishes a dataset's real files on first use, once per module."""
    done: dict[str, Published] = {}

    def get(dataset: str) -> Published:
        if dataset not in done:
            p = Pipeline(MemoryStore(), MemoryQueue(), Settings(publish_queue_url="q"),
                         datetime(2026, 11, 29, tzinfo=UTC))
            outcomes = {}
            for path in publication_order(real_dir / dataset):
                name = upload_name(path)
                outcomes[name] = p.drop(f"{dataset}/spf/{name}", path.read_bytes())
                p.publish(dataset)
            done[dataset] = Published(dataset, p, outcomes)
        return done[dataset]

    return get


@pytest.fixture(scope="module")
def cog(real_dir) -> pd.DataFrame:
    """INSEE's own department -> region file (not the engine's reference)."""
    return pd.read_csv(real_dir / "cog-insee" / "departement2020.csv", dtype=str)[["dep", "reg"]]


def source(path: Path, measures: list[str], encoding: str = "utf-8") -> pd.DataFrame:
    """A real file read independently: text as written, measures numeric (NA -> NaN)."""
    df = pd.read_csv(path, sep=";", dtype=str, keep_default_na=False, encoding=encoding)
    for m in measures:
        if m in df:
            df[m] = pd.to_numeric(df[m].replace({"NA": None, "": None}))
    return df


def values(df: pd.DataFrame, measures: list[str], **where: str) -> list[list[float | None]]:
    """Measure values of the rows matching ``where`` (compared as text), NaN/None as None."""
    mask = pd.Series(True, index=df.index)
    for k, v in where.items():
        mask &= df[k].astype(str) == v
    rows = df[mask][measures].astype("float64")
    return [[None if pd.isna(x) else float(x) for x in r] for r in rows.to_numpy().tolist()]


def one(df: pd.DataFrame, measures: list[str], **where: str) -> list[float | None]:
    got = values(df, measures, **where)
    assert len(got) == 1, (where, got)
    return got[0]


# --- the demo's mapping of real files ---------------------------------------------------------


def test_real_sources_mapping__covers_every_family_file_once_with_an_allowed_producer(real_dir):
    entries = json.loads((ROOT / "infra" / "real_sources" / "hospital.json").read_text("utf-8"))
    registry = load_registry()
    matched: dict[Path, list[str]] = {}
    for e in entries:
        ds = registry.get(e["dataset"])
        assert ds is not None and e["producer"] in ds.producers, e
        files = sorted(real_dir.glob(e["glob"]))
        assert files, f"{e['glob']} matches no file"
        for f in files:
            matched.setdefault(f, []).append(e["dataset"])
            assert f.relative_to(real_dir).parts[0] == e["dataset"], (f, e)
    folders = (*FAMILY, STOCK)
    every = {f for d in folders for f in (real_dir / d).rglob("*") if f.is_file()}
    assert set(matched) == every
    assert all(len(v) == 1 for v in matched.values())


def test_published_schemas__carry_french_and_english_field_docs(family):
    for name in FAMILY:
        manifest = family(name).manifest
        for level, schema in manifest["schemas"].items():
            declared = {f.name for f in load_registry().get(name).fields}
            for f in schema["fields"]:
                if f["name"] in declared:
                    assert f["title"] and f["description"], (name, level, f["name"])
                    assert f["en"]["title"] and f["en"]["description"], (name, level, f["name"])


# --- what the registry refuses ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("dataset", "body", "expected"),
    [
        # a decimal where a count is expected is reported, never truncated
        (NOUV, b"dep;jour;incid_hosp;incid_rea;incid_dc;incid_rad\n01;2021-01-01;1.5;0;0;0\n",
         ("type-error", "incid_hosp", "1.5")),
        (ETAB, b"dep;jour;nb\n01;2021-01-01;2.0\n", ("type-error", "nb", "2.0")),
        # 20 is not a department (2A/2B); 999 is no code at all
        (NOUV, b"dep;jour;incid_hosp;incid_rea;incid_dc;incid_rad\n20;2021-01-01;1;0;0;0\n",
         ("foreign-key", "dep", "20")),
        (ETAB, b"dep;jour;nb\n999;2021-01-01;2\n", ("foreign-key", "dep", "999")),
        # SPF's own region codes (05, 07, 08 in its weekly test files) are not declared by the
        # hospital region files, which use none of them
        (AGE, b"reg;cl_age90;jour;hosp;rea;rad;dc\n05;0;2021-01-01;1;0;0;0\n",
         ("foreign-key", "reg", "05")),
        (ICU, b"jour;nomReg;numReg;incid_rea\n2021-01-01;X;7;1\n", ("foreign-key", "reg", "07")),
        (HEBDO, b"reg;Semaine;cl_age90;NewAdmHospit\n08;2021-S01;0;1\n",
         ("foreign-key", "reg", "08")),
        (TXAD, b"fra;strate2;jour;PourAvec;tx_indic_7J_DC;tx_indic_7J_hosp;tx_indic_7J_SC;"
               b"tx_prev_hosp;tx_prev_SC\nFR;0;2021-01-01;3;1;1;1;1;1\n",
         ("constraint-error", "PourAvec", "3")),
        (GROUPEES, b"jour;hosp;rea;rad;dc\n2021-13-01;1;1;1;1\n",
         ("type-error", "jour", "2021-13-01")),
    ],
)
def test_defective_cells__rejected_naming_line_column_and_value(dataset, body, expected):
    v = validate(body, load_registry().get(dataset), load_cog(), name="x.csv")
    assert not v.accepted
    assert [(e.type, e.row_number, e.field_name, e.cell) for e in v.errors.items] == [
        (expected[0], 2, expected[1], expected[2])]


# --- donnees-hospitalieres-nouveaux-covid19 ---------------------------------------------------

NOUV_MEASURES = ["incid_hosp", "incid_rea", "incid_dc", "incid_rad"]


def test_nouveaux_real_files__all_accepted_without_warnings(family):
    assert family(NOUV).summary() == {
        "2020-09-12_bbacd4b-donnees-hospitalieres-nouveaux-covid19-hospi.csv":
            ("accepted", 17978, 0, 0),
        "donnees-hospitalieres-nouveaux-covid19-2021-06-02-19h09.csv": ("accepted", 44541, 0, 0),
        "donnees-hospitalieres-nouveaux-covid19-2022-02-11-19h05.csv": ("accepted", 70890, 0, 0),
    }


def test_nouveaux_published_values__match_source_regions_from_insee_and_978_in_france_only(
    family, real_dir, cog
):
    pub = family(NOUV)
    src = source(real_dir / NOUV / "donnees-hospitalieres-nouveaux-covid19-2022-02-11-19h05.csv",
                 NOUV_MEASURES)
    dep, reg, fra = (pub.table(level) for level in ("dep", "reg", "fra"))
    assert len(dep) == len(src) == 70890
    days = ["2020-04-01", "2021-11-15", "2022-02-11"]
    for day in days:
        for code in ["2A", "2B", "971", "976", "978", "75"]:
            where = {"dep": code, "jour": day}
            assert one(dep, NOUV_MEASURES, **where) == one(src, NOUV_MEASURES, **where)
    merged = src.merge(cog, on="dep", how="left")
    assert set(merged[merged.reg.isna()].dep) == {"978"}  # Saint-Martin: no region
    assert "978" not in set(reg.reg) and len(set(reg.reg)) == 18
    for day in days:
        for region in ["94", "01", "04", "11"]:  # Corse, Guadeloupe, La Réunion, Île-de-France
            want = merged[(merged.reg == region) & (merged.jour == day)][NOUV_MEASURES].sum()
            assert one(reg, NOUV_MEASURES, reg=region, jour=day) == want.astype(float).tolist()
        everything = src[src.jour == day][NOUV_MEASURES].sum()  # 978 included
        assert one(fra, NOUV_MEASURES, fra="FR", jour=day) == everything.astype(float).tolist()
    # Corse, 2021-11-15, from the two departments written in the source
    corse = src[(src.jour == "2021-11-15") & src.dep.isin(["2A", "2B"])]["incid_hosp"].sum()
    assert one(reg, ["incid_hosp"], reg="94", jour="2021-11-15") == [float(corse)]


def test_nouveaux_na_measures__publish_null_and_blank_the_region_and_national_totals(
    family, real_dir
):
    pub = family(NOUV)
    src = source(real_dir / NOUV / "donnees-hospitalieres-nouveaux-covid19-2021-06-02-19h09.csv",
                 NOUV_MEASURES)
    # version 1 = the 2021-06-02 file (the 2022 file replaced it since)
    dep, reg, fra = (pub.table(level, version=1) for level in ("dep", "reg", "fra"))
    assert len(dep) == len(src) == 44541
    for day in ["2021-06-01", "2021-06-02"]:
        assert one(dep, NOUV_MEASURES, dep="48", jour=day) == [None] * 4  # Lozère: NA
        assert one(reg, NOUV_MEASURES, reg="76", jour=day) == [None] * 4  # Occitanie
        assert one(fra, NOUV_MEASURES, fra="FR", jour=day) == [None] * 4
    want = src[src.jour == "2021-05-31"][NOUV_MEASURES].sum().astype(float).tolist()
    assert one(fra, NOUV_MEASURES, fra="FR", jour="2021-05-31") == want


# --- donnees-hospitalieres-classe-age-covid19 -------------------------------------------------


def test_classe_age_real_files__accepted_nine_na_regions_left_out(family):
    pub = family(AGE)
    assert pub.summary() == {
        f"{AGE}-2020-11-07-19h00.csv": ("accepted", 46332, 538, 0),
        f"{AGE}-2020-11-14-19h00.csv": ("accepted", 47724, 618, 9),  # region "NA"
        f"{AGE}-2021-03-18-17h03.csv": ("accepted", 72468, 803, 0),
        f"{AGE}-2021-05-06-19h05.csv": ("accepted", 82170, 839, 0),
    }
    errors = pub.outcomes["donnees-hospitalieres-classe-age-covid19-2020-11-14-19h00.csv"].report[
        "tasks"][0]["errors"]
    assert [(e["type"], e["fieldName"], e["cell"]) for e in errors] == [
        ("constraint-error", "reg", "NA")] * 9
    assert {e["rowNumber"] for e in errors} == set(range(47323, 47332))


def test_classe_age_bare_9__published_as_09_with_padded_code_warnings(family, real_dir):
    pub = family(AGE)
    name = "donnees-hospitalieres-classe-age-covid19-2020-11-07-19h00.csv"
    src = source(real_dir / AGE / name, [])
    report = pub.outcomes[name].report
    # one warning for the 2,970 bare 9s, so the 519 decreases and 18 missing days stay visible
    assert report["tasks"][0]["stats"]["warningsByType"] == {
        "cumulative-decrease": 519, "missing-day": 18, "padded-code": 1}
    [padded] = [w for w in report["opendepot"]["warnings"] if w["type"] == "padded-code"]
    assert (padded["fieldName"], padded["cell"], padded["rowNumber"]) == ("cl_age90", "9", 3)
    assert "(2970 rows, first at line 3)" in padded["message"]
    published = pub.table("reg", version=3)  # the 2020-11-07 file
    assert "9" not in set(published.cl_age90)
    assert (published.cl_age90 == "09").sum() == src.cl_age90.isin(["9", "09"]).sum() == 4212


def test_classe_age_swapped_dc_rad_header__mapped_by_name(family, real_dir):
    pub = family(AGE)
    older, swapped = pub.table("reg", version=3), pub.table("reg", version=2)  # 11-07, 11-14
    src = source(real_dir / AGE / "donnees-hospitalieres-classe-age-covid19-2020-11-14-19h00.csv",
                 ["hosp", "rea", "dc", "rad"])
    assert list(src.columns[-2:]) == ["dc", "rad"]  # the swap, as written
    for region, day in [("11", "2020-10-01"), ("94", "2020-11-14"), ("01", "2020-11-14")]:
        assert one(swapped, ["rad", "dc"], reg=region, cl_age90="0", jour=day) == one(
            src, ["rad", "dc"], reg=region, cl_age90="0", jour=day)
    # SPF's 11-07 and 11-14 files agree on every common (reg, cl_age90, jour): read by position,
    # the 11-14 file would have dc and rad exchanged everywhere.
    both = older.merge(swapped, on=["reg", "cl_age90", "jour"], suffixes=("_a", "_b"))
    assert len(both) == 46332
    assert (both.rad_a == both.rad_b).all() and (both.dc_a == both.dc_b).all()
    assert (both.rad_b != both.dc_b).any()


def test_classe_age_2020_11_14_alone__publishes_ten_columns_with_the_new_ones_null(
    pipeline, real_dir
):
    path = real_dir / AGE / "donnees-hospitalieres-classe-age-covid19-2020-11-14-19h00.csv"
    assert pipeline.drop(f"{AGE}/spf/{path.name}", path.read_bytes()).status == "accepted"
    pipeline.publish(AGE)
    for level in ("reg", "fra"):
        table = pq.read_table(io.BytesIO(pipeline.published(f"{AGE}/latest/{AGE}-{level}.parquet")))
        assert table.column_names == [level, "cl_age90", "jour", *AGE_MEASURES]
        for c in NEW_COLUMNS:
            assert str(table.schema.field(c).type) == "int64"
            assert table[c].null_count == table.num_rows
    header = pipeline.published(f"{AGE}/latest/{AGE}-reg.csv").split(b"\n", 1)[0]
    labels = ["reg", "cl_age90", "jour", *AGE_MEASURES]
    assert header.decode().split(";") == [f'"{c}"' for c in labels]


def test_classe_age_2020_11_14_then_2021_03_18__newest_snapshot_in_the_same_schema(
    pipeline, real_dir
):
    tables = []
    for name in ["donnees-hospitalieres-classe-age-covid19-2020-11-14-19h00.csv",
                 "donnees-hospitalieres-classe-age-covid19-2021-03-18-17h03.csv"]:
        outcome = pipeline.drop(f"{AGE}/spf/{name}", (real_dir / AGE / name).read_bytes())
        assert outcome.status == "accepted"
        pipeline.publish(AGE)
        body = pipeline.published(f"{AGE}/latest/{AGE}-reg.parquet")
        tables.append(pq.read_table(io.BytesIO(body)))
    old, new = tables
    assert old.schema == new.schema
    newest = new.to_pandas()
    newest["jour"] = newest["jour"].astype(str)
    src = source(real_dir / AGE / "donnees-hospitalieres-classe-age-covid19-2021-03-18-17h03.csv",
                 AGE_MEASURES)
    assert len(newest) == len(src) == 72468  # snapshot: the newest upload is the whole history
    for region in ["94", "01", "11"]:
        assert one(newest, AGE_MEASURES, reg=region, cl_age90="0", jour="2021-03-18") == one(
            src, AGE_MEASURES, reg=region, cl_age90="0", jour="2021-03-18")
        # NA back-filled by SPF on the days before the split: null, never 0
        assert one(newest, NEW_COLUMNS, reg=region, cl_age90="0", jour="2020-11-14") == [None] * 3
    assert newest[newest.jour == "2021-03-18"][NEW_COLUMNS].notna().all().all()


def test_classe_age_published_values__match_source_and_national_sums(family, real_dir):
    pub = family(AGE)
    src = source(real_dir / AGE / "donnees-hospitalieres-classe-age-covid19-2021-05-06-19h05.csv",
                 AGE_MEASURES)
    reg, fra = pub.table("reg"), pub.table("fra")
    assert len(reg) == len(src) == 82170
    for day in ["2020-04-01", "2021-05-06"]:
        for region in ["94", "01", "06", "11"]:  # Corse, Guadeloupe, Mayotte, Île-de-France
            for age in ["0", "09", "90"]:
                assert one(reg, AGE_MEASURES, reg=region, cl_age90=age, jour=day) == one(
                    src, AGE_MEASURES, reg=region, cl_age90=age, jour=day)
        for age in ["0", "79"]:
            rows = src[(src.jour == day) & (src.cl_age90 == age)]
            want = [None if rows[m].isna().any() else float(rows[m].sum()) for m in AGE_MEASURES]
            assert one(fra, AGE_MEASURES, fra="FR", cl_age90=age, jour=day) == want
    assert one(fra, ["HospConv"], fra="FR", cl_age90="0", jour="2020-04-01") == [None]
    # the NA-region rows of the 2020-11-14 file are left out: France is the sum of the 18 regions
    older = source(real_dir / AGE / "donnees-hospitalieres-classe-age-covid19-2020-11-14-19h00.csv",
                   ["hosp", "rad"])
    placed = older[(older.jour == "2020-11-12") & (older.cl_age90 == "0") & (older.reg != "NA")]
    assert len(placed) == 18
    fra_1114 = pub.table("fra", version=2)
    assert one(fra_1114, ["hosp", "rad"], fra="FR", cl_age90="0", jour="2020-11-12") == (
        placed[["hosp", "rad"]].sum().astype(float).tolist())


# --- donnees-hospitalieres-classe-age-hebdo-covid19 -------------------------------------------


def test_hebdo_real_files__accepted_with_total_below_parts_warnings(family):
    pub = family(HEBDO)
    assert pub.summary() == {
        f"{HEBDO}-2021-09-09-19h05.csv": ("accepted", 15840, 10, 0),
        "covid-hosp-ad-age-2022-03-10-19h01.csv": ("accepted", 20988, 12, 0),
    }
    for o in pub.outcomes.values():
        assert {w["type"] for w in o.report["opendepot"]["warnings"]} == {"total-below-parts"}


def test_hebdo_published_values__iso_weeks_match_source_and_national_sums(family, real_dir):
    pub = family(HEBDO)
    src = source(real_dir / HEBDO / "covid-hosp-ad-age-2022-03-10-19h01.csv", ["NewAdmHospit"])
    reg, fra = pub.table("reg"), pub.table("fra")
    assert len(reg) == len(src) == 20988
    weeks = sorted(set(reg.Semaine))
    assert weeks[:2] == ["2020-W09", "2020-W10"] and "2020-W53" in weeks
    for week in ["2020-S09", "2020-S53", "2022-S09"]:
        label = week.replace("-S", "-W")
        for region in ["94", "03", "11"]:  # Corse, Guyane, Île-de-France
            for age in ["0", "09", "90"]:
                assert one(reg, ["NewAdmHospit"], reg=region, Semaine=label, cl_age90=age) == one(
                    src, ["NewAdmHospit"], reg=region, Semaine=week, cl_age90=age)
        rows = src[(src.Semaine == week) & (src.cl_age90 == "0")]
        assert one(fra, ["NewAdmHospit"], fra="FR", Semaine=label, cl_age90="0") == [
            float(rows.NewAdmHospit.sum())]


# --- donnees-hospitalieres-etablissements-covid19 ---------------------------------------------


def test_etablissements_real_files__accepted_with_cumulative_decrease_warnings(family):
    pub = family(ETAB)
    assert pub.summary() == {
        "2020-03-23_3f62f18-covid_hospit_etab.csv": ("accepted", 505, 6, 0),
        f"{ETAB}-2022-02-11-19h05.csv": ("accepted", 70992, 141, 0),
        "covid-hospit-etab-2022-03-11-19h00.csv": ("accepted", 73848, 146, 0),
    }
    for o in pub.outcomes.values():
        assert {w["type"] for w in o.report["opendepot"]["warnings"]} == {"cumulative-decrease"}


def test_etablissements_published_values__services_summed_by_region_and_for_france(
    family, real_dir, cog
):
    pub = family(ETAB)
    src = source(real_dir / ETAB / "covid-hospit-etab-2022-03-11-19h00.csv", ["nb"])
    dep, reg, fra = (pub.table(level) for level in ("dep", "reg", "fra"))
    assert len(dep) == len(src) == 73848
    merged = src.merge(cog, on="dep", how="left")
    assert set(merged[merged.reg.isna()].dep) == {"978"}
    for day in ["2020-03-18", "2021-01-15", "2022-03-11"]:
        for code in ["2A", "2B", "972", "978", "13"]:
            assert one(dep, ["nb"], dep=code, jour=day) == one(src, ["nb"], dep=code, jour=day)
        for region in ["94", "02", "93"]:  # Corse, Martinique, PACA
            want = merged[(merged.reg == region) & (merged.jour == day)].nb.sum()
            assert one(reg, ["nb"], reg=region, jour=day) == [float(want)]
        assert one(fra, ["nb"], fra="FR", jour=day) == [float(src[src.jour == day].nb.sum())]


# --- covid-hospit-incid-reg -------------------------------------------------------------------


def test_incid_reg_real_files__accepted_723_unplaced_rows_left_out_in_2022(family):
    pub = family(ICU)
    assert pub.summary() == {
        "covid-hospit-incid-reg-2021-05-06-19h05.csv": ("accepted", 7452, 5, 0),
        "covid-hospit-incid-reg-2022-03-11-19h00.csv": ("accepted", 13737, 5, 723),
    }
    report = pub.outcomes["covid-hospit-incid-reg-2022-03-11-19h00.csv"].report
    assert report["opendepot"]["encoding"] == "cp1252"
    assert report["opendepot"]["columns"] == {
        "jour": "jour", "libelle": "nomReg", "reg": "numReg", "incid_rea": "incid_rea"}
    assert {(e["type"], e["fieldName"], e["cell"]) for e in report["tasks"][0]["errors"]} == {
        ("constraint-error", "reg", "NA")}
    # region numbers 1..6 written without their zero: one warning per code, 723 rows each
    assert sorted((w["type"], w["cell"]) for w in report["opendepot"]["warnings"]) == [
        ("padded-code", c) for c in "12346"]


def test_incid_reg_published_values__renamed_latin1_file_matches_source(family, real_dir):
    pub = family(ICU)
    src = source(real_dir / ICU / "covid-hospit-incid-reg-2022-03-11-19h00.csv", ["incid_rea"],
                 encoding="latin-1")
    reg, fra = pub.table("reg"), pub.table("fra")
    assert list(reg.columns) == ["jour", "libelle", "reg", "incid_rea"]
    assert len(reg) == len(src) - 723 == 13014
    unplaced = src[src.numReg == "NA"]
    assert len(unplaced) == 723 and (unplaced.incid_rea == 0).all()
    for day in ["2020-03-19", "2021-12-31", "2022-03-11"]:
        for written, code in [("1", "01"), ("6", "06"), ("94", "94"), ("84", "84")]:
            want = src[(src.numReg == written) & (src.jour == day)]
            got = reg[(reg.reg == code) & (reg.jour == day)]
            assert got[["libelle", "incid_rea"]].values.tolist() == (
                want[["nomReg", "incid_rea"]].values.tolist())
        national = float(src[src.jour == day].incid_rea.sum())  # the NA rows are all 0
        assert one(fra, ["incid_rea"], fra="FR", jour=day) == [national]
    assert set(reg[reg.reg == "84"].libelle) == {"Auvergne-Rhône-Alpes"}
    csv = pub.pipeline.published(f"{ICU}/latest/{ICU}-reg.csv").decode("utf-8")  # UTF-8 out
    assert csv.startswith('"jour";"libelle";"reg";"incid_rea"\n')
    assert '2022-03-11;"Auvergne-Rhône-Alpes";"84";' in csv
    # the 2021 layout (jour;libelle;reg;incid_rea, UTF-8) publishes the same columns
    older = pub.table("reg", version=1)
    assert list(older.columns) == list(reg.columns)
    src21 = source(real_dir / ICU / "covid-hospit-incid-reg-2021-05-06-19h05.csv", ["incid_rea"])
    got = older[(older.reg == "01") & (older.jour == "2021-05-06")]
    want = src21[(src21.reg == "1") & (src21.jour == "2021-05-06")]
    cols = ["libelle", "incid_rea"]
    assert got[cols].values.tolist() == want[cols].values.tolist()


# --- covid-hosp-txad --------------------------------------------------------------------------

RATES = ["tx_indic_7J_DC", "tx_indic_7J_hosp", "tx_indic_7J_SC", "tx_prev_hosp", "tx_prev_SC"]


def test_txad_real_file__accepted_national_level_only(family):
    pub = family(TXAD)
    assert pub.summary() == {"covid-hosp-txad-fra-2022-03-11-19h00.csv": ("accepted", 2193, 0, 0)}
    assert pub.manifest["rows"] == {"fra": 2193}
    bucket = pub.pipeline.settings.published_bucket
    assert pub.pipeline.store.head(bucket, f"{TXAD}/latest/{TXAD}-reg.csv") is None


def test_txad_published_values__rates_exact_and_empty_as_null(family, real_dir):
    pub = family(TXAD)
    src = source(real_dir / TXAD / "covid-hosp-txad-fra-2022-03-11-19h00.csv", RATES)
    fra = pub.table("fra")
    assert len(fra) == len(src)
    for day in ["2020-03-07", "2021-06-01", "2022-03-07"]:
        for pour_avec in ["0", "1", "2"]:
            assert one(fra, RATES, fra="FR", strate2="0", jour=day, PourAvec=pour_avec) == one(
                src, RATES, fra="FR", strate2="0", jour=day, PourAvec=pour_avec)
    # full precision kept: FR;0;2022-03-07;0;1.27989281679899;8.71638297820033;...
    got = one(fra, RATES[:2], jour="2022-03-07", PourAvec="0")
    assert got == [1.27989281679899, 8.71638297820033]
    assert fra[fra.PourAvec != 0].tx_indic_7J_DC.isna().all()


# --- donnees-hospitalieres-groupees-covid19 ---------------------------------------------------

GROUPEES_MEASURES = ["hosp", "rea", "rad", "dc"]


def test_groupees_real_file__accepted_with_its_partial_last_day_flagged(family):
    pub = family(GROUPEES)
    name = "donnees-hospitalieres-groupees-covid19-2020-10-19-19h00.csv"
    assert pub.summary() == {name: ("accepted", 216, 4, 0)}
    warnings = pub.outcomes[name].report["opendepot"]["warnings"]
    # the last line (19/10/2020;9;3;467;30) is an incomplete day: both cumulative counts collapse
    assert [(w["type"], w["rowNumber"], w["fieldName"], w["cell"]) for w in warnings] == [
        ("cumulative-decrease", 164, "rad", "85733"), ("cumulative-decrease", 217, "rad", "467"),
        ("cumulative-decrease", 164, "dc", "20034"), ("cumulative-decrease", 217, "dc", "30")]


def test_groupees_published_values__dd_mm_yyyy_dates_published_iso(family, real_dir):
    pub = family(GROUPEES)
    src = source(real_dir / GROUPEES / f"{GROUPEES}-2020-10-19-19h00.csv", GROUPEES_MEASURES)
    fra = pub.table("fra")
    assert list(fra.columns) == ["jour", *GROUPEES_MEASURES] and len(fra) == len(src) == 216
    for written in ["18/03/2020", "01/06/2020", "18/10/2020"]:
        iso = datetime.strptime(written, "%d/%m/%Y").date().isoformat()
        assert one(fra, GROUPEES_MEASURES, jour=iso) == one(src, GROUPEES_MEASURES, jour=written)
    # independent figure: the department stock file of 2020-11-07 sums to the same on 2020-03-18
    stock = source(real_dir / STOCK / f"{STOCK}-2020-11-07-19h00.csv", GROUPEES_MEASURES)
    day = stock[(stock.jour == "2020-03-18") & (stock.sexe == "0")]
    want = day[GROUPEES_MEASURES].sum().astype(float).tolist()
    assert one(fra, GROUPEES_MEASURES, jour="2020-03-18") == want == [2972, 771, 816, 218]
