"""SI-DEP test files, the June 2020 follow-up indicators, the department colour map and the mask
series: every real file published in order through validate and publish (in-memory store), and
the published values checked against figures computed here, independently, from the source
files with pandas (and INSEE's own COG file for region sums). Case C07 of CASES.md as well."""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import Pipeline
from opendepot.config import Settings
from opendepot.ingest import IngestOutcome
from opendepot.registry import load_registry
from opendepot.storage import MemoryQueue, MemoryStore
from test_real_hospital import publication_order

ROOT = Path(__file__).resolve().parents[1]
POS_DEP = "sp-pos-quot-dep"
POS_FRA = "sp-pos-quot-fra"
HEB_REG = "sp-pe-tb-heb-reg"
IND_DEP = "indicateurs-suivi-epidemie-covid-dep"
IND_FRA = "indicateurs-suivi-epidemie-covid-france"
CARTE = "carte-synthese-tricolore-covid19"
MASKS = "production-masques"
OURS = (POS_DEP, POS_FRA, HEB_REG, IND_DEP, IND_FRA, CARTE, MASKS)
INDICATORS = "indicateurs-suivi-epidemie"
COG_REGIONS = {"01", "02", "03", "04", "06", "11", "24", "27", "28", "32", "44", "52", "53",
               "75", "76", "84", "93", "94"}


# ------------------------------------------------------------------------------ helpers


@dataclass
class Run:
    """Files dropped one by one, each followed by a publication."""

    pipeline: Pipeline
    dataset: str
    outcomes: dict[str, IngestOutcome] = field(default_factory=dict)
    after: list[dict[str, pd.DataFrame]] = field(default_factory=list)
    """Published tables (every level, CSV read as text) after each file's publication."""

    def status(self) -> dict[str, tuple[str, int, int, int]]:
        """File -> (status, rows read, warnings, rows left out)."""
        return {
            name: (o.status, o.report["opendepot"]["rows"], o.report["stats"]["warnings"],
                   o.report["opendepot"]["rows_left_out"])
            for name, o in self.outcomes.items()
        }

    def warnings(self, name: str) -> list[dict]:
        return self.outcomes[name].report["opendepot"]["warnings"]

    def latest(self, level: str, fmt: str = "csv") -> pd.DataFrame:
        body = self.pipeline.published(f"{self.dataset}/latest/{self.dataset}-{level}.{fmt}")
        if fmt == "parquet":
            return pq.read_table(io.BytesIO(body)).to_pandas()
        return pd.read_csv(io.BytesIO(body), sep=";", dtype=str, keep_default_na=False)

    def manifest(self) -> dict:
        return json.loads(self.pipeline.published(f"{self.dataset}/manifest.json"))


def _pipeline() -> Pipeline:
    settings = Settings(publish_queue_url="memory://publish.fifo")
    start = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
    return Pipeline(MemoryStore(), MemoryQueue(), settings, start)


def _name(path: Path) -> str:
    """Upload name: the mirrors keep one fixed file name, so the folder tells the versions apart."""
    versioned = re.match(r"\d{4}-\d{2}-\d{2}_", path.parent.name)
    return f"{path.parent.name}-{path.name}" if versioned else path.name


def _run(dataset: str, producer: str, paths: list[Path]) -> Run:
    assert paths, f"no real file for {dataset}"
    run = Run(_pipeline(), dataset)
    for path in paths:
        name = _name(path)
        run.outcomes[name] = run.pipeline.drop(f"{dataset}/{producer}/{name}", path.read_bytes())
        run.pipeline.publish(dataset)
        levels = run.manifest()["rows"] if run.outcomes[name].status == "accepted" else {}
        run.after.append({level: run.latest(level) for level in levels})
    return run


def _source(path: Path, sep: str = ";", encoding: str = "utf-8") -> pd.DataFrame:
    """A source file as text, missing values kept as written."""
    return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding=encoding)


def _num(series: pd.Series) -> pd.Series:
    """Text to float, ``NA`` and empty to NaN."""
    return pd.to_numeric(series.replace({"NA": ""}), errors="raise")


