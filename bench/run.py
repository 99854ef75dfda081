"""``make bench`` (``python -m bench.run [--quick]``): opendepot against the floor and the peer.

For each workload (the real hospital file, ×10, ×100; ``--quick`` skips ×100 and the peer's long
runs) and each repetition, in turn: (a) opendepot's validate handler, then its publish handler,
each in a child process on moto in process (seconds around the handler call, peak resident
memory while it ran); (b) the floor, pyarrow alone; (c) the peer, Frictionless. Medians are
reported (peaks: the largest). After the repetitions, validate and publish run once more each
with ``--store file``: the same handler code over a local directory (``bench.filestore``) instead
of moto, whose in-process copies of the objects (a whole object read to serve a GET, each PUT body
held) inflate the moto peak; the file-store peak is opendepot's own memory. Those file-store runs
are repeated as many times as the workload, each followed by the peers a data engineer would
pick instead (issue 17, ``bench.peers``, ``bench.comparison``): DuckDB making the same six files
WITH the core checks in SQL, and Polars WITHOUT checks, each in a child process measured as the
handlers are; opendepot's ratio to each (``ratio_to_duckdb_checked``, ``ratio_to_polars``) and
whether the three published the same rows (``same_rows``, a mismatch printed loudly). Each
function's cold start (import time and memory) and package size are measured once
(``bench.coldstart``). ``--peers-only`` runs just that comparison and the cold start.
The real file also goes through the local server stack (moto server + queue pump), and the
daily increment is measured end to end on it. ×10 is profiled once. The history workload
(``bench.history``, its own process) times the publish of upload N+1 after N daily uploads
(N = 10, 100, 1,000; ``--quick``: up to 100) and counts its storage calls.

Output: a table on stdout, ``bench/results.json``, ``bench/profile.txt``. Targets are reported,
never asserted. A measurement that fails (memory cap, time cap, crash) is recorded as
``"failed: <reason>"`` and the bench goes on.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import comparison, workloads
from bench.aws import CHECKSUMS
from bench.comparison import fmt

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MIB_PER_GIB = 1024

TARGETS = {
    "ratio_to_floor_x10": 2.0,
    "speedup_over_peer": 25.0,
    "peak_rss_mib_x100": 1024.0,
    "increment_seconds": 3.0,
    "history_ratio_1000_to_10": 1.2,
}


@dataclass
class Workload:
    name: str
    path: Path
    rows: int
    reps: int
    peer_runs: int
    peer_cap: float
    timeout: float
    """Seconds allowed to each opendepot child."""


@dataclass
class Child:
    """The outcome of one child process."""

    mode: str
    doc: dict[str, Any]
    seconds: float
    failed: str | None = None
    log: Path | None = None


@dataclass
class Collected:
    validate: list[Child] = field(default_factory=list)
    publish: list[Child] = field(default_factory=list)
    floor: list[Child] = field(default_factory=list)
    peer: list[Child] = field(default_factory=list)
    file_validate: Child | None = None
    """validate over the directory store (``--store file``), its first run."""
    file_publish: Child | None = None
    file_runs: list[tuple[Child, Child]] = field(default_factory=list)
    """(validate, publish) over the directory store, each repetition."""
    duckdb: list[Child] = field(default_factory=list)
    polars: list[Child] = field(default_factory=list)
    server: Child | None = None
    notes: list[str] = field(default_factory=list)


class Runner:
    """Starts ``python -m bench.child`` processes with a time cap and a memory cap."""

    def __init__(self, tmp: Path, mem_gib: float, verbose: bool) -> None:
        self.tmp = tmp
        self.mem_gib = mem_gib
        self.verbose = verbose
        self.count = 0
        self.env = dict(os.environ)
        self.env["AWS_REQUEST_CHECKSUM_CALCULATION"] = CHECKSUMS  # see bench.aws.CHECKSUMS
        self.env.setdefault("PYTHONWARNINGS", "ignore")

    def __call__(self, mode: str, *extra: str, timeout: float, label: str = "") -> Child:
        self.count += 1
        result = self.tmp / f"child-{self.count:03d}-{mode}.json"
        log = self.tmp / f"child-{self.count:03d}-{mode}.log"
        cmd = [sys.executable, "-m", "bench.child", mode, "--tmp", str(self.tmp),
               "--result", str(result), "--mem-gib", str(self.mem_gib), *extra]
        self._say(f"  {label or mode} ...")
        started = time.perf_counter()
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # the child's own process group only
                proc.wait()
                code = None
        seconds = time.perf_counter() - started
        doc: dict[str, Any] = {}
        if result.exists():
            doc = json.loads(result.read_text())
        failed = doc.get("failed")
        if code is None:
            failed = f"time cap: stopped after {timeout:.0f} s"
        elif code < 0:
            name = signal.Signals(-code).name
            where = _crash_site(log)
            failed = f"killed by {name} after {seconds:.0f} s{where}"
            if name in {"SIGSEGV", "SIGBUS", "SIGABRT"}:
                failed += (f" (the child runs under a {self.mem_gib:g} GiB address-space cap: "
                           "an allocation that failed in native code ends this way)")
        elif code != 0 or not doc:
            failed = failed or f"exit status {code}: {_tail(log)}"
        partial = result.with_suffix(".partial")
        if failed and partial.exists() and "peak_rss_mib" not in doc:
            try:
                seen = json.loads(partial.read_text())
            except ValueError:
                seen = {}
            if seen:
                doc["peak_rss_mib_at_failure"] = round(seen["peak_rss_mib"], 1)
                doc["seconds_at_failure"] = round(seen["seconds"], 1)
                failed += (f"; peak resident memory {seen['peak_rss_mib']:.0f} MiB after "
                           f"{seen['seconds']:.0f} s in the handler")
        if failed and not failed.startswith("failed"):
            failed = f"failed: {failed}"
        self._say(f" {seconds:.1f} s" + (f"  {failed}" if failed else "") + "\n")
        return Child(mode, doc, seconds, failed, log)

    def _say(self, text: str) -> None:
        if self.verbose:
            sys.stderr.write(text)
            sys.stderr.flush()


def _crash_site(log: Path) -> str:
    """Where the crashing thread was (faulthandler's dump): its innermost frame and, if that is
    a library, the innermost frame of opendepot's own code."""
    try:
        text = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""

    def frame(line: str) -> str:
        # File "/.../validate.py", line 123 in _cast_field
        path, _, rest = line.strip()[6:].partition('", line ')
        return f"{Path(path).name}:{rest.replace(' in ', ' ')}"

    for i, line in enumerate(text):
        if line.startswith("Current thread"):
            frames = [t for t in text[i + 1:i + 60] if t.strip().startswith("File ")]
            if not frames:
                return ""
            where = [frame(frames[0])]
            own = next((f for f in frames if "/opendepot/" in f or "/functions/" in f), None)
            if own is not None and own != frames[0]:
                where.append(f"called from {frame(own)}")
            return " at " + ", ".join(where)
    return ""


def _tail(log: Path, lines: int = 3) -> str:
    try:
        text = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(t.strip()[:200] for t in text[-lines:])


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _ok(children: list[Child]) -> list[Child]:
    return [c for c in children if not c.failed]


# ------------------------------------------------------------------------------ measuring


def measure(w: Workload, run: Runner, tmp: Path, *, server_reps: int,
            peers_only: bool = False) -> Collected:
    c = Collected()
    for rep in range(0 if peers_only else w.reps):
        stage = tmp / f"stage-{w.name}-{rep}"
        label = f"{w.name} #{rep + 1}"
        v = run("validate", "--file", str(w.path), "--stage-dir", str(stage),
                timeout=w.timeout, label=f"{label} opendepot validate")
        c.validate.append(v)
        publish: Child | None = None
        if v.failed:
            # measure publish anyway, on the same rows staged by the bench itself
            s = run("stage", "--file", str(w.path), "--stage-dir", str(stage),
                    timeout=w.timeout, label=f"{label} (staging for publish, not measured)")
            if s.failed:
                publish = Child("publish", {}, 0.0, f"failed: not run (staging: {s.failed})")
            else:
                c.notes.append("validate failed, so publish ran on rows staged by the bench "
                               "(the typed Parquet and upload record the validate function writes)")
        if publish is None and (stage / "staging.json").exists():
            publish = run("publish", "--stage-dir", str(stage), timeout=w.timeout,
                          label=f"{label} opendepot publish")
        c.publish.append(publish or Child("publish", {}, 0.0, "failed: nothing staged"))
        shutil.rmtree(stage, ignore_errors=True)
        c.floor.append(run("floor", "--file", str(w.path), timeout=w.timeout,
                           label=f"{label} floor (pyarrow)"))
        if rep < w.peer_runs:
            c.peer.append(run("peer", "--file", str(w.path), "--cap", str(w.peer_cap),
                              timeout=w.peer_cap + 120, label=f"{label} peer (frictionless)"))
    measure_peers(w, run, tmp, c)
    if server_reps and not peers_only:
        c.server = run("server", "--file", str(w.path), "--reps", str(server_reps),
                       "--timeout", str(w.timeout), timeout=w.timeout * (server_reps + 1) + 60,
                       label=f"{w.name} local server stack x{server_reps}")
    return c


def measure_peers(w: Workload, run: Runner, tmp: Path, c: Collected) -> None:
    """``w.reps`` times, in turn: opendepot's validate then publish over the directory store,
    DuckDB (with its checks), Polars; the first repetition also takes the digests of the rows
    each published (``bench.peers``)."""
    for rep in range(w.reps):
        first = ["--digest"] if rep == 0 else []
        c.file_runs.append(measure_file_store(w, run, tmp, c, digest=rep == 0))
        for tool, what in (("duckdb", "DuckDB, checks in SQL"), ("polars", "Polars, no checks")):
            getattr(c, tool).append(run(tool, "--file", str(w.path), *first, timeout=w.timeout,
                                        label=f"{w.name} #{rep + 1} {what}"))
    c.file_validate, c.file_publish = c.file_runs[0]


def measure_file_store(w: Workload, run: Runner, tmp: Path, c: Collected,
                       digest: bool = False) -> tuple[Child, Child]:
    """validate, then publish, once each over the directory store (``--store file``);
    ``digest``: publish also gives the digests of the published rows."""
    stage = tmp / f"stage-{w.name}-file"
    v = run("validate", "--store", "file", "--file", str(w.path), "--stage-dir", str(stage),
            timeout=w.timeout, label=f"{w.name} opendepot validate (file store)")
    publish: Child | None = None
    if v.failed:
        s = run("stage", "--file", str(w.path), "--stage-dir", str(stage), timeout=w.timeout,
                label=f"{w.name} (staging for publish, file store, not measured)")
        if s.failed:
            publish = Child("publish", {}, 0.0, f"failed: not run (staging: {s.failed})")
        else:
            c.notes.append("validate failed on the file store, so publish (file store) ran on "
                           "rows staged by the bench")
    if publish is None and (stage / "staging.json").exists():
        publish = run("publish", "--store", "file", "--stage-dir", str(stage),
                      *(["--digest"] if digest else []), timeout=w.timeout,
                      label=f"{w.name} opendepot publish (file store)")
    shutil.rmtree(stage, ignore_errors=True)
    return v, publish or Child("publish", {}, 0.0, "failed: nothing staged")


def summarise(w: Workload, c: Collected) -> dict[str, Any]:
    """One workload's line of results.json."""
    failures: dict[str, str] = {}
    for what, runs in (("validate", c.validate), ("publish", c.publish), ("floor", c.floor),
                       ("peer", c.peer)):
        for r in runs:
            if r.failed:
                failures.setdefault(what, r.failed)

    def secs(runs: list[Child]) -> list[float]:
        return [r.doc["seconds"] for r in _ok(runs) if r.doc.get("seconds") is not None]

    v_secs, p_secs = secs(c.validate), secs(c.publish)
    pairs = [v.doc["seconds"] + p.doc["seconds"]
             for v, p in zip(c.validate, c.publish, strict=False) if not v.failed and not p.failed]
    total = _median(pairs)
    compute = _median([v.doc["seconds"] - v.doc.get("storage_seconds", 0.0) + p.doc["seconds"]
                       - p.doc.get("storage_seconds", 0.0)
                       for v, p in zip(c.validate, c.publish, strict=False)
                       if not v.failed and not p.failed])
    floor = _median(secs(c.floor))
    floor_1 = _median([r.doc["single_thread_seconds"] for r in _ok(c.floor)
                       if "single_thread_seconds" in r.doc])
    same = _median([r.doc["same_outputs_seconds"] for r in _ok(c.floor)
                    if "same_outputs_seconds" in r.doc])
    peer_ok = [r for r in c.peer if r.doc.get("rows_per_second")]
    peer_rps = _median([r.doc["rows_per_second"] for r in peer_ok])
    od_rps = w.rows / total if total else None

    def fail(what: str) -> str:
        return failures.get(what) or "failed: not measured"

    v_median = _median(v_secs)
    od_fail = fail("validate") if "validate" in failures else fail("publish")

    def peak(runs: list[Child], what: str) -> float | str:
        peaks = [r.doc["peak_rss_mib"] for r in runs if r.doc.get("peak_rss_mib") is not None]
        if not peaks:
            return fail(what)
        return round(max(peaks), 1)

    out: dict[str, Any] = {
        "name": w.name,
        "rows": w.rows,
        "bytes": w.path.stat().st_size,
        "repetitions": w.reps,
        "opendepot_seconds": _r(total) if total is not None else od_fail,
        "validate_seconds": _r(_median(v_secs)) if v_secs else fail("validate"),
        "publish_seconds": _r(_median(p_secs)) if p_secs else fail("publish"),
        "storage_seconds": {
            "validate": _r(_median([r.doc["storage_seconds"] for r in _ok(c.validate)
                                    if "storage_seconds" in r.doc])),
            "publish": _r(_median([r.doc["storage_seconds"] for r in _ok(c.publish)
                                   if "storage_seconds" in r.doc])),
        },
        "opendepot_seconds_without_storage": _r(compute),
        "floor_seconds": _r(floor) if floor is not None else fail("floor"),
        "floor_single_thread_seconds": _r(floor_1),
        "floor_same_outputs_seconds": _r(same),
        "ratio_to_floor_same_outputs": _r(total / same) if total and same else None,
        "peer_rows_per_second": round(peer_rps) if peer_rps else fail("peer"),
        "opendepot_rows_per_second": round(od_rps) if od_rps else od_fail,
        "ratio_to_floor": _r(total / floor) if total and floor else "failed: no ratio",
        "speedup_over_peer": _r(od_rps / peer_rps) if od_rps and peer_rps else "failed: no ratio",
        # the peer only validates: opendepot's validate handler alone against it, beside the
        # target's figure (validate + publish)
        "validate_speedup_over_peer": (_r(w.rows / v_median / peer_rps)
                                       if v_median and peer_rps else None),
        "ratio_to_floor_without_storage": _r(compute / floor) if compute and floor else None,
        "peak_rss_mib": {"validate": peak(c.validate, "validate"),
                         "publish": peak(c.publish, "publish")},
        "baseline_rss_mib": {
            "validate": _first(c.validate, "baseline_rss_mib"),
            "publish": _first(c.publish, "baseline_rss_mib"),
        },
        "process_peak_rss_mib": {
            "validate": _max(c.validate, "process_peak_rss_mib"),
            "publish": _max(c.publish, "process_peak_rss_mib"),
        },
        "peak_rss_mib_file_store": {"validate": _file_figure(c.file_validate, "peak_rss_mib", 1),
                                    "publish": _file_figure(c.file_publish, "peak_rss_mib", 1)},
        "seconds_file_store": {"validate": _file_figure(c.file_validate, "seconds", 3),
                               "publish": _file_figure(c.file_publish, "seconds", 3)},
        "baseline_rss_mib_file_store": {
            "validate": _first([c.file_validate] if c.file_validate else [], "baseline_rss_mib"),
            "publish": _first([c.file_publish] if c.file_publish else [], "baseline_rss_mib"),
        },
        "storage_seconds_file_store": {
            "validate": _file_figure(c.file_validate, "storage_seconds", 3, quiet=True),
            "publish": _file_figure(c.file_publish, "storage_seconds", 3, quiet=True),
        },
        "floor_peak_rss_mib": _max(c.floor, "peak_rss_mib"),
        "peer": _peer_detail(c.peer),
        "samples": {
            "validate_seconds": [_r(x) for x in v_secs],
            "publish_seconds": [_r(x) for x in p_secs],
            "opendepot_seconds": [_r(x) for x in pairs],
            "floor_seconds": [_r(x) for x in secs(c.floor)],
            "floor_read_parquet_csv_seconds": [
                [_r(r.doc["read_seconds"]), _r(r.doc["parquet_seconds"]), _r(r.doc["csv_seconds"])]
                for r in _ok(c.floor)],
        },
        "validation": {k: c.validate[0].doc.get(k) for k in ("status", "errors", "warnings")}
        if c.validate else {},
        "published_rows": next((p.doc.get("published_rows") for p in _ok(c.publish)), None),
        # the site function after publish, on its own (not in opendepot_seconds)
        "site_seconds": _r(_median([p.doc["site_seconds"] for p in c.publish
                                    if p.doc.get("site_seconds") is not None])),
        "site_peak_rss_mib": _max(c.publish, "site_peak_rss_mib"),
    }
    site_failed = next((p.doc["site_failed"] for p in c.publish if p.doc.get("site_failed")), None)
    if site_failed:
        failures.setdefault("site", site_failed)
    if c.server is not None:
        served: list[dict[str, Any]] = [
            r for r in c.server.doc.get("runs", []) if not r.get("failed")]
        if served and not c.server.failed:
            out["opendepot_server_seconds"] = _r(_median([r["seconds"] for r in served]))
            out["opendepot_server_e2e_seconds"] = _r(_median([r["e2e_seconds"] for r in served]))
            out["server_samples"] = [{k: _r(v) if isinstance(v, float) else v for k, v in r.items()
                                      if k != "rows"} for r in served]
        else:
            bad = c.server.failed or next((r["failed"] for r in c.server.doc.get("runs", [])
                                           if r.get("failed")), "failed: no run")
            out["opendepot_server_seconds"] = bad if bad.startswith("failed") else f"failed: {bad}"
    for what, child in (("validate_file_store", c.file_validate),
                        ("publish_file_store", c.file_publish)):
        if child is not None and child.failed:
            failures.setdefault(what, child.failed)
    if failures:
        out["failures"] = failures
    if c.notes:
        out["notes"] = sorted(set(c.notes))
    out.update(comparison.summarise(c.file_runs, c.duckdb, c.polars))
    return out


def summarise_peers_only(w: Workload, c: Collected) -> dict[str, Any]:
    """One workload's line of results.json under ``--peers-only``: the comparison alone."""
    return {"name": w.name, "rows": w.rows, "bytes": w.path.stat().st_size,
            "repetitions": w.reps, **comparison.summarise(c.file_runs, c.duckdb, c.polars)}


def _file_figure(child: Child | None, key: str, digits: int,
                 quiet: bool = False) -> float | str | None:
    """One figure of a ``--store file`` child: rounded, or its failure (the peak reached before
    a failure is still a peak; None with ``quiet`` when absent)."""
    if child is None:
        return None if quiet else "failed: not measured"
    value = child.doc.get(key)
    if value is not None and (not child.failed or key == "peak_rss_mib"):
        return round(value, digits)
    if quiet:
        return None
    return child.failed or "failed: not measured"


def _r(x: float | None, digits: int = 3) -> float | None:
    return None if x is None else round(x, digits)


def _first(runs: list[Child], key: str) -> float | None:
    for r in runs:
        if r.doc.get(key) is not None:
            return round(r.doc[key], 1)
    return None


def _max(runs: list[Child], key: str) -> float | None:
    values = [r.doc[key] for r in runs if r.doc.get(key) is not None]
    return round(max(values), 1) if values else None


def _peer_detail(runs: list[Child]) -> dict[str, Any]:
    if not runs:
        return {}
    return {
        "runs": len(runs),
        "rows_validated": [r.doc.get("rows") for r in runs],
        "seconds": [_r(r.doc.get("seconds")) for r in runs],
        "capped": [bool(r.doc.get("capped")) for r in runs],
        "cap_seconds": runs[0].doc.get("cap_seconds"),
        "valid": [r.doc.get("valid") for r in runs],
        "frictionless": runs[0].doc.get("frictionless"),
    }


def measure_increment(run: Runner, tmp: Path, reps: int) -> dict[str, Any]:
    path = tmp / workloads.REAL_FILE.name
    # the increment is uploaded under the real file's key (a new version of the same object)
    inc_dir = tmp / "increment"
    inc_dir.mkdir(exist_ok=True)
    inc = inc_dir / workloads.REAL_FILE.name
    rows, new_day = workloads.write_increment(inc)
    shutil.copyfile(workloads.REAL_FILE, path)
    r = run("increment", "--file", str(path), "--increment", str(inc), "--new-day", new_day,
            "--reps", str(reps), "--timeout", "120", timeout=120 * (2 * reps + 1),
            label=f"daily increment x{reps} (local server stack)")
    runs = r.doc.get("runs", [])
    good = [x for x in runs if not x.get("failed") and x.get("seconds") is not None]
    out: dict[str, Any] = {"rows": rows, "new_day": new_day, "repetitions": reps}
    if good:
        out["increment_seconds"] = _r(_median([x["seconds"] for x in good]))
        out["samples"] = [{k: _r(v) for k, v in x.items()} for x in good]
    else:
        reason = r.failed or next((x["failed"] for x in runs if x.get("failed")), "no run")
        out["increment_seconds"] = reason if reason.startswith("failed") else f"failed: {reason}"
    return out


# ------------------------------------------------------------------------------ output


def machine() -> dict[str, Any]:
    import moto
    import pandas
    import pyarrow

    try:
        fr: str | None = importlib.metadata.version("frictionless")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a test-only dependency
        fr = None
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": mem,
        "python": platform.python_version(),
        "pyarrow": pyarrow.__version__,
        "pandas": pandas.__version__,
        "moto": moto.__version__,
        "frictionless": fr,
        "platform": platform.platform(),
        "load_average_at_start": list(os.getloadavg()),
    }


