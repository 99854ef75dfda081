"""The HTTP index: udata API v1 shapes, pager, filters, quality, versions, schemas, Data Package,
CSV export, redirects, caching, gzip, OpenAPI routes and one error envelope.

Runs ``functions.index_api.app.lambda_handler`` on API Gateway HTTP API v2 events (fixtures in
``tests/events/http_*.json``) over a ``MemoryStore`` holding a ``catalog.json``, manifests and a
``datapackage.json`` complete as the publish stage writes them (``docs/design.md``: each one
parses with its ``opendepot.contracts`` record), with a fixed clock. The helpers here
(``event``, ``call``, ``body``...) are imported by the other ``test_index_api_*`` modules.
"""

from __future__ import annotations

import base64
import copy
import csv
import gzip
import hashlib
import io
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from functions.index_api import app as index_api
from opendepot import contracts, index, openapi, paging
from opendepot.config import Settings
from opendepot.reader import CatalogReader
from opendepot.storage import MemoryStore, ObjectInfo

EVENTS = Path(__file__).parent / "events"
BUCKET = "opendepot-published-123456789012"
FILES = "https://files.opendepot.example.fr"
API = "https://api.opendepot.example.fr"
HOST = "https://abcdef1234.execute-api.eu-west-3.amazonaws.com"
"""Base URL of the fixture events (API Gateway's domain): links when no API base is set."""
COVID = "donnees-hospitalieres-covid19"
REA = "capacites-lits-reanimation"
V1 = "2026-11-28-07h30m05s"
V2 = "2026-11-29-07h30m12s"
ROWS = {"dep": 110595, "reg": 41001, "fra": 2187}
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


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


def level_schema(level: str) -> dict[str, Any]:
    return {
        "fields": [
            {"name": level, "type": "string", "title": f"Code {level}"},
            {"name": "jour", "type": "date"},
            {"name": "hosp", "type": "integer"},
        ],
        "missingValues": [""],
        "primaryKey": [level, "jour"],
    }


SCHEMAS = {level: level_schema(level) for level in ("dep", "reg", "fra")}


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
        "schemas": SCHEMAS,
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
        "schemas": SCHEMAS,
        "manifest_path": f"{REA}/manifest.json",
    }


def version_entry(
    dataset: str, version: str, published_at: str, upload_ids: list[str]
) -> dict[str, Any]:
    return {
        "version": version,
        "published_at": published_at,
        "upload_ids": upload_ids,
        "rows": ROWS,
        "resources": [
            {k: r[k] for k in ("name", "format", "path", "sha256", "bytes", "rows")}
            for r in manifest_resources(dataset, "t", version, published_at)
        ],
    }


UPLOAD_1 = "20261128T072900Z-0a1b2c3d4e5f"
UPLOAD_2 = "20261129T072900Z-1b2c3d4e5f60"


def upload_record(dataset: str, upload_id: str, producer: str) -> dict[str, Any]:
    """An upload record as ``ingest`` writes it (``contracts.UploadRecord``)."""
    key = f"{dataset}/{producer}/{dataset}-2026-11-29.csv"
    staging = f"{dataset}/{producer}/{upload_id}"
    return contracts.UploadRecord(
        key=key, bucket="opendepot-incoming-123456789012", version_id=None,
        etag="9b2cf535f27731c974343645a3985328", sequencer="", received_at="2026-11-29T07:29:00.000Z",
        size=2305225, upload_id=upload_id, dataset=dataset, producer=producer, rows=ROWS["dep"],
        rows_left_out=3, areas=101, sha256=sha256(key), bytes=2305225,
        report_key=f"reports/{staging}.json", staged_key=f"staging/{staging}.parquet",
    ).to_json()  # fmt: skip


def covid_manifest(latest: str = V2, published_at: str = "2026-11-29T07:30:12Z") -> dict[str, Any]:
    entry = catalog_entry(latest, published_at)
    history = [version_entry(COVID, V1, "2026-11-28T07:30:05Z", [UPLOAD_1])]
    if latest != V1:
        history.insert(0, version_entry(COVID, V2, "2026-11-29T07:30:12Z", [UPLOAD_2]))
    if latest not in (V1, V2):
        history.insert(0, version_entry(COVID, latest, published_at, [UPLOAD_2]))
    return {
        "dataset": COVID,
        "version": latest,
        "published_at": published_at,
        "created_at": entry["created_at"],
        "uploads": [upload_record(COVID, UPLOAD_2, "spf")],
        "rows": ROWS,
        "rows_left_out": 3,
        "temporal_coverage": entry["temporal_coverage"],
        "resources": entry["resources"],
        "datapackage_path": f"{COVID}/{latest}/datapackage.json",
        "schema": SCHEMAS["dep"],
        "schemas": SCHEMAS,
        "versions": history,
    }


def datapackage(version: str = V2) -> dict[str, Any]:
    return {
        "name": COVID,
        "title": "Données hospitalières",
        "version": version,
        "resources": [
            {
                "name": f"{COVID}-{level}-{fmt}",
                "path": f"{COVID}-{level}.{fmt}",
                "format": fmt,
                "bytes": ROWS[level],
                "hash": "sha256:" + sha256(f"{level}{fmt}"),
                "rows": ROWS[level],
                "schema": SCHEMAS[level],
            }
            for level in ("dep", "reg", "fra")
            for fmt in ("csv", "parquet")
        ],
    }


def put_json(store: MemoryStore, key: str, doc: Any) -> None:
    store.put(BUCKET, key, json.dumps(doc, ensure_ascii=False).encode(), "application/json")


def put_catalog(store: MemoryStore, *entries: dict[str, Any]) -> None:
    put_json(
        store, "catalog.json", {"generated_at": "2026-11-29T07:30:13Z", "datasets": list(entries)}
    )


class CountingStore(MemoryStore):
    """A MemoryStore that counts reads, per key."""

    def __init__(self) -> None:
        super().__init__()
        self.heads: dict[str, int] = {}
        self.gets: dict[str, int] = {}

    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        self.heads[key] = self.heads.get(key, 0) + 1
        return super().head(bucket, key)

    def get(self, bucket: str, key: str, *, version_id: str | None = None) -> bytes:
        self.gets[key] = self.gets.get(key, 0) + 1
        return super().get(bucket, key, version_id=version_id)


@pytest.fixture
def store() -> CountingStore:
    s = CountingStore()
    put_catalog(s, catalog_entry(), rea_entry())
    put_json(s, f"{COVID}/manifest.json", covid_manifest())
    put_json(s, f"{COVID}/{V2}/datapackage.json", datapackage())
    return s