def _iso_week(label: str) -> str:
    """``2020-S9`` / ``2020-S21`` / ``Semaine 10`` (year 2020) -> ``2020-W09``, computed here."""
    m = re.fullmatch(r"(\d{4})-S(\d{1,2})", label) or re.fullmatch(r"()Semaine (\d{1,2})", label)
    assert m, label
    return f"{m.group(1) or '2020'}-W{int(m.group(2)):02d}"


def _cog(real_dir: Path) -> pd.DataFrame:
    return _source(real_dir / "cog-insee" / "departement2020.csv", sep=",")[["dep", "reg"]]


def _one(df: pd.DataFrame, **where: str) -> pd.Series:
    mask = pd.Series(True, index=df.index)
    for k, v in where.items():
        mask &= df[k] == v
    assert mask.sum() == 1, (where, int(mask.sum()))
    return df[mask].iloc[0]


def _sorted(df: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    return df.sort_values(key, kind="stable").reset_index(drop=True)


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def pos_dep(real_dir) -> Run:
    return _run(POS_DEP, "spf", publication_order(real_dir / POS_DEP))


@pytest.fixture(scope="module")
def pos_fra(real_dir) -> Run:
    return _run(POS_FRA, "spf", publication_order(real_dir / POS_FRA))


@pytest.fixture(scope="module")
def heb_reg(real_dir) -> Run:
    return _run(HEB_REG, "spf", publication_order(real_dir / HEB_REG))


def _indicator_files(real_dir: Path, file_name: str) -> list[Path]:
    return [p for p in publication_order(real_dir / INDICATORS) if p.name == file_name]


@pytest.fixture(scope="module")
def ind_dep(real_dir) -> Run:
    return _run(IND_DEP, "spf", _indicator_files(real_dir, "table_indicateurs_open_data_dep.csv"))


@pytest.fixture(scope="module")
def ind_fra(real_dir) -> Run:
    files = _indicator_files(real_dir, "table_indicateurs_open_data_france.csv")
    return _run(IND_FRA, "spf", files)


@pytest.fixture(scope="module")
def carte(real_dir) -> Run:
    return _run(CARTE, "spf", _indicator_files(real_dir, "donnees_carte_synthese_tricolore.csv"))


@pytest.fixture(scope="module")
def masks(real_dir) -> Run:
    files = [p for p in publication_order(real_dir / "opencovid19-fr" / "dist")
             if p.name == "production-masques.csv"]
    return _run(MASKS, "opencovid19-fr", files)


# ------------------------------------------------------------------------------ registry


def test_registered_descriptors__every_field_titled_and_described_in_french_and_english():
    registry = load_registry()
    for name in OURS:
        ds = registry.get(name)
        assert ds is not None, name
        assert ds.en["title"] and ds.en["description"], name
        for f in ds.schema["fields"]:
            assert f["title"] and f["description"], (name, f["name"])
            assert f["en"]["title"] and f["en"]["description"], (name, f["name"])
        for code, meaning in ds.geography.extra_codes.items():
            assert meaning["name"] and meaning["source"], (name, code)
        assert set(ds.measures.values()) <= {"stock", "cumulative", "incidence", "rate"}, name
    assert registry.get(POS_DEP).levels == ("dep", "reg", "fra")
    assert registry.get(HEB_REG).levels == ("reg", "fra")
    assert {registry.get(n).levels for n in (POS_FRA, IND_FRA, MASKS)} == {("fra",)}
    assert {registry.get(n).levels for n in (IND_DEP, CARTE)} == {("dep",)}


def test_real_sources_list__covers_every_real_file_of_these_datasets(real_dir):
    listing = ROOT / "infra" / "real_sources" / "tests_indicators.json"
    entries = json.loads(listing.read_text("utf-8"))
    matched: dict[Path, tuple[str, str]] = {}
    for e in entries:
        hits = sorted(real_dir.glob(e["glob"]))
        assert hits, e
        for h in hits:
            assert h not in matched, h
            matched[h] = (e["dataset"], e["producer"])
    indicator_files = [p for p in (real_dir / INDICATORS).rglob("*.csv")]
    expected = {
        *[(p, (POS_DEP, "spf")) for p in (real_dir / POS_DEP).rglob("*.csv")],
        *[(p, (POS_FRA, "spf")) for p in (real_dir / POS_FRA).rglob("*.csv")],
        *[(p, (HEB_REG, "spf")) for p in (real_dir / HEB_REG).rglob("*.csv")],
        *[(p, ({"table_indicateurs_open_data_dep.csv": IND_DEP,
                "table_indicateurs_open_data_france.csv": IND_FRA,
                "donnees_carte_synthese_tricolore.csv": CARTE}[p.name], "spf"))
          for p in indicator_files],
        *[(p, (MASKS, "opencovid19-fr"))
          for p in (real_dir / "opencovid19-fr" / "dist").rglob("production-masques.csv")],
    }
    assert set(matched.items()) == expected
    assert len(matched) == 12


# ------------------------------------------------------------------------------ sp-pos-quot-dep


def test_sp_pos_quot_dep_real_file__accepted_without_warnings(pos_dep):
    assert pos_dep.status() == {
        "2020-09-06_e948df2-sp-pos-quot-dep.csv": ("accepted", 130416, 0, 0)}


def test_sp_pos_quot_dep_published__matches_source_and_independent_cog_sums(pos_dep, real_dir):
    src = _source(publication_order(real_dir / POS_DEP)[0])
    key = ["dep", "jour", "cl_age90"]
    dep = pos_dep.latest("dep")
    assert list(dep.columns) == ["dep", "jour", "P", "T", "cl_age90", "pop"]
    assert (dep["pop"] == "").all()  # no pop column before December 2020: null, never 0
    assert _sorted(dep[key + ["P", "T"]], key).equals(_sorted(src[key + ["P", "T"]], key))
    assert {"2A", "2B", "971", "975", "977", "978"} <= set(dep.dep)
    for code, cls in [("2A", "0"), ("2B", "90"), ("971", "0"), ("975", "0"), ("75", "09")]:
        want = _one(src, dep=code, jour="2020-07-01", cl_age90=cls)
        got = _one(dep, dep=code, jour="2020-07-01", cl_age90=cls)
        assert (got.P, got["T"]) == (want.P, want["T"])

    counts = src.assign(P=src.P.astype(int), T=src["T"].astype(int))
    by_reg = counts.merge(_cog(real_dir), on="dep", how="inner")  # 975/977/978: no region
    reg = pos_dep.latest("reg")
    assert set(reg.reg) == COG_REGIONS
    for day in ["2020-05-13", "2020-07-01", "2020-09-03"]:
        for region in ["94", "01", "11"]:  # Corse (2A + 2B), Guadeloupe (971 only), Île-de-France
            for cls in ["0", "90"]:
                part = by_reg[(by_reg.reg == region) & (by_reg.jour == day)
                              & (by_reg.cl_age90 == cls)]
                got = _one(reg, reg=region, jour=day, cl_age90=cls)
                assert (int(got.P), int(got["T"])) == (part.P.sum(), part["T"].sum())
    corse = _one(reg, reg="94", jour="2020-09-03", cl_age90="0")
    island = counts[counts.dep.isin(["2A", "2B"]) & (counts.jour == "2020-09-03")
                    & (counts.cl_age90 == "0")]
    assert int(corse["T"]) == island["T"].sum()

    fra = pos_dep.latest("fra")
    national = counts.groupby(["jour", "cl_age90"], as_index=False)[["P", "T"]].sum()
    got = fra.assign(P=fra.P.astype(int), T=fra["T"].astype(int))[["jour", "cl_age90", "P", "T"]]
    assert _sorted(got, ["jour", "cl_age90"]).equals(_sorted(national, ["jour", "cl_age90"]))
    assert (fra.fra == "FR").all() and len(fra) == 114 * 11
    # the collectivities are in the national figure, once
    overseas = counts[counts.dep.isin(["975", "977", "978"]) & (counts.jour == "2020-09-03")
                      & (counts.cl_age90 == "0")]["T"].sum()
    in_regions = by_reg[(by_reg.jour == "2020-09-03") & (by_reg.cl_age90 == "0")]["T"].sum()
    assert int(_one(fra, jour="2020-09-03", cl_age90="0")["T"]) == in_regions + overseas

    served = {f["name"]: f for f in pos_dep.manifest()["schema"]["fields"]}
    assert served["cl_age90"]["en"]["title"] == "Age class"
    assert served["P"]["title"] == "Tests positifs"
    parquet = pq.read_table(io.BytesIO(pos_dep.pipeline.published(
        f"{POS_DEP}/latest/{POS_DEP}-dep.parquet")))
    assert parquet.schema.field("dep").type == pa.string()
    assert parquet.schema.field("cl_age90").type == pa.string()
    assert parquet.schema.field("jour").type == pa.date32()
    assert parquet.schema.field("P").type == pa.int64()
    assert parquet.schema.field("pop").type == pa.float64()
    assert parquet.column("pop").null_count == parquet.num_rows


def test_c07_overseas_collectivities__in_no_region_and_counted_once_nationally(cases_dir, pipeline):
    body = (cases_dir / "C07-overseas-com.csv").read_bytes()
    out = pipeline.drop(f"{POS_DEP}/spf/C07-overseas-com.csv", body)
    stats = out.report["stats"]
    assert (out.status, stats["errors"], stats["warnings"]) == ("accepted", 0, 0)
    pipeline.publish(POS_DEP)
    run = Run(pipeline, POS_DEP)
    dep, reg, fra = run.latest("dep"), run.latest("reg"), run.latest("fra")
    assert dep.dep.tolist() == ["971", "972", "975", "977", "978"]  # 5 rows in, 5 rows out
    assert reg[["reg", "P", "T"]].values.tolist() == [["01", "12", "300"], ["02", "8", "250"]]
    assert fra[["fra", "P", "T"]].values.tolist() == [["FR", "24", "634"]]
    assert run.latest("dep", "parquet").dep.tolist() == ["971", "972", "975", "977", "978"]


def test_decimal_test_count__reported_as_type_error_never_truncated(cases_dir, pipeline):
    body = (cases_dir / "C07-overseas-com.csv").read_bytes()
    body = body.replace(b"971;2021-03-01;12;", b"971;2021-03-01;12.5;")
    out = pipeline.drop(f"{POS_DEP}/spf/C07-decimal.csv", body)
    assert out.status == "rejected"
    errors = out.report["tasks"][0]["errors"]
    assert [(e["type"], e["rowNumber"], e["fieldName"], e["cell"]) for e in errors] == [
        ("type-error", 2, "P", "12.5")]


def test_region_code_outside_cog__rejected_unless_declared(pipeline):
    header = b"reg;week;P_f;P_h;P;pop_f;pop_h;cl_age90;pop\n"
    declared = header + b"05;2020-S21;0;0;0;2935.5;3061.4;0;5997\n"
    unknown = header + b"09;2020-S21;0;0;0;2935.5;3061.4;0;5997\n"
    assert pipeline.drop(f"{HEB_REG}/spf/declared.csv", declared).status == "accepted"
    out = pipeline.drop(f"{HEB_REG}/spf/unknown.csv", unknown)
    assert out.status == "rejected"
    assert [(e["type"], e["rowNumber"], e["cell"]) for e in out.report["tasks"][0]["errors"]] == [
        ("foreign-key", 2, "09")]


# ------------------------------------------------------------------------------ sp-pos-quot-fra


def test_sp_pos_quot_fra_four_layouts__accepted_pop_mapped_by_name(pos_fra, real_dir):
    assert pos_fra.status() == {
        "2020-09-07_5c325db-sp-pos-quot-france.csv": ("accepted", 1254, 0, 0),
        # SPF gave the whole population (67114995) on every age-class row: the all-ages row is
        # then smaller than the sum of its classes, one warning per day (207 days)
        "2020-12-08_ed0df79-sp-pos-quot-france.csv": ("accepted", 2277, 207, 0),
        # pop before cl_age90, CRLF, decimal pop, empty pop on the all-ages rows
        "2020-12-22_fac3fba-sp-pos-quot-france.csv": ("accepted", 2431, 0, 0),
        "2022-03-21_194f6d9-sp-pos-quot-france.csv": ("accepted", 7425, 0, 0),
    }
    warnings = pos_fra.warnings("2020-12-08_ed0df79-sp-pos-quot-france.csv")
    assert {(w["type"], w["fieldName"], w["cell"]) for w in warnings} == {
        ("total-below-parts", "pop", "67114995")}
    src = _source([p for p in publication_order(real_dir / POS_FRA) if "2020-12-08" in str(p)][0])
    assert len(warnings) == src.jour.nunique() == 207
    anomaly = pos_fra.outcomes["2020-12-22_fac3fba-sp-pos-quot-france.csv"]
    crlf = anomaly.report["opendepot"]["line_ends"]
    assert crlf["crlf"] == 2432 and crlf["lf"] == 0


def test_sp_pos_quot_fra_each_publication__matches_its_source_file(pos_fra, real_dir):
    key = ["jour", "cl_age90"]
    counts = ["P_f", "P_h", "P", "T_f", "T_h", "T"]
    for path, published in zip(publication_order(real_dir / POS_FRA), pos_fra.after, strict=True):
        src = _source(path)
        got = published["fra"]
        assert list(got.columns) == ["fra", "jour", *counts, "cl_age90", "pop"]
        assert (got.fra == "FR").all()
        want = _sorted(src, key)
        got = _sorted(got, key)
        assert got[key + counts].equals(want[key + counts]), path
        want_pop = _num(want["pop"]) if "pop" in want else pd.Series([float("nan")] * len(want))
        pd.testing.assert_series_equal(_num(got["pop"]), want_pop, check_names=False)
    first, _, anomaly, last = pos_fra.after
    assert (first["fra"]["pop"] == "").all()
    row = _one(anomaly["fra"], jour="2020-05-13", cl_age90="09")
    assert float(row["pop"]) == 7763205.6862729  # decimal kept, not truncated
    assert _one(anomaly["fra"], jour="2020-05-13", cl_age90="0")["pop"] == ""
    # past days revised between publications: the newest file wins
    assert _one(first["fra"], jour="2020-05-13", cl_age90="09")["T"] == "1276"
    assert _one(last["fra"], jour="2020-05-13", cl_age90="09")["T"] == "1282"
    assert len(pos_fra.manifest()["versions"]) == 4
    assert pos_fra.manifest()["rows"] == {"fra": 7425}


def test_sp_pos_quot_fra_old_file_resent_after_newer__held_until_confirmed(pipeline, real_dir):
    september, *_, march_2022 = publication_order(real_dir / POS_FRA)
    newer = pipeline.drop(f"{POS_FRA}/spf/2022-03-21.csv", march_2022.read_bytes())
    assert newer.status == "accepted"
    held = pipeline.drop(f"{POS_FRA}/spf/2020-09-07.csv", september.read_bytes())
    assert held.status == "held" and "7425" in held.message and "1254" in held.message
    confirmed = pipeline.drop(f"{POS_FRA}/spf/2020-09-07.confirm.csv", september.read_bytes())
    assert confirmed.status == "accepted"


# ------------------------------------------------------------------------------ sp-pe-tb-heb-reg


def test_sp_pe_tb_heb_reg_real_file__accepted_without_false_rounding_warnings(heb_reg, real_dir):
    name = "sp-pe-tb-heb-reg-2021-05-04-19h05.csv"
    # 147 all-ages rows have decimal populations whose classes sum to the total only up to
    # 1e-11 (float rounding): compared with a tolerance, they are not reported as defects.
    assert heb_reg.status() == {name: ("accepted", 11319, 0, 0)}
    src = _source(publication_order(real_dir / HEB_REG)[0])
    total = src[src.cl_age90 == "0"].set_index(["reg", "week"])["pop"].map(float)
    parts = src[src.cl_age90 != "0"].assign(pop=lambda d: d["pop"].map(float)).groupby(
        ["reg", "week"])["pop"].sum()
    gap = (parts - total).dropna()
    assert int((gap > 0).sum()) > 0 and float(gap.max()) < 1e-6  # the noise is real, and tiny


def test_sp_pe_tb_heb_reg_published__spf_overseas_codes_kept_and_summed_nationally(
    heb_reg, real_dir
):
    src = _source(publication_order(real_dir / HEB_REG)[0])
    src["week"] = src.week.map(_iso_week)
    key = ["reg", "week", "cl_age90"]
    reg = heb_reg.latest("reg")
    assert list(reg.columns) == [
        "reg", "week", "P_f", "P_h", "P", "pop_f", "pop_h", "cl_age90", "pop"]
    want, got = _sorted(src, key), _sorted(reg, key)
    assert got[key + ["P_f", "P_h", "P"]].equals(want[key + ["P_f", "P_h", "P"]])
    for m in ["pop_f", "pop_h", "pop"]:  # decimals kept exactly
        pd.testing.assert_series_equal(_num(got[m]), _num(want[m]))
    assert set(reg.reg) == COG_REGIONS | {"05", "07", "08"}
    assert reg.week.min() == "2020-W21" and reg.week.max() == "2021-W16"
    spm = _one(reg, reg="05", week="2020-W21", cl_age90="0")
    assert float(spm["pop"]) == 5997 and float(spm.pop_h) == 2935.56979942041
    corse = _one(reg, reg="94", week="2021-W16", cl_age90="0")
    assert corse.P == _one(src, reg="94", week="2021-W16", cl_age90="0").P

    fra = heb_reg.latest("fra")
    assert len(fra) == 49 * 11 and (fra.fra == "FR").all()
    for week in ["2020-W21", "2020-W53", "2021-W16"]:
        for cls in ["0", "90"]:
            rows = src[(src.week == week) & (src.cl_age90 == cls)]
            assert len(rows) == 21  # 18 INSEE regions + SPF's 05, 07, 08
            got = _one(fra, week=week, cl_age90=cls)
            for m in ["P_f", "P_h", "P"]:
                assert int(got[m]) == rows[m].astype(int).sum()
            for m in ["pop_f", "pop_h", "pop"]:
                assert float(got[m]) == pytest.approx(_num(rows[m]).sum(), rel=1e-12)


# ------------------------------------------------------------------------------ indicators


def test_indicateurs_dep_latin1_comma_file__accepted_with_region_codes_padded(ind_dep):
    name = "2020-06-16_c5b4a5d-table_indicateurs_open_data_dep.csv"
    assert ind_dep.status() == {name: ("accepted", 101, 5, 0)}
    report = ind_dep.outcomes[name].report["opendepot"]
    assert (report["encoding"], report["delimiter"]) == ("cp1252", ",")
    assert sorted((w["type"], w["fieldName"], w["cell"]) for w in ind_dep.warnings(name)) == [
        ("padded-code", "reg", c) for c in ["1", "2", "3", "4", "6"]]


def test_indicateurs_dep_published__match_source_rates_not_rolled_up(ind_dep, real_dir):
    src = _source(_indicator_files(real_dir, "table_indicateurs_open_data_dep.csv")[0], sep=",",
                  encoding="cp1252")
    assert ind_dep.manifest()["rows"] == {"dep": 101}  # rates: no region or national table
    dep = ind_dep.latest("dep")
    assert dep.columns[:2].tolist() == ["dep", "reg"]
    rates = ["tx_incid", "R", "taux_occupation_sae", "tx_pos"]
    colours = [f"{r}_couleur" for r in rates]
    for code in ["2A", "2B", "971", "976", "75", "69"]:
        want, got = _one(src, departement=code), _one(dep, dep=code)
        assert got.reg == want.region.zfill(2)
        # cells are trimmed: SPF wrote 'Guadeloupe ' with a trailing space
        assert got.libelle_reg == want.libelle_reg.strip()
        assert got.libelle_dep == want.libelle_dep.strip()
        for r in rates:
            w = want[r]
            assert (got[r] == "") if w == "NA" else (float(got[r]) == float(w)), (code, r)
        assert [got[c] for c in colours + ["nb_orange", "nb_rouge"]] == [
            want[c] for c in colours + ["nb_orange", "nb_rouge"]]
    assert _one(dep, dep="69").libelle_dep == "Rhône"  # Latin-1 decoded
    guadeloupe = _one(dep, dep="971")
    assert (guadeloupe.reg, guadeloupe.R, guadeloupe.R_couleur) == ("01", "", "")
    assert float(_one(dep, dep="976").taux_occupation_sae) == 166.7  # above 100: kept
    assert (dep.R == "").sum() == (src.R == "NA").sum() == 3


def test_indicateurs_france_na_series__accepted_na_published_empty(ind_fra, real_dir):
    name = "2020-06-16_c5b4a5d-table_indicateurs_open_data_france.csv"
    assert ind_fra.status() == {name: ("accepted", 82, 0, 0)}
    src = _source(_indicator_files(real_dir, "table_indicateurs_open_data_france.csv")[0], sep=",")
    assert ind_fra.manifest()["rows"] == {"fra": 82}
    fra = _sorted(ind_fra.latest("fra"), ["extract_date"])
    want = _sorted(src, ["extract_date"])
    assert fra.extract_date.equals(want.extract_date)
    for r in ["tx_incid", "R", "taux_occupation_sae", "tx_pos"]:
        pd.testing.assert_series_equal(_num(fra[r]), _num(want[r]))
        assert (fra[r] == "").sum() == (want[r] == "NA").sum()
    first = _one(fra, extract_date="2020-03-15")
    assert (first.tx_incid, float(first.R)) == ("", 2.78068539714123)
    assert float(_one(fra, extract_date="2020-06-04").taux_occupation_sae) == 22.4


def test_carte_tricolore_two_publications__latest_snapshot_keeps_full_history(carte, real_dir):
    assert carte.status() == {
        "2020-04-30_83db6b7-donnees_carte_synthese_tricolore.csv": ("accepted", 101, 0, 0),
        "2020-05-02_58faf25-donnees_carte_synthese_tricolore.csv": ("accepted", 303, 0, 0),
    }
    files = _indicator_files(real_dir, "donnees_carte_synthese_tricolore.csv")
    first_src, second_src = (_source(p) for p in files)
    key = ["dep", "extract_date"]
    for src, published in zip([first_src, second_src], carte.after, strict=True):
        want = _sorted(src.rename(columns={"departement": "dep"}), key)
        got = _sorted(published["dep"], key)
        assert got[["extract_date", "dep", "indic_synthese"]].equals(
            want[["extract_date", "dep", "indic_synthese"]])
    # the second publication repeats the first one's day unchanged, plus two days: a snapshot
    latest = carte.latest("dep")
    assert len(latest) == 303
    assert sorted(latest.extract_date.unique()) == ["2020-04-30", "2020-05-01", "2020-05-02"]
    for code in ["2A", "2B", "971", "976"]:
        for day in ["2020-04-30", "2020-05-02"]:
            assert _one(latest, dep=code, extract_date=day).indic_synthese == _one(
                second_src, departement=code, extract_date=day).indic_synthese
        assert _one(latest, dep=code, extract_date="2020-04-30").indic_synthese == _one(
            first_src, departement=code).indic_synthese
    assert carte.manifest()["rows"] == {"dep": 303}


# ------------------------------------------------------------------------------ production-masques


def test_production_masques_two_week_spellings__publish_identical_files(masks, real_dir):
    names = list(masks.outcomes)
    assert masks.status() == {n: ("accepted", 12, 0, 0) for n in names} and len(names) == 2
    first, second = masks.after
    assert first["fra"].equals(second["fra"])  # 2020-S10 and Semaine 10 are the same week
    src = _source([p for p in publication_order(real_dir / "opencovid19-fr" / "dist")
                   if p.name == "production-masques.csv"][0], sep=",")
    src["date"] = src.date.map(_iso_week)
    got, want = first["fra"], _sorted(src, ["date"])
    assert got.date.tolist() == [f"2020-W{w:02d}" for w in range(9, 21)]  # S9 sorts first
    for m in ["chirurgicaux_fr", "ffp2_fr", "chirurgicaux_chine", "ffp2_chine",
              "chirurgicaux_distribution", "ffp2_distribution", "total_fr", "total_import",
              "total_distribution"]:
        pd.testing.assert_series_equal(_num(got[m]), _num(want[m]))
    assert got[["source_nom", "source_type"]].equals(want[["source_nom", "source_type"]])
    w9, w15 = _one(got, date="2020-W09"), _one(got, date="2020-W15")
    assert (float(w9.chirurgicaux_distribution), w9.total_fr) == (14.7, "")
    assert float(w15.chirurgicaux_fr) == 58.7  # decimal kept
    body = masks.pipeline.published(f"{MASKS}/latest/{MASKS}-fra.parquet")
    assert pq.read_table(io.BytesIO(body)).schema.field("date").type == pa.string()