def _rate(x: Any) -> str:
    if isinstance(x, (int, float)):
        return f"{x / 1000:,.0f}k"
    return fmt(x)


def table(results: dict[str, Any]) -> str:
    if results.get("peers_only"):
        return "\n".join(_issue17_lines(results)).lstrip("\n")
    head = ["workload", "rows", "validate s", "publish s", "opendepot s", "server s", "floor s",
            "×floor", "×floor w/o S3", "opendepot rows/s", "peer rows/s", "×peer",
            "peak MiB val/pub", "file store s val/pub", "peak RSS, file store"]
    lines = []
    for w in results["workloads"]:
        pk = w["peak_rss_mib"]
        fs = w.get("seconds_file_store") or {}
        fp = w.get("peak_rss_mib_file_store") or {}
        lines.append([
            w["name"], f"{w['rows']:,}", fmt(w["validate_seconds"]), fmt(w["publish_seconds"]),
            fmt(w["opendepot_seconds"]), fmt(w.get("opendepot_server_seconds")),
            fmt(w["floor_seconds"]), fmt(w["ratio_to_floor"], 1),
            fmt(w.get("ratio_to_floor_without_storage"), 1),
            _rate(w["opendepot_rows_per_second"]), _rate(w["peer_rows_per_second"]),
            fmt(w["speedup_over_peer"], 1),
            f"{fmt(pk['validate'], 0)} / {fmt(pk['publish'], 0)}",
            f"{fmt(fs.get('validate'))} / {fmt(fs.get('publish'))}",
            f"{fmt(fp.get('validate'), 0)} / {fmt(fp.get('publish'), 0)}",
        ])
    widths = [max(len(h), *(len(r[i]) for r in lines)) for i, h in enumerate(head)]
    out = ["  ".join(h.rjust(widths[i]) if i else h.ljust(widths[i]) for i, h in enumerate(head))]
    out.append("  ".join("-" * n for n in widths))
    for r in lines:
        out.append("  ".join(c.rjust(widths[i]) if i else c.ljust(widths[i])
                             for i, c in enumerate(r)))
    inc = results.get("increment", {})
    out.append("")
    out.append("opendepot s = validate + publish handlers (moto in process); server s = the same "
               "through the local server stack; ×floor w/o S3 = without the time spent in the "
               "storage port (moto's S3)")
    out.append("peak MiB = peak resident memory of the handler's process, moto in process (moto's "
               "own copies of the objects included); file store = the same handlers over a local "
               "directory (bench.filestore), once: opendepot's own memory and time")
    site = [f"{w['name']} {fmt(w.get('site_seconds'))} s / {fmt(w.get('site_peak_rss_mib'), 0)} MiB"
            for w in results["workloads"] if w.get("site_seconds") is not None]
    if site:
        out.append("site function after publish (home, the dataset's page, its dashboards; "
                   "measured on its own, moto in process, not in opendepot s): " + ", ".join(site))
    alone = [f"{w['name']} {fmt(w.get('validate_speedup_over_peer'), 1)}x"
             for w in results["workloads"] if w.get("validate_speedup_over_peer")]
    if alone:
        out.append("×peer counts validate + publish; the validate handler alone against the peer "
                   "(which only validates): " + ", ".join(alone))
    same = [f"{w['name']} {fmt(w.get('floor_same_outputs_seconds'))} s "
            f"({fmt(w.get('ratio_to_floor_same_outputs'), 1)}x)"
            for w in results["workloads"] if w.get("floor_same_outputs_seconds")]
    if same:
        out.append("floor for the same outputs (pyarrow alone: read, stage, sort, roll up, "
                   "3 levels as CSV + Parquet; no check), and opendepot's ratio to it: "
                   + ", ".join(same))
    out.append(f"daily increment (real history + 1 day, upload -> new manifest readable, local "
               f"server stack): {fmt(results.get('increment_seconds'))} s")
    for w in results["workloads"]:
        for what, reason in (w.get("failures") or {}).items():
            out.append(f"{w['name']} {what}: {reason}")
        for note in w.get("notes") or []:
            out.append(f"{w['name']}: {note}")
        if w.get("peer", {}).get("capped") and any(w["peer"]["capped"]):
            out.append(f"{w['name']} peer: capped at {w['peer']['cap_seconds']:g} s; rows/s from "
                       f"the {w['peer']['rows_validated']} rows it validated")
    if inc.get("samples") is None and isinstance(results.get("increment_seconds"), str):
        out.append(f"increment: {results['increment_seconds']}")
    if results.get("history"):
        from bench import history

        out.append("")
        out.append(history.table(results["history"]))
    out.extend(_issue17_lines(results))
    return "\n".join(out)


