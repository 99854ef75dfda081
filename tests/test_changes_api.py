"""``/api/1/datasets/{id}/versions/{version}/changes/`` (issue 14, item 3): what a version
changed against the one before, served from the ``changes.json`` publication stored with it,
on real files published through the pipeline; every answer checked against the OpenAPI
document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import HOSP, REAL, Pipeline
from functions.index_api import app as index_api
from opendepot import index, layout
from opendepot.contracts import Version, VersionChanges
from test_index_api import API, FILES, body
from test_index_api_contract import SETTINGS, check_against_openapi, get

FRA = "sp-pos-quot-fra"
FRA_FILES = [REAL / FRA / "paugier-mirror" / f / "sp-pos-quot-france.csv"
             for f in ("2020-09-07_5c325db", "2020-12-08_ed0df79")]
MIRROR = REAL / HOSP / "opencovid19-fr-mirror"


def publish(p: Pipeline, dataset: str, files: list[Path]) -> list[str]:
    versions = []
    for path in files:
        assert p.drop(f"{dataset}/spf/{path.parent.name}-{path.name}",
                      path.read_bytes()).status == "accepted"
        outcome = p.publish(dataset)
        assert outcome.created and outcome.version is not None
        versions.append(outcome.version)
    return versions


@pytest.fixture
def served(pipeline: Pipeline) -> dict[str, Any]:
    """Two versions of the national test counts (SPF revised them) and one of the hospital
    file, published; the index configured over the store."""
    pipeline.settings = SETTINGS
    fra = publish(pipeline, FRA, FRA_FILES)
    hosp = publish(pipeline, HOSP, [MIRROR / "2020-03-23_3f62f18" / "covid_hospit.csv"])
    index_api.configure(pipeline.store, SETTINGS)
    return {"pipeline": pipeline, "fra": fra, "hosp": hosp}


def changes_path(dataset: str, version: str) -> str:
    return f"/api/1/datasets/{dataset}/versions/{version}/changes/"


def test_changes__the_stored_summary_with_links_to_the_csv_and_itself(
    served: dict[str, Any],
) -> None:
    p, (v1, v2) = served["pipeline"], served["fra"]
    path = changes_path(FRA, v2)
    r = get(path)
    assert r["statusCode"] == 200
    check_against_openapi(path, "GET", r)
    doc = body(r)
    stored = json.loads(p.published(layout.changes_key(FRA, v2)))
    csv_key = layout.changes_csv_key(FRA, v2)
    assert doc == {**stored, "csv": f"{FILES}/{csv_key}", "uri": f"{API}{path}"}
    assert (doc["version"], doc["previous"], doc["level"], doc["note"]) == (v2, v1, "fra", None)
    assert doc["rows"] == {"before": 1254, "after": 2277, "added": 1023, "removed": 0,
                           "changed": 1254, "unchanged": 0}
    cells = {c["name"]: c["changed"] for c in doc["columns"]}
    assert (cells["P"], cells["T"], cells["pop"]) == (713, 1254, 1254)
    assert doc["cells"] == {"changed": sum(cells.values()), "csv_rows": sum(cells.values()),
                            "csv_truncated": False}
    csv = p.published(csv_key).decode("utf-8").splitlines()
    assert csv[0] == '"fra";"jour";"cl_age90";"column";"old";"new"'
    assert len(csv) == 1 + doc["cells"]["changed"]
    # the version document links to it; by the dataset's id too; immutable, so long cached
    version = body(get(f"/api/1/datasets/{FRA}/versions/{v2}/"))
    assert version["changes"] == f"{API}{path}"
    assert body(get(changes_path(index.dataset_id(FRA), v2))) == doc
    assert r["headers"]["Cache-Control"] == "public, max-age=86400"
    again = get(path, **{"if-none-match": r["headers"]["ETag"]})
    assert (again["statusCode"], again["body"]) == (304, "")
    head = get(path, method="HEAD")
    assert (head["statusCode"], head["body"]) == (200, "")


def test_first_version__no_previous_version(served: dict[str, Any]) -> None:
    for dataset, version in ((FRA, served["fra"][0]), (HOSP, served["hosp"][0])):
        path = changes_path(dataset, version)
        r = get(path)
        check_against_openapi(path, "GET", r)
        doc = body(r)
        assert (doc["version"], doc["previous"], doc["note"], doc["csv"]) == (
            version, None, "no previous version", None)
        assert all(doc[k] is None for k in index.CHANGES_SUMMARY_KEYS)
        assert doc["uri"] == f"{API}{path}"


@pytest.mark.parametrize(("dataset", "version", "message"), [
    (FRA, "2020-01-01-00h00m00s", f"version '2020-01-01-00h00m00s' not found in dataset '{FRA}'"),
    (FRA, "latest", f"version 'latest' not found in dataset '{FRA}'"),
    ("inconnu", "2020-01-01-00h00m00s", "dataset 'inconnu' not found"),
])
def test_unknown_version_or_dataset__404_envelope(
    served: dict[str, Any], dataset: str, version: str, message: str
) -> None:
    path = changes_path(dataset, version)
    r = get(path)
    check_against_openapi(path, "GET", r)
    assert body(r) == {"status": 404, "message": message}


def test_versions_published_before_changes_were_kept__first_says_so__later_404(
    served: dict[str, Any],
) -> None:
    """A manifest whose versions carry no ``changes`` (written before they were kept): the
    first version still has no previous one; a later one has no document to serve."""
    p, (v1, v2) = served["pipeline"], served["fra"]
    key = layout.manifest_key(FRA)
    manifest = json.loads(p.published(key))
    for v in manifest["versions"]:
        del v["changes"]
    p.store.put(SETTINGS.published_bucket, key, json.dumps(manifest).encode(), "application/json")
    doc = body(get(changes_path(FRA, v1)))
    assert (doc["note"], doc["level"], doc["csv"]) == ("no previous version", None, None)
    r = get(changes_path(FRA, v2))
    check_against_openapi(changes_path(FRA, v2), "GET", r)
    assert body(r) == {"status": 404, "message": f"version '{v2}' of dataset '{FRA}' has no "
                       "changes document (published before changes were kept)"}
    assert "changes" not in body(get(f"/api/1/datasets/{FRA}/versions/{v2}/"))


def test_version_changes_record__round_trip_and_absent_means_the_old_bytes() -> None:
    entry = {"version": "v", "published_at": "t", "upload_ids": ["u"],
             "uploads": [{"upload_id": "u", "producer": "spf"}], "rows": {"dep": 1},
             "resources": []}
    assert Version.from_json(entry).changes is None
    assert json.dumps(Version.from_json(entry).to_json()) == json.dumps(entry)
    recorded = {**entry, "changes": {"path": "d/v/changes.json", "csv_path": None,
                                     "previous": None}, "later": 1}
    parsed = Version.from_json(recorded)
    assert parsed.changes == VersionChanges("d/v/changes.json", None, None)
    assert parsed.extra == {"later": 1}
    assert json.dumps(parsed.to_json()) == json.dumps(recorded)
