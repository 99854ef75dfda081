"""Decoding producer files: bytes in, UTF-8 CSV text and its dialect out.

Handles gzip (magic bytes), the UTF-8 byte order mark, UTF-8 else CP1252 (decided once per
file, never per line), line ends LF, CRLF, CR and CR CR LF (mixed in one file), and the
delimiter (``;``, ``,`` or tab, detected on the header line only). Problems are returned as
``DecodeProblem`` (a report entry), never raised: only ``decode`` callers' bugs raise.
"""

from __future__ import annotations

import csv
import zlib
from collections.abc import Callable
from dataclasses import dataclass

GZIP_MAGIC = b"\x1f\x8b"
BOM = b"\xef\xbb\xbf"
DELIMITERS = (";", ",", "\t")


@dataclass(frozen=True)
class DecodeProblem:
    """Why a file cannot be read as text CSV."""

    type: str
    """Frictionless-style slug: ``source-error``, ``encoding-error``, ``format-error``."""
    message: str


@dataclass(frozen=True)
class Decoded:
    """A file turned into UTF-8 CSV text with LF line ends."""

    data: bytes
    """UTF-8 text, no BOM, every line end ``\\n`` (line count unchanged)."""
    encoding: str
    """``utf-8``, ``utf-8-sig`` (BOM) or ``cp1252``."""
    compression: str | None
    """``gzip`` or None."""
    delimiter: str | None
    """Detected delimiter, or None when the header has none of ``;``, ``,``, tab."""
    header: tuple[str, ...]
    """Header labels as written (quotes removed, not yet trimmed)."""
    line_ends: dict[str, int]
    """How many lines ended with each of ``crlf``, ``lf``, ``cr``, ``crcrlf``."""
    bytes: int
    """Size of the original object in bytes (compressed size for gzip)."""


def gunzip(raw: bytes, max_bytes: int) -> bytes | DecodeProblem:
    """Decompress gzip without ever holding more than ``max_bytes`` of output."""
    inflater = zlib.decompressobj(wbits=47)  # 32 + 15: gzip or zlib header
    try:
        out = inflater.decompress(raw, max_bytes + 1)
    except zlib.error as exc:
        return DecodeProblem("source-error", f"the gzip stream is corrupt: {exc}")
    if len(out) > max_bytes or inflater.unconsumed_tail:
        return DecodeProblem(
            "source-error",
            f"the {len(raw)}-byte gzip file expands past the size limit of {max_bytes} bytes "
            f"once decompressed; it was not read further",
        )
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


def detect_delimiter(header_line: str) -> str | None:
    """The most frequent of ``;``, ``,`` and tab in the header line, or None if none occurs."""
    counts = {d: header_line.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])  # ties: the order of DELIMITERS
    return best if counts[best] else None


Converter = Callable[[bytes], "bytes | DecodeProblem | None"]
"""Turns a non-CSV file (Excel, YAML) into UTF-8 CSV bytes; None when the file is not its kind."""


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
    if converter is not None and raw.strip():
        converted = converter(raw)
        if isinstance(converted, DecodeProblem):
            return converted
        if converted is not None:
            raw = converted
    if not raw.strip():
        return DecodeProblem("source-error", "the file is empty")
    if b"\x00" in raw[:65536]:
        return DecodeProblem("format-error", "the file is not text (it contains NUL bytes)")
    if raw.removeprefix(BOM).lstrip().startswith(b"{\\rtf"):
        return DecodeProblem("format-error", "the file is an RTF document, not CSV")
    try:
        text, encoding = _to_utf8(raw)
    except UnicodeDecodeError as exc:
        return DecodeProblem(
            "encoding-error",
            f"the file is neither UTF-8 nor Windows-1252 text (byte {exc.object[exc.start]:#04x} "
            f"at offset {exc.start})",
        )
    text, line_ends = _normalise_line_ends(text)
    first = text.split(b"\n", 1)[0].decode("utf-8")
    delimiter = detect_delimiter(first)
    header = next(csv.reader([first], delimiter=delimiter or "\x1f", quotechar='"'), [])
    return Decoded(
        data=text,
        encoding=encoding,
        compression=compression,
        delimiter=delimiter,
        header=tuple(header),
        line_ends=line_ends,
        bytes=size,
    )
