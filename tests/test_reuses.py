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
from email.utils import parsedate_to_datetime
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
from opendepot.storage import MemoryStore
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


# --- review 16: Last-Modified of reuse counts, slugs, organizations, deliveries out of order ----

SPF = "sante-publique-france"


def answer(path: str, query: str = "", headers: dict[str, str] | None = None) -> dict[str, Any]:
    return call(event(path=path, query=query,
                      headers={"accept-encoding": "identity", **(headers or {})}))


def _reuse_count(doc: dict[str, Any]) -> int:
    one = doc["data"][0] if "data" in doc else doc
    return int(one["metrics"]["reuses"])


CARRYING = [(f"/api/1/datasets/{HOSP}/", ""), ("/api/1/datasets/", ""),
            ("/api/1/datasets/", "sort=-reuses"), (f"/api/1/organizations/{SPF}/datasets/", ""),
            (f"/api/2/datasets/{HOSP}/", "")]


@pytest.mark.parametrize(("path", "query"), CARRYING, ids=[p + q for p, q in CARRYING])
def test_reuse_registered_then_updated__last_modified_and_etag_of_reuse_counts_move(
    published: Pipeline, path: str, query: str
) -> None:
    before = answer(path, query)
    assert before["statusCode"] == 200 and _reuse_count(body(before)) == 0
    published.drop("reuses/covidtracker/covidtracker.yaml", COVIDTRACKER.read_bytes())
    after = answer(path, query)
    assert _reuse_count(body(after)) == 1
    assert after["headers"]["ETag"] != before["headers"]["ETag"]
    since = parsedate_to_datetime(before["headers"]["Last-Modified"])
    assert parsedate_to_datetime(after["headers"]["Last-Modified"]) > since
    polled = answer(path, query, {"if-modified-since": before["headers"]["Last-Modified"]})
    assert polled["statusCode"] == 200 and _reuse_count(body(polled)) == 1
    assert answer(path, query, {"if-modified-since": after["headers"]["Last-Modified"]})[
        "statusCode"] == 304
    doc = seed_doc(COVIDTRACKER)
    doc["title"] = "CovidTracker France"  # an update: the count stays, the index changed
    published.drop("reuses/covidtracker/covidtracker.yaml", yaml.safe_dump(doc).encode())
    updated = answer(path, query, {"if-modified-since": after["headers"]["Last-Modified"]})
    assert updated["statusCode"] == 200
    assert parsedate_to_datetime(updated["headers"]["Last-Modified"]) > parsedate_to_datetime(
        after["headers"]["Last-Modified"])


def _file(title: str, organization: str | None = None) -> bytes:
    doc = seed_doc(COVIDTRACKER)
    doc.update(title=title, url="https://evil.example/")
    if organization:
        doc["organization"] = organization
    return yaml.safe_dump(doc, allow_unicode=True).encode()


def test_reuse_titled_with_an_id__never_takes_over_that_ids_url(published: Pipeline) -> None:
    victim = reuses.reuse_id("covidtracker", "covidtracker.yaml")
    # registered before the victim (ids are predictable), and after it
    assert published.drop("reuses/aaa/early.yaml", _file(victim)).status == "accepted"
    published.drop("reuses/covidtracker/covidtracker.yaml", COVIDTRACKER.read_bytes())
    assert published.drop("reuses/aab/late.yaml", _file(victim.upper())).status == "accepted"
    status, found = get(f"/api/1/reuses/{victim}/")
    assert status == 200 and found["url"] == "https://covidtracker.fr/"
    slugs = {r["reuser"]: r["slug"] for r in index_of(published)}
    early, late = reuses.reuse_id("aaa", "early.yaml"), reuses.reuse_id("aab", "late.yaml")
    assert slugs == {"covidtracker": "covidtracker", "aaa": f"{victim}-{early[:8]}",
                     "aab": f"{victim}-{late[:8]}"}
    assert get(f"/api/1/reuses/{slugs['aaa']}/")[1]["id"] == early


def test_reuse_slug_equal_to_an_existing_reuses_id__gets_another_slug(published: Pipeline) -> None:
    published.drop("reuses/covidtracker/covidtracker.yaml", COVIDTRACKER.read_bytes())
    victim = reuses.reuse_id("covidtracker", "covidtracker.yaml")
    published.drop("reuses/aaa/x.yaml", _file(f"{victim} "))  # slugified to the id
    mine = next(r for r in index_of(published) if r["reuser"] == "aaa")
    assert mine["slug"] != victim and mine["slug"].startswith(victim + "-")
    assert get(f"/api/1/reuses/{victim}/")[1]["extras"]["reuser"] == "covidtracker"


