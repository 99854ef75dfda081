"""The reuse catalogue (issue 16, item 6): registrations dropped at ``reuses/{reuser}/{file}``
are validated like uploads (a report of the same shape), stored in the published bucket and
served in udata's shapes by the index (``/api/1/reuses/``, ``/api/1/reuses/{id}/``,
``/api/1/datasets/{id}/reuses/``); each dataset's ``metrics.reuses`` counts them.

The dataset is the real hospital file of 2020-03-23 (opencovid19-fr mirror) published through
the in-memory pipeline; the reuses are the demo's seeds (``infra/reuses/``), real reuses of 2020.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml

from conftest import HOSP, Pipeline
from functions.index_api import app as index_app
from opendepot import layout, reuses, reuses_http
from opendepot.config import Settings
from opendepot.ingest import ObjectEvent
from opendepot.registry import load_registry
from test_index_api import body, call, event

SEEDS = Path(__file__).resolve().parents[1] / "infra" / "reuses"
COVIDTRACKER = SEEDS / "covidtracker" / "covidtracker.yaml"
HOSP_FILE = "donnees-hospitalieres-covid19/opencovid19-fr-mirror/2020-03-23_3f62f18/covid_hospit.csv"
SEED_FILES = sorted(p for p in SEEDS.glob("*/*") if p.suffix in reuses.FORMATS)


def seed_doc(path: Path) -> Any:
    text = path.read_text("utf-8")
    return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)


@pytest.fixture
def published(pipeline: Pipeline, real_dir: Path) -> Iterator[Pipeline]:
    """The hospital dataset published (one real file), the index serving the pipeline's store."""
    out = pipeline.drop(f"{HOSP}/spf/covid_hospit.csv", (real_dir / HOSP_FILE).read_bytes())
    assert out.status == "accepted"
    pipeline.publish()
    index_app.configure(pipeline.store, pipeline.settings, clock=lambda: pipeline.now)
    try:
        yield pipeline
    finally:
        index_app.configure(None, Settings())


def get(path: str, query: str = "") -> tuple[int, Any]:
    response = call(event(path=path, query=query, headers={"accept-encoding": "identity"}))
    return response["statusCode"], body(response)


def index_of(p: Pipeline) -> list[dict[str, Any]]:
    return list(json.loads(p.published(reuses.INDEX_KEY))["reuses"])


# --- the schema and the seeds -------------------------------------------------------------------


def test_shipped_schema_is_the_generated_one_and_a_valid_draft_2020_12_schema() -> None:
    shipped = reuses.shipped_schema()
    assert shipped == reuses.json_schema()
    jsonschema.Draft202012Validator.check_schema(shipped)
    assert shipped["properties"]["type"]["enum"] == [
        "api", "application", "idea", "news_article", "paper", "post", "visualization"]
    assert shipped["required"] == ["title", "description", "url", "type", "datasets"]
    assert shipped["additionalProperties"] is False


