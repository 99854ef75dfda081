"""Cell typing: a batch's string columns trimmed, typed and checked against the field's type
and constraints, vectorised (pyarrow.compute, NumPy).

Two paths give the same answers: ``fast_cells`` checks a column whose every cell is plainly
valid on its bytes with NumPy and casts it once; ``cast_field`` checks any other column cell by
cell against the type's rules (``INTEGER_RE``, ``NUMBER_RE``, the date formats...). Also the
measures' float view used by the cross-row checks (``floats``, ``read_measure``).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from opendepot.registry import Dataset, Field

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


def mask(flags: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A boolean Arrow column as a NumPy mask, null as False."""
    return np.asarray(pc.fill_null(flags, False).to_numpy(zero_copy_only=False), dtype=bool)


def cast_field(
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
            if fast != pa.date32() or not year_zero(typed):
                return typed, np.zeros(len(col), bool), ""
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass  # some value is not in Arrow's strict form: find which, rule by rule
    if f.type == "integer" or f.type == "year":
        ok = mask(pc.match_substring_regex(col, INTEGER_RE))
        keep = pc.if_else(pa.array(ok & ~missing), col, pa.scalar(None, pa.string()))
        keep = pc.replace_substring_regex(keep, r"^\+", "")  # Arrow's integer cast takes no '+'
        return pc.cast(keep, pa.int64()), ~ok & ~missing, "an integer (at most 18 digits)"
    if f.type == "number":
        ok = mask(pc.match_substring_regex(col, NUMBER_RE))
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
        if year_zero(typed):
            typed = pc.if_else(pc.less(typed, FIRST_DAY), pa.scalar(None, pa.date32()), typed)
        bad = ~mask(pc.is_valid(typed)) & ~missing
        return typed, bad, "a date (" + " or ".join(f.date_formats) + ")"
    if f.type == "week":
        return cast_week(f, col, missing)
    if f.type == "boolean":
        is_true = mask(pc.is_in(col, value_set=pa.array(TRUE_VALUES)))
        is_false = mask(pc.is_in(col, value_set=pa.array(FALSE_VALUES)))
        typed = pa.array(np.where(is_true, True, False), pa.bool_())
        known = pa.array((is_true | is_false) & ~missing)
        typed = pc.if_else(known, typed, pa.scalar(None, pa.bool_()))
        return typed, ~(is_true | is_false) & ~missing, "true or false"
    return pc.if_else(present, col, pa.scalar(None, pa.string())), np.zeros(len(col), bool), "text"


def year_zero(typed: pa.ChunkedArray | pa.Array) -> bool:
    """Whether a date32 column holds a date before ``FIRST_DAY`` (year 0)."""
    return bool(pc.any(pc.less(typed, FIRST_DAY)).as_py())


def cast_week(
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
    ok = mask(pc.and_(pc.greater_equal(number, 1), pc.less_equal(number, 53))) & ~missing
    label = pc.binary_join_element_wise(year, "-W", pc.utf8_lpad(week, 2, "0"), "")
    typed = pc.if_else(pa.array(ok), label, pa.scalar(None, pa.string()))
    expected = "a week label (2020-S09, 2020-W09" + (", Semaine 10" if f.default_year else "") + ")"
    return typed, ~ok & ~missing, expected


@dataclass
class Text:
    """A string column without nulls seen through NumPy, chunk by chunk: what the fast cell
    checks (``fast_cells``, ``trimmed``, ``single_digits``) read without a pass of Arrow's
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
    def of(cls, col: pa.ChunkedArray | pa.Array) -> Text | None:
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


def trimmed(col: pa.ChunkedArray, *, fast: bool = True) -> tuple[pa.ChunkedArray, Text | None]:
    """(``pc.utf8_trim_whitespace(col)``, None), or (``col`` itself, its ``Text``) when no value
    holds a byte that can start or be part of whitespace (every whitespace character Arrow trims
    is encoded with bytes up to 0x20 or from 0x80): then trimming changes nothing. ``fast``
    False: always the first (the exact path, same values)."""
    text = Text.of(col) if fast else None
    if text is not None and text.low > 0x20 and text.high < 0x7F:
        return col, text
    return pc.utf8_trim_whitespace(col), None


def single_digits(
    col: pa.ChunkedArray, text: Text | None = None, *, fast: bool = True
) -> np.ndarray:
    """Values that are one digit 1 to 9 (``^[1-9]$``): one byte, that digit. ``text``: the
    column's ``Text``, when known; ``fast`` False: by the regular expression (same answer)."""
    text = (text or Text.of(col)) if fast else None
    if text is None:
        return mask(pc.match_substring_regex(col, r"^[1-9]$"))
    lengths = text.lengths
    short = lengths == 1
    if short.any():
        digit = text.first_bytes(lengths, 1)
        short[short] = (digit >= ord("1")) & (digit <= ord("9"))
    return np.asarray(short, dtype=bool)


FAST_BYTES: dict[str, tuple[int, int]] = {
    "integer": (ord("0"), ord("9")),
    "year": (ord("0"), ord("9")),
    "number": (ord("."), ord("9")),
    "date": (ord("-"), ord("9")),
}
"""Bytes a column of a type must keep to for ``fast_cells`` (strings: any)."""


def fast_cells(
    f: Field, col: pa.ChunkedArray, missing_values: Iterable[str], text: Text | None = None
) -> tuple[np.ndarray, pa.ChunkedArray | pa.Array] | None:
    """(missing, typed) of a trimmed column of a batch without blank rows whose every cell is
    plainly valid or missing, found with a few passes over its bytes; None whenever that is not
    plain, and the caller takes the exact path (``pc.is_in`` for missing values, then
    ``cast_field``), which then finds the same values and reports what is wrong.

    Plain, by type (an empty cell must be a missing value, ``""`` in ``missing_values``):
    integer and year: only ASCII digits, at most 18; number: ASCII digits and at most one ``.``
    per cell, not ``.`` alone (so ``NUMBER_RE`` holds); date (``%Y-%m-%d`` first): bytes from
    ``-`` to ``9`` and Arrow's cast to date32 succeeds (``cast_field``'s own first attempt);
    string: anything. A missing value other than ``""`` is never matched here: when a cell could
    be it (its bytes fit the type's; for strings, a cell of its length starting with its first
    byte), the column is left to the exact path. The typed values come from the same Arrow casts
    of the same strings as in ``cast_field``. ``text``: the column's ``Text``, when known."""
    kind = f.type
    if kind == "date" and f.date_formats[0] != "%Y-%m-%d":
        return None
    if kind not in FAST_BYTES and kind != "string":
        return None
    text = text or Text.of(col)
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
    if kind == "date" and year_zero(typed):
        return None  # 0000-01-01: a type error, the exact path reports it
    return missing, typed


@dataclass(frozen=True)
class Typed:
    """One field's column of a batch, typed."""

    value: pa.ChunkedArray | pa.Array
    """Typed values (``ARROW_TYPES``), null where missing or not of the type."""
    missing: np.ndarray
    """Rows whose cell is a missing value (blank rows excluded)."""
    bad: np.ndarray
    """Rows whose cell is not of the field's type (blank rows excluded)."""
    expected: str
    """What the type wants, for messages ("" when no cell is bad)."""


def type_column(
    f: Field,
    col: pa.ChunkedArray,
    text: Text | None,
    missing_values: tuple[str, ...],
    blank: np.ndarray,
    *,
    fast: bool = True,
) -> Typed:
    """Type a trimmed column (``text``: its bytes, when known): on its bytes (``fast_cells``)
    when the batch has no blank row and every cell is plain, else rule by rule
    (``cast_field``); both give the same. ``fast`` False: always the second."""
    quick = fast_cells(f, col, missing_values, text) if fast and not blank.any() else None
    if quick is not None:  # every cell plainly valid or missing: what the exact path finds
        return Typed(quick[1], quick[0], np.zeros(len(col), dtype=bool), "")
    missing_set = pa.array(list(missing_values), pa.string())
    missing = mask(pc.is_in(col, value_set=missing_set)) & ~blank
    value, bad, expected = cast_field(f, col, missing)
    return Typed(value, missing, bad & ~blank, expected)


def constraint_masks(
    f: Field, typed: Any, missing: np.ndarray
) -> Iterable[tuple[np.ndarray, str, str]]:
    """Yield (failing rows, constraint name, expected) for each declared constraint."""
    if f.required:
        yield missing, "required", "a value (the field is required)"
    c = f.constraints
    if "minimum" in c:
        yield mask(pc.less(typed, c["minimum"])), "minimum", f"at least {c['minimum']}"
    if "maximum" in c:
        yield mask(pc.greater(typed, c["maximum"])), "maximum", f"at most {c['maximum']}"
    if "enum" in c:
        allowed = pa.array(c["enum"]).cast(typed.type)
        yield (
            ~mask(pc.is_in(typed, value_set=allowed)) & ~missing,
            "enum",
            "one of " + ", ".join(map(str, c["enum"])),
        )
    if "pattern" in c and pa.types.is_string(typed.type):
        ok = mask(pc.match_substring_regex(typed, f"^(?:{c['pattern']})$"))
        yield ~ok & ~missing, "pattern", f"text matching {c['pattern']}"
    if "minLength" in c and pa.types.is_string(typed.type):
        short = mask(pc.less(pc.utf8_length(typed), c["minLength"]))
        yield short, "minLength", f"at least {c['minLength']} characters"
    if "maxLength" in c and pa.types.is_string(typed.type):
        long = mask(pc.greater(pc.utf8_length(typed), c["maxLength"]))
        yield long, "maxLength", f"at most {c['maxLength']} characters"


def dataset_schema(dataset: Dataset) -> pa.Schema:
    """The Arrow schema of a dataset's typed rows: its fields in order, ``ARROW_TYPES``."""
    return pa.schema([(f.name, ARROW_TYPES[f.type]) for f in dataset.fields])


def floats(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A numeric column as float64 with NaN for missing, for the cross-row checks: an integer
    past 2**53 becomes the nearest float64 (its staged value stays exact)."""
    filled = pc.fill_null(pc.cast(col, pa.float64(), safe=False), np.nan)
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=np.float64)


def floats_into(out: np.ndarray, chunk: pa.Array) -> None:
    """``out[:] = floats(chunk)``, without Arrow's cast and fill when ``chunk`` is wholly
    missing, or int64 or float64 without a missing value."""
    if chunk.null_count == len(chunk):
        out.fill(np.nan)
    elif chunk.null_count == 0 and chunk.type in (pa.int64(), pa.float64()):
        out[...] = chunk.to_numpy()
    else:
        out[...] = floats(chunk)


def read_measure(staged: pq.ParquetFile, name: str, rows: int) -> tuple[np.ndarray, int] | None:
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
            floats_into(values[at : at + len(chunk)], chunk)
            at += len(chunk)
            missing += chunk.null_count
    return values, missing

