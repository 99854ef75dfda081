"""DCAT-AP documents (``opendepot.dcat``'s JSON-LD) as RDF graphs, in the serialisation a client
asks for: the formats, the content negotiation, the conversion.

- ``FORMATS``: every serialisation served, by its file suffix, as udata serves them
  (opendatateam/udata ``udata/rdf.py``: ``ttl``, ``rdf``/``xml``, ``json``/``jsonld``, ``n3``,
  ``nt``, ``trig``). Turtle is sent as ``text/turtle`` (udata still says
  ``application/x-turtle``, which ``negotiate`` also accepts).
- ``negotiate``: the format an ``Accept`` header asks for (RFC 9110 ranges and ``q``; ties go to
  the server's order, JSON-LD first); JSON-LD without a header, or for ``*/*``; None when no
  served type is acceptable (udata falls back to JSON-LD there; opendepot answers 406).
- ``to_graph``: an ``opendepot.dcat`` document as an rdflib ``Graph``, read directly (its
  context is inline prefixes only), so no JSON-LD processor runs; ``serialise``: the text of a
  document in a format (JSON-LD: the document itself, as ``/catalog.jsonld`` sends it), the
  same bytes in every process (blank nodes numbered, triples in insertion order), the latest
  ones kept in memory.

rdflib is imported when a graph is first made.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opendepot import index

if TYPE_CHECKING:
    from rdflib import Graph
    from rdflib.term import Node


@dataclass(frozen=True)
class RdfFormat:
    """One RDF serialisation."""

    name: str
    """rdflib's name of the serialisation (``turtle``, ``xml``, ``json-ld``...)."""
    media: str
    """Media type sent in ``Content-Type``."""
    suffix: str
    """The file suffix a negotiated answer points at (``Content-Location``)."""


JSON_LD = RdfFormat("json-ld", "application/ld+json", "jsonld")
TURTLE = RdfFormat("turtle", "text/turtle", "ttl")
RDF_XML = RdfFormat("xml", "application/rdf+xml", "rdf")
N3 = RdfFormat("n3", "text/n3", "n3")
N_TRIPLES = RdfFormat("nt", "application/n-triples", "nt")
TRIG = RdfFormat("turtle", "application/trig", "trig")
"""TriG of a graph with no named graph is its Turtle (a Turtle document is TriG: triples in
the default graph); rdflib's TriG writer would put them in a named graph of its own."""

FORMATS: Mapping[str, RdfFormat] = {
    "jsonld": JSON_LD,
    "json": JSON_LD,
    "ttl": TURTLE,
    "rdf": RDF_XML,
    "xml": RDF_XML,
    "n3": N3,
    "nt": N_TRIPLES,
    "trig": TRIG,
}
"""Suffix (``rdf.{suffix}``) -> format."""
SUFFIXES = tuple(FORMATS)

ACCEPTED: Mapping[str, RdfFormat] = {
    "application/ld+json": JSON_LD,
    "application/json": JSON_LD,
    "text/turtle": TURTLE,
    "application/x-turtle": TURTLE,
    "application/rdf+xml": RDF_XML,
    "application/xml": RDF_XML,
    "text/xml": RDF_XML,
    "text/n3": N3,
    "application/n-triples": N_TRIPLES,
    "application/trig": TRIG,
}
"""Media type a client may ask for -> format, in the server's order of preference (udata's
``ACCEPTED_MIME_TYPES``, plus ``text/turtle`` first for Turtle)."""
MEDIA_TYPES = tuple(dict.fromkeys(f.media for f in FORMATS.values()))
"""Every media type answered (one per format)."""


def _ranges(accept: str) -> list[tuple[str, float]]:
    """The media ranges of an ``Accept`` header with their quality (lower case; parameters
    other than ``q`` ignored; a malformed ``q`` counts as 0)."""
    out = []
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        if not media:
            continue
        q = 1.0
        for p in params:
            key, _, value = p.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        out.append((media.lower(), q))
    return out


def _quality(media: str, ranges: list[tuple[str, float]]) -> float:
    """The quality the most specific matching range gives ``media`` (0 when none matches)."""
    kind = media.split("/", 1)[0]
    best: tuple[int, float] = (-1, 0.0)
    for r, q in ranges:
        specificity = 2 if r == media else 1 if r == f"{kind}/*" else 0 if r == "*/*" else -1
        if specificity > best[0]:
            best = (specificity, q)
    return best[1]


