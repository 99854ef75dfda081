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
  into ``folded_keys`` (incoming key -> its current write) with their records in one immutable
  page per version, ``index/{dataset}/folded/{version}.json``, read only for a full rebuild.
  ``fold`` returns the uploads no version can need again (older snapshot uploads, older writes of
  a key): their staged keys are written in the index (``expiring``) and deleted by the next
  publication, after the switch (``expire``); the original uploads stay in the versioned
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

from opendepot import concurrency, layout
from opendepot.config import Settings
from opendepot.consolidate import current_versions, upload_order, write_order
from opendepot.contracts import ContractError, UploadRecord
from opendepot.keys import sequencer_key
from opendepot.registry import Dataset
from opendepot.storage import Store

log = logging.getLogger(__name__)
JSON_MIME = "application/json"
THREADS = 4
"""Concurrent small reads (inbox records, folded pages)."""


@dataclass(frozen=True)
class FoldedKey:
    """The current write of one incoming key of an ``append`` producer, folded into a version."""

    upload_id: str
    producer: str
    order: tuple[str, str, str]
    """Its ``upload_order``."""
    write: tuple[str, str, str]
    """Its write order (``consolidate.write_order``)."""
    rows_left_out: int = 0
    """Rows left out of it within the error budget."""

    def to_json(self) -> list[Any]:
        """``[upload_id, producer, received_at, sequencer, rows_left_out]`` (the orders are
        made of these three: stored once, the index stays small)."""
        received_at, sequencer, _ = self.order
        return [self.upload_id, self.producer, received_at, sequencer.rstrip("0"),
                self.rows_left_out]

    @classmethod
    def from_json(cls, d: Any) -> FoldedKey:
        """Raises: ContractError."""
        try:
            upload_id, producer, received_at, sequencer, left_out = d
            seq = sequencer_key(str(sequencer))
            return cls(str(upload_id), str(producer), (str(received_at), seq, str(upload_id)),
                       (seq, str(received_at), str(upload_id)), int(left_out))
        except (TypeError, ValueError) as exc:
            raise ContractError("UploadIndex", "folded_keys", f"{d!r} is not an entry") from exc


