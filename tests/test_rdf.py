"""Per-dataset and catalog RDF by content negotiation and by suffix, as udata serves them
(``/api/1/datasets/{id}/rdf``, ``rdf.{format}``, ``/api/1/site/catalog``, ``catalog.{format}``),
with DCAT-AP 3.0's ``dcat:contactPoint`` and ``dcat:theme``.

Every serialisation is parsed back with rdflib and compared with the JSON-LD answer's graph
(as rdflib's own JSON-LD processor reads it): isomorphic. The per-dataset graph is checked with
the official DCAT-AP 3.0.0 SHACL shapes (``test_dcat.shapes``), on the index fixtures of
``test_index_api`` and on a dataset published from real files.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from rdflib import Graph, Literal, URIRef
from rdflib.compare import isomorphic

from conftest import HOSP, ROOT
from functions.index_api import app as index_api
from opendepot import dcat, openapi, rdf
from opendepot.config import Settings
from opendepot.registry import load_registry
from test_dcat import DCAT, DCTERMS, EU, RDF, assert_conforms, shapes  # noqa: F401  (fixture)
from test_index_api import (
    BUCKET,
    COVID,
    FILES,
    HOST,
    NOW,
    REA,
    body,
    call,
    catalog_entry,
    event,
    put_catalog,
    rea_entry,
    text,
)

pytestmark = [  # inside rdflib's JSON-LD, N3 and TriG parsers (what the test reads back with)
    pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Dataset.default_context is deprecated:DeprecationWarning"),
]
VCARD = "http://www.w3.org/2006/vcard/ns#"
SKOS = "http://www.w3.org/2004/02/skos/core#"
PARSERS = {"application/ld+json": "json-ld", "text/turtle": "turtle",
           "application/rdf+xml": "xml", "text/n3": "n3", "application/n-triples": "nt",
           "application/trig": "trig"}
"""Media type -> rdflib parser (the test's own table, not ``rdf.FORMATS``)."""
DATASET_RDF = f"/api/1/datasets/{COVID}/rdf"
PLAIN = {"accept-encoding": "identity"}


@pytest.fixture(autouse=True)
def configured() -> Any:
    from opendepot.storage import MemoryStore

    s = MemoryStore()
    put_catalog(s, catalog_entry(), rea_entry())
    settings = Settings(published_bucket=BUCKET, public_base_url=FILES, api_base_url="")
    index_api.configure(s, settings, clock=lambda: NOW)
    yield s
    index_api.configure(None)


def get(path: str, **headers: str) -> dict[str, Any]:
    return call(event(path=path, headers={**PLAIN, **headers}))


def graph(r: dict[str, Any]) -> Graph:
    """The answer parsed by rdflib with the parser its Content-Type names."""
    assert r["statusCode"] == 200, r
    media, _, charset = r["headers"]["Content-Type"].partition("; ")
    assert charset == "charset=utf-8"
    return Graph().parse(data=text(r), format=PARSERS[media])


@pytest.fixture
def reference() -> Graph:
    """The per-dataset JSON-LD answer, read by rdflib's JSON-LD processor."""
    r = get(DATASET_RDF + ".jsonld")
    g = graph(r)
    assert len(g) > 100
    return g


# --- suffixes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("suffix", "media"), [
    ("jsonld", "application/ld+json"), ("json", "application/ld+json"),
    ("ttl", "text/turtle"), ("rdf", "application/rdf+xml"), ("xml", "application/rdf+xml"),
    ("n3", "text/n3"), ("nt", "application/n-triples"), ("trig", "application/trig"),
])
def test_dataset_rdf_suffix__its_media_type_same_graph_as_json_ld(
    reference: Graph, suffix: str, media: str
) -> None:
    r = get(f"{DATASET_RDF}.{suffix}")
    assert r["headers"]["Content-Type"] == f"{media}; charset=utf-8"
    assert r["headers"]["Last-Modified"] == "Sun, 29 Nov 2026 07:30:12 GMT"
    assert "Content-Location" not in r["headers"]
    assert isomorphic(graph(r), reference)


def test_dataset_rdf__one_dataset_its_distributions_no_catalog(reference: Graph) -> None:
    covid = URIRef(f"{HOST}/api/1/datasets/{COVID}/")
    assert set(reference.subjects(RDF.type, DCAT.Dataset)) == {covid}
    assert not list(reference.subjects(RDF.type, DCAT.Catalog))
    assert len(set(reference.objects(covid, DCAT.distribution))) == 6
    assert reference.value(covid, DCTERMS.title) == Literal(
        "Données hospitalières relatives à l'épidémie de COVID-19", lang="fr")


