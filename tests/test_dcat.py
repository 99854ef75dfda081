"""``/catalog.jsonld``: DCAT-AP JSON-LD that conforms to the DCAT-AP 3.0.0 SHACL shapes.

The shapes are the official ones, unmodified, in ``../shared/reference/dcat-ap/``. Each test
parses the served JSON-LD with rdflib (offline: the context is inline), validates it with
pyshacl, and prints pyshacl's report when it does not conform.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from rdflib import Graph, Literal, Namespace, URIRef

from conftest import HOSP, REAL, SHARED_DATA
from functions.index_api import app as index_api
from opendepot import index
from opendepot.config import Settings
from test_index_api import (
    API,
    BUCKET,
    COVID,
    FILES,
    HOST,
    NOW,
    REA,
    ROWS,
    V2,
    body,
    call,
    catalog_entry,
    event,
    put_catalog,
    rea_entry,
    rid,
    sha256,
    sparse_entry,
)

SHAPES = SHARED_DATA.parent / "reference" / "dcat-ap" / "dcat-ap-SHACL.ttl"
SPDX = Namespace("http://spdx.org/rdf/terms#")
DCAT = Namespace("http://www.w3.org/ns/dcat#")
DCTERMS = Namespace("http://purl.org/dc/terms/")
FOAF = Namespace("http://xmlns.com/foaf/0.1/")
RDF = Namespace("http://www.w3.org/1999/02/22-rdf-syntax-ns#")
XSD = Namespace("http://www.w3.org/2001/XMLSchema#")
EU = "http://publications.europa.eu/resource/authority"
MIRROR = REAL / HOSP / "opencovid19-fr-mirror"
pytestmark = pytest.mark.filterwarnings(
    "ignore:ConjunctiveGraph is deprecated:DeprecationWarning"  # inside rdflib's JSON-LD parser
)


@pytest.fixture(scope="module")
def shapes() -> Graph:
    if not SHAPES.exists():
        pytest.fail(f"missing {SHAPES}: the checkout must sit beside ../shared")
    return Graph().parse(SHAPES, format="turtle")


def graph_of(doc: dict[str, Any]) -> Graph:
    return Graph().parse(data=json.dumps(doc), format="json-ld")


def assert_conforms(doc: dict[str, Any], shapes: Graph) -> Graph:
    from pyshacl import validate

    g = graph_of(doc)
    conforms, _, report = validate(g, shacl_graph=shapes, advanced=True)
    assert conforms, report
    return g


@pytest.fixture
def store() -> Any:
    from opendepot.storage import MemoryStore

    s = MemoryStore()
    put_catalog(s, catalog_entry(), rea_entry())
    return s


@pytest.fixture(autouse=True)
def configured(store: Any) -> None:
    settings = Settings(published_bucket=BUCKET, public_base_url=FILES, api_base_url="")
    index_api.configure(store, settings, clock=lambda: NOW)


def get_catalog(**headers: str) -> dict[str, Any]:
    r = call(event("http_get_catalog_jsonld.json", headers=headers))
    assert r["statusCode"] == 200, r
    assert r["headers"]["Content-Type"] == "application/ld+json; charset=utf-8"
    doc: dict[str, Any] = body(r)
    return doc


def test_catalog_jsonld__conforms_to_dcat_ap_3_shapes(shapes: Graph) -> None:
    assert_conforms(get_catalog(), shapes)


def test_catalog_jsonld__catalog_datasets_distributions(shapes: Graph) -> None:
    g = graph_of(get_catalog())
    catalog = URIRef(f"{HOST}/catalog.jsonld")
    assert (catalog, RDF.type, DCAT.Catalog) in g
    datasets = set(g.objects(catalog, DCAT.dataset))
    covid = URIRef(f"{HOST}/api/1/datasets/{COVID}/")
    assert datasets == {covid, URIRef(f"{HOST}/api/1/datasets/{REA}/")}
    assert g.value(covid, DCTERMS["title"]) == Literal(
        "Données hospitalières relatives à l'épidémie de COVID-19", lang="fr"
    )
    assert g.value(covid, DCTERMS.identifier) == Literal(index.dataset_id(COVID))
    assert g.value(covid, DCTERMS.accrualPeriodicity) == URIRef(f"{EU}/frequency/DAILY")
    assert g.value(covid, DCTERMS.modified) == Literal(
        "2026-11-29T07:30:12Z", datatype=XSD.dateTime
    )
    assert g.value(covid, DCAT.version) == Literal(V2)
    assert set(g.objects(covid, DCAT.keyword)) == {
        Literal(t, lang="fr") for t in ("covid19", "hopital", "sante-publique-france", "si-vic")
    }
    period = g.value(covid, DCTERMS.temporal)
    assert g.value(period, DCAT.startDate) == Literal("2020-03-18", datatype=XSD.date)
    assert g.value(period, DCAT.endDate) == Literal("2021-03-16", datatype=XSD.date)
    publisher = g.value(covid, DCTERMS.publisher)
    assert g.value(publisher, FOAF.name) == Literal("Santé publique France")
    assert (publisher, RDF.type, FOAF.Agent) in g
    assert g.value(covid, DCTERMS.conformsTo) == URIRef(f"{HOST}/api/1/datasets/{COVID}/schema/")

    distributions = set(g.objects(covid, DCAT.distribution))
    assert len(distributions) == 6
    dep_csv = rid(COVID, "dep", "csv")
    d = URIRef(f"{HOST}/api/1/datasets/{COVID}/resources/{dep_csv}/")
    assert d in distributions
    assert g.value(d, DCAT.downloadURL) == URIRef(f"{FILES}/{COVID}/{V2}/{COVID}-dep.csv")
    assert g.value(d, DCAT.accessURL) == URIRef(f"{HOST}/api/1/datasets/r/{dep_csv}")
    assert g.value(d, DCAT.byteSize) == Literal(
        str(ROWS["dep"] * 21), datatype=XSD.nonNegativeInteger
    )
    assert g.value(d, DCAT.mediaType) == URIRef(
        "https://www.iana.org/assignments/media-types/text/csv"
    )
    assert g.value(d, DCTERMS["format"]) == URIRef(f"{EU}/file-type/CSV")
    assert g.value(d, DCTERMS.license) == URIRef(
        "https://www.etalab.gouv.fr/licence-ouverte-open-licence"
    )
    checksum = g.value(d, SPDX.checksum)
    assert g.value(checksum, SPDX.algorithm) == SPDX.checksumAlgorithm_sha256
    assert g.value(checksum, SPDX.checksumValue) == Literal(
        sha256(f"{COVID}/{V2}/{COVID}-dep.csv"), datatype=XSD.hexBinary
    )
    parquet = URIRef(f"{HOST}/api/1/datasets/{COVID}/resources/{rid(COVID, 'fra', 'parquet')}/")
    assert g.value(parquet, DCAT.mediaType) == URIRef(
        "https://www.iana.org/assignments/media-types/application/vnd.apache.parquet"
    )


def test_api_base_setting__catalog_iris_under_it(store: Any, shapes: Graph) -> None:
    index_api.configure(
        store, Settings(published_bucket=BUCKET, public_base_url=FILES, api_base_url=API)
    )
    g = assert_conforms(get_catalog(), shapes)
    assert (URIRef(f"{API}/catalog.jsonld"), RDF.type, DCAT.Catalog) in g


def test_empty_catalog__conforms(store: Any, shapes: Graph) -> None:
    put_catalog(store)
    g = assert_conforms(get_catalog(), shapes)
    assert not list(g.subjects(RDF.type, DCAT.Dataset))


def test_sparse_dataset__still_conforms(store: Any, shapes: Graph) -> None:
    put_catalog(store, {**sparse_entry(), "description": ""})
    g = assert_conforms(get_catalog(), shapes)
    ds = URIRef(f"{HOST}/api/1/datasets/vide/")
    assert g.value(ds, DCTERMS.description) == Literal("Vide", lang="fr")  # required: falls back
    assert g.value(ds, DCTERMS.accrualPeriodicity) == URIRef(f"{EU}/frequency/UNKNOWN")


def test_shapes__reject_a_distribution_without_access_url(shapes: Graph) -> None:
    from pyshacl import validate

    doc = copy.deepcopy(get_catalog())
    for node in doc["@graph"]:
        if node.get("@type") == "dcat:Distribution":
            del node["dcat:accessURL"]
    conforms, _, report = validate(graph_of(doc), shacl_graph=shapes)
    assert not conforms
    assert "accessURL" in report


def test_shapes__reject_an_untyped_checksum_value(shapes: Graph) -> None:
    from pyshacl import validate

    doc = copy.deepcopy(get_catalog())
    for node in doc["@graph"]:
        if "spdx:checksum" in node:
            node["spdx:checksum"]["spdx:checksumValue"] = "not hex"
    conforms, _, _ = validate(graph_of(doc), shacl_graph=shapes)
    assert not conforms


def test_catalog_of_real_publication__conforms(pipeline: Any, shapes: Graph) -> None:
    key = f"{HOSP}/spf/covid_hospit.csv"
    for folder in ("2020-03-23_3f62f18", "2020-03-24_2c1018e"):
        data = (MIRROR / folder / "covid_hospit.csv").read_bytes()
        assert pipeline.drop(key, data).status == "accepted"
        pipeline.publish()
    index_api.configure(
        pipeline.store,
        Settings(publish_queue_url="memory://publish.fifo", public_base_url=FILES),
        clock=lambda: NOW,
    )
    g = assert_conforms(get_catalog(), shapes)
    ds = URIRef(f"{HOST}/api/1/datasets/{HOSP}/")
    manifest = json.loads(pipeline.published(f"{HOSP}/manifest.json"))
    for res in manifest["resources"]:
        d = URIRef(f"{HOST}/api/1/datasets/{HOSP}/resources/{res['id']}/")
        assert (ds, DCAT.distribution, d) in g
        assert g.value(d, DCAT.downloadURL) == URIRef(f"{FILES}/{res['path']}")
        data = pipeline.published(res["path"])
        assert int(g.value(d, DCAT.byteSize)) == len(data)
        assert str(g.value(g.value(d, SPDX.checksum), SPDX.checksumValue)) == res["sha256"]
    period = g.value(ds, DCTERMS.temporal)
    assert str(g.value(period, DCAT.startDate)) == "2020-03-18"


def test_shapes_file__is_the_unmodified_3_0_0_release() -> None:
    text = Path(SHAPES).read_text("utf-8")
    assert "releases/3.0.0/shacl/dcat-ap-SHACL.ttl" in text
