"""The storage and queue ports: the only code that talks to S3 and SQS.

``Store`` is the small interface the domain writes through (get, get_file, head, put with an
optional precondition, copy, list). ``head`` also gives the object's S3 checksum
(``x-amz-checksum-*``, ``Checksum``) when it has one; ``ChecksumDigest`` computes the same
algorithm over bytes read, so a reader can verify them. Large objects never need to be held
in memory: ``get_file`` streams an object into an open file, and ``put`` takes an open file as
well as bytes.
``S3Store`` implements it over a boto3 S3 client (real S3 and moto alike); ``MemoryStore``
implements it in memory for unit tests. ``Queue`` is the same idea for SQS (``SqsQueue``,
``MemoryQueue``).
"""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import json
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import awscrt.checksums

Body = bytes | BinaryIO
"""An object's content: bytes, or a binary file open for reading at its start (streamed)."""

COPY_CHUNK = 8 << 20
"""Bytes per read when streaming an object into a file."""

MULTIPART_THRESHOLD = 64 << 20
"""``S3Store`` puts and copies larger than this (bytes) go as multipart uploads of ``PART_SIZE``
parts; smaller ones, and ``if_match`` puts, in one request."""

PART_SIZE = 8 << 20
"""Bytes per multipart part, and per ranged GET of ``S3Store.get_file`` (S3 advises 8-16 MB)."""

TRANSFER_THREADS = 2
"""Parts copied at once by a managed multipart copy. On S3 no data goes through the client; on
the local stack moto reads each part into memory (300 MiB copy: 121 MiB peak with 4, 73 with 2)."""


class StorageError(RuntimeError):
    """Base class of storage failures (infrastructure, not data): let the queue retry."""


class PreconditionFailed(StorageError):
    """A conditional write lost: ``If-Match`` or ``If-None-Match`` did not hold (HTTP 412)."""


class NotFound(StorageError):
    """The object does not exist, or not in the version asked for (S3: ``NoSuchKey``,
    ``NoSuchVersion``, 404). Not an infrastructure failure: callers decide what it means."""


CHECKSUM_ALGORITHMS = ("CRC64NVME", "CRC32", "CRC32C", "SHA1", "SHA256")
"""S3's checksum algorithms, as named in ``x-amz-checksum-{algorithm}`` (upper case)."""

COMPUTABLE_CHECKSUMS = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")
"""The algorithms ``ChecksumDigest`` computes: every one of ``CHECKSUM_ALGORITHMS`` (CRC32 with
zlib, CRC32C and CRC64NVME with the AWS CRT's ``awscrt.checksums``, as botocore computes them,
the SHAs with hashlib)."""


@dataclass(frozen=True)
class Checksum:
    """An object's S3 checksum, as S3 stores and returns it."""

    algorithm: str
    """One of ``CHECKSUM_ALGORITHMS``."""
    value: str
    """Base64 of the big-endian digest; a composite checksum ends with ``-{parts}``."""
    type: str = "FULL_OBJECT"
    """``FULL_OBJECT`` (of the whole content) or ``COMPOSITE`` (a multipart upload's checksum
    of its parts' checksums: it cannot be recomputed from the content alone)."""


_CRCS: dict[str, tuple[Callable[[bytes, int], int], int]] = {
    "CRC32": (zlib.crc32, 4),
    "CRC32C": (awscrt.checksums.crc32c, 4),  # the AWS CRT's, as botocore uses it
    "CRC64NVME": (awscrt.checksums.crc64nvme, 8),
}
"""CRC algorithms of S3 checksums: (incremental function, bytes of the big-endian value)."""


class ChecksumDigest:
    """One of ``COMPUTABLE_CHECKSUMS`` computed incrementally, in S3's form (base64)."""

    def __init__(self, algorithm: str) -> None:
        """Raises ValueError for an algorithm not in ``COMPUTABLE_CHECKSUMS``."""
        if algorithm not in COMPUTABLE_CHECKSUMS:
            raise ValueError(f"cannot compute a {algorithm} checksum here")
        self.algorithm = algorithm
        self._crc = 0
        crc = _CRCS.get(algorithm)
        self._crc_fn: Callable[[bytes, int], int] | None = crc[0] if crc else None
        self._crc_bytes = crc[1] if crc else 0
        self._hash = (None if self._crc_fn is not None
                      else hashlib.new(algorithm.lower(), usedforsecurity=False))

    def update(self, data: bytes) -> None:
        """Add the next bytes of the content."""
        if self._crc_fn is not None:
            self._crc = self._crc_fn(data, self._crc)
        else:
            assert self._hash is not None
            self._hash.update(data)

    def value(self) -> str:
        """The checksum of everything added so far, base64 as in ``Checksum.value``."""
        raw = (self._crc.to_bytes(self._crc_bytes, "big") if self._hash is None
               else self._hash.digest())
        return base64.b64encode(raw).decode("ascii")


