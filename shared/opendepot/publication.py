"""Publication of a dataset: staged uploads in, an immutable version and a manifest switch out.

``publish_dataset`` is idempotent and crash-safe (see docs/design.md, "Manifest"):

1. read the upload records under ``staging/{dataset}/`` and select the uploads that make the
   publication (``snapshot``: each producer's newest; ``append``: all);
2. if the current manifest was made of exactly these uploads, nothing new is written (only the
   ``latest/`` and Parquet prefix copies and ``catalog.json`` are repaired if a crash left them
   behind);
3. otherwise download the staged Parquet files to a temporary directory, consolidate, roll up,
   render CSV and Parquet per level to temporary files and upload them under
   ``{dataset}/{version}/`` with ``If-None-Match`` (immutable), then ``datapackage.json``;
4. switch ``{dataset}/manifest.json`` with ``If-Match`` on the ETag read in step 2: the one
   atomic step readers see. A crash before it leaves the previous version published; unreferenced
   version files are harmless;
5. copy the files to ``{dataset}/latest/``, each level's Parquet file to its Parquet prefix
   ``{dataset}/parquet/{level}/`` (``layout.parquet_key``), and rebuild ``catalog.json``.

Between 3 and 4, the new version's table of the producer's level is compared with the previous
version's (``opendepot.changes``, its Parquet file read from the published bucket through the
previous manifest): ``changes.json`` (the summary) and ``changes.csv`` (the changed cells) go
under ``{dataset}/{version}/`` (immutable), the version entry records them
(``contracts.VersionChanges``), the summary's counts and warnings are logged and returned in
``PublishOutcome.changes``. A first version gets a ``changes.json`` saying so. The changes
file never blocks a version: a comparison that raises anything but an infrastructure failure
(``failures.is_infrastructure``, a storage error) is logged and gets a ``changes.json`` whose note
says it failed (``changes.COMPARISON_FAILED``), and the publication goes on.

A lost race (``PreconditionFailed``) propagates: the queue retries from fresh state.

Step 3 is one path for every publication (``opendepot.levels.render_levels``): a plan cuts the
rows into parts by ranges of the first key column's values (a single part when they are few, or
when the dataset needs its whole table: feeds, provenance, a ``consolidated`` table, float
roll-ups), each part is consolidated, appended to the producer level's files and rolled up; the
roll-up levels follow part by part. Memory stays bounded by about ``Tuning.partition_rows`` rows
whatever the size. Temporary files go to one temporary directory, removed even on error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from opendepot import changes, concurrency, failures, feeds, layout
from opendepot.config import Settings
from opendepot.consolidate import select_uploads
from opendepot.contracts import (
    Catalog,
    CatalogEntry,
    Coverage,
    Manifest,
    ManifestUpload,
    Resource,
    UploadRecord,
    Version,
    VersionChanges,
    VersionFile,
    VersionUpload,
)
from opendepot.layout import CATALOG_KEY, resource_id, version_id
from opendepot.levels import Tuning, render_levels
from opendepot.memory import release_memory
from opendepot.partitions import Upload
from opendepot.registry import Cog, Dataset, Registry
from opendepot.render import RenderedFile, datapackage, file_digest, level_schema
from opendepot.storage import PreconditionFailed, StorageError, Store

T = TypeVar("T")
R = TypeVar("R")
__all__ = ["CATALOG_KEY", "PublishOutcome", "catalog_entry", "next_version", "publish_dataset",
           "published_key", "read_manifest", "rebuild_catalog", "resource_id", "staged_records",
           "version_id"]
JSON_MIME = "application/json"
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "public, max-age=60, must-revalidate"
log = logging.getLogger(__name__)
TUNING = Tuning()
"""How publications are cut into parts and read (``opendepot.levels``): production's defaults."""
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
    changes: Mapping[str, Any] | None = None
    """What the new version changed against the one before (``Changes.headline``: row counts,
    changed cells, whether published dates were dropped, warnings); None when no new version
    was written or there was nothing to compare with (a first version)."""


