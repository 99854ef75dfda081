"""Test oracle: the in-memory decoder (bytes in, ``Decoded`` out), which production's
``opendepot.decode.decode`` (a thin wrapper over ``decode_file``) is compared with.

It was the former in-memory decoder (rebuilt from commit ea57cb6 by the publication helper);
issue 13 (items 1 and 2) changed it on purpose, in the simplest in-memory way, so the streaming
decoder is still checked against an independent reading of the same rules:
- gzip: every member is read and checked (CRC-32, length); a stream cut short, corrupt or
  followed by bytes other than a member or zero padding is a problem naming where it ends
  (the byte where zlib stops is found by feeding the member again one byte at a time), where
  it used to give what it held (cut short) or ignore what followed the first member;
- UTF-16 (BOM, or NUL high bytes) is converted to UTF-8;
- a NUL byte anywhere is a problem naming line and offset (it used to be only in the first
  64 KiB, and a problem without a place);
- a file with a valid UTF-8 multi-byte sequence and bytes that are not UTF-8 is refused; only
  a file with no UTF-8 sequence at all is read as CP1252 (it used to be the whole file as
  CP1252, mojibake included); encoding problems name line and offset (from the file's start);
- (issue 13 item 2, declared encodings) a file that is not UTF-8 is read in a single-byte
  encoding only when the dataset declares it (``encoding``: ``cp1252`` or ``iso-8859-15``,
  whose C1 control bytes 0x80-0x9f are refused); without one it is refused at its first byte
  that is not UTF-8 (``mixed_encodings`` when a UTF-8 sequence comes before it).
"""

from __future__ import annotations

import codecs
import re
import zlib

from opendepot.decode import (
    BOM,
    EMPTY,
    GZIP_MAGIC,
    NUL_SCAN_BYTES,
    RTF,
    RTF_MAGIC,
    Converter,
    Decoded,
    DecodeProblem,
    dialect,
)
from opendepot.decode_problems import (
    bad_utf16,
    bom_not_utf8,
    corrupt_gzip,
    mixed_encodings,
    not_text,
    not_utf8,
    too_big,
    trailing_gzip,
    truncated_gzip,
    undecodable,
    utf16_kind,
)

VALID_UTF8 = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}"
    rb"|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}"
    rb"|\xf4[\x80-\x8f][\x80-\xbf]{2}"
)


def _lines(out: bytes) -> tuple[int, bytes]:
    count = out.count(b"\n")
    return count, (out.split(b"\n")[-2][:80] if count else b"")


def _corrupt(raw: bytes, start: int, before: bytes) -> DecodeProblem:
    """The member at ``start`` fed one byte at a time: where zlib stops."""
    inflater = zlib.decompressobj(wbits=31)
    out = before
    for i in range(start, len(raw)):
        try:
            out += inflater.decompress(raw[i : i + 1])
        except zlib.error as exc:
            return corrupt_gzip(exc, i, *_lines(out))
    raise AssertionError("no error one byte at a time")


def gunzip(raw: bytes, max_bytes: int) -> bytes | DecodeProblem:
    """Decompress every gzip member without ever holding more than ``max_bytes`` of output."""
    out, start = b"", 0
    while True:
        inflater = zlib.decompressobj(wbits=31)
        try:
            piece = inflater.decompress(raw[start:], max_bytes + 1 - len(out))
        except zlib.error:
            return _corrupt(raw, start, out)
        out += piece
        if len(out) > max_bytes or inflater.unconsumed_tail:
            return too_big(len(raw), max_bytes)
        if not inflater.eof:
            return truncated_gzip(len(raw), *_lines(out))
        start = len(raw) - len(inflater.unused_data)
        rest = raw[start:]
        if not rest.strip(b"\x00"):
            return out
        if not rest.startswith(GZIP_MAGIC):
            return trailing_gzip(len(raw), start)


def line_of(raw: bytes, offset: int) -> int:
    return len(re.findall(rb"\r\n|\r|\n", raw[:offset])) + 1


UNDEFINED = {"cp1252": rb"[\x81\x8d\x8f\x90\x9d]", "iso-8859-15": rb"[\x80-\x9f]"}