@pytest.fixture
def settings() -> Settings:
    return Settings(published_bucket=BUCKET, public_base_url=FILES, api_base_url="")


@pytest.fixture(autouse=True)
def configured(store: CountingStore, settings: Settings) -> None:
    index_api.configure(store, settings, clock=lambda: NOW)


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


def raw(response: dict[str, Any]) -> bytes:
    """The body bytes a client sees after undoing base64 and gzip."""
    data = response.get("body") or ""
    out = base64.b64decode(data) if response.get("isBase64Encoded") else data.encode("utf-8")
    if response["headers"].get("Content-Encoding") == "gzip":
        out = gzip.decompress(out)
    return out


def text(response: dict[str, Any]) -> str:
    return raw(response).decode("utf-8")


def body(response: dict[str, Any]) -> Any:
    return json.loads(raw(response))


def get(path: str, query: str = "", **kw: Any) -> dict[str, Any]:
    return call(event(path=path, query=query, **kw))


PLAIN = {"accept-encoding": "identity"}


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


def test_page_size_1__full_urls_to_next_and_previous_pages() -> None:
    first = body(get("/api/1/datasets/", "page_size=1"))
    assert (first["total"], len(first["data"])) == (2, 1)
    assert first["data"][0]["slug"] == REA
    assert first["next_page"] == f"{HOST}/api/1/datasets/?page_size=1&page=2"
    assert first["previous_page"] is None

    second = body(get("/api/1/datasets/", "page_size=1&page=2"))
    assert second["data"][0]["slug"] == COVID
    assert second["page"] == 2
    assert second["next_page"] is None
    assert second["previous_page"] == f"{HOST}/api/1/datasets/?page_size=1&page=1"


def test_pager_links_with_api_base_url__setting_wins_and_filters_kept(store: CountingStore) -> None:
    index_api.configure(
        store, Settings(published_bucket=BUCKET, public_base_url=FILES, api_base_url=API)
    )
    page = body(get("/api/1/datasets/", "tag=hopital&page_size=1&sort=-created"))
    assert (
        page["next_page"] == f"{API}/api/1/datasets/?tag=hopital&page_size=1&sort=-created&page=2"
    )
    assert page["data"][0]["uri"] == f"{API}/api/1/datasets/{REA}/"


def test_stage_and_forwarded_proto__in_links() -> None:
    e = event(path=f"/prod/api/1/datasets/{COVID}/", headers={"x-forwarded-proto": "http"})
    e["requestContext"]["stage"] = "prod"
    d = body(call(e))
    assert (
        d["uri"]
        == "http://abcdef1234.execute-api.eu-west-3.amazonaws.com/prod/api/1/datasets/"
        + COVID
        + "/"
    )


def test_page_past_the_end__empty_data_with_previous_link() -> None:
    page = body(get("/api/1/datasets/", "page=3&page_size=1"))
    assert page["data"] == [] and page["total"] == 2
    assert page["next_page"] is None
    assert page["previous_page"] == f"{HOST}/api/1/datasets/?page_size=1&page=2"


def many_entries(n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        e = rea_entry()
        e["name"] = f"jeu-{i:02d}"
        e["title"] = f"Jeu {i:02d}"
        e["created_at"] = f"2026-11-{10 + (i * 7) % 13:02d}T09:00:00Z"
        out.append(e)
    return out


@pytest.mark.parametrize("page_size", [1, 2, 3, 6, 7, 8, 100])
def test_pages_of_any_size__cover_the_list_once_with_consistent_links(
    store: CountingStore, page_size: int
) -> None:
    put_catalog(store, *many_entries(7))
    seen: list[str] = []
    url: str | None = f"{HOST}/api/1/datasets/?sort=-created&page_size={page_size}"
    pages = 0
    while url:
        query = url.split("?", 1)[1]
        page = body(get("/api/1/datasets/", query))
        pages += 1
        assert page["total"] == 7
        assert len(page["data"]) == min(page_size, 7 - (page["page"] - 1) * page_size)
        assert (page["previous_page"] is None) == (page["page"] == 1)
        seen += [d["slug"] for d in page["data"]]
        url = page["next_page"]
    assert pages == -(-7 // page_size)
    expected = sorted(many_entries(7), key=lambda e: e["created_at"], reverse=True)
    assert seen == [e["name"] for e in expected]


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
        ("format=csv", [REA, COVID]),
        ("format=PARQUET", [REA, COVID]),
        ("format=xlsx", []),
        ("format=csv&organization=drees", [REA]),
    ],
)
def test_tag_organization_format__filter_datasets(query: str, slugs: list[str]) -> None:
    page = body(get("/api/1/datasets/", query))
    assert [d["slug"] for d in page["data"]] == slugs
    assert page["total"] == len(slugs)


def test_format_filter__needs_a_resource_of_that_format(store: CountingStore) -> None:
    csv_only = rea_entry()
    csv_only["resources"] = [r for r in csv_only["resources"] if r["format"] == "csv"]
    put_catalog(store, catalog_entry(), csv_only)
    assert [d["slug"] for d in body(get("/api/1/datasets/", "format=parquet"))["data"]] == [COVID]


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
        ("page=-1", "page='-1' is not an integer"),
        ("page=1.5", "page='1.5' is not an integer"),
        ("page_size=%EF%BC%91", "page_size='１' is not an integer"),  # fullwidth digit
        (
            "sort=downloads",
            "sort='downloads' is not one of title, created, last_update, reuses, followers, "
            "views (prefix - to reverse)",
        ),
    ],
)
def test_bad_list_parameter__400_envelope(query: str, message: str) -> None:
    r = get("/api/1/datasets/", query)
    assert r["statusCode"] == 400
    assert body(r) == {"status": 400, "message": message}
    assert r["headers"]["Access-Control-Allow-Origin"] == "*"
    assert r["headers"]["Cache-Control"] == "no-cache"


def test_page_size_100__accepted() -> None:
    assert body(get("/api/1/datasets/", "page_size=100"))["page_size"] == 100


# --- one dataset, one resource --------------------------------------------------------------------

