"""The folded keys of an upload index, in immutable shards by key hash (issue 14, item 1).

An ``append`` dataset's upload index (``opendepot.upload_index``) says, for every incoming key
ever folded into a version, which write of it is current (``FoldedKey``). Kept inline, that map
made the index grow with the dataset's age (207 KB at 1,000 daily uploads, read, parsed and
written by every publication). Here it is cut into shards by the SHA-1 of the key:

- a **leaf** is a prefix of the key hash's hex digits; the leaves cover every hash once (the
  index starts with the one leaf ``""``). A leaf's entries are one immutable JSON object in the
  internal bucket, ``index/{dataset}/keys/{prefix}-{digest}.json`` (``layout.folded_shard_key``:
  ``digest``, the first 16 hex digits of the SHA-256 of its body, so a retry after a crash
  writes the same key with the same bytes); an empty leaf has no object (digest ``""``);
- the index holds the leaves (prefix -> digest) and the number of keys (``Shards``), a few
  bytes per leaf: a publication reads the one or few shards its pending uploads' keys fall in
  (``load``), and a fold writes a new object for each leaf it changed (``Shards.updated``),
  before the index that names them is switched; the objects they replace are written in the new
  index's ``expiring`` and deleted by the next publication, after its own switch (as the staged
  copies that expire: a crash in between loses no deletion);
- a leaf holding more than ``SHARD_MAX`` keys splits into 16, by the next hex digit of the hash:
  a shard holds at most ``SHARD_MAX`` keys (about 37 KB) and the index about 20 bytes per
  ``SHARD_MAX / 2`` keys or so (16 leaves at 1,000 keys, about 400 at 100,000), whatever the
  history.

An index written before shards holds its map inline (``folded_keys``): it reads as one leaf
``""`` of digest ``INLINE`` with its entries loaded, and the next fold writes it out as shards.

A lost race (another publication switched the index first) may leave shards that no index
names (internal bucket, never read; a few KB each); they are not deleted, since a shard of the
same bytes may be one the winner names.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from opendepot import concurrency, layout
from opendepot.config import Settings
from opendepot.contracts import ContractError
from opendepot.keys import sequencer_key
from opendepot.storage import Store

SHARD_MAX = 256
"""Keys of a shard at most: a leaf with more splits into 16 (by the next hex digit)."""
INLINE = "inline"
"""Digest of the leaf of an index written before shards: its entries are in the index."""
THREADS = 4
"""Concurrent shard reads."""

Entry = list[Any]
"""A stored entry: ``FoldedKey.to_json``."""


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

    def to_json(self) -> Entry:
        """``[upload_id, producer, received_at, sequencer, rows_left_out]`` (the orders are
        made of these three: stored once, the shards stay small)."""
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


class ShardNotLoaded(LookupError):
    """A folded key was looked up in a leaf whose shard was not read (``load`` first): a
    programming error, never a data one."""


def key_hash(key: str) -> str:
    """The hex SHA-1 of an incoming key: which leaf holds it."""
    return hashlib.sha1(key.encode("utf-8"), usedforsecurity=False).hexdigest()


def entries(d: Any, where: str = "folded_keys") -> dict[str, Entry]:
    """A map of stored entries, its shape checked (a list of five per key), never parsed.

    Raises: ContractError."""
    if not isinstance(d, dict) or not all(isinstance(v, list) and len(v) == 5
                                          for v in d.values()):
        raise ContractError("UploadIndex", where, "not an object of entries")
    return {str(k): v for k, v in d.items()}


@dataclass(frozen=True)
class Shards:
    """The folded keys of an index: its leaves, how many keys, and the shards read so far."""

    leaves: Mapping[str, str] = field(default_factory=lambda: {"": ""})
    """Hash prefix -> digest of the leaf's object (``""``: empty, no object; ``INLINE``: an
    index from before shards)."""
    count: int = 0
    """Folded keys in all."""
    loaded: Mapping[str, Mapping[str, Entry]] = field(default_factory=dict, compare=False)
    """Prefix -> the leaf's entries (incoming key -> stored entry), for the leaves read (and
    those written) by this process; not stored."""

    def leaf(self, key: str) -> str:
        """The prefix of the leaf ``key`` falls in."""
        h = key_hash(key)
        for n in range(len(h) + 1):
            if h[:n] in self.leaves:
                return h[:n]
        raise ContractError("UploadIndex", "folded", "the leaves do not cover every key")

    def leaf_entries(self, prefix: str) -> Mapping[str, Entry]:
        """The entries of the leaf ``prefix``.

        Raises: ShardNotLoaded (its shard was not read)."""
        if not self.leaves[prefix]:
            return {}
        found = self.loaded.get(prefix)
        if found is None:
            raise ShardNotLoaded(prefix)
        return found

    def entry(self, key: str) -> Entry | None:
        """The stored entry of ``key`` (None: never folded). Raises: ShardNotLoaded."""
        return self.leaf_entries(self.leaf(key)).get(key)

    def get(self, key: str) -> FoldedKey | None:
        """The current folded write of ``key`` (None: none).

        Raises: ShardNotLoaded, ContractError (an entry that does not parse)."""
        entry = self.entry(key)
        return None if entry is None else FoldedKey.from_json(entry)

    def unread(self, keys: Iterable[str]) -> list[str]:
        """The prefixes of the leaves ``keys`` fall in whose shard is still to be read."""
        need = {self.leaf(k) for k in keys} if self.count else set()
        return sorted(p for p in need if self.leaves[p] and p not in self.loaded)

    def with_loaded(self, shards: Mapping[str, Mapping[str, Entry]]) -> Shards:
        return replace(self, loaded={**self.loaded, **shards})

    def to_json(self) -> dict[str, Any]:
        """``{"leaves": {prefix: digest}, "count": n}`` (and the inline entries of an index
        from before shards never folded since)."""
        out: dict[str, Any] = {"leaves": dict(sorted(self.leaves.items())), "count": self.count}
        inline = [p for p, d in self.leaves.items() if d == INLINE]
        if inline:
            out["folded_keys"] = {k: v for p in inline for k, v in self.loaded[p].items()}
        return out

    @classmethod
    def from_json(cls, d: Any, legacy: Any = None) -> Shards:
        """``d``: as ``to_json`` wrote it (None: absent); ``legacy``: an index's inline
        ``folded_keys`` from before shards (None: none).

        Raises: ContractError."""
        if d is None:
            inline = entries(legacy or {})
            if not inline:
                return cls()
            return cls({"": INLINE}, len(inline), {"": inline})
        if not isinstance(d, dict) or not isinstance(d.get("leaves"), dict):
            raise ContractError("UploadIndex", "folded", "not an object with leaves")
        leaves = {str(p): str(v) for p, v in d["leaves"].items()}
        loaded = {}
        if INLINE in leaves.values():
            inline = entries(d.get("folded_keys") or {})
            loaded = {p: {k: v for k, v in inline.items() if key_hash(k).startswith(p)}
                      for p, v in leaves.items() if v == INLINE}
        return cls(leaves, int(d.get("count") or 0), loaded)

    def updated(self, dataset: str, changed: Mapping[str, Entry]
                ) -> tuple[Shards, tuple[tuple[str, bytes], ...], tuple[str, ...]]:
        """These shards with the entries ``changed`` (incoming key -> entry) set: (the new
        shards, the (key, body) of each shard object to write before the index naming them is
        switched, the keys of the objects they replace). Leaves of ``INLINE`` entries are
        written out even when unchanged. Pure.

        Raises: ShardNotLoaded (a changed key's leaf was not read)."""
        touched: dict[str, dict[str, Entry]] = {}
        for key, entry in changed.items():
            p = self.leaf(key)
            if p not in touched:
                touched[p] = dict(self.leaf_entries(p))
            touched[p][key] = entry
        for p, digest in self.leaves.items():
            if digest == INLINE and p not in touched:
                touched[p] = dict(self.leaf_entries(p))
        leaves, loaded = dict(self.leaves), dict(self.loaded)
        writes: list[tuple[str, bytes]] = []
        gone: list[str] = []
        count = self.count
        for p, content in sorted(touched.items()):
            count += len(content) - len(self.leaf_entries(p))
            old = leaves.pop(p)
            loaded.pop(p, None)
            if old and old != INLINE:
                gone.append(layout.folded_shard_key(dataset, p, old))
            for q, part in _split(p, content):
                body = shard_body(dataset, q, part)
                digest = hashlib.sha256(body).hexdigest()[:16] if part else ""
                leaves[q], loaded[q] = digest, part
                if part:
                    writes.append((layout.folded_shard_key(dataset, q, digest), body))
        return Shards(leaves, count, loaded), tuple(writes), tuple(gone)


def _split(prefix: str, content: dict[str, Entry]) -> list[tuple[str, dict[str, Entry]]]:
    """The leaf ``prefix`` as one leaf, or, past ``SHARD_MAX`` keys, as 16 by the next hex
    digit (each split again if it must)."""
    if len(content) <= SHARD_MAX or len(prefix) >= 40:
        return [(prefix, content)]
    parts: dict[str, dict[str, Entry]] = {f"{prefix}{d:x}": {} for d in range(16)}
    for key, entry in content.items():
        parts[key_hash(key)[: len(prefix) + 1]][key] = entry
    return [leaf for q, part in parts.items() for leaf in _split(q, part)]


def shard_body(dataset: str, prefix: str, content: Mapping[str, Entry]) -> bytes:
    """A shard object: ``{"dataset", "prefix", "keys": {key: entry}}``, keys sorted, compact."""
    doc = {"dataset": dataset, "prefix": prefix, "keys": dict(sorted(content.items()))}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def load(store: Store, settings: Settings, dataset: str, shards: Shards,
         keys: Iterable[str] | None = None) -> Shards:
    """``shards`` with the shards of the leaves ``keys`` fall in read (None: every leaf, for a
    full rebuild); leaves already read are not read again.

    Raises: ContractError (a shard that does not parse), NotFound, StorageError."""
    if keys is None:
        need = sorted(p for p, d in shards.leaves.items() if d and p not in shards.loaded)
    else:
        need = shards.unread(keys)
    if not need:
        return shards

    def read(prefix: str) -> dict[str, Entry]:
        key = layout.folded_shard_key(dataset, prefix, shards.leaves[prefix])
        doc = json.loads(store.get(settings.internal_bucket, key))
        if not isinstance(doc, dict) or doc.get("prefix") != prefix:
            raise ContractError("UploadIndex", "folded", f"{key} is not the shard of {prefix!r}")
        return entries(doc.get("keys"), key)

    found = concurrency.map_ordered(read, need, threads=THREADS)
    return shards.with_loaded(dict(zip(need, found, strict=True)))