def checksum_of(algorithm: str, body: bytes) -> str:
    """The ``algorithm`` checksum of ``body`` in S3's form (see ``ChecksumDigest``)."""
    digest = ChecksumDigest(algorithm)
    digest.update(body)
    return digest.value()


class ChecksumMismatch(OSError):
    """The bytes read differ from the object's stored S3 checksum. S3 refuses a PUT whose
    declared checksum does not match, so this is a corruption in transit or on local disk, not
    the producer's file: an infrastructure failure (an ``OSError``), retried by the queue."""


@dataclass(frozen=True)
class ObjectInfo:
    """What ``head`` and ``list`` tell about one object."""

    key: str
    """Object key, decoded."""
    size: int
    """Size in bytes."""
    etag: str
    """Entity tag, without quotes."""
    last_modified: datetime
    """Last write time, UTC."""
    content_type: str = ""
    """MIME type stored with the object ("" when ``list`` does not know it)."""
    version_id: str | None = None
    """Version id in a versioned bucket, else None."""
    cache_control: str | None = None
    """``Cache-Control`` stored with the object (None when unset, or from ``list``)."""
    checksum: Checksum | None = None
    """The S3 checksum stored with the object (``head`` only; None when it has none)."""


class Store(Protocol):
    """Object storage as opendepot uses it."""

    def get(self, bucket: str, key: str, *, version_id: str | None = None) -> bytes:
        """Return the object's bytes (of ``version_id`` when given). Raises NotFound."""
        ...

    def get_file(
        self, bucket: str, key: str, out: BinaryIO, *, version_id: str | None = None
    ) -> int:
        """Stream the object into ``out`` (a binary file open for writing); return its size in
        bytes. Raises NotFound."""
        ...

    def head(self, bucket: str, key: str, *, version_id: str | None = None) -> ObjectInfo | None:
        """Return the object's metadata (of ``version_id`` when given, with its checksum when
        it has one), or None when it (or that version) does not exist."""
        ...

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
        """Write the object (bytes, or a binary file streamed from its current position) and
        return its ETag.

        ``if_match``: write only if the current ETag is this one; ``if_none_match``: write only
        if no object exists. Raises PreconditionFailed when the condition does not hold.
        """
        ...

    def copy(
        self, bucket: str, src_key: str, dst_key: str, *, cache_control: str | None = None
    ) -> None:
        """Copy an object inside one bucket (content type kept)."""
        ...

    def list(self, bucket: str, prefix: str) -> list[ObjectInfo]:
        """List every object whose key starts with ``prefix``, sorted by key."""
        ...

    def delete(self, bucket: str, key: str, *, version_id: str | None = None) -> None:
        """Delete the object (in a versioned bucket: add a delete marker; with ``version_id``:
        that version, for good). Absent: nothing."""
        ...


class Queue(Protocol):
    """A message queue as opendepot uses it."""

    def send(self, queue_url: str, body: dict[str, Any], *, group_id: str | None = None) -> None:
        """Send a JSON message; FIFO queues take ``group_id`` and deduplicate on the body."""
        ...


def _strip(etag: str) -> str:
    return etag.strip('"')


def etags_of(body: bytes | Path) -> set[str]:
    """The ETags, without quotes, a put of ``body`` (bytes, or a local file) can leave: its MD5
    hex (one request, ``MemoryStore``), and above ``MULTIPART_THRESHOLD`` bytes the multipart
    form ``S3Store.put`` writes (MD5 of the ``PART_SIZE`` parts' MD5 digests, ``-{parts}``).
    Raises OSError when the file cannot be read."""
    whole, size = hashlib.md5(usedforsecurity=False), 0
    parts: list[bytes] = []
    with (io.BytesIO(body) if isinstance(body, bytes) else body.open("rb")) as f:
        while piece := f.read(PART_SIZE):
            whole.update(piece)
            size += len(piece)
            parts.append(hashlib.md5(piece, usedforsecurity=False).digest())
    out = {whole.hexdigest()}
    if size > MULTIPART_THRESHOLD:
        out.add(f"{hashlib.md5(b''.join(parts), usedforsecurity=False).hexdigest()}-{len(parts)}")
    return out


