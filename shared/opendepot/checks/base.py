"""What a check is and what it sees: the ``Check`` hooks, the file (``Run``), one batch of rows
(``Batch``) and, once every row is read, the key columns of all of them (``Rows``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from opendepot import cells
from opendepot.decode import Decoded
from opendepot.issues import Issue, Issues
from opendepot.reading import CELL_CHARS, clip
from opendepot.registry import Cog, Dataset, Field


@dataclass
class Run:
    """One file being validated: what every hook may read, and where issues go."""

    dataset: Dataset
    cog: Cog
    decoded: Decoded
    """The decoded text (its ``header`` as written)."""
    positions: dict[str, int]
    """Canonical field name -> column position in the file, for the columns found."""
    issues: Issues
    """Errors and warnings found so far."""
    fast: bool = True
    """Whether plain columns are checked on their bytes (False: the exact path everywhere)."""


class Batch:
    """One batch of rows as the checks see it, in the order the checks run.

    The driver gives the raw string table and each row's line, trims every column and finds the
    blank rows; a check reads ``text(pos)`` (trimmed) and ``typed(f)`` (typed once, on first
    use, after the row checks, which may rewrite a column with ``replace_text``), marks rows
    ``bad`` (left out) or not keys (``not_keys``: no primary-key check), and reports through
    ``report``, which buffers the batch's issues so that ``flush`` adds them in the order of
    the schema's fields (row issues first), whatever order the checks ran in."""

    def __init__(self, run: Run, table: pa.Table, lines: np.ndarray) -> None:
        self.run = run
        self.table = table
        """The rows as read: one string column per column of the file."""
        self.lines = lines
        """Physical line of each row."""
        n = table.num_rows
        self.size = n
        self.trimmed: list[pa.ChunkedArray] = []
        self.texts: list[cells.Text | None] = []
        for i in range(table.num_columns):
            col, text = cells.trimmed(table.column(i), fast=run.fast)
            self.trimmed.append(col)
            self.texts.append(text)
        self.blank = np.ones(n, dtype=bool)
        """Rows whose every cell is empty once trimmed."""
        for col in self.trimmed:
            self.blank &= cells.mask(pc.equal(col, ""))
            if not self.blank.any():
                break  # no row left that could be blank
        self.bad = np.zeros(n, dtype=bool)
        """Rows with an error: left out of the publication."""
        self.not_keys = np.zeros(n, dtype=bool)
        """Rows already reported that are not rows for the key checks (blank, duplicates)."""
        self._typed: dict[str, cells.Typed] = {}
        self._buffer: list[tuple[int, int, Issue | tuple[int, str]]] = []

    def text(self, pos: int) -> tuple[pa.ChunkedArray, cells.Text | None]:
        """Column ``pos`` trimmed, and its bytes when known."""
        return self.trimmed[pos], self.texts[pos]

    def replace_text(self, pos: int, col: pa.ChunkedArray) -> None:
        """Rewrite trimmed column ``pos`` before it is typed (padded codes)."""
        self.trimmed[pos], self.texts[pos] = col, None

    def typed(self, f: Field) -> cells.Typed:
        """Field ``f`` typed (all nulls when the file lacks its optional column)."""
        found = self._typed.get(f.name)
        if found is None:
            pos = self.run.positions.get(f.name)
            if pos is None:
                empty = np.zeros(self.size, dtype=bool)
                nulls = pa.nulls(self.size, cells.ARROW_TYPES[f.type])
                found = cells.Typed(nulls, empty, empty, "")
            else:
                col, text = self.text(pos)
                found = cells.type_column(f, col, text, self.run.dataset.missing_values,
                                          self.blank, fast=self.run.fast)
            self._typed[f.name] = found
        return found

    def report(
        self,
        rows: np.ndarray,
        values: pa.ChunkedArray | pa.Array,
        make: Callable[[int, Any, int], Issue],
        *,
        field_name: str | None = None,
    ) -> None:
        """One issue per True row of ``rows``: ``make(line, value, row)`` with the row's
        ``values`` cell, its cells attached; issues past the limit are counted, not built.
        Text values and cells longer than ``CELL_CHARS`` are cut (``clip``), so an issue stays
        small whatever the row. ``field_name``: the field the issues are about (None: row
        issues, listed first)."""
        idx = np.flatnonzero(rows)
        if idx.size == 0:
            return
        order = -1 if field_name is None else self.run.dataset.field_names.index(field_name)
        first = make(int(self.lines[idx[0]]), _clipped(values[int(idx[0])].as_py()), int(idx[0]))
        shown = idx[: self.run.issues.of(first.type).room()]
        if shown.size:
            taken = pa.array(shown, pa.int64())
            found = [_clipped(x) for x in _cut(values.take(taken)).to_pylist()]
            columns = [[_clipped(x) for x in _cut(c).to_pylist()]
                       for c in self.table.take(taken).columns]
            for j, (i, value) in enumerate(zip(shown, found, strict=True)):
                one = first if j == 0 else make(int(self.lines[i]), value, int(i))
                row = tuple(col[j] for col in columns)
                self._buffer.append((order, len(self._buffer), replace(one, cells=row)))
        if idx.size > shown.size:
            counted = (int(idx.size - shown.size), first.type)
            self._buffer.append((order, len(self._buffer), counted))

    def flush(self, issues: Issues) -> None:
        """Add the batch's issues to ``issues``, field by field in schema order (row issues
        first), each check's in row order."""
        for _, _, item in sorted(self._buffer, key=lambda x: (x[0], x[1])):
            if isinstance(item, Issue):
                issues.add(item)
            else:
                n, kind = item
                issues.of(kind).count(n, kind)
        self._buffer = []


