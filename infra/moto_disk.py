"""Local stack only: make moto 5.2.5's S3 keep large objects on disk while serving them.

moto stores each object in a ``SpooledTemporaryFile`` (in memory up to
``MOTO_S3_DEFAULT_KEY_BUFFER_SIZE``, about 5 MB, then on disk), but its request paths read
whole objects into ``bytes``: a ranged GET reads the whole object then slices it;
``UploadPartCopy`` reads the whole source for one part; completing a multipart upload
concatenates every part in a ``bytearray`` (and again for the default CRC64NVME full-object
checksum) before writing the result, several copies of the object at once. ``apply()`` replaces
these points, so that with ``opendepot.storage.S3Store`` (multipart puts and copies, ranged
GETs of bounded size) no request holds more than one part:

- ``FakeKey.value`` (read) with ``S3Response.get_object``: a single-range ``GetObject`` reads
  only its range (seek + read) and answers 206 itself;
- ``FakeKey.value`` (write): also takes a readable file, copied in 8 MiB pieces;
- ``FakeMultipart.complete``: hands the parts' spooled files to the new key as one sequential
  reader, and computes a CRC32 / CRC64NVME full-object checksum incrementally (composite ones
  part by part);
- ``S3Backend.upload_part_copy``: reads only the source range;
- ``S3Response.key_response``: drops the request body once answered. The server's werkzeug
  request is in a reference cycle, so without this every part's body stays in memory until
  the cyclic garbage collector runs (it counts objects, not bytes: a 300 MB upload kept about
  130 MB of dead part bodies).

Single-request ``PutObject``, ``CopyObject`` and unranged ``GetObject`` still hold the whole
body (moto's request and response model is bytes); ``S3Store`` sends puts and copies that way
only below its multipart threshold (and ``if_match`` puts), and ``Store.get`` reads whole.
This is test/emulator plumbing, never imported by Lambda code. It checks moto's version and
refuses to patch any other (``MotoVersionError``): the patched methods are moto internals.
``restore()`` puts moto back as it was.
"""

from __future__ import annotations

import base64
import binascii
import contextvars
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

SUPPORTED_MOTO = ("5.2.5",)
"""moto versions whose internals this module was written against."""

PIECE = 8 << 20
"""Bytes per read when copying between moto's spooled files."""

_want: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar(
    "moto_disk_range", default=None)
"""Set by a ranged ``GetObject`` on its request thread: ``[begin, end, result]`` (``begin``
None for a suffix range of ``end`` bytes; ``result`` (begin, end, size) once read)."""
_saved: dict[str, Any] = {}
_lock = threading.Lock()


class MotoVersionError(RuntimeError):
    """The installed moto is not one of ``SUPPORTED_MOTO``: its internals may differ."""


def _simple_range(header: str | None) -> tuple[int | None, int | None] | None:
    """(begin, end) of a single ``bytes=a-b``, ``bytes=a-`` or ``bytes=-n`` range, else None."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[6:].partition("-")
    try:
        begin = int(first) if first.strip() else None
        end = int(last) if last.strip() else None
    except ValueError:
        return None
    return None if begin is None and end is None else (begin, end)


def _read_range(key: Any, begin: int, end: int) -> bytes:
    """Bytes ``begin`` to ``end`` (inclusive) of a ``FakeKey``'s spooled file."""
    with key.lock:
        key._value_buffer.seek(begin)
        data: bytes = key._value_buffer.read(end - begin + 1)
        return data


def _value_get(key: Any) -> bytes:
    want = _want.get()
    if want is not None and want[2] is None:
        size = key.contentsize
        begin, end = want[0], want[1]
        if begin is None:  # suffix range: the last ``end`` bytes
            begin, end = size - min(end, size), size - 1
        else:
            end = size - 1 if end is None else min(end, size - 1)
        if 0 <= begin <= end:  # else moto answers (416, or the whole object) as before
            want[2] = (begin, end, size)
            return _read_range(key, begin, end)
    value: bytes = _saved["value"].fget(key)
    return value


