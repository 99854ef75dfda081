"""Issues as data: one catalogue of every issue type, issues built with keyword fields, and
the collector a report is built from.

``CATALOGUE`` lists every type anything in opendepot reports (validation, decoding, formats,
ingest refusals, the shrink guard): its slug, title, tags, severity and message template.
``issue(slug, line=..., field=..., cell=..., **params)`` builds one ``Issue`` from its
template; ``IssueList`` keeps issues up to a limit and counts every one, so a report's totals,
``errorsByType`` and cap all come from one place (``opendepot.report.build_report``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning"]

ROW_TAGS = ("#table", "#row")
CELL_TAGS = ("#table", "#row", "#cell")
LABEL_TAGS = ("#table", "#header", "#label")


@dataclass(frozen=True)
class IssueType:
    """One kind of issue: how it is titled, tagged, worded and whether it blocks."""

    slug: str
    """Frictionless vocabulary (``type-error``...) or ours (``padded-code``...)."""
    title: str
    """Frictionless-style title (``Type Error``)."""
    severity: Severity
    """``error`` (blocks the row or the file) or ``warning`` (reported, never blocks)."""
    template: str
    """``str.format`` template of the message; fields ``line``, ``field``, ``number``,
    ``cell`` and the type's own parameters."""
    note: str = ""
    """``str.format`` template of the short machine-friendly note ("" for none)."""
    tags: tuple[str, ...] = ()
    """Frictionless tags (``#table``, ``#row``...)."""


def _t(slug: str, title: str, template: str, note: str = "", tags: tuple[str, ...] = (),
       severity: Severity = "error") -> IssueType:
    return IssueType(slug=slug, title=title, severity=severity, template=template, note=note,
                     tags=tags)


FREE = "{detail}"
"""Template of the types whose message is written where they are found (sources, refusals)."""

