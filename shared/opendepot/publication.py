"""Publication of a dataset: staged uploads in, an immutable version and a manifest switch out.

``publish_dataset`` is idempotent and crash-safe (see docs/design.md, "Manifest"):

1. read the upload records under ``staging/{dataset}/`` and select the uploads that make the
   publication (``snapshot``: each producer's newest; ``append``: all);
2. if the current manifest was made of exactly these uploads, nothing new is written (only the
   ``latest/`` copies and ``catalog.json`` are repaired if a crash left them behind);
3. otherwise download the staged Parquet files to a temporary directory, consolidate, roll up,
   render CSV and Parquet per level to temporary files and upload them under
   ``{dataset}/{version}/`` with ``If-None-Match`` (immutable), then ``datapackage.json``;
4. switch ``{dataset}/manifest.json`` with ``If-Match`` on the ETag read in step 2: the one
   atomic step readers see. A crash before it leaves the previous version published; unreferenced
   version files are harmless;
5. copy the files to ``{dataset}/latest/`` and rebuild ``catalog.json``.

A lost race (``PreconditionFailed``) propagates: the queue retries from fresh state.

Step 3 has two paths with the same published content (same rows, values, column order and
types, sort order and CSV bytes; Parquet row groups may differ). In memory (the reference,
``consolidate`` + ``rollup``): when the selected uploads hold fewer than ``STREAM_MIN_ROWS``
rows (their records' ``rows``), or the dataset has ``feeds``, ``provenance``, a
``consolidated`` table or roll-up measures that are not integers, or its first key column's
values make a single part. Streaming otherwise (see ``opendepot.consolidate``): the rows are
spilled to part files by ranges of the first key column's values, then consolidated, rendered
and rolled up one part at a time (regions: by ranges of region codes), so memory stays bounded
by about ``PARTITION_ROWS`` rows whatever the size. Temporary files go to one temporary
directory, removed even on error.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from opendepot import feeds
from opendepot.config import Settings
from opendepot.consolidate import (
    Partitioning,
    StagedUpload,
    StreamingRollups,
    consolidate,
    consolidated_parts,
    key_counts,
    plan_partitions,
    region_counts,
    rollup,
    rollup_levels,
    select_uploads,
    spill,
    staged_schema,
    streamable,
)
from opendepot.memory import release_memory
from opendepot.registry import Cog, Dataset, Registry
from opendepot.render import (
    LevelWriter,
    RenderedFile,
    datapackage,
    file_digest,
    level_schema,
    render_level,
    render_parts,
)
from opendepot.storage import PreconditionFailed, Store

T = TypeVar("T")
R = TypeVar("R")
MANIFEST = "manifest.json"
CATALOG_KEY = "catalog.json"
JSON_MIME = "application/json"
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "public, max-age=60, must-revalidate"
STREAM_MIN_ROWS = 2_000_000
"""Selected uploads holding fewer rows (their records' ``rows``) are published in memory."""
PARTITION_ROWS = 2_000_000
"""Rows per part of the streaming path, its memory bound: ``ceil(rows / PARTITION_ROWS)`` parts."""
BATCH_ROWS = 131_072
"""Rows per record batch read from a staged file by the streaming path."""
STORAGE_THREADS = 4
"""Concurrent storage requests of one publication (uploads of a version's files, ``latest/``
copies): each is independent, and all end before the manifest is switched. (With moto in
process, 8 threads raised the ×100 publication's peak from 1.5 to 2.1 GiB, for no time.)"""
STORAGE_BYTES = 128 * 2**20
"""Bytes of the bodies those requests may move at once (S3 streams them; an emulator such as
moto holds each whole in memory while it is put or copied)."""


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
    spec = dataset.consolidated
    if spec is not None and level == spec.name:
        return list(spec.key)
    key = [level if c == dataset.geography.field else c for c in dataset.primary_key]
    if dataset.provenance and level == dataset.geography.level and "producer" not in key:
        key.append("producer")
    return key


def _put_immutable(store: Store, bucket: str, key: str, body: bytes | Path, mime: str) -> None:
    """Write a file that must never change (``body``: bytes, or a local file streamed from
    disk). If it exists with the same bytes (a retry after a crash), that is fine; with other
    bytes, PreconditionFailed propagates."""
    try:
        if isinstance(body, bytes):
            store.put(bucket, key, body, mime, if_none_match=True, cache_control=IMMUTABLE)
        else:
            with body.open("rb") as f:
                store.put(bucket, key, f, mime, if_none_match=True, cache_control=IMMUTABLE)
    except PreconditionFailed:
        head = store.head(bucket, key)
        md5 = (hashlib.md5(body, usedforsecurity=False).hexdigest() if isinstance(body, bytes)
               else file_digest(body, "md5"))
        if head is None or head.etag != md5:
            raise


def _each(call: Callable[[T], object], items: Sequence[T], size: Callable[[T], int]) -> None:
    """``call`` on every item, ``STORAGE_THREADS`` at a time and while the items in flight hold
    at most ``STORAGE_BYTES`` (``size``: an item's body, in bytes; a larger one runs alone).
    Returns once every call has ended, failed ones included (a failure does not stop the
    others: each is one independent object); then raises the error of the first failing item,
    in the items' order."""
    room = threading.Condition()
    busy = 0

    def bounded(item: T) -> object:
        nonlocal busy
        need = min(size(item), STORAGE_BYTES)
        with room:
            room.wait_for(lambda: busy + need <= STORAGE_BYTES)
            busy += need
        try:
            return call(item)
        finally:
            with room:
                busy -= need
                room.notify_all()

    with ThreadPoolExecutor(max_workers=STORAGE_THREADS) as pool:
        for done in [pool.submit(bounded, item) for item in items]:
            done.result()


def _map(call: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``call`` on every item (small storage reads: manifests, upload records),
    ``STORAGE_THREADS`` at a time; the results in the items' order, or the first failure once
    every call has ended."""
    with ThreadPoolExecutor(max_workers=STORAGE_THREADS) as pool:
        return list(pool.map(call, items))


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
    keys = [o.key for o in store.list(settings.internal_bucket, f"staging/{dataset}/")
            if o.key.endswith(".json")]
    return _map(lambda key: json.loads(store.get(settings.internal_bucket, key)), keys)


@dataclass(frozen=True)
class Rendered:
    """A publication's files, written to local files, and what the manifest says of its levels."""

    files: list[RenderedFile]
    """Per level (producer's level, consolidated table, ``reg``, ``fra``): CSV, then Parquet."""
    schemas: dict[str, dict[str, Any]]
    """Level -> Table Schema."""
    rows: dict[str, int]
    """Level -> rows."""
    coverage: dict[str, str] | None
    """First and last value of the time field at the producer's level (None without one)."""


def _download(store: Store, settings: Settings, records: Sequence[dict], work: Path) -> list[Path]:
    """Stream each selected upload's staged Parquet into ``work`` (names from the position, never
    from the key)."""
    paths = []
    for i, r in enumerate(records):
        path = work / f"staged-{i:05d}.parquet"
        with path.open("wb") as out:
            store.get_file(settings.internal_bucket, r["staged_key"], out)
        paths.append(path)
    return paths


def _coverage(bounds: Sequence[Any]) -> dict[str, str] | None:
    """``{"start", "end"}`` from ``pc.min_max`` results of the time field (one per part)."""
    if not bounds:
        return None
    if len(bounds) == 1:
        mm = bounds[0]
    else:
        kind = bounds[0]["min"].type
        mm = pc.min_max(pa.array([b[k].as_py() for b in bounds for k in ("min", "max")], kind))
    return {"start": str(mm["min"]), "end": str(mm["max"])}


@dataclass(frozen=True)
class StreamPlan:
    """How the streaming path cuts one publication (see ``opendepot.consolidate``)."""

    schema: pa.Schema
    """The consolidated table's schema."""
    parts: Partitioning
    """Ranges of the first primary-key column."""
    regions: Partitioning | None
    """Ranges of region codes, when the dataset rolls up to ``reg``."""


def _stream_plan(
    dataset: Dataset, records: Sequence[dict], staged: Sequence[Path], fed: feeds.Feeds, cog: Cog
) -> StreamPlan | None:
    """The streaming plan of a publication, or None to publish it in memory: fewer than
    ``STREAM_MIN_ROWS`` rows, feeds, a dataset ``streamable`` refuses, or a single part."""
    rows = sum(int(r["rows"]) if "rows" in r else pq.ParquetFile(p).metadata.num_rows
               for r, p in zip(records, staged, strict=True))
    if rows < STREAM_MIN_ROWS or fed.versions or feeds.declared(dataset):
        return None
    schema = staged_schema(dataset, staged)
    if not streamable(dataset, schema):
        return None
    column = dataset.primary_key[0]
    counts = key_counts(staged, schema, column, BATCH_ROWS)
    parts = plan_partitions(column, counts, PARTITION_ROWS)
    if parts.parts < 2:
        return None
    regions = None
    area = dataset.geography.field
    if "reg" in rollup_levels(dataset) and area is not None:
        if area != column:
            counts = key_counts(staged, schema, area, BATCH_ROWS)
        regions = plan_partitions("reg", region_counts(counts, cog), PARTITION_ROWS)
    return StreamPlan(schema, parts, regions)


def _render_in_memory(
    dataset: Dataset,
    records: Sequence[dict],
    staged: Sequence[Path],
    fed: feeds.Feeds,
    cog: Cog,
    work: Path,
) -> Rendered:
    """The reference path: every upload read whole, ``consolidate``, ``rollup``."""
    uploads = [StagedUpload(r, pq.read_table(p)) for r, p in zip(records, staged, strict=True)]
    table = fed.extend(consolidate(dataset, uploads), cog)  # uploads, then fed rows
    del uploads
    levels = rollup(dataset, table, cog)
    files: list[RenderedFile] = []
    schemas: dict[str, dict[str, Any]] = {}
    for level, t in levels.items():
        schemas[level] = level_schema(t, dataset.schema, published_key(dataset, level))
        files.extend(render_level(dataset.name, level, t, work))
    date = dataset.time_field  # a date, or an ISO week label (both sort as text)
    bounds = [pc.min_max(table[date])] if date else []
    return Rendered(files, schemas, {lv: t.num_rows for lv, t in levels.items()}, _coverage(bounds))


def _render_streaming(
    dataset: Dataset, plan: StreamPlan, staged: Sequence[Path], cog: Cog, work: Path
) -> Rendered:
    """The streaming path (see ``opendepot.consolidate``): spill the uploads to parts, then per
    part consolidate, append to the producer level's files and feed the roll-ups; then write
    the roll-up levels part by part."""
    level = dataset.geography.level
    parts_dir = work / "parts"
    parts_dir.mkdir()
    several = len(staged) > 1  # one upload: nothing to drop, as in ``consolidate``
    parts = spill(staged, plan.schema, plan.parts, parts_dir, BATCH_ROWS, tag_order=several)
    for path in staged:
        path.unlink()  # spilled: free the temporary space
    rollups = StreamingRollups(dataset, cog, plan.schema, parts_dir, plan.regions, BATCH_ROWS)
    date = dataset.time_field
    bounds = []
    with LevelWriter(dataset.name, level, plan.schema, work) as writer:
        for part in consolidated_parts(parts, dataset.primary_key, dedupe=several):
            writer.write(part)
            rollups.add(part)
            if date:
                bounds.append(pc.min_max(part[date]))
            del part  # one part in memory at a time (see ``consolidated_parts``)
        files = writer.close()
    rows = {level: writer.rows}
    schemas = {level: level_schema(plan.schema, dataset.schema, published_key(dataset, level))}
    for lv, level_parts in rollups.levels_in_parts():
        written, schema = render_parts(dataset.name, lv, level_parts, work)
        files.extend(written)
        rows[lv] = written[0].rows
        schemas[lv] = level_schema(schema, dataset.schema, published_key(dataset, lv))
    return Rendered(files, schemas, rows, _coverage(bounds))


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
        version = manifest["version"] if manifest is not None else None
        return PublishOutcome(dataset.name, version, False, {}, ())
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

    version = next_version(now, manifest)
    prefix = f"{dataset.name}/{version}"
    with tempfile.TemporaryDirectory(prefix="opendepot-publish-") as tmp:
        work = Path(tmp)
        staged = _download(store, settings, selected, work)
        plan = _stream_plan(dataset, selected, staged, fed, cog)
        if plan is None:
            out = _render_in_memory(dataset, selected, staged, fed, cog, work)
        else:
            out = _render_streaming(dataset, plan, staged, cog, work)
        release_memory()  # the tables are gone: their pages are not kept beside the uploads
        _each(lambda f: _put_immutable(store, settings.published_bucket,
                                       f"{prefix}/{f.name}", f.path, f.mime),
              out.files, lambda f: f.size)
    package = datapackage(dataset, version, out.files, out.schemas)
    body = json.dumps(package, ensure_ascii=False, indent=1).encode("utf-8")
    _put_immutable(store, settings.published_bucket, f"{prefix}/datapackage.json", body, JSON_MIME)
    new = _manifest(dataset, version, now, selected_and_fed, out, manifest)
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
    out: Rendered,
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
            "bytes": f.size,
            "rows": f.rows,
            "last_modified": _iso(now),
        }
        for f in out.files
    ]
    entry = {
        "version": version,
        "published_at": _iso(now),
        "upload_ids": [u["upload_id"] for u in uploads],
        "uploads": [{"upload_id": u["upload_id"], "producer": u["producer"]} for u in uploads],
        "rows": out.rows,
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
        "rows": out.rows,
        "rows_left_out": sum(int(u.get("rows_left_out", 0)) for u in uploads),
        "temporal_coverage": out.coverage,
        "resources": resources,
        "datapackage_path": f"{prefix}/datapackage.json",
        "schema": out.schemas[dataset.geography.level],
        "schemas": out.schemas,
        "versions": history,
    }


def _refresh_latest(store: Store, settings: Settings, manifest: dict) -> None:
    """Make ``latest/`` hold the manifest's files (copies only what differs)."""
    bucket = settings.published_bucket

    def stale(r: dict) -> bool:
        current = store.head(bucket, r["latest_path"])
        source = store.head(bucket, r["path"])
        return source is not None and (current is None or current.etag != source.etag)

    resources = manifest["resources"]
    copies = [r for r, old in zip(resources, _map(stale, resources), strict=True) if old]
    _each(lambda r: store.copy(bucket, r["path"], r["latest_path"], cache_control=REVALIDATE),
          copies, lambda r: int(r["bytes"]))


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
    known = list(registry)
    manifests = _map(lambda ds: read_manifest(store, settings, ds.name)[0], known)
    entries = [catalog_entry(ds, m) for ds, m in zip(known, manifests, strict=True)
               if m is not None]
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
