"""What a publication reads: the uploads it is made of, and when it may start from the previous
version's table instead of every upload ever accepted.

``plan_build`` decides from the upload index (``opendepot.upload_index``) alone (see
docs/design.md, "Upload index"):

- ``snapshot`` producers: their newest upload only (pending, else folded);
- ``append`` producers, **incremental**: the previous version's producer-level Parquet file
  (``base``) then the pending uploads, when that gives the same table as a rebuild from every
  upload: the dataset declares ``provenance`` (rows carry their producer and upload id), the
  index was folded into the current manifest's version, no pending upload rewrites a key already
  folded, and none arrives before a folded upload of its producer (each producer's rows then
  still win in the same order). From the base are dropped the rows of the fed versions (fed
  again) and of every ``snapshot`` producer that sent a new upload (its new upload is its whole
  history). Consolidation (``partitions.consolidate_part``) then keeps the newest row of each key
  exactly as a rebuild does;
- otherwise a **full** build: the snapshot uploads, every folded ``append`` record still current
  (``upload_index.folded_records``: the pages, and every shard of the folded keys) and the
  pending ones.

``tests/test_incremental.py`` publishes the real chiffres-cles uploads both ways and compares the
published tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from opendepot.config import Settings
from opendepot.consolidate import current_versions, select_uploads, upload_order
from opendepot.contracts import Manifest, UploadRecord
from opendepot.partitions import Upload
from opendepot.registry import Dataset
from opendepot.storage import Store
from opendepot.upload_index import UploadIndex, folded_records

BATCH_ROWS = 131_072
"""Rows per batch when the base is filtered (memory bound)."""


@dataclass(frozen=True)
class Base:
    """The previous version's producer-level Parquet file, minus the rows to be replaced."""

    path: str
    """Its key in the published bucket."""
    drop_producers: frozenset[str]
    """Producers whose rows are dropped (snapshot producers with a new upload)."""
    drop_upload_ids: frozenset[str]
    """Upload ids whose rows are dropped (the previous fed versions)."""


@dataclass(frozen=True)
class Build:
    """What one publication reads."""

    records: tuple[UploadRecord, ...]
    """Uploads whose staged Parquet is read, oldest first (``consolidate.upload_order``)."""
    brought: tuple[UploadRecord, ...]
    """The pending uploads the version brings (a subset of ``records``), oldest first."""
    count: int
    """Uploads the version is made of (brought or not)."""
    rows_left_out: int
    """Rows left out of those uploads within their error budget."""
    base: Base | None
    """Start from the previous version's table (None: a full build)."""
    reason: str
    """Why a full build (empty for an incremental one)."""


def _parquet_of(manifest: Manifest, level: str) -> str | None:
    return next((r.path for r in manifest.resources
                 if r.level == level and r.format == "parquet"), None)


def _full_reason(
    dataset: Dataset, index: UploadIndex, manifest: Manifest | None, pending: Sequence[UploadRecord]
) -> str:
    """Why the pending ``append`` uploads cannot be added to the previous table ('' if they
    can)."""
    if not index.folded_count:
        return "no append upload folded yet"
    if manifest is None or index.published_version != manifest.version:
        return "the index is not folded into the current version"
    if not dataset.provenance:
        return "rows do not carry their upload (no provenance)"
    if _parquet_of(manifest, dataset.geography.level) is None:
        return "the current version has no producer-level Parquet file"
    newest = index.newest_folded
    for r in pending:
        seen = index.folded(r.key)
        if seen is not None and seen.upload_id != r.upload_id:
            return f"{r.key} rewritten after it was published"
        if r.producer in newest and upload_order(r) < newest[r.producer]:
            return f"an upload of {r.producer} arrived after a newer one was published"
    return ""


def plan_build(
    store: Store, settings: Settings, dataset: Dataset, index: UploadIndex,
    manifest: Manifest | None,
) -> Build:
    """The uploads a new version of ``dataset`` is made of (see module docstring); reads the
    folded pages only for a full build of a dataset with ``append`` producers.

    Raises: ContractError (a page that does not parse), StorageError."""
    pending = current_versions(index.pending)
    snap = [r for r in pending if dataset.mode_of(r.producer) == "snapshot"]
    appended = [r for r in pending if dataset.mode_of(r.producer) != "snapshot"]
    snapshots = select_uploads(dataset, [*index.snapshot.values(), *snap])
    brought = [r for r in snapshots if r.upload_id in {p.upload_id for p in snap}]
    left_out = sum(r.rows_left_out for r in snapshots) + index.folded_rows_left_out
    count = len(snapshots) + index.folded_count
    reason = _full_reason(dataset, index, manifest, appended) \
        if appended or index.folded_count else "no append producer"
    if not reason and manifest is not None:
        new_snap = {r.producer for r in brought}
        previous_fed = {u.upload_id for u in manifest.uploads if "@" in u.upload_id}
        base = Base(str(_parquet_of(manifest, dataset.geography.level)), frozenset(new_snap),
                    frozenset(previous_fed))
        records = tuple(sorted([*brought, *appended], key=upload_order))
        return Build(records, records, count + len(appended),
                     left_out + sum(r.rows_left_out for r in appended), base, "")
    folded = folded_records(store, settings, index) if index.folded_count else []
    chosen = select_uploads(dataset, [*snapshots, *folded, *appended])
    fresh = {r.upload_id for r in pending}
    return Build(tuple(chosen), tuple(r for r in chosen if r.upload_id in fresh),
                 len(chosen), sum(r.rows_left_out for r in chosen), None,
                 reason or "full build")


def base_upload(previous: Path, base: Base, out: Path) -> Upload:
    """The previous version's producer-level table (the local Parquet file ``previous``) minus
    ``base``'s dropped rows, written to ``out`` in batches: the oldest upload of an incremental
    build, its rows already tagged with their producer and upload id. With no row to drop (no
    fed version, no snapshot producer with a new upload: the usual ``append`` day), it is
    ``previous`` itself, not copied."""
    if not base.drop_producers and not base.drop_upload_ids:
        return Upload(previous, "", "", tagged=True)
    source = pq.ParquetFile(previous)
    writer: pq.ParquetWriter | None = None
    try:
        writer = pq.ParquetWriter(out, source.schema_arrow, compression="zstd")
        for batch in source.iter_batches(batch_size=BATCH_ROWS, use_threads=False):
            keep = pc.invert(pc.or_(
                pc.is_in(batch.column("producer"), pa.array(sorted(base.drop_producers),
                                                            pa.string())),
                pc.is_in(batch.column("upload_id"), pa.array(sorted(base.drop_upload_ids),
                                                             pa.string()))))
            writer.write_table(pa.Table.from_batches([batch]).filter(pc.fill_null(keep, True)))
    finally:
        source.close()
        if writer is not None:
            writer.close()
    return Upload(out, "", "", tagged=True)

