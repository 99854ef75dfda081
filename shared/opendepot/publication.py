"""Publication of a dataset: staged uploads in, an immutable version and a manifest switch out.

``publish_dataset`` is idempotent and crash-safe (see docs/design.md, "Manifest"):

1. gather the dataset's upload index (``opendepot.upload_index``: its inbox taken in, in
   memory; a version switched to but not yet folded is folded) and plan the build
   (``opendepot.incremental``: each snapshot producer's newest upload; ``append`` uploads
   added to the previous version's table, or every upload in a full build);
2. if no pending upload is new and the fed versions are the same, nothing new is written (only
   the ``latest/`` and Parquet prefix copies and ``catalog.json`` are repaired if a crash left
   them behind);
3. otherwise download the staged Parquet files to a temporary directory, consolidate, roll up,
   render CSV and Parquet per level to temporary files, write the pending marker
   ``pending/{dataset}/{version}.json`` (``opendepot.pending``: the keys about to be written)
   and upload them under ``{dataset}/{version}/`` with ``If-None-Match`` (immutable), then
   ``datapackage.json``;
4. switch ``{dataset}/manifest.json`` with ``If-Match`` on the ETag read in step 2: the one
   atomic step readers see. A crash before it leaves the previous version published, and the
   version files it wrote are deleted by the next switch's sweep (step 5). The manifest keeps
   its newest versions inline, the older move to immutable pages written just before the
   switch (``opendepot.version_pages``): its size does not grow with the history;
5. copy the files to ``{dataset}/latest/``, each level's Parquet file to its Parquet prefix
   ``{dataset}/parquet/{level}/`` (``layout.parquet_key``), put the dataset's entry in
   ``catalog.json`` (``catalog.update_catalog``: ``If-Match``, retried from fresh state), and
   sweep the pending markers (``pending.sweep``: this version's marker is deleted, the files of
   versions that can never be switched to are deleted). The repair run of step 2 does the same.
   Right after the switch the version's uploads are folded into the upload index, its one
   write in the publication (then the inbox records taken in are deleted; staged copies
   no version can need again expire; a version that drops published values is noted in its
   uploads' reports: ``opendepot.version_notes``).

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

import json
import logging
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from opendepot import (
    athena,
    changes,
    concurrency,
    failures,
    feeds,
    incremental,
    layout,
    pending,
    upload_index,
    version_notes,
)
from opendepot.catalog import catalog_entry, rebuild_catalog, update_catalog
from opendepot.config import Settings
from opendepot.contracts import (
    Coverage,
    FedUpload,
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
from opendepot.render import RenderedFile, datapackage, level_schema
from opendepot.storage import PreconditionFailed, StorageError, Store, etags_of
from opendepot.version_pages import page_bytes, page_key, page_out

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
    full_build_reason: str | None = None
    """Why the new version was built from every upload (``incremental.Build.reason``); None
    when it was built from the previous version's table and the new uploads, or none was
    built."""


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
        if head is None or head.etag not in etags_of(body):  # MD5, or S3Store's multipart ETag
            raise


def _each(call: Callable[[T], object], items: Sequence[T], size: Callable[[T], int]) -> None:
    """``concurrency.each`` with ``STORAGE_THREADS`` and ``STORAGE_BYTES``."""
    concurrency.each(call, items, size, threads=STORAGE_THREADS, budget=STORAGE_BYTES)


def _map(call: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``concurrency.map_ordered`` with ``STORAGE_THREADS`` (small reads: manifests, records)."""
    return concurrency.map_ordered(call, items, threads=STORAGE_THREADS)