def _issue17_lines(results: dict[str, Any]) -> list[str]:
    """The comparison with DuckDB and Polars, the cold start and the targets."""
    out = ["", comparison.table(results["workloads"])]
    if results.get("cold_start"):
        from bench import coldstart

        out += ["", coldstart.table(results["cold_start"], results.get("package_size") or {})]
    out += ["", "targets (reported, not asserted):"]
    for t in results["targets"]:
        out.append(f"  [{'met' if t['met'] else 'NOT met' if t['met'] is False else 'n/a'}] "
                   f"{t['target']}: {t['value']}")
    return out


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    by = {w["name"]: w for w in results["workloads"]}
    if results.get("peers_only"):
        return comparison.targets(by)
    out = []

    def num(x: Any) -> float | None:
        return x if isinstance(x, (int, float)) else None

    x10 = by.get("x10", {})
    r = num(x10.get("ratio_to_floor"))
    out.append({"target": "validate + publish <= 2 x floor on x10",
                "value": x10.get("ratio_to_floor"),
                "met": None if r is None else r <= TARGETS["ratio_to_floor_x10"]})
    for name in ("x10", "real"):
        if name in by:
            s = num(by[name].get("speedup_over_peer"))
            out.append({"target": f">= 25 x the peer's rows/s ({name})",
                        "value": by[name].get("speedup_over_peer"),
                        "met": None if s is None else s >= TARGETS["speedup_over_peer"]})
    if "x100" in by and "peak_rss_mib" in by["x100"]:
        for fn in ("validate", "publish"):
            p = by["x100"]["peak_rss_mib"][fn]
            ok = None if num(p) is None else p <= TARGETS["peak_rss_mib_x100"]
            if by["x100"].get("failures", {}).get(fn):
                ok = False
            out.append({"target": f"x100 {fn} within 1 GiB peak RSS", "value": p, "met": ok})
            own = num((by["x100"].get("peak_rss_mib_file_store") or {}).get(fn))
            if own is not None:  # the same handler without moto's in-process copies
                out.append({"target": f"x100 {fn} within 1 GiB peak RSS (file store)",
                            "value": own, "met": own <= TARGETS["peak_rss_mib_x100"]})
    i = num(results.get("increment_seconds"))
    out.append({"target": "daily increment < 3 s", "value": results.get("increment_seconds"),
                "met": None if i is None else i < TARGETS["increment_seconds"]})
    history = results.get("history") or {}
    for what in ("publish", "calls"):
        h = num(history.get(f"{what}_ratio_1000_to_10"))
        out.append({"target": f"history: {what} at N = 1,000 <= 1.2 x N = 10 (both modes)",
                    "value": history.get(f"{what}_ratio_1000_to_10", history.get("failed")),
                    "met": None if h is None else h <= TARGETS["history_ratio_1000_to_10"]})
    out.extend(comparison.targets(by))
    return out


