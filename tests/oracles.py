"""Test oracle: the former in-memory decoder (bytes in, ``Decoded`` out), which production's
``opendepot.decode.decode`` (a thin wrapper over ``decode_file``) replaced.

NOTE (publication helper): this file was overwritten by mistake while it was being written by the
helper who moved the decoder here; it was rebuilt from the decoder removed from
``opendepot.decode`` (commit ea57cb6), using the names that module now makes public. Its author
should check it against what they meant it to hold.
"""

from __future__ import annotations

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
    corrupt_gzip,
    dialect,
    not_text,
    too_big,
    undecodable,
)


def gunzip(raw: bytes, max_bytes: int) -> bytes | DecodeProblem:
    """Decompress gzip without ever holding more than ``max_bytes`` of output."""
    inflater = zlib.decompressobj(wbits=47)  # 32 + 15: gzip or zlib header
    try:
        out = inflater.decompress(raw, max_bytes + 1)
    except zlib.error as exc:
        return corrupt_gzip(exc)
    if len(out) > max_bytes or inflater.unconsumed_tail:
        return too_big(len(raw), max_bytes)
    return out


def _to_utf8(raw: bytes) -> tuple[bytes, str]:
    if raw.startswith(BOM):
        body = raw[len(BOM) :]
        body.decode("utf-8")  # still strict: a BOM file that is not UTF-8 is an error
        return body, "utf-8-sig"
    try:
        raw.decode("utf-8")
        return raw, "utf-8"
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="strict").encode("utf-8"), "cp1252"


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
    raw: bytes, *, max_bytes: int, converter: Converter | None = None
) -> Decoded | DecodeProblem:
    """Turn an object's bytes into UTF-8 CSV text and detect its dialect.

    ``converter`` (see ``opendepot.formats``) is given the decompressed bytes first, so Excel
    and YAML files become CSV text before the CSV rules apply.

    Returns a ``DecodeProblem`` for: an empty object, a corrupt or oversized gzip stream, a
    binary file (NUL bytes), text that is neither UTF-8 nor CP1252, an RTF document.
    """
    size = len(raw)
    compression = None
    if raw.startswith(GZIP_MAGIC):
        out = gunzip(raw, max_bytes)
        if isinstance(out, DecodeProblem):
            return out
        raw, compression = out, "gzip"
    return _decode_decompressed(raw, size=size, compression=compression, converter=converter)


def _decode_decompressed(
    raw: bytes, *, size: int, compression: str | None, converter: Converter | None
) -> Decoded | DecodeProblem:
    """``decode`` once the bytes are decompressed: conversion, checks, encoding, dialect."""
    was_converted = False
    if converter is not None and raw.strip():
        converted = converter(raw)
        if isinstance(converted, DecodeProblem):
            return converted
        if converted is not None:
            raw, was_converted = converted, True
    if not raw.strip():
        return EMPTY
    if b"\x00" in raw[:NUL_SCAN_BYTES]:
        return not_text(raw)
    if raw.removeprefix(BOM).lstrip().startswith(RTF_MAGIC):
        return RTF
    try:
        text, encoding = _to_utf8(raw)
    except UnicodeDecodeError as exc:
        return undecodable(exc.object[exc.start], exc.start)
    text, line_ends = _normalise_line_ends(text)
    delimiter, header = dialect(text.split(b"\n", 1)[0])
    return Decoded(
        data=text,
        encoding=encoding,
        compression=compression,
        delimiter=delimiter,
        header=header,
        line_ends=line_ends,
        bytes=size,
        converted=was_converted,
    )
