"""What a producer reads in its upload's report when the version made from it dropped
published values or shrank the history (issue 14, item 3).

Once a version is switched to and its uploads folded (``publication``), each upload the version
brought whose version's ``changes.json`` says it drops published key values
(``drops_published``) or has fewer rows than the version before gets, in its report (internal
bucket, ``UploadRecord.report_key``), ``opendepot.publication``:
``{"version", "previous", "changes": "<key of changes.json>", "rows": {before, after, added,
removed, changed, unchanged}, "key_values": [...], "warnings": [...], "drops_published": bool}``
(the summary's members, as in ``changes.json``). Other versions leave reports as they are.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from opendepot.config import Settings
from opendepot.contracts import UploadRecord
from opendepot.storage import NotFound, Store

log = logging.getLogger(__name__)
NOTED = ("rows", "key_values", "warnings", "drops_published")
"""Members of ``changes.json`` copied into the report."""


def shrinks(doc: dict[str, Any]) -> bool:
    """True when the ``changes.json`` document ``doc`` drops published values or rows."""
    rows = doc.get("rows") or {}
    fewer = isinstance(rows.get("before"), int) and isinstance(rows.get("after"), int) \
        and rows["after"] < rows["before"]
    return bool(doc.get("drops_published")) or fewer


def note_in_reports(
    store: Store, settings: Settings, records: Sequence[UploadRecord], changes_key: str | None,
) -> int:
    """Add the version's change summary (``changes_key`` in the published bucket) to the
    reports of ``records`` when it shrinks (``shrinks``); returns the reports written. A report
    or summary that is missing is skipped (logged).

    Raises: StorageError (other storage failures)."""
    if not records or changes_key is None:
        return 0
    try:
        doc = json.loads(store.get(settings.published_bucket, changes_key))
    except NotFound:
        log.warning("changes summary missing", extra={"key": changes_key})
        return 0
    if not shrinks(doc):
        return 0
    note = {"version": doc.get("version"), "previous": doc.get("previous"),
            "changes": changes_key, **{k: doc.get(k) for k in NOTED}}
    written = 0
    for r in records:
        try:
            report = json.loads(store.get(settings.internal_bucket, r.report_key))
        except NotFound:
            log.warning("report missing", extra={"key": r.report_key})
            continue
        report.setdefault("opendepot", {})["publication"] = note
        body = json.dumps(report, ensure_ascii=False, indent=1, default=str).encode("utf-8")
        store.put(settings.internal_bucket, r.report_key, body, "application/json")
        written += 1
    log.warning("version drops published values: noted in its uploads' reports",
                extra={"version": doc.get("version"), "reports": written})
    return written