def _remaining(body: Body) -> int:
    """Bytes left to read in ``body`` (bytes, or a file from its current position); -1 for a
    file that cannot seek (then it goes in one request, as before)."""
    if isinstance(body, bytes):
        return len(body)
    try:
        here = body.tell()
        end = body.seek(0, io.SEEK_END)
        body.seek(here)
    except (OSError, ValueError):
        return -1
    return end - here


class S3Store:
    """``Store`` over a boto3 S3 client (real S3 or moto). Large objects go in bounded pieces,
    as S3 advises: puts (but ``if_match`` ones) and copies above ``MULTIPART_THRESHOLD`` as
    multipart uploads of ``PART_SIZE`` parts (ETag and checksums then of the ``-N`` multipart kind),
    ``get_file`` as ranged GETs of ``PART_SIZE``; so memory stays about one ``PART_SIZE``
    piece whatever the object's size."""

    def __init__(self, client: Any) -> None:
        self._s3 = client
        self._transfer: Any = None

    def _config(self) -> Any:
        """boto3's ``TransferConfig`` for managed copies (made on first use)."""
        if self._transfer is None:
            from boto3.s3.transfer import TransferConfig

            self._transfer = TransferConfig(
                multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=PART_SIZE,
                max_concurrency=TRANSFER_THREADS, io_chunksize=1 << 20)
        return self._transfer

    def _code(self, exc: Exception) -> str:
        return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))

    def _object(self, bucket: str, key: str, version_id: str | None, method: str,
                **extra: Any) -> Any:
        """``get_object`` or ``head_object`` (``method``) of the key or one version of it.
        Raises NotFound for a missing key or version; other errors go through."""
        args = {"Bucket": bucket, "Key": key, **extra}
        if version_id and version_id != "null":
            args["VersionId"] = version_id
        try:
            return getattr(self._s3, method)(**args)
        except Exception as exc:  # botocore ClientError; NoSuchVersion has no modelled class
            if self._code(exc) in {"404", "NoSuchKey", "NoSuchVersion", "NotFound"}:
                version = f" version {version_id}" if version_id else ""
                raise NotFound(f"s3://{bucket}/{key}{version}") from exc
            raise

    def get(self, bucket: str, key: str, *, version_id: str | None = None) -> bytes:
        body: bytes = self._object(bucket, key, version_id, "get_object")["Body"].read()
        return body

    def get_range(self, bucket: str, key: str, start: int, length: int) -> bytes:
        """Bytes ``start`` to ``start + length - 1`` of the object (one ranged GET; fewer past
        its end). Not part of ``Store``: readers check for it. Raises NotFound."""
        rng = f"bytes={start}-{start + max(length, 1) - 1}"
        body: bytes = self._object(bucket, key, None, "get_object", Range=rng)["Body"].read()
        return body

    def get_file(
        self, bucket: str, key: str, out: BinaryIO, *, version_id: str | None = None
    ) -> int:
        """``Store.get_file`` by ranged GETs of ``PART_SIZE`` bytes, so no piece of the object
        is held whole; after the first, each GET names the version read first (or ``If-Match``
        its ETag), so a concurrent overwrite raises PreconditionFailed instead of mixing two
        contents. An empty object (HTTP 416 on a range) is read by one plain GET."""
        first = f"bytes=0-{PART_SIZE - 1}"
        try:
            r = self._object(bucket, key, version_id, "get_object", Range=first)
        except Exception as exc:  # botocore ClientError
            if self._code(exc) not in {"InvalidRange", "416"}:
                raise
            r = self._object(bucket, key, version_id, "get_object")
        size = self._drain(r["Body"], out)
        total = int(r.get("ContentRange", "/0").rsplit("/", 1)[1] or 0)
        pin = {"IfMatch": r["ETag"]} if r.get("ETag") else {}
        version = version_id or r.get("VersionId")
        while size < total:
            rng = f"bytes={size}-{min(size + PART_SIZE, total) - 1}"
            try:
                r = self._object(bucket, key, version, "get_object", Range=rng, **pin)
            except Exception as exc:  # botocore ClientError
                if self._code(exc) in {"PreconditionFailed", "412"}:
                    raise PreconditionFailed(f"s3://{bucket}/{key} changed while read") from exc
                raise
            got = self._drain(r["Body"], out)
            if got == 0:
                raise StorageError(f"s3://{bucket}/{key}: empty range {rng} of {total} bytes")
            size += got
        return size

    @staticmethod
    def _drain(body: Any, out: BinaryIO) -> int:
        """Write a botocore streaming body into ``out`` in ``COPY_CHUNK`` pieces; its size."""
        size = 0
        for chunk in body.iter_chunks(COPY_CHUNK):
            out.write(chunk)
            size += len(chunk)
        return size

    def head(self, bucket: str, key: str, *, version_id: str | None = None) -> ObjectInfo | None:
        try:
            r = self._object(bucket, key, version_id, "head_object", ChecksumMode="ENABLED")
        except NotFound:
            return None
        checksum = None
        for algorithm in CHECKSUM_ALGORITHMS:
            if value := r.get(f"Checksum{algorithm}"):
                # without ChecksumType (older APIs, moto), a multipart upload's (ETag "...-N")
                # checksum is taken as composite: it cannot be checked against the content
                multipart = "-" in value or "-" in r.get("ETag", "")
                kind = r.get("ChecksumType") or ("COMPOSITE" if multipart else "FULL_OBJECT")
                checksum = Checksum(algorithm, value, kind)
                break
        return ObjectInfo(
            key=key,
            size=int(r["ContentLength"]),
            etag=_strip(r["ETag"]),
            last_modified=r["LastModified"],
            content_type=r.get("ContentType", ""),
            version_id=r.get("VersionId"),
            cache_control=r.get("CacheControl"),
            checksum=checksum,
        )

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
        args: dict[str, Any] = {
            "Bucket": bucket,
            "Key": key,
            "Body": body,
            "ContentType": content_type,
        }
        if if_match is not None:
            args["IfMatch"] = f'"{if_match}"'
        if if_none_match:
            args["IfNoneMatch"] = "*"
        if cache_control:
            args["CacheControl"] = cache_control
        if if_match is None and _remaining(body) > MULTIPART_THRESHOLD:
            return self._put_multipart(bucket, key, body, args)
        try:
            return _strip(self._s3.put_object(**args)["ETag"])
        except Exception as exc:
            if self._code(exc) in {"PreconditionFailed", "412", "ConditionalRequestConflict"}:
                raise PreconditionFailed(f"s3://{bucket}/{key}: {self._code(exc)}") from exc
            raise

    def _put_multipart(self, bucket: str, key: str, body: Body, args: dict[str, Any]) -> str:
        """A put of more than ``MULTIPART_THRESHOLD`` bytes as a multipart upload of
        ``PART_SIZE`` parts read from the file one at a time (aborted on failure); its ETag
        (``"{md5 of the parts' md5s}-{parts}"``, see ``etags_of``). ``If-None-Match: *`` goes
        on the completion, as S3 allows (``If-Match`` puts stay single requests).

        Not boto3's ``upload_fileobj``: for a file object it reads parts into memory ahead of
        its threads, and they stay referenced from cycles until the garbage collector runs
        (measured: 150 MiB still held after a 150 MiB put); one part at a time is bounded."""
        extra = {name: args[name] for name in ("ContentType", "CacheControl") if name in args}
        fileobj = io.BytesIO(body) if isinstance(body, bytes) else body
        checksum: dict[str, str] = {}
        config = getattr(getattr(self._s3, "meta", None), "config", None)
        if getattr(config, "request_checksum_calculation", None) == "when_supported":
            checksum = {"ChecksumAlgorithm": "CRC32"}  # as s3transfer does: every part checked
        upload = self._s3.create_multipart_upload(
            Bucket=bucket, Key=key, **extra, **checksum)["UploadId"]
        parts: list[dict[str, Any]] = []
        try:
            while piece := fileobj.read(PART_SIZE):
                number = len(parts) + 1
                sent = self._s3.upload_part(Bucket=bucket, Key=key, UploadId=upload,
                                            PartNumber=number, Body=piece, **checksum)
                parts.append({"PartNumber": number, "ETag": sent["ETag"],
                              **{f"Checksum{v}": sent[f"Checksum{v}"] for v in checksum.values()}})
                del piece
            done = self._s3.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts},
                **({"IfNoneMatch": "*"} if "IfNoneMatch" in args else {}))
        except Exception as exc:
            self._s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)
            if self._code(exc) in {"PreconditionFailed", "412", "ConditionalRequestConflict"}:
                raise PreconditionFailed(f"s3://{bucket}/{key}: {self._code(exc)}") from exc
            raise
        return _strip(done["ETag"])

    def copy(
        self, bucket: str, src_key: str, dst_key: str, *, cache_control: str | None = None
    ) -> None:
        """``Store.copy``; above ``MULTIPART_THRESHOLD`` bytes as a multipart copy
        (``UploadPartCopy`` of ``PART_SIZE`` ranges, boto3's managed ``copy``), below in one
        ``CopyObject``. Raises NotFound when the source does not exist."""
        head = self.head(bucket, src_key)
        if head is None:
            raise NotFound(f"s3://{bucket}/{src_key}")
        extra: dict[str, Any] = {}
        if cache_control:
            extra = {"MetadataDirective": "REPLACE", "CacheControl": cache_control,
                     "ContentType": head.content_type or "application/octet-stream"}
        source = {"Bucket": bucket, "Key": src_key}
        if head.size > MULTIPART_THRESHOLD:
            self._s3.copy(source, bucket, dst_key, ExtraArgs=extra, Config=self._config())
        else:
            self._s3.copy_object(Bucket=bucket, Key=dst_key, CopySource=source, **extra)

    def delete(self, bucket: str, key: str, *, version_id: str | None = None) -> None:
        args: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id is not None:
            args["VersionId"] = version_id
        try:
            self._s3.delete_object(**args)
        except Exception as exc:  # botocore ClientError
            if self._code(exc) not in {"404", "NoSuchKey", "NoSuchVersion", "NotFound"}:
                raise

    def list(self, bucket: str, prefix: str) -> list[ObjectInfo]:
        out: list[ObjectInfo] = []
        for page in self._s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix
        ):
            for o in page.get("Contents", []):
                out.append(
                    ObjectInfo(
                        key=o["Key"],
                        size=int(o["Size"]),
                        etag=_strip(o["ETag"]),
                        last_modified=o["LastModified"],
                    )
                )
        return sorted(out, key=lambda o: o.key)