def test_organization_named_from_another_folder__an_unverified_claim_never_resolved(
    published: Pipeline,
) -> None:
    spf_id = get(f"/api/1/organizations/{SPF}/")[1]["id"]
    out = published.drop("reuses/aaa/fake.yaml", _file("Faux tableau", "Santé publique France"))
    assert out.status == "accepted"
    [doc] = get("/api/1/reuses/")[1]["data"]
    assert doc["organization"] is None and spf_id not in json.dumps(doc)
    assert doc["owner"]["slug"] == "aaa"
    assert doc["extras"]["organization_claimed"] == "Santé publique France"
    for value in (SPF, spf_id):
        assert get("/api/1/reuses/", f"organization={value}")[1]["total"] == 0
    assert get("/api/1/reuses/", "owner=aaa")[1]["total"] == 1
    reuses_http.ReusePage.model_validate(get("/api/1/reuses/")[1])
    # the same name from the organization's own folder is its reference
    published.drop(f"reuses/{SPF}/real.yaml", _file("Vrai tableau", "Santé publique France"))
    status, page = get("/api/1/reuses/", f"organization={SPF}")
    assert status == 200 and [d["title"] for d in page["data"]] == ["Vrai tableau"]
    assert page["data"][0]["organization"]["id"] == spf_id
    assert page["data"][0]["extras"]["organization_claimed"] is None


class RacingStore(MemoryStore):
    """A store that runs ``hooks[key]`` once, just before the first write of ``key``."""

    def __init__(self) -> None:
        super().__init__()
        self.hooks: dict[str, Any] = {}

    def put(self, bucket: str, key: str, body: Any, content_type: str, **kw: Any) -> str:
        hook = self.hooks.pop(key, None)
        if hook is not None:
            hook()
        return super().put(bucket, key, body, content_type, **kw)


def _record(title: str, received: str, sequencer: str, upload: str) -> dict[str, Any]:
    doc = seed_doc(COVIDTRACKER)
    doc["title"] = title
    checked = reuses.check(yaml.safe_dump(doc).encode(), "covidtracker.yaml", load_registry())
    context = {"key": "reuses/covidtracker/covidtracker.yaml", "received_at": received,
               "sequencer": sequencer, "upload_id": upload}
    return reuses.record_of(checked, "covidtracker", "covidtracker.yaml", context)


@pytest.mark.parametrize("first", ["00000000000000A0", "00000000000000a0"])
def test_two_deliveries_out_of_order__index_and_object_keep_the_later(
    pipeline: Pipeline, first: str
) -> None:
    """D1 reads the index, then D2 (same file, later sequencer: ``B0`` after ``A0``, and
    after ``a0`` once upper-cased and padded as S3 documents) is indexed whole, then D1
    writes."""
    store, settings = RacingStore(), pipeline.settings
    at = "2026-11-29T08:00:00.000Z"  # one event time: the sequencer orders them
    d1 = _record("First title", at, first, "u1")
    d2 = _record("Second title", at, "00000000000000B0", "u2")
    assert reuses.order_key(d1["order"]) < reuses.order_key(d2["order"])
    key = reuses.published_key(d1["id"])
    store.hooks[key] = lambda: reuses.index_reuse(store, settings, d2, at)
    assert reuses.index_reuse(store, settings, d1, at) is False
    [entry], _ = reuses.read_index(store, settings)
    assert entry["title"] == "Second title"
    assert json.loads(store.get(settings.published_bucket, key)) == entry
    assert reuses.index_reuse(store, settings, d1, at) is False  # redelivered: still older
    assert json.loads(store.get(settings.published_bucket, key))["title"] == "Second title"


def test_order_key__sequencers_padded_and_upper_cased() -> None:
    assert reuses.order_key(["t", "9F", "u"]) == reuses.order_key(["t", "9f000", "u"])
    assert reuses.order_key(["t", "a0", "u"]) < reuses.order_key(["t", "B0", "u"])
    assert reuses.order_key(["t1", "FF", "u"]) < reuses.order_key(["t2", "00", "u"])


def test_older_delivery_of_another_reuse_indexed_last__the_index_change_is_later(
    published: Pipeline,
) -> None:
    store, settings = published.store, published.settings
    newer = _record("CovidTracker", "2026-11-29T09:00:00.000Z", "0B", "u2")
    assert reuses.index_reuse(store, settings, newer, "2026-11-29T09:00:00.000Z")
    first = answer("/api/1/reuses/")["headers"]["Last-Modified"]
    doc = seed_doc(COVIDTRACKER)
    checked = reuses.check(yaml.safe_dump(doc).encode(), "other.yaml", load_registry())
    older = reuses.record_of(checked, "aaa", "other.yaml", {
        "key": "reuses/aaa/other.yaml", "received_at": "2026-11-29T08:59:00.000Z",
        "sequencer": "0A", "upload_id": "u1"})
    assert reuses.index_reuse(store, settings, older, "2026-11-29T08:59:00.000Z")
    _, _, changed = reuses.read_index_state(store, settings)
    assert changed == "2026-11-29T09:00:01.000Z"  # a second past the previous change
    second = answer("/api/1/reuses/", headers={"if-modified-since": first})
    assert second["statusCode"] == 200 and body(second)["total"] == 2
    assert second["headers"]["Last-Modified"] == "Sun, 29 Nov 2026 09:00:01 GMT"
    d = answer(f"/api/1/datasets/{HOSP}/", headers={"if-modified-since": first})
    assert d["statusCode"] == 200 and body(d)["metrics"]["reuses"] == 2
