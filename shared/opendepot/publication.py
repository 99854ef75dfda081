"""Publication of a dataset: staged uploads in, an immutable version and a manifest switch out.

``publish_dataset`` is idempotent and crash-safe (see docs/design.md, "Manifest"):

1. read the upload records under ``staging/{dataset}/`` and select the uploads that make the
   publication (``snapshot``: each producer's newest; ``append``: all);
2. if the current manifest was made of exactly these uploads, nothing new is written (only the
   ``latest/`` copies and ``catalog.json`` are repaired if a crash left them behind);
3. otherwise consolidate, roll up, render CSV and Parquet per level and write them under
   ``{dataset}/{version}/`` with ``If-None-Match`` (immutable), then ``datapackage.json``;
4. switch ``{dataset}/manifest.json`` with ``If-Match`` on the ETag read in step 2: the one
   atomic step readers see. A crash before it leaves the previous version published; unreferenced
   version files are harmless;
5. copy the files to ``{dataset}/latest/`` and rebuild ``catalog.json``.

A lost race (``PreconditionFailed``) propagates: the queue retries from fresh state.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from opendepot import feeds
from opendepot.config import Settings
from opendepot.consolidate import StagedUpload, consolidate, rollup, select_uploads
from opendepot.registry import Cog, Dataset, Registry
from opendepot.render import RenderedFile, datapackage, level_schema, render_level
from opendepot.storage import PreconditionFailed, Store

MANIFEST = "manifest.json"
CATALOG_KEY = "catalog.json"
JSON_MIME = "application/json"
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "public, max-age=60, must-revalidate"


@dataclass(frozen=True)
class PublishOutcome:
    """What one publish call did."""

    dataset: str
    version: str | None
    """The version now published (None when nothing is staged yet)."""
    created: bool
    """True when a new version was written and switched to."""
    rows: dict[str, int]
    upload_ids: tuple[str, ...]


def version_id(now: datetime) -> str:
    """``YYYY-MM-DD-HHhMMmSSs`` in UTC."""
    return now.strftime("%Y-%m-%d-%Hh%Mm%Ss")


def next_version(now: datetime, manifest: dict | None) -> str:
    """The version id for a publication at ``now``: strictly after the current version, so
    versions sort in publication order even when two land in the same second."""
    candidate = now.replace(microsecond=0)
    if manifest is not None:
        current = datetime.strptime(manifest["version"], "%Y-%m-%d-%Hh%Mm%Ss").replace(
            tzinfo=candidate.tzinfo
        )
        if candidate <= current:
            candidate = current + timedelta(seconds=1)
    return version_id(candidate)


def published_key(dataset: Dataset, level: str) -> list[str]:
    """Primary key of one published table: the declared key with the area column of the level,
    plus ``producer`` when rows carry provenance; a ``consolidated`` table has its own key."""
    spec = dataset.descriptor.get("consolidated") or {}
    if level == spec.get("name", "consolidated") and spec:
        return list(spec["key"])
    key = [level if c == dataset.geography.field else c for c in dataset.primary_key]
    if dataset.provenance and level == dataset.geography.level and "producer" not in key:
        key.append("producer")
    return key


def _put_immutable(store: Store, bucket: str, key: str, body: bytes, mime: str) -> None:
    """Write a file that must never change. If it exists with the same bytes (a retry after a
    crash), that is fine; with other bytes, PreconditionFailed propagates."""
    try:
        store.put(bucket, key, body, mime, if_none_match=True, cache_control=IMMUTABLE)
    except PreconditionFailed:
        head = store.head(bucket, key)
        if head is None or head.etag != hashlib.md5(body, usedforsecurity=False).hexdigest():
            raise


def resource_id(dataset: str, level: str, fmt: str) -> str:
    """Resource id, stable across versions: uuid5 of ``opendepot:{dataset}:{level}:{format}``."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"opendepot:{dataset}:{level}:{fmt}"))


