"""``catalog.json``: one entry per published dataset, in registry order, switched with ``If-Match``.

A publication changes only its own dataset's entry (``update_catalog``): it reads the catalog and
its ETag (one ``head``, one ``get``), puts the entry built from the manifest it just switched to
(already in memory: no other manifest is read, so the cost does not grow with the number of
datasets or with their histories), refreshes every entry's registry metadata (title,
description, tags... from the registry in memory), and writes the catalog back with ``If-Match``
on the ETag it read. A concurrent writer makes that write fail (``PreconditionFailed``): the
catalog is read again and the entry put again, up to ``ATTEMPTS`` times with a short jittered
sleep; then ``PreconditionFailed`` propagates and the queue retries the publication. Two
datasets publishing at once therefore both end up in the catalog.

``rebuild_catalog`` rebuilds it from every dataset's manifest (a dataset without a manifest has
no entry): used when ``catalog.json`` is missing or unreadable, and by repair paths; it writes
with ``If-Match`` (``If-None-Match`` when there is none) and retries from fresh state in the
same way. Either writes only when the catalog's ``datasets`` change (``generated_at`` aside).

An entry is never moved back: a publication holding a manifest older than the entry already in
the catalog (a slow repair run) leaves that entry as it is.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from opendepot import concurrency, layout
from opendepot.config import Settings
from opendepot.contracts import Catalog, CatalogEntry, Manifest
from opendepot.layout import CATALOG_KEY
from opendepot.registry import Dataset, Registry
from opendepot.storage import PreconditionFailed, Store

__all__ = ["ATTEMPTS", "CATALOG_KEY", "RETRY_SLEEP", "catalog_entry", "read_catalog",
           "rebuild_catalog", "update_catalog"]
ATTEMPTS = 10
"""Conditional writes of ``catalog.json`` tried by one call before ``PreconditionFailed``
propagates (the queue then retries the publication)."""
RETRY_SLEEP = (0.005, 0.05)
"""Bounds, in seconds, of the random sleep before attempt n+1, multiplied by n (1..9): at most
about 2.3 s in all when every attempt loses."""
JSON_MIME = "application/json"
REVALIDATE = "public, max-age=60, must-revalidate"
MANIFEST_THREADS = 4
"""Manifests read at once by ``rebuild_catalog``."""
log = logging.getLogger(__name__)


def _registry_fields(dataset: Dataset) -> dict[str, Any]:
    """The fields of an entry that come from the registry."""
    return {"name": dataset.name, "title": dataset.title, "description": dataset.description,
            "organization": dataset.organization, "license": dataset.license,
            "frequency": dataset.frequency, "tags": tuple(dataset.tags),
            "levels": tuple(dataset.levels), "manifest_path": layout.manifest_key(dataset.name)}


def catalog_entry(dataset: Dataset, manifest: Manifest) -> CatalogEntry:
    """One dataset in ``catalog.json``: registry metadata plus the manifest's current version."""
    return CatalogEntry(
        **_registry_fields(dataset),
        version=manifest.version,
        published_at=manifest.published_at,
        created_at=manifest.created_at,
        rows=manifest.rows,
        rows_left_out=manifest.rows_left_out,
        temporal_coverage=manifest.temporal_coverage,
        resources=manifest.resources,
        schemas=manifest.schemas,
    )


def read_catalog(store: Store, settings: Settings) -> tuple[Catalog | None, str | None, bool]:
    """``(catalog, etag, readable)``: the stored catalog and the ETag read before it (so a
    write conditioned on it fails if the catalog changed after the ``head``); ``(None, None,
    True)`` when there is none, ``(None, etag, False)`` when it is not JSON or does not fit
    ``contracts.Catalog`` (logged).

    Raises: StorageError (storage failures)."""
    head = store.head(settings.published_bucket, CATALOG_KEY)
    if head is None:
        return None, None, True
    try:
        body = json.loads(store.get(settings.published_bucket, CATALOG_KEY))
        return Catalog.from_json(body), head.etag, True
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, ContractError
        log.warning("catalog unreadable: rebuilt from every manifest",
                    extra={"error": f"{type(exc).__name__}: {exc}"})
        return None, head.etag, False


def _datasets_json(entries: Sequence[CatalogEntry]) -> str:
    return json.dumps([e.to_json() for e in entries], ensure_ascii=False, sort_keys=True,
                      default=str)


