"""The upload index's folded keys in shards (``opendepot.index_shards``; issue 14, item 1): a
publication reads and writes only the shards its pending uploads' keys fall in, a shard past
``SHARD_MAX`` keys splits, an index from before shards is written out as shards by its next
fold, and daily publications over small shards give the files of one build from every upload
(the bench's real chiffres-cles days)."""

from __future__ import annotations

import io
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow.parquet as pq
import pytest

from bench.history import APPEND, append_series
from opendepot import index_shards, layout
from opendepot.config import Settings
from opendepot.contracts import UploadRecord
from opendepot.index_shards import SHARD_MAX, ShardNotLoaded, key_hash
from opendepot.ingest import ObjectEvent, ingest
from opendepot.publication import PublishOutcome, publish_dataset
from opendepot.registry import Registry, load_cog, load_registry
from opendepot.storage import MemoryQueue, MemoryStore
from opendepot.upload_index import UploadIndex, fold, load, take_in
from opendepot.upload_index import read as read_index

CC, PRODUCER = APPEND
START = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


def record(day: int, upload_id: str | None = None, minute: int | None = None) -> UploadRecord:
    """A ministere-sante bulletin's upload record, key of its ``day`` (only ids, keys, orders
    and counts matter to the index)."""
    uid = upload_id or f"20261129T080000Z-{day:012x}"
    at = day if minute is None else minute
    return UploadRecord(
        key=f"{CC}/{PRODUCER}/day-{day:05d}.csv", bucket="incoming", version_id=None, etag="e",
        sequencer=f"{at + 1:016X}", received_at=f"2026-11-29T08:00:00.{at % 1000:03d}Z",
        size=1, upload_id=uid, dataset=CC, producer=PRODUCER, rows=3, rows_left_out=day % 2,
        areas=1, sha256="0" * 64, bytes=1, report_key=f"reports/{CC}/{PRODUCER}/{uid}.json",
        staged_key=f"staging/{CC}/{PRODUCER}/{uid}.parquet")


def folded_in(index: UploadIndex, records: list[UploadRecord], version: str) -> Any:
    return fold(take_in(index, records), load_registry().get(CC), version,
                [r.upload_id for r in records])


class CountingStore(MemoryStore):
    """A memory store that counts its gets by key."""

    def __init__(self) -> None:
        super().__init__()
        self.gets: Counter[str] = Counter()

    def get(self, bucket: str, key: str, *, version_id: str | None = None) -> bytes:
        self.gets[key] += 1
        return super().get(bucket, key, version_id=version_id)


def test_fold_past_shard_max__leaf_splits_in_16_each_holding_its_hash_prefix():
    first = folded_in(UploadIndex(CC), [record(d) for d in range(200)], "2026-11-29-08h01m00s")
    assert list(first.index.shards.leaves) == [""] and len(first.shards) == 1
    assert first.index.folded_count == 200 and first.index.expiring == ()
    second = folded_in(first.index, [record(d) for d in range(200, 300)], "2026-11-29-08h02m00s")
    leaves = second.index.shards.leaves
    assert sorted(leaves) == [f"{d:x}" for d in range(16)]
    assert second.index.folded_count == 300
    root = layout.folded_shard_key(CC, "", first.index.shards.leaves[""])
    assert second.index.expiring == (root,)  # the replaced shard goes with the next publication
    sizes = []
    for key, body in second.shards:
        doc = json.loads(body)
        assert key == layout.folded_shard_key(CC, doc["prefix"], leaves[doc["prefix"]])
        assert all(key_hash(k).startswith(doc["prefix"]) for k in doc["keys"])
        sizes.append(len(doc["keys"]))
    assert sum(sizes) == 300 and max(sizes) <= SHARD_MAX
    for d in (0, 150, 299):
        seen = second.index.folded(record(d).key)
        assert seen is not None and seen.upload_id == record(d).upload_id


def test_publication_reads__only_the_shard_of_its_pending_key():
    settings, store = Settings(), CountingStore()
    index, etag = UploadIndex(CC), None
    for batch in range(3):  # 3 x 200 keys: the root splits at the second fold
        done = folded_in(index, [record(d) for d in range(batch * 200, batch * 200 + 200)],
                         f"2026-11-29-08h0{batch}m00s")
        for key, body in done.writes:
            store.put(settings.internal_bucket, key, body, "application/json")
        etag = store.put(settings.internal_bucket, layout.upload_index_key(CC),
                         json.dumps(done.index.to_json()).encode(), "application/json",
                         if_match=etag, if_none_match=etag is None)
        index = done.index
    stored, _ = read_index(store, settings, CC)
    assert stored is not None and stored == index and stored.folded_count == 600
    assert len(json.dumps(stored.to_json())) < 2000  # 16 leaves, whatever the keys
    new = record(10, upload_id="20261129T090000Z-00000000000a", minute=900)  # a rewrite
    with pytest.raises(ShardNotLoaded):
        take_in(stored, [new])
    store.gets.clear()
    loaded = load(store, settings, stored, [new])
    shard_reads = [k for k in store.gets if k.startswith(f"index/{CC}/keys/")]
    assert len(shard_reads) == 1 == sum(store.gets.values())
    seen = loaded.folded(new.key)
    assert seen is not None and seen.upload_id == record(10).upload_id
    assert take_in(loaded, [record(10)]) is loaded  # already folded: not pending again
    assert take_in(loaded, [new]).pending == (new,)