CATALOGUE: dict[str, IssueType] = {t.slug: t for t in (
    # the upload itself
    _t("source-error", "Source Error", FREE),
    _t("format-error", "Format Error", FREE),
    _t("encoding-error", "Encoding Error", FREE),
    # Excel workbooks (opendepot.formats)
    _t("formula-without-value", "Formula Without Value", FREE),
    _t("excel-sheet", "Excel Sheet", FREE, severity="warning"),
    _t("excel-header", "Excel Header Not Found", FREE, severity="warning"),
    _t("excel-other-sheets", "Excel Other Sheets", FREE, severity="warning"),
    _t("excel-cached-formulas", "Excel Cached Formula Results", FREE, severity="warning"),
    # refusals before any read (opendepot.ingest)
    _t("unsafe-key", "Unsafe Key", FREE),
    _t("unrouted-key", "Unrecognized Input File", FREE),
    _t("producer-not-allowed", "Producer Not Allowed", FREE),
    _t("object-too-large", "Object Too Large", FREE),
    # uploads that could not be read or processed (opendepot.ingest)
    _t("object-gone", "Object Gone",
       "{what} was gone when opendepot came to read it: it was deleted (or that version "
       "removed) after the upload, so nothing was read, validated or published. If the file "
       "should be published, upload it again.", note="{what}"),
    _t("checksum-mismatch", "Checksum Mismatch",
       "the {algorithm} checksum stored with the upload is {expected}, but the {size} bytes "
       "opendepot read give {computed}: what was read is not what was uploaded (S3 refuses an "
       "upload whose checksum does not match, so the copy read was damaged on its way), so "
       "nothing was validated or published; it is read again.",
       note="{algorithm}: stored {expected}, computed {computed}"),
    _t("processing-failed", "Processing Failed",
       "opendepot could not process this upload: {attempts} attempts failed, the last with "
       "{error}. This is not a problem found in the file. The operators were alerted and the "
       "notification is kept in the validate dead-letter queue; once the cause is fixed they "
       "run 'opendepot redrive' and the upload is validated again, its report replacing this "
       "one. You need not upload it again.", note="{error_type} after {attempts} attempts"),
    _t("snapshot-shrink", "Snapshot Shrink",
       "this upload has {now} {what}, {loss}% fewer than the {before} of the previous upload "
       "({previous}, {received_at}); more than the {limit}% the dataset allows, so it is held, "
       "not published. If it is right, upload it again with '.confirm' before the extension: "
       "{confirm}", note="{what}: {before} -> {now}"),
    # reuse registrations, reuses/{reuser}/{file} (opendepot.reuses)
    _t("reuse-field", "Reuse Field Error", "field {field!r}: {problem}", note="{rule}"),
    _t("unknown-dataset", "Unknown Dataset",
       "field 'datasets': {values} {verb} not a dataset of this catalogue (name datasets by "
       "slug or id; registered: {known})", note="{count} unknown"),
    _t("reuse-no-image", "Reuse Without Image",
       "field 'image' is absent: the reuse is listed without an image (its image and "
       "image_thumbnail are null)", severity="warning"),
    # header
    _t("blank-label", "Blank Label", "Line 1, column {number}: the header label is blank{more}",
       tags=LABEL_TAGS),
    _t("duplicate-label", "Duplicate Label",
       "Line 1, column {number}: column {label!r} repeats column {first} ({field}){more}",
       note="first at column {first}", tags=LABEL_TAGS),
    _t("extra-label", "Extra Label",
       "Line 1, column {number}: column {field!r} is not in the schema of {dataset} "
       "(expected {expected}){more}", tags=LABEL_TAGS),
    _t("missing-label", "Missing Label", "Line 1: required column {field!r} is missing",
       note="schema field {number}", tags=LABEL_TAGS),
    # issue 13, item 3: limits on a file's shape (opendepot.validate.Limits)
    _t("too-many-columns", "Too Many Columns",
       "Line 1: the header has {count} columns, more than the limit of {limit} (setting "
       "{setting}); no label or row was checked. Is the delimiter right, or the file a CSV "
       "export at all?", note="limit {limit} columns, setting {setting}",
       tags=("#table", "#header")),
    _t("line-too-long", "Line Too Long", FREE, tags=ROW_TAGS),
    # rows
    _t("blank-row", "Blank Row", "Line {line}: the row is blank", tags=ROW_TAGS),
    _t("missing-cell", "Missing Cell",
       "Line {line}: the row has {actual} cells, fewer than the header's {expected}",
       note="expected {expected} cells, found {actual}", tags=CELL_TAGS),
    _t("extra-cell", "Extra Cell",
       "Line {line}: the row has {actual} cells, more than the header's {expected}",
       note="expected {expected} cells, found {actual}", tags=CELL_TAGS),
    _t("duplicate-row", "Duplicate Row",
       "Line {line}: the row repeats line {first} exactly; left out",
       note="first at line {first}"),
    # cells
    _t("type-error", "Type Error", "Line {line}, column {field}: value {cell!r} is not {expected}",
       note="type is {type}", tags=CELL_TAGS),
    _t("constraint-error", "Constraint Error",
       "Line {line}, column {field}: value {cell!r} breaks constraint {constraint!r}: "
       "expected {wanted}", note="constraint {constraint}", tags=CELL_TAGS),
    _t("unique-error", "Unique Error",
       "Line {line}, column {field}: value {cell!r} is already in an earlier row; the field "
       "must be unique", note="constraint unique"),
    _t("foreign-key", "ForeignKey Error", "Line {line}, column {field}: {reason}",
       note="reference {level} codes", tags=ROW_TAGS),
    # across rows
    _t("primary-key", "PrimaryKey Error",
       "Line {line}: primary key ({key}) already at line {first}; duplicated rows are never "
       "merged or picked from", note="first at line {first}", tags=ROW_TAGS),
    # warnings
    _t("padded-code", "Padded Code",
       "Line {line}, column {field}: code {cell!r} padded to '0{cell}'{more}", note="0{cell}",
       severity="warning"),
    _t("cumulative-decrease", "Cumulative Decrease",
       "Line {line}, column {field}, {area}: cumulative count goes down from {before} on "
       "{day_before} to {cell} on {day}",
       note="previous {before} on {day_before} (line {before_line})",
       severity="warning"),
    _t("missing-day", "Missing Day",
       "Line {line}: no row {where}on {days} (between {start} and {cell}); the gap is not filled",
       note="{missing} day(s) missing", severity="warning"),
    _t("total-below-parts", "Total Below Parts",
       "Line {line}, column {field}, {where}: the total row ({dim} {code}) has {cell}, less than "
       "the sum of its parts {parts}", note="parts sum to {parts}", severity="warning"),
    _t("missing-total", "Missing Total",
       "Line {line}, {where}: rows for {dim} {parts} but no total row ({dim} {code})",
       note="no {dim} {code}", severity="warning"),
    # issue 13, items 6 and 8 (opendepot.checks.formula_cells, totals, implausible_rise)
    _t("formula-cell", "Formula Cell",
       "Line {line}, column {field}: {count} text cell(s) start with =, +, -, @, tab or carriage "
       "return, the first {cell!r}; a spreadsheet would run them as formulas, so the published "
       "CSV writes them with a leading ' (the Parquet file keeps them as sent)",
       note="{count} cell(s), first at line {line}", severity="warning"),
    _t("total-below-parts-error", "Total Below Parts",
       "Line {line}, column {field}, {where}: the total row ({dim} {code}) has {cell}, less than "
       "the sum of its parts {parts}; this dataset's totals are never below their parts",
       note="parts sum to {parts}", tags=ROW_TAGS),
    _t("implausible-rise", "Implausible Rise",
       "Line {line}, column {field}, {area}: cumulative count rises by {rise} on {day} (from "
       "{before} on {day_before}), {times}x the series' median daily rise of {median}; more "
       "than the {factor}x the dataset allows: a typo or a catch-up?",
       note="rise {rise}, median daily rise {median}", severity="warning"),
)}


