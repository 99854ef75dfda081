"""Validation of a producer file against its dataset's Table Schema.

``validate(raw, dataset, cog, ...)`` (bytes in memory) and ``validate_file(path, ...)`` (a file
on disk, in bounded memory) return a ``Validation``: the typed rows to publish (staged as
Parquet, in the schema's field order) and every issue found, as data. Invalid input never
raises. The file is read in batches (see ``validate_decoded`` and docs/design.md,
"Streaming"). Checks (Frictionless error types where one exists, else ours):

- source: ``source-error`` (empty, corrupt gzip, too large), ``format-error`` (not text, RTF,
  header that cannot be split), ``encoding-error``;
- header: ``blank-label``, ``duplicate-label``, ``extra-label``, ``missing-label`` (names are
  mapped by name, never by position: exact, case-insensitive, then the registry's aliases);
- rows: ``blank-row``, ``missing-cell``, ``extra-cell``;
- cells (vectorised with pyarrow.compute): ``type-error`` (integer, number, date, boolean),
  ``constraint-error`` (required, minimum, maximum, enum, pattern, minLength, maxLength),
  ``foreign-key`` (area codes outside the INSEE COG and the dataset's declared extra codes);
  a batch's column whose every cell is plainly valid (ASCII digits, ISO dates...) is checked on
  its bytes with NumPy and cast once (``_fast_cells``), any other by the rules cell by cell,
  which find the same for plain cells;
- ``duplicate-row`` (every cell equal to an earlier row's, for datasets that leave those out);
- ``primary-key`` (duplicated key, naming both lines; never resolved by picking one row; blank
  rows and exact duplicates, already reported, are not keys);
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

import datetime
import os
import time
from array import array
from concurrent.futures import Future, ThreadPoolExecutor
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from opendepot import formats, keysort
from opendepot.decode import Decoded, DecodeProblem, decode, decode_file
from opendepot.memory import release_memory
from opendepot.registry import NATIONAL_CODE, Cog, Dataset, Field

ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "integer": pa.int64(),
    "number": pa.float64(),
    "date": pa.date32(),
    "boolean": pa.bool_(),
    "year": pa.int64(),
    "week": pa.string(),
}
WEEK_RE = r"^(?P<year>[0-9]{4})-?[SsWw](?P<week>[0-9]{1,2})$"
WEEK_NO_YEAR_RE = r"^(?:[Ss]emaine|[Ww]eek|[Ss])\s*(?P<week>[0-9]{1,2})$"
INTEGER_RE = r"^[+-]?[0-9]{1,18}$"  # 64-bit integers: longer digit strings are type errors
NUMBER_RE = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
FIRST_DAY = pa.scalar(datetime.date(1, 1, 1), pa.date32())
"""The earliest date Python (and Frictionless) reads: Arrow's cast and strptime read year 0
(``0000-01-01``), which no key, report or published file can hold; such a date is a type error."""
TRUE_VALUES = ["true", "True", "TRUE", "1"]
FALSE_VALUES = ["false", "False", "FALSE", "0"]


@dataclass(frozen=True)
class Issue:
    """One error or warning, shaped like a Frictionless error."""

    type: str
    """Slug: Frictionless vocabulary (``type-error``...) or ours (``padded-code``...)."""
    message: str
    """Human sentence naming line, column, value and what is expected."""
    row_number: int | None = None
    """Physical line in the file, header = 1; None for file-level issues."""
    field_name: str | None = None
    """Canonical column name (or the label as written for header issues)."""
    field_number: int | None = None
    """1-based position of the column in the file."""
    cell: str | None = None
    """The offending value as written."""
    note: str = ""
    """Short machine-friendly detail (expected type, constraint, other line...)."""
    cells: tuple[str, ...] | None = None
    """Every cell of the row as written, for row and cell errors."""


@dataclass
class IssueList:
    """Issues kept up to ``limit``, with the true total counted beyond it."""

    limit: int
    items: list[Issue] = field(default_factory=list)
    total: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    """True count per issue type (``stats.errorsByType`` / ``warningsByType`` of the report)."""

    def add(self, issue: Issue) -> None:
        self.total += 1
        self.by_type[issue.type] = self.by_type.get(issue.type, 0) + 1
        if len(self.items) < self.limit:
            self.items.append(issue)

    def room(self) -> int:
        return max(self.limit - len(self.items), 0)

    def count(self, n: int, kind: str) -> None:
        """Count ``n`` issues of type ``kind`` that were not materialised (past the limit)."""
        if n > 0:
            self.total += n
            self.by_type[kind] = self.by_type.get(kind, 0) + n

    @property
    def truncated(self) -> bool:
        return self.total > len(self.items)


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
    labels: tuple[str, ...] = ()
    """Header labels as written."""
    mapping: dict[str, str] = field(default_factory=dict)
    """Canonical field name -> label as written, for the columns found."""
    decoded: Decoded | None = None
    seconds: float = 0.0
    rejection: str = ""
    """Why the file was rejected, in one sentence ("" when accepted)."""

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


def _labels_to_fields(
    labels: tuple[str, ...], dataset: Dataset, errors: IssueList
) -> dict[str, int]:
    """Map canonical field names to column positions; report label problems."""
    by_lower = {f.name.lower(): f.name for f in dataset.fields}
    found: dict[str, int] = {}
    for i, raw in enumerate(labels):
        label = raw.replace("\ufeff", "").strip().strip('"').strip()
        if not label:
            errors.add(
                Issue(
                    "blank-label",
                    f"Line 1, column {i + 1}: the header label is blank",
                    1,
                    None,
                    i + 1,
                    raw,
                )
            )
            continue
        name = by_lower.get(label.lower()) or dataset.aliases.get(label.lower())
        if name is None:
            errors.add(
                Issue(
                    "extra-label",
                    f"Line 1, column {i + 1}: column {label!r} is not in the schema of "
                    f"{dataset.name} (expected {', '.join(dataset.field_names)})",
                    1,
                    label,
                    i + 1,
                    raw,
                )
            )
        elif name in found:
            errors.add(
                Issue(
                    "duplicate-label",
                    f"Line 1, column {i + 1}: column {label!r} repeats column "
                    f"{found[name] + 1} ({name})",
                    1,
                    name,
                    i + 1,
                    raw,
                    note=f"first at column {found[name] + 1}",
                )
            )
        else:
            found[name] = i
    for number, f in enumerate(dataset.fields, start=1):
        if f.name not in found and not f.optional_column:
            errors.add(
                Issue(
                    "missing-label",
                    f"Line 1: required column {f.name!r} is missing",
                    1,
                    f.name,
                    number,
                    "",
                    note=f"schema field {number}",
                )
            )
    return found


def _report_mask(
    sink: IssueList,
    mask: np.ndarray,
    lines: np.ndarray,
    raw: pa.ChunkedArray | pa.Array,
    make: Any,
    rows: pa.Table | None = None,
) -> None:
    """Add one issue per True row of ``mask`` (materialising only up to the sink's room).

    ``rows``: the string table, to attach each row's cells to its issue."""
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return
    shown = idx[: sink.room()]
    taken = pa.array(shown, pa.int64())
    values = raw.take(taken).to_pylist() if shown.size else []
    cells: list[tuple[str, ...] | None] = [None] * len(values)
    if rows is not None and shown.size:
        cols = [c.to_pylist() for c in rows.take(taken).columns]
        cells = [tuple(col[j] for col in cols) for j in range(len(values))]
    kind = ""
    for i, value, row in zip(shown, values, cells, strict=True):
        issue = make(int(lines[i]), value, int(i))
        kind = issue.type
        sink.add(replace(issue, cells=row) if row is not None else issue)
    if idx.size > shown.size:
        if not kind:  # nothing shown: build one issue just to learn its type
            kind = make(int(lines[idx[0]]), raw.take(pa.array(idx[:1], pa.int64()))[0].as_py(),
                        int(idx[0])).type
        sink.count(idx.size - shown.size, kind)


def _np(mask: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)


def _cast_field(
    f: Field, col: pa.ChunkedArray, missing: np.ndarray
) -> tuple[pa.ChunkedArray | pa.Array, np.ndarray, str]:
    """Cast a trimmed string column to the field's type; return (typed, type_error_mask, expected).

    Fast path, for integers written as plain digits (at most 18) and ISO dates: Arrow's own
    cast of the whole column. Otherwise, or when the cast fails, each value is checked against
    the type's rule (``INTEGER_RE``, ``NUMBER_RE``, the date formats) to find the bad ones: the
    same values are accepted whichever path is taken (Arrow alone would take ``0x10`` as 16 and
    ``nan`` as a number)."""
    present = pa.array(~missing)
    fast = None
    if f.type in {"integer", "year"}:
        plain = pc.and_(pc.ascii_is_decimal(col), pc.less_equal(pc.utf8_length(col), 18))
        if pc.all(pc.or_(plain, pa.array(missing))).as_py():
            fast = pa.int64()
    if f.type == "date" and f.date_formats[0] == "%Y-%m-%d":
        fast = pa.date32()
    if fast is not None:
        try:
            typed = pc.cast(pc.if_else(present, col, pa.scalar(None, pa.string())), fast)
            if fast != pa.date32() or not _year_zero(typed):
                return typed, np.zeros(len(col), bool), ""
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass  # some value is not in Arrow's strict form: find which, rule by rule
    if f.type == "integer" or f.type == "year":
        ok = _np(pc.match_substring_regex(col, INTEGER_RE))
        keep = pc.if_else(pa.array(ok & ~missing), col, pa.scalar(None, pa.string()))
        keep = pc.replace_substring_regex(keep, r"^\+", "")  # Arrow's integer cast takes no '+'
        return pc.cast(keep, pa.int64()), ~ok & ~missing, "an integer (at most 18 digits)"
    if f.type == "number":
        ok = _np(pc.match_substring_regex(col, NUMBER_RE))
        keep = pc.if_else(pa.array(ok & ~missing), col, pa.scalar(None, pa.string()))
        return pc.cast(keep, pa.float64()), ~ok & ~missing, "a number"
    if f.type == "date":
        parsed = None
        for fmt in f.date_formats:
            attempt = pc.strptime(col, format=fmt, unit="s", error_is_null=True)
            # Arrow normalises impossible days (2020-02-30 -> 2020-03-01): keep only dates that
            # format back to the very text given.
            exact = pc.equal(pc.strftime(attempt, format=fmt), col)
            attempt = pc.if_else(exact, attempt, pa.scalar(None, attempt.type))
            parsed = attempt if parsed is None else pc.coalesce(parsed, attempt)
        assert parsed is not None
        typed = pc.cast(pc.if_else(present, parsed, pa.scalar(None, parsed.type)), pa.date32())
        if _year_zero(typed):
            typed = pc.if_else(pc.less(typed, FIRST_DAY), pa.scalar(None, pa.date32()), typed)
        bad = ~_np(pc.is_valid(typed)) & ~missing
        return typed, bad, "a date (" + " or ".join(f.date_formats) + ")"
    if f.type == "week":
        return _cast_week(f, col, missing)
    if f.type == "boolean":
        is_true = _np(pc.is_in(col, value_set=pa.array(TRUE_VALUES)))
        is_false = _np(pc.is_in(col, value_set=pa.array(FALSE_VALUES)))
        typed = pa.array(np.where(is_true, True, False), pa.bool_())
        typed = pc.if_else(pa.array((is_true | is_false) & ~missing), typed, pa.scalar(None, pa.bool_()))
        return typed, ~(is_true | is_false) & ~missing, "true or false"
    return pc.if_else(present, col, pa.scalar(None, pa.string())), np.zeros(len(col), bool), "text"


def _year_zero(typed: pa.ChunkedArray | pa.Array) -> bool:
    """Whether a date32 column holds a date before ``FIRST_DAY`` (year 0)."""
    return bool(pc.any(pc.less(typed, FIRST_DAY)).as_py())


def _cast_week(
    f: Field, col: pa.ChunkedArray, missing: np.ndarray
) -> tuple[pa.Array, np.ndarray, str]:
    """Week labels (``2020-S9``, ``2020-S09``, ``2020-W09``, ``Semaine 10``) to ISO ``2020-W09``."""
    with_year = pc.extract_regex(col, WEEK_RE)
    year = pc.struct_field(with_year, "year")
    week = pc.struct_field(with_year, "week")
    if f.default_year is not None:
        bare = pc.extract_regex(col, WEEK_NO_YEAR_RE)
        year = pc.coalesce(year, pc.if_else(pc.is_valid(bare), str(f.default_year), None))
        week = pc.coalesce(week, pc.struct_field(bare, "week"))
    number = pc.cast(week, pa.int64())
    ok = _np(pc.and_(pc.greater_equal(number, 1), pc.less_equal(number, 53))) & ~missing
    label = pc.binary_join_element_wise(year, "-W", pc.utf8_lpad(week, 2, "0"), "")
    typed = pc.if_else(pa.array(ok), label, pa.scalar(None, pa.string()))
    expected = "a week label (2020-S09, 2020-W09" + (", Semaine 10" if f.default_year else "") + ")"
    return typed, ~ok & ~missing, expected


@dataclass
class _Text:
    """A string column without nulls seen through NumPy, chunk by chunk: what the fast cell
    checks (``_fast_cells``, ``_trimmed``, ``_single_digits``) read without a pass of Arrow's
    per-value kernels."""

    offsets: list[np.ndarray]
    """Each chunk's value offsets (int32, one more than its values) into its buffer."""
    data: list[np.ndarray]
    """Each chunk's byte buffer (uint8)."""
    low: int
    """Smallest byte in any value (256 when no value has a byte)."""
    high: int
    """Largest byte in any value (-1 when no value has a byte)."""

    @classmethod
    def of(cls, col: pa.ChunkedArray | pa.Array) -> _Text | None:
        """None for a column that is not ``pa.string()`` or has nulls."""
        chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
        offsets, data = [], []
        low, high = 256, -1
        for c in chunks:
            if c.type != pa.string() or c.null_count:
                return None
            if len(c) == 0:
                continue
            _, off, buf = c.buffers()
            o = np.frombuffer(off, np.int32, len(c) + 1, c.offset * 4)
            d = np.frombuffer(buf, np.uint8) if buf is not None else np.empty(0, np.uint8)
            used = d[o[0] : o[-1]]
            if used.size:
                low, high = min(low, int(used.min())), max(high, int(used.max()))
            offsets.append(o)
            data.append(d)
        return cls(offsets, data, low, high)

    @cached_property
    def lengths(self) -> np.ndarray:
        """Bytes of each value."""
        if not self.offsets:
            return np.empty(0, np.int32)
        return np.concatenate([np.diff(o) for o in self.offsets])

    def first_bytes(self, lengths: np.ndarray, size: int) -> np.ndarray:
        """The first byte of each value of ``size`` bytes (``size`` > 0), in order."""
        found, at = [], 0
        for o, d in zip(self.offsets, self.data, strict=True):
            n = o.size - 1
            found.append(d[o[:-1][lengths[at : at + n] == size]])
            at += n
        return np.concatenate(found) if found else np.empty(0, np.uint8)

    def has(self, byte: int) -> bool:
        """Whether ``byte`` occurs in any value."""
        chunks = zip(self.offsets, self.data, strict=True)
        return any((d[o[0] : o[-1]] == byte).any() for o, d in chunks)

    def count(self, byte: int) -> np.ndarray:
        """How many times ``byte`` occurs in each value."""
        counts = []
        for o, d in zip(self.offsets, self.data, strict=True):
            running = np.zeros(o[-1] - o[0] + 1, np.int32)
            np.cumsum(d[o[0] : o[-1]] == byte, out=running[1:])
            counts.append(running[o[1:] - o[0]] - running[o[:-1] - o[0]])
        return np.concatenate(counts) if counts else np.empty(0, np.int32)


def _trimmed(col: pa.ChunkedArray) -> tuple[pa.ChunkedArray, _Text | None]:
    """(``pc.utf8_trim_whitespace(col)``, None), or (``col`` itself, its ``_Text``) when no value
    holds a byte that can start or be part of whitespace (every whitespace character Arrow trims
    is encoded with bytes up to 0x20 or from 0x80): then trimming changes nothing."""
    text = _Text.of(col)
    if text is not None and text.low > 0x20 and text.high < 0x7F:
        return col, text
    return pc.utf8_trim_whitespace(col), None


def _single_digits(col: pa.ChunkedArray, text: _Text | None = None) -> np.ndarray:
    """Values that are one digit 1 to 9 (``^[1-9]$``): one byte, that digit. ``text``: the
    column's ``_Text``, when known."""
    text = text or _Text.of(col)
    if text is None:
        return _np(pc.match_substring_regex(col, r"^[1-9]$"))
    lengths = text.lengths
    short = lengths == 1
    if short.any():
        digit = text.first_bytes(lengths, 1)
        short[short] = (digit >= ord("1")) & (digit <= ord("9"))
    return short


FAST_BYTES: dict[str, tuple[int, int]] = {
    "integer": (ord("0"), ord("9")),
    "year": (ord("0"), ord("9")),
    "number": (ord("."), ord("9")),
    "date": (ord("-"), ord("9")),
}
"""Bytes a column of a type must keep to for ``_fast_cells`` (strings: any)."""


def _fast_cells(
    f: Field, col: pa.ChunkedArray, missing_values: Iterable[str], text: _Text | None = None
) -> tuple[np.ndarray, pa.ChunkedArray | pa.Array] | None:
    """(missing, typed) of a trimmed column of a batch without blank rows whose every cell is
    plainly valid or missing, found with a few passes over its bytes; None whenever that is not
    plain, and the caller takes the exact path (``pc.is_in`` for missing values, then
    ``_cast_field``), which then finds the same values and reports what is wrong.

    Plain, by type (an empty cell must be a missing value, ``""`` in ``missing_values``):
    integer and year: only ASCII digits, at most 18; number: ASCII digits and at most one ``.``
    per cell, not ``.`` alone (so ``NUMBER_RE`` holds); date (``%Y-%m-%d`` first): bytes from
    ``-`` to ``9`` and Arrow's cast to date32 succeeds (``_cast_field``'s own first attempt);
    string: anything. A missing value other than ``""`` is never matched here: when a cell could
    be it (its bytes fit the type's; for strings, a cell of its length starting with its first
    byte), the column is left to the exact path. The typed values come from the same Arrow casts
    of the same strings as in ``_cast_field``. ``text``: the column's ``_Text``, when known."""
    kind = f.type
    if kind == "date" and f.date_formats[0] != "%Y-%m-%d":
        return None
    if kind not in FAST_BYTES and kind != "string":
        return None
    text = text or _Text.of(col)
    if text is None:
        return None
    lengths = text.lengths
    empty = lengths == 0
    low, high = FAST_BYTES.get(kind, (0, 255))
    if text.low < low or text.high > high:
        return None
    missing = np.zeros(lengths.size, dtype=bool)
    for value in missing_values:
        if value == "":
            missing |= empty
            continue
        raw = value.encode()
        if kind != "string":
            if all(low <= b <= high for b in raw):
                return None  # a cell could be this missing value
        elif (text.first_bytes(lengths, len(raw)) == raw[0]).any():
            return None
    if kind != "string" and (empty & ~missing).any():
        return None  # an empty cell that is not a missing value: a type error
    if kind in {"integer", "year"} and lengths.size and lengths.max() > 18:
        return None
    if kind == "number" and text.low < ord("0"):  # '.' or '/' somewhere
        dots = text.count(ord("."))
        if text.has(ord("/")) or (dots > 1).any() or ((dots == 1) & (lengths == 1)).any():
            return None
    kept = col
    if missing.any():
        kept = pc.if_else(pa.array(~missing), col, pa.scalar(None, pa.string()))
    if kind == "string":
        return missing, kept
    try:
        typed = pc.cast(kept, ARROW_TYPES[kind])
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None  # not in Arrow's strict form (2020-02-30): the exact path finds which
    if kind == "date" and _year_zero(typed):
        return None  # 0000-01-01: a type error, the exact path reports it
    return missing, typed


def _constraint_masks(f: Field, typed: Any, missing: np.ndarray) -> Iterable[tuple[np.ndarray, str, str]]:
    """Yield (failing rows, constraint name, expected) for each declared constraint."""
    if f.required:
        yield missing, "required", "a value (the field is required)"
    c = f.constraints
    if "minimum" in c:
        yield _np(pc.less(typed, c["minimum"])), "minimum", f"at least {c['minimum']}"
    if "maximum" in c:
        yield _np(pc.greater(typed, c["maximum"])), "maximum", f"at most {c['maximum']}"
    if "enum" in c:
        allowed = pa.array(c["enum"]).cast(typed.type)
        yield (
            ~_np(pc.is_in(typed, value_set=allowed)) & ~missing,
            "enum",
            "one of " + ", ".join(map(str, c["enum"])),
        )
    if "pattern" in c and pa.types.is_string(typed.type):
        ok = _np(pc.match_substring_regex(typed, f"^(?:{c['pattern']})$"))
        yield ~ok & ~missing, "pattern", f"text matching {c['pattern']}"
    if "minLength" in c and pa.types.is_string(typed.type):
        yield _np(pc.less(pc.utf8_length(typed), c["minLength"])), "minLength", f"at least {c['minLength']} characters"
    if "maxLength" in c and pa.types.is_string(typed.type):
        yield _np(pc.greater(pc.utf8_length(typed), c["maxLength"])), "maxLength", f"at most {c['maxLength']} characters"


def _area_codes(dataset: Dataset, cog: Cog) -> dict[str, str]:
    """Valid codes of the dataset's geographic level -> what they are."""
    level = dataset.geography.level
    if level == "dep":
        codes = {k: v["name"] for k, v in cog.departments.items()}
    elif level == "reg":
        codes = {k: v["name"] for k, v in cog.regions.items()}
    else:
        codes = {NATIONAL_CODE: "France"}
    codes.update({k: v.get("name", k) for k, v in dataset.geography.extra_codes.items()})
    return codes


def _fk_message(level: str, code: str) -> str:
    what = {"dep": "department", "reg": "region"}.get(level, "area")
    if level == "dep" and code == "20":
        return f"'20' is not a valid {what} code (use 2A or 2B: Corsica is two departments since 1976)"
    return f"{code!r} is not a valid {what} code (INSEE COG 2020, or a code the dataset declares)"


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


@dataclass
class _Keys:
    """The key columns of every row the primary-key check sees, as codes (see ``keysort.Codes``)."""

    codes: dict[str, np.ndarray]
    values: dict[str, list[Any]]
    lines: np.ndarray
    """Physical line of each row."""
    good: np.ndarray
    """True for the rows published (the staged rows, in the same order)."""
    pk_sorted: tuple[np.ndarray, np.ndarray] | None = None
    """(packed primary key, its sort order) once the keys are known distinct, for reuse."""

    def size(self, name: str) -> int:
        return len(self.values[name])

    def value(self, name: str, code: int) -> Any:
        return self.values[name][int(code)]


class _Batches:
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
            self.reader: Iterable[pa.RecordBatch] = self._open(decoded, names, on_invalid, read_bytes)
        except pa.ArrowInvalid as exc:
            if "skip initial" not in str(exc):
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
            what = "fewer" if actual < expected else "more"
            self.errors.add(
                Issue(
                    kind,
                    f"Line {number}: the row has {actual} cells, {what} than the header's {expected}",
                    number,
                    None,
                    None,
                    text,
                    note=f"expected {expected} cells, found {actual}",
                )
            )
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


class _StagingWriter:
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


@dataclass
class _State:
    """What the checks carry from batch to batch."""

    padded: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    """Field -> padded code -> [first line, rows]."""
    unique_seen: dict[str, set[Any]] = field(default_factory=dict)
    rows_seen: dict[int, int] = field(default_factory=dict)
    """Row hash (``_row_hashes``) -> its first line (``exactDuplicateRows``)."""
    bad_rows: int = 0


ROW_HASH_KEYS = ("opendepot-rows-1", "opendepot-rows-2")
"""The two 16-character keys of ``pandas.util.hash_pandas_object`` that make a row's 128-bit
hash."""


def _row_hashes(cells: dict[int, Any]) -> list[int]:
    """A 128-bit hash of each row's cells (two 64-bit pandas hashes with different keys): about
    100 bytes per distinct row kept across batches, where the cells themselves take ten times
    more. Two different rows share a hash with probability about rows² / 2**129."""
    frame = pd.DataFrame({i: c.to_numpy(zero_copy_only=False) for i, c in cells.items()})
    first, second = (pd.util.hash_pandas_object(frame, index=False, hash_key=k).to_numpy()
                     for k in ROW_HASH_KEYS)
    return [(int(a) << 64) | int(b) for a, b in zip(first, second, strict=True)]


def _check_batch(
    table: pa.Table,
    lines: np.ndarray,
    dataset: Dataset,
    cog: Cog,
    positions: dict[str, int],
    errors: IssueList,
    state: _State,
) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """Row and cell checks of one batch: (typed rows in schema order, bad rows, rows that are
    not rows for the primary-key check: blank rows and exact duplicates, already reported)."""
    n = table.num_rows
    bad = np.zeros(n, dtype=bool)
    trimmed: dict[int, pa.ChunkedArray] = {}
    texts: dict[int, _Text | None] = {}  # the trimmed column's bytes, when already seen
    for i in range(table.num_columns):
        trimmed[i], texts[i] = _trimmed(table.column(i))
    blank = np.ones(n, dtype=bool)
    for col in trimmed.values():
        blank &= _np(pc.equal(col, ""))
        if not blank.any():
            break  # no row left that could be blank
    if blank.any():
        _report_mask(
            errors,
            blank,
            lines,
            table.column(0),
            lambda line, _v, _i: Issue("blank-row", f"Line {line}: the row is blank", line),
            table,
        )
        bad |= blank

    # Exact duplicate rows (every cell equal): with ``errorBudget.exactDuplicateRows`` set to
    # ``leave-out`` they are row errors (``duplicate-row``), left out within the error budget,
    # instead of primary-key conflicts: nothing is picked between different values.
    dup = np.zeros(n, dtype=bool)
    if dataset.error_budget.exact_duplicate_rows == "leave-out":
        first_line = np.zeros(n, dtype=np.int64)
        for i, row in enumerate(_row_hashes(trimmed)):
            seen = state.rows_seen.get(row)
            if seen is None:
                state.rows_seen[row] = int(lines[i])
            elif not blank[i]:
                dup[i], first_line[i] = True, seen
        if dup.any():
            _report_mask(
                errors,
                dup,
                lines,
                table.column(0),
                lambda line, _v, i: Issue(
                    "duplicate-row",
                    f"Line {line}: the row repeats line {int(first_line[i])} exactly; left out",
                    line,
                    note=f"first at line {int(first_line[i])}",
                ),
                table,
            )
            bad |= dup

    missing_set = pa.array(list(dataset.missing_values), pa.string())
    typed: dict[str, Any] = {}
    geo = dataset.geography
    for f in dataset.fields:
        if f.name not in positions:
            typed[f.name] = pa.nulls(n, ARROW_TYPES[f.type])
            continue
        pos = positions[f.name]
        raw = table.column(pos)
        col, text = trimmed[pos], texts[pos]
        if f.pad_single_digit:
            short = _single_digits(col, text) & ~blank
            if short.any():
                # one warning per distinct code, at the end (a spreadsheet drops every leading
                # zero of a column: 2,970 identical warnings would hide everything else)
                idx = np.flatnonzero(short)
                codes = np.asarray(col.take(pa.array(idx, pa.int64())).to_pylist(), dtype=object)
                seen = state.padded.setdefault(f.name, {})
                for code in set(codes):
                    where = idx[codes == code]
                    entry = seen.setdefault(code, [int(lines[where[0]]), 0])
                    entry[1] += int(where.size)
                col = pc.if_else(pa.array(short), pc.binary_join_element_wise("0", col, ""), col)
                text = None
        fast = None if blank.any() else _fast_cells(f, col, dataset.missing_values, text)
        if fast is not None:  # every cell plainly valid or missing: what the exact path finds
            missing, value = fast
            type_bad, expected = np.zeros(n, dtype=bool), ""
        else:
            missing = _np(pc.is_in(col, value_set=missing_set)) & ~blank
            value, type_bad, expected = _cast_field(f, col, missing)
        type_bad &= ~blank
        if type_bad.any():
            _report_mask(
                errors,
                type_bad,
                lines,
                raw,
                lambda line, cell, _i, f=f, pos=pos, expected=expected: Issue(
                    "type-error",
                    f"Line {line}, column {f.name}: value {cell!r} is not {expected}",
                    line,
                    f.name,
                    pos + 1,
                    cell,
                    note=f"type is {f.type}",
                ),
                table,
            )
            bad |= type_bad
        for fail, constraint, wanted in _constraint_masks(f, value, missing):
            fail = fail & ~blank & ~type_bad
            if fail.any():
                _report_mask(
                    errors,
                    fail,
                    lines,
                    raw,
                    lambda line, cell, _i, f=f, pos=pos, constraint=constraint, wanted=wanted: Issue(
                        "constraint-error",
                        f"Line {line}, column {f.name}: value {cell!r} breaks constraint "
                        f"{constraint!r}: expected {wanted}",
                        line,
                        f.name,
                        pos + 1,
                        cell,
                        note=f"constraint {constraint}",
                    ),
                    table,
                )
                bad |= fail
        if f.constraints.get("unique"):
            seen_values = state.unique_seen.setdefault(f.name, set())
            series = pd.Series(value.to_pandas() if hasattr(value, "to_pandas") else value)
            earlier = series.isin(seen_values).to_numpy() | series.duplicated(keep="first").to_numpy()
            valid = _np(pc.is_valid(value))
            repeated = valid & earlier & ~type_bad
            seen_values.update(series[valid].tolist())
            if repeated.any():
                _report_mask(
                    errors,
                    repeated,
                    lines,
                    raw,
                    lambda line, cell, _i, f=f, pos=pos: Issue(
                        "unique-error",
                        f"Line {line}, column {f.name}: value {cell!r} is already in an earlier "
                        f"row; the field must be unique",
                        line,
                        f.name,
                        pos + 1,
                        cell,
                        note="constraint unique",
                    ),
                    table,
                )
                bad |= repeated
        if geo.field is not None and f.name == geo.field:
            area_codes = _area_codes(dataset, cog)
            unknown = ~_np(pc.is_in(value, value_set=pa.array(list(area_codes)))) & ~missing & ~blank
            if unknown.any():
                _report_mask(
                    errors,
                    unknown,
                    lines,
                    value,
                    lambda line, code, _i, f=f, pos=pos: Issue(
                        "foreign-key",
                        f"Line {line}, column {f.name}: {_fk_message(geo.level, code)}",
                        line,
                        f.name,
                        pos + 1,
                        code,
                        note=f"reference {geo.level} codes",
                    ),
                    table,
                )
                bad |= unknown
        typed[f.name] = value
    out = pa.table({f.name: typed[f.name] for f in dataset.fields}, schema=dataset_schema(dataset))
    return out, bad, dup | blank


def dataset_schema(dataset: Dataset) -> pa.Schema:
    """The Arrow schema of a dataset's typed rows: its fields in order, ``ARROW_TYPES``."""
    return pa.schema([(f.name, ARROW_TYPES[f.type]) for f in dataset.fields])


def _key_names(dataset: Dataset) -> list[str]:
    geo = dataset.geography.field
    return list(dict.fromkeys([*dataset.primary_key, *([geo] if geo else [])]))


def _padded_warnings(
    dataset: Dataset, positions: dict[str, int], state: _State, warnings: IssueList
) -> None:
    for f in dataset.fields:
        for code, (line, n_rows) in sorted(state.padded.get(f.name, {}).items()):
            more = f" ({n_rows} rows, first at line {line})" if n_rows > 1 else ""
            warnings.add(
                Issue(
                    "padded-code",
                    f"Line {line}, column {f.name}: code {code!r} padded to '0{code}'{more}",
                    line,
                    f.name,
                    positions[f.name] + 1,
                    code,
                    note=f"0{code}",
                )
            )


def validate_decoded(
    decoded: Decoded,
    dataset: Dataset,
    cog: Cog,
    *,
    name: str,
    max_errors: int = 1000,
    out: str | None = None,
    block_bytes: int = BLOCK_BYTES,
) -> Validation:
    """Validate decoded CSV text against ``dataset`` (see module docstring), one batch of about
    ``block_bytes`` of text at a time.

    The accepted rows are written, batch by batch, as Parquet (``STAGING_CODEC``) to the file
    ``out``, or to memory when ``out`` is None: ``Validation.staged``. Memory holds one batch
    (and the previous batch's accepted rows while they are staged, ``_StagingWriter``), the key
    columns as integer codes (1 to 4 bytes per key column and row) and one measure column at a
    time for the cross-row checks; never the whole file. A row longer than the reader's block
    (1 MiB) makes it read the file again in blocks of ``LONG_ROW_BYTES``; a row longer than that
    is a ``source-error``.
    """
    read = min(READ_BYTES, block_bytes)
    for attempt in (read, max(read, LONG_ROW_BYTES)):
        try:
            return _validate_decoded(decoded, dataset, cog, name=name, max_errors=max_errors,
                                     out=out, block_bytes=max(block_bytes, attempt),
                                     read_bytes=attempt)
        except pa.ArrowInvalid as exc:
            if "straddl" not in str(exc):  # Arrow: "straddling object straddles two blocks"
                raise
    v = Validation(name=name, errors=IssueList(max_errors), warnings=IssueList(max_errors))
    v.decoded, v.labels = decoded, decoded.header
    message = (f"a row is longer than {LONG_ROW_BYTES >> 20} MiB (a quote left open, or not a "
               f"CSV file?); rows that long are not read")
    v.errors.add(Issue("source-error", message))
    v.rejection = message
    return v


def _validate_decoded(
    decoded: Decoded,
    dataset: Dataset,
    cog: Cog,
    *,
    name: str,
    max_errors: int = 1000,
    out: str | None = None,
    block_bytes: int = BLOCK_BYTES,
    read_bytes: int = READ_BYTES,
) -> Validation:
    """``validate_decoded`` with the reader's block of ``read_bytes``."""
    started = time.perf_counter()
    v = Validation(name=name, errors=IssueList(max_errors), warnings=IssueList(max_errors))
    v.decoded = decoded
    v.labels = decoded.header
    errors, warnings = v.errors, v.warnings

    positions = _labels_to_fields(decoded.header, dataset, errors)
    if errors.total:
        if len(decoded.header) == 1 and len(dataset.fields) > 1:
            missing = ", ".join(f.name for f in dataset.fields if not f.optional_column)
            errors.items.insert(
                0,
                Issue(
                    "format-error",
                    f"Line 1: the header cannot be split into the schema's columns (no ';', ',' "
                    f"or tab in it); the file has a single column {decoded.header[0]!r}. Missing "
                    f"required columns: {missing}",
                    1,
                    None,
                    None,
                    decoded.header[0][:200],
                ),
            )
            errors.total += 1
        v.rejection = "the header does not match the schema"
        v.seconds = time.perf_counter() - started
        return v
    v.mapping = {n: decoded.header[i] for n, i in positions.items()}

    schema = dataset_schema(dataset)
    sink = out if out is not None else pa.BufferOutputStream()
    writer = _StagingWriter(sink, schema)
    key_names = _key_names(dataset)
    codes = {k: keysort.Codes() for k in key_names}
    line_chunks: list[np.ndarray] = []
    good_chunks: list[np.ndarray] = []
    state = _State()
    try:  # opening the reader can fail too (a parse error in its first block): the file is closed
        batches = _Batches(decoded, len(decoded.header), errors, block_bytes, read_bytes)
        for number, (table, lines) in enumerate(batches, start=1):
            typed, bad, not_rows = _check_batch(table, lines, dataset, cog, positions, errors, state)
            state.bad_rows += int(bad.sum())
            if not bad.all():  # staged while the next lines run and the next batch is checked
                writer.write(typed.filter(pa.array(~bad)) if bad.any() else typed)
            # every row but blank rows and exact duplicates goes to the primary-key check (a
            # repeated key is never hidden by another error on the same row); good ones are staged
            keep = ~not_rows
            kept = typed.filter(pa.array(keep)) if not_rows.any() else typed
            for k in key_names:
                codes[k].add(kept[k])
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
    v.rows = batches.rows
    if v.rows == 0:
        errors.add(Issue("source-error", "the file has a header but no data rows"))
        v.rejection = "no data rows"
        v.seconds = time.perf_counter() - started
        return v

    keys = _Keys({}, {}, np.concatenate(line_chunks), np.concatenate(good_chunks))
    del line_chunks, good_chunks
    for k in key_names:
        keys.codes[k], keys.values[k] = codes[k].finish()
    release_memory()
    pk_rejects = _check_primary_key(keys, dataset, errors)

    bad_rows = state.bad_rows + len(batches.skipped)
    rows_good = int(keys.good.sum())
    if pk_rejects:
        v.rejection = "duplicated primary keys"
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
        v.staged = out if out is not None else sink.getvalue()
        geo = dataset.geography.field
        if geo is not None:
            v.areas = int(np.unique(keys.codes[geo][keys.good]).size)
        _padded_warnings(dataset, positions, state, warnings)
        staged = pq.ParquetFile(v.staged if out is not None else pa.BufferReader(v.staged))

        def measure(name: str) -> tuple[np.ndarray, int] | None:
            return _read_measure(staged, name, rows_good)

        try:
            _series_warnings(keys, measure, dataset, warnings)
            keys.pk_sorted = None
            release_memory()
            _total_warnings(keys, measure, dataset, warnings)
        finally:
            staged.close()
    v.seconds = time.perf_counter() - started
    return v


def _fmt_key(names: tuple[str, ...], values: tuple[Any, ...]) -> str:
    return ", ".join(f"{k}={_text(v)}" for k, v in zip(names, values, strict=True))


def _num(value: Any) -> str:
    """A count as written by people: ``12`` for whole numbers, else up to 10 significant digits."""
    number = float(value)
    return str(int(number)) if number.is_integer() else f"{number:.10g}"


def _text(value: Any) -> str:
    """A key value as text; missing values (None, NaN) as ""."""
    return "" if value is None or value != value else str(value)


def _check_primary_key(keys: _Keys, dataset: Dataset, errors: IssueList) -> int:
    """Report each repeat of a primary key, naming the line of its first occurrence (missing
    values compare equal, as in Frictionless: a repeated row with an empty key part is a repeat
    too). On integer codes: one packed key per row, a counting sort when keys are distinct."""
    pk = list(dataset.primary_key)
    n = keys.lines.size
    if not pk or n == 0:
        return 0
    cols = [keys.codes[k] for k in pk]
    packed = keysort.pack(cols, [keys.size(k) for k in pk])
    if packed is None:
        order = np.lexsort(cols[::-1])
        same = keysort.same_as_previous(cols, order)
    else:
        order, distinct = keysort.sort_order(*packed)
        if distinct:
            keys.pk_sorted = (packed[0], order)
            return 0
        ordered = packed[0][order]
        same = np.zeros(n, dtype=bool)
        same[1:] = ordered[1:] == ordered[:-1]
    if not same.any():
        return 0
    start = np.maximum.accumulate(np.where(same, 0, np.arange(n)))  # group's first sorted row
    rows = order[same]
    first = order[start[same]]  # stable sort: the group's first row is its earliest
    by_line = np.argsort(rows, kind="stable")
    rows, first = rows[by_line], first[by_line]
    shown = min(rows.size, errors.room())
    for row, first_row in zip(rows[:shown], first[:shown], strict=True):
        values = tuple(keys.value(k, keys.codes[k][row]) for k in pk)
        line, first_line = int(keys.lines[row]), int(keys.lines[first_row])
        errors.add(
            Issue(
                "primary-key",
                f"Line {line}: primary key ({_fmt_key(tuple(pk), values)}) already at line "
                f"{first_line}; duplicated rows are never merged or picked from",
                line,
                ",".join(pk),
                None,
                "/".join(_text(x) for x in values),
                note=f"first at line {first_line}",
            )
        )
    errors.count(int(rows.size) - shown, "primary-key")
    return int(rows.size)


def _floats(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A numeric column as float64 with NaN for missing, for the cross-row checks: an integer
    past 2**53 becomes the nearest float64 (its staged value stays exact)."""
    filled = pc.fill_null(pc.cast(col, pa.float64(), safe=False), np.nan)
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=np.float64)


def _floats_into(out: np.ndarray, chunk: pa.Array) -> None:
    """``out[:] = _floats(chunk)``, without Arrow's cast and fill when ``chunk`` is wholly
    missing, or int64 or float64 without a missing value."""
    if chunk.null_count == len(chunk):
        out.fill(np.nan)
    elif chunk.null_count == 0 and chunk.type in (pa.int64(), pa.float64()):
        out[...] = chunk.to_numpy()
    else:
        out[...] = _floats(chunk)


def _read_measure(staged: pq.ParquetFile, name: str, rows: int) -> tuple[np.ndarray, int] | None:
    """One staged column as float64 (NaN for missing) and how many of its values are missing,
    read a row group at a time; None, without reading it, when the file's statistics say every
    value is missing (e.g. a measure the uploaded file lacks, staged as nulls)."""
    metadata = staged.metadata
    column = staged.schema_arrow.get_field_index(name)
    groups = [metadata.row_group(i) for i in range(metadata.num_row_groups)]
    stats = [g.column(column).statistics for g in groups]
    if groups and all(s is not None and s.has_null_count and s.null_count == g.num_rows
                      for s, g in zip(stats, groups, strict=True)):
        return None
    values = np.empty(rows, np.float64)
    at = missing = 0
    for i in range(len(groups)):
        for chunk in staged.read_row_group(i, columns=[name], use_threads=False).column(0).chunks:
            _floats_into(values[at : at + len(chunk)], chunk)
            at += len(chunk)
            missing += chunk.null_count
    return values, missing


def _series_warnings(
    keys: _Keys,
    measure: Callable[[str], tuple[np.ndarray, int] | None],
    dataset: Dataset,
    warnings: IssueList,
) -> None:
    """Cumulative counts that go down and missing days, per area and dimension, on the published
    rows (packed integer codes sorted by series then day; values formatted only for the rows
    reported)."""
    date = dataset.date_field
    geo = dataset.geography.field
    good = keys.good
    n = int(good.sum())
    if date is None or n == 0:
        return
    everything = bool(good.all())
    codes = {k: c if everything else c[good] for k, c in keys.codes.items()}
    values = dict(keys.values)
    if geo is None:
        geo = "__area"
        codes[geo], values[geo] = np.zeros(n, np.int32), [NATIONAL_CODE, None]
    lines = keys.lines if everything else keys.lines[good]
    series = [k for k in dataset.primary_key if k != date] or [geo]
    n_days = len(values[date])
    cumulative = [m for m, kind in dataset.measures.items() if kind == "cumulative"]
    if cumulative:
        cols = [codes[k] for k in series] + [codes[date]]
        if everything and keys.pk_sorted is not None and [*series, date] == list(dataset.primary_key):
            packed: tuple[np.ndarray, int] | None = (keys.pk_sorted[0], 0)  # same packing
            order = keys.pk_sorted[1]
        else:
            packed = keysort.pack(cols, [len(values[k]) for k in series] + [n_days])
            order = np.lexsort(cols[::-1]) if packed is None else keysort.sort_order(*packed)[0]
        if packed is None:
            same = keysort.same_as_previous(cols[:-1], order)
        else:
            same = _same_series(packed[0], order, n_days)
            del packed
    for m in cumulative:
        read = measure(m)
        if read is None:
            continue  # no value at all: nothing goes down
        v = read[0]
        flagged = _decreases(v, order, same)
        shown = flagged[: warnings.room()]
        for i in shown:
            row, prev = int(order[i]), int(order[i - 1])
            where = tuple(values[k][codes[k][row]] for k in series)
            area = _fmt_key(tuple(series), where).replace("__area=FR", "France")
            day, day_before = values[date][codes[date][row]], values[date][codes[date][prev]]
            line, before_line = int(lines[row]), int(lines[prev])
            now, before = int(v[row]), int(v[prev])
            warnings.add(
                Issue(
                    "cumulative-decrease",
                    f"Line {line}, column {m}, {area}: cumulative count goes down from {before} "
                    f"on {day_before} to {now} on {day}",
                    line,
                    m,
                    None,
                    str(now),
                    note=f"previous {before} on {day_before} (line {before_line})",
                )
            )
        warnings.count(flagged.size - shown.size, "cumulative-decrease")
    # Missing days: per area, consecutive dates more than one day apart.
    dated = codes[date] != n_days - 1  # the last code is null
    all_dated = bool(dated.all())
    g_codes = codes[geo] if all_dated else codes[geo][dated]
    d_codes = codes[date] if all_dated else codes[date][dated]
    space = len(values[geo]) * n_days
    pair = g_codes.astype(np.int32 if space < np.iinfo(np.int32).max else np.int64)
    pair *= n_days
    pair += d_codes  # (area, day) packed, area first
    del g_codes, d_codes
    if keysort.dense(space, pair.size):
        present = np.flatnonzero(np.bincount(pair, minlength=space))  # sorted (area, day) ids
    else:
        present = np.unique(pair)
    epoch = datetime.date(1970, 1, 1).toordinal()
    day_numbers = (np.array([x.toordinal() for x in values[date][:-1]], np.int64) - epoch).astype(
        "datetime64[D]"
    )
    d = day_numbers[present % n_days]
    g = present // n_days
    step = np.diff(d).astype(np.int64)
    gaps = np.flatnonzero((step > 1) & (g[1:] == g[:-1]))
    if gaps.size == 0:
        return
    _, first_index = np.unique(pair, return_index=True)  # earliest row of each (area, day)
    first_row = first_index if all_dated else np.flatnonzero(dated)[first_index]
    shown_gaps = gaps[: warnings.room()]
    for i in shown_gaps:
        start, end = d[i], d[i + 1]
        line = int(lines[first_row[i + 1]])
        area = values[geo][g[i + 1]]
        n_missing = int(step[i]) - 1  # the days named: 5 at most (a typo year makes millions)
        shown = ", ".join(str(start + k) for k in range(1, min(n_missing, 5) + 1))
        shown += " ..." if n_missing > 5 else ""
        warnings.add(
            Issue(
                "missing-day",
                f"Line {line}: no row {'' if geo == '__area' else f'for {geo} {area} '}on "
                f"{shown} (between {start} and {end}); the gap is not filled",
                line,
                date,
                None,
                str(end),
                note=f"{n_missing} day(s) missing",
            )
        )
    warnings.count(gaps.size - shown_gaps.size, "missing-day")


def _same_series(key: np.ndarray, order: np.ndarray, n_days: int) -> np.ndarray:
    """True where a sorted row is in the same series as the one before it: packed keys whose day
    (their last digit, base ``n_days``) aside are equal; a million rows at a time."""
    same = np.zeros(order.size, dtype=bool)
    step = 1 << 20
    for start in range(1, order.size, step):
        stop = min(start + step, order.size)
        window = key[order[start - 1 : stop]] // n_days
        same[start:stop] = window[1:] == window[:-1]
    return same


def _decreases(values: np.ndarray, order: np.ndarray, same: np.ndarray) -> np.ndarray:
    """Sorted positions ``i`` where ``values[order[i]] < values[order[i - 1]]`` and ``same[i]``
    (NaN compares False: never across a missing value); ``order`` taken a million rows at a
    time, so the sorted values are never all in memory."""
    found = []
    step = 1 << 20
    for start in range(1, order.size, step):
        stop = min(start + step, order.size)
        window = values[order[start - 1 : stop]]
        down = (window[1:] < window[:-1]) & same[start:stop]
        found.append(np.flatnonzero(down) + start)
    return np.concatenate(found) if found else np.empty(0, np.int64)


def _total_warnings(
    keys: _Keys,
    measure: Callable[[str], tuple[np.ndarray, int] | None],
    dataset: Dataset,
    warnings: IssueList,
) -> None:
    """A total row (``sexe`` 0) smaller than the sum of its parts, where every part has a value
    (additive measures only: a rate is not the sum of its parts); on the published rows, parts
    summed per key with ``numpy.bincount`` over packed integer codes."""
    measures = [m for m, kind in dataset.measures.items()
                if m in dataset.field_names and kind in {"stock", "cumulative", "incidence"}]
    good = keys.good
    everything = bool(good.all())
    for dim, code in dataset.totals.items():
        others = [k for k in dataset.primary_key if k != dim]
        if dim not in dataset.field_names or not others or not measures:
            continue
        wanted = pa.scalar(code).cast(ARROW_TYPES[dataset.field(dim).type]).as_py()
        total_code = next(
            (i for i, x in enumerate(keys.values[dim]) if x is not None and x == wanted), None
        )
        if total_code is None:
            continue
        dims = keys.codes[dim] if everything else keys.codes[dim][good]
        is_total = dims == total_code
        totals = np.flatnonzero(is_total)  # in line order
        if totals.size == 0:
            continue
        cols = [keys.codes[k] if everything else keys.codes[k][good] for k in others]
        # any packing groups the rows; the last key column (the day, in a daily file) most
        # significant keeps the sums of rows next to each other in nearby bins (day-major files)
        packed = keysort.pack(cols[::-1], [keys.size(k) for k in others][::-1])
        if packed is None:
            order = np.lexsort(cols[::-1])
            group = np.empty(order.size, np.int64)
            group[order] = np.cumsum(~keysort.same_as_previous(cols, order)) - 1
            n_groups = int(group.max()) + 1
        else:
            group, n_groups = keysort.group_ids(*packed)
        del packed
        # numpy.bincount counts on intp: converted once here rather than by every call (and
        # without a second copy beside the first at its peak)
        group = group.astype(np.intp, copy=False)
        parts = ~is_total
        size = np.bincount(group[parts], minlength=n_groups)
        t_group = group[totals]
        t_size = size[t_group]
        del size
        with_parts = t_size > 0
        lines = keys.lines if everything else keys.lines[good]
        for m in measures:
            read = measure(m)
            if read is None:
                continue  # no value at all: no group has every part counted
            v, n_missing = read
            total = v[totals]
            if n_missing:
                counted_part = parts & ~np.isnan(v)
                counted = np.bincount(group[counted_part], minlength=n_groups)[t_group]
                np.copyto(v, 0.0, where=~counted_part)  # v now holds the parts to sum, 0 elsewhere
                del counted_part
                complete = with_parts & (counted == t_size)
            else:  # every part counted: the counts are the sizes
                v[totals] = 0.0  # v now holds the parts to sum, 0 elsewhere
                complete = with_parts
            psum = np.bincount(group, weights=v, minlength=n_groups)[t_group]
            del v
            # decimal measures (populations) carry rounding noise: compare with a tolerance
            below = np.flatnonzero(complete & (total < psum))
            below = below[~np.isclose(total[below], psum[below], rtol=1e-9, atol=1e-9)]
            shown = below[: warnings.room()]
            for i in shown:
                row = int(totals[i])
                where = _fmt_key(
                    tuple(others), tuple(keys.value(k, c[row]) for k, c in zip(others, cols, strict=True))
                )
                value, sum_parts = _num(total[i]), _num(psum[i])
                line = int(lines[row])
                warnings.add(
                    Issue(
                        "total-below-parts",
                        f"Line {line}, column {m}, {where}: the total row ({dim} {code}) has "
                        f"{value}, less than the sum of its parts {sum_parts}",
                        line,
                        m,
                        None,
                        value,
                        note=f"parts sum to {sum_parts}",
                    )
                )
            warnings.count(below.size - shown.size, "total-below-parts")


def validate(
    raw: bytes,
    dataset: Dataset,
    cog: Cog,
    *,
    name: str,
    max_errors: int = 1000,
    max_bytes: int = 512 * 1024 * 1024,
) -> Validation:
    """Decode and validate a file's bytes; the accepted rows are staged in memory.

    Never raises for bad input: should a check itself fail on an input nobody foresaw, the
    file is rejected with a report saying so (the producer gets an answer, the queue does not
    retry a file that will fail the same way)."""

    def run() -> Validation:
        decoded = decode(
            raw, max_bytes=max_bytes, converter=lambda data: formats.convert(data, name, dataset)
        )
        if isinstance(decoded, DecodeProblem):
            return decoded
        return validate_decoded(decoded, dataset, cog, name=name, max_errors=max_errors)

    return _guarded(run, name, max_errors)


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
) -> Validation:
    """``validate`` for a file on disk, in bounded memory: the file is decoded by streaming
    (``decode_file``; a gzip, re-encoded or re-line-ended copy goes to ``workdir``) and the
    accepted rows are staged as Parquet in ``{workdir}/staged.parquet`` (``Validation.staged``).
    The caller owns ``workdir`` and removes it."""

    def run() -> Validation:
        decoded = decode_file(
            path,
            max_bytes=max_bytes,
            workdir=workdir,
            converter=lambda data: formats.convert(data, name, dataset),
            convertible=formats.convertible(name),
        )
        if isinstance(decoded, DecodeProblem):
            return decoded
        out = os.path.join(workdir, "staged.parquet")
        return validate_decoded(
            decoded, dataset, cog, name=name, max_errors=max_errors, out=out, block_bytes=block_bytes
        )

    return _guarded(run, name, max_errors)


def _guarded(run: Callable[[], Validation | DecodeProblem], name: str, max_errors: int) -> Validation:
    """``run()``'s validation; a decode problem or an unforeseen failure as a rejection."""
    started = time.perf_counter()
    try:
        result = run()
        if isinstance(result, Validation):
            return result
        message, kind = result.message, result.type
    except Exception as exc:  # noqa: BLE001 - pure code on bytes: a bug, reported, not retried
        message = (f"the file could not be validated ({type(exc).__name__}: {str(exc)[:200]}); "
                   "it is kept and nothing was published: please report this to the operators")
        kind = "source-error"
    v = Validation(name=name, errors=IssueList(max_errors), warnings=IssueList(max_errors))
    v.errors.add(Issue(kind, message))
    v.rejection = message
    v.seconds = time.perf_counter() - started
    return v