@dataclass(frozen=True)
class StoredObject:
    """One object of a ``MemoryStore`` (replaced whole on every write)."""

    body: bytes
    """The object's bytes."""
    content_type: str
    """MIME type given to ``put``."""
    etag: str
    """MD5 of the body, hex (S3's single-part ETag, without quotes)."""
    last_modified: datetime
    """Time of the write, UTC."""
    cache_control: str | None = None
    """``Cache-Control`` given to ``put`` or ``copy``, else None."""
    checksum: Checksum | None = None
    """The S3 checksum ``put`` computed (``checksum_algorithm``), else None."""
    version_id: str | None = None
    """Its version id in a ``versioned`` store, else None."""


@dataclass
class MemoryStore:
    """``Store`` in memory, for unit tests. Enforces the same preconditions as S3.

    ``versioned``: like a versioned S3 bucket, every ``put`` keeps its object as a new version
    (its id in ``head``), readable by ``version_id`` until ``delete`` removes that version; an
    unversioned store ignores ``version_id``. A missing key or version raises ``NotFound``."""

    buckets: dict[str, dict[str, StoredObject]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    versioned: bool = False
    versions: dict[tuple[str, str, str], StoredObject] = field(default_factory=dict)
    """Every version of a ``versioned`` store, by (bucket, key, version id), oldest first."""
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1), repr=False)

    def _bucket(self, bucket: str) -> dict[str, StoredObject]:
        return self.buckets.setdefault(bucket, {})

    def _find(self, bucket: str, key: str, version_id: str | None) -> StoredObject | None:
        if self.versioned and version_id and version_id != "null":
            return self.versions.get((bucket, key, version_id))
        return self._bucket(bucket).get(key)

    def get(self, bucket: str, key: str, *, version_id: str | None = None) -> bytes:
        obj = self._find(bucket, key, version_id)
        if obj is None:
            version = f" version {version_id}" if version_id and self.versioned else ""
            raise NotFound(f"s3://{bucket}/{key}{version}")
        return obj.body

    def get_range(self, bucket: str, key: str, start: int, length: int) -> bytes:
        """``S3Store.get_range``: bytes ``start`` to ``start + length - 1`` of the object."""
        return self.get(bucket, key)[start:start + length]

    def get_file(
        self, bucket: str, key: str, out: BinaryIO, *, version_id: str | None = None
    ) -> int:
        body = self.get(bucket, key, version_id=version_id)
        out.write(body)
        return len(body)

    def head(self, bucket: str, key: str, *, version_id: str | None = None) -> ObjectInfo | None:
        obj = self._find(bucket, key, version_id)
        if obj is None:
            return None
        return ObjectInfo(key, len(obj.body), obj.etag, obj.last_modified, obj.content_type,
                          version_id=obj.version_id, cache_control=obj.cache_control,
                          checksum=obj.checksum)

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
        checksum_algorithm: str | None = None,
    ) -> str:
        """``Store.put``; ``checksum_algorithm`` (one of ``COMPUTABLE_CHECKSUMS``) stores the
        body's checksum with it, as S3 does for ``x-amz-checksum-*`` / ``ChecksumAlgorithm``."""
        if not isinstance(body, bytes):
            body = body.read()
        checksum = (Checksum(checksum_algorithm, checksum_of(checksum_algorithm, body))
                    if checksum_algorithm else None)
        with self._lock:
            objects = self._bucket(bucket)
            current = objects.get(key)
            if if_none_match and current is not None:
                raise PreconditionFailed(f"s3://{bucket}/{key} exists")
            if if_match is not None and (current is None or current.etag != if_match):
                raise PreconditionFailed(f"s3://{bucket}/{key} changed")
            etag = hashlib.md5(body, usedforsecurity=False).hexdigest()
            version = str(next(self._ids)) if self.versioned else None
            objects[key] = StoredObject(body, content_type, etag, datetime.now(UTC), cache_control,
                                        checksum, version)
            if version is not None:
                self.versions[(bucket, key, version)] = objects[key]
            return etag

    def delete(self, bucket: str, key: str, *, version_id: str | None = None) -> None:
        """Delete the object (its versions stay readable by id, as behind an S3 delete
        marker), or with ``version_id`` in a ``versioned`` store that version only, for good
        (the newest version left becomes the current one, as in S3). Absent: nothing."""
        with self._lock:
            objects = self._bucket(bucket)
            if version_id is None or not self.versioned:
                objects.pop(key, None)
                return
            self.versions.pop((bucket, key, version_id), None)
            current = objects.get(key)
            if current is not None and current.version_id == version_id:
                left = [o for (b, k, _), o in self.versions.items() if (b, k) == (bucket, key)]
                if left:
                    objects[key] = left[-1]
                else:
                    del objects[key]

    def copy(
        self, bucket: str, src_key: str, dst_key: str, *, cache_control: str | None = None
    ) -> None:
        src = self._bucket(bucket).get(src_key)
        if src is None:
            raise NotFound(f"s3://{bucket}/{src_key}")
        self.put(bucket, dst_key, src.body, src.content_type, cache_control=cache_control)

    def list(self, bucket: str, prefix: str) -> list[ObjectInfo]:
        return [
            ObjectInfo(k, len(o.body), o.etag, o.last_modified, o.content_type)
            for k, o in sorted(self._bucket(bucket).items())
            if k.startswith(prefix)
        ]


class SqsQueue:
    """``Queue`` over a boto3 SQS client."""

    def __init__(self, client: Any) -> None:
        self._sqs = client

    def send(self, queue_url: str, body: dict[str, Any], *, group_id: str | None = None) -> None:
        args: dict[str, Any] = {
            "QueueUrl": queue_url, "MessageBody": json.dumps(body, sort_keys=True)}
        if group_id is not None:
            args["MessageGroupId"] = group_id
        self._sqs.send_message(**args)


@dataclass
class MemoryQueue:
    """``Queue`` in memory, for unit tests: keeps what was sent."""

    sent: list[tuple[str, dict[str, Any], str | None]] = field(default_factory=list)

    def send(self, queue_url: str, body: dict[str, Any], *, group_id: str | None = None) -> None:
        self.sent.append((queue_url, body, group_id))