def _to_utf8(raw: bytes, encoding: str | None) -> tuple[bytes, str] | DecodeProblem:
    nul = raw.find(b"\x00")
    nul = len(raw) if nul < 0 else nul
    if raw.startswith(BOM):
        try:
            text = raw[len(BOM) : nul].decode("utf-8")
        except UnicodeDecodeError as exc:
            at = len(BOM) + exc.start
            return bom_not_utf8(raw[at], at, line_of(raw, at))
        if nul < len(raw):
            return not_text(raw, nul, line_of(raw, nul))
        return text.encode(), "utf-8-sig"
    try:
        raw[:nul].decode("utf-8")
        if nul < len(raw):
            return not_text(raw, nul, line_of(raw, nul))
        return raw, "utf-8"
    except UnicodeDecodeError as exc:
        bad = exc.start
    seq = VALID_UTF8.search(raw)
    if seq and (encoding or seq.start() < bad):  # with an encoding: a UTF-8 sequence anywhere
        return mixed_encodings(raw[bad], bad, line_of(raw, bad), seq.start(),
                               line_of(raw, seq.start()), encoding)
    if encoding is None:
        return not_utf8(raw[bad], bad, line_of(raw, bad))
    undefined = re.search(UNDEFINED[encoding], raw)
    at = min(nul, undefined.start() if undefined else len(raw))
    if at == len(raw):
        return raw.decode(encoding).encode(), encoding
    if at == nul:
        return not_text(raw, at, line_of(raw, at))
    return undecodable(raw[at], at, line_of(raw, at), encoding)


def _normalise_line_ends(data: bytes) -> tuple[bytes, dict[str, int]]:
    if b"\r" not in data:  # LF only: one scan instead of four
        return data, {"lf": data.count(b"\n"), "crlf": 0, "cr": 0, "crcrlf": 0}
    crcrlf = data.count(b"\r\r\n")
    crlf = data.count(b"\r\n") - crcrlf
    cr = data.count(b"\r") - crlf - 2 * crcrlf
    lf = data.count(b"\n") - crlf - crcrlf
    if crcrlf:
        data = data.replace(b"\r\r\n", b"\n")
    if crlf:
        data = data.replace(b"\r\n", b"\n")
    if cr:
        data = data.replace(b"\r", b"\n")
    return data, {"lf": lf, "crlf": crlf, "cr": cr, "crcrlf": crcrlf}


def decode(
    raw: bytes, *, max_bytes: int, converter: Converter | None = None,
    encoding: str | None = None,
) -> Decoded | DecodeProblem:
    """Turn an object's bytes into UTF-8 CSV text and detect its dialect.

    ``converter`` (see ``opendepot.formats``) is given the decompressed bytes first, so Excel
    and YAML files become CSV text before the CSV rules apply. ``encoding``: the dataset's
    declared single-byte encoding, or None.
    """
    size = len(raw)
    compression = None
    if raw.startswith(GZIP_MAGIC):
        out = gunzip(raw, max_bytes)
        if isinstance(out, DecodeProblem):
            return out
        raw, compression = out, "gzip"
    return _decode_decompressed(raw, size=size, compression=compression, converter=converter,
                                encoding=encoding)


def _decode_decompressed(
    raw: bytes, *, size: int, compression: str | None, converter: Converter | None,
    encoding: str | None,
) -> Decoded | DecodeProblem:
    """``decode`` once the bytes are decompressed: conversion, checks, encoding, dialect."""
    was_converted = False
    if converter is not None and raw.strip():
        converted = converter(raw)
        if isinstance(converted, DecodeProblem):
            return converted
        if converted is not None:
            raw, was_converted = converted, True
    utf16 = utf16_kind(raw[:NUL_SCAN_BYTES])
    if utf16 is not None:
        encoding, start = utf16
        try:
            raw = codecs.decode(raw[start:], encoding).encode()
        except UnicodeDecodeError as exc:
            return bad_utf16(encoding, start + exc.start)
    if not raw.strip():
        return EMPTY
    if b"\x00" in raw[:NUL_SCAN_BYTES]:
        return not_text(raw, raw.index(b"\x00"), line_of(raw, raw.index(b"\x00")))
    if raw.removeprefix(BOM).lstrip().startswith(RTF_MAGIC):
        return RTF
    got = _to_utf8(raw, encoding)
    if isinstance(got, DecodeProblem):
        return got
    text, encoding = got
    text, line_ends = _normalise_line_ends(text)
    delimiter, header = dialect(text.split(b"\n", 1)[0])
    return Decoded(
        data=text,
        encoding=utf16[0] if utf16 else encoding,
        compression=compression,
        delimiter=delimiter,
        header=header,
        line_ends=line_ends,
        bytes=size,
        converted=was_converted,
    )