def _write(
    store: Store, settings: Settings, entries: Sequence[CatalogEntry], now: datetime,
    current: Catalog | None, etag: str | None,
) -> bool:
    """Put the catalog of ``entries`` with ``If-Match`` ``etag`` (``If-None-Match`` without
    one) unless its datasets equal ``current``'s; True when written.

    Raises: PreconditionFailed (the catalog changed since ``etag`` was read)."""
    if current is not None and _datasets_json(current.datasets) == _datasets_json(entries):
        return False
    extra = current.extra if current is not None else {}
    body = Catalog(now.strftime("%Y-%m-%dT%H:%M:%SZ"), tuple(entries), extra).to_json()
    store.put(settings.published_bucket, CATALOG_KEY,
              json.dumps(body, ensure_ascii=False, separators=(",", ":"),
                         default=str).encode("utf-8"),  # compact: the C encoder
              JSON_MIME, if_match=etag, if_none_match=etag is None, cache_control=REVALIDATE)
    return True


def _pause(attempt: int) -> None:
    low, high = RETRY_SLEEP
    time.sleep(random.uniform(low, high) * attempt)  # jitter, so racing writers spread out


def _with_entry(
    registry: Registry, entries: Sequence[CatalogEntry], dataset: Dataset, manifest: Manifest,
) -> list[CatalogEntry]:
    """``entries`` with ``dataset``'s entry from ``manifest`` (unless the one there is newer),
    every entry's registry fields refreshed, in registry order; entries of datasets the
    registry no longer has are left out (as ``rebuild_catalog`` does)."""
    by_name = {e.name: e for e in entries}
    mine = by_name.get(dataset.name)
    if mine is None or mine.version <= manifest.version:
        by_name[dataset.name] = catalog_entry(dataset, manifest)
    out = []
    for ds in registry:
        entry = by_name.get(ds.name)
        if entry is not None:
            out.append(entry if ds.name == dataset.name else replace(entry, **_registry_fields(ds)))
    return out


def update_catalog(
    store: Store, settings: Settings, registry: Registry, dataset: Dataset, manifest: Manifest,
    now: datetime,
) -> bool:
    """Put ``dataset``'s entry, built from ``manifest`` (the one just switched to, or the current
    one in a repair run), into ``catalog.json``; see the module docstring. A missing or
    unreadable catalog is rebuilt from every manifest instead (``rebuild_catalog``). Returns
    True when the catalog was written.

    Raises:
        PreconditionFailed: ``ATTEMPTS`` writes in a row lost the race (the queue retries).
        StorageError: other storage failures."""
    for attempt in range(1, ATTEMPTS + 1):
        current, etag, readable = read_catalog(store, settings)
        if current is None:
            return rebuild_catalog(store, settings, registry, now, known={dataset.name: manifest})
        entries = _with_entry(registry, current.datasets, dataset, manifest)
        try:
            return _write(store, settings, entries, now, current, etag)
        except PreconditionFailed:
            if attempt == ATTEMPTS:
                raise
            log.info("catalog changed meanwhile: read again",
                     extra={"dataset": dataset.name, "attempt": attempt})
            _pause(attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def _read_manifest(store: Store, settings: Settings, name: str) -> Manifest | None:
    key = layout.manifest_key(name)
    if store.head(settings.published_bucket, key) is None:
        return None
    return Manifest.from_json(json.loads(store.get(settings.published_bucket, key)))


def rebuild_catalog(
    store: Store, settings: Settings, registry: Registry, now: datetime,
    *, known: dict[str, Manifest] | None = None,
) -> bool:
    """Rewrite ``catalog.json`` from every registered dataset's manifest (one ``head`` and one
    ``get`` each; ``known``: dataset -> a manifest already in memory, used as long as the one
    stored is not newer), written with ``If-Match`` on the ETag read before the manifests, or
    ``If-None-Match`` when there is no catalog; on ``PreconditionFailed`` everything is read
    again, up to ``ATTEMPTS`` times. Returns True if the catalog changed (its ``datasets``,
    ``generated_at`` aside).

    Raises:
        PreconditionFailed: ``ATTEMPTS`` writes in a row lost the race.
        ContractError: a manifest that does not fit ``contracts.Manifest``."""
    datasets = list(registry)
    for attempt in range(1, ATTEMPTS + 1):
        current, etag, _ = read_catalog(store, settings)
        manifests = concurrency.map_ordered(
            lambda ds: _read_manifest(store, settings, ds.name), datasets,
            threads=MANIFEST_THREADS)
        entries = []
        for ds, m in zip(datasets, manifests, strict=True):
            mine = (known or {}).get(ds.name)
            if mine is not None and (m is None or m.version <= mine.version):
                m = mine
            if m is not None:
                entries.append(catalog_entry(ds, m))
        try:
            return _write(store, settings, entries, now, current, etag)
        except PreconditionFailed:
            if attempt == ATTEMPTS:
                raise
            log.info("catalog changed meanwhile: rebuilt again", extra={"attempt": attempt})
            _pause(attempt)
    raise AssertionError("unreachable")  # pragma: no cover
