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
     "opendepot": {"status": "accepted" | "rejected" | "held", "rejection", "dataset",
                   "producer", "key", "version_id", "upload_id", "rows", "rows_left_out",
                   "rows_published", "encoding", "delimiter", "compression", "line_ends",
                   "columns", "warnings": [<same shape as errors>], "error_limit"}}

``errors`` holds at most the configured limit (default 1000); ``stats.errors`` is the true
total, and a "reached error limit" warning says so.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from opendepot.issues import CATALOGUE, Issue, IssueList
from opendepot.validate import Validation, refused

LABEL_ERRORS = {"blank-label", "duplicate-label", "extra-label", "missing-label"}


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

    Raises:
        IssueCountError: the lists disagree with their counts (a bug, never the file's fault).
    """
    v.errors.check()  # every report produced, in tests and in production, agrees with itself
    v.warnings.check()
    d = v.decoded
    if raw is not None:
        size, sha256 = len(raw), hashlib.sha256(raw).hexdigest()
    task_warnings = _limit_warnings(v.errors, v.warnings) + [w.message for w in v.warnings.items]
    task = {
        "name": task_name(context.get("key", v.name)),
        "type": "table",
        "place": context.get("key", v.name),
        "valid": v.valid,
        "labels": list(v.labels),
        "stats": {
            "rows": v.rows,
            "bytes": size if size is not None else context.get("size"),
            "sha256": sha256,
            "fields": len(v.labels),
            "errors": v.errors.total,
            "warnings": v.warnings.total,
            "errorsByType": dict(sorted(v.errors.by_type.items())),
            "warningsByType": dict(sorted(v.warnings.by_type.items())),
            "seconds": round(v.seconds, 4),
        },
        "errors": [issue_dict(e, v.labels) for e in v.errors.items],
        "warnings": task_warnings,
    }
    return {
        "valid": v.valid,
        "stats": {
            "tasks": 1,
            "errors": v.errors.total,
            "warnings": v.warnings.total,
            "seconds": round(v.seconds, 4),
        },
        "errors": [],
        "warnings": [],
        "tasks": [task],
        "opendepot": {
            **context,
            "status": v.status,
            "rejection": v.rejection,
            "rows": v.rows,
            "rows_left_out": v.rows_left_out,
            "rows_published": v.rows_published,
            "encoding": d.encoding if d else None,
            "delimiter": d.delimiter if d else None,
            "compression": d.compression if d else None,
            "line_ends": d.line_ends if d else None,
            "converted": d.converted if d else False,
            "columns": v.mapping,
            "warnings": [issue_dict(w, v.labels) for w in v.warnings.items],
            "error_limit": v.errors.limit,
        },
    }


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
    if od.get("status") == "held":
        head = f"HELD {key}: {od.get('rejection')}"
    elif od.get("status") == "accepted":
        head = f"ACCEPTED {key}: {_count(od.get('rows_published', 0), 'row')}"
        if od.get("rows_left_out"):
            head += f", {_count(od['rows_left_out'], 'row')} left out (within the error budget)"
    else:
        head = f"REJECTED {key}: {od.get('rejection') or 'invalid'}"
    if od.get("status") == "held":
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
