"""Atom 1.0 feeds (RFC 4287) of published versions, and the plain-text summary of a version.

Two feeds, rendered from the documents ``opendepot.index`` shapes (nothing read here):

- ``/api/1/datasets/recent.atom`` (udata's path): the newest ``FEED_SIZE`` versions across the
  catalog (``recent_feed``);
- ``/api/1/datasets/{id}/versions.atom``: the newest ``FEED_SIZE`` versions of one dataset
  (``versions_feed``).

One entry per version: ``id`` ``urn:uuid:{uuid5(NAMESPACE_URL, "opendepot:{dataset}:version:
{version}")}`` (stable, whatever the host serving it), ``title`` "{dataset title}: version
{version}", ``updated`` and ``published`` its publication time, ``category`` the dataset's slug,
``link rel="alternate"`` its version document, ``rel="related"`` its changes document and
changed cells (when recorded), ``rel="enclosure"`` each of its files (type and length), and a
``summary`` (``summary_text``: rows per level, rows added/removed/changed, cells changed, and the
warnings: published dates dropped, columns removed...). Pure: stdlib ``xml.etree`` only.
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opendepot.index import DATASETS_PATH, MIMES, Document, Links

ATOM_NS = "http://www.w3.org/2005/Atom"
MEDIA = "application/atom+xml; charset=utf-8"
"""Content-Type of the feeds."""
FEED_SIZE = 20
"""Entries per feed: the newest versions (20, as many feed readers show; the manifest keeps at
least ``FEED_SIZE + 1`` versions inline, so a feed reads no page)."""
RECENT_PATH = f"{DATASETS_PATH}recent.atom"
"""Path of the catalog's feed (udata's)."""
VERSIONS_FEED = "versions.atom"
"""Name of a dataset's feed, below its API document."""
NO_TIME = "1970-01-01T00:00:00Z"
"""``updated`` of a feed without entries (Atom requires one)."""
GENERATOR = "opendepot"

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@dataclass(frozen=True)
class Entry:
    """One version as a feed entry."""

    dataset: Document
    """The dataset's document (``index.dataset_document``: ``slug``, ``title``,
    ``organization``, ``uri``)."""
    version: Document
    """The version's document (``index.version_document``)."""
    headline: Mapping[str, Any] | None
    """What it changed (``headline_of``; None: a first version, or nothing recorded)."""
    previous: str | None
    """The version published before it (None: the first)."""
    changed_cells: str | None = None
    """URL of its ``changes.csv`` (None: none)."""

    @property
    def published_at(self) -> str:
        return str(self.version["published_at"] or NO_TIME)


