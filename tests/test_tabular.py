"""The row-level API (api-tabular's routes and shapes) over the real hospital stock file.

Santé publique France's stock file of 2021-03-17 (110,595 rows) is validated and published
through the in-memory pipeline (``conftest.Pipeline``); the index's Lambda handler then answers
``/api/resources/{rid}/...`` from the published Parquet. Every answer is compared with pandas
reading the same published Parquet file, independently of ``opendepot.tabular``.
"""

from __future__ import annotations

import io
import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import HOSP, REAL, Pipeline
from functions.index_api import app as index_api
from opendepot import openapi, tabular, tabular_http
from opendepot.config import Settings
from opendepot.index import BadRequest
from opendepot.storage import MemoryQueue, MemoryStore
from test_index_api import FILES, body, call, event, raw

API = "https://api.opendepot.example.fr"
STOCK = REAL / HOSP / "donnees-hospitalieres-covid19-2021-03-17-17h03.csv"
DONE_WHEN = "dep__exact=2A&sexe__exact=0&jour__exact=2021-03-16"
DEP_PARQUET = f"{HOSP}/latest/{HOSP}-dep.parquet"


@pytest.fixture(scope="module")
def published() -> dict[str, Any]:
    """The stock file published; the index configured on the pipeline's store; the dep level's
    resource ids and the published Parquet as pandas reads it (``__id`` = row number)."""
    settings = Settings(publish_queue_url="memory://publish.fifo", public_base_url=FILES,
                        api_base_url=API)
    p = Pipeline(MemoryStore(), MemoryQueue(), settings, datetime(2026, 11, 29, tzinfo=UTC))
    assert p.drop(f"{HOSP}/spf/{STOCK.name}", STOCK.read_bytes()).status == "accepted"
    p.publish()
    tabular.forget_cache()
    index_api.configure(p.store, settings, clock=lambda: datetime(2026, 11, 30, tzinfo=UTC))
    manifest = json.loads(p.published(f"{HOSP}/manifest.json"))
    rids = {r["format"]: r["id"] for r in manifest["resources"] if r["level"] == "dep"}
    frame = pd.read_parquet(io.BytesIO(p.published(DEP_PARQUET)))
    frame.insert(0, "__id", range(1, len(frame) + 1))
    return {"pipeline": p, "rids": rids, "frame": frame, "manifest": manifest}


@pytest.fixture(autouse=True)
def configured(published: dict[str, Any]) -> None:
    p = published["pipeline"]
    index_api.configure(p.store, p.settings, clock=lambda: datetime(2026, 11, 30, tzinfo=UTC))


def get(path: str, query: str = "") -> dict[str, Any]:
    return call(event(path=path, query=query, headers={"accept-encoding": "identity"}))


def data(rid: str, query: str = "", tail: str = "data/") -> dict[str, Any]:
    return get(f"/api/resources/{rid}/{tail}", query)


def as_json_rows(df: pd.DataFrame) -> list[dict[str, Any]]:
    """pandas rows as the API's JSON values (dates ISO, missing as null)."""
    out = df.copy()
    out["jour"] = out["jour"].astype(str)
    return [{k: (None if pd.isna(v) else v) for k, v in row.items()}
            for row in json.loads(out.to_json(orient="records"))]


# --- the Done-when query --------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_done_when_query__answers_the_published_row(published: dict[str, Any], fmt: str) -> None:
    rid = published["rids"][fmt]
    r = data(rid, DONE_WHEN)
    assert r["statusCode"] == 200
    doc = body(r)
    assert doc["meta"] == {"page": 1, "page_size": 20, "total": 1}
    [row] = doc["data"]
    assert (row["dep"], row["sexe"], row["jour"]) == ("2A", 0, "2021-03-16")
    assert (row["hosp"], row["rea"], row["rad"], row["dc"]) == (22, 4, 344, 84)
    assert row["HospConv"] is None and row["SSR_USLD"] is None and row["autres"] is None
    frame = published["frame"]
    assert row["__id"] == int(frame[(frame.dep == "2A") & (frame.sexe == 0)
                                    & (frame.jour.astype(str) == "2021-03-16")]["__id"].iloc[0])
    base = f"{API}/api/resources/{rid}/"
    assert doc["links"] == {"profile": base + "profile/", "swagger": base + "swagger/",
                            "next": None, "prev": None}


