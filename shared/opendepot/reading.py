"""Reading a decoded CSV for validation: the header mapped to the schema, the rows in batches
with their physical lines, and the accepted rows staged as Parquet on a background thread.

See docs/design.md, "Streaming": memory holds one batch of about ``BLOCK_BYTES`` of text, never
the whole file.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from opendepot.decode import Decoded
from opendepot.failures import arrow_problem
from opendepot.issues import Issue, IssueList, issue
from opendepot.registry import Dataset

BLOCK_BYTES = 16 << 20
"""Bytes of CSV text checked per batch: memory grows with this and with the output, not with the
size of the file."""

STAGING_CODEC = "snappy"
"""Parquet compression of staged rows (internal files read once by publish): about twice as fast
as zstd to write and to read, for 20% more bytes; every Arrow build has it."""

LONG_ROW_BYTES = 16 << 20
"""The reader's block when a row is longer than ``READ_BYTES``; longer rows are refused."""

READ_BYTES = 1 << 20
"""Bytes per block of Arrow's CSV reader. Its background thread reads up to 32 blocks ahead of
the parser (``MakeBackgroundGenerator``'s queue), so the block is small and blocks are gathered
into batches of ``BLOCK_BYTES`` for the checks."""



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
        names = [f"c{i}" for i in range(width)]

        def on_invalid(row: Any) -> str:
            number = row.number
            if self.skipped and number < self.skipped[-1]:
                self.in_order = False
            self.skipped.append(number)
            self.pending.append((number, row.text[:200], row.expected_columns, row.actual_columns))
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

    def _report_invalid(self) -> None:
        """Errors for the skipped rows not reported yet, in line order (issues past the error
        limit are counted, not built)."""
        fresh, self.pending = sorted(self.pending), []
        shown = fresh[: self.errors.room()]
        for number, text, expected, actual in shown:
            kind = "missing-cell" if actual < expected else "extra-cell"
            self.errors.add(issue(kind, line=number, cell=text, expected=expected, actual=actual))
        for _, _, expected, actual in fresh[len(shown) :]:
            self.errors.count(1, "missing-cell" if actual < expected else "extra-cell")

    def _gathered(self) -> Iterator[pa.Table]:
        """The reader's record batches gathered into tables of about ``block_bytes``."""
        pending: list[pa.RecordBatch] = []
        size = 0
        for batch in self.reader:
            pending.append(batch)
            size += batch.nbytes
            if size >= self.block_bytes:
                yield pa.Table.from_batches(pending)
                pending, size = [], 0
        if pending:
            yield pa.Table.from_batches(pending)

    def __iter__(self) -> Iterator[tuple[pa.Table, np.ndarray]]:
        done = 0  # rows read so far
        for table in self._gathered():
            self._report_invalid()
            n = table.num_rows
            # line of the k-th row read = k + 2 + the skipped lines before it (all known: the
            # handler has seen every row up to the end of this batch)
            # a copy: a view would stop the reader's handler appending to ``self.skipped``
            skipped = np.array(self.skipped, dtype=np.int64)
            if not self.in_order:
                skipped.sort()
            shifted = skipped - np.arange(skipped.size)
            first = np.arange(done, done + n, dtype=np.int64) + 2
            lines = first + np.searchsorted(shifted, first, side="right")
            done += n
            yield table, lines
        self._report_invalid()
        self.rows = done + len(self.skipped)


class StagingWriter:
    """The staged Parquet file, written on one background thread: a batch's write overlaps the
    next batch's checks (Arrow's writer releases the GIL). One write at most is in flight, so
    memory holds one batch more, never more; a failed write raises in the caller at its next
    ``write``, ``wait`` or ``close``."""

    def __init__(self, sink: str | pa.BufferOutputStream, schema: pa.Schema) -> None:
        self._writer = pq.ParquetWriter(sink, schema, compression=STAGING_CODEC)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opendepot-staging")
        self._pending: Future[None] | None = None

    def write(self, table: pa.Table) -> None:
        """Queue ``table`` once the previous write is done (raising its error, if any)."""
        self.wait()
        self._pending = self._pool.submit(self._writer.write_table, table)

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
    name, never by position: exact, case-insensitive, then the registry's aliases."""
    by_lower = {f.name.lower(): f.name for f in dataset.fields}
    found: dict[str, int] = {}
    problems: list[Issue] = []
    for i, raw in enumerate(labels):
        label = raw.replace("\ufeff", "").strip().strip('"').strip()
        if not label:
            problems.append(issue("blank-label", line=1, number=i + 1, cell=raw))
            continue
        name = by_lower.get(label.lower()) or dataset.aliases.get(label.lower())
        if name is None:
            problems.append(issue("extra-label", line=1, field=label, number=i + 1, cell=raw,
                                  dataset=dataset.name,
                                  expected=", ".join(dataset.field_names)))
        elif name in found:
            problems.append(issue("duplicate-label", line=1, field=name, number=i + 1, cell=raw,
                                  label=label, first=found[name] + 1))
        else:
            found[name] = i
    for number, f in enumerate(dataset.fields, start=1):
        if f.name not in found and not f.optional_column:
            problems.append(issue("missing-label", line=1, field=f.name, number=number, cell=""))
    return found, problems