def next_version(now: datetime, manifest: Manifest | None) -> str:
    """The version id for a publication at ``now``: strictly after the current version, so
    versions sort in publication order even when two land in the same second."""
    candidate = now.replace(microsecond=0)
    if manifest is not None:
        current = layout.parse_version(manifest.version).replace(tzinfo=candidate.tzinfo)
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


def put_immutable(store: Store, bucket: str, key: str, body: bytes | Path, mime: str) -> None:
    """Write a file that must never change (``body``: bytes, or a local file streamed from
    disk). If it exists with the same bytes (a retry after a crash), that is fine; with other
    bytes, PreconditionFailed propagates.

    Raises:
        PreconditionFailed: the object exists with other bytes.
    """
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
    """``concurrency.each`` with ``STORAGE_THREADS`` and ``STORAGE_BYTES``."""
    concurrency.each(call, items, size, threads=STORAGE_THREADS, budget=STORAGE_BYTES)


def _map(call: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``concurrency.map_ordered`` with ``STORAGE_THREADS`` (small reads: manifests, records)."""
    return concurrency.map_ordered(call, items, threads=STORAGE_THREADS)


def _iso(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


LEVEL_TITLES = {"dep": "par département", "reg": "par région", "fra": "France entière"}


def read_manifest(
    store: Store, settings: Settings, dataset: str
) -> tuple[Manifest | None, str | None]:
    """The current manifest of ``dataset`` and its ETag, or (None, None) when none is published.

    Raises: ContractError (a manifest that does not fit ``contracts.Manifest``)."""
    key = layout.manifest_key(dataset)
    head = store.head(settings.published_bucket, key)
    if head is None:
        return None, None
    return Manifest.from_json(json.loads(store.get(settings.published_bucket, key))), head.etag


def staged_records(store: Store, settings: Settings, dataset: str) -> list[UploadRecord]:
    """Every upload record under ``staging/{dataset}/``, in key order.

    Raises: ContractError (a record that does not fit ``contracts.UploadRecord``)."""
    keys = [o.key for o in store.list(settings.internal_bucket, layout.staging_prefix(dataset))
            if layout.is_staged_record(o.key)]
    return _map(lambda key: UploadRecord.from_json(
        json.loads(store.get(settings.internal_bucket, key))), keys)


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


def _download(
    store: Store, settings: Settings, records: Sequence[UploadRecord], work: Path
) -> list[Upload]:
    """Stream each selected upload's staged Parquet into ``work`` (names from the position, never
    from the key)."""
    uploads = []
    for i, r in enumerate(records):
        path = work / f"staged-{i:05d}.parquet"
        with path.open("wb") as out:
            store.get_file(settings.internal_bucket, r.staged_key, out)
        uploads.append(Upload(path, r.producer, r.upload_id, r.rows))
    return uploads


def _render(
    dataset: Dataset, uploads: Sequence[Upload], fed: feeds.Feeds, cog: Cog, work: Path,
    tuning: Tuning,
) -> Rendered:
    """Every published file of the publication (``levels.render_levels``), with each level's
    Table Schema."""
    out = render_levels(dataset, uploads, fed, cog, work, tuning)
    schemas = {lv: level_schema(s, dataset.schema, published_key(dataset, lv))
               for lv, s in out.schemas.items()}
    return Rendered(out.files, schemas, out.rows, out.coverage)


def publish_dataset(
    store: Store,
    settings: Settings,
    registry: Registry,
    cog: Cog,
    dataset: Dataset,
    now: datetime,
    *,
    tuning: Tuning = TUNING,
) -> PublishOutcome:
    """Publish ``dataset`` from its staged uploads (see module docstring); ``tuning``: how the
    publication is cut into parts (the published files are the same whatever it is).

    Raises:
        PreconditionFailed: another publication won the race; retry.
        NotFound: a staged file referenced by an upload record is missing.
    """
    records = staged_records(store, settings, dataset.name)
    manifest, etag = read_manifest(store, settings, dataset.name)
    if not records:
        version = manifest.version if manifest is not None else None
        return PublishOutcome(dataset.name, version, False, {}, ())
    selected = select_uploads(dataset, records)
    # Declared feeds (registry ``feeds``, see opendepot.feeds): rows of other datasets' current
    # published versions join this publication, and those versions join its identity (ids), so a
    # new version of a fed dataset makes a new publication. No feeds: nothing changes.
    fed = feeds.resolve(store, settings.published_bucket, dataset)
    selected_and_fed: list[ManifestUpload] = [*selected, *fed.records]
    ids = tuple(r.upload_id for r in selected_and_fed)
    if manifest is not None and manifest.upload_ids == ids:
        _refresh_latest(store, settings, manifest)
        rebuild_catalog(store, settings, registry, now)
        return PublishOutcome(dataset.name, manifest.version, False, dict(manifest.rows), ids)

    version = next_version(now, manifest)
    with tempfile.TemporaryDirectory(prefix="opendepot-publish-") as tmp:
        work = Path(tmp)
        out = _render(dataset, _download(store, settings, selected, work), fed, cog, work, tuning)
        release_memory()  # the tables are gone: their pages are not kept beside the uploads
        _each(lambda f: put_immutable(
            store, settings.published_bucket,
            layout.version_file_key(dataset.name, version, f.name), f.path, f.mime),
              out.files, lambda f: f.size)
        recorded, diff = _publish_changes(store, settings, dataset, version, manifest, out, work)
        release_memory()
    package = datapackage(dataset, version, out.files, out.schemas)
    body = json.dumps(package, ensure_ascii=False, indent=1).encode("utf-8")
    put_immutable(store, settings.published_bucket, layout.datapackage_key(dataset.name, version),
                   body, JSON_MIME)
    new = _manifest(dataset, version, now, selected_and_fed, out, manifest, recorded)
    body = json.dumps(new.to_json(), ensure_ascii=False, indent=1, default=str).encode("utf-8")
    store.put(
        settings.published_bucket,
        layout.manifest_key(dataset.name),
        body,
        JSON_MIME,
        if_match=etag,
        if_none_match=etag is None,
        cache_control=REVALIDATE,
    )
    _refresh_latest(store, settings, new)
    rebuild_catalog(store, settings, registry, now)
    return PublishOutcome(dataset.name, version, True, dict(new.rows), ids,
                          None if diff is None else diff.headline())


def _changes_spec(dataset: Dataset) -> changes.Spec:
    """What is compared at the producer's level: its published key, the registry's measures and
    time field; ``upload_id`` (provenance bookkeeping) is not compared cell by cell."""
    level = dataset.geography.level
    return changes.Spec(tuple(published_key(dataset, level)), tuple(dataset.measures),
                        dataset.time_field, ("upload_id",) if dataset.provenance else ())


def _publish_changes(
    store: Store, settings: Settings, dataset: Dataset, version: str,
    previous: Manifest | None, out: Rendered, work: Path,
) -> tuple[VersionChanges, changes.Changes | None]:
    """``_compare_versions``, which must never block a version: an exception that is not an
    infrastructure failure (``failures.is_infrastructure``, or a ``StorageError``: both
    propagate, the queue retries) is logged with its traceback, and ``changes.json`` says the
    comparison failed (``changes.COMPARISON_FAILED`` and the exception's type; no summary, no
    CSV).

    Raises: PreconditionFailed (another ``changes.json`` is there), infrastructure failures."""
    try:
        return _compare_versions(store, settings, dataset, version, previous, out, work)
    except Exception as exc:
        if failures.is_infrastructure(exc) or isinstance(exc, StorageError):
            raise
        before = previous.version if previous is not None else None
        log.exception("versions not compared", extra={
            "dataset": dataset.name, "version": version, "previous": before,
            "error": f"{type(exc).__name__}: {exc}"})
        json_key = layout.changes_key(dataset.name, version)
        doc = changes.document(None, dataset=dataset.name, level=dataset.geography.level,
                               version=version, previous=before, csv=None,
                               note=f"{changes.COMPARISON_FAILED} ({type(exc).__name__})")
        put_immutable(store, settings.published_bucket, json_key, _json_bytes(doc), JSON_MIME)
        return VersionChanges(json_key, None, before), None


def _compare_versions(
    store: Store, settings: Settings, dataset: Dataset, version: str,
    previous: Manifest | None, out: Rendered, work: Path,
) -> tuple[VersionChanges, changes.Changes | None]:
    """Compare the new version's producer-level Parquet file (in ``work``) with the previous
    version's (downloaded from the published bucket), put ``changes.json`` and ``changes.csv``
    under the version's folder (immutable) and log the summary. Without a previous version (or
    its producer-level Parquet file), ``changes.json`` says so and no CSV is written.

    Raises: PreconditionFailed (another ``changes.json`` is there)."""
    name, level, bucket = dataset.name, dataset.geography.level, settings.published_bucket
    json_key = layout.changes_key(name, version)
    before = previous.version if previous is not None else None
    old = next((r for r in (previous.resources if previous is not None else ())
                if r.level == level and r.format == "parquet"), None)
    new = next((f for f in out.files if f.level == level and f.format == "parquet"), None)
    if old is not None and store.head(bucket, old.path) is None:
        old = None  # removed by hand: nothing to compare with, but the publication goes on
    if old is None or new is None:
        note = (changes.NO_PREVIOUS if previous is None
                else f"the previous version has no {level} Parquet file to compare with")
        doc = changes.document(None, dataset=name, level=level, version=version,
                               previous=before, csv=None, note=note)
        put_immutable(store, bucket, json_key, _json_bytes(doc), JSON_MIME)
        return VersionChanges(json_key, None, before), None
    old_path, csv_path = work / "previous.parquet", work / layout.CHANGES_CSV_NAME
    with old_path.open("wb") as f:
        store.get_file(bucket, old.path, f)
    diff = changes.compare_files(old_path, new.path, _changes_spec(dataset), csv_path)
    old_path.unlink()
    csv_key = layout.changes_csv_key(name, version)
    put_immutable(store, bucket, csv_key, csv_path, "text/csv")
    doc = changes.document(diff, dataset=name, level=level, version=version, previous=before,
                           csv=layout.CHANGES_CSV_NAME)
    put_immutable(store, bucket, json_key, _json_bytes(doc), JSON_MIME)
    s = diff.schema
    loud = diff.drops_published or bool(s.removed or s.retyped)
    (log.warning if loud else log.info)(
        "version changes" + (": published values dropped" if diff.drops_published else ""),
        extra={"dataset": name, "version": version, "previous": before,
               "changes": diff.headline()})
    return VersionChanges(json_key, csv_key, before), diff


def _json_bytes(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, ensure_ascii=False, indent=1).encode("utf-8")


def _manifest(
    dataset: Dataset,
    version: str,
    now: datetime,
    uploads: Sequence[ManifestUpload],
    out: Rendered,
    previous: Manifest | None,
    recorded: VersionChanges | None = None,
) -> Manifest:
    """The manifest of a new ``version`` made of ``uploads``; the previous versions follow."""
    resources = tuple(
        Resource(
            id=resource_id(dataset.name, f.level, f.format),
            name=f.name.rsplit(".", 1)[0],
            title=f"{dataset.title}, {LEVEL_TITLES.get(f.level, f.level)} ({f.format.upper()})",
            level=f.level,
            format=f.format,
            mime=f.mime,
            path=layout.version_file_key(dataset.name, version, f.name),
            latest_path=layout.latest_file_key(dataset.name, f.name),
            sha256=f.sha256,
            bytes=f.size,
            rows=f.rows,
            last_modified=_iso(now),
        )
        for f in out.files
    )
    entry = Version(
        version=version,
        published_at=_iso(now),
        upload_ids=tuple(u.upload_id for u in uploads),
        uploads=tuple(VersionUpload(u.upload_id, u.producer) for u in uploads),
        rows=out.rows,
        resources=tuple(VersionFile.of(r) for r in resources),
        changes=recorded,
    )
    coverage = out.coverage
    return Manifest(
        dataset=dataset.name,
        version=version,
        published_at=_iso(now),
        created_at=previous.created_at if previous is not None else _iso(now),
        uploads=tuple(uploads),
        rows=out.rows,
        rows_left_out=sum(u.rows_left_out for u in uploads),
        temporal_coverage=None if coverage is None else Coverage.from_json(coverage),
        resources=resources,
        datapackage_path=layout.datapackage_key(dataset.name, version),
        schema=out.schemas[dataset.geography.level],
        schemas=out.schemas,
        versions=(entry, *(previous.versions if previous is not None else ())),
    )


def _refresh_latest(store: Store, settings: Settings, manifest: Manifest) -> None:
    """Make ``latest/`` hold the manifest's files, and each level's Parquet prefix
    (``layout.parquet_key``: one object of a fixed name, overwritten by one copy, so a reader
    listing the prefix sees the old table or the new, never both) its Parquet file. Copies only
    what differs."""
    bucket = settings.published_bucket
    copies: list[tuple[Resource, str]] = [(r, r.latest_path) for r in manifest.resources]
    copies += [(r, layout.parquet_key(manifest.dataset, r.level)) for r in manifest.resources
               if r.format == "parquet"]

    def stale(copy: tuple[Resource, str]) -> bool:
        current = store.head(bucket, copy[1])
        source = store.head(bucket, copy[0].path)
        return source is not None and (current is None or current.etag != source.etag)

    copies = [c for c, old in zip(copies, _map(stale, copies), strict=True) if old]
    _each(lambda c: store.copy(bucket, c[0].path, c[1], cache_control=REVALIDATE),
          copies, lambda c: c[0].bytes)


def catalog_entry(dataset: Dataset, manifest: Manifest) -> CatalogEntry:
    """One dataset in ``catalog.json``: registry metadata plus the current version."""
    return CatalogEntry(
        name=dataset.name,
        title=dataset.title,
        description=dataset.description,
        organization=dataset.organization,
        license=dataset.license,
        frequency=dataset.frequency,
        tags=tuple(dataset.tags),
        version=manifest.version,
        published_at=manifest.published_at,
        created_at=manifest.created_at,
        rows=manifest.rows,
        rows_left_out=manifest.rows_left_out,
        temporal_coverage=manifest.temporal_coverage,
        levels=tuple(dataset.levels),
        resources=manifest.resources,
        schemas=manifest.schemas,
        manifest_path=layout.manifest_key(dataset.name),
    )


def rebuild_catalog(store: Store, settings: Settings, registry: Registry, now: datetime) -> bool:
    """Rewrite ``catalog.json`` from every dataset's manifest; returns True if it changed (its
    ``datasets`` differ from the stored catalog's, ``generated_at`` aside)."""
    known = list(registry)
    manifests = _map(lambda ds: read_manifest(store, settings, ds.name)[0], known)
    entries = tuple(catalog_entry(ds, m) for ds, m in zip(known, manifests, strict=True)
                    if m is not None)
    catalog = Catalog(generated_at=_iso(now), datasets=entries)
    body = catalog.to_json()
    datasets = json.dumps(body["datasets"], ensure_ascii=False, sort_keys=True, default=str)
    head = store.head(settings.published_bucket, CATALOG_KEY)
    if head is not None:
        current = json.loads(store.get(settings.published_bucket, CATALOG_KEY))
        if json.dumps(current.get("datasets"), ensure_ascii=False, sort_keys=True) == datasets:
            return False
    store.put(
        settings.published_bucket,
        CATALOG_KEY,
        json.dumps(body, ensure_ascii=False, indent=1, default=str).encode("utf-8"),
        JSON_MIME,
        cache_control=REVALIDATE,
    )
    return True