def _cut(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """A string column's values cut one character past ``CELL_CHARS`` (for ``_clipped``),
    before they become Python strings."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return pc.utf8_slice_codeunits(column, 0, CELL_CHARS + 1)
    return column


def _clipped(value: Any) -> Any:
    """A text value cut to ``CELL_CHARS`` characters (``clip``); others as they are."""
    return clip(value) if isinstance(value, str) else value


@dataclass
class Keys:
    """The key columns of every row the key checks see, as codes (see ``keysort.Codes``)."""

    codes: dict[str, np.ndarray]
    values: dict[str, list[Any]]
    lines: np.ndarray
    """Physical line of each row."""
    good: np.ndarray
    """True for the rows published (the staged rows, in the same order)."""
    pk_sorted: np.ndarray | None = None
    """The rows' order by primary key once the keys are known distinct, for reuse (the packed
    key it sorts is made again where needed: ``keysort.pack``, cheaper than keeping it)."""
    series_sorted: tuple[np.ndarray, np.ndarray] | None = None
    """(the published rows' order by series then day, whether each sorted row is in the series
    of the one before it) once a series check sorted them, for the next one
    (``checks.series``); dropped by the last or once the accepted hooks are done."""

    def size(self, name: str) -> int:
        return len(self.values[name])

    def value(self, name: str, code: int) -> Any:
        return self.values[name][int(code)]


@dataclass
class Rows:
    """Every row read, for the checks that run once the file is read (``end``) and on the
    published rows of an accepted file (``accepted``)."""

    run: Run
    keys: Keys
    """The primary key's and the area's columns as codes, with each row's line."""
    rejection: str = ""
    """Set by an ``end`` hook (``reject``) when the file cannot be published."""
    measure: Callable[[str], tuple[np.ndarray, int] | None] = field(
        default=lambda name: None, repr=False)
    """A staged measure as float64 (NaN for missing) and its missing count, None when every
    value is missing (read back from the staged Parquet, whose rows are ``keys.good``'s); set
    for the ``end`` and ``accepted`` hooks."""

    def reject(self, reason: str) -> None:
        """Refuse the file (the first reason given is kept)."""
        self.rejection = self.rejection or reason


class Check:
    """A validation check, in the spirit of frictionless-py's checks: a small class whose hooks
    the driver (``opendepot.validate``) calls, each optional:

    - ``start(run)``: the header is known, before any row (may reject: ``run.issues``);
    - ``batch(batch)``: each batch of rows (``Batch``), in file order;
    - ``end(rows)``: every row read, before the verdict (may ``rows.reject``);
    - ``accepted(rows)``: only when the file is accepted, on the published rows.

    ``applies(dataset)`` says whether the check belongs to a dataset's checklist, and
    ``emits`` lists the issue types it reports (slugs of ``opendepot.issues.CATALOGUE``). A
    check keeps what it needs between hooks on ``self``; ``start`` sets it afresh, so a
    checklist can validate the same file again."""

    emits: ClassVar[tuple[str, ...]] = ()

    def __init__(self, dataset: Dataset, cog: Cog) -> None:
        self.dataset = dataset
        self.cog = cog

    @classmethod
    def applies(cls, dataset: Dataset) -> bool:
        """Whether ``dataset``'s checklist includes this check (default: always)."""
        return True

    def start(self, run: Run) -> None:
        """Before any row."""

    def batch(self, batch: Batch) -> None:
        """One batch of rows."""

    def end(self, rows: Rows) -> None:
        """Every row read, before the verdict."""

    def accepted(self, rows: Rows) -> None:
        """The file is accepted: its published rows (``rows.keys.good``)."""


def fmt_key(names: tuple[str, ...], values: tuple[Any, ...]) -> str:
    """``name=value, ...`` for messages."""
    return ", ".join(f"{k}={text(v)}" for k, v in zip(names, values, strict=True))


def num(value: Any) -> str:
    """A count as written by people: ``12`` for whole numbers, else up to 10 significant digits."""
    number = float(value)
    return str(int(number)) if number.is_integer() else f"{number:.10g}"


def text(value: Any) -> str:
    """A key value as text; missing values (None, NaN) as ""."""
    return "" if value is None or value != value else str(value)