def run_history(quick: bool, tmp: Path, timeout: float) -> dict[str, Any]:
    """``bench.history`` (the publish of upload N+1 after N daily uploads, N = 10, 100, 1,000;
    ``--quick``: up to 100) in its own process: its ``history`` section, or ``{"failed"}``."""
    out, log = tmp / "history.json", tmp / "history.log"
    cmd = [sys.executable, "-m", "bench.history", "--out", str(out), "--tmp", str(tmp),
           *(["--quick"] if quick else [])]
    started = time.perf_counter()
    with log.open("wb") as err:
        try:
            proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            failed = f"failed: time cap {timeout:.0f} s ({_tail(log, 1)})"
            if not out.exists():
                return {"failed": failed}
            partial: dict[str, Any] = json.loads(out.read_text())  # the checkpoints reached
            return {**partial, "failed": failed}
    if proc.returncode or not out.exists():
        return {"failed": f"failed: exit status {proc.returncode}: {_tail(log)}"}
    doc: dict[str, Any] = json.loads(out.read_text())
    doc["process_seconds"] = round(time.perf_counter() - started, 1)
    return doc


def run_index_bench(timeout: float) -> dict[str, Any] | None:
    """``bench/index_bench.py`` (the HTTP index's own benchmark, another engineer's), if present."""
    if not (HERE / "index_bench.py").exists():
        return None
    started = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "bench.index_bench"], cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"failed": f"failed: time cap {timeout:.0f} s"}
    doc: dict[str, Any] = {
        "exit_status": proc.returncode, "seconds": round(time.perf_counter() - started, 1)}
    if proc.stdout.strip():
        print(proc.stdout.rstrip())
    if proc.returncode:
        doc["failed"] = "failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1][:300]
    elif (HERE / "index_results.json").exists():  # the row-level API's latencies
        tabular = json.loads((HERE / "index_results.json").read_text()).get("tabular")
        if tabular:
            doc["tabular"] = tabular
    return doc


