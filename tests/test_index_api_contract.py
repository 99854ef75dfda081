"""The index against its OpenAPI document, on datasets published from the real hospital files.

The pipeline fixture validates and publishes real Santé publique France files (the small
opencovid19-fr mirror of 23 and 24 March 2020) into the in-memory store; the index then answers
from what publication wrote. Every answer is checked against ``/api/1/openapi.json``: the status
is one the operation documents and a JSON body matches the documented schema.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from conftest import HOSP, REAL
from functions.index_api import app as index_api
from opendepot import index, openapi
from opendepot.config import Settings
from test_index_api import API, FILES, body, call, event, raw

MIRROR = REAL / HOSP / "opencovid19-fr-mirror"
KEY = f"{HOSP}/spf/covid_hospit.csv"
NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
SETTINGS = Settings(
    publish_queue_url="memory://publish.fifo", public_base_url=FILES, api_base_url=API
)


def publish(pipeline: Any, folder: str) -> str:
    data = (MIRROR / folder / "covid_hospit.csv").read_bytes()
    assert pipeline.drop(KEY, data).status == "accepted"
    outcome = pipeline.publish()
    assert outcome.created
    return str(outcome.version)


@pytest.fixture
def published(pipeline: Any) -> dict[str, Any]:
    """Two versions of the hospital dataset published from real files; the index configured."""
    pipeline.settings = SETTINGS
    versions = [publish(pipeline, "2020-03-23_3f62f18"), publish(pipeline, "2020-03-24_2c1018e")]
    index_api.configure(pipeline.store, SETTINGS, clock=lambda: NOW)
    manifest = json.loads(pipeline.published(f"{HOSP}/manifest.json"))
    return {"pipeline": pipeline, "versions": versions, "manifest": manifest}


def get(path: str, query: str = "", method: str = "GET", **headers: str) -> dict[str, Any]:
    return call(event(path=path, query=query, method=method, headers=headers))


# --- the OpenAPI document as a validator ------------------------------------------------------------

DOC = openapi.openapi_document(index_api.app)
REGISTRY = Registry().with_resource(
    "urn:opendepot:openapi", Resource.from_contents(DOC, default_specification=DRAFT202012)
)
TEMPLATES = [
    (re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(p)) + "$"), p)
    # a file of a fixed path first (recent.atom is not a {dataset}), as the server resolves them
    for p in sorted(DOC["paths"], key=lambda p: "{" in p or "." not in p.rsplit("/", 1)[-1])
]


def operation(path: str, method: str) -> tuple[str, dict[str, Any]] | None:
    """The documented operation a concrete path falls under (the trailing slash is optional,
    except after a file name such as ``datapackage.json``)."""
    for pattern, template in TEMPLATES:
        last = template.rsplit("/", 1)[-1]
        optional_slash = "." not in last or last.startswith("{")
        candidates = (path, path + "/", path[:-1]) if optional_slash else (path,)
        if any(pattern.match(c) for c in candidates):
            return template, DOC["paths"][template].get(method.lower(), {})
    return None


def check_against_openapi(path: str, method: str, r: dict[str, Any]) -> None:
    """The answer's status is documented for its operation and its JSON body fits the schema."""
    status = r["statusCode"]
    assert status < 500, (path, r)
    assert r["headers"]["Access-Control-Allow-Origin"] == "*"
    if status in (200, 304):
        assert r["headers"]["ETag"]
    found = operation(path, method)
    if found is None:  # no such route: the 404 envelope
        assert status == 404
    else:
        template, op = found
        assert str(status) in op["responses"], (template, method, status, r)
    if method == "HEAD" or status in (302, 304):
        assert not r["body"]
        return
    if found is not None:
        content = op["responses"][str(status)].get("content", {})
        if "application/json" in content:
            schema = content["application/json"]["schema"]
            ref = {"$ref": "urn:opendepot:openapi" + schema["$ref"]} if "$ref" in schema else schema
            errors = sorted(
                Draft202012Validator(ref, registry=REGISTRY).iter_errors(body(r)),
                key=lambda e: list(e.path),
            )
            assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]
    if status >= 400:
        assert body(r) == {"status": status, "message": body(r)["message"]}


