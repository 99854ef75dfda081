"""The bench's directory store (``bench.filestore``): the ``Store`` contract, and the real hospital
file through the validate and publish handlers over it (``FilePipeline``)."""

from __future__ import annotations

import hashlib
import io
import threading
import time
from pathlib import Path

import pytest

from bench.filestore import DirectoryStore, FilePipeline
from conftest import HOSP
from opendepot.storage import COPY_CHUNK, NotFound, PreconditionFailed

B = "bucket"


@pytest.fixture
def store(tmp_path: Path) -> DirectoryStore:
    return DirectoryStore(tmp_path / "store")


def test_put_bytes_get_head(store):
    etag = store.put(B, "a/b/c.json", b'{"x": 1}', "application/json")
    assert etag == hashlib.md5(b'{"x": 1}').hexdigest()
    assert store.get(B, "a/b/c.json") == b'{"x": 1}'
    head = store.head(B, "a/b/c.json")
    assert head is not None
    assert (head.key, head.size, head.etag, head.content_type) == (
        "a/b/c.json", 8, etag, "application/json")
    assert store.head(B, "a/b/missing.json") is None
    assert store.head("other", "a/b/c.json") is None
    with pytest.raises(NotFound):
        store.get(B, "a/b/missing.json")
    with pytest.raises(NotFound):
        store.get_file(B, "nope", io.BytesIO())


