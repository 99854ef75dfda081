"""Pending markers: no public file outside a manifest once a failed publication was retried.

A publication writes its new version's files under ``{dataset}/{version}/`` (public as soon as
written) before it switches the manifest. Before the first of them, it writes a marker in the
internal bucket, ``pending/{dataset}/{version}.json`` (``layout.pending_key``), listing the keys
it is about to write and the ETag of the manifest it started from (``base``). After each run
that leaves a version published (a switch, or a repair run that found nothing new),
``sweep`` reads the markers of the dataset (one list of ``pending/{dataset}/``, never of the
published folder) and, for each:

- its version is published (the current one, or one in the manifest's ``versions``): the
  publication switched to it and died before the sweep; the marker alone is deleted;
- its ``base`` is the current manifest's ETag: a publication that may still be running (or died
  with no switch since), whose ``If-Match`` switch can still succeed; it is kept;
- otherwise the manifest changed since that publication read it, so its switch can never
  succeed: the keys it lists are deleted from the published bucket (only keys inside its own
  version folder), then the marker.

So a publication that fails before its switch leaves its files until the next switch of the
dataset (its retry's, normally), which deletes them; deleting is idempotent, and a crash during
a sweep leaves the marker for the next one. Deleting adds a delete marker in the versioned
published bucket: the bytes stay recoverable by the owner, not public (the bucket policy grants
``s3:GetObject``, not ``s3:GetObjectVersion``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opendepot import layout
from opendepot.config import Settings
from opendepot.contracts import Manifest
from opendepot.storage import NotFound, Store

__all__ = ["Marker", "Swept", "mark", "sweep", "version_keys"]
JSON_MIME = "application/json"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Marker:
    """``pending/{dataset}/{version}.json``: ``{"dataset", "version", "base", "started_at",
    "keys"}``."""

    dataset: str
    version: str
    """The version the publication is writing (``YYYY-MM-DD-HHhMMmSSs``)."""
    base: str | None
    """ETag of the manifest the publication read, its switch's ``If-Match`` (None: the dataset
    had no manifest; the switch is ``If-None-Match``)."""
    started_at: str
    """When the publication wrote the marker, ISO 8601 UTC."""
    keys: tuple[str, ...]
    """Published-bucket keys the publication writes under ``{dataset}/{version}/``."""

    def to_json(self) -> dict[str, Any]:
        """The stored JSON object."""
        return {"dataset": self.dataset, "version": self.version, "base": self.base,
                "started_at": self.started_at, "keys": list(self.keys)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Marker:
        """Raises: ValueError (a key missing or of the wrong type)."""
        try:
            dataset, version, started = d["dataset"], d["version"], d["started_at"]
            base, keys = d["base"], d["keys"]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"pending marker: missing {exc}") from exc
        if not all(isinstance(v, str) for v in (dataset, version, started)) or not (
                base is None or isinstance(base, str)) or not isinstance(keys, list) or not all(
                isinstance(k, str) for k in keys):
            raise ValueError("pending marker: a key has the wrong type")
        return cls(dataset, version, base, started, tuple(keys))


@dataclass(frozen=True)
class Swept:
    """What one ``sweep`` did (versions by id)."""

    cleared: tuple[str, ...] = ()
    """Markers of published versions, deleted alone."""
    removed: tuple[str, ...] = ()
    """Versions never switched to whose files and marker were deleted."""
    kept: tuple[str, ...] = ()
    """Markers left: publications based on the current manifest (maybe still running), or
    markers that could not be read."""
    deleted_keys: int = 0
    """Published objects deleted."""


def version_keys(dataset: str, version: str, names: Iterable[str]) -> tuple[str, ...]:
    """Every key a publication of ``version`` may write in its folder: the files ``names``
    (``{dataset}-{level}.csv|parquet``), ``datapackage.json``, ``changes.json`` and
    ``changes.csv``."""
    files = [layout.version_file_key(dataset, version, n) for n in names]
    return (*files, layout.datapackage_key(dataset, version), layout.changes_key(dataset, version),
            layout.changes_csv_key(dataset, version))


def mark(
    store: Store, settings: Settings, dataset: str, version: str, base: str | None,
    names: Iterable[str], now: datetime,
) -> Marker:
    """Write the marker of a publication of ``version`` started from the manifest of ETag
    ``base`` that will write the files ``names`` (see ``version_keys``): before any of them.

    Raises: StorageError."""
    marker = Marker(dataset, version, base, now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    version_keys(dataset, version, names))
    body = json.dumps(marker.to_json(), ensure_ascii=False, indent=1).encode("utf-8")
    store.put(settings.internal_bucket, layout.pending_key(dataset, version), body, JSON_MIME)
    return marker


def _published(version: str, manifest: Manifest | None) -> bool:
    """True when ``version`` was switched to: the current version, one of the manifest's inline
    ``versions``, or a version in the range of one of its ``version_pages`` (taken as published
    without reading the page: files are never deleted on a guess)."""
    if manifest is None:
        return False
    inline = {v.version for v in manifest.versions} | {manifest.version}
    return version in inline or any(p.first <= version <= p.last for p in manifest.version_pages)


def _read(store: Store, settings: Settings, key: str) -> Marker | None:
    try:
        return Marker.from_json(json.loads(store.get(settings.internal_bucket, key)))
    except ValueError as exc:  # not JSON, not UTF-8, not a marker
        log.warning("pending marker unreadable: kept", extra={"key": key, "error": str(exc)})
        return None


def _remove(store: Store, settings: Settings, marker: Marker) -> int:
    """Delete the marker's keys inside its version folder, then return how many were."""
    folder = layout.version_prefix(marker.dataset, marker.version) + "/"
    keys = [k for k in marker.keys if k.startswith(folder)]
    if len(keys) != len(marker.keys):
        log.warning("pending marker names keys outside its version folder: not deleted",
                    extra={"dataset": marker.dataset, "version": marker.version,
                           "keys": [k for k in marker.keys if not k.startswith(folder)]})
    for key in keys:
        store.delete(settings.published_bucket, key)
    return len(keys)


