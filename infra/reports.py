"""The validation reports of the demo's uploads: found in the internal bucket, read for status,
warnings and errors; and ``Outcome``, what happened to one dropped file.

Reports are the JSON the validate function writes under ``reports/`` (``layout.report_prefix``)
or, for keys it could not route, under ``layout.REFUSED_PREFIX``; a report's ``opendepot``
member names its upload (``key``, ``version_id``, ``upload_id``, ``status``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from infra.real_files import InputFile
from infra.stack import LocalStack
from opendepot import layout


@dataclass
class Outcome:
    """What happened to one dropped file."""

    file: InputFile
    """The file dropped."""
    key: str
    """Its key in the incoming bucket."""
    version_id: str | None
    """The object version S3 gave it."""
    seconds: float = 0.0
    """Time until the queues were idle again."""
    report: dict[str, Any] | None = None
    """Its validation report (None: none was written)."""
    crashes: list[str] = field(default_factory=list)
    """Exceptions raised by the functions meanwhile."""
    failed: int = 0
    """Records returned to a queue while this file was processed."""


REFUSED_PREFIX = layout.REFUSED_PREFIX
"""Where the validate function files reports of keys it could not route (docs/design.md)."""


def report_list(stack: LocalStack, dataset: str, producer: str) -> list[dict[str, Any]]:
    """Every report of this dataset and producer, then those of refused keys."""
    s3 = stack.s3
    out = []
    for prefix in (layout.report_prefix(dataset, producer), REFUSED_PREFIX):
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket=stack.internal_bucket, Prefix=prefix
        )
        for o in (o for page in pages for o in page.get("Contents", [])):
            if not o["Key"].endswith(".json"):
                continue
            try:
                body = s3.get_object(Bucket=stack.internal_bucket, Key=o["Key"])["Body"].read()
                report = json.loads(body)
            except (ValueError, KeyError):
                continue
            if isinstance(report, dict):
                report.setdefault("opendepot", {}).setdefault("report_key", o["Key"])
                out.append(report)
    return out


def find_report(
    reports: list[dict[str, Any]], key: str, version_id: str | None
) -> dict[str, Any] | None:
    """The report of the upload of ``key`` (and ``version_id`` when both sides know it)."""
    found = []
    for r in reports:
        meta = r.get("opendepot") or {}
        if meta.get("key") != key:
            continue
        if version_id and meta.get("version_id") and meta["version_id"] != version_id:
            continue
        found.append(r)
    found.sort(key=lambda r: str((r.get("opendepot") or {}).get("upload_id", "")))
    return found[-1] if found else None


def _task(report: dict[str, Any]) -> dict[str, Any]:
    tasks = report.get("tasks") or [{}]
    return tasks[0] if isinstance(tasks[0], dict) else {}


def count_warnings(report: dict[str, Any]) -> int:
    """Warnings of a report: the true total in ``stats``, else the warnings listed."""
    for value in (
        (_task(report).get("stats") or {}).get("warnings"),
        (report.get("stats") or {}).get("warnings"),
    ):
        if isinstance(value, int):
            return value
    listed = (report.get("opendepot") or {}).get("warnings")
    if isinstance(listed, list):
        return len(listed)
    return len(_task(report).get("warnings") or [])


def error_lines(report: dict[str, Any], limit: int) -> list[str]:
    """The report in human form with its first ``limit`` errors: from
    ``opendepot.report.format_human(report, max_lines=limit)`` when it exists, else built here
    (type, line, column, value, message)."""
    format_human: Callable[..., Any] | None
    try:
        from opendepot.report import format_human
    except ImportError:
        format_human = None
    if format_human is not None:
        try:
            text = format_human(report, max_lines=limit)
        except (TypeError, KeyError):
            text = None
        if isinstance(text, str) and text.strip():
            return [line.strip() for line in text.rstrip("\n").splitlines()]
    lines = []
    for e in (_task(report).get("errors") or [])[:limit]:
        where = []
        if e.get("rowNumber") is not None:
            where.append(f"line {e['rowNumber']}")
        if e.get("fieldName"):
            where.append(f"column {e['fieldName']}")
        if e.get("cell") not in (None, ""):
            where.append(f"value {e['cell']!r}")
        lines.append(
            f"[{e.get('type', 'error')}] "
            + (", ".join(where) + ": " if where else "")
            + str(e.get("message", e.get("note", "")))
        )
    total = (report.get("stats") or {}).get("errors")
    if isinstance(total, int) and total > len(lines):
        lines.append(f"... and {total - len(lines)} more (see the JSON report)")
    return lines


def status_of(report: dict[str, Any] | None) -> str:
    """``accepted``, ``rejected``, ``held``... of a report; ``no report`` for None."""
    if report is None:
        return "no report"
    meta = report.get("opendepot") or {}
    status = meta.get("status")
    if status:
        return str(status)
    return "accepted" if report.get("valid") else "rejected"


def report_keys(stack: LocalStack) -> list[str]:
    """Keys of every report in the internal bucket."""
    pages = stack.s3.get_paginator("list_objects_v2").paginate(
        Bucket=stack.internal_bucket, Prefix=layout.REPORTS
    )
    objects = (o for page in pages for o in page.get("Contents", []))
    return [o["Key"] for o in objects if o["Key"].endswith(".json")]