# --- every operator against pandas ----------------------------------------------------------------

JOUR = "jour"
OPERATORS: list[tuple[str, Any]] = [
    ("dep__exact=75", lambda f: f.dep == "75"),
    ("dep__differs=75", lambda f: f.dep != "75"),
    ("dep__in=2A,2B,971", lambda f: f.dep.isin(["2A", "2B", "971"])),
    ("dep__notin=2A,2B,971", lambda f: ~f.dep.isin(["2A", "2B", "971"])),
    ("dep__contains=a", lambda f: f.dep.str.contains("a", case=False)),
    ("dep__notcontains=7", lambda f: ~f.dep.str.contains("7")),
    ("hosp__less=3", lambda f: f.hosp <= 3),
    ("hosp__greater=3000", lambda f: f.hosp >= 3000),
    ("hosp__strictly_less=3", lambda f: f.hosp < 3),
    ("hosp__strictly_greater=3000", lambda f: f.hosp > 3000),
    ("jour__greater=2021-03-10&jour__strictly_less=2021-03-12",
     lambda f: (f[JOUR].astype(str) >= "2021-03-10") & (f[JOUR].astype(str) < "2021-03-12")),
    ("jour__contains=-03-16", lambda f: f[JOUR].astype(str).str.contains("-03-16")),
    ("HospConv__isnull", lambda f: f.HospConv.isna()),
    ("rea__isnotnull&sexe__exact=2&rea__strictly_greater=100", lambda f: f.rea.notna()
     & (f.sexe == 2) & (f.rea > 100)),
]


@pytest.mark.parametrize(("query", "mask"), OPERATORS, ids=[q for q, _ in OPERATORS])
def test_each_operator__total_and_page_as_pandas(published: dict[str, Any], query: str,
                                                 mask: Any) -> None:
    frame = published["frame"]
    want = frame[mask(frame)]
    doc = body(data(published["rids"]["csv"], query + "&page=2&page_size=50"))
    assert doc["meta"] == {"page": 2, "page_size": 50, "total": len(want)}
    assert len(want) > 0
    assert doc["data"] == as_json_rows(want.iloc[50:100])


def test_sorts__two_keys_then_row_order_as_pandas(published: dict[str, Any]) -> None:
    frame = published["frame"]
    want = frame[frame.dep.isin(["13", "75"]) & (frame.sexe == 0)].sort_values(
        ["rea", "jour", "__id"], ascending=[False, True, True], kind="stable")
    q = "dep__in=13,75&sexe__exact=0&rea__sort=desc&jour__sort=asc&page=3&page_size=7"
    doc = body(data(published["rids"]["parquet"], q))
    assert doc["meta"]["total"] == len(want) == 730
    assert doc["data"] == as_json_rows(want.iloc[14:21])


def test_columns__only_those_in_that_order(published: dict[str, Any]) -> None:
    doc = body(data(published["rids"]["csv"], "columns=jour,dc,dep&" + DONE_WHEN))
    assert doc["data"] == [{"jour": "2021-03-16", "dc": 84, "dep": "2A"}]
    assert list(doc["data"][0]) == ["jour", "dc", "dep"]