# ------------------------------------------------------------------------------ main


def default_mem_gib() -> float:
    """12 GiB, or 60% of the machine's memory if that is less: x100 needs about 6.5 GiB of
    resident memory (and more address space) with today's whole-file validate."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(min(12.0, 0.6 * int(line.split()[1]) / 1024**2), 1)
    except OSError:
        pass
    return 6.0


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="skip x100 and the peer's long runs (about 2 minutes)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions of the cheap workloads (3)")
    ap.add_argument("--peer-cap", type=float, default=120.0,
                    help="seconds Frictionless may run on one file (120; --quick: 30)")
    ap.add_argument("--mem-gib", type=float, default=default_mem_gib(),
                    help="address-space (RLIMIT_AS) cap of each child process, GiB: a guard for "
                         "the machine, not the target (default: 12, at most 60%% of the RAM)")
    ap.add_argument("--x100-timeout", type=float, default=300.0,
                    help="seconds allowed to each opendepot child on x100 (300)")
    ap.add_argument("--out", type=Path, default=HERE / "results.json")
    ap.add_argument("--profile-out", type=Path, default=HERE / "profile.txt")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--no-index", action="store_true", help="do not run bench/index_bench.py")
    ap.add_argument("--peers-only", action="store_true",
                    help="only issue 17's comparison: opendepot on the file store, DuckDB with "
                         "its checks, Polars, and the cold start (no moto, floor, Frictionless, "
                         "server stack, increment, history, index bench)")
    ap.add_argument("--no-cold-start", action="store_true",
                    help="do not measure the functions' cold start and package size")
    ap.add_argument("--no-history", action="store_true", help="do not run bench/history.py")
    ap.add_argument("--history-timeout", type=float, default=3600.0,
                    help="seconds allowed to the history workload (3600)")
    ap.add_argument("--keep", action="store_true", help="keep the temp directory (workloads, logs)")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.quick:
        args.peer_cap = min(args.peer_cap, 30.0)
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="opendepot-bench-"))

    def say(text: str) -> None:
        if not args.quiet:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()

    run = Runner(tmp, args.mem_gib, not args.quiet)
    results: dict[str, Any] = {
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "quick": args.quick,
        "peers_only": args.peers_only,
        "machine": machine(),
        "settings": {
            "repetitions": args.reps, "peer_cap_seconds": args.peer_cap,
            "child_address_space_gib": args.mem_gib,
            "aws_request_checksum_calculation": CHECKSUMS,
            "opendepot_seconds": "validate handler + publish handler, each timed around the "
                                 "lambda_handler call in its own child process, moto in process",
            "storage_seconds": "time inside the storage port's S3 calls (get, get_file, put, "
                               "head, list, copy) during the handler; get_file includes what the "
                               "caller does with each chunk it writes (validate hashes the upload "
                               "with SHA-256 on the way); opendepot_seconds_without_storage "
                               "subtracts it",
            "peak_rss_mib": "VmHWM while the handler ran (reset just before it; includes the "
                            "interpreter, libraries and moto, and moto's in-process copies of the "
                            "objects: moto reads a whole object into memory to serve a GET and "
                            "holds each PUT body, e.g. about 430 MB for the x100 CSV); the "
                            "largest over the repetitions",
            "peak_rss_mib_file_store": "VmHWM while the handler ran, measured as peak_rss_mib "
                                       "but with the same validate / publish handler code over "
                                       "bench.filestore.DirectoryStore (a local directory, "
                                       "bodies streamed in 8 MiB chunks both ways) and an "
                                       "in-memory publish queue instead of moto, which is not "
                                       "imported: moto's in-process copies of the objects are "
                                       "excluded, so this is opendepot's own memory (interpreter "
                                       "and libraries included, see "
                                       "baseline_rss_mib_file_store); one run after the moto "
                                       "repetitions",
            "seconds_file_store": "the handler call's seconds over the directory store, same run "
                                  "(storage_seconds_file_store: time inside its methods, local "
                                  "disk and page cache)",
            "floor": "pyarrow.csv.read_csv with the registry's types (dep string, sexe int64, jour "
                     "date32, counts int64) + one Parquet (zstd) + one CSV (;) write, in memory",
            "floor_same_outputs_seconds": "pyarrow alone making what opendepot publishes, without "
                                          "any check: read, stage as Parquet and read back, sort "
                                          "by the key, roll up to regions and the nation, write "
                                          "three levels as CSV and Parquet, in memory",
            "peer": "frictionless Resource.validate with the registry's Table Schema minus "
                    "opendepot's keys (dateFormats, optional), time-capped",
            "opendepot_file_store_seconds": "validate + publish handlers over the directory "
                                            "store (no moto), each in its own child process; "
                                            "median over the repetitions (issue 17's figure)",
            "duckdb_checked": "DuckDB (bench.peers.duckdb_publish): typed read, the core checks "
                              "in SQL, then the same six files as opendepot (dep, reg, fra; "
                              "Parquet zstd and ; CSV, sorted by key); child processes like "
                              "opendepot's",
            "polars": "Polars (bench.peers.polars_publish): the same six files, no checks",
            "ratio_to_duckdb_checked": "opendepot_file_store_seconds / DuckDB's median seconds",
            "ratio_to_polars": "opendepot_file_store_seconds / Polars's median seconds",
            "same_rows": "bench.peers.compare: digests of every published row, each level, both "
                         "formats, of the three tools (first repetition)",
            "cold_start": "bench.coldstart.measure: each handler module imported in a fresh "
                          "interpreter (median of the repetitions) and -X importtime by package",
            "package_size": "bench.coldstart.package_sizes: installed size of opendepot and its "
                            "runtime dependencies (what_counts says what is counted)",
        },
    }
    try:
        say(f"workloads in {tmp}")
        grid = workloads.read_grid()
        t = time.perf_counter()
        x10 = tmp / "x10" / workloads.REAL_FILE.name
        x10.parent.mkdir()
        n10 = workloads.write_scaled(x10, 10, grid)
        items = [
            Workload("real", workloads.REAL_FILE, grid.rows_per_period, args.reps, args.reps,
                     args.peer_cap, 120.0),
            Workload("x10", x10, n10, args.reps, 1, args.peer_cap, 240.0),
        ]
        if not args.quick:
            x100 = tmp / "x100" / workloads.REAL_FILE.name
            x100.parent.mkdir()
            n100 = workloads.write_scaled(x100, 100, grid)
            items.append(Workload("x100", x100, n100, 1, 1, min(args.peer_cap, 60.0),
                                  args.x100_timeout))
        results["generation_seconds"] = round(time.perf_counter() - t, 1)
        say(f"generated in {results['generation_seconds']} s: "
            + ", ".join(f"{w.name} {w.rows:,} rows {w.path.stat().st_size / 1e6:.0f} MB"
                        for w in items))
        results["workloads"] = []
        for w in items:
            c = measure(w, run, tmp, server_reps=args.reps if w.name == "real" else 0,
                        peers_only=args.peers_only)
            line = summarise_peers_only(w, c) if args.peers_only else summarise(w, c)
            results["workloads"].append(line)
            if line["same_rows"].get("equal") is False:  # loud, at once and in the table
                say(f"!!! {w.name}: opendepot, DuckDB and Polars did NOT publish the same rows: "
                    + "; ".join(line["same_rows"]["mismatches"][:6]))
        if not args.no_cold_start:
            from bench import coldstart

            say("cold start: each function's handler module imported in a fresh interpreter ...")
            results["cold_start"] = coldstart.measure(reps=args.reps)
            results["package_size"] = coldstart.package_sizes()
        if not args.peers_only:
            inc = measure_increment(run, tmp, args.reps)
            results["increment"] = inc
            results["increment_seconds"] = inc["increment_seconds"]
        if not args.no_history and not args.peers_only:
            say("history workload (daily uploads; bench.history) ...")
            results["history"] = run_history(args.quick, tmp, args.history_timeout)
            h = results["history"]
            say(f"  {h['failed']}" if h.get("failed") else f"  {h['process_seconds']} s")
        if not args.no_profile and not args.peers_only:
            p = run("profile", "--file", str(x10), "--out", str(args.profile_out), timeout=300,
                    label="profile x10 (cProfile)")
            out_path = args.profile_out
            shown = str(out_path.relative_to(ROOT) if out_path.is_relative_to(ROOT) else out_path)
            results["profile"] = ({"path": shown,
                                   **{k: _r(v) for k, v in p.doc.items() if k.endswith("_seconds")}}
                                  if not p.failed else {"failed": p.failed})
        results["targets"] = targets(results)
        results["machine"]["load_average_at_end"] = list(os.getloadavg())
        results["bench_seconds"] = round(time.perf_counter() - started, 1)
        args.out.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
        print(table(results))
        print(f"\n{args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out} "
              f"written in {results['bench_seconds']:.0f} s"
              + (f"; profile in {args.profile_out.name}"
                 if not (args.no_profile or args.peers_only) else ""))
        if not args.no_index and not args.peers_only:
            index = run_index_bench(timeout=300)
            if index is not None:
                results["index_bench"] = index
                args.out.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    finally:
        if args.keep:
            say(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