NoneType = type(None)
DATASET_TYPES = {
    "id": str,
    "slug": str,
    "title": str,
    "acronym": NoneType,
    "description": str,
    "created_at": str,
    "last_modified": str,
    "last_update": str,
    "tags": list,
    "frequency": str,
    "frequency_date": str,
    "organization": dict,
    "license": str,
    "temporal_coverage": dict,
    "spatial": dict,
    "schema": dict,
    "extras": dict,
    "quality": dict,
    "resources": list,
    "uri": str,
    "page": str,
    # udata keys opendepot serves with udata's "none" (see opendepot.udata_fields)
    "description_short": str,
    "deleted": NoneType,
    "archived": NoneType,
    "featured": bool,
    "private": bool,
    "badges": list,
    "harvest": NoneType,
    "owner": NoneType,
    "contact_points": list,
    "metrics": dict,
    "internal": dict,
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
    "schema": dict,
    "extras": dict,
    "internal": dict,
    "metrics": dict,
    "harvest": NoneType,
    "preview_url": NoneType,
}
QUALITY_TYPES = {
    "license": bool,
    "temporal_coverage": bool,
    "spatial": bool,
    "update_frequency": bool,
    "update_fulfilled_in_time": bool,
    "dataset_description_quality": bool,
    "has_resources": bool,
    "has_open_format": bool,
    "all_resources_available": bool,
    "resources_documentation": bool,
    "score": float,
}


def test_dataset_fixture_event__every_udata_key_with_its_type() -> None:
    r = call(event("http_get_dataset.json"))
    assert r["statusCode"] == 200
    d = body(r)
    assert {k: type(v) for k, v in d.items()} == DATASET_TYPES
    assert {k: type(v) for k, v in d["quality"].items()} == QUALITY_TYPES
    assert set(d["spatial"]) == {"granularity", "zones", "geom"}
    assert set(d["schema"]) == {"name", "version", "url"}
    assert len(d["resources"]) == 6
    for res in d["resources"]:
        assert {k: type(v) for k, v in res.items()} == RESOURCE_TYPES
        assert set(res["checksum"]) == {"type", "value"}
        assert set(res["schema"]) == {"name", "version", "url"}
        assert set(res["extras"]) == {"rows", "level", "version"}


def test_dataset__real_values() -> None:
    d = body(get(f"/api/1/datasets/{COVID}/"))
    assert d["id"] == str(uuid.uuid5(uuid.NAMESPACE_URL, f"opendepot:{COVID}"))
    assert d["id"] == index.dataset_id(COVID)
    assert d["slug"] == COVID
    assert d["title"] == "Données hospitalières relatives à l'épidémie de COVID-19"
    assert d["acronym"] is None
    assert (d["created_at"], d["last_modified"], d["last_update"]) == (
        "2026-11-20T18:02:44Z",
        "2026-11-29T07:30:12Z",
        "2026-11-29T07:30:12Z",
    )
    assert d["tags"] == ["covid19", "hopital", "sante-publique-france", "si-vic"]
    assert (d["frequency"], d["frequency_date"]) == ("daily", "2026-11-30T07:30:12Z")
    assert d["license"] == "lov2"
    assert d["organization"] == {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, "opendepot:organization:sante-publique-france")),
        "name": "Santé publique France",
        "acronym": None,
        "uri": f"{HOST}/api/1/organizations/sante-publique-france/",
        "slug": "sante-publique-france",
        "page": f"{HOST}/api/1/organizations/sante-publique-france/",
        "logo": None,
        "logo_thumbnail": None,
        "badges": [],
    }
    assert d["internal"] == {"created_at_internal": "2026-11-20T18:02:44Z",
                             "last_modified_internal": "2026-11-29T07:30:12Z"}
    assert d["metrics"]["reuses"] == 0 and d["metrics"]["reuses_by_months"] == {}
    assert d["temporal_coverage"] == {"start": "2020-03-18", "end": "2021-03-16"}
    assert d["spatial"] == {"granularity": "fr:departement", "zones": ["country:fr"], "geom": None}
    assert d["schema"] == {
        "name": COVID,
        "version": index.schema_version(SCHEMAS["dep"]),
        "url": f"{HOST}/api/1/datasets/{COVID}/schema/",
    }
    assert d["extras"] == {
        "version": V2,
        "rows": ROWS,
        "rows_left_out": 3,
        "levels": ["dep", "reg", "fra"],
        "versions": f"{HOST}/api/1/datasets/{COVID}/versions/",
        "datapackage": f"{HOST}/api/1/datasets/{COVID}/datapackage.json",
    }
    assert d["uri"] == d["page"] == f"{HOST}/api/1/datasets/{COVID}/"
    assert d["quality"] == {
        "license": True,
        "temporal_coverage": True,
        "spatial": True,
        "update_frequency": True,
        "update_fulfilled_in_time": True,
        "dataset_description_quality": True,
        "has_resources": True,
        "has_open_format": True,
        "all_resources_available": True,
        "resources_documentation": True,
        "score": 1.0,
    }
    assert [(r["extras"]["level"], r["format"]) for r in d["resources"]] == [
        ("dep", "csv"), ("dep", "parquet"), ("reg", "csv"),
        ("reg", "parquet"), ("fra", "csv"), ("fra", "parquet"),
    ]  # fmt: skip


def test_dataset_resource__links_checksum_size_schema() -> None:
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
        "latest": f"{HOST}/api/1/datasets/r/{dep_csv}",
        "checksum": {"type": "sha256", "value": sha256(f"{COVID}/{V2}/{COVID}-dep.csv")},
        "filesize": 110595 * 21,
        "mime": "text/csv",
        "created_at": "2026-11-20T18:02:44Z",
        "last_modified": "2026-11-29T07:30:12Z",
        "schema": {
            "name": COVID,
            "version": index.schema_version(SCHEMAS["dep"]),
            "url": f"{HOST}/api/1/datasets/{COVID}/schema/?level=dep",
        },
        "extras": {"rows": 110595, "level": "dep", "version": V2},
        "internal": {"created_at_internal": "2026-11-20T18:02:44Z",
                     "last_modified_internal": "2026-11-29T07:30:12Z"},
        "metrics": {"views": 0},
        "harvest": None,
        "preview_url": None,
    }


def test_catalog_without_schemas__schema_version_null(store: CountingStore) -> None:
    entry = catalog_entry()
    del entry["schemas"]
    put_catalog(store, entry)
    d = body(get(f"/api/1/datasets/{COVID}/"))
    assert d["schema"]["version"] is None
    assert d["resources"][2]["schema"] == {
        "name": COVID,
        "version": None,
        "url": f"{HOST}/api/1/datasets/{COVID}/schema/?level=reg",
    }


@pytest.mark.parametrize(
    ("now", "in_time"),
    [
        (datetime(2026, 11, 29, 12, 0, tzinfo=UTC), True),  # before the due date
        (datetime(2026, 12, 1, 7, 30, 12, tzinfo=UTC), True),  # due 30/11 07:30:12, one day late
        (datetime(2026, 12, 1, 7, 30, 13, tzinfo=UTC), False),  # one day and a second late
        (datetime(2027, 1, 1, tzinfo=UTC), False),
    ],
)
def test_daily_dataset_quality__in_time_until_one_day_past_due(
    store: CountingStore, settings: Settings, now: datetime, in_time: bool
) -> None:
    index_api.configure(store, settings, clock=lambda: now)
    q = body(get(f"/api/1/datasets/{COVID}/"))["quality"]
    assert q["update_fulfilled_in_time"] is in_time
    assert q["score"] == (1.0 if in_time else round(8 / 9, 4))