def _value_set(key: Any, new_value: Any) -> None:
    if not hasattr(new_value, "read"):
        _saved["value"].fset(key, new_value)
        return
    key._value_buffer.seek(0)
    key._value_buffer.truncate()
    size = 0
    while piece := new_value.read(PIECE):
        key._value_buffer.write(piece)
        size += len(piece)
    key.contentsize = size


def _get_object(self: Any) -> Any:
    spec = _simple_range(self.headers.get("range"))
    if spec is None or self._get_int_param("partNumber"):
        return _saved["get_object"](self)
    want: list[Any] = [spec[0], spec[1], None]
    token = _want.set(want)
    try:
        status, headers, body = _saved["get_object"](self)
    finally:
        _want.reset(token)
    if status != 200 or want[2] is None:
        return status, headers, body
    begin, end, size = want[2]
    if begin or end < size - 1:  # S3 gives no checksum for part of an object
        for name in [h for h in headers if h.lower().startswith("x-amz-checksum-")]:
            del headers[name]
    headers["content-range"] = f"bytes {begin}-{end}/{size}"
    headers["content-length"] = str(len(body))
    return 206, headers, body


def _key_response(self: Any, request: Any, full_url: str, headers: Any) -> Any:
    try:
        return _saved["key_response"](self, request, full_url, headers)
    finally:  # the server's request sits in a reference cycle (environ <-> request)
        for owner in (request, self):
            cached = getattr(owner, "__dict__", {})
            for name in ("data", "_cached_data", "body"):
                if isinstance(cached.get(name), bytes | bytearray):
                    cached[name] = b""


class _Parts:
    """The parts of a completed multipart upload read one after another, as one file. It takes
    the parts' spooled files (leaving each part an empty one): moto disposes of the upload's
    parts as soon as ``complete`` returns, before the new key reads them. Each file is closed
    once read."""

    def __init__(self, parts: list[Any]) -> None:
        self._files: list[Any] = []
        for part in parts:
            with part.lock:
                self._files.append(part._value_buffer)
                part._value_buffer = tempfile.SpooledTemporaryFile(part._max_buffer_size)
        for f in self._files:
            f.seek(0)

    def read(self, size: int) -> bytes:
        while self._files:
            data: bytes = self._files[0].read(size)
            if data:
                return data
            self._files.pop(0).close()
        return b""


class _FullObjectCrc:
    """moto's ``MultipartChecksumBuilder`` for a full-object CRC32 / CRC64NVME, incremental
    (moto's concatenates the whole object first). Same values as ``compute_checksum``."""

    def __init__(self, algorithm: str) -> None:
        from awscrt import checksums

        self.algorithm = algorithm
        self._fn = checksums.crc64nvme if algorithm == "CRC64NVME" else binascii.crc32
        self._width = 8 if algorithm == "CRC64NVME" else 4
        self._crc = 0
        self.part_count = 0

    def add(self, key: Any) -> None:
        for start in range(0, key.contentsize, PIECE):
            data = _read_range(key, start, min(start + PIECE, key.contentsize) - 1)
            self._crc = self._fn(data, self._crc)
        self.part_count += 1

    def build(self) -> tuple[str, str, int]:
        raw = self._crc.to_bytes(self._width, "big")
        return "FULL_OBJECT", base64.b64encode(raw).decode(), 1


def _checksum_builder(multipart: Any) -> Any:
    """An incremental checksum builder for ``multipart`` (``add(part)``, ``build()``), or None
    where only moto's own ``complete`` knows the algorithm (full-object CRC32C, no CRT)."""
    from moto.core.compat import HAS_CRT
    from moto.s3.models import MultipartChecksumBuilder

    algorithm = multipart.metadata.get("x-amz-checksum-algorithm") or "CRC64NVME"
    kind = multipart.metadata.get("x-amz-checksum-type") or (
        "FULL_OBJECT" if algorithm == "CRC64NVME" else "COMPOSITE")
    if kind == "COMPOSITE":  # one digest per part: moto's builder reads one part at a time

        class _Composite(MultipartChecksumBuilder):  # type: ignore[misc]
            def add(self, key: Any) -> None:
                self.addPart(key.value)

        return _Composite(algorithm, kind)
    if algorithm in ("CRC32", "CRC64NVME") and HAS_CRT:
        return _FullObjectCrc(algorithm)
    return None


