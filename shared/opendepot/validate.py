"""Validation of a producer file against its dataset's Table Schema.

``validate_file(path, dataset, cog, ...)`` (a file on disk, in bounded memory) and its thin
wrapper ``validate(raw, ...)`` (bytes) return a ``Validation``: the typed rows to publish
(staged as Parquet, in the schema's field order) and every issue found, as data. Invalid input
never raises; infrastructure failures do (``opendepot.failures``), so the queue retries them.
The file is read in batches (see ``validate_decoded`` and docs/design.md, "Streaming").

The checks are plug-ins (``opendepot.checks``), their issue types catalogued in
``opendepot.issues`` (Frictionless error types where one exists, else ours):

- source: ``source-error`` (empty, corrupt gzip, too large), ``format-error`` (not text, RTF,
  header that cannot be split), ``encoding-error``;
- limits (``Limits``): ``too-many-columns``, ``line-too-long`` (naming the line);
- header: ``blank-label``, ``duplicate-label``, ``extra-label``, ``missing-label`` (names are
  mapped by name, never by position: exact, case-insensitive, then the registry's aliases);
- rows: ``blank-row``, ``missing-cell``, ``extra-cell``, ``duplicate-row`` (every cell equal
  to an earlier row's, for datasets that leave those out);
- cells (vectorised, ``opendepot.cells``): ``type-error``, ``constraint-error``,
  ``unique-error``, ``foreign-key`` (area codes outside the INSEE COG and the dataset's
  declared extra codes);
- ``primary-key`` (duplicated key, naming both lines; never resolved by picking one row);
- warnings, which do not block: ``padded-code`` (``1`` -> ``01``), ``cumulative-decrease``,
  ``missing-day`` (gap in an area's daily series), ``total-below-parts``.

Row numbers count the header as row 1 and are physical lines (CR CR LF counts as one line end;
a quoted value spanning lines makes one row, and the rows after it are then numbered by rows,
one less than their line per line end inside quotes).
Rows with cell or row errors are left out of the publication while they stay within the
dataset's error budget (``errorBudget.maxBadRowsPercent``); header, source and primary-key
errors always reject the file.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Literal, cast

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from opendepot import cells, formats, keysort
from opendepot.cells import dataset_schema
from opendepot.checks import Batch, Check, Keys, Rows, Run, checklist
from opendepot.decode import Decoded, DecodeProblem, decode_file, line_too_long
from opendepot.failures import arrow_problem, is_infrastructure
from opendepot.issues import Issue, IssueList, Issues, issue
from opendepot.memory import release_memory
from opendepot.reading import (
    BLOCK_BYTES,
    LONG_ROW_BYTES,
    READ_BYTES,
    STAGING_CODEC,
    Batches,
    StagingWriter,
    long_line,
    long_row,
    read_labels,
)
from opendepot.registry import Cog, Dataset

__all__ = ["BLOCK_BYTES", "STAGING_CODEC", "Issue", "IssueList", "Limits", "Validation",
           "dataset_schema", "validate", "validate_decoded", "validate_file"]

Status = Literal["accepted", "rejected", "held"]


@dataclass(frozen=True)
class Limits:
    """Bounds on a file's shape and on its report, whatever the file: past them the file is
    rejected by an issue naming the limit, its setting and the line (never an exception, never
    memory growing with the file's shape). Defaults are ``opendepot.config.Settings``'s."""

    max_line_bytes: int = LONG_ROW_BYTES
    """Longest line read, in bytes of UTF-8 text without its line end (16 MiB): a longer one
    is a ``line-too-long`` error naming it (``OPENDEPOT_MAX_LINE_BYTES``)."""
    max_columns: int = 1000
    """Most columns a header may have: more is a ``too-many-columns`` error, before any label
    is checked (``OPENDEPOT_MAX_COLUMNS``)."""
    max_report_bytes: int = 2 << 20
    """Largest report, its JSON as ``opendepot.ingest`` writes it (2 MiB): see
    ``opendepot.report.build_report`` (``OPENDEPOT_MAX_REPORT_BYTES``)."""

    @classmethod
    def of(cls, settings: Any) -> Limits:
        """The limits of an ``opendepot.config.Settings``."""
        return cls(settings.max_line_bytes, settings.max_columns, settings.max_report_bytes)


@dataclass
class Validation:
    """What ``validate`` found and what it would publish."""

    name: str
    """The file's key or path, as reports name it."""
    errors: IssueList
    warnings: IssueList
    staged: str | pa.Buffer | None = None
    """The accepted typed rows as Parquet: a file path or an in-memory buffer (None when
    rejected). ``table`` reads it."""
    rows: int = 0
    """Data rows read (header excluded, blank rows included)."""
    rows_left_out: int = 0
    """Rows with errors left out of the publication, within the error budget."""
    rows_published: int = 0
    """Accepted rows (the rows of ``staged``)."""
    areas: int | None = None
    """Distinct area codes among the accepted rows (None without a geography field)."""
    accepted: bool = False
    """True when the file (minus left-out rows) can be published."""
    held: bool = False
    """True when a valid upload is held by the shrink guard (``hold``)."""
    labels: tuple[str, ...] = ()
    """Header labels as written."""
    mapping: dict[str, str] = field(default_factory=dict)
    """Canonical field name -> label as written, for the columns found."""
    decoded: Decoded | None = None
    """How the file was read (for ``validate``, its text is gone: only the dialect is left)."""
    seconds: float = 0.0
    rejection: str = ""
    """Why the file was rejected or held, in one sentence ("" when accepted)."""
    limits: Limits = Limits()
    """The limits it was validated under (its report's size among them)."""

    _table: pa.Table | None = field(default=None, repr=False)

    @property
    def table(self) -> pa.Table | None:
        """Accepted typed rows in schema field order, read from ``staged`` (None when rejected)."""
        if self._table is None and self.staged is not None:
            source = self.staged if isinstance(self.staged, str) else pa.BufferReader(self.staged)
            self._table = pq.read_table(source, use_threads=False)
        return self._table

    @property
    def valid(self) -> bool:
        """Frictionless sense: no error at all."""
        return self.errors.total == 0

    @property
    def status(self) -> Status:
        """``accepted``, ``rejected`` or ``held``."""
        return "held" if self.held else "accepted" if self.accepted else "rejected"

    def hold(self, why: Issue) -> Validation:
        """This validation held by ``why`` (an error, listed first): not accepted, nothing to
        publish; totals, types and cap of the errors stay in agreement."""
        return replace(self, errors=self.errors.prepended(why), accepted=False, held=True,
                       rejection=why.message, staged=None, _table=None)


def refused(why: Issue, name: str, *, max_errors: int = 1, seconds: float = 0.0) -> Validation:
    """The validation of a file refused for one reason (``why``), none of its rows read."""
    issues = Issues.limited(max_errors)
    issues.add(why)
    return Validation(name=name, errors=issues.errors, warnings=issues.warnings,
                      rejection=why.message, seconds=seconds)


def validate_decoded(
    decoded: Decoded,
    dataset: Dataset,
    cog: Cog,
    *,
    name: str,
    max_errors: int = 1000,
    out: str | None = None,
    block_bytes: int = BLOCK_BYTES,
    fast: bool = True,
    limits: Limits = Limits(),
) -> Validation:
    """Validate decoded CSV text against ``dataset`` with its checklist
    (``opendepot.checks.checklist``), one batch of about ``block_bytes`` of text at a time.

    The accepted rows are written, batch by batch, as Parquet (``STAGING_CODEC``) to the file
    ``out``, or to memory when ``out`` is None: ``Validation.staged``. Memory holds one batch
    (and the previous batch's accepted rows while they are staged, ``StagingWriter``), the key
    columns as integer codes (1 to 4 bytes per key column and row) and one measure column at a
    time for the cross-row checks; never the whole file.

    ``limits``: a header of more than ``max_columns`` columns is a ``too-many-columns`` error;
    a line longer than ``max_line_bytes`` a ``line-too-long`` error naming it. Lines are
    measured (``long_line``) first when the reader's block (1 MiB) could hold one over the
    limit, else when a row is too long for that block; then rows spanning lines (quoted line
    ends, ``long_row``) too, one over the limit a ``line-too-long`` error at its first line;
    else the file is read again in blocks twice its longest row. ``fast`` False checks every
    column on the exact path (same result).
    """
    width = len(decoded.header)
    if width > limits.max_columns:
        return _limited(issue("too-many-columns", line=1, count=width, limit=limits.max_columns,
                              setting="OPENDEPOT_MAX_COLUMNS"), decoded, name, max_errors, limits)
    limit = limits.max_line_bytes
    read = min(READ_BYTES, block_bytes)
    measured = limit < 2 * read  # else a longer line cannot fit the reader's first blocks
    longest = 0
    if measured:
        line, longest = long_line(decoded, limit)
        if line is not None:
            return _too_long(line, limit, decoded, name, max_errors, limits)
    attempt = read
    while True:
        try:
            v = _validate(decoded, dataset, cog, name=name, max_errors=max_errors, out=out,
                          block_bytes=max(block_bytes, attempt), read_bytes=attempt, fast=fast)
            v.limits = limits
            return v
        except pa.ArrowInvalid as exc:
            if arrow_problem(exc) != "row-too-long":
                raise
        if attempt != read:
            break
        if not measured:
            line, longest = long_line(decoded, limit)
            if line is not None:
                return _too_long(line, limit, decoded, name, max_errors, limits)
        row, longest_row = long_row(decoded, limit)
        if row is not None:
            return _too_long(row, limit, decoded, name, max_errors, limits, spanning=True)
        attempt = 2 * max(longest, longest_row) + 2  # a row half a block long always fits
        if attempt <= read:
            break
    detail = (f"a row is longer than the reader takes, though no line or row is longer than the "
              f"limit of {limit} bytes (setting OPENDEPOT_MAX_LINE_BYTES): a quote inside a "
              f"value? The file was not read")
    return _limited(issue("source-error", detail=detail), decoded, name, max_errors, limits)


def _too_long(line: int, limit: int, decoded: Decoded, name: str, max_errors: int,
              limits: Limits, *, spanning: bool = False) -> Validation:
    """The rejection of a file whose ``line`` (or the row starting there, ``spanning`` lines)
    is longer than ``limit`` bytes."""
    detail = line_too_long(line, limit).message
    if spanning:
        detail = (f"Line {line}: the row starting on this line spans lines (a quoted value, "
                  f"maybe a quote left open) and is longer than the limit of {limit} bytes "
                  f"(setting OPENDEPOT_MAX_LINE_BYTES); rows that long are not read, so "
                  f"nothing was checked or published")
    return _limited(issue("line-too-long", line=line, detail=detail), decoded, name,
                    max_errors, limits)


def _limited(why: Issue, decoded: Decoded, name: str, max_errors: int,
             limits: Limits) -> Validation:
    """The validation of a decoded file refused for ``why``, before its rows are checked."""
    v = refused(why, name, max_errors=max_errors)
    v.decoded, v.labels, v.limits = decoded, decoded.header, limits
    return v


def _validate(
    decoded: Decoded,
    dataset: Dataset,
    cog: Cog,
    *,
    name: str,
    max_errors: int,
    out: str | None,
    block_bytes: int,
    read_bytes: int,
    fast: bool,
) -> Validation:
    """``validate_decoded`` with the reader's block of ``read_bytes``: the checks' driver."""
    started = time.perf_counter()
    issues = Issues.limited(max_errors)
    v = Validation(name=name, errors=issues.errors, warnings=issues.warnings, decoded=decoded,
                   labels=decoded.header)
    positions, _ = read_labels(decoded.header, dataset)
    run = Run(dataset, cog, decoded, positions, issues, fast)
    checks = checklist(dataset, cog)
    for check in checks:
        check.start(run)
    if issues.errors.total:
        v.rejection = "the header does not match the schema"
    else:
        v.mapping = {n: decoded.header[i] for n, i in positions.items()}
        memory = pa.BufferOutputStream() if out is None else None
        sink: str | pa.BufferOutputStream = out if out is not None else memory
        rows, bad_rows, v.rows = _read_rows(run, checks, sink, block_bytes, read_bytes)
        if v.rows == 0:
            issues.add(issue("source-error", detail="the file has a header but no data rows"))
            v.rejection = "no data rows"
        else:
            staged = out if out is not None else cast(pa.BufferOutputStream, memory).getvalue()
            parquet = pq.ParquetFile(staged if isinstance(staged, str) else pa.BufferReader(staged))
            rows_good = int(rows.keys.good.sum())  # the staged rows, in the same order
            rows.measure = lambda name: cells.read_measure(parquet, name, rows_good)
            try:
                for check in checks:
                    check.end(rows)
                _verdict(v, rows, bad_rows, checks, staged)
            finally:
                parquet.close()
    v.seconds = time.perf_counter() - started
    return v


def _read_rows(
    run: Run, checks: list[Check], sink: str | pa.BufferOutputStream, block_bytes: int,
    read_bytes: int,
) -> tuple[Rows, int, int]:
    """Every batch through the checks, its accepted rows staged to ``sink`` while the next is
    checked: (the key columns of every row, rows with errors, rows read)."""
    dataset = run.dataset
    schema = dataset_schema(dataset)
    writer = StagingWriter(sink, schema)
    geo = dataset.geography.field
    key_names = list(dict.fromkeys([*dataset.primary_key, *([geo] if geo else [])]))
    codes = {k: keysort.Codes() for k in key_names}
    line_chunks: list[np.ndarray] = []
    good_chunks: list[np.ndarray] = []
    bad_rows = 0
    try:  # opening the reader can fail too (a parse error in its first block): the file is closed
        batches = Batches(run.decoded, len(run.decoded.header), run.issues.errors, block_bytes,
                          read_bytes)
        for number, (table, lines) in enumerate(batches, start=1):
            batch = Batch(run, table, lines)
            for check in checks:
                check.batch(batch)
            batch.flush(run.issues)
            typed = pa.table({f.name: batch.typed(f).value for f in dataset.fields}, schema=schema)
            bad = batch.bad
            bad_rows += int(bad.sum())
            # every row but blank rows and exact duplicates goes to the key checks (a repeated
            # key is never hidden by another error on the same row); good ones are staged; both
            # on the staging thread, while the next lines run and the next batch is checked
            keep = ~batch.not_keys
            kept = typed.filter(pa.array(keep)) if batch.not_keys.any() else typed
            writer.write(None if bad.all() else typed.filter(pa.array(~bad)) if bad.any()
                         else typed, partial(_add_codes, codes, kept))
            kept_lines = lines[keep]
            fits = kept_lines.size == 0 or kept_lines[-1] < np.iinfo(np.int32).max
            line_chunks.append(kept_lines.astype(np.int32) if fits else kept_lines)
            good_chunks.append(~bad[keep])
            if number % 8 == 0:
                writer.wait()  # the written batch's memory is free to hand back too
                release_memory()
    except BaseException:
        writer.close(failing=True)
        raise
    writer.close()
    keys = Keys({}, {}, _joined(line_chunks, np.int32), _joined(good_chunks, np.bool_))
    del line_chunks, good_chunks
    for k in key_names:
        keys.codes[k], keys.values[k] = codes[k].finish()
    release_memory()
    return Rows(run, keys), bad_rows + len(batches.skipped), batches.rows


def _add_codes(codes: dict[str, keysort.Codes], kept: pa.Table) -> None:
    """The key columns of a batch's rows for the key checks, each to its ``Codes``."""
    for k, column_codes in codes.items():
        column_codes.add(kept[k])


def _joined(chunks: list[np.ndarray], empty: type[np.generic]) -> np.ndarray:
    return np.concatenate(chunks) if chunks else np.empty(0, empty)


def _verdict(v: Validation, rows: Rows, bad_rows: int, checks: list[Check],
             staged: str | pa.Buffer) -> None:
    """Reject the file or accept it and run the checks of accepted files on its staged rows
    (``rows.measure`` reads them back)."""
    dataset, keys = rows.run.dataset, rows.keys
    rows_good = int(keys.good.sum())
    if rows.rejection:
        v.rejection = rows.rejection
    elif bad_rows and bad_rows * 100.0 > dataset.max_bad_rows_percent * v.rows:
        v.rejection = (
            f"{bad_rows} of {v.rows} rows have errors, more than the dataset's error budget "
            f"({dataset.max_bad_rows_percent}% of rows)"
        )
    elif rows_good == 0:
        v.rejection = "no valid data rows"
    else:
        v.accepted = True
        v.rows_left_out = bad_rows
        v.rows_published = rows_good
        v.staged = staged
        geo = dataset.geography.field
        if geo is not None:
            v.areas = int(np.unique(keys.codes[geo][keys.good]).size)
        for check in checks:
            if type(check).accepted is not Check.accepted:
                check.accepted(rows)
        keys.pk_sorted = keys.series_sorted = None
        release_memory()  # once (a trim walks the whole heap: about 13 ms each time)


def validate_file(
    path: str,
    dataset: Dataset,
    cog: Cog,
    *,
    name: str,
    workdir: str,
    max_errors: int = 1000,
    max_bytes: int = 512 * 1024 * 1024,
    block_bytes: int = BLOCK_BYTES,
    fast: bool = True,
    limits: Limits = Limits(),
) -> Validation:
    """Validate the file at ``path`` in bounded memory: it is decoded by streaming
    (``decode_file``; a gzip, re-encoded, re-line-ended or converted copy goes to ``workdir``)
    and the accepted rows are staged as Parquet in ``{workdir}/staged.parquet``
    (``Validation.staged``). The caller owns ``workdir`` and removes it.

    ``limits`` (``Limits``: line length, columns, report size) bound what is read and
    reported, whatever the file's shape.

    Never raises for a problem of the file: it is a rejection (an unforeseen failure of a check
    too, with a report asking to tell the operators). Raises infrastructure failures
    (``opendepot.failures.is_infrastructure``: memory, disk, storage, timeouts) so the message
    is retried."""
    started = time.perf_counter()
    try:
        converter = formats.Converter(name, dataset)  # keeps a workbook's warnings
        decoded = decode_file(
            path,
            max_bytes=max_bytes,
            workdir=workdir,
            converter=converter,
            convertible=formats.convertible(name),
            encoding=dataset.encoding,
            max_line_bytes=limits.max_line_bytes,
        )
        if isinstance(decoded, DecodeProblem):  # line-too-long: the header line
            return _problem(decoded.type, decoded.message, name, max_errors, started, limits,
                            line=1 if decoded.type == "line-too-long" else None)
        out = os.path.join(workdir, "staged.parquet")
        v = validate_decoded(decoded, dataset, cog, name=name, max_errors=max_errors, out=out,
                             block_bytes=block_bytes, fast=fast, limits=limits)
        v.warnings = converter.prepend_to(v.warnings)
        return v
    except Exception as exc:
        if is_infrastructure(exc):
            raise
        detail = (f"the file could not be validated ({type(exc).__name__}: {str(exc)[:200]}); "
                  "it is kept and nothing was published: please report this to the operators")
        return _problem("source-error", detail, name, max_errors, started, limits)


def _problem(kind: str, detail: str, name: str, max_errors: int, started: float,
             limits: Limits, *, line: int | None = None) -> Validation:
    v = refused(issue(kind, line=line, detail=detail), name, max_errors=max_errors,
                seconds=time.perf_counter() - started)
    v.limits = limits
    return v


def validate(
    raw: bytes,
    dataset: Dataset,
    cog: Cog,
    *,
    name: str,
    max_errors: int = 1000,
    max_bytes: int = 512 * 1024 * 1024,
    block_bytes: int = BLOCK_BYTES,
    fast: bool = True,
    limits: Limits = Limits(),
) -> Validation:
    """``validate_file`` of a file's bytes (written to a temporary directory, removed before
    returning); the accepted rows are kept in memory (``staged`` is a buffer)."""
    with tempfile.TemporaryDirectory(prefix="opendepot-validate-") as workdir:
        path = os.path.join(workdir, "upload")
        with open(path, "wb") as f:
            f.write(raw)
        v = validate_file(path, dataset, cog, name=name, workdir=workdir, max_errors=max_errors,
                          max_bytes=max_bytes, block_bytes=block_bytes, fast=fast,
                          limits=limits)
        if isinstance(v.staged, str):
            with open(v.staged, "rb") as staged:
                v.staged = pa.py_buffer(staged.read())
    return v