@pytest.mark.parametrize(
    ("frequency", "frequency_date", "in_time"),
    [
        ("weekly", "2026-12-06T07:30:12Z", True),
        ("hourly", "2026-11-29T08:30:12Z", True),  # due 08:30:12: 3.5 h late is within the grace
        ("irregular", None, True),
        ("continuous", None, True),
        ("unknown", None, None),
    ],
)
def test_frequency__due_date_and_in_time(
    store: CountingStore, frequency: str, frequency_date: str | None, in_time: bool | None
) -> None:
    entry = catalog_entry()
    entry["frequency"] = frequency
    put_catalog(store, entry)
    d = body(get(f"/api/1/datasets/{COVID}/"))
    assert d["frequency_date"] == frequency_date
    assert d["quality"]["update_fulfilled_in_time"] is in_time
    assert d["quality"]["update_frequency"] is (frequency != "unknown")


def sparse_entry() -> dict[str, Any]:
    """A complete catalog entry with the least a published dataset can have: no organization,
    licence, frequency, tags, levels, coverage or files, a short description."""
    return {
        "name": "vide", "title": "Vide", "description": "court", "organization": {},
        "license": "", "frequency": "", "tags": [], "version": "2026-11-01-00h00m00s",
        "published_at": "2026-11-01T00:00:00Z", "created_at": "2026-11-01T00:00:00Z", "rows": {},
        "rows_left_out": 0, "temporal_coverage": None, "levels": [], "resources": [],
        "schemas": {}, "manifest_path": "vide/manifest.json",
    }  # fmt: skip


def test_sparse_entry__quality_criteria_false(store: CountingStore) -> None:
    put_catalog(store, sparse_entry())
    d = body(get("/api/1/datasets/vide/"))
    assert d["quality"] == {
        "license": False,
        "temporal_coverage": False,
        "spatial": False,
        "update_frequency": False,
        "update_fulfilled_in_time": None,
        "dataset_description_quality": False,
        "has_resources": False,
        "has_open_format": False,
        "all_resources_available": False,
        "resources_documentation": False,
        "score": 0.0,
    }
    assert (d["license"], d["spatial"], d["temporal_coverage"], d["organization"]) == (
        "notspecified",
        None,
        None,
        None,
    )


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


def test_resource_without_trailing_slash__same_document() -> None:
    path = f"/api/1/datasets/{COVID}/resources/{rid(COVID, 'fra', 'csv')}"
    assert body(get(path)) == body(get(path + "/"))


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
        ("/api/1/datasets/no-such-dataset/versions/", "dataset 'no-such-dataset' not found"),
        ("/api/1/datasets/no-such-dataset/schema/", "dataset 'no-such-dataset' not found"),
        ("/api/1/datasets/no-such-dataset/datapackage.json", "dataset 'no-such-dataset' not found"),
        ("/api/1/datasets/r/no-such-resource", "resource 'no-such-resource' not found"),
        (f"/api/1/datasets/{COVID}/versions/2020-01-01-00h00m00s/",
         f"version '2020-01-01-00h00m00s' not found in dataset '{COVID}'"),
        (f"/api/1/datasets/{REA}/versions/", f"dataset '{REA}' has no published version"),
        ("/api/1/organisations/", "no route for /api/1/organisations/"),
        ("/", "no route for /"),
    ],
)  # fmt: skip
def test_unknown_path__404_envelope(path: str, message: str) -> None:
    r = get(path)
    assert r["statusCode"] == 404
    assert r["headers"]["Content-Type"] == "application/json; charset=utf-8"
    assert r["headers"]["Access-Control-Allow-Origin"] == "*"
    assert r["headers"]["Cache-Control"] == "no-cache"
    assert body(r) == {"status": 404, "message": message}


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize(
    "path",
    [
        f"/api/1/datasets/{COVID}/",
        "/api/1/datasets/",
        f"/api/1/datasets/{COVID}/versions/{V1}/",
        f"/api/1/datasets/{COVID}/datapackage.json",
        "/catalog.jsonld",
        "/api/1/openapi.json",
    ],
)
def test_write_method__405_envelope_with_allow(method: str, path: str) -> None:
    r = get(path, method=method)
    assert r["statusCode"] == 405
    assert r["headers"]["Allow"] == "GET, HEAD, OPTIONS"
    assert body(r) == {"status": 405, "message": f"{method} is not allowed on {path}"}


def test_unexpected_failure__500_envelope(store: CountingStore) -> None:
    store.put(BUCKET, "catalog.json", b"{not json", "application/json")
    r = get("/api/1/datasets/")
    assert r["statusCode"] == 500
    assert body(r) == {"status": 500, "message": "internal error"}


UNREADABLE = "published document unreadable"


def assert_500_envelope(r: dict[str, Any]) -> None:
    assert r["statusCode"] == 500, r
    assert body(r) == {"status": 500, "message": "internal error"}
    assert r["headers"]["Cache-Control"] == "no-cache"
    assert r["headers"]["Access-Control-Allow-Origin"] == "*"


def logged_unreadable(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, type]]:
    """(key, error, exception type) of every "published document unreadable" record."""
    return [
        (rec.key, rec.error, type(rec.exc_info[1]))  # type: ignore[attr-defined,index]
        for rec in caplog.records
        if rec.getMessage() == UNREADABLE
    ]


def without_path(e: dict[str, Any]) -> None:
    del e["resources"][0]["path"]


def rows_as_text(e: dict[str, Any]) -> None:
    e["rows"] = {**e["rows"], "dep": "110595"}


def tags_as_text(e: dict[str, Any]) -> None:
    e["tags"] = "covid19"