def _complete(self: Any, body: Iterator[tuple[int, str]]) -> tuple[Any, str, Any]:
    from moto.s3.exceptions import EntityTooSmall, InvalidPart, MalformedXML
    from moto.settings import S3_UPLOAD_PART_MIN_SIZE
    from moto.utilities.utils import md5_hash

    checksum = _checksum_builder(self)
    if checksum is None:
        return _saved["complete"](self, body)
    md5s, parts, last = bytearray(), [], None
    for number, etag in body:
        part = self.parts.get(number)
        part_etag = part.etag.replace('"', "") if part is not None else None
        if part is None or part_etag != etag.replace('"', ""):
            raise InvalidPart()
        if last is not None and last.contentsize < S3_UPLOAD_PART_MIN_SIZE:
            raise EntityTooSmall()
        md5s.extend(binascii.unhexlify(part_etag))
        checksum.add(part)
        parts.append(part)
        last = part
    if not parts:
        raise MalformedXML
    full = md5_hash()
    full.update(bytes(md5s))
    return _Parts(parts), f"{full.hexdigest()}-{len(parts)}", checksum.build()


def _upload_part_copy(self: Any, dest_bucket_name: str, multipart_id: str, part_id: int,
                      src_bucket_name: str, src_key_name: str, src_version_id: str | None,
                      start_byte: int, end_byte: int) -> Any:
    multipart = self.get_bucket(dest_bucket_name).multiparts[multipart_id]
    src = self.get_object(src_bucket_name, src_key_name, version_id=src_version_id)
    if start_byte is None:
        return _saved["upload_part_copy"](self, dest_bucket_name, multipart_id, part_id,
                                          src_bucket_name, src_key_name, src_version_id,
                                          start_byte, end_byte)
    end = min(end_byte, src.contentsize - 1)
    return multipart.set_part(part_id, _read_range(src, start_byte, end))


def apply() -> None:
    """Patch moto's S3 as the module docstring says (idempotent). Raises MotoVersionError on a
    moto other than ``SUPPORTED_MOTO``."""
    import moto
    from moto.s3.models import FakeKey, FakeMultipart, S3Backend
    from moto.s3.responses import S3Response

    if moto.__version__ not in SUPPORTED_MOTO:
        raise MotoVersionError(
            f"infra.moto_disk patches moto {', '.join(SUPPORTED_MOTO)} internals; found moto "
            f"{moto.__version__}: check FakeKey.value, FakeMultipart.complete, "
            "S3Backend.upload_part_copy, S3Response.get_object and .key_response, then add it")
    with _lock:
        if _saved:
            return
        _saved.update(value=FakeKey.value, complete=FakeMultipart.complete,
                      upload_part_copy=S3Backend.upload_part_copy,
                      get_object=S3Response.get_object, key_response=S3Response.key_response)
        FakeKey.value = property(_value_get, _value_set)  # type: ignore[assignment]
        FakeMultipart.complete = _complete  # type: ignore[method-assign]
        S3Backend.upload_part_copy = _upload_part_copy  # type: ignore[method-assign]
        S3Response.get_object = _get_object  # type: ignore[method-assign]
        S3Response.key_response = _key_response  # type: ignore[method-assign]


def restore() -> None:
    """Undo ``apply`` (nothing if it was not applied)."""
    from moto.s3.models import FakeKey, FakeMultipart, S3Backend
    from moto.s3.responses import S3Response

    with _lock:
        if not _saved:
            return
        FakeKey.value = _saved["value"]  # type: ignore[method-assign]
        FakeMultipart.complete = _saved["complete"]  # type: ignore[method-assign]
        S3Backend.upload_part_copy = _saved["upload_part_copy"]  # type: ignore[method-assign]
        S3Response.get_object = _saved["get_object"]  # type: ignore[method-assign]
        S3Response.key_response = _saved["key_response"]  # type: ignore[method-assign]
        _saved.clear()