def test_put_file_streams_from_its_position_and_get_file(store, tmp_path):
    body = bytes(range(256)) * (3 * COPY_CHUNK // 256 + 17)  # several chunks and a bit
    src = tmp_path / "src.bin"
    src.write_bytes(b"skip" + body)
    with src.open("rb") as f:
        f.read(4)
        etag = store.put(B, "big.bin", f, "application/octet-stream")
    assert etag == hashlib.md5(body).hexdigest()
    out = io.BytesIO()
    assert store.get_file(B, "big.bin", out) == len(body)
    assert out.getvalue() == body
    assert store.head(B, "big.bin").size == len(body)


def test_copy_keeps_content_type_and_sets_cache_control(store):
    store.put(B, "v1/data.csv", b"a;b\n1;2\n", "text/csv", cache_control="max-age=31536000")
    store.copy(B, "v1/data.csv", "latest/data.csv", cache_control="no-cache")
    head = store.head(B, "latest/data.csv")
    assert head.content_type == "text/csv"
    assert head.etag == store.head(B, "v1/data.csv").etag
    assert store.get(B, "latest/data.csv") == b"a;b\n1;2\n"
    assert head.cache_control == "no-cache"
    assert store.head(B, "v1/data.csv").cache_control == "max-age=31536000"
    store.copy(B, "v1/data.csv", "v2/data.csv")  # no Cache-Control given: the source's is kept
    assert store.head(B, "v2/data.csv").cache_control == "max-age=31536000"
    with pytest.raises(NotFound):
        store.copy(B, "v1/missing.csv", "latest/missing.csv")


def test_copy_is_a_link_the_source_replaced_later_leaves_it(store):
    """A copy moves no bytes (S3 copies on its side): the same file, the source's ETag; the
    source put again (a new file renamed over it) leaves the copy as it was."""
    store.put(B, "v1/data.csv", b"a;b\n1;2\n", "text/csv")
    store.copy(B, "v1/data.csv", "latest/data.csv")
    src, dst = store.path(B, "v1/data.csv"), store.path(B, "latest/data.csv")
    assert src.stat().st_ino == dst.stat().st_ino
    assert store.head(B, "latest/data.csv").etag == hashlib.md5(b"a;b\n1;2\n").hexdigest()
    store.put(B, "v1/data.csv", b"a;b\n3;4\n", "text/csv")
    assert store.get(B, "latest/data.csv") == b"a;b\n1;2\n"
    assert store.head(B, "latest/data.csv").etag == hashlib.md5(b"a;b\n1;2\n").hexdigest()
    assert list((store.root / ".tmp").iterdir()) == []


def test_list_sorted_by_key_and_filtered_by_prefix(store):
    for key in ("s/b/2.json", "s/a/1.json", "s/b/10.json", "t/x.json", "s2/y.json", "s.json"):
        store.put(B, key, key.encode(), "application/json")
    assert [o.key for o in store.list(B, "s/")] == ["s/a/1.json", "s/b/10.json", "s/b/2.json"]
    assert [o.key for o in store.list(B, "s")] == [
        "s.json", "s/a/1.json", "s/b/10.json", "s/b/2.json", "s2/y.json"]
    assert [o.key for o in store.list(B, "")] == sorted(
        ["s/b/2.json", "s/a/1.json", "s/b/10.json", "t/x.json", "s2/y.json", "s.json"])
    assert store.list(B, "nothing/") == []
    assert store.list("empty", "") == []
    listed = {o.key: o for o in store.list(B, "t/")}
    assert listed["t/x.json"].etag == hashlib.md5(b"t/x.json").hexdigest()
    assert listed["t/x.json"].content_type == "application/json"


def test_preconditions(store):
    etag = store.put(B, "m.json", b"1", "application/json", if_none_match=True)
    with pytest.raises(PreconditionFailed):
        store.put(B, "m.json", b"2", "application/json", if_none_match=True)
    with pytest.raises(PreconditionFailed):
        store.put(B, "m.json", b"2", "application/json", if_match="0" * 32)
    with pytest.raises(PreconditionFailed):
        store.put(B, "absent.json", b"2", "application/json", if_match=etag)
    assert store.get(B, "m.json") == b"1"
    new = store.put(B, "m.json", b"2", "application/json", if_match=etag)
    assert store.get(B, "m.json") == b"2"
    assert store.head(B, "m.json").etag == new
    assert not list((store.root / ".tmp").iterdir())  # no temp file left behind


def test_if_none_match_one_winner_among_threads(store):
    wins, losses = [], []

    def write(i: int) -> None:
        try:
            store.put(B, "once.json", str(i).encode(), "application/json", if_none_match=True)
            wins.append(i)
        except PreconditionFailed:
            losses.append(i)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and len(losses) == 15
    assert store.get(B, "once.json") == str(wins[0]).encode()


def test_keys_that_leave_the_directory_are_refused(store):
    for key in ("../x", "a/../../x", "/abs", "dir/", ""):
        with pytest.raises(ValueError):
            store.put(B, key, b"", "text/plain")
    with pytest.raises(ValueError):
        store.put(".meta", "x", b"", "text/plain")


def test_real_hospital_file_through_file_pipeline(real_dir, tmp_path):
    path = real_dir / HOSP / "donnees-hospitalieres-covid19-2021-03-17-17h03.csv"
    with FilePipeline(tmp_path / "store") as p:
        key = p.key_for(path.name)
        _, response = p.validate(p.upload(key, path))
        assert response == {"batchItemFailures": []}
        assert p.report(key)["opendepot"]["status"] == "accepted"
        messages = p.publish_messages()
        assert len(messages) == 1
        p.save_staging(tmp_path / "stage", messages)
        _, response = p.publish(messages)
        assert response == {"batchItemFailures": []}
        manifest = p.manifest()
    assert manifest is not None
    assert manifest["rows"]["dep"] == 110595
    store = DirectoryStore(tmp_path / "store")
    published = p.settings.published_bucket
    latest = store.head(published, f"{HOSP}/latest/{HOSP}-dep.csv")
    assert latest is not None and latest.content_type.startswith("text/csv")
    # what save_staging kept publishes again in a fresh pipeline (the publish child's path)
    with FilePipeline(parent=tmp_path) as q:
        q.load_staging(tmp_path / "stage")
        _, response = q.publish(q.publish_messages())
        assert response == {"batchItemFailures": []}
        assert q.manifest()["rows"]["dep"] == 110595


def test_timers__concurrent_storage_calls_count_their_wall_time_once(store, monkeypatch):
    """A publication uploads its files on several threads: ``Timers.total("store")`` is the time
    during which any storage call ran (the union of their intervals), not their sum, nor the
    last call's time."""
    from bench.breakdown import Timers

    def slow_head(self, bucket, key):
        time.sleep(0.2)

    monkeypatch.setattr(DirectoryStore, "head", slow_head)
    with Timers(store_only=True) as timers:
        threads = [threading.Thread(target=store.head, args=(B, f"k{i}")) for i in range(3)]
        for t in threads:  # calls at 0, 0.1 and 0.2 s, each 0.2 s: storage busy from 0 to 0.4 s
            t.start()
            time.sleep(0.1)
        for t in threads:
            t.join()
        time.sleep(0.1)  # outside any storage call: not counted
    assert timers.calls["store.head"] == 3
    assert timers.seconds["store.head"] >= 0.6  # summed over the three calls
    # the union is 0.4 s; the last call alone 0.2 s, the three summed 0.6 s
    assert 0.39 <= timers.total("store") < 0.55
