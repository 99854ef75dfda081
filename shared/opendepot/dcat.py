"""The catalog as DCAT-AP 3.0 JSON-LD, for the national portal's DCAT harvester.

Pure: built from the udata documents of ``opendepot.index`` (``Catalog``), with absolute links.
One ``@graph``: the ``dcat:Catalog``, each ``dcat:Dataset``, each ``dcat:Distribution`` (one per
published file of the current version) and the nodes they point to (agents, licences, media
types, frequencies, checksums, periods), each typed with the class the DCAT-AP 3.0.0 SHACL
shapes expect. Controlled vocabularies are the EU Publications Office authority tables
(frequency, file type, language, country) and IANA media types.

Mapping (udata document -> DCAT-AP):
- dataset ``uri`` -> ``@id`` (``page`` -> ``dcat:landingPage`` when it differs);
  ``id`` -> ``dct:identifier``; ``title``/``description`` -> ``dct:title``/
  ``dct:description`` (``@fr``); ``tags`` -> ``dcat:keyword``; ``organization`` ->
  ``dct:publisher`` (``foaf:Organization``, ``urn:uuid:{organization id}``);
  ``created_at``/``last_update`` -> ``dct:issued``/``dct:modified``; ``frequency`` ->
  ``dct:accrualPeriodicity``; ``temporal_coverage`` -> ``dct:temporal``; ``spatial`` ->
  ``dct:spatial`` (France); ``extras.version`` -> ``dcat:version``; ``schema.url`` ->
  ``dct:conformsTo``; ``organization`` -> ``dcat:contactPoint`` (``vcard:Kind``,
  ``vcard:Organization``: ``vcard:fn`` its name, ``vcard:hasURL`` its ``url`` when the document
  gives one, else its ``page``; ``vcard:hasEmail`` ``mailto:`` its ``email`` when given: the
  registry declares neither today); ``tags`` -> ``dcat:theme`` (EU data-theme authority
  concepts, by ``TAG_THEMES``; the registry has no theme field, and a tag such as ``hopital`` or
  ``entreprises`` says it).
- resource -> ``dcat:Distribution`` ``@id`` = the resource's API document; ``url`` (immutable
  file of this version) -> ``dcat:downloadURL``; ``latest`` (permanent link) ->
  ``dcat:accessURL``; ``filesize`` -> ``dcat:byteSize``; ``mime`` -> ``dcat:mediaType``;
  ``format`` -> ``dct:format``; ``checksum`` -> ``spdx:checksum`` (sha256, ``xsd:hexBinary``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from opendepot.index import LICENSES, Catalog, Document

CONTEXT: Mapping[str, str] = {
    "adms": "http://www.w3.org/ns/adms#",
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "skos": "http://www.w3.org/2004/02/skos/core#",
    "spdx": "http://spdx.org/rdf/terms#",
    "vcard": "http://www.w3.org/2006/vcard/ns#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}
"""JSON-LD prefixes (inline: the document needs no remote context)."""

EU = "http://publications.europa.eu/resource/authority"
FREQUENCIES: Mapping[str, str] = {
    "hourly": "HOURLY",
    "semidaily": "DAILY_2",
    "daily": "DAILY",
    "threeTimesAWeek": "WEEKLY_3",
    "semiweekly": "WEEKLY_2",
    "weekly": "WEEKLY",
    "biweekly": "BIWEEKLY",
    "threeTimesAMonth": "MONTHLY_3",
    "semimonthly": "MONTHLY_2",
    "monthly": "MONTHLY",
    "bimonthly": "BIMONTHLY",
    "quarterly": "QUARTERLY",
    "threeTimesAYear": "ANNUAL_3",
    "semiannual": "ANNUAL_2",
    "annual": "ANNUAL",
    "biennial": "BIENNIAL",
    "triennial": "TRIENNIAL",
    "quinquennial": "QUINQUENNIAL",
    "continuous": "UPDATE_CONT",
    "irregular": "IRREG",
    "punctual": "NEVER",
}
"""udata frequency -> EU frequency authority code (others: ``UNKNOWN``)."""
FILE_TYPES: Mapping[str, str] = {"csv": "CSV", "parquet": "PARQUET", "json": "JSON"}
"""Format -> EU file-type authority code."""
IANA = "https://www.iana.org/assignments/media-types/"
SHA256 = "spdx:checksumAlgorithm_sha256"
FRANCE = f"{EU}/country/FRA"
FRENCH = f"{EU}/language/FRA"
DATA_THEMES = f"{EU}/data-theme"
"""The EU data-theme authority table (a ``skos:ConceptScheme``: the catalog's theme taxonomy)."""
THEME_LABELS: Mapping[str, tuple[str, str]] = {
    "HEAL": ("Santé", "Health"),
    "ECON": ("Économie et finances", "Economy and finance"),
}
"""Data-theme code -> (French, English) label, for the themes ``TAG_THEMES`` gives."""
TAG_THEMES: Mapping[str, str] = {
    "hopital": "HEAL",
    "reanimation": "HEAL",
    "depistage": "HEAL",
    "tests": "HEAL",
    "ehpad": "HEAL",
    "masques": "HEAL",
    "deconfinement": "HEAL",
    "ministere-sante": "HEAL",
    "entreprises": "ECON",
    "aides": "ECON",
    "fonds-de-solidarite": "ECON",
}
"""udata tag -> EU data-theme code. ``covid19`` is left out on purpose: business aid paid during
the epidemic is an economy dataset, not a health one."""


def themes(tags: Iterable[str]) -> list[str]:
    """The EU data-theme codes (``HEAL``, ``ECON``) of a dataset's tags, sorted (``TAG_THEMES``;
    [] when no tag maps)."""
    return sorted({TAG_THEMES[t] for t in tags if t in TAG_THEMES})


@dataclass(frozen=True)
class CatalogInfo:
    """What the DCAT catalog says of itself."""

    base_url: str
    """Absolute base URL of the API (no trailing slash): the catalog's ``@id`` and homepage."""
    title: str = "opendepot : données publiées"
    description: str = (
        "Jeux de données publiés par opendepot : fichiers CSV et Parquet validés, versionnés et "
        "immuables, avec leurs schémas (Table Schema) et Data Packages."
    )
    publisher: str = "opendepot"
    """Name of the agent publishing the catalog."""
    license: str = "lov2"
    """udata license id of the catalog's metadata."""


def _types(node: Document) -> list[str]:
    t = node.get("@type")
    return [] if t is None else [t] if isinstance(t, str) else list(t)


def _text(value: str, lang: str = "fr") -> dict[str, str]:
    return {"@value": value, "@language": lang}


def _typed(value: Any, datatype: str) -> dict[str, str]:
    return {"@value": str(value), "@type": datatype}


def _ref(iri: str) -> dict[str, str]:
    return {"@id": iri}


def _when(value: str | None) -> dict[str, str] | None:
    """A timestamp as ``xsd:dateTime`` (a bare date as ``xsd:date``)."""
    if not value:
        return None
    return _typed(value, "xsd:date" if len(value) == 10 else "xsd:dateTime")


class _Graph:
    """Nodes by ``@id``, so that shared nodes (agents, vocabularies) appear once."""

    def __init__(self) -> None:
        self.nodes: dict[str, Document] = {}

    def add(self, node: Document) -> dict[str, str]:
        """Add (or merge into) a node; return a reference to it."""
        node = {k: v for k, v in node.items() if v is not None and v != []}
        current = self.nodes.setdefault(node["@id"], {"@id": node["@id"]})
        types = [*_types(current), *(t for t in _types(node) if t not in _types(current))]
        current.update(node)
        if types:
            current["@type"] = types[0] if len(types) == 1 else types
        return _ref(node["@id"])

    def resource(self, iri: str, rdf_type: str = "rdfs:Resource") -> dict[str, str]:
        return self.add({"@id": iri, "@type": rdf_type})

    def agent(self, iri: str, name: str) -> dict[str, str]:
        return self.add(
            {"@id": iri, "@type": ["foaf:Agent", "foaf:Organization"], "foaf:name": name}
        )

    def theme(self, code: str) -> dict[str, str]:
        """The data-theme concept (``skos:Concept`` in the ``DATA_THEMES`` scheme)."""
        fr, en = THEME_LABELS[code]
        scheme = self.add({"@id": DATA_THEMES, "@type": "skos:ConceptScheme",
                           "dct:title": _text("Data theme", "en")})
        return self.add({"@id": f"{DATA_THEMES}/{code}", "@type": "skos:Concept",
                         "skos:prefLabel": [_text(fr), _text(en, "en")], "skos:inScheme": scheme})

    def contact(self, org: Mapping[str, Any]) -> dict[str, str] | None:
        """The contact point of an organization (udata reference or document): ``vcard:fn``
        its name, ``vcard:hasURL`` its ``url`` or else its ``page``, ``vcard:hasEmail`` its
        ``email`` when given; None without a name or any address."""
        url, email = org.get("url") or org.get("page"), org.get("email")
        if not org.get("name") or not (url or email):
            return None
        return self.add({
            "@id": f"{url or 'mailto:' + str(email)}#contact",
            "@type": ["vcard:Kind", "vcard:Organization"],
            "vcard:fn": str(org["name"]),
            "vcard:hasURL": _ref(str(url)) if url else None,
            "vcard:hasEmail": _ref(f"mailto:{email}") if email else None,
        })  # fmt: skip

    def license(self, license_id: str | None) -> dict[str, str] | None:
        known = LICENSES.get(license_id or "")
        if known is None:
            return None
        title, url = known
        return self.add({"@id": url, "@type": "dct:LicenseDocument", "dct:title": _text(title)})


def _distribution(g: _Graph, d: Document, r: Document, base: str) -> dict[str, str]:
    fmt = str(r.get("format") or "").lower()
    checksum = r.get("checksum") or {}
    node: Document = {
        "@id": f"{base}/api/1/datasets/{d['slug']}/resources/{r['id']}/",
        "@type": "dcat:Distribution",
        "dct:identifier": r["id"],
        "dct:title": _text(r["title"]),
        "dct:description": _text(r["description"]) if r.get("description") else None,
        "dcat:accessURL": g.resource(r["latest"]),
        "dcat:downloadURL": g.resource(r["url"]),
        "dcat:byteSize": (
            _typed(r["filesize"], "xsd:nonNegativeInteger")
            if r.get("filesize") is not None
            else None
        ),
        "dcat:mediaType": g.resource(IANA + r["mime"], "dct:MediaType") if r.get("mime") else None,
        "dct:format": (
            g.resource(f"{EU}/file-type/{FILE_TYPES[fmt]}", "dct:MediaTypeOrExtent")
            if fmt in FILE_TYPES
            else None
        ),
        "dct:license": g.license(d.get("license")),
        "dct:issued": _when(r.get("created_at")),
        "dct:modified": _when(r.get("last_modified")),
        "dct:conformsTo": (
            g.resource((r.get("schema") or {})["url"], "dct:Standard")
            if (r.get("schema") or {}).get("url")
            else None
        ),
    }
    if checksum.get("type") == "sha256" and checksum.get("value"):
        node["spdx:checksum"] = {
            "@type": "spdx:Checksum",
            "spdx:algorithm": g.resource(SHA256, "spdx:ChecksumAlgorithm"),
            "spdx:checksumValue": _typed(checksum["value"], "xsd:hexBinary"),
        }
    return g.add(node)


def _dataset(g: _Graph, d: Document, base: str) -> dict[str, str]:
    org = d.get("organization") or {}
    coverage = d.get("temporal_coverage") or {}
    frequency = FREQUENCIES.get(str(d.get("frequency")), "UNKNOWN")
    node: Document = {
        "@id": d["uri"],
        "@type": "dcat:Dataset",
        "dct:identifier": d["id"],
        "dct:title": _text(d["title"]),
        "dct:description": _text(d.get("description") or d["title"]),
        "dcat:keyword": [_text(t) for t in d.get("tags") or []],
        "dct:publisher": g.agent(f"urn:uuid:{org['id']}", org["name"]) if org else None,
        "dcat:contactPoint": g.contact(org) if org else None,
        "dcat:theme": [g.theme(code) for code in themes(d.get("tags") or [])],
        "dct:issued": _when(d.get("created_at")),
        "dct:modified": _when(d.get("last_update")),
        "dct:accrualPeriodicity": g.resource(f"{EU}/frequency/{frequency}", "dct:Frequency"),
        "dct:temporal": (
            {
                "@type": "dct:PeriodOfTime",
                "dcat:startDate": _when(coverage.get("start")),
                "dcat:endDate": _when(coverage.get("end")),
            }
            if coverage.get("start") or coverage.get("end")
            else None
        ),
        "dct:spatial": g.resource(FRANCE, "dct:Location") if d.get("spatial") else None,
        "dct:language": g.resource(FRENCH, "dct:LinguisticSystem"),
        # a landing page is for people: the API document (the dataset's own IRI) is not one
        "dcat:landingPage": (
            g.resource(d["page"], "foaf:Document") if d.get("page") != d["uri"] else None
        ),
        "dcat:version": (d.get("extras") or {}).get("version"),
        "dct:conformsTo": (
            g.resource(d["schema"]["url"], "dct:Standard")
            if (d.get("schema") or {}).get("url")
            else None
        ),
        "dcat:distribution": [_distribution(g, d, r, base) for r in d.get("resources") or []],
    }
    if node["dct:temporal"]:
        node["dct:temporal"] = {k: v for k, v in node["dct:temporal"].items() if v is not None}
    return g.add(node)


def catalog_jsonld(catalog: Catalog, info: CatalogInfo) -> Document:
    """The DCAT-AP JSON-LD document of the whole catalog (``{"@context", "@graph"}``).

    The dataset documents must carry absolute links (``index.Links`` with an API base URL).
    """
    base = info.base_url.rstrip("/")
    g = _Graph()
    datasets = [_dataset(g, d, base) for d in catalog.datasets]
    issued = min((d["created_at"] for d in catalog.datasets if d.get("created_at")), default=None)
    g.add(
        {
            "@id": f"{base}/catalog.jsonld",
            "@type": "dcat:Catalog",
            "dct:title": _text(info.title),
            "dct:description": _text(info.description),
            "dct:publisher": g.agent(f"{base}/#publisher", info.publisher),
            "foaf:homepage": g.resource(f"{base}/api/1/datasets/", "foaf:Document"),
            "dct:language": g.resource(FRENCH, "dct:LinguisticSystem"),
            "dct:license": g.license(info.license),
            "dct:issued": _when(issued),
            "dct:modified": _when(catalog.generated_at),
            "dcat:themeTaxonomy": _ref(DATA_THEMES) if DATA_THEMES in g.nodes else None,
            "dcat:dataset": datasets,
        }
    )
    return {"@context": dict(CONTEXT), "@graph": _ordered(g.nodes.values())}


def dataset_jsonld(dataset: Document, base_url: str) -> Document:
    """The DCAT-AP JSON-LD document of one dataset (``{"@context", "@graph"}``): the
    ``dcat:Dataset``, its distributions and the nodes they point to, as in ``catalog_jsonld``
    but without the catalog (udata's per-dataset RDF has none either).

    ``dataset``: a udata dataset document with absolute links; ``base_url``: the API's.
    """
    g = _Graph()
    _dataset(g, dataset, base_url.rstrip("/"))
    return {"@context": dict(CONTEXT), "@graph": _ordered(g.nodes.values())}


def _ordered(nodes: Iterable[Document]) -> list[Document]:
    """Catalog first, then datasets, distributions, and the other nodes, each group by ``@id``."""
    rank = {"dcat:Catalog": 0, "dcat:Dataset": 1, "dcat:Distribution": 2}

    def key(n: Document) -> tuple[int, str]:
        t = n.get("@type")
        first = t[0] if isinstance(t, list) else t
        return rank.get(str(first), 3), str(n["@id"])

    return sorted(nodes, key=key)