def test_index_from_before_shards__read_inline_then_written_out_by_the_next_fold():
    old = folded_in(UploadIndex(CC), [record(d) for d in range(5)], "2026-11-29-08h01m00s")
    entries = {r.key: old.index.shards.entry(r.key) for r in (record(d) for d in range(5))}
    legacy = {**{k: v for k, v in old.index.to_json().items() if k != "folded"},
              "folded_keys": entries,
              "folded_pages": [layout.folded_page_key(CC, "2026-11-29-08h01m00s")]}
    index = UploadIndex.from_json(json.loads(json.dumps(legacy)))
    assert index.folded_count == 5 and index.shards.leaves == {"": index_shards.INLINE}
    assert index.folded(record(3).key) == old.index.folded(record(3).key)
    again = UploadIndex.from_json(json.loads(json.dumps(index.to_json())))
    assert again.folded(record(4).key) == old.index.folded(record(4).key)  # still inline
    out = folded_in(index, [record(5)], "2026-11-29-08h02m00s")
    assert "folded_keys" not in out.index.to_json()["folded"]
    assert out.index.folded_count == 6 and len(out.shards) == 1
    assert set(json.loads(out.shards[0][1])["keys"]) == {record(d).key for d in range(6)}


class Daily:
    """The bench's append series (real chiffres-cles days of ministere-sante), on a memory
    store: ``drop`` ingests upload ``k`` (or ``body`` under its key: a rewrite)."""

    def __init__(self) -> None:
        self.settings = Settings(publish_queue_url="memory://publish.fifo")
        self.store, self.queue, self.cog = MemoryStore(), MemoryQueue(), load_cog()
        self.registry = Registry({CC: load_registry().get(CC)})
        self.series, self.count = append_series(), 0

    def drop(self, k: int, body: bytes | None = None) -> None:
        up = self.series.upload(k)
        data = up.body if body is None else body
        etag = self.store.put(self.settings.incoming_bucket, up.key, data, "text/csv")
        self.count += 1
        event = ObjectEvent(self.settings.incoming_bucket, up.key, len(data), etag,
                            f"v{self.count}", f"{self.count:016X}",
                            START + timedelta(minutes=self.count))
        assert ingest(self.store, self.queue, self.settings, self.registry, self.cog,
                      event).status == "accepted"

    def publish(self) -> PublishOutcome:
        return publish_dataset(self.store, self.settings, self.registry, self.cog,
                               self.registry.get(CC), START + timedelta(minutes=self.count,
                                                                        seconds=30))

    def latest(self, fmt: str) -> bytes:
        return self.store.get(self.settings.published_bucket, f"{CC}/latest/{CC}-sources.{fmt}")


def test_daily_publications_over_small_shards__same_files_as_one_build(monkeypatch):
    monkeypatch.setattr(index_shards, "SHARD_MAX", 2)
    daily, once = Daily(), Daily()
    reasons = []
    for k in range(12):
        daily.drop(k)
        once.drop(k)
        reasons.append(daily.publish().full_build_reason)
    # day 3 re-sent under its key with day 4's rows: a rewrite, built from every upload
    rewrite = daily.series.upload(4).body.replace(daily.series.upload(4).key[-14:-4].encode(),
                                                  daily.series.upload(3).key[-14:-4].encode())
    daily.drop(3, rewrite)
    once.drop(3, rewrite)
    rewritten = daily.publish()
    reasons.append(rewritten.full_build_reason)
    daily.drop(12)
    once.drop(12)
    reasons.append(daily.publish().full_build_reason)
    once.publish()
    key3 = daily.series.upload(3).key
    assert reasons[0] == "no append upload folded yet"
    assert reasons[1:12] == [None] * 11 and reasons[13] is None
    assert reasons[12] == f"{key3} rewritten after it was published"
    assert daily.latest("csv") == once.latest("csv")
    a, b = (pq.read_table(io.BytesIO(p.latest("parquet"))) for p in (daily, once))
    rows = [daily.series.upload(k).rows for k in range(13)]
    assert a.equals(b) and a.num_rows == sum(rows) - rows[3] + rows[4]
    index, _ = read_index(daily.store, daily.settings, CC)
    assert index is not None and index.folded_count == 13 and len(index.shards.leaves) > 1
    shards = [k for k in daily.store.buckets[daily.settings.internal_bucket]
              if k.startswith(f"index/{CC}/keys/")]
    named = {layout.folded_shard_key(CC, p, d) for p, d in index.shards.leaves.items() if d}
    assert named <= set(shards) and set(shards) - named <= set(index.expiring)
    loaded = load(daily.store, daily.settings, index)
    assert all(len(loaded.shards.leaf_entries(p)) <= 2 for p in index.shards.leaves)
    seen = loaded.folded(key3)
    assert seen is not None and (seen.upload_id,) == rewritten.upload_ids