def issue_type(slug: str) -> IssueType:
    """The catalogue entry of ``slug``; KeyError names the slug when it is not catalogued."""
    try:
        return CATALOGUE[slug]
    except KeyError:
        raise KeyError(f"issue type {slug!r} is not in opendepot.issues.CATALOGUE") from None


@dataclass(frozen=True, kw_only=True)
class Issue:
    """One error or warning, shaped like a Frictionless error (build it with ``issue``)."""

    type: str
    """Slug, a key of ``CATALOGUE``."""
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

    @property
    def severity(self) -> Severity:
        """``error`` or ``warning``, from the catalogue."""
        return issue_type(self.type).severity


def issue(
    slug: str,
    *,
    line: int | None = None,
    field: str | None = None,
    number: int | None = None,
    cell: str | None = None,
    cells: tuple[str, ...] | None = None,
    **params: Any,
) -> Issue:
    """An ``Issue`` of catalogued type ``slug``: message and note from its templates, formatted
    with ``line``, ``field``, ``number``, ``cell`` and ``params``. KeyError for an uncatalogued
    slug or a parameter its templates need and were not given."""
    kind = issue_type(slug)
    values = {"line": line, "field": field, "number": number, "cell": cell, **params}
    return Issue(
        type=slug,
        message=kind.template.format(**values),
        row_number=line,
        field_name=field,
        field_number=number,
        cell=cell,
        note=kind.note.format(**values) if kind.note else "",
        cells=cells,
    )


@dataclass
class IssueList:
    """Issues kept up to ``limit``, with the true total counted beyond it: the only place a
    report's ``errors``/``warnings``, their totals and ``…ByType`` come from.

    Invariants (``opendepot.report.build_report`` relies on them): ``total`` equals the sum of
    ``by_type``; ``items`` holds ``min(total, limit)`` issues, the first ones found."""

    limit: int
    items: list[Issue] = field(default_factory=list)
    total: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    """True count per issue type (``stats.errorsByType`` / ``warningsByType`` of the report)."""

    def add(self, found: Issue) -> None:
        """Count ``found``; keep it while there is room."""
        self.total += 1
        self.by_type[found.type] = self.by_type.get(found.type, 0) + 1
        if len(self.items) < self.limit:
            self.items.append(found)

    def extend(self, found: Iterable[Issue]) -> None:
        for one in found:
            self.add(one)

    def room(self) -> int:
        """How many more issues are kept."""
        return max(self.limit - len(self.items), 0)

    def count(self, n: int, kind: str) -> None:
        """Count ``n`` issues of type ``kind`` not built, past the limit (so never kept)."""
        if n > 0:
            self.total += n
            self.by_type[kind] = self.by_type.get(kind, 0) + n

    def prepended(self, first: Issue) -> IssueList:
        """A new list with ``first`` before every issue (the last kept one, when the list is
        full, is then counted only): totals, types and cap stay in agreement."""
        out = IssueList(self.limit, total=self.total, by_type=dict(self.by_type))
        out.add(first)
        out.items.extend(self.items[: out.room()])
        return out

    @property
    def truncated(self) -> bool:
        """Whether issues were counted beyond those kept."""
        return self.total > len(self.items)

    def check(self) -> None:
        """Raise ``IssueCountError`` unless the invariants hold (``total`` = sum of ``by_type``,
        ``items`` = ``min(total, limit)`` issues, each of a counted type)."""
        kept = len(self.items)
        if (sum(self.by_type.values()) != self.total or kept != min(self.total, self.limit)
                or any(self.by_type.get(i.type, 0) < 1 for i in self.items)):
            raise IssueCountError(
                f"issue counts disagree: total {self.total}, by type {self.by_type}, "
                f"{kept} kept, limit {self.limit}")


class IssueCountError(AssertionError):
    """A report would list, count or cap its issues inconsistently (a bug in a check, never
    a problem of the file): raised instead of writing such a report."""


@dataclass
class Issues:
    """The errors and the warnings of one validation, each issue routed by its severity."""

    errors: IssueList
    warnings: IssueList

    @classmethod
    def limited(cls, limit: int) -> Issues:
        """Empty lists keeping ``limit`` errors and ``limit`` warnings."""
        return cls(IssueList(limit), IssueList(limit))

    def of(self, kind: str) -> IssueList:
        """The list issues of type ``kind`` go to."""
        return self.errors if issue_type(kind).severity == "error" else self.warnings

    def add(self, found: Issue) -> None:
        self.of(found.type).add(found)
