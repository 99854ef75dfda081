"""Reading a decoded CSV for validation: the header mapped to the schema, the rows in batches
with their physical lines, and the accepted rows staged as Parquet on a background thread.

See docs/design.md, "Streaming": memory holds one batch of about ``BLOCK_BYTES`` of text, never
the whole file.
"""

from __future__ import annotations

import os
import queue
import threading
from array import array
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from opendepot.decode import MAX_LINE_BYTES, Decoded
from opendepot.failures import arrow_problem
from opendepot.issues import Issue, IssueList, issue
from opendepot.registry import Dataset

BLOCK_BYTES = 16 << 20
"""Bytes of CSV text checked per batch: memory grows with this and with the output, not with the
size of the file."""

STAGING_CODEC = "snappy"
"""Parquet compression of staged rows (internal files read once by publish): about twice as fast
as zstd to write and to read, for 20% more bytes; every Arrow build has it."""

LONG_ROW_BYTES = MAX_LINE_BYTES
"""Default longest line (``opendepot.validate.Limits.max_line_bytes``), 16 MiB: longer lines
are refused."""

READ_BYTES = 1 << 20
"""Bytes per block of Arrow's CSV reader. Its background thread reads up to 32 blocks ahead of
the parser (``MakeBackgroundGenerator``'s queue), so the block is small and blocks are gathered
into batches of ``BLOCK_BYTES`` for the checks."""

SCAN_CHUNK = 4 << 20
"""Bytes of text per step of ``long_line`` and ``long_row`` (their index arrays are at most
8 times this)."""

CELL_CHARS = 200
"""Characters of a value an issue quotes (message, ``cell``, each of ``cells``): a longer value
is cut, with ``…`` after it, so that issues and reports stay small whatever the file."""

LABELS_ONE_BY_ONE = 10
"""Header problems of one type reported one by one up to this many; more make one issue."""

LABELS_LISTED = 20
"""Columns one grouped header issue names (the count names them all)."""

LABEL_CHARS = 40
"""Characters of each label a grouped header issue quotes."""


def clip(text: str, chars: int = CELL_CHARS) -> str:
    """``text`` cut to ``chars`` characters, with ``…`` after it when it was longer."""
    return text if len(text) <= chars else text[:chars] + "\u2026"