def test_dataset_rdf__contact_point_and_theme(reference: Graph) -> None:
    covid = URIRef(f"{HOST}/api/1/datasets/{COVID}/")
    contact = reference.value(covid, DCAT.contactPoint)
    org = f"{HOST}/api/1/organizations/sante-publique-france/"
    assert contact == URIRef(org + "#contact")
    assert set(reference.objects(contact, RDF.type)) == {
        URIRef(VCARD + "Kind"), URIRef(VCARD + "Organization")}
    assert reference.value(contact, URIRef(VCARD + "fn")) == Literal("Santé publique France")
    assert reference.value(contact, URIRef(VCARD + "hasURL")) == URIRef(org)
    heal = URIRef(f"{EU}/data-theme/HEAL")
    assert list(reference.objects(covid, DCAT.theme)) == [heal]
    assert (heal, RDF.type, URIRef(SKOS + "Concept")) in reference
    assert reference.value(heal, URIRef(SKOS + "inScheme")) == URIRef(f"{EU}/data-theme")
    assert set(reference.objects(heal, URIRef(SKOS + "prefLabel"))) == {
        Literal("Santé", lang="fr"), Literal("Health", lang="en")}


def test_dataset_rdf__conforms_to_dcat_ap_3_shapes(shapes: Graph) -> None:  # noqa: F811
    assert_conforms(body(get(DATASET_RDF + ".jsonld")), shapes)
    from pyshacl import validate

    conforms, _, report = validate(graph(get(DATASET_RDF + ".ttl")), shacl_graph=shapes)
    assert conforms, report


def test_dataset_rdf__by_id_as_by_slug() -> None:
    by_slug = get(DATASET_RDF + ".ttl")
    dataset_id = body(get(f"/api/1/datasets/{COVID}/"))["id"]
    assert text(get(f"/api/1/datasets/{dataset_id}/rdf.ttl")) == text(by_slug)


@pytest.mark.parametrize("path", [
    f"/api/1/datasets/{COVID}/rdf.foo", f"/api/1/datasets/{COVID}/rdf.html",
    "/api/1/site/catalog.csv",
])
def test_unknown_suffix__404_envelope(path: str) -> None:
    r = get(path)
    assert r["statusCode"] == 404
    assert body(r)["message"].startswith(f"no RDF format {path.rsplit('.', 1)[1]!r}: one of jsonld")


def test_unknown_dataset__404_for_both_routes() -> None:
    for path in ("/api/1/datasets/nope/rdf", "/api/1/datasets/nope/rdf.ttl"):
        r = get(path)
        assert (r["statusCode"], body(r)["message"]) == (404, "dataset 'nope' not found")


# --- content negotiation --------------------------------------------------------------------------


@pytest.mark.parametrize(("accept", "media", "suffix"), [
    (None, "application/ld+json", "jsonld"),
    ("*/*", "application/ld+json", "jsonld"),
    ("application/ld+json", "application/ld+json", "jsonld"),
    ("application/json", "application/ld+json", "jsonld"),
    ("text/turtle", "text/turtle", "ttl"),
    ("application/x-turtle", "text/turtle", "ttl"),  # what udata sends for Turtle
    ("application/rdf+xml", "application/rdf+xml", "rdf"),
    ("text/n3", "text/n3", "n3"),
    ("application/n-triples", "application/n-triples", "nt"),
    ("text/turtle;q=0.5, application/rdf+xml;q=0.8", "application/rdf+xml", "rdf"),
    ("text/*", "text/turtle", "ttl"),
    ("text/*;q=0.9, application/ld+json;q=0.2", "text/turtle", "ttl"),
    # a browser's header: application/xml (q=0.9) beats */* (q=0.8)
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
     "application/rdf+xml", "rdf"),
])
def test_dataset_rdf__accept_header_picks_the_serialisation(
    reference: Graph, accept: str | None, media: str, suffix: str
) -> None:
    r = get(DATASET_RDF, **({"accept": accept} if accept else {}))
    assert r["headers"]["Content-Type"] == f"{media}; charset=utf-8"
    assert r["headers"]["Vary"] == "Accept, Accept-Encoding"
    assert r["headers"]["Content-Location"] == f"{HOST}{DATASET_RDF}.{suffix}"
    assert isomorphic(graph(r), reference)
    assert text(r) == text(get(f"{DATASET_RDF}.{suffix}"))


