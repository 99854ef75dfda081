"""The validate and publish handlers over a local directory instead of moto: opendepot's own memory.

With moto in process, the bench child's resident memory includes moto's copies of the objects
(moto reads a whole object into memory to serve a GET and holds a PUT body in memory: about
430 MB for the ×100 CSV), so ``peak_rss_mib`` there is opendepot's memory plus the emulator's.
Here the same handler code runs over:

- ``DirectoryStore(root)``: ``opendepot.storage.Store`` over a directory (bucket = subdirectory
  of ``root``, key = path below it). Bodies are streamed in ``COPY_CHUNK`` pieces both ways and
  never held whole in memory; the ETag is the MD5 of the content (as S3's for a single-part
  put), computed while writing. Each object has a small sidecar JSON under ``root/.meta/``
  (ETag, content type, cache control), so ``head`` and ``copy`` keep content types. A ``copy``
  is a hard link with its own sidecar (S3 copies on its side: no bytes through the function,
  the ETag kept); objects are only ever replaced, never written in place. Writes go to
  ``root/.tmp/`` first and are renamed into place under a lock that also checks the
  ``if_match`` / ``if_none_match`` preconditions (``PreconditionFailed``, as ``MemoryStore``).
  Versions are not kept (``version_id`` is ignored).
- ``FilePipeline``: the same calls as ``bench.aws.MotoPipeline`` (upload, validate,
  publish_messages, publish, report, manifest, save_staging / load_staging), with the publish
  queue in memory (``PendingQueue``). No AWS client and no moto are created.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from opendepot import layout
from opendepot.storage import COPY_CHUNK, Body, NotFound, ObjectInfo, PreconditionFailed

META = ".meta"
TMP = ".tmp"
OCTET = "application/octet-stream"
SUFFIX_TYPES = {".parquet": "application/vnd.apache.parquet", ".json": "application/json",
                ".csv": "text/csv"}


class DirectoryStore:
    """``Store`` over a local directory; see the module docstring."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / TMP).mkdir(exist_ok=True)
        self._lock = threading.Lock()
        self._dirs: set[Path] = set()
        """Directories made so far (they are never removed): made once each."""

    # -- paths
    def _rel(self, bucket: str, key: str) -> PurePosixPath:
        self._bucket_dir(bucket)  # checks the name
        rel = PurePosixPath(key)
        if (not key or key.endswith("/") or rel.is_absolute()
                or any(p in {"", ".", ".."} for p in key.split("/"))):
            raise ValueError(f"key {key!r} has no file path in a directory store")
        return PurePosixPath(bucket) / rel

    def _bucket_dir(self, bucket: str) -> Path:
        if not bucket or bucket.startswith(".") or "/" in bucket:
            raise ValueError(f"bad bucket name {bucket!r}")
        return self.root / bucket

    def _path(self, bucket: str, key: str) -> Path:
        return self.root / self._rel(bucket, key)

    def _meta_path(self, bucket: str, key: str) -> Path:
        rel = self._rel(bucket, key)
        return self.root / META / rel.parent / f"{rel.name}.json"

    def _meta(self, bucket: str, key: str) -> dict[str, Any]:
        try:
            return json.loads(self._meta_path(bucket, key).read_text())
        except FileNotFoundError:
            return {}

    def _info(self, bucket: str, key: str, path: Path) -> ObjectInfo:
        st = path.stat()
        meta = self._meta(bucket, key)
        etag = meta.get("etag") or _md5_file(path)
        return ObjectInfo(key=key, size=st.st_size, etag=etag,
                          last_modified=datetime.fromtimestamp(st.st_mtime, UTC),
                          content_type=meta.get("content_type", ""),
                          cache_control=meta.get("cache_control"))

    # -- Store
    def get(self, bucket: str, key: str, *, version_id: str | None = None) -> bytes:
        try:
            return self._path(bucket, key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise NotFound(f"s3://{bucket}/{key}") from exc

    def get_file(
        self, bucket: str, key: str, out: BinaryIO, *, version_id: str | None = None
    ) -> int:
        try:
            f = self._path(bucket, key).open("rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise NotFound(f"s3://{bucket}/{key}") from exc
        size = 0
        with f:
            while chunk := f.read(COPY_CHUNK):
                out.write(chunk)
                size += len(chunk)
        return size

    def head(self, bucket: str, key: str, *, version_id: str | None = None) -> ObjectInfo | None:
        path = self._path(bucket, key)
        if not path.is_file():
            return None
        return self._info(bucket, key, path)

    def put(
        self,
        bucket: str,
        key: str,
        body: Body,
        content_type: str,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
        cache_control: str | None = None,
    ) -> str:
        self._path(bucket, key)  # checks the key before anything is written
        md5 = hashlib.md5(usedforsecurity=False)
        fd, tmp_name = tempfile.mkstemp(dir=self.root / TMP)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                if isinstance(body, (bytes, bytearray, memoryview)):
                    md5.update(body)
                    out.write(body)
                else:
                    while chunk := body.read(COPY_CHUNK):
                        md5.update(chunk)
                        out.write(chunk)
            etag = md5.hexdigest()
            meta = {"etag": etag, "content_type": content_type, "cache_control": cache_control}
            with self._lock:
                current = self.head(bucket, key)
                if if_none_match and current is not None:
                    raise PreconditionFailed(f"s3://{bucket}/{key} exists")
                if if_match is not None and (current is None or current.etag != if_match):
                    raise PreconditionFailed(f"s3://{bucket}/{key} changed")
                self._place(bucket, key, tmp, meta)
            return etag
        finally:
            tmp.unlink(missing_ok=True)

    def _place(self, bucket: str, key: str, tmp: Path, meta: dict[str, Any]) -> None:
        """Under the lock: ``tmp`` becomes the object (renamed into place), ``meta`` its
        sidecar."""
        path, meta_path = self._path(bucket, key), self._meta_path(bucket, key)
        for directory in (path.parent, meta_path.parent):
            if directory not in self._dirs:
                directory.mkdir(parents=True, exist_ok=True)
                self._dirs.add(directory)
        meta_path.write_text(json.dumps(meta))
        os.replace(tmp, path)

    def copy(
        self, bucket: str, src_key: str, dst_key: str, *, cache_control: str | None = None
    ) -> None:
        """As S3 copies an object on its side, keeping its ETag: the bytes are not read, the copy
        is a hard link to the source's file (objects are only ever replaced, never written in
        place), with its own sidecar."""
        src = self._path(bucket, src_key)
        if not src.is_file():
            raise NotFound(f"s3://{bucket}/{src_key}")
        meta = self._meta(bucket, src_key)
        meta = {"etag": meta.get("etag") or _md5_file(src),
                "content_type": meta.get("content_type") or OCTET,
                "cache_control": cache_control or meta.get("cache_control")}
        tmp = self.root / TMP / f"copy-{uuid.uuid4().hex}"
        os.link(src, tmp)
        try:
            with self._lock:
                self._place(bucket, dst_key, tmp, meta)
        finally:
            tmp.unlink(missing_ok=True)

    def list(self, bucket: str, prefix: str) -> list[ObjectInfo]:
        top = self._bucket_dir(bucket)
        if not top.is_dir():
            return []
        # walk only the directory the prefix names (up to its last "/"), then filter
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = top / base if base else top
        if base and (".." in base.split("/") or base.startswith("/") or not start.is_dir()):
            return []
        out = []
        for dirpath, _dirs, files in os.walk(start):
            for name in files:
                path = Path(dirpath) / name
                key = path.relative_to(top).as_posix()
                if key.startswith(prefix):
                    out.append(self._info(bucket, key, path))
        return sorted(out, key=lambda o: o.key)

    def delete(self, bucket: str, key: str, *, version_id: str | None = None) -> None:
        """Delete the object and its sidecar (versions are not kept). Absent: nothing."""
        with self._lock:
            for path in (self._path(bucket, key), self._meta_path(bucket, key)):
                path.unlink(missing_ok=True)

    # -- bench helpers (not part of the Store protocol)
    def path(self, bucket: str, key: str) -> Path:
        """The file holding an object."""
        return self._path(bucket, key)


def _md5_file(path: Path) -> str:
    md5 = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        while chunk := f.read(COPY_CHUNK):
            md5.update(chunk)
    return md5.hexdigest()


@dataclass
class PendingQueue:
    """``Queue`` in memory that keeps what was sent (``sent``, as ``MemoryQueue``) and lets the
    bench receive and delete messages as from SQS (``receive``, ``delete``)."""

    sent: list[tuple[str, dict[str, Any], str | None]] = field(default_factory=list)
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)
    _ids: Any = field(default_factory=itertools.count)

    def send(self, queue_url: str, body: dict[str, Any], *, group_id: str | None = None) -> None:
        self.sent.append((queue_url, body, group_id))
        n = next(self._ids)
        handle = f"file-{n:06d}-{uuid.uuid4().hex[:8]}"
        self.pending[handle] = {"MessageId": f"file-message-{n:06d}", "ReceiptHandle": handle,
                                "Body": json.dumps(body, sort_keys=True),
                                "Attributes": {"MessageGroupId": group_id or ""}}

    def receive(self, limit: int = 10) -> list[dict[str, Any]]:
        return [dict(m) for m in itertools.islice(self.pending.values(), limit)]

    def delete(self, handle: str) -> None:
        self.pending.pop(handle, None)


class FilePipeline:
    """The validate and publish handlers over ``DirectoryStore`` and ``PendingQueue``; a context
    manager with ``bench.aws.MotoPipeline``'s calls. ``root``: the store's directory, kept on
    exit; without it, a new temporary directory (inside ``parent`` if given), removed on exit."""

    QUEUE_URL = "file://opendepot-publish.fifo"

    def __init__(self, root: Path | None = None, *, parent: Path | None = None) -> None:
        self._root = root
        self._parent = parent
        self._own: str | None = None
        self.store: DirectoryStore | None = None
        self.queue = PendingQueue()
        self.runtime: Any = None
        self.queue_arn = "arn:aws:sqs:eu-west-3:123456789012:opendepot-publish.fifo"
        self._seq = 0

    def __enter__(self) -> FilePipeline:
        from opendepot import runtime
        from opendepot.config import Settings
        from opendepot.registry import load_cog, load_registry

        if self._root is None:
            self._own = tempfile.mkdtemp(prefix="opendepot-filestore-", dir=self._parent)
            self._root = Path(self._own)
        self.store = DirectoryStore(self._root)
        self.runtime = runtime.Runtime(Settings(publish_queue_url=self.QUEUE_URL), self.store,
                                       self.queue, load_registry(), load_cog())
        runtime.use(self.runtime)
        # imported outside any timing, as in MotoPipeline (the Lambda init phase)
        import functions.publish.app  # noqa: F401
        import functions.validate.app  # noqa: F401
        return self

    def __exit__(self, *exc: object) -> None:
        from opendepot import runtime

        runtime.use(None)
        if self._own is not None:
            shutil.rmtree(self._own, ignore_errors=True)
            self._own = None
            self._root = None

    @property
    def settings(self) -> Any:
        return self.runtime.settings

    def _store(self) -> DirectoryStore:
        assert self.store is not None, "FilePipeline used outside its with block"
        return self.store

    def key_for(self, name: str) -> str:
        from bench.aws import DATASET, PRODUCER

        return f"{DATASET}/{PRODUCER}/{name}"

    def upload(self, key: str, body: bytes | Path) -> dict[str, Any]:
        """Put ``body`` (bytes, or a local file streamed from disk) into the incoming bucket;
        return the validate function's SQS event (same shape as ``MotoPipeline.upload``'s, no
        version id: the directory store keeps no versions)."""
        from bench.aws import REGION, s3_event, sqs_event

        bucket = self.settings.incoming_bucket
        if isinstance(body, Path):
            with body.open("rb") as f:
                etag = self._store().put(bucket, key, f, "text/csv")
            size = body.stat().st_size
        else:
            etag = self._store().put(bucket, key, body, "text/csv")
            size = len(body)
        self._seq += 1
        note = s3_event(bucket, key, size, etag, None, f"{self._seq:016X}", datetime.now(UTC))
        return sqs_event([json.dumps(note)],
                         f"arn:aws:sqs:{REGION}:123456789012:opendepot-validate")

    def validate(self, event: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        """Run the validate handler; (seconds, response)."""
        from bench.aws import run_validate

        return run_validate(event)

    def publish_messages(self) -> list[dict[str, Any]]:
        """The messages waiting in the publish queue (received, not yet deleted)."""
        return self.queue.receive(10)

    def publish(self, messages: list[dict[str, Any]]) -> tuple[float, dict[str, Any]]:
        """Run the publish handler on received messages, then delete them; (seconds, response)."""
        from bench.aws import Context, publish_event
        from functions.publish import app

        event = publish_event(messages, self.queue_arn)
        started = time.perf_counter()
        out = app.lambda_handler(event, Context(function_name="opendepot-publish"))
        seconds = time.perf_counter() - started
        for m in messages:
            self.queue.delete(m["ReceiptHandle"])
        return seconds, out

    def send_publish_request(self, body: str) -> None:
        from bench.aws import DATASET

        self.queue.send(self.settings.publish_queue_url, json.loads(body), group_id=DATASET)

    def manifest(self) -> dict[str, Any] | None:
        from bench.aws import DATASET

        try:
            return json.loads(self._store().get(self.settings.published_bucket,
                                                layout.manifest_key(DATASET)))
        except NotFound:
            return None

    def report(self, key: str) -> dict[str, Any] | None:
        """The newest validation report written for ``key`` (None if there is none)."""
        from bench.aws import DATASET, PRODUCER

        store = self._store()
        bucket = self.settings.internal_bucket
        for o in reversed(store.list(bucket, layout.report_prefix(DATASET, PRODUCER))):
            doc = json.loads(store.get(bucket, o.key))
            if doc.get("opendepot", {}).get("key") == key:
                return doc
        return None

    # -- staging kept between the validate child and the publish child (MotoPipeline's format)
    def save_staging(self, directory: Path, messages: list[dict[str, Any]]) -> None:
        """Copy ``staging/`` of the internal bucket and the publish messages to ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        store = self._store()
        bucket = self.settings.internal_bucket
        keys: list[dict[str, str]] = []
        for o in store.list(bucket, layout.STAGING):
            name = f"{len(keys):04d}.bin"
            shutil.copyfile(store.path(bucket, o.key), directory / name)
            keys.append({"key": o.key, "file": name})
        (directory / "staging.json").write_text(json.dumps(
            {"objects": keys, "messages": [m["Body"] for m in messages]}, indent=1))

    def load_staging(self, directory: Path) -> None:
        """Put what ``save_staging`` saved back into the internal bucket and the publish queue."""
        index = json.loads((directory / "staging.json").read_text())
        for o in index["objects"]:
            mime = SUFFIX_TYPES.get(PurePosixPath(o["key"]).suffix, OCTET)
            with (directory / o["file"]).open("rb") as f:
                self._store().put(self.settings.internal_bucket, o["key"], f, mime)
        for body in index["messages"]:
            self.send_publish_request(body)