class Batches:
    """Record batches of a decoded CSV as strings, with each row's physical line.

    Rows with too few or too many cells are skipped by the reader and become ``missing-cell`` /
    ``extra-cell`` errors; the lines of the other rows skip over them."""

    def __init__(
        self, decoded: Decoded, width: int, errors: IssueList, block_bytes: int, read_bytes: int
    ) -> None:
        self.errors = errors
        self.pending: list[tuple[int, str, int, int]] = []
        """Skipped rows not reported yet (their text cut to 200 characters)."""
        self.skipped = array("q")
        """Line of every skipped row, in reading order (8 bytes each, whatever their text)."""
        self.in_order = True
        self.rows = 0
        self.block_bytes = block_bytes
        self.text_bytes = (len(decoded.data) if decoded.data is not None
                           else os.path.getsize(decoded.path) if decoded.path else 0)
        """Bytes of the decoded text."""
        self._lock = threading.Lock()
        """Guards ``skipped`` and ``pending``, which the parsing thread appends to."""
        names = [f"c{i}" for i in range(width)]

        def on_invalid(row: Any) -> str:
            number = row.number
            with self._lock:
                if self.skipped and number < self.skipped[-1]:
                    self.in_order = False
                self.skipped.append(number)
                self.pending.append((number, row.text[:200], row.expected_columns,
                                     row.actual_columns))
            return "skip"

        try:
            self.reader: Iterable[pa.RecordBatch] = self._open(decoded, names, on_invalid,
                                                               read_bytes)
        except pa.ArrowInvalid as exc:
            if arrow_problem(exc) != "header-without-line-end":
                raise
            self.reader = ()  # a header without a line end: no data rows

    @staticmethod
    def _open(decoded: Decoded, names: list[str], on_invalid: Any, read_bytes: int) -> Any:
        return pacsv.open_csv(
            decoded.source(),
            read_options=pacsv.ReadOptions(
                use_threads=False, skip_rows=1, column_names=names, block_size=read_bytes
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=decoded.delimiter or "\x1f",
                quote_char='"',
                double_quote=True,
                ignore_empty_lines=False,
                newlines_in_values=True,  # a quoted value may span lines, even across blocks
                invalid_row_handler=on_invalid,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )

    def _report_invalid(self, seen: int | None = None) -> None:
        """Errors for the skipped rows not reported yet among the first ``seen`` skipped (None:
        all), in line order (issues past the error limit are counted, not built)."""
        with self._lock:
            seen = len(self.skipped) if seen is None else seen
            upto = seen - (len(self.skipped) - len(self.pending))  # not reported, before seen
            fresh = sorted(self.pending[:upto])
            del self.pending[:upto]
        shown = fresh[: self.errors.room()]
        for number, text, expected, actual in shown:
            kind = "missing-cell" if actual < expected else "extra-cell"
            self.errors.add(issue(kind, line=number, cell=text, expected=expected, actual=actual))
        for _, _, expected, actual in fresh[len(shown) :]:
            self.errors.count(1, "missing-cell" if actual < expected else "extra-cell")

    def _seen(self) -> int:
        """Skipped rows the reader has seen so far."""
        with self._lock:
            return len(self.skipped)

    def _tables(self) -> Iterator[tuple[pa.Table, int]]:
        """The reader's record batches gathered into tables of about ``block_bytes``, each with
        the skipped rows seen at its end (``_seen``)."""
        pending: list[pa.RecordBatch] = []
        size = 0
        for batch in self.reader:
            pending.append(batch)
            size += batch.nbytes
            if size >= self.block_bytes:
                yield pa.Table.from_batches(pending), self._seen()
                pending, size = [], 0
        if pending:
            yield pa.Table.from_batches(pending), self._seen()

    def _gather(self, out: queue.Queue[Any], stop: threading.Event) -> None:
        """The parsing thread: ``_tables`` put in ``out``, then ``_END`` (or the exception that
        stopped the reader)."""

        def put(item: Any) -> bool:
            while not stop.is_set():
                try:
                    out.put(item, timeout=0.05)
                    return True
                except queue.Full:
                    continue
            return False

        try:
            for item in self._tables():
                if not put(item):
                    return
            put(_END)
        except BaseException as exc:  # noqa: BLE001 - raised again in the reading thread
            put(exc)

    def _gathered(self) -> Iterator[tuple[pa.Table, int]]:
        """``_tables``, parsed on a thread of their own one table ahead of the checks (Arrow's
        parser releases the GIL), unless the text holds one table at most (then here: not
        worth a thread's wake-up). The reader's errors are raised here."""
        if self.text_bytes <= self.block_bytes:
            yield from self._tables()
            return
        out: queue.Queue[Any] = queue.Queue(maxsize=1)
        stop = threading.Event()
        parsing = _PARSING.submit(self._gather, out, stop)
        try:
            while True:
                item = out.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            parsing.result()

    def __iter__(self) -> Iterator[tuple[pa.Table, np.ndarray]]:
        try:
            yield from self._batches()
        finally:  # the reader holds ``on_invalid``, which holds ``self``: a cycle through
            self.reader = ()  # Arrow the GC cannot see, which kept both and the open file

    def _batches(self) -> Iterator[tuple[pa.Table, np.ndarray]]:
        done = 0  # rows read so far
        for table, seen in self._gathered():
            self._report_invalid(seen)
            n = table.num_rows
            # line of the k-th row read = k + 2 + the skipped lines before it (all known: the
            # reader had seen every row up to the end of this batch, ``seen`` skipped ones)
            # a copy: a view would stop the reader's handler appending to ``self.skipped``
            with self._lock:
                skipped = np.array(self.skipped[:seen], dtype=np.int64)
            if not self.in_order:
                skipped.sort()
            shifted = skipped - np.arange(skipped.size)
            first = np.arange(done, done + n, dtype=np.int64) + 2
            lines = first + np.searchsorted(shifted, first, side="right")
            done += n
            yield table, lines
        self._report_invalid()
        self.rows = done + len(self.skipped)


_END = object()
"""The end of the reader's tables (``Batches._gather``)."""


_PARSING = ThreadPoolExecutor(max_workers=2, thread_name_prefix="opendepot-csv")
"""Threads parsing CSV files for ``Batches`` (one per file being read), kept between files."""


class StagingWriter:
    """The staged Parquet file, written on a background thread of its own: a batch's write
    overlaps the next batch's checks (Arrow's writer releases the GIL). One write at most is in
    flight, so memory holds one batch more, never more; a failed write raises in the caller at
    its next ``write``, ``wait`` or ``close``."""

    def __init__(self, sink: str | pa.BufferOutputStream, schema: pa.Schema) -> None:
        self._writer = pq.ParquetWriter(sink, schema, compression=STAGING_CODEC)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opendepot-staging")
        self._pending: Future[None] | None = None

    def write(self, table: pa.Table | None, then: Callable[[], object] | None = None) -> None:
        """Queue ``table`` (None: nothing to write), then ``then`` on the same thread after it,
        once the previous write is done (raising its error, if any)."""
        self.wait()
        self._pending = self._pool.submit(self._write, table, then)

    def _write(self, table: pa.Table | None, then: Callable[[], object] | None) -> None:
        if table is not None:
            self._writer.write_table(table)
        if then is not None:
            then()

    def wait(self) -> None:
        """Wait for the write in flight; raise its error."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self, *, failing: bool = False) -> None:
        """Finish the write in flight, then close the file, whatever happens; raise the first
        error met. ``failing``: an error is already on its way up, which these would hide: they
        are dropped."""
        first: BaseException | None = None
        try:
            self.wait()
        except BaseException as exc:  # noqa: BLE001 - raised below, once the file is closed
            first = exc
        self._pool.shutdown(wait=True)  # nothing in flight from here on
        try:
            self._writer.close()
        except BaseException as exc:  # noqa: BLE001 - as above
            first = first or exc
        if first is not None and not failing:
            raise first



def read_labels(labels: tuple[str, ...], dataset: Dataset) -> tuple[dict[str, int], list[Issue]]:
    """(canonical field name -> column position, the header's problems): names are mapped by
    name, never by position: exact, case-insensitive, then the registry's aliases.

    Problems are in column order, ``missing-label`` last. Up to ``LABELS_ONE_BY_ONE`` blank,
    extra or duplicate labels are one issue each (as Frictionless reports them); more of one
    type make one issue, at the first of them, naming how many and the first
    ``LABELS_LISTED`` columns: linear work and a small report whatever the header's width."""
    by_lower = {f.name.lower(): f.name for f in dataset.fields}
    found: dict[str, int] = {}
    bad: dict[str, list[tuple[int, str, str]]] = {"blank-label": [], "extra-label": [],
                                                   "duplicate-label": []}
    for i, raw in enumerate(labels):
        label = raw.replace("\ufeff", "").strip().strip('"').strip()
        name = (by_lower.get(label.lower()) or dataset.aliases.get(label.lower())) if label else ""
        if not label:
            bad["blank-label"].append((i, raw, ""))
        elif name is None:
            bad["extra-label"].append((i, raw, label))
        elif name in found:
            bad["duplicate-label"].append((i, raw, label))
        else:
            found[name] = i
    placed: list[tuple[int, Issue]] = []
    for kind, columns in bad.items():
        if len(columns) <= LABELS_ONE_BY_ONE:
            placed.extend((c[0], _label_issue(kind, c, dataset, found, "")) for c in columns)
        else:
            placed.append((columns[0][0], _label_issue(kind, columns[0], dataset, found,
                                                        _more(kind, columns[1:], dataset, found))))
    problems = [one for _, one in sorted(placed, key=lambda p: p[0])]
    for number, f in enumerate(dataset.fields, start=1):
        if f.name not in found and not f.optional_column:
            problems.append(issue("missing-label", line=1, field=f.name, number=number, cell=""))
    return found, problems


def _canonical(label: str, dataset: Dataset) -> str:
    """The field a label (trimmed) names; it names one."""
    by_lower = {f.name.lower(): f.name for f in dataset.fields}
    return by_lower.get(label.lower()) or dataset.aliases[label.lower()]


def _label_issue(kind: str, column: tuple[int, str, str], dataset: Dataset,
                 found: dict[str, int], more: str) -> Issue:
    """The ``kind`` issue of one column ``(position, label as written, label trimmed)``;
    ``more``: what the grouped issue adds about the other columns ("" for none)."""
    i, raw, label = column
    cell = clip(raw)
    if kind == "blank-label":
        return issue(kind, line=1, number=i + 1, cell=cell, more=more)
    if kind == "extra-label":
        return issue(kind, line=1, field=clip(label), number=i + 1, cell=cell, more=more,
                     dataset=dataset.name, expected=", ".join(dataset.field_names))
    name = _canonical(label, dataset)
    return issue(kind, line=1, field=name, number=i + 1, cell=cell, label=clip(label),
                 first=found[name] + 1, more=more)


def _more(kind: str, columns: list[tuple[int, str, str]], dataset: Dataset,
          found: dict[str, int]) -> str:
    """What a grouped ``kind`` issue says of the ``columns`` after its first one."""
    listed = columns[:LABELS_LISTED]
    if kind == "blank-label":
        what, named = "are blank too", [str(i + 1) for i, _, _ in listed]
    elif kind == "extra-label":
        what = "are not in the schema either"
        named = [f"{i + 1} {clip(label, LABEL_CHARS)!r}" for i, _, label in listed]
    else:
        what = "repeat an earlier column too"
        named = [f"{i + 1} {clip(label, LABEL_CHARS)!r} (repeats "
                 f"{found[_canonical(label, dataset)] + 1})" for i, _, label in listed]
    left = len(columns) - len(listed)
    return (f"; {len(columns)} more columns {what} ({len(columns) + 1} in all): columns "
            f"{', '.join(named)}{f' and {left} more' if left else ''}")


def long_line(decoded: Decoded, limit: int) -> tuple[int | None, int]:
    """(the first line longer than ``limit`` bytes, or None; the longest line, in bytes, of
    those read): lines of the decoded text (LF line ends), without their line end, read
    ``SCAN_CHUNK`` bytes at a time and stopping at the first too long."""
    line, current, longest = 1, 0, 0  # the open line's number and bytes so far
    with decoded.source() as f:
        while chunk := f.read(SCAN_CHUNK):
            ends = np.flatnonzero(np.frombuffer(chunk, np.uint8) == 10)
            if ends.size:
                lengths = np.diff(ends, prepend=-1) - 1
                lengths[0] += current
                over = np.flatnonzero(lengths > limit)
                if over.size:
                    return line + int(over[0]), max(longest, int(lengths.max()))
                longest = max(longest, int(lengths.max()))
                line += int(ends.size)
                current = len(chunk) - int(ends[-1]) - 1
            else:
                current += len(chunk)
            if current > limit:
                return line, current
    return None, max(longest, current)


def long_row(decoded: Decoded, limit: int) -> tuple[int | None, int]:
    """(the line a row longer than ``limit`` bytes starts on, or None; the longest row, in
    bytes, of those read): rows end at a line end outside double quotes (every ``"`` counts, as
    in a file whose quotes are all well placed; a quote left open runs to the end of the file).
    """
    row_start, start_line, longest = 0, 1, 0  # offset and line of the open row
    offset, lines, quotes = 0, 0, 0  # where the chunk starts; line ends and quotes before it
    with decoded.source() as f:
        while chunk := f.read(SCAN_CHUNK):
            data = np.frombuffer(chunk, np.uint8)
            ends = np.flatnonzero(data == 10)
            marks = np.flatnonzero(data == 34)
            closed = ends[(quotes + np.searchsorted(marks, ends)) % 2 == 0]  # rows ending here
            if closed.size:
                at = offset + closed
                lengths = at - np.concatenate(([row_start], at[:-1] + 1))
                over = np.flatnonzero(lengths > limit)
                if over.size:
                    k = int(over[0])
                    return (start_line if k == 0 else lines + int(
                        np.searchsorted(ends, closed[k - 1])) + 2), int(lengths[k])
                longest = max(longest, int(lengths.max()))
                row_start = int(at[-1]) + 1
                start_line = lines + int(np.searchsorted(ends, closed[-1])) + 2
            offset += len(chunk)
            lines += int(ends.size)
            quotes += int(marks.size)
            if offset - row_start > limit:
                return start_line, offset - row_start
    return None, max(longest, offset - row_start)
