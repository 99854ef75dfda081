"""Cases C01-C08 and C13 of ../shared/data/cases/CASES.md: decoding, validation, roll-ups and
published values, through validate + publish over the in-memory store."""

from __future__ import annotations

import io
from datetime import date

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from report_invariant import assert_agrees

from conftest import HOSP, Pipeline
from opendepot.registry import load_cog, load_registry
from opendepot.validate import validate

KEY = f"{HOSP}/spf/"


def _validate(path):
    v = validate(path.read_bytes(), load_registry().get(HOSP), load_cog(), name=path.name)
    return assert_agrees(v)


def _level(p: Pipeline, level: str, fmt: str = "csv") -> pd.DataFrame:
    body = p.published(f"{HOSP}/latest/{HOSP}-{level}.{fmt}")
    if fmt == "parquet":
        return pq.read_table(io.BytesIO(body)).to_pandas()
    return pd.read_csv(io.BytesIO(body), sep=";", dtype=str, keep_default_na=False)


def _publish(p: Pipeline, path, name=None):
    out = p.drop(KEY + (name or path.name), path.read_bytes())
    assert out.status == "accepted", out.report
    p.publish()
    return out


def _row(df, **where):
    m = pd.Series(True, index=df.index)
    for k, v in where.items():
        m &= df[k] == v
    assert m.sum() == 1, (where, m.sum())
    return df[m].iloc[0]


def test_semicolon_and_comma_files__publish_identical_rows(cases_dir, pipeline):
    semi = _validate(cases_dir / "C01-separator-change-semicolon.csv")
    comma = _validate(cases_dir / "C01-separator-change-comma.csv")
    assert semi.decoded.delimiter == ";" and comma.decoded.delimiter == ","
    assert semi.table.equals(comma.table)
    rows = ["/".join(map(str, r.values())) for r in semi.table.select(
        ["dep", "sexe", "jour", "hosp", "rea", "rad", "dc"]).to_pylist()]
    assert rows == [
        "01/0/2020-03-27/49/9/17/2",
        "02/0/2020-03-27/132/35/90/37",
        "2A/0/2020-03-27/95/12/24/17",
        "971/0/2020-03-27/29/13/6/1",
    ]
    _publish(pipeline, cases_dir / "C01-separator-change-semicolon.csv")
    reg = _level(pipeline, "reg")
    assert {r: _row(reg, reg=r)["hosp"] for r in ["84", "32", "94", "01"]} == {
        "84": "49", "32": "132", "94": "95", "01": "29"}
    assert _row(_level(pipeline, "fra"), fra="FR")["hosp"] == "305"


def test_pipe_separated_file__rejected_naming_line_1_and_missing_columns(cases_dir, pipeline):
    out = pipeline.drop(KEY + "C01-separator-change-unsplittable.csv",
                        (cases_dir / "C01-separator-change-unsplittable.csv").read_bytes())
    assert out.status == "rejected"
    errors = out.report["tasks"][0]["errors"]
    first = errors[0]
    assert first["type"] == "format-error" and first["rowNumber"] == 1
    assert "dep, sexe, jour, hosp, rea, rad, dc" in first["message"]
    assert {e["fieldName"] for e in errors if e["type"] == "missing-label"} == {
        "dep", "sexe", "jour", "hosp", "rea", "rad", "dc"}
    assert out.report["opendepot"]["key"] == KEY + "C01-separator-change-unsplittable.csv"
    assert pipeline.queue.sent == []
    assert pipeline.publish().version is None  # nothing staged, nothing published


