"""A dataset's upload index: what its next publication is made of, in one object.

Publication cost must not grow with a dataset's age (issue 14). Listing and reading every upload
record ever staged did; this index replaces it (see docs/design.md, "Upload index"):

- ``ingest`` stages an accepted upload (its Parquet and its record under ``staging/``) and then
  drops a copy of the record in the dataset's inbox, ``inbox/{dataset}/{upload_id}.json``
  (``stage``). The inbox holds only the uploads no publication has taken in yet.
- each publication ``gather``-s: it reads ``index/{dataset}.json`` and merges the inbox's records
  into its ``pending`` list, in memory. The index is written once per publication, folded
  (``settle``: ``If-Match``, the one switch of this object; a lost race raises
  ``PreconditionFailed``, and the queue retries from fresh state), and only then are the inbox
  records it took in deleted. A crash before re-merges them: merging is idempotent (by upload
  id).
- once a version made of the pending uploads is switched to, ``fold`` moves them out of
  ``pending``: each ``snapshot`` producer's newest upload into ``snapshot``; ``append`` uploads
  into the folded keys (incoming key -> its current write), kept in immutable shards by key
  hash (``opendepot.index_shards``: the index names them, a publication reads and writes only
  the shards its pending uploads' keys fall in), with their records in one immutable page per
  version, ``index/{dataset}/folded/{version}.json``, listed and read only for a full rebuild.
  ``fold`` returns the uploads no version can need again (older snapshot uploads, older writes of
  a key): their staged keys are written in the index (``expiring``) and deleted by the next
  publication, just before its switch (``expire``, in ``settle``: until then the index still
  names them, so a crash loses no deletion); the original uploads stay in the versioned
  incoming bucket.

Shapes: records are ``contracts.UploadRecord``; an upload's order is ``consolidate.upload_order``
(arrival time, S3 sequencer, id); the write order of one key is S3's sequencer first.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from opendepot import concurrency, index_shards, layout
from opendepot.config import Settings
from opendepot.consolidate import current_versions, upload_order, write_order
from opendepot.contracts import ContractError, UploadRecord
from opendepot.index_shards import FoldedKey, Shards
from opendepot.registry import Dataset
from opendepot.storage import Store

log = logging.getLogger(__name__)
JSON_MIME = "application/json"
THREADS = 4
"""Concurrent small reads (inbox records, folded pages)."""


def _triple(d: Any) -> tuple[str, str, str]:
    a, b, c = d
    return (str(a), str(b), str(c))


@dataclass(frozen=True)
class UploadIndex:
    """``index/{dataset}.json`` in the internal bucket (see module docstring)."""

    dataset: str
    published_version: str | None = None
    """The version the folded uploads were last published in (None: none yet)."""
    snapshot: Mapping[str, UploadRecord] = field(default_factory=dict)
    """Each ``snapshot`` producer's newest folded upload."""
    shards: Shards = field(default_factory=Shards)
    """Incoming key -> its current folded write, for ``append`` producers, in shards
    (``index_shards``; ``folded`` reads one key, once its shard is read: ``load``)."""
    newest_folded: Mapping[str, tuple[str, str, str]] = field(default_factory=dict)
    """Producer -> the ``upload_order`` of its newest folded ``append`` upload."""
    folded_rows_left_out: int = 0
    """Rows left out of the folded ``append`` uploads (their current writes)."""
    pending: tuple[UploadRecord, ...] = ()
    """Uploads taken in from the inbox and not yet in a published version, oldest first."""
    expiring: tuple[str, ...] = ()
    """Keys (internal bucket) the last fold found no version can need again: the staged copies
    of the uploads it expired, the shards it replaced. Deleted by the next publication just
    before it switches the index (``settle``): until then this index names them, so a crash
    loses no deletion."""

    @property
    def empty(self) -> bool:
        """True when no upload was ever taken in."""
        return not (self.snapshot or self.shards.count or self.pending)

    @property
    def folded_count(self) -> int:
        """Incoming keys of ``append`` producers folded (each counts its current write)."""
        return self.shards.count

    def folded(self, key: str) -> FoldedKey | None:
        """The current folded write of the incoming ``key`` (None: none).

        Raises: ShardNotLoaded (its shard was not read: ``load``), ContractError (an entry
        that does not parse)."""
        return self.shards.get(key)

    def is_folded(self, record: UploadRecord) -> bool:
        """Whether ``record`` is the current folded write of its key. Raises: ShardNotLoaded."""
        entry = self.shards.entry(record.key)
        return entry is not None and str(entry[0]) == record.upload_id

    def to_json(self) -> dict[str, Any]:
        """The stored JSON object."""
        return {
            "dataset": self.dataset, "published_version": self.published_version,
            "snapshot": {p: r.to_json() for p, r in sorted(self.snapshot.items())},
            "folded": self.shards.to_json(),
            "newest_folded": {p: list(o) for p, o in sorted(self.newest_folded.items())},
            "folded_rows_left_out": self.folded_rows_left_out,
            "pending": [r.to_json() for r in self.pending],
            "expiring": list(self.expiring),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> UploadIndex:
        """Raises: ContractError."""
        try:
            return cls(
                dataset=str(d["dataset"]), published_version=d.get("published_version"),
                snapshot={str(p): UploadRecord.from_json(r)
                          for p, r in dict(d.get("snapshot") or {}).items()},
                shards=Shards.from_json(d.get("folded"), d.get("folded_keys")),
                newest_folded={str(p): _triple(o)
                               for p, o in dict(d.get("newest_folded") or {}).items()},
                folded_rows_left_out=int(d.get("folded_rows_left_out") or 0),
                pending=tuple(UploadRecord.from_json(r) for r in d.get("pending") or ()),
                expiring=tuple(str(k) for k in d.get("expiring") or ()),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ContractError("UploadIndex", "?", str(exc)) from exc


# --- the inbox (written by ingest) ------------------------------------------------------------


def stage(store: Store, settings: Settings, record: UploadRecord) -> None:
    """Drop ``record`` in its dataset's inbox (after its staged Parquet and record are written):
    the next publication takes it in. Idempotent."""
    body = json.dumps(record.to_json(), ensure_ascii=False).encode("utf-8")
    store.put(settings.internal_bucket, layout.inbox_key(record.dataset, record.upload_id), body,
              JSON_MIME)


def inbox(store: Store, settings: Settings, dataset: str) -> list[tuple[str, UploadRecord]]:
    """(key, record) of each upload in the dataset's inbox. Raises: ContractError."""
    keys = [o.key for o in store.list(settings.internal_bucket, layout.inbox_prefix(dataset))]
    return concurrency.map_ordered(lambda k: (k, UploadRecord.from_json(
        json.loads(store.get(settings.internal_bucket, k)))), keys, threads=THREADS)


def legacy_records(store: Store, settings: Settings, dataset: str) -> list[UploadRecord]:
    """Every upload record under ``staging/{dataset}/``, in key order: read once, for a dataset
    whose uploads were staged before it had an index (then never again).

    Raises: ContractError (a record that does not fit ``contracts.UploadRecord``)."""
    keys = [o.key for o in store.list(settings.internal_bucket, layout.staging_prefix(dataset))
            if layout.is_staged_record(o.key)]
    return concurrency.map_ordered(lambda key: UploadRecord.from_json(
        json.loads(store.get(settings.internal_bucket, key))), keys, threads=THREADS)


def newest(store: Store, settings: Settings, dataset: str, producer: str) -> UploadRecord | None:
    """The producer's newest upload staged for ``dataset`` (in its index or its inbox; a
    dataset without an index yet: among its staged records), None when it has none. Reads the
    index and the inbox, never every record.

    Raises: ContractError."""
    # the inbox first: a record only ever moves from the inbox to the index, so one taken in
    # meanwhile is found in the index read after
    known = [r for _, r in inbox(store, settings, dataset) if r.producer == producer]
    index, _ = read(store, settings, dataset)
    if index is None:
        known += [r for r in legacy_records(store, settings, dataset) if r.producer == producer]
    else:
        known += [r for r in index.pending if r.producer == producer]
        known += [index.snapshot[producer]] if producer in index.snapshot else []
    return max(current_versions(known), key=upload_order, default=None)


# --- reading and switching the index ----------------------------------------------------------


def read(store: Store, settings: Settings, dataset: str) -> tuple[UploadIndex | None, str | None]:
    """The dataset's index and its ETag; (None, None) when it has none yet.

    Raises: ContractError (an index that does not parse)."""
    key = layout.upload_index_key(dataset)
    head = store.head(settings.internal_bucket, key)
    if head is None:
        return None, None
    body = store.get(settings.internal_bucket, key)
    return UploadIndex.from_json(json.loads(body)), head.etag


def write(store: Store, settings: Settings, index: UploadIndex, etag: str | None) -> str:
    """Switch the index: ``If-Match`` ``etag`` (``If-None-Match`` when it had none); returns
    its new ETag.

    Raises: PreconditionFailed (another publication switched it first: retry)."""
    body = json.dumps(index.to_json(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return store.put(settings.internal_bucket, layout.upload_index_key(index.dataset), body,
                     JSON_MIME, if_match=etag, if_none_match=etag is None)


def take_in(index: UploadIndex, records: Iterable[UploadRecord]) -> UploadIndex:
    """``index`` with ``records`` added to ``pending`` (an upload already known is not added
    twice; ``pending`` stays oldest first). The shards of the records' keys must be read
    (``load``).

    Raises: ShardNotLoaded."""
    known = {r.upload_id for r in index.pending}
    known |= {r.upload_id for r in index.snapshot.values()}
    new = []
    for r in records:
        if r.upload_id not in known and not index.is_folded(r):
            known.add(r.upload_id)
            new.append(r)
    if not new:
        return index
    return replace(index, pending=tuple(sorted((*index.pending, *new), key=upload_order)))


@dataclass(frozen=True)
class Gathered:
    """``gather``'s result: the index with the inbox taken in, not written yet."""

    index: UploadIndex
    etag: str | None
    """The ETag of the index as read (None: the dataset has none yet)."""
    inbox_keys: tuple[str, ...] = ()
    """Inbox records taken in, to delete once an index holding them is written (``settle``)."""


def gather(store: Store, settings: Settings, dataset: str) -> Gathered:
    """The dataset's index with its inbox taken in, in memory: the publication writes it once,
    folded (``settle``), and only then deletes the inbox records it took in; a crash before
    leaves them in the inbox, and taking them in again is idempotent (by upload id). Inbox
    records that were already known are deleted at once. A dataset without an index yet starts
    it from the upload records staged before indexes existed (``legacy_records``: listed once,
    then never again).

    Raises: ContractError."""
    index, etag = read(store, settings, dataset)
    legacy = legacy_records(store, settings, dataset) if index is None else []
    arrived = inbox(store, settings, dataset)
    records = [*legacy, *(r for _, r in arrived)]
    start = index if index is not None else UploadIndex(dataset)
    start = load(store, settings, start, [*start.pending, *records])
    merged = take_in(start, records)
    keys = tuple(k for k, _ in arrived)
    if merged is start and index is not None:  # nothing new: the inbox held copies only
        _delete(store, settings, keys)
        keys = ()
    return Gathered(merged, etag, keys)


def settle(store: Store, settings: Settings, index: UploadIndex, gathered: Gathered) -> Gathered:
    """Delete what the gathered index's ``expiring`` names (``expire``: staged copies and
    shards a fold before found no version can need, since that index was switched to), then
    switch the index to ``index`` (``If-Match`` the gathered ETag), then delete the inbox records
    ``gathered`` took in (all are in ``index``, folded or pending); returns what a further
    ``settle`` starts from. Deleting before the switch loses nothing to a crash: until the
    switch, the gathered index still names them, and the retry deletes them again; after it,
    ``index`` names only its own fold's.

    Raises: PreconditionFailed (another publication switched it first: retry)."""
    expire(store, settings, gathered.index, keep=index)
    etag = write(store, settings, index, gathered.etag)
    _delete(store, settings, gathered.inbox_keys)
    return Gathered(index, etag)


def load(store: Store, settings: Settings, index: UploadIndex,
         records: Iterable[UploadRecord] | None = None) -> UploadIndex:
    """``index`` with the shards of its folded keys that ``records``' keys fall in read (None:
    every shard, for a full rebuild): the one or few a publication needs, whatever the
    history (``index_shards.load``).

    Raises: ContractError, StorageError."""
    keys = None if records is None else [r.key for r in records]
    shards = index_shards.load(store, settings, index.dataset, index.shards, keys)
    return index if shards is index.shards else replace(index, shards=shards)


def _delete(store: Store, settings: Settings, keys: Sequence[str]) -> None:
    concurrency.map_ordered(lambda k: store.delete(settings.internal_bucket, k), list(keys),
                            threads=THREADS)


def folded_records(store: Store, settings: Settings, index: UploadIndex) -> list[UploadRecord]:
    """Every folded ``append`` record still current, for a full rebuild: the pages listed
    under ``index/{dataset}/folded/`` and read, every shard read (which says which write of
    each key is current; a page of a fold whose switch was lost holds only records that are
    not current, or are folded again under the same key). Reads grow with the history: only a
    full build does this.

    Raises: ContractError, StorageError."""
    prefix = layout.folded_pages_prefix(index.dataset)
    keys = sorted(o.key for o in store.list(settings.internal_bucket, prefix))
    pages = concurrency.map_ordered(lambda k: json.loads(store.get(settings.internal_bucket, k)),
                                    keys, threads=THREADS)
    shards = load(store, settings, index).shards
    current = {str(e[0]) for p in shards.leaves for e in shards.leaf_entries(p).values()}
    out: dict[str, UploadRecord] = {}
    for page in pages:
        for d in page["records"]:
            r = UploadRecord.from_json(d)
            if r.upload_id in current:
                out.setdefault(r.upload_id, r)
    return sorted(out.values(), key=upload_order)


# --- folding a published version in -----------------------------------------------------------


@dataclass(frozen=True)
class Folded:
    """``fold``'s result: the new index and what no version can need again."""

    index: UploadIndex
    page: tuple[str, bytes] | None
    """(key, body) of the page of ``append`` records folded (None: none); written before the
    index switch."""
    expired: tuple[UploadRecord, ...]
    """Uploads whose staged copies may go: older snapshot uploads, older writes of a key. Their
    keys are the new index's ``expiring``: the next publication deletes them."""
    taken: tuple[UploadRecord, ...] = ()
    """The pending uploads folded (those the version brought), oldest first."""
    shards: tuple[tuple[str, bytes], ...] = ()
    """(key, body) of each shard of folded keys the fold changed (``index_shards``), written
    before the index switch (immutable: a retry writes the same bytes under the same key)."""

    @property
    def writes(self) -> tuple[tuple[str, bytes], ...]:
        """(key, body) of every immutable object to write before the index switch (internal
        bucket): the page, then the shards."""
        return ((self.page,) if self.page is not None else ()) + self.shards


def fold(index: UploadIndex, dataset: Dataset, version: str, brought: Sequence[str]) -> Folded:
    """Fold the pending uploads of ids ``brought`` (those ``version`` brought) into the
    index, ``published_version`` = ``version``; the other pending uploads that a folded one
    supersedes (an older snapshot upload, an older write of a key) expire with them, and so
    do the shards of folded keys the fold rewrites. The shards of the pending uploads' keys must
    be read (``load``). Pure.

    Raises: ShardNotLoaded."""
    ids = set(brought)
    taken = [r for r in index.pending if r.upload_id in ids]
    snapshot = dict(index.snapshot)
    changed: dict[str, index_shards.Entry] = {}

    def seen_of(key: str) -> FoldedKey | None:
        entry = changed[key] if key in changed else index.shards.entry(key)
        return None if entry is None else FoldedKey.from_json(entry)

    newest = dict(index.newest_folded)
    expired: list[UploadRecord] = []
    appended: list[UploadRecord] = []
    left_out = index.folded_rows_left_out
    for r in sorted(taken, key=upload_order):
        if dataset.mode_of(r.producer) == "snapshot":
            old = snapshot.get(r.producer)
            if old is None or upload_order(r) > upload_order(old):
                snapshot[r.producer] = r
                expired += [old] if old is not None else []
            else:
                expired.append(r)
            continue
        seen = seen_of(r.key)
        if seen is not None and seen.write > write_order(r):
            expired.append(r)  # an older write of a key arriving late: never current
            continue
        if seen is not None and seen.upload_id != r.upload_id:
            expired.append(_stub(r, seen))
            left_out -= seen.rows_left_out  # its rows are no longer in the version
        changed[r.key] = FoldedKey(r.upload_id, r.producer, upload_order(r), write_order(r),
                                r.rows_left_out).to_json()
        newest[r.producer] = max(newest.get(r.producer, upload_order(r)), upload_order(r))
        appended.append(r)
        left_out += r.rows_left_out
    rest: list[UploadRecord] = []
    for r in (r for r in index.pending if r.upload_id not in ids):  # superseded: expired
        if dataset.mode_of(r.producer) == "snapshot":
            old = snapshot.get(r.producer)
            stale = old is not None and upload_order(r) < upload_order(old)
        else:
            seen = seen_of(r.key)
            stale = seen is not None and seen.write > write_order(r)
        (expired if stale else rest).append(r)
    page = None
    if appended:
        key = layout.folded_page_key(dataset.name, version)
        body = {"dataset": dataset.name, "version": version,
                "records": [r.to_json() for r in appended]}
        page = (key, json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    shards, writes, gone = index.shards.updated(dataset.name, changed)
    new = replace(index, published_version=version, snapshot=snapshot, shards=shards,
                  newest_folded=newest, folded_rows_left_out=left_out,
                  pending=tuple(rest), expiring=(*staged_keys(expired), *gone))
    return Folded(new, page, tuple(expired), tuple(sorted(taken, key=upload_order)), writes)


def _stub(record: UploadRecord, seen: FoldedKey) -> UploadRecord:
    """The superseded folded write of ``record``'s key (only its ids and keys are used)."""
    return replace(record, upload_id=seen.upload_id, producer=seen.producer,
                   staged_key=layout.staged_parquet_key(record.dataset, seen.producer,
                                                        seen.upload_id))


def staged_keys(records: Sequence[UploadRecord]) -> tuple[str, ...]:
    """The staged copies (Parquet and record, internal bucket) of ``records``."""
    return tuple(k for r in records for k in (
        r.staged_key, layout.staged_record_key(r.dataset, r.producer, r.upload_id)))


def expire(store: Store, settings: Settings, index: UploadIndex,
           keep: UploadIndex | None = None) -> None:
    """Delete the staged copies and shards ``index.expiring`` names: what a fold before this
    index's switch found no version can need again (``settle`` calls it with the index it
    gathered, before switching to the next: its own fold's are deleted by the next
    publication, once written down); deleting twice is harmless. A shard ``keep`` (the index
    about to be switched to) names is kept. Their reports stay, and so do the original uploads
    (the incoming bucket is versioned)."""
    named = set() if keep is None else {
        layout.folded_shard_key(keep.dataset, p, d) for p, d in keep.shards.leaves.items() if d}
    keys = [k for k in index.expiring if k not in named]
    _delete(store, settings, keys)
    if keys:
        log.info("staged copies expired", extra={"keys": len(keys)})