def _entries(d: Any) -> dict[str, Any]:
    """``folded_keys`` as stored, its shape checked (a list of five per key), never parsed."""
    if not isinstance(d, dict) or not all(isinstance(v, list) and len(v) == 5
                                          for v in d.values()):
        raise ContractError("UploadIndex", "folded_keys", "not an object of entries")
    return {str(k): v for k, v in d.items()}


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
    folded_keys: Mapping[str, Any] = field(default_factory=dict)
    """Incoming key -> its current folded write, for ``append`` producers, as stored
    (``FoldedKey.to_json``; ``folded`` reads one): thousands of keys are never parsed whole."""
    newest_folded: Mapping[str, tuple[str, str, str]] = field(default_factory=dict)
    """Producer -> the ``upload_order`` of its newest folded ``append`` upload."""
    folded_pages: tuple[str, ...] = ()
    """Keys of the pages holding the folded ``append`` records, oldest first."""
    folded_rows_left_out: int = 0
    """Rows left out of the folded ``append`` uploads (their current writes)."""
    pending: tuple[UploadRecord, ...] = ()
    """Uploads taken in from the inbox and not yet in a published version, oldest first."""
    expiring: tuple[str, ...] = ()
    """Staged keys (internal bucket) of the uploads the last fold expired: deleted by the next
    publication, after this index is switched to (a crash in between loses no deletion)."""

    @property
    def empty(self) -> bool:
        """True when no upload was ever taken in."""
        return not (self.snapshot or self.folded_keys or self.pending)

    def folded(self, key: str) -> FoldedKey | None:
        """The current folded write of the incoming ``key`` (None: none).

        Raises: ContractError (an entry that does not parse)."""
        entry = self.folded_keys.get(key)
        return None if entry is None else FoldedKey.from_json(entry)

    def folded_ids(self) -> set[str]:
        """Upload ids of the current folded ``append`` writes."""
        return {str(entry[0]) for entry in self.folded_keys.values()}

    def to_json(self) -> dict[str, Any]:
        """The stored JSON object."""
        return {
            "dataset": self.dataset, "published_version": self.published_version,
            "snapshot": {p: r.to_json() for p, r in sorted(self.snapshot.items())},
            "folded_keys": dict(self.folded_keys),
            "newest_folded": {p: list(o) for p, o in sorted(self.newest_folded.items())},
            "folded_pages": list(self.folded_pages),
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
                folded_keys=_entries(d.get("folded_keys") or {}),
                newest_folded={str(p): _triple(o)
                               for p, o in dict(d.get("newest_folded") or {}).items()},
                folded_pages=tuple(str(k) for k in d.get("folded_pages") or ()),
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
    twice; ``pending`` stays oldest first)."""
    known = {r.upload_id for r in index.pending}
    known |= {r.upload_id for r in index.snapshot.values()}
    known |= index.folded_ids()
    new = []
    for r in records:
        if r.upload_id not in known:
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
    start = index if index is not None else UploadIndex(dataset)
    merged = take_in(start, [*legacy, *(r for _, r in arrived)])
    keys = tuple(k for k, _ in arrived)
    if merged is start and index is not None:  # nothing new: the inbox held copies only
        _delete(store, settings, keys)
        keys = ()
    return Gathered(merged, etag, keys)


def settle(store: Store, settings: Settings, index: UploadIndex, gathered: Gathered) -> Gathered:
    """Switch the index to ``index`` (``If-Match`` the gathered ETag), then delete the inbox
    records ``gathered`` took in (all are in ``index``, folded or pending); returns what a
    further ``settle`` starts from.

    Raises: PreconditionFailed (another publication switched it first: retry)."""
    etag = write(store, settings, index, gathered.etag)
    _delete(store, settings, gathered.inbox_keys)
    return Gathered(index, etag)


def _delete(store: Store, settings: Settings, keys: Sequence[str]) -> None:
    concurrency.map_ordered(lambda k: store.delete(settings.internal_bucket, k), list(keys),
                            threads=THREADS)


def folded_records(store: Store, settings: Settings, index: UploadIndex) -> list[UploadRecord]:
    """Every folded ``append`` record still current (the pages, read for a full rebuild).

    Raises: ContractError."""
    pages = concurrency.map_ordered(lambda k: json.loads(store.get(settings.internal_bucket, k)),
                                    list(index.folded_pages), threads=THREADS)
    current = index.folded_ids()
    return [r for page in pages for r in (UploadRecord.from_json(d) for d in page["records"])
            if r.upload_id in current]


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


def fold(index: UploadIndex, dataset: Dataset, version: str, brought: Sequence[str]) -> Folded:
    """Fold the pending uploads of ids ``brought`` (those ``version`` brought) into the
    index, ``published_version`` = ``version``; the other pending uploads that a folded one
    supersedes (an older snapshot upload, an older write of a key) expire with them."""
    ids = set(brought)
    taken = [r for r in index.pending if r.upload_id in ids]
    snapshot, keys = dict(index.snapshot), dict(index.folded_keys)
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
        seen = _parsed(keys.get(r.key))
        if seen is not None and seen.write > write_order(r):
            expired.append(r)  # an older write of a key arriving late: never current
            continue
        if seen is not None and seen.upload_id != r.upload_id:
            expired.append(_stub(r, seen))
            left_out -= seen.rows_left_out  # its rows are no longer in the version
        keys[r.key] = FoldedKey(r.upload_id, r.producer, upload_order(r), write_order(r),
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
            seen = _parsed(keys.get(r.key))
            stale = seen is not None and seen.write > write_order(r)
        (expired if stale else rest).append(r)
    page = None
    pages = index.folded_pages
    if appended:
        key = layout.folded_page_key(dataset.name, version)
        body = {"dataset": dataset.name, "version": version,
                "records": [r.to_json() for r in appended]}
        page = (key, json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
        pages = (*pages, key) if key not in pages else pages
    new = replace(index, published_version=version, snapshot=snapshot, folded_keys=keys,
                  newest_folded=newest, folded_pages=pages, folded_rows_left_out=left_out,
                  pending=tuple(rest), expiring=staged_keys(expired))
    return Folded(new, page, tuple(expired), tuple(sorted(taken, key=upload_order)))


def _parsed(entry: Any) -> FoldedKey | None:
    return None if entry is None else FoldedKey.from_json(entry)


def _stub(record: UploadRecord, seen: FoldedKey) -> UploadRecord:
    """The superseded folded write of ``record``'s key (only its ids and keys are used)."""
    return replace(record, upload_id=seen.upload_id, producer=seen.producer,
                   staged_key=layout.staged_parquet_key(record.dataset, seen.producer,
                                                        seen.upload_id))


def staged_keys(records: Sequence[UploadRecord]) -> tuple[str, ...]:
    """The staged copies (Parquet and record, internal bucket) of ``records``."""
    return tuple(k for r in records for k in (
        r.staged_key, layout.staged_record_key(r.dataset, r.producer, r.upload_id)))


def expire(store: Store, settings: Settings, index: UploadIndex) -> None:
    """Delete the staged copies ``index.expiring`` names: uploads a fold before this index's
    switch found no version can need again. Called with the index a publication gathered (its
    own fold's expired keys are deleted by the next publication, once they are written down);
    deleting twice is harmless. Their reports stay, and so do the original uploads (the
    incoming bucket is versioned)."""
    _delete(store, settings, index.expiring)
    if index.expiring:
        log.info("staged copies expired", extra={"keys": len(index.expiring)})