@pytest.mark.parametrize(
    ("spoil", "error"),
    [
        (without_path, "Resource.path: missing"),
        (rows_as_text, "CatalogEntry.rows: expected an object of integers"),
        (tags_as_text, "CatalogEntry.tags: expected an array, got 'covid19'"),
    ],
)
def test_catalog_not_its_contract__500_envelope_logged_then_served_once_repaired(
    store: CountingStore, caplog: pytest.LogCaptureFixture, spoil: Any, error: str
) -> None:
    entry = catalog_entry()
    spoil(entry)
    put_catalog(store, entry, rea_entry())
    paths = ["/api/1/datasets/", f"/api/1/datasets/{COVID}/", f"/api/1/datasets/{REA}/",
             f"/api/1/datasets/r/{rid(REA, 'dep', 'csv')}", "/api/1/site/datasets.csv",
             "/catalog.jsonld"]  # fmt: skip
    with caplog.at_level("ERROR"):
        for path in paths:
            assert_500_envelope(get(path))
    assert logged_unreadable(caplog) == [("catalog.json", error, contracts.ContractError)] * 6
    assert store.gets["catalog.json"] == 6  # a broken catalog is not kept: read again each time
    put_catalog(store, catalog_entry(), rea_entry())
    assert [get(path)["statusCode"] for path in paths] == [200, 200, 200, 302, 200, 200]


def test_manifest_not_its_contract__500_on_its_routes_only_then_served_once_repaired(
    store: CountingStore, caplog: pytest.LogCaptureFixture
) -> None:
    m = covid_manifest()
    m["versions"][1]["upload_ids"] = UPLOAD_1  # a string, not an array
    put_json(store, f"{COVID}/manifest.json", m)
    paths = [f"/api/1/datasets/{COVID}/versions/", f"/api/1/datasets/{COVID}/versions/{V1}/",
             f"/api/1/datasets/{COVID}/schema/", f"/api/1/datasets/{COVID}/datapackage.json"]  # fmt: skip
    with caplog.at_level("ERROR"):
        for path in paths:
            assert_500_envelope(get(path))
        assert get(f"/api/1/datasets/{COVID}/")["statusCode"] == 200  # the catalog still serves
    error = f"Version.upload_ids: expected an array, got '{UPLOAD_1}'"
    key = f"{COVID}/manifest.json"
    assert logged_unreadable(caplog) == [(key, error, contracts.ContractError)] * 4
    put_json(store, key, covid_manifest())
    assert [get(path)["statusCode"] for path in paths] == [200, 200, 200, 200]
    assert [v["version"] for v in body(get(paths[0]))["data"]] == [V2, V1]


def test_manifest_not_json__500_envelope_and_logged(
    store: CountingStore, caplog: pytest.LogCaptureFixture
) -> None:
    store.put(BUCKET, f"{COVID}/manifest.json", b'{"dataset": ', "application/json")
    with caplog.at_level("ERROR"):
        assert_500_envelope(get(f"/api/1/datasets/{COVID}/versions/"))
    [(key, error, kind)] = logged_unreadable(caplog)
    assert (key, kind) == (f"{COVID}/manifest.json", json.JSONDecodeError)
    assert error.startswith("Expecting value")


def test_reader__parses_catalog_and_manifest_into_the_contracts(
    store: CountingStore, settings: Settings
) -> None:
    reader = CatalogReader(settings, store, lambda: NOW)
    assert [d["slug"] for d in reader.catalog("").datasets] == [REA, COVID]
    cached = reader.manifest(COVID)
    assert isinstance(cached.manifest, contracts.Manifest)
    assert cached.manifest == contracts.Manifest.from_json(covid_manifest())
    assert cached.manifest.upload_ids == (UPLOAD_2,)
    assert reader.manifest(COVID) is cached  # same ETag: parsed once
    assert store.gets[f"{COVID}/manifest.json"] == 1


# --- the permanent link ---------------------------------------------------------------------------


def test_latest_fixture_event__302_to_current_version_file() -> None:
    r = call(event("http_get_resource_latest.json"))
    assert r["statusCode"] == 302
    assert r["headers"]["Location"] == f"{FILES}/{COVID}/{V2}/{COVID}-dep.csv"
    assert r["headers"]["Cache-Control"] == "no-cache"
    assert r["headers"]["Access-Control-Allow-Origin"] == "*"
    assert not r["body"]


def test_latest_head_fixture_event__302_without_body() -> None:
    r = call(event("http_head_resource_latest.json"))
    assert r["statusCode"] == 302
    assert r["headers"]["Location"] == f"{FILES}/{COVID}/{V2}/{COVID}-fra.parquet"
    assert r["headers"]["Access-Control-Allow-Origin"] == "*"
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


# --- versions -------------------------------------------------------------------------------------


def test_versions_fixture_event__newest_first_with_uploads_rows_files() -> None:
    r = call(event("http_get_versions.json"))
    assert r["statusCode"] == 200
    page = body(r)
    assert (page["page"], page["page_size"], page["total"]) == (1, 20, 2)
    assert (page["next_page"], page["previous_page"]) == (None, None)
    assert [v["version"] for v in page["data"]] == [V2, V1]
    v2 = page["data"][0]
    assert set(v2) == {
        "version", "published_at", "uploads", "producers", "upload_count", "rows", "resources",
        "datapackage", "uri",
    }  # fmt: skip
    assert v2["upload_count"] == 1  # a fixture manifest from before the upload index
    assert v2["published_at"] == "2026-11-29T07:30:12Z"
    assert v2["uploads"] == [{"upload_id": UPLOAD_2, "producer": "spf",
                              "received_at": "2026-11-29T07:29:00Z", "new": True}]
    assert v2["producers"] == ["spf"]
    assert v2["rows"] == ROWS
    assert v2["datapackage"] == f"{FILES}/{COVID}/{V2}/datapackage.json"
    assert v2["uri"] == f"{HOST}/api/1/datasets/{COVID}/versions/{V2}/"
    assert v2["resources"][1] == {
        "id": rid(COVID, "dep", "parquet"),
        "name": f"{COVID}-dep",
        "level": "dep",
        "format": "parquet",
        "mime": "application/vnd.apache.parquet",
        "url": f"{FILES}/{COVID}/{V2}/{COVID}-dep.parquet",
        "checksum": {"type": "sha256", "value": sha256(f"{COVID}/{V2}/{COVID}-dep.parquet")},
        "filesize": 110595 * 4,
        "rows": 110595,
    }
    # the producer of an upload the manifest no longer lists is unknown, not guessed
    assert page["data"][1]["uploads"] == [{"upload_id": UPLOAD_1, "producer": None,
                                           "received_at": "2026-11-28T07:29:00Z",
                                           "new": True}]
    assert page["data"][1]["producers"] == []


def test_version_entries_with_uploads__give_every_producer(store: CountingStore) -> None:
    m = covid_manifest()
    m["versions"][1]["uploads"] = [{"upload_id": UPLOAD_1, "producer": "ars-idf"}]
    put_json(store, f"{COVID}/manifest.json", m)
    v1 = body(get(f"/api/1/datasets/{COVID}/versions/{V1}/"))
    assert [(u["upload_id"], u["producer"]) for u in v1["uploads"]] == [(UPLOAD_1, "ars-idf")]
    assert v1["producers"] == ["ars-idf"]