@pytest.mark.parametrize("path", SEED_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_seed_file_validates_against_the_schema_and_the_registry(path: Path) -> None:
    jsonschema.validate(seed_doc(path), reuses.shipped_schema())
    checked = reuses.check(path.read_bytes(), path.name, load_registry())
    assert checked.content is not None and checked.issues.errors.total == 0
    assert checked.datasets and all(load_registry().get(s) for s, _ in checked.datasets)


def test_seeds__both_etalab_dashboards_and_two_cited_reuses_with_their_sources() -> None:
    urls = {seed_doc(p)["url"] for p in SEED_FILES}
    assert {"https://dashboard.covid19.data.gouv.fr/", "https://aides-entreprises.data.gouv.fr/",
            "https://covidtracker.fr/", "https://github.com/paugier/plot-covid19-fr"} == urls
    sources = (SEEDS / "SOURCES.md").read_text("utf-8")
    for p in SEED_FILES:
        assert f"`{p.parent.name}/{p.name}`" in sources


def test_no_dataset_is_named_reuses() -> None:
    assert load_registry().get(reuses.REUSES) is None
    assert reuses.is_reuse_key("reuses/etalab/x.yaml") and not reuses.is_reuse_key(f"{HOSP}/spf/x")


# --- registration -------------------------------------------------------------------------------


def test_yaml_registration__accepted_with_an_upload_shaped_report_and_stored(
    pipeline: Pipeline,
) -> None:
    out = pipeline.drop("reuses/covidtracker/covidtracker.yaml", COVIDTRACKER.read_bytes())
    assert out.status == "accepted" and out.producer == "covidtracker" and out.dataset is None
    assert out.report_key is not None and out.report_key.startswith("reports/reuses/covidtracker/")
    report = json.loads(pipeline.store.get(pipeline.settings.internal_bucket, out.report_key))
    assert report["valid"] is True and report["stats"]["errors"] == 0
    od = report["opendepot"]
    assert od["status"] == "accepted" and od["key"] == "reuses/covidtracker/covidtracker.yaml"
    assert od["rows_published"] == 1 and od["reuse"]["datasets"] == 5
    assert report["tasks"][0]["labels"] == ["title", "description", "url", "type", "topic",
                                            "author", "image", "tags", "datasets"]
    [stored] = index_of(pipeline)
    assert stored["id"] == od["reuse"]["id"] == reuses.reuse_id("covidtracker", "covidtracker.yaml")
    assert stored["slug"] == "covidtracker" and stored["url"] == "https://covidtracker.fr/"
    one = json.loads(pipeline.published(reuses.published_key(stored["id"])))
    assert one == stored


def test_json_registration_then_same_name_in_yaml__one_reuse_updated_created_at_kept(
    pipeline: Pipeline,
) -> None:
    doc = seed_doc(COVIDTRACKER)
    first = pipeline.drop("reuses/covidtracker/covidtracker.json", json.dumps(doc).encode())
    assert first.status == "accepted"
    doc["title"] = "CovidTracker France"
    second = pipeline.drop("reuses/covidtracker/covidtracker.yaml",
                           yaml.safe_dump(doc, allow_unicode=True).encode())
    assert second.status == "accepted"
    [stored] = index_of(pipeline)
    assert stored["title"] == "CovidTracker France" and stored["slug"] == "covidtracker-france"
    assert stored["created_at"] < stored["last_modified"]
    assert stored["created_at"] == first.report["opendepot"]["received_at"]  # type: ignore[index]


def _errors(out: Any) -> list[dict[str, Any]]:
    return list(out.report["tasks"][0]["errors"])


def test_invalid_type_and_missing_title__refused_naming_field_and_value(
    pipeline: Pipeline,
) -> None:
    doc = seed_doc(COVIDTRACKER)
    doc["type"] = "dashboard"
    del doc["title"]
    out = pipeline.drop("reuses/covidtracker/bad.json", json.dumps(doc).encode())
    assert out.status == "rejected"
    errors = {e["fieldName"]: e for e in _errors(out)}
    assert set(errors) == {"type", "title"}
    assert errors["type"]["type"] == "reuse-field" and errors["type"]["cell"] == '"dashboard"'
    assert "'visualization'" in errors["type"]["message"]
    assert errors["title"]["message"] == "field 'title': is required and missing"
    assert out.report["opendepot"]["rows_published"] == 0  # type: ignore[index]
    assert pipeline.store.head(pipeline.settings.published_bucket, reuses.INDEX_KEY) is None


def test_unknown_datasets__refused_naming_them(pipeline: Pipeline) -> None:
    doc = seed_doc(COVIDTRACKER)
    doc["datasets"] = ["donnees-hospitalieres-covid19", "vaccinations", "deces-insee"]
    out = pipeline.drop("reuses/covidtracker/covidtracker.yaml", yaml.safe_dump(doc).encode())
    [error] = _errors(out)
    assert out.status == "rejected" and error["type"] == "unknown-dataset"
    assert error["fieldName"] == "datasets" and error["cell"] == "vaccinations, deces-insee"
    assert error["message"].startswith(
        "field 'datasets': 'vaccinations', 'deces-insee' are not a dataset of this catalogue")


def test_dataset_named_by_id__accepted_and_stored_by_slug(pipeline: Pipeline) -> None:
    doc = seed_doc(COVIDTRACKER)
    doc["datasets"] = [layout.dataset_id(HOSP), HOSP]
    out = pipeline.drop("reuses/covidtracker/covidtracker.yaml", yaml.safe_dump(doc).encode())
    assert out.status == "accepted"
    assert [d["slug"] for d in index_of(pipeline)[0]["datasets"]] == [HOSP]


@pytest.mark.parametrize(("key", "body_", "kind"), [
    ("reuses/covidtracker.yaml", b"title: x", "unrouted-key"),
    ("reuses/covidtracker/notes.txt", b"title: x", "format-error"),
    ("reuses/covidtracker/broken.json", b'{"title": ', "format-error"),
    ("reuses/covidtracker/list.yaml", b"- title: x", "format-error"),
    ("reuses/covidtracker/huge.json", b" " * (reuses.MAX_BYTES + 1), "object-too-large"),
])
def test_unusable_registrations__rejected_with_one_error(
    pipeline: Pipeline, key: str, body_: bytes, kind: str
) -> None:
    out = pipeline.drop(key, body_)
    assert out.status == "rejected"
    assert [e["type"] for e in _errors(out)] == [kind]


def test_same_event_delivered_twice__duplicate(pipeline: Pipeline) -> None:
    first = pipeline.drop("reuses/covidtracker/covidtracker.yaml", COVIDTRACKER.read_bytes())
    assert first.report is not None
    od = first.report["opendepot"]
    again = pipeline.ingest(ObjectEvent(
        bucket=od["bucket"], key=od["key"], size=od["size"], etag=od["etag"],
        version_id=od["version_id"], sequencer=od["sequencer"],
        event_time=datetime.fromisoformat(od["received_at"].replace("Z", "+00:00"))))
    assert (first.status, again.status) == ("accepted", "duplicate")
    assert again.report_key == first.report_key and len(index_of(pipeline)) == 1


# --- the index ----------------------------------------------------------------------------------


def _register_seeds(p: Pipeline) -> None:
    for path in SEED_FILES:
        out = p.drop(f"reuses/{path.parent.name}/{path.name}", path.read_bytes())
        assert out.status == "accepted", out.message


def test_seeds_served__udata_pager_and_documents(published: Pipeline) -> None:
    _register_seeds(published)
    status, page = get("/api/1/reuses/")
    assert status == 200 and page["total"] == 4 and page["page_size"] == 20
    assert [d["slug"] for d in page["data"]] == [  # newest first
        "plot-covid-19-france", "tableau-de-bord-de-suivi-de-l-epidemie-de-covid-19",
        "tableau-de-bord-des-aides-aux-entreprises", "covidtracker"]
    tracker = page["data"][3]
    assert tracker["owner"]["first_name"] == "Guillaume" and tracker["owner"]["last_name"] == "Rozier"
    assert tracker["organization"] is None and tracker["metrics"]["datasets"] == 5
    assert tracker["image"] == tracker["image_thumbnail"] == (
        "https://github.com/rozierguillaume/covid-19/raw/HEAD/images/covidtracker.png")
    assert tracker["uri"].endswith("/api/1/reuses/covidtracker/")
    hosp = next(d for d in tracker["datasets"] if d["slug"] == HOSP)
    assert hosp["id"] == layout.dataset_id(HOSP) and hosp["uri"].endswith(f"/datasets/{HOSP}/")
    reuses_http.ReusePage.model_validate(page)  # the OpenAPI model of the answer
    etalab = page["data"][1]
    assert etalab["organization"]["name"] == "Etalab" and etalab["owner"] is None
    assert page["data"][0]["image"] is None


def test_one_reuse_by_slug_or_id__404_otherwise(published: Pipeline) -> None:
    _register_seeds(published)
    rid = reuses.reuse_id("covidtracker", "covidtracker.yaml")
    assert get("/api/1/reuses/covidtracker/")[1]["id"] == rid
    assert get(f"/api/1/reuses/{rid}/")[1]["slug"] == "covidtracker"
    status, error = get("/api/1/reuses/nope/")
    assert status == 404 and error == {"status": 404, "message": "reuse 'nope' not found"}


@pytest.mark.parametrize(("query", "slugs"), [
    (f"dataset={HOSP}", ["tableau-de-bord-de-suivi-de-l-epidemie-de-covid-19", "covidtracker"]),
    ("dataset=fonds-solidarite&type=visualization", ["tableau-de-bord-des-aides-aux-entreprises"]),
    ("tag=jupyter", ["plot-covid-19-france"]),
    ("q=rozier", ["covidtracker"]),
    ("organization=etalab&sort=title", ["tableau-de-bord-de-suivi-de-l-epidemie-de-covid-19",
                                        "tableau-de-bord-des-aides-aux-entreprises"]),
    ("topic=economy_and_business", ["tableau-de-bord-des-aides-aux-entreprises"]),
    ("type=paper", []),
    ("sort=-datasets&page_size=1", ["tableau-de-bord-de-suivi-de-l-epidemie-de-covid-19"]),
])
def test_list_filters(published: Pipeline, query: str, slugs: list[str]) -> None:
    _register_seeds(published)
    status, page = get("/api/1/reuses/", query)
    assert status == 200 and [d["slug"] for d in page["data"]] == slugs


@pytest.mark.parametrize(("query", "message"), [
    ("featured=true", "unknown parameter 'featured': this list takes page, page_size, q, "
                      "dataset, tag, type, topic, organization, owner, sort"),
    ("type=map", "type='map' is not one of api, application, idea, news_article, paper, post, "
                 "visualization"),
    ("sort=views", "sort='views' is not one of created, title, datasets, -created, -title, "
                   "-datasets"),
    ("page_size=&type=", "page_size, type are empty: give a value or leave the parameter out"),
])
def test_list_refuses_unknown_parameters_and_values(
    published: Pipeline, query: str, message: str
) -> None:
    assert get("/api/1/reuses/", query) == (400, {"status": 400, "message": message})


def test_dataset_reuses__its_reuses_only_and_metrics_count(published: Pipeline) -> None:
    _register_seeds(published)
    status, page = get(f"/api/1/datasets/{HOSP}/reuses/")
    assert status == 200 and page["total"] == 2
    assert {d["slug"] for d in page["data"]} == {
        "covidtracker", "tableau-de-bord-de-suivi-de-l-epidemie-de-covid-19"}
    assert get(f"/api/1/datasets/{layout.dataset_id(HOSP)}/reuses/", "type=paper")[1]["total"] == 0
    assert get("/api/1/datasets/nope/reuses/")[0] == 404
    assert get(f"/api/1/datasets/{HOSP}/reuses/", "dataset=x")[0] == 400
    assert reuses.dataset_counts(index_of(published))[HOSP] == 2
    assert get(f"/api/1/datasets/{HOSP}/")[1]["metrics"]["reuses"] == 2
    [listed] = get("/api/1/datasets/")[1]["data"]
    assert listed["slug"] == HOSP and listed["metrics"]["reuses"] == 2


def test_metrics_reuses__zero_before_any_reuse_then_counted(published: Pipeline) -> None:
    assert get(f"/api/1/datasets/{HOSP}/")[1]["metrics"]["reuses"] == 0
    published.drop("reuses/covidtracker/covidtracker.yaml", COVIDTRACKER.read_bytes())
    assert get(f"/api/1/datasets/{HOSP}/")[1]["metrics"]["reuses"] == 1


def test_openapi_declares_the_reuse_routes_with_their_enums(published: Pipeline) -> None:
    doc = get("/api/1/openapi.json")[1]
    listing = doc["paths"]["/api/1/reuses/"]["get"]
    params = {p["name"]: p for p in listing["parameters"]}
    assert params["type"]["schema"]["enum"] == list(reuses.TYPES)
    assert params["page_size"]["schema"]["maximum"] == 100
    assert set(listing["responses"]) == {"200", "304", "400", "500"}
    assert "/api/1/reuses/{reuse}/" in doc["paths"]
    assert "/api/1/datasets/{dataset}/reuses/" in doc["paths"]
