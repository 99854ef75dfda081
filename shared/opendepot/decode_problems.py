"""Why a file cannot be read as text CSV (``DecodeProblem``, a report entry), as
``opendepot.decode`` finds it: the problems it returns, each naming where in the file it is,
the first-bytes tests of that module (UTF-16, line numbers), the single-byte encodings a
dataset may declare (``ENCODING_NAMES``, ``UNDEFINED``) and the same encoding rule for a small
file read whole (``decode_text``)."""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

GZIP_MAGIC = b"\x1f\x8b"

@dataclass(frozen=True)
class DecodeProblem:
    """Why a file cannot be read as text CSV."""

    type: str
    """Frictionless-style slug: ``source-error``, ``encoding-error``, ``format-error``."""
    message: str


EMPTY = DecodeProblem("source-error", "the file is empty")
NOT_TEXT_ZIP = DecodeProblem(
    "format-error",
    "the file is not text: it is a ZIP archive, most likely an Excel workbook saved under a "
    "text name; upload it with its .xlsx name (it is then read as a workbook) or export it as CSV",
)
ZIP_MAGIC = b"PK\x03\x04"
RTF = DecodeProblem("format-error", "the file is an RTF document, not CSV")
UTF16_BOMS = {b"\xff\xfe": "utf-16-le", b"\xfe\xff": "utf-16-be"}
LINE_SHOWN = 80
"""How many first bytes of a line a problem quotes."""
UTF8_SEQUENCE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}"
    rb"|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}"
    rb"|\xf4[\x80-\x8f][\x80-\xbf]{2}"
)
"""One valid UTF-8 multi-byte sequence (a file with none may be read in the dataset's declared
single-byte encoding)."""
NON_ASCII = re.compile(rb"[\x80-\xff]")


def not_text(head: bytes, offset: int, line: int) -> DecodeProblem:
    """A file with a NUL byte at ``offset`` (bytes from the start of the decompressed file; of
    the converted text for UTF-16), on ``line`` (1-based): a hint when it is a ZIP archive."""
    if head.startswith(ZIP_MAGIC):
        return NOT_TEXT_ZIP
    return DecodeProblem("format-error",
                         f"the file is not text: it contains a NUL byte (line {line}, "
                         f"byte offset {offset})")


def too_big(size: int, max_bytes: int) -> DecodeProblem:
    """A gzip file of ``size`` bytes that expands past ``max_bytes``."""
    return DecodeProblem(
        "source-error",
        f"the {size}-byte gzip file expands past the size limit of {max_bytes} bytes "
        f"once decompressed; it was not read further",
    )


def _decoded_so_far(lines: int, last: bytes) -> str:
    if not lines:
        return "no complete line was decoded before it"
    shown = last[:LINE_SHOWN].decode("utf-8", errors="replace")
    return f"{lines} complete lines were decoded before it, the last one (line {lines}) {shown!r}"


def corrupt_gzip(exc: zlib.error, offset: int, lines: int, last: bytes) -> DecodeProblem:
    """A gzip stream zlib cannot read past the byte at ``offset`` (of the compressed file);
    ``lines`` complete lines (LF-ended) were decoded before it, the last one ``last``."""
    return DecodeProblem(
        "source-error",
        f"the gzip stream is corrupt: reading stops at byte {offset} of the compressed file "
        f"({exc}); "
        f"{_decoded_so_far(lines, last)}; nothing was read: upload the file again",
    )


def truncated_gzip(size: int, lines: int, last: bytes) -> DecodeProblem:
    """A gzip stream of ``size`` bytes that ends before its end marker and its CRC-32 and
    length trailer (an upload cut short)."""
    return DecodeProblem(
        "source-error",
        f"the gzip stream is cut short: it ends at byte {size} of the compressed file, before "
        f"the end of its data and its CRC-32 and length check; {_decoded_so_far(lines, last)}; "
        f"nothing was read: upload the whole file again",
    )


def trailing_gzip(size: int, end: int) -> DecodeProblem:
    """Bytes after the last gzip member (from ``end`` on) that are neither another gzip member
    nor zero padding."""
    return DecodeProblem(
        "source-error",
        f"the gzip stream ends at byte {end} of the {size}-byte file, but {size - end} more "
        f"bytes follow that are not gzip data; nothing was read: upload the file again",
    )


ENCODING_NAMES = {"cp1252": "Windows-1252", "iso-8859-15": "ISO-8859-15"}
"""How a problem names each single-byte encoding a dataset may declare
(``opendepot.registry.SINGLE_BYTE_ENCODINGS``)."""
UNDEFINED = {
    "cp1252": re.compile(rb"[\x81\x8d\x8f\x90\x9d]"),
    "iso-8859-15": re.compile(rb"[\x80-\x9f]"),
}
"""The bytes that are no text character in each single-byte encoding: the five Windows-1252
leaves undefined; the C1 control codes of ISO-8859-15 (0x80 there is no euro sign: a file
that has one is Windows-1252)."""


def undecodable(byte: int, offset: int, line: int, encoding: str = "cp1252") -> DecodeProblem:
    """Text neither UTF-8 nor the dataset's declared ``encoding`` (``ENCODING_NAMES``): the
    first byte that is neither (``UNDEFINED``), at ``offset``."""
    return DecodeProblem(
        "encoding-error",
        f"the file is neither UTF-8 nor {ENCODING_NAMES[encoding]} text (byte {byte:#04x} at "
        f"line {line}, byte offset {offset})",
    )


