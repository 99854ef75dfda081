"""The index's reads of the published bucket, kept between invocations.

``CatalogReader`` holds ``catalog.json`` and each dataset's manifest in memory, parsed with the
contracts (``contracts.Catalog.from_json``, ``contracts.Manifest.from_json``: once per ETag), and
revalidates them with one ``head`` per request that needs them (a ``get`` only when the ETag
changed). What it shapes from them (``index.Catalog``, ``index.Versions``) is kept per API base
URL (at most ``BASES_KEPT`` of them: one in production, where the base is a setting or API
Gateway's domain). Immutable files (a version's ``datapackage.json``) are read once per manifest
version.

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

from opendepot import index, layout
from opendepot.config import Settings
from opendepot.contracts import Catalog, Manifest
from opendepot.storage import NotFound as ObjectNotFound
from opendepot.storage import Store

BASES_KEPT = 4
"""Catalogs (and versions) shaped for at most this many API base URLs are kept."""

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
    """Parsed ``datapackage.json`` by key (immutable files: never revalidated)."""
    versions: dict[str, index.Versions] = field(default_factory=dict)
    """The versions shaped per API base URL."""


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
        self._manifests: dict[str, CachedManifest] = {}

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
            self._etag, self._published, self._shaped = None, None, {}
        elif info.etag != self._etag:
            try:
                body = self.store.get(bucket, layout.CATALOG_KEY)
            except ObjectNotFound:
                self._etag, self._published, self._shaped = None, None, {}
            else:
                parsed = self._parse(layout.CATALOG_KEY, info.etag, body, Catalog.from_json)
                self._etag, self._published, self._shaped = info.etag, parsed, {}
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
            cached = self._manifests[slug] = CachedManifest(info.etag, manifest)
            self.log.info("manifest loaded", extra={"dataset": slug, "etag": info.etag})
        return cached

    def versions(self, slug: str, base: str) -> index.Versions:
        """A dataset's versions shaped for ``base`` (once per manifest version).

        Raises:
            index.NotFound: no manifest.
        """
        m = self.manifest(slug)
        links = self.links(base)
        return _keep(m.versions, base, lambda: index.build_versions(slug, m.manifest, links))

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