def concrete_paths(published: dict[str, Any]) -> list[str]:
    m = published["manifest"]
    rid = m["resources"][0]["id"]
    out = []
    for template in DOC["paths"]:
        if "reuse" in template or template.startswith("/api/resources/"):
            continue  # reuses and rows need their own data: their own tests
        out.append(
            template.replace("{dataset}", HOSP)
            .replace("{rid}", rid)
            .replace("{version}", published["versions"][0])
            .replace("{org}", "sante-publique-france")
            .replace("{format}", "ttl")
        )
    return out


def test_every_documented_route_on_real_data__200_or_302_matching_its_schema(
    published: dict[str, Any],
) -> None:
    for path in concrete_paths(published):
        for method in ("GET", "HEAD"):
            r = get(path, method=method)
            assert r["statusCode"] == (302 if "/r/" in path else 200), (path, r)
            check_against_openapi(path, method, r)


# --- property-based: random paths, parameters and headers -------------------------------------------

SEGMENT = st.text(
    alphabet=st.characters(blacklist_characters="/?#", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=30,
)
QUERY_NAMES = ["page", "page_size", "q", "tag", "organization", "format", "sort", "level", "x"]
QUERY_VALUES = st.one_of(
    st.sampled_from(
        ["1", "2", "0", "-1", "100", "101", "20", "title", "-created", "last_update", "views",
         "csv", "parquet", "dep", "reg", "fra", "commune", "covid", "hopital", "", " ", "1e3"]
    ),
    st.integers(-5, 10**20).map(str),
    st.text(max_size=12),
)  # fmt: skip


def request_strategy(
    published: dict[str, Any],
) -> st.SearchStrategy[tuple[str, str, str, dict[str, str]]]:
    """Random requests over the documented routes (and some undocumented ones)."""
    m = published["manifest"]
    datasets = st.one_of(st.sampled_from([HOSP, index.dataset_id(HOSP), "r", "inconnu"]), SEGMENT)
    rids = st.one_of(
        st.sampled_from([r["id"] for r in m["resources"]]), st.uuids().map(str), SEGMENT
    )
    versions = st.one_of(st.sampled_from(published["versions"] + ["latest"]), SEGMENT)
    templates = st.sampled_from([*DOC["paths"], "/api/1/{dataset}", "/api/2/datasets/"])

    @st.composite
    def requests(draw: st.DrawFn) -> tuple[str, str, str, dict[str, str]]:
        path = draw(templates)
        path = path.replace("{dataset}", draw(datasets)).replace("{rid}", draw(rids))
        path = path.replace("{version}", draw(versions))
        if draw(st.booleans()):
            path = path.rstrip("/") if path.endswith("/") else path + "/"
        query = urlencode(
            draw(st.lists(st.tuples(st.sampled_from(QUERY_NAMES), QUERY_VALUES), max_size=4))
        )
        method = draw(st.sampled_from(["GET", "GET", "GET", "HEAD"]))
        headers = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "accept-encoding": st.sampled_from(["gzip", "identity", "br, gzip;q=0.5"]),
                    "if-none-match": st.sampled_from(["*", '"nope"', 'W/"x", "y"', ""]),
                },
            )
        )
        return path, query, method, headers

    return requests()


RANDOM = settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


def test_random_requests__no_5xx_and_every_answer_as_documented(published: dict[str, Any]) -> None:
    @RANDOM
    @given(request_strategy(published))
    def check(request: tuple[str, str, str, dict[str, str]]) -> None:
        path, query, method, headers = request
        r = get(path, query, method, **headers)
        check_against_openapi(path, method, r)

    check()


