"""Time travel (issue 14, item 6): ``/api/1/datasets/r/{id}?at=<ISO 8601>`` redirects to the
file of the version in force at that moment, and the versions list says which uploads each
version came from; on real files published through the pipeline in January 2021."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest

from conftest import Pipeline
from functions.index_api import app as index_api
from opendepot import index, layout
from opendepot.config import Settings
from opendepot.storage import MemoryQueue, MemoryStore
from test_changes_api import FRA, FRA_FILES, publish
from test_index_api import (
    BUCKET,
    COVID,
    UPLOAD_1,
    UPLOAD_2,
    V2,
    catalog_entry,
    covid_manifest,
    put_catalog,
    put_json,
    raw,
)
from test_index_api_contract import SETTINGS, check_against_openapi, get

CSV = index.resource_id(FRA, "fra", "csv")
PARQUET = index.resource_id(FRA, "fra", "parquet")


@pytest.fixture
def history() -> dict[str, Any]:
    """SPF's national test counts: the first file published on 10 January 2021, its revision
    on 20 January."""
    p = Pipeline(MemoryStore(), MemoryQueue(), SETTINGS, datetime(2021, 1, 10, 9, tzinfo=UTC))
    (v1,) = publish(p, FRA, FRA_FILES[:1])
    p.now = datetime(2021, 1, 20, 9, tzinfo=UTC)
    (v2,) = publish(p, FRA, FRA_FILES[1:])
    index_api.configure(p.store, SETTINGS)
    manifest = json.loads(p.published(layout.manifest_key(FRA)))
    return {"pipeline": p, "v1": v1, "v2": v2, "manifest": manifest}


def at(rid: str, moment: str) -> dict[str, Any]:
    path = f"/api/1/datasets/r/{rid}"
    r = get(path, f"at={quote(moment, safe='')}")
    check_against_openapi(path, "GET", r)
    return r


def test_at__redirects_to_the_file_of_the_version_in_force_then(history: dict[str, Any]) -> None:
    p, v1, v2, m = history["pipeline"], history["v1"], history["v2"], history["manifest"]
    published = {v["version"]: v["published_at"] for v in m["versions"]}
    assert (published[v1], published[v2]) == ("2021-01-10T09:01:05Z", "2021-01-20T09:01:05Z")
    r = at(CSV, "2021-01-15T00:00:00Z")
    assert r["statusCode"] == 302
    assert r["headers"]["Location"] == f"{SETTINGS.public_base_url}/{FRA}/{v1}/{FRA}-fra.csv"
    assert r["headers"]["Cache-Control"] == "no-cache"
    # the very file of that version: its bytes hash to what the manifest recorded then
    body = p.published(r["headers"]["Location"].removeprefix(SETTINGS.public_base_url + "/"))
    (recorded,) = [f for v in m["versions"] if v["version"] == v1 for f in v["resources"]
                   if f["format"] == "csv"]
    assert hashlib.sha256(body).hexdigest() == recorded["sha256"]
    assert body.decode("utf-8").count("\n") == 1254 + 1
    for moment, version in [
        ("2021-01-10T09:01:05Z", v1),  # published at that second: in force
        ("2021-01-20T09:01:04Z", v1),
        ("2021-01-20T10:01:05+01:00", v2),  # the same moment as the second publication
        ("2021-01-20", v1),  # a date alone: midnight UTC
        ("2030-01-01T00:00:00Z", v2),
    ]:
        assert at(PARQUET, moment)["headers"]["Location"].endswith(
            f"/{FRA}/{version}/{FRA}-fra.parquet"), moment
    # an offset's "+" sent unencoded reads as a space: still understood
    r = get(f"/api/1/datasets/r/{CSV}", "at=2021-01-20T10:01:05+01:00")
    assert r["headers"]["Location"].endswith(f"/{v2}/{FRA}-fra.csv")
    # without `at`: the current file, as before
    now = get(f"/api/1/datasets/r/{CSV}")
    assert now["headers"]["Location"] == at(CSV, "2030-01-01")["headers"]["Location"]


def test_at__before_the_first_version_404__unparsable_400(history: dict[str, Any]) -> None:
    r = at(CSV, "2021-01-10T09:01:04Z")
    assert json.loads(raw(r)) == {"status": 404, "message": (
        f"dataset '{FRA}' had no published version at 2021-01-10T09:01:04Z: its first version "
        "was published at 2021-01-10T09:01:05Z")}
    for bad in ("15/01/2021", "yesterday", "2021-13-01", "2021-01-15T25:00:00Z"):
        r = at(CSV, bad)
        assert json.loads(raw(r)) == {"status": 400, "message": (
            f"at={bad!r} is not an ISO 8601 time (e.g. 2021-01-15T00:00:00Z)")}, bad
    r = at("00000000-0000-0000-0000-000000000000", "2021-01-15")
    assert r["statusCode"] == 404


def test_at__a_version_without_that_file_404(history: dict[str, Any]) -> None:
    """A table the dataset has now but did not have in the version in force then."""
    p, v1 = history["pipeline"], history["v1"]
    m = history["manifest"]
    for v in m["versions"]:
        if v["version"] == v1:
            v["resources"] = [f for f in v["resources"] if f["format"] == "csv"]
    p.store.put(SETTINGS.published_bucket, layout.manifest_key(FRA), json.dumps(m).encode(),
                "application/json")
    assert at(CSV, "2021-01-15")["statusCode"] == 302
    r = at(PARQUET, "2021-01-15")
    assert json.loads(raw(r)) == {"status": 404, "message": (
        f"resource '{PARQUET}' is not in version '{v1}' of dataset '{FRA}', in force at "
        "2021-01-15T00:00:00Z")}


def test_versions_list__says_which_uploads_each_version_came_from(
    history: dict[str, Any],
) -> None:
    m = history["manifest"]
    page = json.loads(raw(get(f"/api/1/datasets/{FRA}/versions/")))
    records = {u["upload_id"]: u for u in m["uploads"]}
    assert [v["version"] for v in page["data"]] == [history["v2"], history["v1"]]
    for doc, stored in zip(page["data"], m["versions"], strict=True):
        (upload,) = doc["uploads"]
        assert upload["upload_id"] == stored["upload_ids"][0]
        assert (upload["producer"], upload["new"]) == ("spf", True)
    (current,) = page["data"][0]["uploads"]
    # the time of its id is when it arrived (the record has milliseconds)
    assert records[current["upload_id"]]["received_at"] == "2021-01-20T09:01:00.000Z"
    assert current["received_at"] == "2021-01-20T09:01:00Z"
    assert page["data"][1]["uploads"][0]["received_at"] == "2021-01-10T09:01:00Z"


def test_versions_list__an_upload_kept_from_the_version_before_is_not_new() -> None:
    """A version made of an earlier upload and a new one (append mode, or a fed dataset's
    version beside its own uploads)."""
    store = MemoryStore()
    put_catalog(store, catalog_entry())
    manifest = covid_manifest()
    manifest["versions"][0]["upload_ids"] = [UPLOAD_1, UPLOAD_2, f"{FRA}@2026-11-29-07h00m00s"]
    put_json(store, f"{COVID}/manifest.json", manifest)
    index_api.configure(store, Settings(published_bucket=BUCKET))
    doc = json.loads(raw(get(f"/api/1/datasets/{COVID}/versions/{V2}/")))
    assert [(u["upload_id"], u["received_at"], u["new"]) for u in doc["uploads"]] == [
        (UPLOAD_1, "2026-11-28T07:29:00Z", False),
        (UPLOAD_2, "2026-11-29T07:29:00Z", True),
        (f"{FRA}@2026-11-29-07h00m00s", "2026-11-29T07:00:00Z", True),
    ]