def negotiate(accept: str | None) -> RdfFormat | None:
    """The format an ``Accept`` header asks for: JSON-LD when there is none (or it is blank);
    else the acceptable served type of highest quality (ties: ``ACCEPTED``'s order); None when
    none is acceptable (the caller answers 406)."""
    if not accept or not accept.strip():
        return JSON_LD
    ranges = _ranges(accept)
    best, quality = None, 0.0
    for media, fmt in ACCEPTED.items():
        q = _quality(media, ranges)
        if q > quality:
            best, quality = fmt, q
    return best


def to_graph(doc: Mapping[str, Any]) -> Graph:
    """The graph of a ``{"@context", "@graph"}`` document as ``opendepot.dcat`` writes them:
    compact IRIs over the context's prefixes, ``{"@id"}`` references, ``{"@value",
    "@language"|"@type"}`` literals, nested nodes without ``@id`` as blank nodes, lists as
    repeated values. Prefixes are bound for the serialisers."""
    from rdflib import RDF, Graph

    prefixes = {k: v for k, v in (doc.get("@context") or {}).items() if isinstance(v, str)}
    # SimpleMemory keeps triples in insertion order: the same document, the same bytes and ETag
    # in every process (the default store's order changes with the string hash seed)
    g = Graph(store="SimpleMemory", bind_namespaces="none")
    g.bind("rdf", str(RDF))
    for prefix, iri in sorted(prefixes.items()):
        g.bind(prefix, iri)
    blanks = itertools.count()
    for node in doc.get("@graph") or []:
        _node(g, node, prefixes, blanks)
    return g


def _iri(value: str, prefixes: Mapping[str, str]) -> str:
    prefix, sep, local = value.partition(":")
    return prefixes[prefix] + local if sep and prefix in prefixes else value


def _node(
    g: Graph, node: Mapping[str, Any], prefixes: Mapping[str, str], blanks: Iterator[int]
) -> Node:
    """Add a node's triples; its subject (a blank node numbered in document order: the same
    document always gives the same labels, so the same bytes and ETag)."""
    from rdflib import RDF, BNode, URIRef

    subject = URIRef(_iri(node["@id"], prefixes)) if "@id" in node else BNode(f"b{next(blanks)}")
    types = node.get("@type")
    for t in [types] if isinstance(types, str) else types or []:
        g.add((subject, RDF.type, URIRef(_iri(t, prefixes))))
    for key, values in node.items():
        if key.startswith("@"):
            continue
        predicate = URIRef(_iri(key, prefixes))
        for v in values if isinstance(values, list) else [values]:
            g.add((subject, predicate, _object(g, v, prefixes, blanks)))
    return subject


def _object(g: Graph, value: Any, prefixes: Mapping[str, str], blanks: Iterator[int]) -> Node:
    from rdflib import Literal, URIRef

    if not isinstance(value, Mapping):
        return Literal(value)
    if "@value" in value:
        datatype = value.get("@type")
        return Literal(
            value["@value"],
            lang=value.get("@language"),
            datatype=URIRef(_iri(datatype, prefixes)) if datatype else None,
        )
    if set(value) == {"@id"}:
        return URIRef(_iri(value["@id"], prefixes))
    return _node(g, value, prefixes, blanks)


SERIALISED_KEPT = 32
"""Serialisations kept (``serialise``): the whole catalog in Turtle takes ~250 ms to write
(18 datasets), and the same document is asked for again until the catalog changes."""
_kept: OrderedDict[tuple[str, str], str] = OrderedDict()
_kept_lock = threading.Lock()


def serialise(doc: Mapping[str, Any], fmt: RdfFormat) -> str:
    """The text of a ``dcat`` document in ``fmt``: JSON-LD is the document as it is
    (``index.render``); every other format is rdflib's serialisation of ``to_graph``, kept
    (the ``SERIALISED_KEPT`` latest, by the JSON-LD text's ETag and the format)."""
    text = index.render(doc)
    if fmt == JSON_LD:
        return text
    key = (index.etag(text), fmt.name)
    with _kept_lock:
        if key in _kept:
            _kept.move_to_end(key)
            return _kept[key]
    out = to_graph(doc).serialize(format=fmt.name)
    with _kept_lock:
        _kept[key] = out
        while len(_kept) > SERIALISED_KEPT:
            _kept.popitem(last=False)
    return out