def test_versions_page_size_1__pager_links_and_empty_page_past_end() -> None:
    first = body(get(f"/api/1/datasets/{COVID}/versions/", "page_size=1"))
    assert [v["version"] for v in first["data"]] == [V2]
    assert first["next_page"] == f"{HOST}/api/1/datasets/{COVID}/versions/?page_size=1&page=2"
    second = body(get(f"/api/1/datasets/{COVID}/versions/", "page_size=1&page=2"))
    assert [v["version"] for v in second["data"]] == [V1]
    assert second["next_page"] is None
    past = body(get(f"/api/1/datasets/{COVID}/versions", "page_size=1&page=5"))
    assert (past["data"], past["total"]) == ([], 2)
    assert past["previous_page"] == f"{HOST}/api/1/datasets/{COVID}/versions/?page_size=1&page=4"


def test_versions_by_dataset_id__same_as_by_slug() -> None:
    by_id = body(get(f"/api/1/datasets/{index.dataset_id(COVID)}/versions/"))
    assert by_id == body(get(f"/api/1/datasets/{COVID}/versions/"))


@pytest.mark.parametrize(
    ("query", "message"),
    [("page_size=500", "page_size=500 must be at least 1 and at most 100"),
     ("page=x", "page='x' is not an integer")],
)  # fmt: skip
def test_bad_versions_page__400(query: str, message: str) -> None:
    r = get(f"/api/1/datasets/{COVID}/versions/", query)
    assert (r["statusCode"], body(r)) == (400, {"status": 400, "message": message})


def test_version_detail__same_as_in_list_and_cached_long() -> None:
    listed = body(get(f"/api/1/datasets/{COVID}/versions/"))["data"][1]
    r = get(f"/api/1/datasets/{COVID}/versions/{V1}/")
    assert r["statusCode"] == 200
    assert body(r) == listed
    assert body(r)["resources"][0]["url"] == f"{FILES}/{COVID}/{V1}/{COVID}-dep.csv"
    assert r["headers"]["Cache-Control"] == "public, max-age=86400"
    assert body(get(f"/api/1/datasets/{COVID}/versions/{V1}")) == listed


def test_manifest_unchanged__read_once_then_one_head_per_request(store: CountingStore) -> None:
    for _ in range(3):
        assert get(f"/api/1/datasets/{COVID}/versions/")["statusCode"] == 200
    key = f"{COVID}/manifest.json"
    assert (store.gets[key], store.heads[key]) == (1, 3)
    assert (store.gets["catalog.json"], store.heads["catalog.json"]) == (1, 3)


def test_manifest_switched__versions_reread(store: CountingStore) -> None:
    assert len(body(get(f"/api/1/datasets/{COVID}/versions/"))["data"]) == 2
    put_json(
        store,
        f"{COVID}/manifest.json",
        covid_manifest("2026-11-30-07h30m09s", "2026-11-30T07:30:09Z"),
    )
    page = body(get(f"/api/1/datasets/{COVID}/versions/"))
    assert [v["version"] for v in page["data"]] == ["2026-11-30-07h30m09s", V2, V1]
    assert store.gets[f"{COVID}/manifest.json"] == 2


# --- schema and data package ----------------------------------------------------------------------


def test_schema__primary_level_with_version() -> None:
    r = get(f"/api/1/datasets/{COVID}/schema/")
    assert r["statusCode"] == 200
    assert body(r) == {**SCHEMAS["dep"], "version": index.schema_version(SCHEMAS["dep"])}
    assert body(r)["version"] == body(get(f"/api/1/datasets/{COVID}/"))["schema"]["version"]


@pytest.mark.parametrize("level", ["dep", "reg", "fra"])
def test_schema_of_level__that_level_with_the_version_its_resources_give(level: str) -> None:
    s = body(get(f"/api/1/datasets/{COVID}/schema/", f"level={level}"))
    assert s["primaryKey"] == [level, "jour"]
    res = next(
        r
        for r in body(get(f"/api/1/datasets/{COVID}/"))["resources"]
        if r["extras"]["level"] == level
    )
    assert s["version"] == res["schema"]["version"] == index.schema_version(SCHEMAS[level])


def test_schema_version__changes_only_with_the_schema() -> None:
    same = copy.deepcopy(SCHEMAS["dep"])
    assert index.schema_version(same) == index.schema_version(SCHEMAS["dep"])
    same["fields"][2]["type"] = "number"
    assert index.schema_version(same) != index.schema_version(SCHEMAS["dep"])
    assert len(index.schema_version(same) or "") == 12


def test_schema_unknown_level__400() -> None:
    r = get(f"/api/1/datasets/{COVID}/schema/", "level=commune")
    assert r["statusCode"] == 400
    assert body(r) == {"status": 400, "message": "level='commune' is not one of dep, reg, fra"}


def test_datapackage__current_version_with_absolute_paths(store: CountingStore) -> None:
    r = get(f"/api/1/datasets/{COVID}/datapackage.json")
    assert r["statusCode"] == 200
    pkg = body(r)
    assert (pkg["name"], pkg["version"]) == (COVID, V2)
    assert [x["path"] for x in pkg["resources"][:2]] == [
        f"{FILES}/{COVID}/{V2}/{COVID}-dep.csv",
        f"{FILES}/{COVID}/{V2}/{COVID}-dep.parquet",
    ]
    assert pkg["resources"][0]["hash"] == "sha256:" + sha256("depcsv")
    assert pkg["resources"][0]["schema"] == SCHEMAS["dep"]
    get(f"/api/1/datasets/{COVID}/datapackage.json")
    assert store.gets[f"{COVID}/{V2}/datapackage.json"] == 1  # immutable: read once


def test_datapackage_missing__404(store: CountingStore) -> None:
    store.buckets[BUCKET].pop(f"{COVID}/{V2}/datapackage.json")
    r = get(f"/api/1/datasets/{COVID}/datapackage.json")
    assert (r["statusCode"], body(r)["message"]) == (
        404,
        f"dataset '{COVID}' has no datapackage.json",
    )


# --- CSV export -----------------------------------------------------------------------------------