@pytest.mark.parametrize("accept", ["text/html", "application/pdf, image/*",
                                    "text/turtle;q=0", "*/*;q=0"])
def test_dataset_rdf__nothing_acceptable__406_envelope(accept: str) -> None:
    r = get(DATASET_RDF, accept=accept)
    assert r["statusCode"] == 406
    assert r["headers"]["Content-Type"] == "application/json; charset=utf-8"
    assert r["headers"]["Vary"] == "Accept, Accept-Encoding"
    assert body(r) == {"status": 406, "message": f"Accept {accept!r} admits none of "
                       "application/ld+json, text/turtle, application/rdf+xml, text/n3, "
                       "application/n-triples, application/trig"}


def test_negotiated_answer__etag_per_variant_304_and_head() -> None:
    turtle, xml = get(DATASET_RDF, accept="text/turtle"), get(DATASET_RDF, accept="application/rdf+xml")
    assert turtle["headers"]["ETag"] != xml["headers"]["ETag"]
    again = get(DATASET_RDF, accept="text/turtle", **{"if-none-match": turtle["headers"]["ETag"]})
    assert (again["statusCode"], again["body"]) == (304, "")
    head = call(event(path=DATASET_RDF, method="HEAD", headers={**PLAIN, "accept": "text/turtle"}))
    assert (head["statusCode"], head["body"]) == (200, "")
    assert head["headers"]["ETag"] == turtle["headers"]["ETag"]


def test_negotiate__quality_specificity_and_server_order() -> None:
    assert rdf.negotiate(None) is rdf.negotiate("") is rdf.JSON_LD
    assert rdf.negotiate("text/turtle; charset=utf-8") is rdf.TURTLE
    assert rdf.negotiate("*/*;q=0.1, text/turtle;q=0") is rdf.JSON_LD  # turtle refused outright
    assert rdf.negotiate("text/*, text/turtle;q=0") is rdf.RDF_XML  # text/xml, next in order
    assert rdf.negotiate("application/*;q=0.4, text/n3;q=0.5") is rdf.N3
    assert rdf.negotiate("APPLICATION/RDF+XML") is rdf.RDF_XML
    assert rdf.negotiate("text/turtle;q=oops") is None
    assert rdf.negotiate("text/html") is None


# --- the catalog ----------------------------------------------------------------------------------


def test_site_catalog__every_serialisation_the_graph_of_catalog_jsonld(
    shapes: Graph,  # noqa: F811
) -> None:
    served = body(call(event("http_get_catalog_jsonld.json", headers=PLAIN)))
    want = assert_conforms(served, shapes)
    for suffix in rdf.SUFFIXES:
        assert isomorphic(graph(get(f"/api/1/site/catalog.{suffix}")), want), suffix
    r = get("/api/1/site/catalog", accept="text/turtle")
    assert r["headers"]["Content-Location"] == f"{HOST}/api/1/site/catalog.ttl"
    assert r["headers"]["Last-Modified"] == "Sun, 29 Nov 2026 07:30:13 GMT"
    g = graph(r)
    assert isomorphic(g, want)
    catalog = URIRef(f"{HOST}/catalog.jsonld")
    assert g.value(catalog, DCAT.themeTaxonomy) == URIRef(f"{EU}/data-theme")
    assert set(g.objects(catalog, DCAT.dataset)) == {
        URIRef(f"{HOST}/api/1/datasets/{COVID}/"), URIRef(f"{HOST}/api/1/datasets/{REA}/")}
    assert get("/api/1/site/catalog", accept="image/png")["statusCode"] == 406


def test_sparse_dataset__no_contact_no_theme_still_conforms(
    configured: Any, shapes: Graph,  # noqa: F811
) -> None:
    from test_index_api import sparse_entry

    put_catalog(configured, {**sparse_entry(), "description": ""})
    g = assert_conforms(body(get("/api/1/datasets/vide/rdf.jsonld")), shapes)
    ds = URIRef(f"{HOST}/api/1/datasets/vide/")
    assert (ds, RDF.type, DCAT.Dataset) in g
    assert g.value(ds, DCAT.contactPoint) is None
    assert g.value(ds, DCAT.theme) is None


