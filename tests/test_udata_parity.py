"""udata parity of the index: organizations, API v2, ``internal`` and ``metrics`` blocks,
``X-Fields`` masks, every udata list filter (honoured or a 400 naming it), ``q`` by slug and id,
the resources export, ``Last-Modified`` and ``If-Modified-Since``.

Runs the Lambda handler on API Gateway events over the catalog of ``test_index_api`` (two
datasets: hospital data of Santé publique France, intensive-care beds of the DREES) with its
fixed clock; the shapes are udata's (opendatateam/udata ``udata/core/dataset/api_fields.py``,
``udata/core/organization/api_fields.py``, ``udata/core/dataset/apiv2.py``).
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from typing import Any

import pytest

from opendepot import index, xfields
from opendepot.index import BadRequest, dataset_id
from opendepot.paging import RESOURCES_CSV_COLUMNS
from opendepot.udata_fields import DATASET_METRICS, metrics_document, with_reuses
from test_index_api import (  # noqa: F401  # configured, settings, store: the fixtures
    COVID,
    FILES,
    HOST,
    REA,
    V2,
    body,
    configured,
    get,
    rid,
    settings,
    store,
    text,
)

SPF = "sante-publique-france"
SPF_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, f"opendepot:organization:{SPF}"))
DREES_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "opendepot:organization:drees"))


def slugs(query: str, path: str = "/api/1/datasets/") -> list[str]:
    return [d["slug"] for d in body(get(path, query))["data"]]


# --- organizations ------------------------------------------------------------------------------


def test_organizations__pager_of_both_producers_with_udata_fields() -> None:
    page = body(get("/api/1/organizations/"))
    assert (page["total"], page["page"], page["page_size"], page["next_page"]) == (2, 1, 20, None)
    drees, spf = page["data"]
    assert spf == {
        "id": SPF_ID, "name": "Santé publique France", "acronym": None,
        "uri": f"{HOST}/api/1/organizations/{SPF}/", "slug": SPF,
        "page": f"{HOST}/api/1/organizations/{SPF}/", "logo": None, "logo_thumbnail": None,
        "badges": [], "url": None, "description": "", "business_number_id": None,
        "created_at": "2026-11-20T18:02:44Z", "last_modified": "2026-11-29T07:30:12Z",
        "deleted": None,
        "metrics": {"datasets": 1, "members": 0, "reuses": 0, "followers": 0, "views": 0},
        "members": [], "extras": {},
    }  # fmt: skip
    assert (drees["slug"], drees["id"], drees["name"]) == ("drees", DREES_ID, "DREES")
    assert drees["created_at"] == "2026-11-24T09:00:00Z"


def test_organization__by_slug_or_id_same_document_404_otherwise() -> None:
    by_slug = body(get(f"/api/1/organizations/{SPF}/"))
    assert body(get(f"/api/1/organizations/{SPF_ID}")) == by_slug
    assert by_slug["metrics"]["datasets"] == 1
    r = get("/api/1/organizations/inconnue/")
    assert (r["statusCode"], body(r)["message"]) == (404, "organization 'inconnue' not found")


@pytest.mark.parametrize(
    ("query", "want"),
    [
        ("q=sante", [SPF]), ("q=SANTÉ publique", [SPF]), ("q=drees", ["drees"]),
        ("name=drees", ["drees"]), ("name=Santé", []), ("sort=-name", [SPF, "drees"]),
        ("sort=created", [SPF, "drees"]), ("sort=-last_modified", [SPF, "drees"]),
        ("business_number_id=130020233", []),
    ],
)  # fmt: skip
def test_organizations__filters_and_sorts(query: str, want: list[str]) -> None:
    assert slugs(query, "/api/1/organizations/") == want


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("badge=certified", "badge is not a supported filter: opendepot's organizations carry no badges"),
        ("sort=members", "sort='members' is not one of name, reuses, datasets, followers, views, created, last_modified (prefix - to reverse)"),
        ("page_size=", "page_size='' is not an integer"),
    ],
)  # fmt: skip
def test_organizations__bad_parameter_400(query: str, message: str) -> None:
    r = get("/api/1/organizations/", query)
    assert (r["statusCode"], body(r)) == (400, {"status": 400, "message": message})


def test_organization_datasets__only_its_own_with_the_list_parameters() -> None:
    page = body(get("/api/1/organizations/drees/datasets/"))
    assert [d["slug"] for d in page["data"]] == [REA] and page["total"] == 1
    assert page["data"][0] == body(get(f"/api/1/datasets/{REA}/"))
    # the organization of the path wins over a parameter's
    assert slugs(f"organization={SPF}", "/api/1/organizations/drees/datasets/") == [REA]
    assert slugs("tag=covid19", "/api/1/organizations/drees/datasets/") == []
    page = body(get(f"/api/1/organizations/{SPF_ID}/datasets/", "page_size=1&page=1"))
    assert page["next_page"] is None and page["data"][0]["slug"] == COVID
    one = body(get("/api/1/datasets/", f"organization={SPF}&page_size=1&page=2"))
    assert one["previous_page"] == f"{HOST}/api/1/datasets/?organization={SPF}&page_size=1&page=1"


def test_organization_datasets_csv__rows_of_its_datasets_only() -> None:
    r = get(f"/api/1/organizations/{SPF}/datasets.csv")
    assert r["headers"]["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(text(r)), delimiter=";"))
    assert [(row["slug"], row["organization"], row["organization_id"]) for row in rows] == [
        (COVID, "Santé publique France", SPF_ID)
    ]
    assert get("/api/1/organizations/nope/datasets.csv")["statusCode"] == 404


# --- internal, metrics, organization reference -------------------------------------------------


def test_dataset__internal_metrics_and_udata_defaults() -> None:
    d = body(get(f"/api/1/datasets/{COVID}/"))
    assert d["internal"] == {
        "created_at_internal": "2026-11-20T18:02:44Z",
        "last_modified_internal": "2026-11-29T07:30:12Z",
    }
    assert list(d["metrics"]) == list(DATASET_METRICS)
    assert d["metrics"] == metrics_document() and d["metrics"]["reuses"] == 0
    assert (d["featured"], d["private"], d["deleted"], d["archived"]) == (False, False, None, None)
    assert d["description_short"].startswith("Nombre de personnes actuellement hospitalisées")
    for r in d["resources"]:
        assert r["internal"]["last_modified_internal"] == "2026-11-29T07:30:12Z"
        assert r["metrics"] == {"views": 0}


def test_with_reuses__sets_only_the_reuse_count() -> None:
    d = body(get(f"/api/1/datasets/{COVID}/"))
    counted = with_reuses(d, 3)
    assert counted["metrics"]["reuses"] == 3
    assert {**counted, "metrics": d["metrics"]} == d


# --- API v2 -------------------------------------------------------------------------------------


def test_v2_resource_by_id_alone__resource_and_dataset_id() -> None:
    dep_csv = rid(COVID, "dep", "csv")
    doc = body(get(f"/api/2/datasets/resources/{dep_csv}/"))
    assert doc["dataset_id"] == dataset_id(COVID)
    assert doc["resource"] == body(get(f"/api/1/datasets/{COVID}/resources/{dep_csv}/"))
    assert doc["resource"]["url"] == f"{FILES}/{COVID}/{V2}/{COVID}-dep.csv"
    r = get(f"/api/2/datasets/resources/{uuid.uuid4()}/")
    assert r["statusCode"] == 404 and body(r)["message"].startswith("resource ")


def test_v2_dataset__resources_as_a_link_to_their_pager() -> None:
    d = body(get(f"/api/2/datasets/{COVID}/"))
    did = dataset_id(COVID)
    assert d["resources"] == {
        "rel": "subsection", "type": "GET", "total": 6,
        "href": f"{HOST}/api/2/datasets/{did}/resources/?page=1&page_size=50",
    }  # fmt: skip
    v1 = body(get(f"/api/1/datasets/{COVID}/"))
    assert {**d, "resources": v1["resources"]} == v1


def test_v2_resources__pager_type_and_q_filters() -> None:
    page = body(get(f"/api/2/datasets/{COVID}/resources/"))
    assert (page["total"], page["page_size"], len(page["data"])) == (6, 50, 6)
    assert page["data"] == body(get(f"/api/1/datasets/{COVID}/"))["resources"]
    page = body(get(f"/api/2/datasets/{dataset_id(COVID)}/resources/", "page_size=4&page=1"))
    did = dataset_id(COVID)
    assert page["next_page"] == f"{HOST}/api/2/datasets/{did}/resources/?page_size=4&page=2"
    path, _, query = page["next_page"].removeprefix(HOST).partition("?")
    assert len(body(get(path, query))["data"]) == 2
    titles = [r["title"] for r in body(get(f"/api/2/datasets/{COVID}/resources/", "q=REG, PARQ"))["data"]]
    assert titles == ["Données hospitalières relatives à l'épidémie de COVID-19 (reg, parquet)"]
    assert body(get(f"/api/2/datasets/{COVID}/resources/", "type=documentation"))["total"] == 0
    r = get(f"/api/2/datasets/{COVID}/resources/", "type=notice")
    assert body(r)["message"] == "type='notice' is not one of main, documentation, update, api, code, other"


# --- X-Fields -------------------------------------------------------------------------------------


def masked(path: str, mask: str, query: str = "") -> dict[str, Any]:
    return get(path, query, headers={"x-fields": mask})


def test_x_fields__keeps_the_keys_named_nested_and_in_lists() -> None:
    d = body(masked(f"/api/1/datasets/{COVID}/", "id,title,resources{id,internal{last_modified_internal}}"))
    assert list(d) == ["id", "title", "resources"]
    assert d["resources"][0] == {
        "id": rid(COVID, "dep", "csv"),
        "internal": {"last_modified_internal": "2026-11-29T07:30:12Z"},
    }
    page = body(masked("/api/1/datasets/", "data{slug},total,next_page", "page_size=1"))
    assert page == {"data": [{"slug": REA}], "total": 2,
                    "next_page": f"{HOST}/api/1/datasets/?page_size=1&page=2"}


def test_x_fields__star_braces_unknown_names_and_header_case() -> None:
    full = body(get(f"/api/1/organizations/{SPF}/"))
    assert body(masked(f"/api/1/organizations/{SPF}/", "{metrics{datasets},*}")) == {
        **full, "metrics": {"datasets": 1}}
    assert body(masked(f"/api/1/organizations/{SPF}/", "slug,nothing")) == {"slug": SPF, "nothing": None}
    r = get(f"/api/1/organizations/{SPF}/", headers={"X-Fields": "slug"})
    assert body(r) == {"slug": SPF} and "X-Fields" in r["headers"]["Vary"]
    assert body(masked(f"/api/1/organizations/{SPF}/", "  ")) == full


@pytest.mark.parametrize(
    ("mask", "message"),
    [
        ("id,{title}", "X-Fields: unexpected opening bracket"),
        ("id,resources{id", "X-Fields: missing closing bracket"),
        ("id}", "X-Fields: unexpected closing bracket"),
        ("id,,title", "X-Fields: unexpected comma"),
        ("{id", "X-Fields: missing closing bracket"),
        ("id;title", "X-Fields: unexpected character ';'"),
        ("title{x}", "X-Fields: title is not an object: it takes no nested mask"),
    ],
)
def test_x_fields__malformed_mask_400_naming_the_header(mask: str, message: str) -> None:
    r = masked(f"/api/1/datasets/{COVID}/", mask)
    assert r["statusCode"] == 400
    assert body(r) == {"status": 400, "message": f"{message} (e.g. id,title,resources{{id,url}})"}


def test_xfields_parse__flask_restx_syntax() -> None:
    assert xfields.parse("id, title ,resources{id,url},*") == {
        "id": True, "title": True, "resources": {"id": True, "url": True}, "*": True}
    assert xfields.parse("") is None
    with pytest.raises(BadRequest):
        xfields.parse("x" * (xfields.MAX_LENGTH + 1))


# --- list filters -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "want"),
    [
        (f"q={COVID}", [COVID]), (f"q={dataset_id(REA)}", [REA]), ("q=reanimation", [REA, COVID]),
        ("granularity=fr:departement", [REA, COVID]), ("granularity=fr:region", []),
        ("geozone=country:fr", [REA, COVID]), ("geozone=fr:departement:75", []),
        ("license=lov2", [REA, COVID]), ("license=odc-odbl", []),
        ("temporal_coverage=2020-01-01-2020-01-31", [REA]),
        ("temporal_coverage=2021-03-15-2021-12-31", [REA, COVID]),
        ("temporal_coverage=2021-03-16/2021-12-31", [COVID]),
        ("temporal_coverage=2021-04-01-2021-12-31", []),
        ("temporal_coverage=2021-03-15-2021-03-15", [REA, COVID]),  # one day
        (f"schema={COVID}", [COVID]), ("schema=irve", []),
        ("featured=false", [REA, COVID]), ("featured=true", []), ("private=0", [REA, COVID]),
        ("archived=TRUE", []), ("deleted=false&organization=drees", [REA]),
        ("sort=-reuses", [REA, COVID]), ("sort=views", [REA, COVID]),
    ],
)  # fmt: skip
def test_dataset_list__udata_filters_honoured(query: str, want: list[str]) -> None:
    assert slugs(query) == want


def test_schema_version_filter__the_resources_schema_version() -> None:
    version = body(get(f"/api/1/datasets/{COVID}/"))["resources"][0]["schema"]["version"]
    assert slugs(f"schema_version={version}") == [REA, COVID]  # both use the same test schema
    assert slugs("schema_version=0000") == []


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("topic=5e7e1", "topic is not a supported filter: opendepot has no topics"),
        ("owner=5e7e1", "owner is not a supported filter: opendepot's datasets are owned by organizations, never by a user"),
        ("organization_badge=certified", "organization_badge is not a supported filter: opendepot's organizations carry no badges"),
        ("dataservice=x", "dataservice is not a supported filter: opendepot has no dataservices"),
        ("followed_by=x", "followed_by is not a supported filter: opendepot has no users nor followers"),
        ("featured=maybe", "featured='maybe' is not a boolean (true or false)"),
        ("temporal_coverage=2020", "temporal_coverage='2020' is not a period YYYY-MM-DD-YYYY-MM-DD (first day, then last day)"),
        ("temporal_coverage=2021-12-31-2021-01-01", "temporal_coverage='2021-12-31-2021-01-01': the period ends (2021-01-01) before it starts (2021-12-31)"),
        ("temporal_coverage=2020-03-20-2020-03-19", "temporal_coverage='2020-03-20-2020-03-19': the period ends (2020-03-19) before it starts (2020-03-20)"),
        ("temporal_coverage=2020-02-30-2020-03-31", "temporal_coverage='2020-02-30-2020-03-31': 2020-02-30 is not a date"),
        ("temporal_coverage=2020-13-45-2021-99-99", "temporal_coverage='2020-13-45-2021-99-99': 2020-13-45 is not a date"),
        ("temporal_coverage=2020-01-01-2021-02-29", "temporal_coverage='2020-01-01-2021-02-29': 2021-02-29 is not a date"),
        ("page_size=", "page_size='' is not an integer"),
    ],
)  # fmt: skip
def test_dataset_list__unsupported_or_bad_filter_400_naming_it(query: str, message: str) -> None:
    r = get("/api/1/datasets/", query)
    assert (r["statusCode"], body(r)) == (400, {"status": 400, "message": message})


# --- resources export ---------------------------------------------------------------------------


def test_resources_csv__udata_columns_one_row_per_resource() -> None:
    r = get("/api/1/site/resources.csv")
    assert r["headers"]["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(text(r)), delimiter=";"))
    assert tuple(rows[0]) == RESOURCES_CSV_COLUMNS
    assert len(rows) == 12
    dep_csv = next(row for row in rows if row["id"] == rid(COVID, "dep", "csv"))
    assert dep_csv["dataset.slug"] == COVID and dep_csv["dataset.organization_id"] == SPF_ID
    assert (dep_csv["format"], dep_csv["filesize"], dep_csv["checksum.type"]) == ("csv", str(110595 * 21), "sha256")
    assert (dep_csv["dataset.private"], dep_csv["dataset.archived"], dep_csv["downloads"]) == ("False", "False", "0")
    assert (dep_csv["created_at"], dep_csv["modified"]) == ("2026-11-20T18:02:44Z", "2026-11-29T07:30:12Z")
    assert json.loads(dep_csv["extras"]) == {"level": "dep", "rows": 110595, "version": V2}
    assert dep_csv["url"] == f"{FILES}/{COVID}/{V2}/{COVID}-dep.csv"


def test_organization_resources_csv__the_resources_of_its_datasets_only() -> None:
    rows = list(csv.DictReader(io.StringIO(text(get("/api/1/organizations/drees/datasets-resources.csv"))), delimiter=";"))
    assert {row["dataset.slug"] for row in rows} == {REA} and len(rows) == 6
    assert sorted(row["id"] for row in rows) == sorted(
        rid(REA, lv, f) for lv in ("dep", "reg", "fra") for f in ("csv", "parquet"))


# --- Last-Modified, If-Modified-Since -----------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "last_modified"),
    [
        ("/api/1/datasets/", "Sun, 29 Nov 2026 07:30:13 GMT"),  # catalog.json's generated_at
        (f"/api/1/datasets/{COVID}/", "Sun, 29 Nov 2026 07:30:12 GMT"),  # its publication
        (f"/api/1/datasets/{REA}/", "Wed, 25 Nov 2026 12:00:00 GMT"),
        (f"/api/2/datasets/resources/{rid(REA, 'fra', 'csv')}/", "Wed, 25 Nov 2026 12:00:00 GMT"),
        (f"/api/1/organizations/{SPF}/", "Sun, 29 Nov 2026 07:30:13 GMT"),
        ("/api/1/site/resources.csv", "Sun, 29 Nov 2026 07:30:13 GMT"),
        (f"/api/1/datasets/{COVID}/versions/{V2}/", "Sun, 29 Nov 2026 07:30:12 GMT"),
    ],
)
def test_last_modified__then_if_modified_since_304(path: str, last_modified: str) -> None:
    r = get(path)
    assert (r["statusCode"], r["headers"]["Last-Modified"]) == (200, last_modified)
    same = get(path, headers={"if-modified-since": last_modified})
    assert (same["statusCode"], same["body"]) == (304, "")
    assert same["headers"]["ETag"] == r["headers"]["ETag"]
    later = get(path, headers={"if-modified-since": "Mon, 30 Nov 2026 00:00:00 GMT"})
    assert later["statusCode"] == 304
    earlier = get(path, headers={"if-modified-since": "Tue, 24 Nov 2026 00:00:00 GMT"})
    assert earlier["statusCode"] == 200 and earlier["body"] == r["body"]


def test_if_none_match__wins_over_if_modified_since_and_bad_dates_ignored() -> None:
    path = f"/api/1/datasets/{COVID}/"
    last = get(path)["headers"]["Last-Modified"]
    stale = get(path, headers={"if-modified-since": last, "if-none-match": '"stale"'})
    assert stale["statusCode"] == 200
    assert get(path, headers={"if-modified-since": "hier"})["statusCode"] == 200
    openapi = get("/api/1/openapi.json")
    assert "Last-Modified" not in openapi["headers"]  # not built from published state


def test_schema_level_of_another_dataset__404_naming_this_ones_levels() -> None:
    """``consolide`` is a level the OpenAPI document lists (chiffres-cles has it): a dataset
    without it has no such table (404), where a level no dataset has is a bad value (400)."""
    from opendepot import paging

    levels = ("dep", "reg", "fra")
    with pytest.raises(index.NotFound, match="its levels are dep, reg, fra"):
        paging.parse_level([("level", "consolide")], levels, ("dep", "reg", "fra", "consolide"))
    with pytest.raises(index.BadRequest, match="'commune' is not one of dep, reg, fra"):
        paging.parse_level([("level", "commune")], levels, ("dep", "reg", "fra", "consolide"))
    assert paging.parse_level([("level", "reg")], levels, levels) == "reg"


@pytest.mark.parametrize("name", ["temporal_coverage", "sort", "featured", "level"])
def test_empty_value_of_a_declared_parameter__400(name: str) -> None:
    from opendepot import paging

    with pytest.raises(index.BadRequest, match=f"{name} is empty"):
        paging.query_values([(name, "")])
    assert paging.query_values([("q", ""), ("tag", "")])[1:] == ({}, [])  # free text: ignored
