"""The HTTP index: udata API v1 shapes, pager, filters, redirects, caching, one error envelope.

Runs ``functions.index_api.app.lambda_handler`` on API Gateway HTTP API v2 events (fixtures in
``tests/events/http_*.json``) over a ``MemoryStore`` holding a ``catalog.json`` shaped as in
``docs/design.md``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opendepot import index
from opendepot.config import Settings
from opendepot.storage import MemoryStore, ObjectInfo

from functions.index_api import app as index_api

EVENTS = Path(__file__).parent / "events"
BUCKET = "opendepot-published-123456789012"
FILES = "https://files.opendepot.example.fr"
API = "https://api.opendepot.example.fr"
COVID = "donnees-hospitalieres-covid19"
REA = "capacites-lits-reanimation"
V1 = "2026-11-28-07h30m05s"
V2 = "2026-11-29-07h30m12s"
ROWS = {"dep": 110595, "reg": 41001, "fra": 2187}


@dataclass
class LambdaContext:
    """The attributes of a Lambda context the Powertools logger reads."""

    function_name: str = "opendepot-index-api"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:eu-west-3:123456789012:function:opendepot-index-api"
    aws_request_id: str = "52fdfc07-2182-454f-963f-5f0f9a621d72"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def rid(dataset: str, level: str, fmt: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"opendepot:{dataset}:{level}:{fmt}"))


def manifest_resources(
    dataset: str, title: str, version: str, published_at: str
) -> list[dict[str, Any]]:
    out = []
    for level in ("dep", "reg", "fra"):
        for fmt, mime in (("csv", "text/csv"), ("parquet", "application/vnd.apache.parquet")):
            out.append(
                {
                    "id": rid(dataset, level, fmt),
                    "name": f"{dataset}-{level}",
                    "title": f"{title} ({level}, {fmt})",
                    "level": level,
                    "format": fmt,
                    "mime": mime,
                    "path": f"{dataset}/{version}/{dataset}-{level}.{fmt}",
                    "latest_path": f"{dataset}/latest/{dataset}-{level}.{fmt}",
                    "sha256": sha256(f"{dataset}/{version}/{dataset}-{level}.{fmt}"),
                    "bytes": ROWS[level] * (21 if fmt == "csv" else 4),
                    "rows": ROWS[level],
                    "last_modified": published_at,
                }
            )
    return out


def catalog_entry(version: str = V2, published_at: str = "2026-11-29T07:30:12Z") -> dict[str, Any]:
    title = "Données hospitalières relatives à l'épidémie de COVID-19"
    return {
        "name": COVID,
        "title": title,
        "description": "Nombre de personnes actuellement hospitalisées, en réanimation ou "
        "soins intensifs, par département, sexe et jour. Source : SI-VIC.",
        "organization": {"name": "Santé publique France", "slug": "sante-publique-france"},
        "license": "lov2",
        "frequency": "daily",
        "tags": ["covid19", "hopital", "sante-publique-france", "si-vic"],
        "version": version,
        "published_at": published_at,
        "created_at": "2026-11-20T18:02:44Z",
        "rows": ROWS,
        "rows_left_out": 3,
        "temporal_coverage": {"start": "2020-03-18", "end": "2021-03-16"},
        "levels": ["dep", "reg", "fra"],
        "resources": manifest_resources(COVID, title, version, published_at),
        "manifest_path": f"{COVID}/manifest.json",
    }


def rea_entry() -> dict[str, Any]:
    title = "Capacités en lits de réanimation"
    published_at = "2026-11-25T12:00:00Z"
    return {
        "name": REA,
        "title": title,
        "description": "Lits de réanimation installés, par département et semaine.",
        "organization": {"name": "DREES", "slug": "drees"},
        "license": "lov2",
        "frequency": "weekly",
        "tags": ["hopital", "lits"],
        "version": "2026-11-25-12h00m00s",
        "published_at": published_at,
        "created_at": "2026-11-24T09:00:00Z",
        "rows": ROWS,
        "rows_left_out": 0,
        "temporal_coverage": {"start": "2020-01-06", "end": "2021-03-15"},
        "levels": ["dep", "reg", "fra"],
        "resources": manifest_resources(REA, title, "2026-11-25-12h00m00s", published_at),
        "manifest_path": f"{REA}/manifest.json",
    }


def put_catalog(store: MemoryStore, *entries: dict[str, Any]) -> None:
    body = json.dumps({"generated_at": "2026-11-29T07:30:13Z", "datasets": list(entries)})
    store.put(BUCKET, "catalog.json", body.encode(), "application/json")


class CountingStore(MemoryStore):
    """A MemoryStore that counts reads of ``catalog.json``."""

    heads: int = 0
    gets: int = 0

    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        self.heads += 1
        return super().head(bucket, key)

    def get(self, bucket: str, key: str, *, version_id: str | None = None) -> bytes:
        self.gets += 1
        return super().get(bucket, key, version_id=version_id)


@pytest.fixture
def store() -> CountingStore:
    s = CountingStore()
    put_catalog(s, catalog_entry(), rea_entry())
    return s


@pytest.fixture
def settings() -> Settings:
    return Settings(published_bucket=BUCKET, public_base_url=FILES, api_base_url="")


@pytest.fixture(autouse=True)
def configured(store: CountingStore, settings: Settings) -> None:
    index_api.configure(store, settings)


def event(
    fixture: str = "http_get_datasets.json",
    path: str | None = None,
    query: str | None = None,
    method: str | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    e: dict[str, Any] = json.loads((EVENTS / fixture).read_text("utf-8"))
    if path is not None:
        e["rawPath"] = e["requestContext"]["http"]["path"] = path
    if query is not None:
        e["rawQueryString"] = query
        e.pop("queryStringParameters", None)
    if method is not None:
        e["requestContext"]["http"]["method"] = method
    e["headers"].update(headers or {})
    return e


def call(e: dict[str, Any]) -> dict[str, Any]:
    response: dict[str, Any] = index_api.lambda_handler(e, LambdaContext())  # type: ignore[arg-type]
    return response


def body(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


def get(path: str, query: str = "", **kw: Any) -> dict[str, Any]:
    return call(event(path=path, query=query, **kw))


# --- the list -----------------------------------------------------------------------------------


def test_list_fixture_event__pager_with_every_dataset() -> None:
    r = call(event())
    assert r["statusCode"] == 200
    assert r["headers"]["Content-Type"] == "application/json; charset=utf-8"
    page = body(r)
    assert set(page) == {"data", "page", "page_size", "total", "next_page", "previous_page"}
    assert (page["page"], page["page_size"], page["total"]) == (1, 20, 2)
    assert page["next_page"] is None and page["previous_page"] is None
    assert [d["slug"] for d in page["data"]] == [REA, COVID]


def test_list_without_trailing_slash__same_pager() -> None:
    assert body(get("/api/1/datasets")) == body(get("/api/1/datasets/"))


def test_page_size_1__links_next_and_previous_pages() -> None:
    first = body(get("/api/1/datasets/", "page_size=1"))
    assert (first["total"], len(first["data"])) == (2, 1)
    assert first["data"][0]["slug"] == REA
    assert first["next_page"] == "/api/1/datasets/?page_size=1&page=2"
    assert first["previous_page"] is None

    second = body(get("/api/1/datasets/", "page_size=1&page=2"))
    assert second["data"][0]["slug"] == COVID
    assert second["page"] == 2
    assert second["next_page"] is None
    assert second["previous_page"] == "/api/1/datasets/?page_size=1&page=1"


def test_pager_links_with_api_base_url__absolute_and_keep_filters(store: CountingStore) -> None:
    index_api.configure(
        store, Settings(published_bucket=BUCKET, public_base_url=FILES, api_base_url=API)
    )
    page = body(get("/api/1/datasets/", "tag=hopital&page_size=1&sort=-created"))
    assert (
        page["next_page"] == f"{API}/api/1/datasets/?tag=hopital&page_size=1&sort=-created&page=2"
    )
    assert page["data"][0]["uri"] == f"{API}/api/1/datasets/{REA}/"


def test_page_past_the_end__empty_data_with_previous_link() -> None:
    page = body(get("/api/1/datasets/", "page=3&page_size=1"))
    assert page["data"] == [] and page["total"] == 2
    assert page["next_page"] is None
    assert page["previous_page"] == "/api/1/datasets/?page_size=1&page=2"


@pytest.mark.parametrize(
    ("q", "slugs"),
    [
        ("DONNEES covid", [COVID]),  # accents and case ignored, every word must match
        ("réanimation", [REA, COVID]),  # title of one, description of the other
        ("lits", [REA]),  # a tag
        ("si-vic", [COVID]),
        ("covid lits", []),
        ("", [REA, COVID]),
    ],
)
def test_q__matches_words_in_title_description_tags(q: str, slugs: list[str]) -> None:
    page = body(get("/api/1/datasets/", f"q={q}"))
    assert [d["slug"] for d in page["data"]] == slugs
    assert page["total"] == len(slugs)


@pytest.mark.parametrize(
    ("query", "slugs"),
    [
        ("tag=covid19", [COVID]),
        ("tag=hopital", [REA, COVID]),
        ("tag=hopital&tag=lits", [REA]),
        ("tag=nothing", []),
        ("organization=drees", [REA]),
        ("organization=sante-publique-france", [COVID]),
        (
            "organization=" + str(uuid.uuid5(uuid.NAMESPACE_URL, "opendepot:organization:drees")),
            [REA],
        ),
        ("organization=sante-publique-france&tag=lits", []),
    ],
)
def test_tag_and_organization__filter_datasets(query: str, slugs: list[str]) -> None:
    page = body(get("/api/1/datasets/", query))
    assert [d["slug"] for d in page["data"]] == slugs
    assert page["total"] == len(slugs)


@pytest.mark.parametrize(
    ("sort", "slugs"),
    [
        ("title", [REA, COVID]),
        ("-title", [COVID, REA]),
        ("created", [COVID, REA]),
        ("-created", [REA, COVID]),
        ("last_update", [REA, COVID]),
        ("-last_update", [COVID, REA]),
    ],
)
def test_sort__orders_datasets(sort: str, slugs: list[str]) -> None:
    assert [d["slug"] for d in body(get("/api/1/datasets/", f"sort={sort}"))["data"]] == slugs


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("page_size=101", "page_size=101 must be at least 1 and at most 100"),
        ("page_size=0", "page_size=0 must be at least 1 and at most 100"),
        ("page=0", "page=0 must be at least 1"),
        ("page=deux", "page='deux' is not an integer"),
        (
            "sort=views",
            "sort='views' is not one of title, created, last_update (prefix - to reverse)",
        ),
    ],
)
def test_bad_list_parameter__400_envelope(query: str, message: str) -> None:
    r = get("/api/1/datasets/", query)
    assert r["statusCode"] == 400
    assert body(r) == {"status": 400, "message": message}
    assert r["headers"]["Access-Control-Allow-Origin"] == "*"


def test_page_size_100__accepted() -> None:
    assert body(get("/api/1/datasets/", "page_size=100"))["page_size"] == 100


# --- one dataset, one resource --------------------------------------------------------------------

DATASET_TYPES = {
    "id": str,
    "slug": str,
    "title": str,
    "description": str,
    "created_at": str,
    "last_modified": str,
    "last_update": str,
    "tags": list,
    "frequency": str,
    "organization": dict,
    "license": str,
    "temporal_coverage": dict,
    "spatial": dict,
    "extras": dict,
    "resources": list,
    "uri": str,
}
RESOURCE_TYPES = {
    "id": str,
    "title": str,
    "description": str,
    "type": str,
    "filetype": str,
    "format": str,
    "url": str,
    "latest": str,
    "checksum": dict,
    "filesize": int,
    "mime": str,
    "created_at": str,
    "last_modified": str,
    "extras": dict,
}


def test_dataset_fixture_event__every_udata_key_with_its_type() -> None:
    r = call(event("http_get_dataset.json"))
    assert r["statusCode"] == 200
    d = body(r)
    assert {k: type(v) for k, v in d.items()} == DATASET_TYPES
    assert len(d["resources"]) == 6
    for res in d["resources"]:
        assert {k: type(v) for k, v in res.items()} == RESOURCE_TYPES
        assert set(res["checksum"]) == {"type", "value"}
        assert set(res["extras"]) == {"rows", "level", "version"}


def test_dataset__real_values() -> None:
    d = body(get(f"/api/1/datasets/{COVID}/"))
    assert d["id"] == str(uuid.uuid5(uuid.NAMESPACE_URL, f"opendepot:{COVID}"))
    assert d["id"] == index.dataset_id(COVID)
    assert d["slug"] == COVID
    assert d["title"] == "Données hospitalières relatives à l'épidémie de COVID-19"
    assert (d["created_at"], d["last_modified"], d["last_update"]) == (
        "2026-11-20T18:02:44Z",
        "2026-11-29T07:30:12Z",
        "2026-11-29T07:30:12Z",
    )
    assert d["tags"] == ["covid19", "hopital", "sante-publique-france", "si-vic"]
    assert d["frequency"] == "daily"
    assert d["license"] == "lov2"
    assert d["organization"] == {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, "opendepot:organization:sante-publique-france")),
        "name": "Santé publique France",
        "slug": "sante-publique-france",
    }
    assert d["temporal_coverage"] == {"start": "2020-03-18", "end": "2021-03-16"}
    assert d["spatial"] == {"granularity": "fr:departement"}
    assert d["extras"] == {"version": V2, "rows": ROWS, "rows_left_out": 3}
    assert d["uri"] == f"/api/1/datasets/{COVID}/"
    assert [(r["extras"]["level"], r["format"]) for r in d["resources"]] == [
        ("dep", "csv"), ("dep", "parquet"), ("reg", "csv"),
        ("reg", "parquet"), ("fra", "csv"), ("fra", "parquet"),
    ]  # fmt: skip


def test_dataset_resource__links_checksum_and_size() -> None:
    res = body(get(f"/api/1/datasets/{COVID}/"))["resources"][0]
    dep_csv = rid(COVID, "dep", "csv")
    assert res == {
        "id": dep_csv,
        "title": "Données hospitalières relatives à l'épidémie de COVID-19 (dep, csv)",
        "description": f"par département ; CSV (séparateur « ; », UTF-8) ; 110595 lignes ; version {V2}",
        "type": "main",
        "filetype": "file",
        "format": "csv",
        "url": f"{FILES}/{COVID}/{V2}/{COVID}-dep.csv",
        "latest": f"/api/1/datasets/r/{dep_csv}",
        "checksum": {"type": "sha256", "value": sha256(f"{COVID}/{V2}/{COVID}-dep.csv")},
        "filesize": 110595 * 21,
        "mime": "text/csv",
        "created_at": "2026-11-20T18:02:44Z",
        "last_modified": "2026-11-29T07:30:12Z",
        "extras": {"rows": 110595, "level": "dep", "version": V2},
    }


def test_dataset_by_id__same_document_as_by_slug() -> None:
    by_slug = get(f"/api/1/datasets/{COVID}/")
    by_id = get(f"/api/1/datasets/{index.dataset_id(COVID)}/")
    assert by_id["statusCode"] == 200
    assert by_id["body"] == by_slug["body"]
    assert by_id["headers"]["ETag"] == by_slug["headers"]["ETag"]


def test_dataset_in_list__same_document_as_detail() -> None:
    listed = body(get("/api/1/datasets/", "q=covid"))["data"][0]
    assert listed == body(get(f"/api/1/datasets/{COVID}/"))


def test_one_resource__same_document_as_in_dataset() -> None:
    reg_parquet = rid(COVID, "reg", "parquet")
    r = get(f"/api/1/datasets/{COVID}/resources/{reg_parquet}/")
    assert r["statusCode"] == 200
    res = body(r)
    assert res["url"] == f"{FILES}/{COVID}/{V2}/{COVID}-reg.parquet"
    assert res["mime"] == "application/vnd.apache.parquet"
    assert res == next(
        x for x in body(get(f"/api/1/datasets/{COVID}/"))["resources"] if x["id"] == reg_parquet
    )


def test_resource_of_another_dataset__404_envelope() -> None:
    r = get(f"/api/1/datasets/{REA}/resources/{rid(COVID, 'dep', 'csv')}/")
    assert r["statusCode"] == 404
    assert body(r) == {
        "status": 404,
        "message": f"resource '{rid(COVID, 'dep', 'csv')}' not found in dataset '{REA}'",
    }


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/api/1/datasets/no-such-dataset/", "dataset 'no-such-dataset' not found"),
        ("/api/1/datasets/no-such-dataset/resources/x/", "dataset 'no-such-dataset' not found"),
        ("/api/1/datasets/r/no-such-resource", "resource 'no-such-resource' not found"),
        ("/api/1/organizations/", "no route for /api/1/organizations/"),
        ("/", "no route for /"),
    ],
)
def test_unknown_path__404_envelope(path: str, message: str) -> None:
    r = get(path)
    assert r["statusCode"] == 404
    assert r["headers"]["Content-Type"] == "application/json; charset=utf-8"
    assert r["headers"]["Access-Control-Allow-Origin"] == "*"
    assert r["headers"]["Cache-Control"] == "no-cache"
    assert body(r) == {"status": 404, "message": message}


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_write_method__405_envelope_with_allow(method: str) -> None:
    r = get(f"/api/1/datasets/{COVID}/", method=method)
    assert r["statusCode"] == 405
    assert r["headers"]["Allow"] == "GET, HEAD, OPTIONS"
    assert body(r) == {
        "status": 405,
        "message": f"{method} is not allowed on /api/1/datasets/{COVID}/",
    }


def test_unexpected_failure__500_envelope(store: CountingStore) -> None:
    store.put(BUCKET, "catalog.json", b"{not json", "application/json")
    r = get("/api/1/datasets/")
    assert r["statusCode"] == 500
    assert body(r) == {"status": 500, "message": "internal error"}


# --- the permanent link ---------------------------------------------------------------------------


def test_latest_fixture_event__302_to_current_version_file() -> None:
    r = call(event("http_get_resource_latest.json"))
    assert r["statusCode"] == 302
    assert r["headers"]["Location"] == f"{FILES}/{COVID}/{V2}/{COVID}-dep.csv"
    assert r["headers"]["Cache-Control"] == "no-cache"
    assert r["headers"]["Access-Control-Allow-Origin"] == "*"
    assert not r["body"]


def test_latest_head__302_without_body() -> None:
    fra_parquet = rid(COVID, "fra", "parquet")
    r = get(f"/api/1/datasets/r/{fra_parquet}", method="HEAD")
    assert r["statusCode"] == 302
    assert r["headers"]["Location"] == f"{FILES}/{COVID}/{V2}/{COVID}-fra.parquet"
    assert not r["body"]


def test_new_version__same_resource_ids_new_etag_and_redirect(store: CountingStore) -> None:
    before = get(f"/api/1/datasets/{COVID}/")
    put_catalog(store, catalog_entry("2026-11-30-07h30m09s", "2026-11-30T07:30:09Z"), rea_entry())
    after = get(f"/api/1/datasets/{COVID}/")
    assert after["headers"]["ETag"] != before["headers"]["ETag"]
    assert [r["id"] for r in body(after)["resources"]] == [
        r["id"] for r in body(before)["resources"]
    ]
    assert body(after)["extras"]["version"] == "2026-11-30-07h30m09s"
    r = call(event("http_get_resource_latest.json"))
    assert r["headers"]["Location"] == f"{FILES}/{COVID}/2026-11-30-07h30m09s/{COVID}-dep.csv"


# --- caching, CORS, HEAD --------------------------------------------------------------------------


def test_json_answer__etag_cache_control_and_cors() -> None:
    r = get(f"/api/1/datasets/{COVID}/")
    assert r["headers"]["ETag"] == index.etag(r["body"])
    assert r["headers"]["ETag"].startswith('"') and len(r["headers"]["ETag"]) == 34
    assert r["headers"]["Cache-Control"] == "public, max-age=60"
    assert r["headers"]["Access-Control-Allow-Origin"] == "*"
    assert "ETag" in r["headers"]["Access-Control-Expose-Headers"]


@pytest.mark.parametrize("form", ["{tag}", "W/{tag}", '"other", {tag}', "*"])
def test_if_none_match_current_etag__304_without_body(form: str) -> None:
    first = get("/api/1/datasets/", "page_size=1")
    tag = first["headers"]["ETag"]
    again = get("/api/1/datasets/", "page_size=1", headers={"if-none-match": form.format(tag=tag)})
    assert again["statusCode"] == 304
    assert not again["body"]
    assert again["headers"]["ETag"] == tag
    assert again["headers"]["Cache-Control"] == "public, max-age=60"
    assert again["headers"]["Access-Control-Allow-Origin"] == "*"


def test_if_none_match_old_etag_after_new_version__200(store: CountingStore) -> None:
    tag = get(f"/api/1/datasets/{COVID}/")["headers"]["ETag"]
    put_catalog(store, catalog_entry("2026-11-30-07h30m09s", "2026-11-30T07:30:09Z"), rea_entry())
    r = get(f"/api/1/datasets/{COVID}/", headers={"if-none-match": tag})
    assert r["statusCode"] == 200
    assert body(r)["extras"]["version"] == "2026-11-30-07h30m09s"


def test_head_dataset__headers_without_body() -> None:
    got = get(f"/api/1/datasets/{COVID}/")
    head = get(f"/api/1/datasets/{COVID}/", method="HEAD")
    assert head["statusCode"] == 200
    assert not head["body"]
    assert head["headers"]["ETag"] == got["headers"]["ETag"]


def test_cors_preflight__204_with_allowed_methods() -> None:
    r = get("/api/1/datasets/", method="OPTIONS")
    assert r["statusCode"] == 204
    assert r["headers"]["Access-Control-Allow-Origin"] == "*"
    assert set(r["headers"]["Access-Control-Allow-Methods"].split(",")) == {
        "GET",
        "HEAD",
        "OPTIONS",
    }


# --- reading catalog.json --------------------------------------------------------------------------


def test_catalog_unchanged__read_once_then_one_head_per_request(store: CountingStore) -> None:
    for _ in range(3):
        assert get("/api/1/datasets/")["statusCode"] == 200
    assert (store.gets, store.heads) == (1, 3)


def test_missing_catalog__empty_pager_and_404(settings: Settings) -> None:
    index_api.configure(MemoryStore(), settings)
    page = body(get("/api/1/datasets/"))
    assert page == {
        "data": [],
        "page": 1,
        "page_size": 20,
        "total": 0,
        "next_page": None,
        "previous_page": None,
    }
    r = get(f"/api/1/datasets/{COVID}/")
    assert r["statusCode"] == 404
    assert body(r) == {"status": 404, "message": f"dataset '{COVID}' not found"}


def test_stage_prefix__stripped_before_routing() -> None:
    e = event(path=f"/prod/api/1/datasets/{COVID}/")
    e["requestContext"]["stage"] = "prod"
    assert body(call(e))["slug"] == COVID


# --- pure helpers ---------------------------------------------------------------------------------


def test_fold__removes_accents_and_case() -> None:
    assert index.fold("Données Hospitalières ÉPIDÉMIE") == "donnees hospitalieres epidemie"


def test_build_catalog_of_nothing__empty() -> None:
    cat = index.build_catalog(None, index.Links(FILES))
    assert cat.datasets == () and not cat.by_key and not cat.resources


def test_documents__are_json_serialisable_without_ascii_escapes() -> None:
    doc = index.dataset_document(copy.deepcopy(catalog_entry()), index.Links(FILES, API))
    text = index.render(doc)
    assert "Données" in text and "\\u" not in text
    assert doc["resources"][0]["latest"] == f"{API}/api/1/datasets/r/{rid(COVID, 'dep', 'csv')}"


# --- against the real publication -------------------------------------------------------------------


def test_catalog_written_by_publish__links_resolve_to_published_bytes(
    cases_dir: Path, pipeline: Any
) -> None:
    settings = Settings(
        publish_queue_url="memory://publish.fifo", public_base_url=FILES, api_base_url=API
    )
    pipeline.settings = settings
    key = f"{COVID}/spf/C01-separator-change-semicolon.csv"
    assert (
        pipeline.drop(key, (cases_dir / "C01-separator-change-semicolon.csv").read_bytes()).status
        == "accepted"
    )
    version = pipeline.publish().version
    index_api.configure(pipeline.store, settings)

    d = body(get(f"/api/1/datasets/{COVID}/"))
    assert d["extras"]["version"] == version
    assert d["extras"]["rows"] == {"dep": 4, "reg": 4, "fra": 1}
    assert d["temporal_coverage"] == {"start": "2020-03-27", "end": "2020-03-27"}
    assert sorted((r["extras"]["level"], r["format"]) for r in d["resources"]) == sorted(
        (level, fmt) for level in ("dep", "reg", "fra") for fmt in ("csv", "parquet")
    )
    for res in d["resources"]:
        assert res["id"] == rid(COVID, res["extras"]["level"], res["format"])
        assert res["url"].startswith(f"{FILES}/{COVID}/{version}/")
        data = pipeline.published(res["url"].removeprefix(FILES + "/"))
        assert res["checksum"]["value"] == hashlib.sha256(data).hexdigest()
        assert res["filesize"] == len(data)
        assert res["latest"] == f"{API}/api/1/datasets/r/{res['id']}"
        assert get(f"/api/1/datasets/r/{res['id']}")["headers"]["Location"] == res["url"]
