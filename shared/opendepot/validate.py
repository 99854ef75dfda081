"""Validation of a producer file against its dataset's Table Schema.

``validate(raw, dataset, cog, ...)`` returns a ``Validation``: the typed rows to publish (an
Arrow table in the schema's field order) and every issue found, as data. Invalid input never
raises. Checks, in order (Frictionless error types where one exists, else ours):

- source: ``source-error`` (empty, corrupt gzip, too large), ``format-error`` (not text, RTF,
  header that cannot be split), ``encoding-error``;
- header: ``blank-label``, ``duplicate-label``, ``extra-label``, ``missing-label`` (names are
  mapped by name, never by position: exact, case-insensitive, then the registry's aliases);
- rows: ``blank-row``, ``missing-cell``, ``extra-cell``;
- cells (vectorised with pyarrow.compute): ``type-error`` (integer, number, date, boolean),
  ``constraint-error`` (required, minimum, maximum, enum, pattern, minLength, maxLength),
  ``foreign-key`` (area codes outside the INSEE COG and the dataset's declared extra codes);
- ``primary-key`` (duplicated key, naming both lines; never resolved by picking one row);
- warnings, which do not block: ``padded-code`` (``1`` -> ``01``), ``cumulative-decrease``,
  ``missing-day`` (gap in an area's daily series).

Row numbers count the header as row 1 and are physical lines (CR CR LF counts as one line end).
Rows with cell or row errors are left out of the publication while they stay within the
dataset's error budget (``errorBudget.maxBadRowsPercent``); header, source and primary-key
errors always reject the file.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from opendepot import formats
from opendepot.decode import Decoded, DecodeProblem, decode
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
    table: pa.Table | None = None
    """Accepted typed rows in schema field order (None when rejected)."""
    rows: int = 0
    """Data rows read (header excluded, blank rows included)."""
    rows_left_out: int = 0
    """Rows with errors left out of the publication, within the error budget."""
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


def _read_rows(
    decoded: Decoded, width: int, errors: IssueList
) -> tuple[pa.Table, np.ndarray, set[int]]:
    """Parse data rows as strings; return the table, each row's line and the bad lines."""
    names = [f"c{i}" for i in range(width)]
    invalid: list[tuple[int, str, int, int]] = []

    def on_invalid(row: Any) -> str:
        invalid.append((row.number, row.text, row.expected_columns, row.actual_columns))
        return "skip"

    table = pacsv.read_csv(
        io.BytesIO(decoded.data),
        read_options=pacsv.ReadOptions(
            use_threads=False, skip_rows=1, column_names=names, block_size=1 << 24
        ),
        parse_options=pacsv.ParseOptions(
            delimiter=decoded.delimiter or "\x1f",
            quote_char='"',
            double_quote=True,
            ignore_empty_lines=False,
            invalid_row_handler=on_invalid,
        ),
        convert_options=pacsv.ConvertOptions(
            column_types={n: pa.string() for n in names},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    bad_lines: set[int] = set()
    for number, text, expected, actual in invalid:
        kind = "missing-cell" if actual < expected else "extra-cell"
        what = "fewer" if actual < expected else "more"
        errors.add(
            Issue(
                kind,
                f"Line {number}: the row has {actual} cells, {what} than the header's {expected}",
                number,
                None,
                None,
                text[:200],
                note=f"expected {expected} cells, found {actual}",
            )
        )
        bad_lines.add(number)
    total = table.num_rows + len(invalid)
    lines = np.arange(2, total + 2, dtype=np.int64)
    if bad_lines:
        lines = lines[~np.isin(lines, np.fromiter(bad_lines, dtype=np.int64))]
    return table, lines, bad_lines


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

    Fast path: Arrow's own strict cast (ISO dates, plain integers and decimals) of the whole
    column; only when it fails are the rows checked one rule at a time, to find the bad ones."""
    present = pa.array(~missing)
    fast = {"integer": pa.int64(), "year": pa.int64(), "number": pa.float64()}.get(f.type)
    if f.type == "date" and f.date_formats[0] == "%Y-%m-%d":
        fast = pa.date32()
    if fast is not None:
        try:
            typed = pc.cast(pc.if_else(present, col, pa.scalar(None, pa.string())), fast)
            return typed, np.zeros(len(col), bool), ""
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass  # some value is not in Arrow's strict form: find which, rule by rule
    if f.type == "integer" or f.type == "year":
        ok = _np(pc.match_substring_regex(col, INTEGER_RE))
        keep = pc.if_else(pa.array(ok & ~missing), col, pa.scalar(None, pa.string()))
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


def validate_decoded(
    decoded: Decoded,
    dataset: Dataset,
    cog: Cog,
    *,
    name: str,
    max_errors: int = 1000,
) -> Validation:
    """Validate decoded CSV text against ``dataset`` (see module docstring)."""
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

    table, lines, bad_lines = _read_rows(decoded, len(decoded.header), errors)
    n = table.num_rows
    v.rows = n + len(bad_lines)
    if v.rows == 0:
        errors.add(Issue("source-error", "the file has a header but no data rows"))
        v.rejection = "no data rows"
        v.seconds = time.perf_counter() - started
        return v

    bad = np.zeros(n, dtype=bool)
    trimmed = {i: pc.utf8_trim_whitespace(table.column(i)) for i in range(table.num_columns)}
    blank = np.ones(n, dtype=bool)
    for col in trimmed.values():
        blank &= _np(pc.equal(col, ""))
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
    if dataset.descriptor.get("errorBudget", {}).get("exactDuplicateRows") == "leave-out":
        frame = pd.DataFrame({i: c.to_numpy(zero_copy_only=False) for i, c in trimmed.items()})
        dup = frame.duplicated(keep="first").to_numpy() & ~blank
        if dup.any():
            first = pd.Series(lines).groupby([frame[c] for c in frame.columns], sort=False)
            first_line = first.transform("first").to_numpy()
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
        col = trimmed[pos]
        if f.pad_single_digit:
            short = _np(pc.match_substring_regex(col, r"^[1-9]$")) & ~blank
            if short.any():
                padded = pc.binary_join_element_wise("0", col, "")
                # one warning per distinct code (a spreadsheet drops every leading zero of a
                # column: 2,970 identical warnings would hide everything else)
                idx = np.flatnonzero(short)
                codes = np.asarray(col.take(pa.array(idx, pa.int64())).to_pylist(), dtype=object)
                for code in sorted(set(codes)):
                    where = idx[codes == code]
                    line, n_rows = int(lines[where[0]]), int(where.size)
                    more = f" ({n_rows} rows, first at line {line})" if n_rows > 1 else ""
                    warnings.add(
                        Issue(
                            "padded-code",
                            f"Line {line}, column {f.name}: code {code!r} padded to '0{code}'{more}",
                            line,
                            f.name,
                            pos + 1,
                            code,
                            note=f"0{code}",
                        )
                    )
                col = pc.if_else(pa.array(short), padded, col)
        missing = _np(pc.is_in(col, value_set=missing_set)) & ~blank
        value, type_bad, expected = _cast_field(f, col, missing)
        type_bad &= ~blank
        if type_bad.any():
            _report_mask(
                errors,
                type_bad,
                lines,
                raw,
                lambda line, cell, _i, f=f, expected=expected: Issue(
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
                    lambda line, cell, _i, f=f, constraint=constraint, wanted=wanted: Issue(
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
            repeated = _np(pc.is_valid(value)) & pd.Series(
                value.to_pandas() if hasattr(value, "to_pandas") else value
            ).duplicated(keep="first").to_numpy() & ~type_bad
            if repeated.any():
                _report_mask(
                    errors,
                    repeated,
                    lines,
                    raw,
                    lambda line, cell, _i, f=f: Issue(
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
            codes = _area_codes(dataset, cog)
            unknown = ~_np(pc.is_in(value, value_set=pa.array(list(codes)))) & ~missing & ~blank
            if unknown.any():
                _report_mask(
                    errors,
                    unknown,
                    lines,
                    value,
                    lambda line, code, _i, f=f: Issue(
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

    out = pa.table({f.name: typed[f.name] for f in dataset.fields},
                   schema=pa.schema([(f.name, ARROW_TYPES[f.type]) for f in dataset.fields]))
    line_col = pa.array(lines)

    # Primary key: every row, bad rows included (a duplicate is never hidden by another error
    # on the same row).
    keep = pa.array(~dup)  # a duplicate row is reported once, as duplicate-row
    pk_rejects = _check_primary_key(out.filter(keep), line_col.filter(keep), dataset, errors)

    bad_rows = int(bad.sum()) + len(bad_lines)
    good = out.filter(pa.array(~bad))
    good_lines = line_col.filter(pa.array(~bad))
    if pk_rejects:
        v.rejection = "duplicated primary keys"
    elif bad_rows and bad_rows * 100.0 > dataset.max_bad_rows_percent * v.rows:
        v.rejection = (
            f"{bad_rows} of {v.rows} rows have errors, more than the dataset's error budget "
            f"({dataset.max_bad_rows_percent}% of rows)"
        )
    elif good.num_rows == 0:
        v.rejection = "no valid data rows"
    else:
        v.accepted = True
        v.rows_left_out = bad_rows
        v.table = good
        _series_warnings(good, good_lines, dataset, warnings)
        _total_warnings(good, good_lines, dataset, warnings)
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


def _check_primary_key(
    table: pa.Table, lines: pa.Array, dataset: Dataset, errors: IssueList
) -> int:
    """Report each repeat of a primary key, naming the line of its first occurrence."""
    pk = dataset.primary_key
    if not pk or table.num_rows == 0:
        return 0
    keys = table.select(list(pk))
    groups = keys.group_by(list(pk), use_threads=False).aggregate([])
    if groups.num_rows == keys.num_rows:  # every key once (nulls group together): no repeat
        return 0
    df = keys.to_pandas()
    df["__line"] = lines.to_numpy()
    dup = df.duplicated(subset=list(pk), keep="first")  # missing values compare equal, as in
    if not dup.any():  # Frictionless: a repeated row with an empty key part is a repeat too
        return 0
    first = df.groupby(list(pk), sort=False, dropna=False)["__line"].transform("first")
    repeats = df[dup]
    shown = repeats.head(errors.room())
    for row, first_line in zip(shown.itertuples(index=False), first[dup].head(len(shown)), strict=True):
        values = tuple(row[i] for i in range(len(pk)))
        line = int(row[-1])
        errors.add(
            Issue(
                "primary-key",
                f"Line {line}: primary key ({_fmt_key(pk, values)}) already at line "
                f"{int(first_line)}; duplicated rows are never merged or picked from",
                line,
                ",".join(pk),
                None,
                "/".join(_text(x) for x in values),
                note=f"first at line {int(first_line)}",
            )
        )
    errors.count(len(repeats) - len(shown), "primary-key")
    return int(len(repeats))


def _codes(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Integer codes of a column's values (equal values, equal codes; missing is -1)."""
    encoded = pc.dictionary_encode(col)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    return np.asarray(
        pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False), dtype=np.int64
    )


def _floats(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A numeric column as float64 with NaN for missing."""
    filled = pc.fill_null(pc.cast(col, pa.float64()), np.nan)
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=np.float64)


def _series_warnings(
    table: pa.Table, lines: pa.Array, dataset: Dataset, warnings: IssueList
) -> None:
    """Cumulative counts that go down and missing days, per area and dimension (Arrow sort,
    NumPy comparisons; values are formatted only for the rows reported)."""
    date = dataset.date_field
    geo = dataset.geography.field
    if date is None or table.num_rows == 0:
        return
    if geo is None:
        table = table.append_column("__area", pa.array([NATIONAL_CODE] * table.num_rows))
        geo = "__area"
    series = [k for k in dataset.primary_key if k != date] or [geo]
    cumulative = [m for m, kind in dataset.measures.items() if kind == "cumulative"]
    t = table.select(list(dict.fromkeys([*series, geo, date, *cumulative])))
    t = t.append_column("__line", lines).sort_by([(k, "ascending") for k in [*series, date]])
    line_arr = np.asarray(t["__line"].to_numpy(), dtype=np.int64)
    same = np.ones(t.num_rows, dtype=bool)
    for k in series:
        code = _codes(t[k])
        same[1:] &= code[1:] == code[:-1]
    same[0] = False
    for m in cumulative:
        values = _floats(t[m])
        down = same & (values < np.roll(values, 1))  # NaN compares False: none across a null
        flagged = np.flatnonzero(down)
        shown = flagged[: warnings.room()]
        for i in shown:
            i = int(i)
            where = tuple(t[k][i].as_py() for k in series)
            area = _fmt_key(tuple(series), where).replace("__area=FR", "France")
            day, day_before = t[date][i].as_py(), t[date][i - 1].as_py()
            line, before_line = int(line_arr[i]), int(line_arr[i - 1])
            now, before = int(values[i]), int(values[i - 1])
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
    days = (
        t.group_by([geo, date], use_threads=False)
        .aggregate([("__line", "min")])
        .sort_by([(geo, "ascending"), (date, "ascending")])
    )
    days = days.filter(pc.is_valid(days[date]))
    d = np.asarray(days[date].to_numpy(zero_copy_only=False)).astype("datetime64[D]")
    g = _codes(days[geo])
    step = np.diff(d).astype(np.int64)
    gaps = np.flatnonzero((step > 1) & (g[1:] == g[:-1]))
    shown_gaps = gaps[: warnings.room()]
    for i in shown_gaps:
        start, end = d[i], d[i + 1]
        line = int(days["__line_min"][int(i) + 1].as_py())
        area = days[geo][int(i) + 1].as_py()
        missing = [str(start + k) for k in range(1, int(step[i]))]
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        warnings.add(
            Issue(
                "missing-day",
                f"Line {line}: no row {'' if geo == '__area' else f'for {geo} {area} '}on "
                f"{shown} (between {start} and {end}); the gap is not filled",
                line,
                date,
                None,
                str(end),
                note=f"{len(missing)} day(s) missing",
            )
        )
    warnings.count(gaps.size - shown_gaps.size, "missing-day")


def _total_warnings(
    table: pa.Table, lines: pa.Array, dataset: Dataset, warnings: IssueList
) -> None:
    """A total row (``sexe`` 0) smaller than the sum of its parts, where every part has a value
    (additive measures only: a rate is not the sum of its parts). Arrow group-by and join."""
    measures = [m for m, kind in dataset.measures.items()
                if m in table.column_names and kind in {"stock", "cumulative", "incidence"}]
    for dim, code in dataset.totals.items():
        others = [k for k in dataset.primary_key if k != dim]
        if dim not in table.column_names or not others or not measures:
            continue
        t = table.select([*others, dim, *measures]).append_column("__line", lines)
        is_total = pc.fill_null(pc.equal(t[dim], pa.scalar(code).cast(t[dim].type)), False)
        aggs = [(m, "sum") for m in measures] + [(m, "count") for m in measures]
        parts = t.filter(pc.invert(is_total)).group_by(others, use_threads=False).aggregate(
            [*aggs, ([], "count_all")])
        joined = t.filter(is_total).join(parts, keys=others, join_type="inner")
        if joined.num_rows == 0:
            continue
        joined = joined.sort_by("__line")
        size = np.asarray(joined["count_all"].to_numpy(), dtype=np.int64)
        for m in measures:
            total, psum = _floats(joined[m]), _floats(joined[f"{m}_sum"])
            complete = np.asarray(joined[f"{m}_count"].to_numpy(), dtype=np.int64) == size
            # decimal measures (populations) carry rounding noise: compare with a tolerance
            below = np.flatnonzero(
                complete & (total < psum) & ~np.isclose(total, psum, rtol=1e-9, atol=1e-9)
            )
            shown = below[: warnings.room()]
            for i in shown:
                i = int(i)
                where = _fmt_key(tuple(others), tuple(joined[k][i].as_py() for k in others))
                value, sum_parts = _num(total[i]), _num(psum[i])
                line = int(joined["__line"][i].as_py())
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
    """Decode and validate a file's bytes. Never raises for bad input: should a check itself
    fail on an input nobody foresaw, the file is rejected with a report saying so (the
    producer gets an answer, the queue does not retry a file that will fail the same way)."""
    try:
        return _validate(raw, dataset, cog, name=name, max_errors=max_errors, max_bytes=max_bytes)
    except Exception as exc:  # noqa: BLE001 - pure code on bytes: a bug, reported, not retried
        v = Validation(name=name, errors=IssueList(max_errors), warnings=IssueList(max_errors))
        message = (f"the file could not be validated ({type(exc).__name__}: {str(exc)[:200]}); "
                   "it is kept and nothing was published: please report this to the operators")
        v.errors.add(Issue("source-error", message))
        v.rejection = message
        return v


def _validate(
    raw: bytes,
    dataset: Dataset,
    cog: Cog,
    *,
    name: str,
    max_errors: int,
    max_bytes: int,
) -> Validation:
    started = time.perf_counter()
    decoded = decode(
        raw, max_bytes=max_bytes, converter=lambda data: formats.convert(data, name, dataset)
    )
    if isinstance(decoded, DecodeProblem):
        v = Validation(name=name, errors=IssueList(max_errors), warnings=IssueList(max_errors))
        v.errors.add(Issue(decoded.type, decoded.message))
        v.rejection = decoded.message
        v.seconds = time.perf_counter() - started
        return v
    return validate_decoded(decoded, dataset, cog, name=name, max_errors=max_errors)