def test_random_requests_over_http_on_the_local_server__no_5xx_and_as_documented(
    published: dict[str, Any],
) -> None:
    """The same random requests as real HTTP to the local stack's server on localhost (which
    turns them into API Gateway HTTP API events), so the HTTP layer is part of what is checked."""
    import base64
    import http.client
    from urllib.parse import quote, unquote

    from infra.http_server import LocalHttpApi

    with LocalHttpApi(index_api.lambda_handler, port=0) as api:

        @RANDOM
        @given(request_strategy(published))
        def check(request: tuple[str, str, str, dict[str, str]]) -> None:
            path, query, method, headers = request
            target = quote(path, safe="/") + (f"?{query}" if query else "")
            conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
            try:
                conn.request(
                    method, target, headers={"Origin": "https://reuser.example", **headers}
                )
                response = conn.getresponse()
                payload = response.read()
                answer = {
                    "statusCode": response.status,
                    "headers": dict(response.getheaders()),
                    "body": base64.b64encode(payload).decode() if payload else "",
                    "isBase64Encoded": True,
                }
            finally:
                conn.close()
            check_against_openapi(unquote(quote(path, safe="/")), method, answer)

        check()


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_other_methods_on_documented_routes__405_envelope(
    published: dict[str, Any], method: str
) -> None:
    for path in concrete_paths(published):
        r = get(path, method=method)
        assert r["statusCode"] == 405, path
        assert body(r) == {"status": 405, "message": f"{method} is not allowed on {path}"}


# --- real values -------------------------------------------------------------------------------------


def test_dataset_from_real_files__values_as_published(published: dict[str, Any]) -> None:
    pipeline, (v1, v2) = published["pipeline"], published["versions"]
    d = body(get(f"/api/1/datasets/{HOSP}/"))
    assert d["extras"]["version"] == v2
    assert d["extras"]["rows"] == {"dep": 1818, "reg": 324, "fra": 18}
    assert d["temporal_coverage"] == {"start": "2020-03-18", "end": "2020-03-23"}
    assert d["created_at"] == published["manifest"]["created_at"]
    assert d["last_update"] == published["manifest"]["published_at"]
    assert (d["frequency"], d["quality"]["update_fulfilled_in_time"]) == ("daily", True)
    for res in d["resources"]:
        level, fmt = res["extras"]["level"], res["format"]
        assert res["id"] == index.resource_id(HOSP, level, fmt)
        assert res["url"] == f"{FILES}/{HOSP}/{v2}/{HOSP}-{level}.{fmt}"
        data = pipeline.published(res["url"].removeprefix(FILES + "/"))
        assert res["checksum"]["value"] == hashlib.sha256(data).hexdigest()
        assert res["filesize"] == len(data)
        assert res["latest"] == f"{API}/api/1/datasets/r/{res['id']}"
        assert get(f"/api/1/datasets/r/{res['id']}")["headers"]["Location"] == res["url"]
        assert res["schema"]["url"] == f"{API}/api/1/datasets/{HOSP}/schema/?level={level}"
    assert v1 < v2


def test_versions_from_real_files__every_version_downloadable(published: dict[str, Any]) -> None:
    pipeline, (v1, v2) = published["pipeline"], published["versions"]
    page = body(get(f"/api/1/datasets/{HOSP}/versions/"))
    assert [v["version"] for v in page["data"]] == [v2, v1]
    assert [v["rows"] for v in page["data"]] == [
        {"dep": 1818, "reg": 324, "fra": 18},
        {"dep": 1515, "reg": 270, "fra": 15},
    ]
    assert page["data"][0]["producers"] == ["spf"]
    for v in page["data"]:
        assert len(v["uploads"]) == 1
        assert len(v["resources"]) == 6
        for res in v["resources"]:
            data = pipeline.published(res["url"].removeprefix(FILES + "/"))
            assert (res["filesize"], res["checksum"]["value"]) == (
                len(data),
                hashlib.sha256(data).hexdigest(),
            )
            assert res["id"] == index.resource_id(HOSP, res["level"], res["format"])
        package = json.loads(pipeline.published(v["datapackage"].removeprefix(FILES + "/")))
        assert package["version"] == v["version"]


def test_schema_from_real_files__level_schemas_with_versions(published: dict[str, Any]) -> None:
    m = published["manifest"]
    dep = body(get(f"/api/1/datasets/{HOSP}/schema/"))
    assert [f["name"] for f in dep["fields"]][:3] == ["dep", "sexe", "jour"]
    assert dep["version"] == index.schema_version(m["schemas"]["dep"])
    reg = body(get(f"/api/1/datasets/{HOSP}/schema/", "level=reg"))
    assert reg["primaryKey"][0] == "reg"
    assert reg["version"] == index.schema_version(m["schemas"]["reg"]) != dep["version"]


