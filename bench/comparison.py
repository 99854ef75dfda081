"""opendepot against DuckDB and Polars (issue 17): one workload's figures, the printed table.

opendepot's figure is validate + publish over the directory store (``--store file``: no moto),
the median over the repetitions of the sum of the two handlers' seconds, each in its own child
process (``bench.child``); each peer's is the median of its own child processes'
(``bench.peers.run_tool``), measured the same way: imports and a warm-up first, then seconds
around the work and the peak resident memory while it ran. Ratios are opendepot over the peer:
below 1 opendepot is faster. ``same_rows`` compares the digests of the rows each published
(``bench.peers.compare``), taken on the first repetition. The static site is not in publish: the
site function runs after it on its own (``site_seconds``, ``site_peak_rss_mib``: measured in the
publish child after the publish measurement, not counted in opendepot's figure, which the peers'
is compared with; the peers build no site).
"""

from __future__ import annotations

import statistics
from typing import Any, Protocol

from bench import peers

TOOLS = ("duckdb", "polars")
STEPS = ("read_seconds", "checks_seconds", "rollup_seconds", "write_seconds")


class ChildLike(Protocol):
    doc: dict[str, Any]
    failed: str | None


def _r(x: float | None, digits: int = 3) -> float | None:
    return None if x is None else round(x, digits)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _ok(runs: list[Any]) -> list[Any]:
    return [r for r in runs if not r.failed and r.doc.get("seconds") is not None]


def _failure(runs: list[Any]) -> str:
    return next((r.failed for r in runs if r.failed), None) or "failed: not measured"


def _peer(runs: list[Any]) -> dict[str, Any]:
    good = _ok(runs)
    seconds = _median([r.doc["seconds"] for r in good])
    peaks = [r.doc["peak_rss_mib"] for r in runs if r.doc.get("peak_rss_mib") is not None]
    out: dict[str, Any] = {
        "seconds": _r(seconds) if seconds is not None else _failure(runs),
        "samples_seconds": [_r(r.doc["seconds"]) for r in good],
        "peak_rss_mib": round(max(peaks), 1) if peaks else _failure(runs),
        "baseline_rss_mib": next((round(r.doc["baseline_rss_mib"], 1) for r in runs
                                  if r.doc.get("baseline_rss_mib") is not None), None),
        "steps_seconds": {k: _r(_median([r.doc[k] for r in good if k in r.doc]))
                          for k in STEPS if any(k in r.doc for r in good)},
        "version": next((r.doc.get("version") for r in runs if r.doc.get("version")), None),
    }
    if any("checks" in r.doc for r in runs):
        out["checks"] = next(r.doc["checks"] for r in runs if "checks" in r.doc)
        without = _median([r.doc["seconds"] - r.doc["checks_seconds"] for r in good])
        out["seconds_without_checks"] = _r(without)
    failures = [r.failed for r in runs if r.failed]
    if failures:
        out["failed"] = failures[0]
    return out


def _opendepot(runs: list[tuple[Any, Any]]) -> dict[str, Any]:
    pairs = [(v, p) for v, p in runs if not v.failed and not p.failed
             and v.doc.get("seconds") is not None and p.doc.get("seconds") is not None]
    total = _median([v.doc["seconds"] + p.doc["seconds"] for v, p in pairs])
    failure = next((x.failed for pair in runs for x in pair if x.failed), "failed: not measured")

    def peak(i: int) -> float | None:
        values = [pair[i].doc["peak_rss_mib"] for pair in runs
                  if pair[i].doc.get("peak_rss_mib") is not None]
        return round(max(values), 1) if values else None

    site = [p.doc["site_seconds"] for _, p in runs if p.doc.get("site_seconds") is not None]
    site_peaks = [p.doc["site_peak_rss_mib"] for _, p in runs
                  if p.doc.get("site_peak_rss_mib") is not None]
    out = {
        "seconds": _r(total) if total is not None else failure,
        "validate_seconds": _r(_median([v.doc["seconds"] for v, _ in pairs])),
        "publish_seconds": _r(_median([p.doc["seconds"] for _, p in pairs])),
        "site_seconds": _r(_median(site)),
        "samples_seconds": [_r(v.doc["seconds"] + p.doc["seconds"]) for v, p in pairs],
        "peak_rss_mib": {"validate": peak(0), "publish": peak(1),
                         "site": round(max(site_peaks), 1) if site_peaks else None},
    }
    site_failed = next((p.doc["site_failed"] for _, p in runs if p.doc.get("site_failed")), None)
    if site_failed:
        out["site_failed"] = site_failed
    return out