def test_datasets_csv__one_semicolon_row_per_dataset() -> None:
    r = get("/api/1/site/datasets.csv", headers=PLAIN)
    assert r["statusCode"] == 200
    assert r["headers"]["Content-Type"] == "text/csv; charset=utf-8"
    assert r["headers"]["ETag"] == index.etag(r["body"])
    rows = list(csv.DictReader(io.StringIO(text(r)), delimiter=";"))
    assert list(rows[0]) == list(paging.CSV_COLUMNS)
    assert [row["slug"] for row in rows] == [REA, COVID]
    covid = rows[1]
    assert covid["id"] == index.dataset_id(COVID)
    assert covid["title"] == "Données hospitalières relatives à l'épidémie de COVID-19"
    assert covid["url"] == f"{HOST}/api/1/datasets/{COVID}/"
    assert (covid["organization"], covid["license"], covid["frequency"]) == (
        "Santé publique France", "lov2", "daily",
    )  # fmt: skip
    assert (covid["created_at"], covid["last_modified"]) == (
        "2026-11-20T18:02:44Z",
        "2026-11-29T07:30:12Z",
    )
    assert (covid["temporal_coverage.start"], covid["temporal_coverage.end"]) == (
        "2020-03-18",
        "2021-03-16",
    )
    assert covid["tags"] == "covid19,hopital,sante-publique-france,si-vic"
    assert (covid["resources_count"], covid["resources_formats"]) == ("6", "csv,parquet")
    assert (covid["quality_score"], covid["version"], covid["rows"]) == (
        "1.0",
        V2,
        str(sum(ROWS.values())),
    )


# --- caching, gzip, CORS, HEAD --------------------------------------------------------------------


def test_json_answer__etag_cache_control_vary_and_cors() -> None:
    r = get(f"/api/1/datasets/{COVID}/", headers=PLAIN)
    assert "Content-Encoding" not in r["headers"] and not r["isBase64Encoded"]
    assert r["headers"]["ETag"] == index.etag(r["body"])
    assert r["headers"]["ETag"].startswith('"') and len(r["headers"]["ETag"]) == 34
    assert r["headers"]["Cache-Control"] == "public, max-age=60"
    assert r["headers"]["Vary"] == "Accept-Encoding, X-Fields"
    assert r["headers"]["Access-Control-Allow-Origin"] == "*"
    assert "ETag" in r["headers"]["Access-Control-Expose-Headers"]


def test_accept_gzip__base64_gzip_body_and_weak_etag() -> None:
    plain = get(f"/api/1/datasets/{COVID}/", headers=PLAIN)
    r = get(f"/api/1/datasets/{COVID}/", headers={"accept-encoding": "gzip, deflate, br"})
    assert r["isBase64Encoded"] is True
    assert r["headers"]["Content-Encoding"] == "gzip"
    assert raw(r) == plain["body"].encode("utf-8")
    assert len(base64.b64decode(r["body"])) < len(plain["body"]) / 2
    assert r["headers"]["ETag"] == "W/" + plain["headers"]["ETag"]


def test_small_answer__not_gzipped() -> None:
    r = get("/api/1/datasets/", "tag=nothing", headers={"accept-encoding": "gzip"})
    assert "Content-Encoding" not in r["headers"]
    assert body(r)["total"] == 0


@pytest.mark.parametrize("form", ["{tag}", "W/{tag}", '"other", {tag}', "*"])
def test_if_none_match_current_etag__304_without_body(form: str) -> None:
    first = get("/api/1/datasets/", "page_size=1", headers=PLAIN)
    tag = first["headers"]["ETag"]
    again = get(
        "/api/1/datasets/", "page_size=1", headers={**PLAIN, "if-none-match": form.format(tag=tag)}
    )
    assert again["statusCode"] == 304
    assert not again["body"]
    assert "Content-Encoding" not in again["headers"]
    assert again["headers"]["ETag"] == tag
    assert again["headers"]["Cache-Control"] == "public, max-age=60"
    assert again["headers"]["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize(
    "path",
    [
        f"/api/1/datasets/{COVID}/versions/",
        f"/api/1/datasets/{COVID}/versions/{V1}/",
        f"/api/1/datasets/{COVID}/schema/",
        f"/api/1/datasets/{COVID}/datapackage.json",
        f"/api/1/datasets/{COVID}/resources/{rid(COVID, 'dep', 'csv')}/",
        "/api/1/site/datasets.csv",
        "/catalog.jsonld",
        "/api/1/openapi.json",
    ],
)
def test_every_answer__304_on_its_own_etag(path: str) -> None:
    tag = get(path)["headers"]["ETag"]
    assert get(path, headers={"if-none-match": tag})["statusCode"] == 304


def test_if_none_match_old_etag_after_new_version__200(store: CountingStore) -> None:
    tag = get(f"/api/1/datasets/{COVID}/")["headers"]["ETag"]
    put_catalog(store, catalog_entry("2026-11-30-07h30m09s", "2026-11-30T07:30:09Z"), rea_entry())
    r = get(f"/api/1/datasets/{COVID}/", headers={"if-none-match": tag})
    assert r["statusCode"] == 200
    assert body(r)["extras"]["version"] == "2026-11-30-07h30m09s"


def test_head_dataset__headers_without_body() -> None:
    got = get(f"/api/1/datasets/{COVID}/", headers=PLAIN)
    head = get(f"/api/1/datasets/{COVID}/", method="HEAD")
    assert head["statusCode"] == 200
    assert not head["body"]
    assert "Content-Encoding" not in head["headers"]
    assert head["headers"]["ETag"] == got["headers"]["ETag"]


def test_cors_preflight__204_with_allowed_methods_and_headers() -> None:
    r = get("/api/1/datasets/", method="OPTIONS")
    assert r["statusCode"] == 204
    assert r["headers"]["Access-Control-Allow-Origin"] == "*"
    assert set(r["headers"]["Access-Control-Allow-Methods"].split(",")) == {
        "GET",
        "HEAD",
        "OPTIONS",
    }
    assert "If-None-Match" in r["headers"]["Access-Control-Allow-Headers"]


# --- reading catalog.json --------------------------------------------------------------------------


def test_catalog_unchanged__read_once_then_one_head_per_request(store: CountingStore) -> None:
    for _ in range(3):
        assert get("/api/1/datasets/")["statusCode"] == 200
    assert (store.gets["catalog.json"], store.heads["catalog.json"]) == (1, 3)
    assert f"{COVID}/manifest.json" not in store.heads  # the list needs no manifest


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


# --- OpenAPI --------------------------------------------------------------------------------------


def concrete(template: str) -> str:
    """A path of a route template, with real values for its parameters."""
    values = {"dataset": COVID, "rid": rid(COVID, "dep", "csv"), "version": V1,
              "org": "sante-publique-france", "format": "ttl"}
    return re.sub(r"[<{](\w+)[>}]", lambda m: values[m[1]], template)