# --- OpenAPI and the registry ---------------------------------------------------------------------


def test_openapi__rdf_routes_with_their_media_types_and_formats() -> None:
    doc = openapi.openapi_document(index_api.app)
    media = ["application/ld+json", "text/turtle", "application/rdf+xml", "text/n3",
             "application/n-triples", "application/trig"]
    for path, errors in (("/api/1/datasets/{dataset}/rdf", {"404", "406", "500"}),
                         ("/api/1/datasets/{dataset}/rdf.{format}", {"404", "500"}),
                         ("/api/1/site/catalog", {"406", "500"}),
                         ("/api/1/site/catalog.{format}", {"404", "500"})):
        op = doc["paths"][path]["get"]
        assert list(op["responses"]["200"]["content"]) == media, path
        assert set(op["responses"]) == {"200", "304", *errors}, path
        assert "head" in doc["paths"][path]
        if "{format}" in path:
            (param,) = [p for p in op["parameters"] if p["name"] == "format"]
            assert param["schema"]["enum"] == [
                "jsonld", "json", "ttl", "rdf", "xml", "n3", "nt", "trig"]


def test_registry__every_dataset_has_a_theme_health_or_economy() -> None:
    by_theme: dict[str, list[str]] = {}
    for d in load_registry():
        codes = dcat.themes(d.tags)
        assert codes, d.name
        for c in codes:
            by_theme.setdefault(c, []).append(d.name)
    assert sorted(by_theme["ECON"]) == ["fonds-solidarite", "fonds-solidarite-regional"]
    assert len(by_theme["HEAL"]) == len(load_registry().datasets) - 2
    assert dcat.themes(["covid19"]) == []  # the epidemic alone says no theme


# --- real files -----------------------------------------------------------------------------------


def test_dataset_published_from_real_files__conforms_and_round_trips(
    pipeline: Any, shapes: Graph,  # noqa: F811
) -> None:
    from conftest import REAL

    data = (REAL / HOSP / "opencovid19-fr-mirror" / "2020-03-23_3f62f18" / "covid_hospit.csv")
    assert pipeline.drop(f"{HOSP}/spf/covid_hospit.csv", data.read_bytes()).status == "accepted"
    assert pipeline.publish().created
    settings = Settings(published_bucket=pipeline.settings.published_bucket,
                        public_base_url=FILES, api_base_url="")
    index_api.configure(pipeline.store, settings, clock=lambda: NOW)
    doc = body(get(f"/api/1/datasets/{HOSP}/rdf"))
    g = assert_conforms(doc, shapes)
    ds = URIRef(f"{HOST}/api/1/datasets/{HOSP}/")
    assert len(set(g.objects(ds, DCAT.distribution))) == 6
    assert g.value(ds, DCAT.theme) == URIRef(f"{EU}/data-theme/HEAL")
    for suffix in ("ttl", "rdf", "nt"):
        assert isomorphic(graph(get(f"/api/1/datasets/{HOSP}/rdf.{suffix}")), g), suffix
    assert json.loads(text(get(f"/api/1/datasets/{HOSP}/rdf.json"))) == doc


def test_serialisations__same_bytes_in_every_process(tmp_path: Any) -> None:
    """The ETag of an RDF answer is its body's: two Lambda instances (two string hash seeds)
    must write the same bytes, or a client's If-None-Match misses on the other one."""
    import subprocess
    import sys

    doc = body(get("/api/1/site/catalog.jsonld"))
    (tmp_path / "doc.json").write_text(json.dumps(doc), "utf-8")
    script = (
        "import hashlib, json, sys; from opendepot import rdf; "
        "doc = json.load(open(sys.argv[1], encoding='utf-8')); "
        "print(*(hashlib.sha256(rdf.serialise(doc, f).encode()).hexdigest() "
        "for f in (rdf.TURTLE, rdf.RDF_XML, rdf.N_TRIPLES)))"
    )
    digests = {
        subprocess.run([sys.executable, "-W", "ignore", "-c", script, str(tmp_path / "doc.json")],
                       env={"PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT / "shared")}, check=True,
                       capture_output=True, text=True).stdout
        for seed in ("1", "2", "3")
    }
    assert len(digests) == 1, digests
    assert len(digests.pop().split()) == 3