def test_datapackage_from_real_files__passes_frictionless_validate(
    published: dict[str, Any], tmp_path: Path
) -> None:
    """The descriptor is a valid Data Package and every CSV resource passes ``frictionless
    validate`` (bytes, hash, rows, schema). The Parquet resources are checked with pyarrow:
    frictionless 5 reads Parquet through pandas, where a null in an integer column becomes a
    float NaN (a false ``type-error``) and the byte count is not taken (a false ``byte-count``)."""
    import frictionless
    import pyarrow.parquet as pq

    pipeline, version = published["pipeline"], published["versions"][1]
    pkg = body(get(f"/api/1/datasets/{HOSP}/datapackage.json"))
    assert pkg["version"] == version
    assert frictionless.Package.validate_descriptor(pkg).valid
    for res in pkg["resources"]:
        assert res["path"].startswith(f"{FILES}/{HOSP}/{version}/")
        name = res["path"].rsplit("/", 1)[1]
        data = pipeline.published(res["path"].removeprefix(FILES + "/"))
        (tmp_path / name).write_bytes(data)
        res["path"] = name  # the served URLs point at files this test reads from the store
        assert (res["bytes"], res["hash"]) == (
            len(data),
            "sha256:" + hashlib.sha256(data).hexdigest(),
        )
        if res["format"] == "parquet":
            table = pq.read_table(tmp_path / name)
            csv = next(r for r in pkg["resources"] if r["name"] == res["alternateOf"])
            assert table.num_rows == csv["rows"]
            assert table.column_names == [f["name"] for f in res["schema"]["fields"]]
    csv_only = {**pkg, "resources": [r for r in pkg["resources"] if r["format"] == "csv"]}
    (tmp_path / "datapackage.json").write_text(json.dumps(csv_only), "utf-8")
    report = frictionless.validate(tmp_path / "datapackage.json")
    assert report.valid, report.flatten(["resourcePath", "rowNumber", "fieldName", "type", "note"])
    assert [t.stats["rows"] for t in report.tasks] == [1818, 324, 18]


# --- cheap polling ---------------------------------------------------------------------------------


def test_polling_with_if_none_match__304_until_a_new_version_then_200(pipeline: Any) -> None:
    pipeline.settings = SETTINGS
    first = publish(pipeline, "2020-03-23_3f62f18")
    index_api.configure(pipeline.store, SETTINGS, clock=lambda: NOW)
    watched = [f"/api/1/datasets/{HOSP}/", f"/api/1/datasets/{HOSP}/versions/", "/api/1/datasets/"]
    tags = {}
    for path in watched:
        r = get(path)
        assert r["statusCode"] == 200
        tags[path] = r["headers"]["ETag"]
    assert body(get(watched[0]))["extras"]["version"] == first

    for _ in range(3):
        for path in watched:
            r = get(path, **{"if-none-match": tags[path]})
            assert (r["statusCode"], r["body"]) == (304, ""), path

    second = publish(pipeline, "2020-03-24_2c1018e")
    changed = {}
    for path in watched:
        r = get(path, **{"if-none-match": tags[path]})
        assert r["statusCode"] == 200, path
        assert r["headers"]["ETag"] != tags[path]
        changed[path] = body(r)
        tags[path] = r["headers"]["ETag"]
    assert changed[watched[0]]["extras"]["version"] == second
    assert [v["version"] for v in changed[watched[1]]["data"]] == [second, first]
    assert changed[watched[2]]["data"][0]["extras"]["version"] == second
    for path in watched:  # and quiet again
        assert get(path, **{"if-none-match": tags[path]})["statusCode"] == 304


def test_resource_ids__stable_across_real_versions(published: dict[str, Any]) -> None:
    v1, v2 = body(get(f"/api/1/datasets/{HOSP}/versions/"))["data"][::-1]
    assert [r["id"] for r in v1["resources"]] == [r["id"] for r in v2["resources"]]
    assert all(uuid.UUID(r["id"]).version == 5 for r in v2["resources"])
    assert raw(get(f"/api/1/datasets/{HOSP}/versions/{v1['version']}/"))