def _iso(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


PREVIOUS_PARQUET = "previous.parquet"
"""Local name of the previous version's producer-level Parquet file in a publication's work
directory."""
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


staged_records = upload_index.legacy_records
"""Every upload record under ``staging/{dataset}/`` (``upload_index.legacy_records``): read once
for a dataset without an upload index, and by tools that audit the staging area."""


def _fold(
    store: Store, settings: Settings, dataset: Dataset, gathered: upload_index.Gathered,
    manifest: Manifest,
) -> upload_index.Gathered:
    """Fold into the gathered index the pending uploads ``manifest``'s version was made of (its
    page and changed shards of folded keys first, then ``upload_index.settle``: what the
    previous fold found no version can need again deleted, the index switched with
    ``If-Match``, the inbox records taken in deleted; this fold's expired are written in the
    index, for the next one). Returns what a further fold starts from.

    Raises: PreconditionFailed (the index changed meanwhile: the retry folds again)."""
    index = gathered.index
    folded = upload_index.fold(index, dataset, manifest.version, manifest.upload_ids)
    bootstrap = index.published_version is None  # the whole history of a dataset new to indexes
    for key, body in folded.writes:  # its page, the shards of folded keys it changed
        put_immutable(store, settings.internal_bucket, key, body, JSON_MIME)
    # what the fold before this one expired is deleted first (``expire``), then the switch
    settled = upload_index.settle(store, settings, folded.index, gathered)
    entry = next((v for v in manifest.versions if v.version == manifest.version), None)
    version_notes.note_in_reports(store, settings, () if bootstrap else folded.taken,
                                  entry.changes.path if entry and entry.changes else None)
    return settled


def _fed_ids(uploads: Sequence[ManifestUpload]) -> set[str]:
    return {u.upload_id for u in uploads if isinstance(u, FedUpload)}


def _base(store: Store, settings: Settings, base: incremental.Base, work: Path) -> Upload:
    """The previous version's producer-level table, downloaded to ``work/previous.parquet``
    (which the comparison of the versions reads too), minus ``base``'s dropped rows."""
    previous = work / PREVIOUS_PARQUET
    with previous.open("wb") as f:
        store.get_file(settings.published_bucket, base.path, f)
    return incremental.base_upload(previous, base, work / "base.parquet")


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
    rollups = dataset.geography.rollups
    schemas = {lv: level_schema(s, dataset.schema, published_key(dataset, lv),
                                summed=dataset.measures if lv in rollups else ())
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
    gathered = upload_index.gather(store, settings, dataset.name)
    index = gathered.index
    manifest, etag = read_manifest(store, settings, dataset.name)
    if index.empty:
        version = manifest.version if manifest is not None else None
        return PublishOutcome(dataset.name, version, False, {}, ())
    if manifest is not None and index.published_version != manifest.version:
        # switched to but not folded (a crash between the two), or a dataset new to indexes
        gathered = _fold(store, settings, dataset, gathered, manifest)
        index = gathered.index
    # Declared feeds (registry ``feeds``, see opendepot.feeds): rows of other datasets' current
    # published versions join this publication, and those versions join its identity, so a
    # new version of a fed dataset makes a new publication. No feeds: nothing changes.
    fed = feeds.resolve(store, settings.published_bucket, dataset)
    build = incremental.plan_build(store, settings, dataset, index, manifest)
    same_feeds = manifest is not None and _fed_ids(manifest.uploads) == _fed_ids(fed.records)
    if manifest is not None and not build.brought and same_feeds:
        if index.pending:  # only uploads older than the ones published: nothing new
            _fold(store, settings, dataset, gathered, manifest)
        _settle(store, settings, registry, dataset, manifest, etag, now)
        return PublishOutcome(dataset.name, manifest.version, False, dict(manifest.rows),
                              manifest.upload_ids)
    brought: list[ManifestUpload] = [*build.brought, *fed.records]
    ids = tuple(r.upload_id for r in brought)
    version = next_version(now, manifest)
    log.info("publication planned", extra={
        "dataset": dataset.name, "version": version, "uploads_read": len(build.records),
        "incremental": build.base is not None, "full_build_reason": build.reason or None})
    with tempfile.TemporaryDirectory(prefix="opendepot-publish-") as tmp:
        work = Path(tmp)
        uploads = _download(store, settings, build.records, work)
        if build.base is not None:
            uploads.insert(0, _base(store, settings, build.base, work))
        out = _render(dataset, uploads, fed, cog, work, tuning)
        release_memory()  # the tables are gone: their pages are not kept beside the uploads
        marker = pending.mark(store, settings, dataset.name, version, etag,
                              [f.name for f in out.files], now)
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
    new = _page_out(store, settings, _manifest(dataset, version, now, brought, out, manifest,
        recorded, count=build.count + len(fed.records), left_out=build.rows_left_out))
    switched = _switch(store, settings, new, etag, marker)
    _fold(store, settings, dataset, gathered, new)
    _settle(store, settings, registry, dataset, new, switched, now)
    return PublishOutcome(dataset.name, version, True, dict(new.rows), ids,
                          None if diff is None else diff.headline(), build.reason or None)


def _switch(
    store: Store, settings: Settings, new: Manifest, etag: str | None, marker: pending.Marker,
) -> str:
    """Switch the manifest to ``new`` with ``If-Match`` ``etag`` (``If-None-Match`` for a first
    version); returns its new ETag. A lost race deletes the version's own files
    (``pending.abandon``) before ``PreconditionFailed`` propagates (the queue retries).

    Raises: PreconditionFailed."""
    # compact: Python's C encoder (an indented dump takes its pure-Python path, ~10x slower)
    body = json.dumps(new.to_json(), ensure_ascii=False, separators=(",", ":"),
                      default=str).encode("utf-8")
    try:
        return store.put(settings.published_bucket, layout.manifest_key(new.dataset), body,
                         JSON_MIME, if_match=etag, if_none_match=etag is None,
                         cache_control=REVALIDATE)
    except PreconditionFailed:
        pending.abandon(store, settings, marker)
        raise


def _settle(
    store: Store, settings: Settings, registry: Registry, dataset: Dataset, manifest: Manifest,
    etag: str | None, now: datetime,
) -> None:
    """After a run that leaves ``manifest`` (of ETag ``etag``) published: refresh ``latest/``
    and the Parquet prefixes, put the dataset's entry in ``catalog.json``
    (``catalog.update_catalog``), then sweep the dataset's pending markers (``pending.sweep``:
    this version's is deleted, and the files of versions that can never be switched to)."""
    _refresh_latest(store, settings, manifest)
    update_catalog(store, settings, registry, dataset, manifest, now)
    pending.sweep(store, settings, dataset.name, manifest, etag)


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
    old_path, csv_path = work / PREVIOUS_PARQUET, work / layout.CHANGES_CSV_NAME
    if not old_path.exists():  # else read already as the base of an incremental build
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
    *,
    count: int,
    left_out: int,
) -> Manifest:
    """The manifest of a new ``version`` that brought ``uploads`` (then its fed versions) and is
    made of ``count`` uploads in all, with ``left_out`` rows left out; the previous versions
    follow."""
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
        upload_count=count,
    )
    coverage = out.coverage
    return Manifest(
        dataset=dataset.name,
        version=version,
        published_at=_iso(now),
        created_at=previous.created_at if previous is not None else _iso(now),
        uploads=tuple(uploads),
        rows=out.rows,
        rows_left_out=left_out,
        temporal_coverage=None if coverage is None else Coverage.from_json(coverage),
        resources=resources,
        datapackage_path=layout.datapackage_key(dataset.name, version),
        schema=out.schemas[dataset.geography.level],
        schemas=out.schemas,
        versions=(entry, *(previous.versions if previous is not None else ())),
        version_pages=previous.version_pages if previous is not None else (),
    )


def _page_out(store: Store, settings: Settings, manifest: Manifest) -> Manifest:
    """``version_pages.page_out``: ``manifest`` with its oldest versions moved to pages, each
    written (immutable) before the manifest that names them is switched."""
    paged, pages = page_out(manifest)
    for page in pages:
        put_immutable(store, settings.published_bucket, page_key(page), page_bytes(page),
                      JSON_MIME)
    return paged


def _refresh_latest(store: Store, settings: Settings, manifest: Manifest) -> None:
    """Make ``latest/`` hold the manifest's files, and each level's Parquet prefix
    (``layout.parquet_key``: one object of a fixed name, overwritten by one copy, so a reader
    listing the prefix sees the old table or the new, never both) its Parquet file. Copies only
    what differs. Then the version's symlink files of the Athena tables (``athena.symlinks``).
    """
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
    for key, body in athena.symlinks(bucket, manifest):  # the version in the Athena tables
        put_immutable(store, bucket, key, body, athena.SYMLINK_MIME)

