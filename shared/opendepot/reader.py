"""The index's reads of the published bucket, kept between invocations.

``CatalogReader`` holds ``catalog.json`` and each dataset's manifest in memory, parsed with the
contracts (``contracts.Catalog.from_json``, ``contracts.Manifest.from_json``: once per ETag), and
revalidates them with one ``head`` per request that needs them (a ``get`` only when the ETag
changed). What it shapes from them (``index.Catalog``, ``index.Versions``) is kept per API base
URL (at most ``BASES_KEPT`` of them: one in production, where the base is a setting or API
Gateway's domain). Immutable files (a version's ``datapackage.json``, ``changes.json``) are
read once per process: they stay with a dataset's manifest when it is read again. So are the
pages of versions moved out of a manifest (``opendepot.version_pages``): kept for good, read
only by what needs the whole history (the versions list, an older version, time travel before
the inline versions); the feeds need only the newest versions, which are inline.

Atom feeds (``opendepot.atom``) are rendered once: a dataset's per manifest version and base
URL; the catalog's (``recent.atom``, the newest versions of every dataset) per version of
``catalog.json`` and base URL (each new version rewrites the catalog). A version's change
headline (``atom.headline_of`` of its ``changes.json``) is kept by key (at most
``HEADLINES_KEPT``).

A stored document that does not parse (not JSON, or ``contracts.ContractError``) is logged with
its key and ETag and raised as ``index.UnreadableDocument`` (a 500): it is not kept, so the next
request reads the object again and a repaired document is served at once.

No HTTP framework here: ``opendepot.index_http.Site`` builds one reader from the runtime
(``opendepot.runtime``: settings, store, clock) and asks it per request.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from opendepot import atom, index, layout, version_pages
from opendepot.config import Settings
from opendepot.contracts import Catalog, Manifest, Version, VersionPage, VersionsPage
from opendepot.storage import NotFound as ObjectNotFound
from opendepot.storage import Store

BASES_KEPT = 4
"""Catalogs (and versions) shaped for at most this many API base URLs are kept."""
HEADLINES_KEPT = 2000
"""Change headlines kept (one per version read by a feed; the oldest read goes first)."""

Clock = Callable[[], datetime]
"""Returns the current time (aware, UTC)."""

T = TypeVar("T")
Parse = Callable[[Any], T]


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


@dataclass
class CachedManifest:
    """A dataset's manifest as last read, and what was derived from it."""

    etag: str
    """ETag of the manifest object read."""
    manifest: Manifest
    """The parsed ``{dataset}/manifest.json`` (see docs/design.md, "Manifest")."""
    packages: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Parsed ``datapackage.json`` and ``changes.json`` by key (immutable files: never
    revalidated)."""
    versions: dict[str, index.Versions] = field(default_factory=dict)
    """Every version shaped per API base URL."""
    recent: dict[str, index.Versions] = field(default_factory=dict)
    """The inline versions (the newest) shaped per API base URL, for the feeds."""
    complete: Manifest | None = None
    """``manifest`` with every version inline (``version_pages.complete``), once needed."""
    feeds: dict[str, str] = field(default_factory=dict)
    """The dataset's Atom feed per API base URL."""


def _keep(cache: dict[str, T], base: str, make: Callable[[], T]) -> T:
    """``cache[base]``, made on first use; the oldest entry goes past ``BASES_KEPT``."""
    found = cache.get(base)
    if found is None:
        if len(cache) >= BASES_KEPT:
            cache.pop(next(iter(cache)))
        found = cache[base] = make()
    return found