def test_paging__links_walk_every_page_once(published: dict[str, Any]) -> None:
    frame = published["frame"]
    want = frame[(frame.dep == "2A") & (frame.hosp >= 20)]["__id"].tolist()
    assert 100 < len(want) < 500
    url: str | None = f"{API}/api/resources/{published['rids']['csv']}/data/?" \
                      "dep__exact=2A&hosp__greater=20&page_size=50"
    seen, pages = [], 0
    while url:
        parts = urlsplit(url)
        doc = body(get(parts.path, parts.query))
        seen += [row["__id"] for row in doc["data"]]
        pages += 1
        assert doc["links"]["prev"] is None if pages == 1 else doc["links"]["prev"]
        if doc["links"]["next"]:
            assert parse_qsl(urlsplit(doc["links"]["next"]).query) == [
                ("dep__exact", "2A"), ("hosp__greater", "20"), ("page", str(pages + 1)),
                ("page_size", "50")]
        url = doc["links"]["next"]
    assert seen == want and pages == -(-len(want) // 50)


def test_page_past_the_end__empty_data_with_total(published: dict[str, Any]) -> None:
    doc = body(data(published["rids"]["csv"], DONE_WHEN + "&page=3"))
    assert doc["data"] == [] and doc["meta"]["total"] == 1 and doc["links"]["next"] is None


@pytest.mark.parametrize(("query", "total"), [
    ("dep__exact=ZZ&rea__sort=asc", 0),
    ("rea__sort=asc&page=99999", 110595),
    ("dep__exact=2A&rea__sort=desc&columns=dep,rea&page=99", 1095),
])
def test_sorted_query_with_no_row_to_show__200_empty_with_total(
    published: dict[str, Any], query: str, total: int
) -> None:
    frame = published["frame"]
    want = frame[frame.dep == "2A"] if "dep__exact=2A" in query else frame[frame.dep == "ZZ"] \
        if "ZZ" in query else frame
    assert len(want) == total
    r = data(published["rids"]["parquet"], query)
    assert r["statusCode"] == 200, r["body"]
    doc = body(r)
    assert doc["data"] == [] and doc["meta"]["total"] == total and doc["links"]["next"] is None


def test_sorted_walk__last_page_of_a_multiple_of_page_size_then_past_it(
    published: dict[str, Any],
) -> None:
    frame = published["frame"]
    want = frame[frame.dep == "2A"].sort_values(["hosp", "__id"], ascending=[False, True])
    q = "dep__exact=2A&hosp__sort=desc&page_size=5"
    assert len(want) % 5 == 0
    last = len(want) // 5
    doc = body(data(published["rids"]["csv"], f"{q}&page={last}"))
    assert [row["__id"] for row in doc["data"]] == want["__id"].tolist()[-5:]
    assert doc["links"]["next"] is None
    assert body(data(published["rids"]["csv"], f"{q}&page={last + 1}"))["data"] == []


# --- errors -------------------------------------------------------------------------------------

BAD = [
    ("depp__exact=2A", "depp__exact: no column 'depp'"),
    ("sexe__exact=zero", "sexe__exact: 'zero' is not a valid integer"),
    ("jour__less=2021-02-30", "jour__less: '2021-02-30' is not a valid date"),
    ("hosp__in=1,x", "hosp__in: 'x' is not a valid integer"),
    ("hosp__contains=1", "hosp__contains: contains applies to text and date columns"),
    ("dep__like=2A", "dep__like: unknown operator 'like'"),
    ("dep__sort=up", "dep__sort: 'up' is not asc or desc"),
    ("dep__groupby", "dep__groupby: aggregation (groupby) is not available"),
    ("page_size=51", "page_size: 51 is above the maximum, 50"),
    ("page=0", "page=0 must be at least 1"),
    ("page=²", "page='²' is not an integer"),
    ("page=" + "9" * 20, "page='99999999999999999999' must be at least 1 and at most 9007199254740991"),
    ("page_size=", "page_size='' is not an integer"),
    ("columns=dep,nope", "columns: no column 'nope'"),
    ("columns=,", "columns=',' names no column (columns: __id, dep, sexe, jour, hosp, rea, "
                  "HospConv, SSR_USLD, autres, rad, dc)"),
    ("rea__exact=99999999999999999999", "rea__exact: '99999999999999999999' is out of range for "
     "column rea (integer, int64: -9223372036854775808 to 9223372036854775807)"),
    ("rea__in=1,99999999999999999999", "rea__in: '99999999999999999999' is out of range"),
    ("rea__less=-99999999999999999999", "rea__less: '-99999999999999999999' is out of range"),
    ("rea__greater=9223372036854775808", "rea__greater: '9223372036854775808' is out of range"),
    ("rea__notin=" + "9" * 5000, "rea__notin: '" + "9" * 40 + "'... is out of range"),
    ("rea__exact=١٢", "rea__exact: '١٢' is not a valid integer (column rea is integer)"),
    ("rea__strictly_less=１２", "rea__strictly_less: '１２' is not a valid integer"),
    ("hosp__exact=1e3", "hosp__exact: '1e3' is not a valid integer"),
    ("hosp__exact= 3", "hosp__exact: ' 3' is not a valid integer"),
    ("jour__less=20210316", "jour__less: '20210316' is not a valid date"),
    ("jour__exact=2021-W11-2", "jour__exact: '2021-W11-2' is not a valid date"),
    ("jour__in=2021-03-16,٢٠٢١-03-16", "jour__in: '٢٠٢١-03-16' is not a valid date"),
    ("dep=2A", "argument dep='2A' could not be parsed"),
]


@pytest.mark.parametrize(("query", "message"), BAD, ids=[q[:60] for q, _ in BAD])
def test_bad_parameters__400_naming_them(published: dict[str, Any], query: str,
                                         message: str) -> None:
    r = data(published["rids"]["csv"], query)
    assert r["statusCode"] == 400
    doc = body(r)
    assert doc["status"] == 400 and doc["message"].startswith(message), doc


@pytest.mark.parametrize(("query", "mask"), [
    ("rea__less=9223372036854775807", lambda f: f.rea.notna()),
    ("rea__greater=-9223372036854775808&sexe__exact=%2B0", lambda f: f.rea.notna() & (f.sexe == 0)),
    ("rea__in=-0,007", lambda f: f.rea.isin([0, 7])),
])
def test_integers_at_the_type_bounds_and_signs__as_pandas(
    published: dict[str, Any], query: str, mask: Any
) -> None:
    frame = published["frame"]
    doc = body(data(published["rids"]["csv"], query + "&page_size=50"))
    want = frame[mask(frame)]
    assert doc["meta"]["total"] == len(want) > 0
    assert doc["data"] == as_json_rows(want.iloc[:50])


def test_parse_value__numbers_ascii_and_in_their_types_range() -> None:
    schema = pa.schema([("x", pa.float32()), ("y", pa.float64()), ("n", pa.int8()),
                        ("u", pa.uint16())])
    plan = tabular.parse_query([("x__less", "2.5"), ("y__in", "-1e3,.5,7."), ("n__exact", "-128"),
                                ("u__exact", "65535")], schema)
    assert [f.values for f in plan.filters] == [(2.5,), (-1000.0, 0.5, 7.0), (-128,), (65535,)]
    for param, value, message in [
        ("x__less", "1e39", "x__less: '1e39' is out of range for column x (number, float: "),
        ("y__less", "1e999", "y__less: '1e999' is out of range for column y (number, double: "),
        ("y__exact", "nan", "y__exact: 'nan' is not a valid number"),
        ("y__exact", "inf", "y__exact: 'inf' is not a valid number"),
        ("y__exact", "1_000", "y__exact: '1_000' is not a valid number"),
        ("y__exact", "١٢", "y__exact: '١٢' is not a valid number"),
        ("n__exact", "128", "n__exact: '128' is out of range for column n (integer, int8: -128 "
                            "to 127)"),
        ("u__greater", "-1", "u__greater: '-1' is out of range for column u (integer, uint16: 0 "
                             "to 65535)"),
    ]:
        with pytest.raises(BadRequest) as caught:
            tabular.parse_query([(param, value)], schema)
        assert str(caught.value).startswith(message), caught.value


def test_unknown_resource__404_on_every_route() -> None:
    for tail in ("", "data/", "data/csv/", "data/json/", "profile/", "swagger/"):
        r = data("no-such-resource", tail=tail)
        assert r["statusCode"] == 404
        assert body(r) == {"status": 404, "message": "resource 'no-such-resource' not found"}


# --- exports ------------------------------------------------------------------------------------


def test_csv_export__the_filtered_sorted_frame(published: dict[str, Any]) -> None:
    frame = published["frame"]
    q = "dep__in=2A,2B&sexe__exact=0&jour__sort=desc&columns=__id,dep,jour,hosp,HospConv,dc"
    r = data(published["rids"]["csv"], q, tail="data/csv/")
    assert r["statusCode"] == 200 and r["headers"]["Content-Type"].startswith("text/csv")
    got = pd.read_csv(io.BytesIO(raw(r)), dtype={"dep": str})
    want = frame[frame.dep.isin(["2A", "2B"]) & (frame.sexe == 0)].sort_values(
        ["jour", "__id"], ascending=[False, True])[["__id", "dep", "jour", "hosp", "HospConv",
                                                     "dc"]]
    assert len(got) == len(want) == 730
    assert got["jour"].tolist() == want["jour"].astype(str).tolist()
    for c in ("__id", "dep", "hosp", "dc"):
        assert got[c].tolist() == want[c].tolist()
    assert got["HospConv"].isna().all()


def test_json_export__the_filtered_frame_as_rows(published: dict[str, Any]) -> None:
    frame = published["frame"]
    r = data(published["rids"]["parquet"], "dep__exact=971&rea__greater=10", tail="data/json/")
    assert r["statusCode"] == 200
    assert r["headers"]["Content-Disposition"].endswith(f'{published["rids"]["parquet"]}.json"')
    want = frame[(frame.dep == "971") & (frame.rea >= 10)]
    assert json.loads(raw(r)) == as_json_rows(want) and len(want) > 100


def test_exports__empty_selection_and_the_row_limit(published: dict[str, Any]) -> None:
    rid = published["rids"]["csv"]
    empty = data(rid, "dep__exact=99&columns=dep,hosp", tail="data/csv/")
    assert raw(empty).decode() == '"dep","hosp"\n'
    assert json.loads(raw(data(rid, "dep__exact=99", tail="data/json/"))) == []
    r = data(rid, "hosp__greater=0", tail="data/json/")
    assert r["statusCode"] == 403  # as api-tabular answers an export too large
    assert body(r)["message"].startswith("the selection has more than 50000 rows")


BIG = "sexe__differs=2&jour__less=2020-11-10"
"""The review's selection: 48,076 rows, under the row limit; as JSON, over 6 MB."""


def test_json_export_over_the_answer_limit__403_naming_its_size(published: dict[str, Any]) -> None:
    frame = published["frame"]
    want = frame[(frame.sexe != 2) & (frame[JOUR].astype(str) <= "2020-11-10")]
    assert len(want) == 48076 < tabular.EXPORT_MAX_ROWS
    rows = json.dumps(as_json_rows(want), ensure_ascii=False, separators=(",", ":"))
    size = tabular_http.answer_bytes(rows)
    assert size > 6 * 2**20 > tabular_http.EXPORT_MAX_BYTES  # would not fit in a Lambda answer
    r = data(published["rids"]["csv"], BIG, tail="data/json/")
    assert r["statusCode"] == 403
    assert body(r)["message"] == (
        f"the JSON export of this selection is {size} bytes, over the 5000000 bytes an answer "
        "may carry (AWS Lambda answers at most 6 MB): filter it further, choose fewer columns, "
        "or download the whole file")


def test_csv_export_of_the_same_selection_fits__and_the_limit_is_exact(
    published: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    rid = published["rids"]["csv"]
    r = data(rid, BIG, tail="data/csv/")
    assert r["statusCode"] == 200
    text = raw(r).decode()
    assert len(pd.read_csv(io.StringIO(text))) == 48076
    size = tabular_http.answer_bytes(text)
    assert len(text.encode()) < size < tabular_http.EXPORT_MAX_BYTES  # quotes, newlines escaped
    monkeypatch.setattr(tabular_http, "EXPORT_MAX_BYTES", size)
    assert raw(data(rid, BIG, tail="data/csv/")).decode() == text
    monkeypatch.setattr(tabular_http, "EXPORT_MAX_BYTES", size - 1)
    refused = data(rid, BIG, tail="data/csv/")
    assert refused["statusCode"] == 403
    assert body(refused)["message"].startswith(
        f"the CSV export of this selection is {size} bytes, over the {size - 1} bytes")


# --- profile, resource, swagger -----------------------------------------------------------------


def test_profile__every_column_as_pandas(published: dict[str, Any]) -> None:
    frame = published["frame"].drop(columns="__id")
    doc = body(data(published["rids"]["csv"], tail="profile/"))
    analysis = doc["profile"]
    assert analysis["header"] == list(frame.columns) and analysis["total_lines"] == 110595
    assert analysis["columns"]["jour"] == {"python_type": "date", "format": "date", "score": 1.0}
    assert analysis["columns"]["hosp"]["python_type"] == "int"
    for name in frame.columns:
        col, stats = frame[name], analysis["profile"][name]
        valid = col.dropna()
        assert stats["nb_missing_values"] == int(col.isna().sum()), name
        assert stats["nb_distinct"] == int(valid.nunique()), name
        if len(valid):
            lo, hi = (valid.astype(str).min(), valid.astype(str).max()) if name == "jour" \
                else (valid.min(), valid.max())
            assert (stats["min"], stats["max"]) == (lo, hi), name
            assert stats["tops"][0]["count"] == int(valid.value_counts().iloc[0]), name
        if name in ("hosp", "rea", "rad", "dc"):
            assert stats["mean"] == pytest.approx(valid.mean())
            assert stats["std"] == pytest.approx(valid.std())
    assert analysis["profile"]["HospConv"]["nb_missing_values"] == 110595
    assert analysis["profile"]["dep"]["nb_distinct"] == 101
    assert doc["indexes"] is None and doc["deleted_at"] is None


def test_resource_meta_and_swagger__api_tabular_links(published: dict[str, Any]) -> None:
    rid = published["rids"]["csv"]
    doc = body(data(rid, tail=""))
    base = f"{API}/api/resources/{rid}/"
    assert doc["links"] == [{"href": base + f"{rel}/", "type": "GET", "rel": rel}
                            for rel in ("profile", "data", "swagger")]
    assert doc["url"].startswith(FILES) and doc["url"].endswith(f"{HOSP}-dep.csv")
    swagger = body(data(rid, tail="swagger/"))
    names = {p["name"] for p in swagger["paths"][f"/api/resources/{rid}/data/"]["get"][
        "parameters"]}
    assert {"dep__exact", "jour__less", "hosp__strictly_greater", "dep__sort"} <= names
    assert "hosp__contains" not in names


def test_openapi__routes_declared_with_bounds_and_free_form_filters() -> None:
    doc = openapi.openapi_document(index_api.app)
    op = doc["paths"]["/api/resources/{rid}/data/"]["get"]
    params = {p["name"]: p for p in op["parameters"]}
    assert params["page_size"]["schema"]["maximum"] == 50
    assert params["filters"]["schema"]["type"] == "object"
    assert params["filters"]["schema"]["additionalProperties"] == {"type": "string"}
    assert {"200", "400", "404"} <= set(op["responses"])
    for tail in ("", "data/csv/", "data/json/", "profile/", "swagger/"):
        assert f"/api/resources/{{rid}}/{tail}" in doc["paths"]


# --- predicate pushdown and ranged reads ----------------------------------------------------------


def test_real_file__one_row_group(published: dict[str, Any]) -> None:
    p = published["pipeline"]
    meta = pq.ParquetFile(io.BytesIO(p.published(DEP_PARQUET))).metadata
    assert (meta.num_rows, meta.num_row_groups) == (110595, 1)


def test_pushdown__only_the_row_groups_the_statistics_allow(
    published: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The published table rewritten in row groups of 4,096 rows (sorted by department, as
    published), read by ranges: the Done-when query reads the footer and one row group of 28,
    its filter's columns first, then the others."""
    p = published["pipeline"]
    table = pq.read_table(io.BytesIO(p.published(DEP_PARQUET)))
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=4096, compression="zstd")
    store = MemoryStore()
    store.put("bucket", "dep.parquet", sink.getvalue(), "application/vnd.apache.parquet")
    meta = pq.ParquetFile(io.BytesIO(sink.getvalue())).metadata
    may_match = [i for i in range(meta.num_row_groups)
                 if meta.row_group(i).column(0).statistics.min <= "2A"
                 <= meta.row_group(i).column(0).statistics.max]
    monkeypatch.setattr(tabular, "WHOLE_READ_MAX_BYTES", 0)
    tabular.forget_cache()
    source = tabular.ParquetSource(store, "bucket", "dep.parquet", len(sink.getvalue()))
    assert source.ranged
    plan = tabular.parse_query(parse_qsl(DONE_WHEN), table.schema)
    result = tabular.query(source, plan)
    assert tabular.jsonable(result.rows)[0]["hosp"] == 22 and result.total == 1
    assert (result.row_groups_read, result.row_groups_total) == (len(may_match), 28)
    assert len(may_match) == 1
    # the footer; the filter's columns of that row group; its other columns (rows matched)
    assert source.reads.gets == 3
    assert source.reads.bytes < len(sink.getvalue()) / 5
    page = tabular.query(source, tabular.parse_query([("page", "3")], table.schema))
    assert page.row_groups_read == 1 and page.total == 110595
    assert [r["__id"] for r in tabular.jsonable(page.rows)] == list(range(41, 61))


def test_answers_fit_their_openapi_schemas(published: dict[str, Any]) -> None:
    from test_index_api_contract import check_against_openapi

    rid = published["rids"]["csv"]
    for tail, query in [("", ""), ("data/", DONE_WHEN), ("data/", "dep__exact=2A&page=2"),
                        ("data/", "x=1"), ("data/csv/", DONE_WHEN), ("data/json/", DONE_WHEN),
                        ("profile/", ""), ("swagger/", "")]:
        path = f"/api/resources/{rid}/{tail}"
        r = get(path, query)
        assert r["statusCode"] == (400 if query == "x=1" else 200)
        check_against_openapi(path, "GET", r)
    assert re.fullmatch(r'"[0-9a-f]+"', get(f"/api/resources/{rid}/")["headers"]["ETag"])


# --- the bench's row-level part -----------------------------------------------------------------


def test_bench__done_when_latency_measured_and_merged(tmp_path: Any) -> None:
    from bench import index_bench, workloads
    from infra import http_server

    published = index_bench.published_hospital(workloads.REAL_FILE)
    doc = index_bench.tabular_bench(index_api, http_server, "real", published, 0.2, 0.0)
    done = doc["done-when"]
    assert (done["total"], done["row_groups_read"], done["row_groups"]) == (1, 1, 1)
    assert done["statuses"] == {"200": done["requests"]} and done["requests"] > 0
    assert 0 < done["p50_ms"] <= done["p99_ms"] and done["cold_ms"] > 0
    assert doc["sort"]["total"] == doc["rows"] == 110595
    out = tmp_path / "results.json"
    out.write_text('{"workloads": []}')
    index_bench.merge_into_bench_results({"real": doc}, out)
    merged = json.loads(out.read_text())
    assert merged["workloads"] == [] and merged["index_bench"]["tabular"]["real"] == doc


def test_index_function_import__no_pyarrow_nor_pandas_until_a_row_query() -> None:
    """The index's cold start (issue 17): the row-level engine is imported by the first row
    query, not with the function."""
    import subprocess
    import sys

    code = ("import sys, functions.index_api.app; "
            "print(sorted(m for m in ('pyarrow', 'pandas', 'rdflib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[1],
                         env={**os.environ, "PYTHONPATH": "shared:."})
    assert out.stdout.strip() == "[]"