def summarise(file_runs: list[tuple[Any, Any]], duckdb: list[Any],
              polars: list[Any]) -> dict[str, Any]:
    """One workload's comparison (the keys of ``results.json`` named in the module docstring)."""
    od = _opendepot(file_runs)
    by = {"duckdb": _peer(duckdb), "polars": _peer(polars)}

    def ratio(tool: str, mine: str = "seconds") -> float | str:
        a, b = od[mine], by[tool]["seconds"]
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b:
            return round(a / b, 2)
        return "failed: no ratio"

    first_publish = file_runs[0][1] if file_runs else None
    digests = {"opendepot": first_publish.doc.get("digests") if first_publish else None,
               "duckdb": next((r.doc.get("digests") for r in duckdb if r.doc.get("digests")),
                              None),
               "polars": next((r.doc.get("digests") for r in polars if r.doc.get("digests")),
                              None)}
    same = peers.compare(digests)
    same["method"] = ("sha256 of every row of each level (dep, reg, fra) in file order, read "
                      "back from its Parquet and from its CSV with the dataset's types; each "
                      "tool's six digests against opendepot's Parquet")
    return {
        "opendepot_file_store_seconds": od["seconds"],
        "ratio_to_duckdb_checked": ratio("duckdb"),
        "ratio_to_polars": ratio("polars"),
        "opendepot_file_store": od,
        "duckdb_checked": by["duckdb"],
        "polars": by["polars"],
        "same_rows": same,
    }


def fmt(x: Any, digits: int = 2) -> str:
    """A figure of the printed table: '-' for none, 'FAILED' for a failure, floats rounded."""
    if x is None:
        return "-"
    if isinstance(x, str):
        return "FAILED" if x.startswith("failed") else x
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _same(w: dict[str, Any]) -> str:
    equal = (w.get("same_rows") or {}).get("equal")
    if equal is None:
        return "not compared"
    return "yes" if equal else "NO, ROWS DIFFER"


def table(workloads: list[dict[str, Any]]) -> str:
    """The comparison's table and its notes."""
    head = ["workload", "rows", "opendepot s (val + pub)", "DuckDB+checks s", "(checks s)",
            "Polars s", "×DuckDB+checks", "×Polars", "peak MiB od val/pub", "DuckDB MiB",
            "Polars MiB", "site fn s / MiB", "same rows"]
    lines = []
    for w in workloads:
        if "opendepot_file_store" not in w:
            continue
        od, dk, pl = w["opendepot_file_store"], w["duckdb_checked"], w["polars"]
        pk = od["peak_rss_mib"]
        lines.append([
            w["name"], f"{w['rows']:,}",
            f"{fmt(od['seconds'], 3)} ({fmt(od['validate_seconds'])} + "
            f"{fmt(od['publish_seconds'])})",
            fmt(dk["seconds"], 3), fmt(dk.get("steps_seconds", {}).get("checks_seconds")),
            fmt(pl["seconds"], 3), fmt(w["ratio_to_duckdb_checked"]), fmt(w["ratio_to_polars"]),
            f"{fmt(pk['validate'], 0)} / {fmt(pk['publish'], 0)}",
            fmt(dk["peak_rss_mib"], 0), fmt(pl["peak_rss_mib"], 0),
            f"{fmt(od.get('site_seconds'))} / {fmt(pk.get('site'), 0)}", _same(w)])
    out = []
    if lines:
        widths = [max(len(h), *(len(r[i]) for r in lines)) for i, h in enumerate(head)]
        out = ["opendepot (file store) against the peers a data engineer would pick (issue 17):",
               "  ".join(h.rjust(widths[i]) if i else h.ljust(widths[i])
                         for i, h in enumerate(head)),
               "  ".join("-" * n for n in widths)]
        out += ["  ".join(c.rjust(widths[i]) if i else c.ljust(widths[i])
                          for i, c in enumerate(r)) for r in lines]
        out.append("×DuckDB+checks, ×Polars = opendepot's seconds over the peer's (below 1: "
                   "opendepot is faster); medians of the repetitions, each in its own child "
                   "process; peaks: resident memory while the work ran, interpreter and "
                   "libraries included; site fn: the site function after publish (home, dataset "
                   "page, dashboards), measured on its own and not in opendepot's seconds: "
                   "the peers build no site")
    for w in workloads:
        same = w.get("same_rows") or {}
        if same.get("equal") is False:
            out.append(f"!!! {w['name']}: THE TOOLS DID NOT PUBLISH THE SAME ROWS: "
                       + "; ".join(same.get("mismatches", [])[:6]))
        elif same.get("equal") is None:
            out.append(f"{w['name']}: rows not compared (missing: "
                       f"{', '.join(same.get('missing', [])) or '-'})")
        for tool in ("duckdb_checked", "polars"):
            if w.get(tool, {}).get("failed"):
                out.append(f"{w['name']} {tool}: {w[tool]['failed']}")
    return "\n".join(out)


def targets(by: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 17's targets on the workloads measured (reported, never asserted)."""
    out = []
    for name in ("real", "x10", "x100"):
        w = by.get(name) or {}
        if "ratio_to_duckdb_checked" not in w:
            continue
        r = w["ratio_to_duckdb_checked"]
        out.append({"target": f"opendepot (file store) <= 1.0 x DuckDB with checks ({name})",
                    "value": r, "met": r <= 1.0 if isinstance(r, (int, float)) else None})
        equal = (w.get("same_rows") or {}).get("equal")
        out.append({"target": f"opendepot, DuckDB and Polars publish the same rows ({name})",
                    "value": _same(w), "met": equal})
    return out