class CatalogReader:
    """``catalog.json`` and the manifests of the published bucket, cached and revalidated.

    Not thread-safe: one reader per process (a Lambda runs one request at a time); the local
    HTTP server's threads share one, at worst reading an object twice.
    """

    def __init__(
        self, settings: Settings, store: Store, clock: Clock = utcnow, log: Any = None
    ) -> None:
        self.settings = settings
        """Where to read (``published_bucket``) and what to link to (``published_url``)."""
        self.store = store
        """The storage port the objects are read through."""
        self.clock = clock
        """The time quality and exports are computed at."""
        self.log = log or logging.getLogger(__name__)
        """Where loads are logged (``info`` with ``extra``: a Powertools ``Logger`` or stdlib)."""
        self._etag: str | None = None
        self._published: Catalog | None = None
        self._shaped: dict[str, index.Catalog] = {}
        self._recent: dict[str, str] = {}
        self._manifests: dict[str, CachedManifest] = {}
        self._headlines: dict[str, dict[str, Any] | None] = {}
        self._pages: dict[str, VersionsPage] = {}

    def links(self, base: str) -> index.Links:
        """Links to the published files and to this API at ``base`` ("" = relative)."""
        return index.Links(self.settings.published_url, base)

    def catalog(self, base: str) -> index.Catalog:
        """The current catalog shaped for ``base``: one ``head``; a ``get`` only when its ETag
        changed; shaped once per catalog version and base URL (empty when none is published).

        Raises:
            index.UnreadableDocument: ``catalog.json`` is not JSON or not a ``Catalog``.
        """
        bucket = self.settings.published_bucket
        info = self.store.head(bucket, layout.CATALOG_KEY)
        if info is None:
            self._etag, self._published, self._shaped, self._recent = None, None, {}, {}
        elif info.etag != self._etag:
            try:
                body = self.store.get(bucket, layout.CATALOG_KEY)
            except ObjectNotFound:
                self._etag, self._published, self._shaped, self._recent = None, None, {}, {}
            else:
                parsed = self._parse(layout.CATALOG_KEY, info.etag, body, Catalog.from_json)
                self._etag, self._published, self._shaped = info.etag, parsed, {}
                self._recent = {}
                count = len(parsed.datasets)
                self.log.info("catalog loaded", extra={"etag": info.etag, "datasets": count})
        published, links = self._published, self.links(base)
        return _keep(self._shaped, base, lambda: index.build_catalog(published, links))

    def manifest(self, slug: str) -> CachedManifest:
        """A dataset's manifest: one ``head``; a ``get`` only when its ETag changed.

        Raises:
            index.NotFound: the dataset has no manifest (never published, or deleted).
            index.UnreadableDocument: the manifest is not JSON or not a ``Manifest``.
        """
        key = layout.manifest_key(slug)
        info = self.store.head(self.settings.published_bucket, key)
        if info is None:
            self._manifests.pop(slug, None)
            raise index.NotFound(f"dataset {slug!r} has no published version")
        cached = self._manifests.get(slug)
        if cached is None or cached.etag != info.etag:
            body = self.store.get(self.settings.published_bucket, key)
            manifest = self._parse(key, info.etag, body, Manifest.from_json)
            kept = cached.packages if cached is not None else {}  # immutable: still true
            cached = self._manifests[slug] = CachedManifest(info.etag, manifest, kept)
            self.log.info("manifest loaded", extra={"dataset": slug, "etag": info.etag})
        return cached

    def versions(self, slug: str, base: str) -> index.Versions:
        """Every version of a dataset (inline and paged out) shaped for ``base`` (once per
        manifest version).

        Raises:
            index.NotFound: no manifest.
            index.UnreadableDocument: the manifest or one of its pages does not parse.
        """
        m = self.manifest(slug)
        links = self.links(base)
        return _keep(m.versions, base,
                     lambda: index.build_versions(slug, self.complete(m), links))

    def recent_versions(self, slug: str, base: str) -> index.Versions:
        """A dataset's newest versions shaped for ``base``, at least ``atom.FEED_SIZE + 1`` of
        them when it has that many (a feed's entries and the version before the last): the
        inline ones, no page read (``contracts.VERSION_PAGE_SIZE`` is at least ``FEED_SIZE``);
        every version when fewer are inline. ``docs[i]`` is ``versions(slug, base).docs[i]``.

        Raises:
            index.NotFound: no manifest.
            index.UnreadableDocument: the manifest (or a page, when read) does not parse.
        """
        m = self.manifest(slug)
        if m.manifest.version_pages and len(m.manifest.versions) <= atom.FEED_SIZE:
            return self.versions(slug, base)
        links = self.links(base)
        return _keep(m.recent, base, lambda: index.build_versions(slug, m.manifest, links))

    def complete(self, m: CachedManifest) -> Manifest:
        """``m``'s manifest with every version inline (``version_pages.complete``), made once
        per manifest version; each page is read once per process (pages never change).

        Raises:
            index.UnreadableDocument: a page is missing, not JSON or not a ``VersionsPage``.
        """
        if m.complete is None:
            m.complete = version_pages.complete(m.manifest, lambda p: self._page(m, p))
        return m.complete

    def version_entry(
        self, m: CachedManifest, version: str
    ) -> tuple[Version, Version | None]:
        """``index.version_entry`` among every version of ``m``: no page read when ``version``
        and the one before it are inline (``version_pages.inline_has``).

        Raises:
            index.NotFound: no such version.
            index.UnreadableDocument: a page (when read) does not parse.
        """
        inline = version_pages.inline_has(m.manifest, version)
        return index.version_entry(m.manifest if inline else self.complete(m), version)

    def in_force_at(self, m: CachedManifest, at: datetime) -> Manifest:
        """What ``paging.version_at(_, at)`` needs: ``m``'s manifest when the version in force
        at ``at`` is inline (``version_pages.inline_at``), else ``complete``.

        Raises:
            index.UnreadableDocument: a page (when read) does not parse.
        """
        return m.manifest if version_pages.inline_at(m.manifest, at) else self.complete(m)

    def datapackage(self, slug: str) -> tuple[dict[str, Any], Manifest]:
        """The current version's ``datapackage.json`` (parsed) and the manifest.

        Raises:
            index.NotFound: no manifest, or no ``datapackage.json`` for its version.
            index.UnreadableDocument: the manifest does not parse.
        """
        m = self.manifest(slug)
        key = m.manifest.datapackage_path
        if not key:
            raise index.NotFound(f"dataset {slug!r} has no datapackage.json")
        if key not in m.packages:
            try:
                raw = self.store.get(self.settings.published_bucket, key)
            except ObjectNotFound:
                raise index.NotFound(f"dataset {slug!r} has no datapackage.json") from None
            m.packages[key] = json.loads(raw)
        return m.packages[key], m.manifest

    def version_json(self, m: CachedManifest, key: str) -> dict[str, Any] | None:
        """An immutable JSON file of one of the versions of ``m`` (a ``changes.json``), parsed,
        read once per manifest version (kept beside the data packages); None when not stored.

        Raises:
            index.UnreadableDocument: the file is not a JSON object.
        """
        if key not in m.packages:
            try:
                raw = self.store.get(self.settings.published_bucket, key)
            except ObjectNotFound:
                return None
            m.packages[key] = self._parse(key, m.etag, raw, _json_object)
        return m.packages[key]

    def versions_feed(self, dataset: index.Document, base: str) -> str:
        """The Atom feed of a dataset's newest ``atom.FEED_SIZE`` versions, for ``base``
        (rendered once per manifest version). ``dataset``: its catalog document.

        Raises:
            index.NotFound: no manifest.
            index.UnreadableDocument: the manifest does not parse.
        """
        slug = str(dataset["slug"])
        m, links = self.manifest(slug), self.links(base)
        versions = self.recent_versions(slug, base)
        count = min(len(versions.docs), atom.FEED_SIZE)
        return _keep(m.feeds, base, lambda: atom.versions_feed(
            dataset, [self._entry(dataset, m, versions, i, links) for i in range(count)], links))

    def recent_feed(self, base: str) -> str:
        """The Atom feed of the newest ``atom.FEED_SIZE`` versions across the catalog, for
        ``base`` (rendered once per version of ``catalog.json``). Datasets are read newest
        first, and only while one may still have a version among the newest; a dataset whose
        manifest is missing or does not parse is left out (logged by ``manifest``), and the
        feed is then not kept (a repaired manifest shows at the next request).

        Raises:
            index.UnreadableDocument: ``catalog.json`` does not parse.
        """
        catalog, links = self.catalog(base), self.links(base)
        found = self._recent.get(base)
        if found is not None:
            return found
        picked: list[tuple[str, str, index.Document, CachedManifest, index.Versions, int]] = []
        size, complete = atom.FEED_SIZE, True
        for d in sorted(catalog.datasets, key=lambda d: str(d["last_modified"] or ""),
                        reverse=True):
            if len(picked) >= size and str(d["last_modified"] or "") < picked[-1][0]:
                break  # every version of this dataset and the next is older
            try:
                m, versions = self.manifest(d["slug"]), self.recent_versions(d["slug"], base)
            except (index.NotFound, index.UnreadableDocument):
                complete = False
                continue
            picked += [(str(doc["published_at"] or ""), str(doc["version"]), d, m, versions, i)
                       for i, doc in enumerate(versions.docs[:size])]
            picked.sort(key=lambda p: (p[0], p[1], p[2]["slug"]), reverse=True)
            del picked[size:]
        entries = [self._entry(d, m, v, i, links) for _, _, d, m, v, i in picked]
        if not complete:
            return atom.recent_feed(entries, links)
        return _keep(self._recent, base, lambda: atom.recent_feed(entries, links))

    def _entry(
        self, dataset: index.Document, m: CachedManifest, versions: index.Versions, i: int,
        links: index.Links,
    ) -> atom.Entry:
        """``versions.docs[i]`` as a feed entry, with its change headline."""
        doc = versions.docs[i]
        previous = versions.docs[i + 1]["version"] if i + 1 < len(versions.docs) else None
        versions_of = (m.manifest if i < len(m.manifest.versions) else self.complete(m)).versions
        entry = next((e for e in versions_of if e.version == doc["version"]), None)
        changes = entry.changes if entry is not None else None
        csv = changes.csv_path if changes is not None else None
        headline = self._headline(m, changes.path) if changes is not None else None
        return atom.Entry(dataset, doc, headline, previous, links.file(csv) if csv else None)

    def _headline(self, m: CachedManifest, key: str) -> dict[str, Any] | None:
        """``atom.headline_of`` the ``changes.json`` at ``key`` (None: absent, or unreadable,
        which is logged), kept by key."""
        if key not in self._headlines:
            try:
                stored = self.version_json(m, key) if key in m.packages else self._read_json(m, key)
            except index.UnreadableDocument:
                stored = None
            if len(self._headlines) >= HEADLINES_KEPT:
                self._headlines.pop(next(iter(self._headlines)))
            self._headlines[key] = atom.headline_of(stored)
        return self._headlines[key]

    def _page(self, m: CachedManifest, page: VersionPage) -> VersionsPage:
        """A page of ``m``'s versions, read and parsed once per process.

        Raises:
            index.UnreadableDocument: missing, not JSON or not a ``VersionsPage``."""
        found = self._pages.get(page.path)
        if found is None:
            try:
                raw = self.store.get(self.settings.published_bucket, page.path)
            except ObjectNotFound:
                self.log.error("version page missing", extra={"key": page.path})
                raise index.UnreadableDocument(page.path) from None
            found = self._parse(page.path, m.etag, raw, VersionsPage.from_json)
            self._pages[page.path] = found
            self.log.info("version page loaded", extra={"key": page.path, "count": page.count})
        return found

    def _read_json(self, m: CachedManifest, key: str) -> dict[str, Any] | None:
        """An immutable JSON object of ``m``'s versions, read and parsed but not kept."""
        try:
            raw = self.store.get(self.settings.published_bucket, key)
        except ObjectNotFound:
            return None
        return self._parse(key, m.etag, raw, _json_object)

    def _parse(self, key: str, etag: str, body: bytes, parse: Parse[T]) -> T:
        """``parse(json.loads(body))``; a failure is logged (an operator's problem: the
        publish stage wrote, or someone put, a document that is not its contract) and raised
        as ``index.UnreadableDocument``."""
        try:
            return parse(json.loads(body))
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, ContractError
            self.log.exception(
                "published document unreadable",
                extra={"key": key, "etag": etag, "error": str(exc)},
            )
            raise index.UnreadableDocument(key) from exc


def _json_object(d: Any) -> dict[str, Any]:
    """``d`` when it is a JSON object. Raises: ValueError."""
    if not isinstance(d, dict):
        raise ValueError(f"expected a JSON object, got {type(d).__name__}")
    return d