def current_manifest(
    store: Store, settings: Settings, dataset: str, attempts: int = 3,
    known: tuple[Manifest | None, str | None] = (None, None),
) -> tuple[Manifest | None, str | None] | None:
    """The dataset's manifest and its ETag read together (head, get, head: the same ETag both
    times), ((None, None) when there is none); None when it kept changing while read.
    ``known``: a manifest and its ETag the caller holds, used as is (no get) when the head
    still gives that ETag.

    Raises: StorageError, ContractError."""
    key = layout.manifest_key(dataset)
    for _ in range(attempts):
        before = store.head(settings.published_bucket, key)
        if before is None:
            return None, None
        if known[0] is not None and before.etag == known[1]:
            return known
        try:
            body = store.get(settings.published_bucket, key)
        except NotFound:
            continue
        after = store.head(settings.published_bucket, key)
        if after is not None and after.etag == before.etag:
            return Manifest.from_json(json.loads(body)), before.etag
    return None


def abandon(store: Store, settings: Settings, marker: Marker) -> int:
    """Delete the files of a publication that lost its switch (``marker``: its own), then its
    marker; returns the files deleted. A sweep may have removed them already: deleting again
    is harmless.

    Raises: StorageError."""
    deleted = _remove(store, settings, marker)
    store.delete(settings.internal_bucket, layout.pending_key(marker.dataset, marker.version))
    return deleted


def sweep(
    store: Store, settings: Settings, dataset: str, manifest: Manifest | None, etag: str | None,
) -> Swept:
    """Clear ``dataset``'s markers against its current manifest; see the module docstring.
    ``manifest`` and ``etag`` (read together, or returned by the switch) are what the caller
    saw; when there are markers, the manifest is read again (``current_manifest``) and that is
    what decides (a stale view could take a publication that can still switch for one that
    never will). Costs one list of ``pending/{dataset}/`` and, with markers, a head, a get and a
    head of the manifest, one get per marker, and the deletes.

    Raises: StorageError (the next sweep finds what is left)."""
    cleared, removed, kept, deleted = [], [], [], 0
    markers = store.list(settings.internal_bucket, layout.pending_prefix(dataset))
    if markers:  # decide on the manifest as it is now, not as the caller last saw it
        fresh = current_manifest(store, settings, dataset, known=(manifest, etag))
        if fresh is None:  # it moved while read: keep every marker, the next sweep decides
            return Swept((), (), tuple(o.key.rsplit("/", 1)[-1].removesuffix(".json")
                                       for o in markers), 0)
        manifest, etag = fresh
    for obj in markers:
        marker = _read(store, settings, obj.key)
        if marker is None or marker.dataset != dataset:
            kept.append(obj.key.rsplit("/", 1)[-1].removesuffix(".json"))
            continue
        if _published(marker.version, manifest):
            cleared.append(marker.version)
        elif marker.base == etag:
            kept.append(marker.version)
            continue
        else:
            deleted += _remove(store, settings, marker)
            removed.append(marker.version)
            log.warning("files of a version never switched to deleted", extra={
                "dataset": dataset, "version": marker.version, "started_at": marker.started_at,
                "keys": len(marker.keys)})
        store.delete(settings.internal_bucket, obj.key)
    return Swept(tuple(cleared), tuple(removed), tuple(kept), deleted)
