"""The storage and queue ports: the only code that talks to S3 and SQS.

``Store`` is the small interface the domain writes through (get, get_file, head, put with an
optional precondition, copy, list). Large objects never need to be held in memory: ``get_file``
streams an object into an open file, and ``put`` takes an open file as well as bytes.
``S3Store`` implements it over a boto3 S3 client (real S3 and moto alike); ``MemoryStore``
implements it in memory for unit tests. ``Queue`` is the same idea for SQS (``SqsQueue``,
``MemoryQueue``).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO, Protocol

Body = bytes | BinaryIO
"""An object's content: bytes, or a binary file open for reading at its start (streamed)."""

COPY_CHUNK = 8 << 20
"""Bytes per read when streaming an object into a file."""


class StorageError(RuntimeError):
    """Base class of storage failures (infrastructure, not data): let the queue retry."""


class PreconditionFailed(StorageError):
    """A conditional write lost: ``If-Match`` or ``If-None-Match`` did not hold (HTTP 412)."""


class NotFound(StorageError):
    """The object does not exist."""


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

    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        """Return the object's metadata, or None when it does not exist."""
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


class Queue(Protocol):
    """A message queue as opendepot uses it."""

    def send(self, queue_url: str, body: dict[str, Any], *, group_id: str | None = None) -> None:
        """Send a JSON message; FIFO queues take ``group_id`` and deduplicate on the body."""
        ...


def _strip(etag: str) -> str:
    return etag.strip('"')


class S3Store:
    """``Store`` over a boto3 S3 client (real S3 or moto)."""

    def __init__(self, client: Any) -> None:
        self._s3 = client

    def _code(self, exc: Exception) -> str:
        return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))

    def get(self, bucket: str, key: str, *, version_id: str | None = None) -> bytes:
        args = {"Bucket": bucket, "Key": key}
        if version_id and version_id != "null":
            args["VersionId"] = version_id
        try:
            body: bytes = self._s3.get_object(**args)["Body"].read()
        except self._s3.exceptions.NoSuchKey as exc:
            raise NotFound(f"s3://{bucket}/{key}") from exc
        return body

    def get_file(
        self, bucket: str, key: str, out: BinaryIO, *, version_id: str | None = None
    ) -> int:
        args = {"Bucket": bucket, "Key": key}
        if version_id and version_id != "null":
            args["VersionId"] = version_id
        try:
            body = self._s3.get_object(**args)["Body"]
        except self._s3.exceptions.NoSuchKey as exc:
            raise NotFound(f"s3://{bucket}/{key}") from exc
        size = 0
        for chunk in body.iter_chunks(COPY_CHUNK):
            out.write(chunk)
            size += len(chunk)
        return size

    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        try:
            r = self._s3.head_object(Bucket=bucket, Key=key)
        except Exception as exc:  # botocore ClientError: 404 has no modelled exception
            if self._code(exc) in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise
        return ObjectInfo(
            key=key,
            size=int(r["ContentLength"]),
            etag=_strip(r["ETag"]),
            last_modified=r["LastModified"],
            content_type=r.get("ContentType", ""),
            version_id=r.get("VersionId"),
            cache_control=r.get("CacheControl"),
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
        try:
            return _strip(self._s3.put_object(**args)["ETag"])
        except Exception as exc:
            if self._code(exc) in {"PreconditionFailed", "412", "ConditionalRequestConflict"}:
                raise PreconditionFailed(f"s3://{bucket}/{key}: {self._code(exc)}") from exc
            raise

    def copy(
        self, bucket: str, src_key: str, dst_key: str, *, cache_control: str | None = None
    ) -> None:
        args: dict[str, Any] = {
            "Bucket": bucket,
            "Key": dst_key,
            "CopySource": {"Bucket": bucket, "Key": src_key},
        }
        if cache_control:
            head = self.head(bucket, src_key)
            args.update(
                MetadataDirective="REPLACE",
                CacheControl=cache_control,
                ContentType=head.content_type if head else "application/octet-stream",
            )
        self._s3.copy_object(**args)

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


@dataclass
class MemoryStore:
    """``Store`` in memory, for unit tests. Enforces the same preconditions as S3."""

    buckets: dict[str, dict[str, StoredObject]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _bucket(self, bucket: str) -> dict[str, StoredObject]:
        return self.buckets.setdefault(bucket, {})

    def get(self, bucket: str, key: str, *, version_id: str | None = None) -> bytes:
        obj = self._bucket(bucket).get(key)
        if obj is None:
            raise NotFound(f"s3://{bucket}/{key}")
        return obj.body

    def get_file(
        self, bucket: str, key: str, out: BinaryIO, *, version_id: str | None = None
    ) -> int:
        body = self.get(bucket, key, version_id=version_id)
        out.write(body)
        return len(body)

    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        obj = self._bucket(bucket).get(key)
        if obj is None:
            return None
        return ObjectInfo(key, len(obj.body), obj.etag, obj.last_modified, obj.content_type,
                          cache_control=obj.cache_control)

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
        if not isinstance(body, bytes):
            body = body.read()
        with self._lock:
            objects = self._bucket(bucket)
            current = objects.get(key)
            if if_none_match and current is not None:
                raise PreconditionFailed(f"s3://{bucket}/{key} exists")
            if if_match is not None and (current is None or current.etag != if_match):
                raise PreconditionFailed(f"s3://{bucket}/{key} changed")
            etag = hashlib.md5(body, usedforsecurity=False).hexdigest()
            objects[key] = StoredObject(body, content_type, etag, datetime.now(UTC), cache_control)
            return etag

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