def test_bom_and_crlf__same_rows_as_plain_file(cases_dir):
    raw = (cases_dir / "C02-bom-crlf-header.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw
    v = _validate(cases_dir / "C02-bom-crlf-header.csv")
    plain = validate(raw[3:].replace(b"\r\n", b"\n"), load_registry().get(HOSP), load_cog(), name="p")
    assert v.accepted and v.table.equals(plain.table)
    assert v.labels[0] == "dep" and not any("\ufeff" in c for c in v.table.column_names)
    assert v.table.column("dc").to_pylist() == [2, 180]
    assert v.table.column("dep").to_pylist() == ["01", "75"]
    assert v.table.column("hosp").to_pylist() == [49, 1656]


def test_duplicated_day__rejected_with_both_lines_then_resent_file_published(cases_dir, pipeline):
    key = KEY + "covid_hospit.csv"
    first = pipeline.drop(key, (cases_dir / "C03-duplicate-day-first-upload.csv").read_bytes())
    assert first.status == "rejected"
    errors = first.report["tasks"][0]["errors"]
    pk = [e for e in errors if e["type"] == "primary-key"]
    # six duplicated keys for 75 and 92; the three empty-dep rows repeat too (as Frictionless
    # reports them) and are also reported as dep missing
    assert sorted(e["cell"] for e in pk if e["cell"][:2] in {"75", "92"}) == sorted(
        f"{d}/{s}/2020-03-24" for d in ("75", "92") for s in (0, 1, 2))
    assert sorted(e["rowNumber"] for e in pk if e["cell"].startswith("/")) == [23, 24, 25]
    paris = next(e for e in pk if e["cell"] == "75/0/2020-03-24")
    assert paris["rowNumber"] == 17 and "line 8" in paris["message"]
    missing_dep = sorted(e["rowNumber"] for e in errors
                         if e["fieldName"] == "dep" and e["type"] == "constraint-error")
    assert missing_dep == [14, 15, 16, 23, 24, 25]
    assert pipeline.publish().version is None

    second = pipeline.drop(key, (cases_dir / "C03-duplicate-day-resent.csv").read_bytes())
    assert second.status == "accepted" and second.upload_id != first.upload_id
    assert pipeline.publish().created
    dep, reg, fra = (_level(pipeline, lvl) for lvl in ("dep", "reg", "fra"))
    assert _row(dep, dep="75", sexe="0", jour="2020-03-24")[["hosp", "dc"]].tolist() == ["1076", "80"]
    assert _row(dep, dep="92", sexe="0", jour="2020-03-24")[["hosp", "dc"]].tolist() == ["616", "33"]
    assert _row(reg, reg="11", sexe="0", jour="2020-03-24")[["hosp", "dc"]].tolist() == ["1692", "113"]
    assert _row(fra, fra="FR", sexe="0", jour="2020-03-24")[["hosp", "dc"]].tolist() == ["1692", "113"]


def test_cumulative_decrease__one_warning_and_values_kept(cases_dir, pipeline):
    out = _publish(pipeline, cases_dir / "C04-cumulative-decrease.csv")
    warnings = out.report["opendepot"]["warnings"]
    assert len(warnings) == 1
    w = warnings[0]
    assert (w["type"], w["fieldName"], w["rowNumber"], w["cell"]) == ("cumulative-decrease", "dc", 5, "2")
    assert "dep=16" in w["message"] and "from 9 on 2020-03-30 to 2 on 2020-03-31" in w["message"]
    dep = _level(pipeline, "dep")
    assert dep["dc"].tolist() == ["6", "7", "9", "2", "2", "3"]
    assert dep["hosp"].tolist() == ["23", "30", "35", "14", "17", "19"]


def test_missing_value__null_not_zero_and_gap_not_filled(cases_dir, pipeline):
    out = _publish(pipeline, cases_dir / "C05-missing-vs-zero.csv")
    [gap] = out.report["opendepot"]["warnings"]
    assert gap["type"] == "missing-day" and "2B" in gap["message"] and "2020-03-26" in gap["message"]
    dep = _level(pipeline, "dep")
    assert _row(dep, dep="2B", jour="2020-03-25")["rea"] == ""
    assert _row(dep, dep="2B", jour="2020-03-24")["rea"] == "0"
    assert len(dep[(dep.dep == "2B") & (dep.jour == "2020-03-26")]) == 0
    parquet = _level(pipeline, "dep", "parquet")
    assert pd.isna(parquet[(parquet.dep == "2B") & (parquet.jour == date(2020, 3, 25))]["rea"].iloc[0])
    reg = _level(pipeline, "reg")
    got = {r.jour: (r.hosp, r.rea) for r in reg.itertuples()}
    assert got == {
        "2020-03-24": ("70", "9"),
        "2020-03-25": ("81", ""),
        "2020-03-26": ("", ""),
        "2020-03-27": ("102", "13"),
    }


def test_corsica_as_20__rejected_and_never_summed(cases_dir, pipeline):
    out = pipeline.drop(KEY + "C06.csv", (cases_dir / "C06-corsica-20.csv").read_bytes())
    assert out.status == "rejected"
    [err] = out.report["tasks"][0]["errors"]
    assert (err["rowNumber"], err["fieldName"], err["cell"]) == (4, "dep", "20")
    assert "2A or 2B" in err["message"]
    assert pipeline.publish().version is None
    fixed = b"".join((cases_dir / "C06-corsica-20.csv").read_bytes().splitlines(keepends=True)[:3])
    assert pipeline.drop(KEY + "C06.csv", fixed).status == "accepted"
    pipeline.publish()
    r94 = _row(_level(pipeline, "reg"), reg="94")
    assert r94[["hosp", "rea", "rad", "dc"]].tolist() == ["96", "25", "102", "21"]


def test_one_digit_departments__padded_with_warnings_and_regions_from_padded_code(cases_dir, pipeline):
    out = _publish(pipeline, cases_dir / "C08-leading-zero-lost.csv")
    w = [(x["rowNumber"], x["cell"], x["note"]) for x in out.report["opendepot"]["warnings"]]
    assert w == [(2, "1", "01"), (3, "2", "02"), (4, "9", "09")]
    assert _level(pipeline, "dep")["dep"].tolist() == ["01", "02", "09", "75"]
    assert pq.read_schema(io.BytesIO(pipeline.published(
        f"{HOSP}/latest/{HOSP}-dep.parquet"))).field("dep").type == pa.string()
    assert sorted(_level(pipeline, "reg")["reg"]) == ["11", "32", "76", "84"]


@pytest.mark.parametrize("code", ["100", "2C"])
def test_unknown_department_code__rejected(code):
    body = f"dep;sexe;jour;hosp;rea;rad;dc\n{code};0;2020-03-27;1;1;1;1\n".encode()
    v = validate(body, load_registry().get(HOSP), load_cog(), name="x.csv")
    assert not v.accepted
    assert [(e.type, e.row_number, e.cell) for e in v.errors.items] == [("foreign-key", 2, code)]


@pytest.mark.parametrize("block", [3, 1 << 20])
def test_department_codes__stay_text_whatever_the_block_size(cases_dir, block, monkeypatch):
    import pyarrow.csv as pacsv

    original = pacsv.ReadOptions

    def small_blocks(**kw):
        kw["block_size"] = max(block, 64)
        return original(**kw)

    monkeypatch.setattr(pacsv, "ReadOptions", small_blocks)
    v = _validate(cases_dir / "C13-dep-type-inference.csv")
    assert v.table.column("dep").to_pylist() == ["01", "02", "09", "2A", "2B", "971"]
    assert v.table.schema.field("dep").type == pa.string()
    assert v.table.schema.field("hosp").type == pa.int64()
    assert v.table.column("jour").type == pa.date32()
