"""Gunzipping an upload to disk, checked to its end: every member's CRC-32 and length (by
zlib), a stream cut short, corrupt or followed by other bytes refused naming where it ends
(the byte of the compressed file, and the last complete line decoded before it)."""

from __future__ import annotations

import zlib
from typing import Any, BinaryIO

from opendepot.decode_problems import (
    GZIP_MAGIC,
    LINE_SHOWN,
    DecodeProblem,
    corrupt_gzip,
    too_big,
    trailing_gzip,
    truncated_gzip,
)

READ_BYTES = 1 << 20
"""Block size of the reads of the zero padding after the last member."""


class _Lines:
    """Counts the complete (LF-ended) lines of a text going through it, piece by piece, and
    keeps the first ``LINE_SHOWN`` bytes of the last one."""

    def __init__(self) -> None:
        self.count = 0
        self.last = b""
        self.partial = b""  # the start of the line being read

    def feed(self, piece: bytes) -> None:
        cut = piece.rfind(b"\n")
        if cut < 0:
            if len(self.partial) < LINE_SHOWN:
                self.partial = (self.partial + piece[:LINE_SHOWN])[:LINE_SHOWN]
            return
        before = piece.rfind(b"\n", 0, cut)
        last = (self.partial + piece[:cut]) if before < 0 else piece[before + 1 : cut]
        self.count += piece.count(b"\n")
        self.last = last[:LINE_SHOWN]
        self.partial = piece[cut + 1 : cut + 1 + LINE_SHOWN]


def gunzip_file(
    path: str, out: BinaryIO, *, size: int, max_bytes: int, chunk_bytes: int
) -> DecodeProblem | None:
    """``gunzip`` from file to file, a chunk at a time, stopping once past ``max_bytes``:
    None when the whole stream was written to ``out``, else the problem (``size``: the
    compressed file's size, named in problems; ``chunk_bytes``: the size of reads and writes).

    Every member is read to its end and checked (CRC-32 and length, by zlib); members follow
    one another as ``gunzip`` reads them, and zero padding after the last is ignored. A stream
    cut short, corrupt, or followed by other bytes is a problem naming where it ends.

    Two zlib details keep the results equal to an in-memory ``decompress`` of each member
    (``tests/oracles.py``): a call that fills the room it was given may leave output inside
    zlib even when all input is read, so the stream is drained with empty input; and once
    ``max_bytes + 1`` bytes are out, zlib still reads on to the next symbol that needs room, so
    a defect there makes the stream corrupt rather than too big. When the input ran out inside
    that look-ahead, the last call is made again from a copy of the inflater with more input.
    """
    lines = _Lines()
    written = 0
    pos = 0  # offset in the file of data[0]
    data = b""
    with open(path, "rb") as src:
        while True:  # one gzip member
            inflater = zlib.decompressobj(wbits=31)
            full = False  # the last call filled its room: zlib may hold more output
            while not inflater.eof:
                if not data and not full and not (data := src.read(chunk_bytes)):
                    return truncated_gzip(size, lines.count, lines.last)
                room = max_bytes + 1 - written
                ask = min(chunk_bytes, room)
                before = inflater.copy()
                try:
                    piece = inflater.decompress(data, ask)
                    if len(piece) < room:
                        written += len(piece)
                        out.write(piece)
                        lines.feed(piece)
                        rest = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
                        pos, data, full = pos + len(data) - len(rest), rest, len(piece) == ask
                        continue
                    while (not inflater.eof and not inflater.unconsumed_tail
                           and (more := src.read(chunk_bytes))):
                        data += more  # the look-ahead may go on: again, with more input
                        inflater = before.copy()
                        inflater.decompress(data, room)
                except zlib.error:
                    return _corrupt_at(before, data, pos, lines)
                return too_big(size, max_bytes)
            while len(data) < len(GZIP_MAGIC) and (more := src.read(chunk_bytes)):
                data += more
            if not data.startswith(GZIP_MAGIC):
                return None if _zeros_to_end(data, src) else trailing_gzip(size, pos)


def _zeros_to_end(data: bytes, src: BinaryIO) -> bool:
    """Whether ``data`` and the rest of ``src`` are zero bytes only (or nothing)."""
    while True:
        if data.strip(b"\x00"):
            return False
        if not (data := src.read(READ_BYTES)):
            return True


def _corrupt_at(
    inflater: Any, data: bytes, pos: int, lines: _Lines, step: int = 4096
) -> DecodeProblem:
    """The problem of a stream that ``inflater`` (its state before ``data``, which starts at
    byte ``pos`` of the file) cannot read: fed again ``step`` bytes, then one byte at a time,
    to find the byte zlib stops at, the lines decoded before it counted in ``lines``."""
    at = 0
    while at < len(data):
        probe = inflater.copy()
        try:
            lines.feed(probe.decompress(data[at : at + step]))
        except zlib.error:
            break
        inflater, at = probe, at + step
    for i in range(at, min(at + step, len(data))):
        try:
            lines.feed(inflater.decompress(data[i : i + 1]))
        except zlib.error as exc:
            return corrupt_gzip(exc, pos + i, lines.count, lines.last)
    raise AssertionError("zlib failed on data it reads again without error")