def headline_of(stored: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The headline of a stored ``changes.json``, in ``changes.Changes.headline``'s shape:
    ``{"rows": {before, after, added, removed, changed, unchanged}, "cells_changed",
    "drops_published", "schema_additive", "warnings": [str]}``; None when the document has no
    comparison (a first version) or is absent."""
    if not stored or not isinstance(stored.get("rows"), Mapping):
        return None
    cells = stored.get("cells") or {}
    schema = stored.get("schema") or {}
    return {"rows": dict(stored["rows"]), "cells_changed": cells.get("changed"),
            "drops_published": bool(stored.get("drops_published")),
            "schema_additive": schema.get("additive"),
            "warnings": [str(w) for w in stored.get("warnings") or []]}


def summary_text(
    rows: Mapping[str, int], headline: Mapping[str, Any] | None, previous: str | None
) -> str:
    """A version in plain sentences: rows per level; then against ``previous`` the rows added,
    removed and changed and the cells changed; a warning when published dates were dropped;
    each of ``headline``'s warnings. E.g. "Rows: fra 2277. Against 2020-09-07-...: 1023 rows
    added, 0 removed, 1254 changed (3221 cells)."."""
    counts = ", ".join(f"{level} {n}" for level, n in rows.items())
    out = [f"Rows: {counts or 'none'}."]
    if headline is None:
        out.append("First version." if previous is None else
                   f"Published after {previous}; no comparison was recorded.")
        return " ".join(out)
    r = headline.get("rows") or {}
    out.append(f"Against {previous}: {r.get('added')} rows added, {r.get('removed')} removed, "
               f"{r.get('changed')} changed ({headline.get('cells_changed')} cells).")
    if headline.get("drops_published"):
        out.append("WARNING: values published before are missing from this version.")
    out += [f"Warning: {w}." for w in headline.get("warnings") or []]
    return " ".join(out)


def entry_id(slug: str, version: str) -> str:
    """``urn:uuid:`` of one version of a dataset (uuid5 in ``NAMESPACE_URL``)."""
    return "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"opendepot:{slug}:version:{version}"))


def feed_id(name: str) -> str:
    """``urn:uuid:`` of a feed (``recent``, or ``{dataset}:versions``)."""
    return "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"opendepot:feed:{name}"))


def recent_feed(entries: Sequence[Entry], links: Links) -> str:
    """The catalog's feed: ``entries`` (the newest versions, newest first) as Atom 1.0 text."""
    return _feed(feed_id("recent"), "opendepot: new versions",
                 "Every new version of every published dataset, newest first.",
                 links.api(RECENT_PATH), links.api(DATASETS_PATH), "opendepot", entries, links)


def versions_feed(dataset: Document, entries: Sequence[Entry], links: Links) -> str:
    """One dataset's feed: ``entries`` (its newest versions, newest first) as Atom 1.0 text."""
    slug = str(dataset["slug"])
    org = dataset.get("organization") or {}
    return _feed(feed_id(f"{slug}:versions"), f"{dataset['title']}: versions",
                 f"Every new version of {slug}, newest first.",
                 links.dataset(slug, VERSIONS_FEED), str(dataset["uri"]),
                 str(org.get("name") or "opendepot"), entries, links)


def _feed(
    fid: str, title: str, subtitle: str, self_url: str, alternate: str, author: str,
    entries: Sequence[Entry], links: Links,
) -> str:
    root = ET.Element("feed", {"xmlns": ATOM_NS})
    _text(root, "id", fid)
    _text(root, "title", title)
    _text(root, "subtitle", subtitle)
    _text(root, "updated", max((e.published_at for e in entries), default=NO_TIME))
    _text(ET.SubElement(root, "author"), "name", author)
    _link(root, "self", self_url, "application/atom+xml")
    _link(root, "alternate", alternate, "application/json")
    _text(root, "generator", GENERATOR)
    for e in entries:
        root.append(_entry(e, links))
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode")


def _entry(e: Entry, links: Links) -> ET.Element:
    slug, v = str(e.dataset["slug"]), e.version
    entry = ET.Element("entry")
    _text(entry, "id", entry_id(slug, str(v["version"])))
    _text(entry, "title", f"{e.dataset['title']}: version {v['version']}")
    _text(entry, "updated", e.published_at)
    _text(entry, "published", e.published_at)
    org = e.dataset.get("organization") or {}
    if org.get("name"):
        _text(ET.SubElement(entry, "author"), "name", str(org["name"]))
    ET.SubElement(entry, "category", {"term": slug, "label": _clean(str(e.dataset["title"]))})
    _link(entry, "alternate", str(v["uri"]), "application/json")
    if v.get("changes"):
        _link(entry, "related", str(v["changes"]), "application/json", "What changed")
        if e.changed_cells:
            _link(entry, "related", e.changed_cells, "text/csv", "Changed cells")
    for f in v.get("resources") or []:
        mime = f.get("mime") or MIMES.get(str(f.get("format")), "application/octet-stream")
        attrs = {"length": str(f["filesize"])} if f.get("filesize") is not None else {}
        _link(entry, "enclosure", str(f["url"]), mime, str(f.get("name") or ""), attrs)
    text = summary_text(v.get("rows") or {}, e.headline, e.previous)
    ET.SubElement(entry, "summary", {"type": "text"}).text = _clean(text)
    return entry


def _clean(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot carry (control characters)."""
    return _NOT_XML.sub("", text)


def _text(parent: ET.Element, tag: str, text: str) -> None:
    ET.SubElement(parent, tag).text = _clean(text)


def _link(
    parent: ET.Element, rel: str, href: str, mime: str, title: str = "",
    extra: Mapping[str, str] | None = None,
) -> None:
    attrs = {"rel": rel, "type": mime, "href": href, **(extra or {})}
    if title:
        attrs["title"] = _clean(title)
    ET.SubElement(parent, "link", attrs)
