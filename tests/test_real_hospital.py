"""The real Santé publique France hospital files, published in order through validate and publish
(in-memory store), and the published values checked against the source files and against region
sums computed here, independently, from INSEE's own COG file."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from conftest import HOSP, Pipeline

DATES = ["2020-03-24", "2020-11-01", "2021-03-16"]
DEPS = ["2A", "971", "75"]
MEASURES = ["hosp", "rea", "rad", "dc"]


def publication_order(folder: Path) -> list[Path]:
    """Files by the first YYYY-MM-DD in their name, else in their folder names."""

    def when(p: Path) -> str:
        m = re.search(r"\d{4}-\d{2}-\d{2}", p.name) or re.search(r"\d{4}-\d{2}-\d{2}", str(p.parent))
        return m.group(0) if m else "9999"

    return sorted(folder.rglob("*.csv"), key=lambda p: (when(p), str(p)))


@pytest.fixture(scope="module")
def published(real_dir):
    from datetime import UTC, datetime

    from opendepot.config import Settings
    from opendepot.storage import MemoryQueue, MemoryStore

    p = Pipeline(MemoryStore(), MemoryQueue(), Settings(publish_queue_url="q"),
                 datetime(2026, 11, 29, tzinfo=UTC))
    outcomes = {}
    for path in publication_order(real_dir / HOSP):
        name = f"{path.parent.name}-{path.name}" if path.name == "covid_hospit.csv" else path.name
        outcomes[name] = p.drop(f"{HOSP}/spf/{name}", path.read_bytes())
        p.publish()
    return p, outcomes


def _read(p: Pipeline, level: str, fmt: str) -> pd.DataFrame:
    body = p.published(f"{HOSP}/latest/{HOSP}-{level}.{fmt}")
    if fmt == "parquet":
        df = pq.read_table(io.BytesIO(body)).to_pandas()
        df["jour"] = df["jour"].astype(str)
        return df
    return pd.read_csv(io.BytesIO(body), sep=";", dtype={"dep": str, "reg": str, "fra": str})


def test_real_files__accepted_or_rejected_for_their_real_defects(published):
    _, out = published
    status = {k: (o.status, o.report["opendepot"]["rows_left_out"]) for k, o in out.items()}
    assert status == {
        "2020-03-23_3f62f18-covid_hospit.csv": ("accepted", 0),
        "2020-03-24_2c1018e-covid_hospit.csv": ("accepted", 0),
        # the opencovid19-fr mirror appended the 2020-03-24 block twice: 306 repeated keys
        "2020-03-25_8b00bef-covid_hospit.csv": ("rejected", 0),
        # three rows with an empty department code, left out within the error budget
        "2020-04-30_318ba9f-covid_hospit.csv": ("accepted", 3),
        "donnees-hospitalieres-covid19-2020-11-07-19h00.csv": ("accepted", 3),
        "donnees-hospitalieres-covid19-2021-03-17-17h03.csv": ("accepted", 0),
    }
    rejected = out["2020-03-25_8b00bef-covid_hospit.csv"].report
    # 306 repeated rows (3 of them with an empty dep, also reported as missing, like their
    # 3 originals): 306 primary-key errors + 6 required-value errors.
    types = [e["type"] for e in rejected["tasks"][0]["errors"]]
    assert (types.count("primary-key"), types.count("constraint-error")) == (306, 6)
    assert rejected["stats"]["errors"] == 312
    first_pk = next(e for e in rejected["tasks"][0]["errors"] if e["type"] == "primary-key")
    assert first_pk["rowNumber"] > 2123 and first_pk["fieldName"] == "dep,sexe,jour"
    left_out = out["donnees-hospitalieres-covid19-2020-11-07-19h00.csv"].report["tasks"][0]["errors"]
    assert [(e["rowNumber"], e["fieldName"], e["cell"]) for e in left_out] == [
        (2123, "dep", ""), (2124, "dep", ""), (2125, "dep", "")]


def test_cr_cr_lf_file__line_numbers_are_physical_lines(published):
    _, out = published
    report = out["2020-04-30_318ba9f-covid_hospit.csv"].report
    assert report["opendepot"]["line_ends"]["crcrlf"] == 303
    assert report["opendepot"]["rows"] == 13335
    assert [e["rowNumber"] for e in report["tasks"][0]["errors"]] == [2123, 2124, 2125]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_published_values__match_source_and_independent_region_sums(published, real_dir, fmt):
    p, _ = published
    source = pd.read_csv(real_dir / HOSP / "donnees-hospitalieres-covid19-2021-03-17-17h03.csv",
                         sep=";", dtype={"dep": str, "sexe": int})
    cog = pd.read_csv(real_dir / "cog-insee" / "departement2020.csv", dtype=str)[["dep", "reg"]]
    dep, reg, fra = (_read(p, level, fmt) for level in ("dep", "reg", "fra"))
    assert len(dep) == len(source) == 110595

    for day in DATES:
        for code in DEPS:
            want = source[(source.dep == code) & (source.jour == day)].sort_values("sexe")
            got = dep[(dep.dep == code) & (dep.jour == day)].sort_values("sexe")
            assert len(want) == 3
            assert got[MEASURES].to_numpy().tolist() == want[MEASURES].to_numpy().tolist()

    merged = source.merge(cog, on="dep", how="left")
    assert merged.reg.notna().all()  # no 975/977/978 in this file
    for day in DATES:
        for region in ["94", "01", "11"]:  # Corse, Guadeloupe, Île-de-France
            part = merged[(merged.reg == region) & (merged.jour == day) & (merged.sexe == 0)]
            got = reg[(reg.reg == region) & (reg.jour == day) & (reg.sexe == 0)]
            assert got[MEASURES].iloc[0].tolist() == part[MEASURES].sum().tolist()
        total = source[(source.jour == day) & (source.sexe == 0)][MEASURES].sum().tolist()
        got = fra[(fra.jour == day) & (fra.sexe == 0)]
        assert got[MEASURES].iloc[0].tolist() == total
    # exact figures for Corse, 2021-03-16, from the source file
    corse = reg[(reg.reg == "94") & (reg.jour == "2021-03-16") & (reg.sexe == 0)].iloc[0]
    assert corse["hosp"] == int(source[(source.jour == "2021-03-16") & (source.sexe == 0)
                                       & source.dep.isin(["2A", "2B"])]["hosp"].sum())


def test_every_version__kept_and_manifest_lists_them_newest_first(published):
    import json

    p, _ = published
    manifest = json.loads(p.published(f"{HOSP}/manifest.json"))
    versions = [v["version"] for v in manifest["versions"]]
    assert len(versions) == 5  # six files, one rejected
    assert versions == sorted(versions, reverse=True) and versions[0] == manifest["version"]
    for v in manifest["versions"]:
        for r in v["resources"]:
            assert p.store.head(p.settings.published_bucket, r["path"]).size == r["bytes"]
    assert manifest["rows"] == {"dep": 110595, "reg": 19710, "fra": 1095}
    assert manifest["temporal_coverage"] == {"start": "2020-03-18", "end": "2021-03-17"}