def test_openapi_paths__exactly_the_declared_routes_each_answering_get_and_head() -> None:
    doc = body(get("/api/1/openapi.json"))
    declared = {re.sub(r"<(\w+)>", r"{\1}", rule) for rule in index_api.ROUTES}
    assert set(doc["paths"]) == declared
    assert len(index_api.ROUTES) == len(declared) >= 22
    for template, ops in doc["paths"].items():
        if "reuse" in template or template.startswith("/api/resources/"):
            continue  # reuses and rows: their own tests (they need reuses and Parquet files)
        assert set(ops) == {"get", "head"}, template
        assert ops["head"]["operationId"] == ops["get"]["operationId"] + "_head"
        path = concrete(template)
        for method in ("GET", "HEAD"):
            r = get(path, method=method)
            assert r["statusCode"] == (302 if "/r/" in path else 200), (method, path, r)
        twin = path[:-1] if path.endswith("/") else path + "/"
        # the twin with or without the slash answers too (not after a file name)
        expected = 404 if "." in path.rsplit("/", 1)[-1] else (302 if "/r/" in path else 200)
        assert get(twin)["statusCode"] == expected, twin
        assert get(path, method="DELETE")["statusCode"] == 405


def test_openapi_undeclared_path__404_and_not_documented() -> None:
    doc = body(get("/api/1/openapi.json"))
    assert "/api/1/topics/" not in doc["paths"]
    assert get("/api/1/topics/")["statusCode"] == 404


def test_openapi_document__valid_openapi_3_1_with_server_url() -> None:
    from openapi_spec_validator import validate

    doc = body(get("/api/1/openapi.json"))
    validate(doc)
    assert doc["openapi"] == "3.1.0"
    assert doc["servers"] == [{"url": HOST}]
    assert openapi.openapi_document(index_api.app)["paths"] == doc["paths"]
    assert "servers" not in openapi.openapi_document(index_api.app)


# --- pure helpers ---------------------------------------------------------------------------------


def test_fold__removes_accents_and_case() -> None:
    assert paging.fold("Données Hospitalières ÉPIDÉMIE") == "donnees hospitalieres epidemie"


def test_build_catalog_of_nothing__empty() -> None:
    cat = index.build_catalog(None, index.Links(FILES))
    assert cat.datasets == () and not cat.by_key and not cat.resources


def test_documents__are_json_serialisable_without_ascii_escapes() -> None:
    entry = contracts.CatalogEntry.from_json(catalog_entry())
    doc = index.dataset_document(entry, index.Links(FILES, API))
    text = index.render(doc)
    assert "Données" in text and "\\u" not in text
    assert doc["resources"][0]["latest"] == f"{API}/api/1/datasets/r/{rid(COVID, 'dep', 'csv')}"


def test_resource_id__same_formula_as_publication() -> None:
    from opendepot.publication import resource_id

    assert index.resource_id(COVID, "reg", "parquet") == resource_id(COVID, "reg", "parquet")


# --- the OpenAPI document's parameters against what the server accepts ----------------------------


def query_params(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(path template, parameter) of every query parameter of every GET operation."""
    return [
        (template, p)
        for template, ops in doc["paths"].items()
        for p in ops["get"].get("parameters", [])
        if p["in"] == "query"
    ]


def udata_route(template: str) -> bool:
    """A route of the datasets, organizations and API v2 (reuses and rows have their tests)."""
    return template.startswith(("/api/1/datasets", "/api/1/organizations", "/api/2/")) and (
        "/reuses" not in template)


def test_openapi_parameters__each_declared_value_accepted_each_other_400() -> None:
    doc = body(get("/api/1/openapi.json"))
    params = [(t, p) for t, p in query_params(doc) if udata_route(t)]
    dataset_list = ("page", "page_size", "q", "tag", "organization", "format", "sort", "license",
                    "geozone", "granularity", "temporal_coverage", "schema", "schema_version",
                    "featured", "archived", "deleted", "private")
    assert {(t, p["name"]) for t, p in params} == {
        *(("/api/1/datasets/", n) for n in dataset_list),
        *(("/api/1/organizations/{org}/datasets/", n) for n in dataset_list),
        *(("/api/1/organizations/", n) for n in
          ("page", "page_size", "q", "name", "business_number_id", "sort")),
        *(("/api/2/datasets/{dataset}/resources/", n) for n in ("page", "page_size", "type", "q")),
        ("/api/1/datasets/{dataset}/versions/", "page"),
        ("/api/1/datasets/{dataset}/versions/", "page_size"),
        ("/api/1/datasets/{dataset}/schema/", "level"),
        ("/api/1/datasets/r/{rid}", "at"),
    }  # fmt: skip
    for template, p in params:
        path, schema, name = concrete(template), p["schema"], p["name"]
        assert "anyOf" not in schema and not p["required"], (template, name)

        def status(value: str, path: str = path, name: str = name) -> int:
            return int(get(path, urlencode([(name, value)]))["statusCode"])

        if "enum" in schema:
            assert schema["type"] == "string"
            accepted = [v for v in schema["enum"] if status(v) == 200]
            if name == "level":  # one the dataset has, the others are 400 too
                assert accepted == ["dep", "reg", "fra"]
                assert set(index_api.m.LEVELS) >= {"dep", "reg", "fra", "consolide"}
            else:
                assert accepted == schema["enum"]
            for outside in ("commune", "downloads", "DEP", "-"):
                assert outside not in schema["enum"] and status(outside) == 400, (name, outside)
        elif schema["type"] == "integer":
            low, high = int(schema["minimum"]), int(schema.get("maximum", 10**6))
            assert (status(str(low)), status(str(high))) == (200, 200), (template, name)
            above = [str(high + 1)] if "maximum" in schema else []
            for bad in (str(low - 1), *above, "deux", "1.5", "1e3"):
                assert status(bad) == 400, (name, bad)
        elif schema.get("format") == "date-time":  # a moment: the file then, else 400
            assert status("2026-11-29T08:00:00Z") == 302, name
            for bad in ("x", "2026-13-01", "-1", "29/11/2026"):
                assert status(bad) == 400, (name, bad)
        elif schema["type"] == "boolean":
            assert (status("true"), status("false")) == (200, 200), name
            assert status("maybe") == 400, name
        elif "pattern" in schema:  # a period
            assert status("2020-03-01-2020-03-31") == 200, name
            for bad in ("2020", "x", "2020-03-01"):
                assert status(bad) == 400, (name, bad)
        else:  # free text (or repeated text): never a 400
            assert schema["type"] in ("string", "array"), (name, schema)
            for value in ("x", "é,è", "-1", " "):
                assert status(value) == 200, (name, value)


def test_undeclared_parameter__ignored() -> None:
    for path in ("/api/1/datasets/", f"/api/1/datasets/{COVID}/schema/"):
        assert body(get(path, "x=1&views=-1")) == body(get(path))