def not_utf8(byte: int, offset: int, line: int) -> DecodeProblem:
    """A file that is not UTF-8 (the first byte that is not, ``byte``, at ``offset``, on
    ``line``) for a dataset that declares no single-byte encoding: it is not guessed."""
    return DecodeProblem(
        "encoding-error",
        f"the file is not UTF-8 text: byte {byte:#04x} at line {line} (byte offset {offset}) "
        f"is not valid UTF-8, and the dataset does not declare a single-byte encoding (such as "
        f"Windows-1252) for its files, so none is guessed: save the file as UTF-8 and upload "
        f"it again",
    )


def bom_not_utf8(byte: int, offset: int, line: int) -> DecodeProblem:
    """A file with a UTF-8 byte order mark and a byte at ``offset`` that is not UTF-8."""
    return DecodeProblem(
        "encoding-error",
        f"the file starts with a UTF-8 byte order mark but is not UTF-8: byte {byte:#04x} at "
        f"line {line} (byte offset {offset}) is not valid UTF-8; save it as UTF-8",
    )


def mixed_encodings(
    byte: int, offset: int, line: int, utf8_offset: int, utf8_line: int,
    encoding: str | None = None,
) -> DecodeProblem:
    """A file with valid UTF-8 multi-byte text (the first at ``utf8_offset``) and bytes that
    are not UTF-8 (the first, ``byte``, at ``offset``): never re-read as a whole in the
    dataset's declared single-byte ``encoding`` (None: it declares none)."""
    why = ""
    if encoding is not None:
        why = (f"; it is not read as {ENCODING_NAMES[encoding]} as a whole, which would publish "
               f"every UTF-8 accent as mojibake")
    return DecodeProblem(
        "encoding-error",
        f"the file mixes UTF-8 text (first at line {utf8_line}, byte offset {utf8_offset}) with "
        f"bytes that are not UTF-8 (first {byte:#04x} at line {line}, byte offset {offset})"
        f"{why}: save it all as UTF-8 and upload it again",
    )


def bad_utf16(encoding: str, offset: int) -> DecodeProblem:
    """UTF-16 text (``utf-16-le`` or ``utf-16-be``) with an invalid sequence at ``offset``."""
    order = "little-endian" if encoding.endswith("le") else "big-endian"
    return DecodeProblem(
        "encoding-error",
        f"the file is UTF-16 ({order}) text with an invalid sequence at byte offset {offset}: "
        f"UTF-16: save as UTF-8",
    )


def utf16_kind(head: bytes) -> tuple[str, int] | None:
    """``(encoding, BOM length)`` when the first bytes are UTF-16 text: a UTF-16 byte order
    mark, or (without one) NUL in at least 90 % of the odd (little-endian) or even
    (big-endian) bytes of the first KiB and in none of the others; else None."""
    for bom, encoding in UTF16_BOMS.items():
        if head.startswith(bom):
            return encoding, len(bom)
    sample = head[: min(len(head), 1024) // 2 * 2]
    if len(sample) < 4 or b"\x00" not in sample:
        return None
    even, odd = sample[0::2], sample[1::2]
    if not even.count(0) and odd.count(0) * 10 >= len(odd) * 9:
        return "utf-16-le", 0
    if not odd.count(0) and even.count(0) * 10 >= len(even) * 9:
        return "utf-16-be", 0
    return None


def line_at(text: bytes, offset: int) -> int:
    """The line (1-based) of the byte at ``offset`` of ``text``: 1 + the LF, CRLF and lone CR
    line ends before it."""
    prefix = text[:offset]
    return 1 + prefix.count(b"\n") + prefix.count(b"\r") - prefix.count(b"\r\n")


def decode_text(raw: bytes, encoding: str | None = None) -> str | DecodeProblem:
    """``raw`` as text by the rule of ``opendepot.decode``, whole in memory (for small files:
    YAML bulletins): UTF-8 (its BOM removed); else, when the dataset declares the single-byte
    ``encoding`` and ``raw`` has no valid UTF-8 multi-byte sequence, that encoding; else the
    ``encoding-error`` naming the line and byte offset of the first byte that is not UTF-8
    (``bom_not_utf8``; ``mixed_encodings`` when UTF-8 text comes before it, or anywhere for a
    dataset with an ``encoding``; else ``not_utf8``) or not ``encoding`` (``undecodable``).
    NUL bytes are the caller's to check."""
    start = 3 if raw.startswith(b"\xef\xbb\xbf") else 0
    try:
        return raw[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = start + exc.start
    if start:
        return bom_not_utf8(raw[bad], bad, line_at(raw, bad))
    seq = UTF8_SEQUENCE.search(raw)
    if seq and (encoding is not None or seq.start() < bad):  # as the streaming decoder finds it
        return mixed_encodings(raw[bad], bad, line_at(raw, bad), seq.start(),
                               line_at(raw, seq.start()), encoding)
    if encoding is None:
        return not_utf8(raw[bad], bad, line_at(raw, bad))
    if undefined := UNDEFINED[encoding].search(raw):
        at = undefined.start()
        return undecodable(raw[at], at, line_at(raw, at), encoding)
    return raw.decode(encoding)
