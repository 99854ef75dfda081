"""Validation reports: a Frictionless-shaped JSON document, and a human rendering of it.

Shape (``build_report``)::

    {"valid": bool,                       # Frictionless sense: no error at all
     "stats": {"tasks": 1, "errors": int, "warnings": int, "seconds": float},
     "errors": [], "warnings": [],
     "tasks": [{"name", "type": "table", "place": key, "valid", "labels": [...],
                "stats": {"rows", "bytes", "sha256", "fields", "errors", "warnings", "seconds"},
                "errors": [{"type", "title", "message", "description", "tags", "note",
                            "rowNumber", "fieldName", "fieldNumber", "cell"}],
                "warnings": ["human sentence", ...]}],
     "opendepot": {"status": "accepted" | "rejected" | "held" | "failed", "rejection", "dataset",
                   "producer", "key", "version_id", "upload_id", "rows", "rows_left_out",
                   "rows_published", "encoding", "delimiter", "compression", "line_ends",
                   "columns", "warnings": [<same shape as errors>], "error_limit"}}

``errors`` holds at most the configured limit (default 1000); ``stats.errors`` is the true
total, and a "reached error limit" warning says so. The whole report stays within
``Limits.max_report_bytes`` (``build_report``).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import numpy as np

from opendepot.issues import CATALOGUE, Issue, IssueList
from opendepot.reading import CELL_CHARS, clip
from opendepot.validate import Validation, refused

LABEL_ERRORS = {"blank-label", "duplicate-label", "extra-label", "missing-label"}

LABELS_IN_ERROR = 100
"""Labels a label error lists (Frictionless' ``labels``): the first of the header."""
SHORT_ITEMS = 20
"""Items of each list in an issue of a shortened report (``cells``, ``labels``)."""
SHORT_LABELS = 20
"""Labels of the task in a shortened report (its frame then fits in 16 KiB: a smaller
``max_report_bytes`` lists no issue and may still be exceeded)."""


def issue_dict(issue: Issue, labels: tuple[str, ...] = ()) -> dict[str, Any]:
    """One issue as a Frictionless error object (location keys only where known), with the
    properties Frictionless' own error class of that type requires; title and tags from the
    catalogue (``opendepot.issues.CATALOGUE``)."""
    kind = CATALOGUE.get(issue.type)
    out: dict[str, Any] = {
        "type": issue.type,
        "title": kind.title if kind else issue.type.replace("-", " ").title(),
        "description": "",
        "message": issue.message,
        "tags": list(kind.tags) if kind else [],
        "note": issue.note,
    }
    for name, value in (
        ("rowNumber", issue.row_number),
        ("fieldName", issue.field_name),
        ("fieldNumber", issue.field_number),
        ("cell", issue.cell),
    ):
        if value is not None:
            out[name] = value
    if issue.type in LABEL_ERRORS:
        out.update(labels=list(labels), rowNumbers=[1], label=issue.cell or "")
        out.setdefault("fieldName", issue.cell or "")
        out.setdefault("fieldNumber", 0)
    elif issue.cells is not None or issue.type in {"primary-key", "missing-cell", "extra-cell"}:
        out["cells"] = list(issue.cells or (issue.cell or "",))
    if issue.type == "foreign-key":
        out.update(
            fieldNames=[issue.field_name],
            fieldCells=[issue.cell],
            referenceName="cog2020",
            referenceFieldNames=[issue.field_name],
        )
    if issue.type in {"missing-cell", "extra-cell"}:
        out.setdefault("cell", "")
        out.setdefault("fieldName", "")
        out.setdefault("fieldNumber", 0)
    return out


def task_name(key: str) -> str:
    """A Frictionless task name (``^[-a-z0-9._/]+$``) from a file name."""
    name = re.sub(r"[^-a-z0-9._/]+", "-", key.rsplit("/", 1)[-1].lower()).strip("-")
    return name or "upload"


def _limit_warnings(errors: IssueList, warnings: IssueList) -> list[str]:
    out = []
    if errors.truncated:
        out.append(
            f"reached error limit: {errors.limit} errors shown of {errors.total} found"
        )
    if warnings.truncated:
        out.append(
            f"reached warning limit: {warnings.limit} warnings shown of {warnings.total} found"
        )
    return out


def build_report(
    v: Validation,
    raw: bytes | None,
    context: dict[str, Any],
    *,
    size: int | None = None,
    sha256: str | None = None,
) -> dict[str, Any]:
    """The report of one validated upload, built once from its final issue lists: the totals,
    ``errorsByType`` and the cap all come from ``v.errors`` / ``v.warnings`` (``IssueList``).

    ``raw`` is the original object (for size and sha256; None when it was never read, or when
    it was streamed: then ``size`` and ``sha256`` give them);
    ``context`` goes into the ``opendepot`` section (dataset, producer, key, version_id,
    upload_id...).

    Its JSON as ``opendepot.ingest`` writes it (``report_bytes``) stays within
    ``v.limits.max_report_bytes`` (16 KiB or more): labels are cut to ``CELL_CHARS``
    characters and the first ``max_columns`` of them (a label error lists the first
    ``LABELS_IN_ERROR``); a report still too big has every value cut to ``CELL_CHARS``
    characters, every list in an issue to ``SHORT_ITEMS`` items and the labels to
    ``SHORT_LABELS``, then lists only the first issues that fit (its ``error_limit`` lowered to
    their number: every issue is still counted), and a task warning says so.

    Raises:
        IssueCountError: the lists disagree with their counts (a bug, never the file's fault).
    """
    v.errors.check()  # every report produced, in tests and in production, agrees with itself
    v.warnings.check()
    if raw is not None:
        size, sha256 = len(raw), hashlib.sha256(raw).hexdigest()
    limit = v.limits.max_report_bytes
    labels = tuple(clip(label) for label in v.labels[: v.limits.max_columns])
    parts = _Parts(v, context, size, sha256, labels)
    report = parts.report(v.errors, v.warnings, [])
    if report_bytes(report) <= limit:
        return report
    return parts.shortened(limit)


def report_bytes(report: dict[str, Any]) -> int:
    """Bytes of ``report`` as JSON the way ``opendepot.ingest`` writes it (UTF-8, indent 1)."""
    return len(json.dumps(report, ensure_ascii=False, indent=1, default=str).encode("utf-8"))


def _shrunk(value: Any, items: int = SHORT_ITEMS) -> Any:
    """``value`` with every string cut to ``CELL_CHARS`` characters and every list to
    ``items`` items, at any depth."""
    if isinstance(value, str):
        return clip(value)
    if isinstance(value, list):
        return [_shrunk(x) for x in value[:items]]
    if isinstance(value, dict):
        return {k: _shrunk(x) for k, x in value.items()}
    return value


def _item_bytes(item: Any, depth: int) -> int:
    """Bytes ``item`` adds to the report as an element of a list at ``depth`` (indent 1)."""
    text = json.dumps(item, ensure_ascii=False, indent=1, default=str)
    return len(text.encode("utf-8")) + depth * (text.count("\n") + 1) + 2


class _Parts:
    """What a report is made of, to build it whole or shortened."""

    def __init__(self, v: Validation, context: dict[str, Any], size: int | None,
                 sha256: str | None, labels: tuple[str, ...]) -> None:
        self.v, self.context, self.size, self.sha256 = v, context, size, sha256
        self.labels = labels

    def report(self, errors: IssueList, warnings: IssueList, notes: list[str],
               short: bool = False) -> dict[str, Any]:
        """The report listing ``errors`` and ``warnings`` (their limits, their totals), with
        ``notes`` among the task's warnings; ``short``: shortened (``_shrunk``)."""
        v, d, context = self.v, self.v.decoded, self.context
        labels = self.labels[:SHORT_LABELS] if short else self.labels

        def listed(found: IssueList) -> list[dict[str, Any]]:
            out = [issue_dict(e, labels[:LABELS_IN_ERROR]) for e in found.items]
            return [_shrunk(e) for e in out] if short else out

        task_warnings = (_limit_warnings(errors, warnings) + notes
                         + [clip(w.message) if short else w.message for w in warnings.items])
        task = {
            "name": task_name(context.get("key", v.name)),
            "type": "table",
            "place": context.get("key", v.name),
            "valid": v.valid,
            "labels": list(labels),
            "stats": {
                "rows": v.rows,
                "bytes": self.size if self.size is not None else context.get("size"),
                "sha256": self.sha256,
                "fields": len(v.labels),
                "errors": errors.total,
                "warnings": warnings.total,
                "errorsByType": dict(sorted(errors.by_type.items())),
                "warningsByType": dict(sorted(warnings.by_type.items())),
                "seconds": round(v.seconds, 4),
            },
            "errors": listed(errors),
            "warnings": task_warnings,
        }
        return {
            "valid": v.valid,
            "stats": {
                "tasks": 1,
                "errors": errors.total,
                "warnings": warnings.total,
                "seconds": round(v.seconds, 4),
            },
            "errors": [],
            "warnings": [],
            "tasks": [task],
            "opendepot": {
                **context,
                "status": v.status,
                "rejection": clip(v.rejection) if short else v.rejection,
                "rows": v.rows,
                "rows_left_out": v.rows_left_out,
                "rows_published": v.rows_published,
                "encoding": d.encoding if d else None,
                "delimiter": d.delimiter if d else None,
                "compression": d.compression if d else None,
                "line_ends": d.line_ends if d else None,
                "converted": d.converted if d else False,
                "columns": v.mapping,
                "warnings": listed(warnings),
                "error_limit": errors.limit,
            },
        }

    def shortened(self, limit: int) -> dict[str, Any]:
        """The shortened report within ``limit`` bytes: as many first issues as fit."""
        v = self.v
        errors, warnings = v.errors, v.warnings
        short_labels = self.labels[:SHORT_LABELS][:LABELS_IN_ERROR]
        sizes = np.zeros(max(len(errors.items), len(warnings.items)) + 1, dtype=np.int64)
        for i, e in enumerate(errors.items):  # what the first k issues of each list add
            sizes[i + 1] += _item_bytes(_shrunk(issue_dict(e, short_labels)), 4)
        for i, w in enumerate(warnings.items):
            sizes[i + 1] += (_item_bytes(_shrunk(issue_dict(w, short_labels)), 3)
                             + _item_bytes(clip(w.message), 4))
        total = np.cumsum(sizes)
        base = report_bytes(self.report(_capped(errors, 0), _capped(warnings, 0),
                                        [self._note(limit, 0)], short=True))
        k = int(np.searchsorted(total, limit - base - 64, side="right")) - 1
        while True:
            k = max(k, 0)
            if k >= len(sizes) - 1:  # every issue fits, shortened
                report = self.report(errors, warnings, [self._note(limit, k)], short=True)
            else:
                report = self.report(_capped(errors, k), _capped(warnings, k),
                                     [self._note(limit, k)], short=True)
            if k == 0 or report_bytes(report) <= limit:
                return report
            k = min(k, len(sizes) - 2) * 9 // 10

    def _note(self, limit: int, k: int) -> str:
        """The task warning saying how the report was shortened, ``k`` issues of each kind
        listed at most."""
        e, w = self.v.errors, self.v.warnings
        left = (f"{e.total - min(k, len(e.items))} of {e.total} errors and "
                f"{w.total - min(k, len(w.items))} of {w.total} warnings are not listed "
                f"(all are counted in stats)")
        return (f"report shortened to fit its limit of {limit} bytes (setting "
                f"OPENDEPOT_MAX_REPORT_BYTES): values cut to {CELL_CHARS} characters, lists "
                f"in issues to {SHORT_ITEMS} items, labels to the first {SHORT_LABELS}; {left}")


def _capped(found: IssueList, k: int) -> IssueList:
    """``found`` with ``k`` (at most its limit) as its limit: its first ``k`` issues listed,
    totals and types unchanged."""
    return IssueList(k, found.items[:k], total=found.total, by_type=dict(found.by_type))


def refusal_report(issue: Issue, context: dict[str, Any]) -> dict[str, Any]:
    """A report for an upload refused before its content was read (key, producer, size)."""
    return build_report(refused(issue, context.get("key", "")), None, context)


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def format_human(report: dict[str, Any], *, max_lines: int = 10) -> str:
    """Render a report for people: one headline, then file, line, column, value, expectation."""
    od = report.get("opendepot", {})
    task = report["tasks"][0] if report.get("tasks") else {}
    key = od.get("key") or task.get("place", "?")
    stats = report.get("stats", {})
    if od.get("status") in ("held", "failed"):
        head = f"{od['status'].upper()} {key}: {od.get('rejection')}"
    elif od.get("status") == "accepted":
        head = f"ACCEPTED {key}: {_count(od.get('rows_published', 0), 'row')}"
        if od.get("rows_left_out"):
            head += f", {_count(od['rows_left_out'], 'row')} left out (within the error budget)"
    else:
        head = f"REJECTED {key}: {od.get('rejection') or 'invalid'}"
    if od.get("status") in ("held", "failed"):
        return head
    errors, warnings = stats.get("errors", 0), stats.get("warnings", 0)
    head += f"; {_count(errors, 'error')}, {_count(warnings, 'warning')}"
    lines = [head]
    if od.get("converted"):
        lines.append("  read as a workbook or YAML bulletin, converted to CSV")
    elif od.get("encoding"):
        delim = {";": "';'", ",": "','", "\t": "tab", None: "none"}.get(od.get("delimiter"), "?")
        lines.append(f"  read as {od['encoding']}, delimiter {delim}")
    shown = 0
    for kind, items in (("error", task.get("errors", [])), ("warning", od.get("warnings", []))):
        for e in items:
            if shown >= max_lines:
                break
            lines.append(f"  {kind} [{e['type']}] {key}: {e['message']}")
            shown += 1
    hidden = stats.get("errors", 0) + stats.get("warnings", 0) - shown
    if hidden > 0:
        lines.append(f"  ... and {hidden} more in the JSON report")
    return "\n".join(lines)