def _iso(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


LEVEL_TITLES = {"dep": "par département", "reg": "par région", "fra": "France entière"}


def read_manifest(store: Store, settings: Settings, dataset: str) -> tuple[dict | None, str | None]:
    """The current manifest and its ETag, or (None, None)."""
    key = f"{dataset}/{MANIFEST}"
    head = store.head(settings.published_bucket, key)
    if head is None:
        return None, None
    return json.loads(store.get(settings.published_bucket, key)), head.etag


def staged_records(store: Store, settings: Settings, dataset: str) -> list[dict]:
    """Every upload record under ``staging/{dataset}/``."""
    return [
        json.loads(store.get(settings.internal_bucket, o.key))
        for o in store.list(settings.internal_bucket, f"staging/{dataset}/")
        if o.key.endswith(".json")
    ]


def publish_dataset(
    store: Store,
    settings: Settings,
    registry: Registry,
    cog: Cog,
    dataset: Dataset,
    now: datetime,
) -> PublishOutcome:
    """Publish ``dataset`` from its staged uploads (see module docstring).

    Raises:
        PreconditionFailed: another publication won the race; retry.
        NotFound: a staged file referenced by an upload record is missing.
    """
    records = staged_records(store, settings, dataset.name)
    manifest, etag = read_manifest(store, settings, dataset.name)
    if not records:
        return PublishOutcome(dataset.name, manifest and manifest["version"], False, {}, ())
    selected = select_uploads(dataset, records)
    # Declared feeds (registry ``feeds``, see opendepot.feeds): rows of other datasets' current
    # published versions join this publication, and those versions join its identity (ids), so a
    # new version of a fed dataset makes a new publication. No feeds: nothing changes.
    fed = feeds.resolve(store, settings.published_bucket, dataset)
    selected_and_fed = [*selected, *fed.records]
    ids = tuple(r["upload_id"] for r in selected_and_fed)
    if manifest is not None and tuple(u["upload_id"] for u in manifest["uploads"]) == ids:
        _refresh_latest(store, settings, manifest)
        rebuild_catalog(store, settings, registry, now)
        return PublishOutcome(dataset.name, manifest["version"], False, manifest["rows"], ids)

    uploads = [
        StagedUpload(r, pq.read_table(io.BytesIO(store.get(settings.internal_bucket, r["staged_key"]))))
        for r in selected
    ]
    table = fed.extend(consolidate(dataset, uploads), cog)  # uploads, then fed rows
    levels = rollup(dataset, table, cog)
    version = next_version(now, manifest)
    files: list[RenderedFile] = []
    schemas: dict[str, dict[str, Any]] = {}
    for level, t in levels.items():
        schemas[level] = level_schema(t, dataset.schema, published_key(dataset, level))
        files.extend(render_level(dataset.name, level, t))
    prefix = f"{dataset.name}/{version}"
    for f in files:
        _put_immutable(store, settings.published_bucket, f"{prefix}/{f.name}", f.body, f.mime)
    package = datapackage(dataset, version, files, schemas)
    body = json.dumps(package, ensure_ascii=False, indent=1).encode("utf-8")
    _put_immutable(store, settings.published_bucket, f"{prefix}/datapackage.json", body, JSON_MIME)
    new = _manifest(dataset, version, now, selected_and_fed, files, schemas, levels, manifest)
    body = json.dumps(new, ensure_ascii=False, indent=1, default=str).encode("utf-8")
    store.put(
        settings.published_bucket,
        f"{dataset.name}/{MANIFEST}",
        body,
        JSON_MIME,
        if_match=etag,
        if_none_match=etag is None,
        cache_control=REVALIDATE,
    )
    _refresh_latest(store, settings, new)
    rebuild_catalog(store, settings, registry, now)
    return PublishOutcome(dataset.name, version, True, new["rows"], ids)


def _manifest(
    dataset: Dataset,
    version: str,
    now: datetime,
    uploads: list[dict],
    files: list[RenderedFile],
    schemas: dict[str, dict[str, Any]],
    levels: dict[str, Any],
    previous: dict | None,
) -> dict[str, Any]:
    prefix = f"{dataset.name}/{version}"
    resources = [
        {
            "id": resource_id(dataset.name, f.level, f.format),
            "name": f.name.rsplit(".", 1)[0],
            "title": f"{dataset.title}, {LEVEL_TITLES.get(f.level, f.level)} ({f.format.upper()})",
            "level": f.level,
            "format": f.format,
            "mime": f.mime,
            "path": f"{prefix}/{f.name}",
            "latest_path": f"{dataset.name}/latest/{f.name}",
            "sha256": f.sha256,
            "bytes": len(f.body),
            "rows": f.rows,
            "last_modified": _iso(now),
        }
        for f in files
    ]
    rows = {level: t.num_rows for level, t in levels.items()}
    date = dataset.time_field  # a date, or an ISO week label (both sort as text)
    coverage = None
    if date:
        mm = pc.min_max(levels[dataset.geography.level][date])
        coverage = {"start": str(mm["min"]), "end": str(mm["max"])}
    entry = {
        "version": version,
        "published_at": _iso(now),
        "upload_ids": [u["upload_id"] for u in uploads],
        "uploads": [{"upload_id": u["upload_id"], "producer": u["producer"]} for u in uploads],
        "rows": rows,
        "resources": [
            {k: r[k] for k in ("name", "format", "path", "sha256", "bytes", "rows")}
            for r in resources
        ],
    }
    history = [entry, *(previous or {}).get("versions", [])]
    return {
        "dataset": dataset.name,
        "version": version,
        "published_at": _iso(now),
        "created_at": (previous or {}).get("created_at", _iso(now)),
        "uploads": uploads,
        "rows": rows,
        "rows_left_out": sum(int(u.get("rows_left_out", 0)) for u in uploads),
        "temporal_coverage": coverage,
        "resources": resources,
        "datapackage_path": f"{prefix}/datapackage.json",
        "schema": schemas[dataset.geography.level],
        "schemas": schemas,
        "versions": history,
    }


def _refresh_latest(store: Store, settings: Settings, manifest: dict) -> None:
    """Make ``latest/`` hold the manifest's files (copies only what differs)."""
    bucket = settings.published_bucket
    for r in manifest["resources"]:
        current = store.head(bucket, r["latest_path"])
        source = store.head(bucket, r["path"])
        if source is not None and (current is None or current.etag != source.etag):
            store.copy(bucket, r["path"], r["latest_path"], cache_control=REVALIDATE)


def catalog_entry(dataset: Dataset, manifest: dict) -> dict[str, Any]:
    """One dataset in ``catalog.json``: registry metadata plus the current version."""
    return {
        "name": dataset.name,
        "title": dataset.title,
        "description": dataset.description,
        "organization": dataset.organization,
        "license": dataset.license,
        "frequency": dataset.frequency,
        "tags": list(dataset.tags),
        "version": manifest["version"],
        "published_at": manifest["published_at"],
        "created_at": manifest["created_at"],
        "rows": manifest["rows"],
        "rows_left_out": manifest.get("rows_left_out", 0),
        "temporal_coverage": manifest.get("temporal_coverage"),
        "levels": list(dataset.levels),
        "resources": manifest["resources"],
        "schemas": manifest.get("schemas", {}),
        "manifest_path": f"{dataset.name}/{MANIFEST}",
    }


def rebuild_catalog(store: Store, settings: Settings, registry: Registry, now: datetime) -> bool:
    """Rewrite ``catalog.json`` from every dataset's manifest; returns True if it changed."""
    entries = []
    for ds in registry:
        manifest, _ = read_manifest(store, settings, ds.name)
        if manifest is not None:
            entries.append(catalog_entry(ds, manifest))
    datasets = json.dumps(entries, ensure_ascii=False, sort_keys=True, default=str)
    head = store.head(settings.published_bucket, CATALOG_KEY)
    if head is not None:
        current = json.loads(store.get(settings.published_bucket, CATALOG_KEY))
        if json.dumps(current.get("datasets"), ensure_ascii=False, sort_keys=True) == datasets:
            return False
    body = {"generated_at": _iso(now), "datasets": entries}
    store.put(
        settings.published_bucket,
        CATALOG_KEY,
        json.dumps(body, ensure_ascii=False, indent=1, default=str).encode("utf-8"),
        JSON_MIME,
        cache_control=REVALIDATE,
    )
    return True
