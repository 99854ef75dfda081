"""The report invariant every test that builds a report checks: totals, ``…ByType`` and the
cap agree (``assert_report_agrees``), and the same for a ``Validation`` (``assert_agrees``)."""

from __future__ import annotations

from typing import Any

from opendepot.report import build_report


def assert_report_agrees(report: dict[str, Any]) -> None:
    """``stats.errors`` = sum of ``errorsByType`` = the task's count; the listed errors are
    ``min(total, error_limit)``; a "reached error limit" warning exactly when some are not
    listed; the same for warnings."""
    task = report["tasks"][0]
    stats, od = task["stats"], report["opendepot"]
    limit = od["error_limit"]
    for kind, listed in (("error", task["errors"]), ("warning", od["warnings"])):
        total = stats[f"{kind}s"]
        assert report["stats"][f"{kind}s"] == total
        assert sum(stats[f"{kind}sByType"].values()) == total, (kind, stats)
        assert len(listed) == min(total, limit), (kind, len(listed), total, limit)
        for e in listed:
            assert stats[f"{kind}sByType"].get(e["type"], 0) >= 1, e["type"]
        flagged = any(w.startswith(f"reached {kind} limit") for w in task["warnings"])
        assert flagged == (total > limit), (kind, total, limit)
    assert report["valid"] == (stats["errors"] == 0)


def assert_agrees(v: Any) -> Any:
    """``assert_report_agrees`` on ``v``'s report; returns ``v``."""
    assert_report_agrees(build_report(v, None, {"key": v.name}))
    return v
