"""The history workload (``python -m bench.history [--quick]``, also run by ``make bench``):
does the cost of publishing one more daily upload grow with the dataset's age?

Two datasets receive one upload a day, each validated (``opendepot.ingest``) and published
(``opendepot.publication.publish_dataset``), the public functions the handlers call, over the
bench's directory store (``bench.filestore.DirectoryStore``) wrapped in ``CountingStore``, which
counts the storage calls by kind (``list``, ``get`` (``get`` and ``get_file``), ``head``,
``put``, ``copy``, ``delete``):

- ``append``: ``chiffres-cles`` (append mode), producer ``ministere-sante``, whose rows in the
  real OpenCOVID19-fr build of 2020-10-31 (``APPEND_SOURCE``) cover 268 days (2020-01-24 ..
  2020-10-30, 1 to 9 rows a day). Upload ``k`` is the producer's rows of its ``k``-th day (in
  date order), as the real file writes them, a CSV named after the day. Past the 268th upload,
  the days are re-sent with their dates shifted by whole cycles of the real date range (281
  days), so the published table keeps growing by one real day per upload;
- ``snapshot``: ``donnees-hospitalieres-groupees-covid19`` (snapshot mode), producer ``spf``,
  whose daily upload is the producer's full file: the real file (``SNAPSHOT_SOURCE``, 216 days),
  re-sent every day with one more figure revised (upload ``k`` adds 1 to ``hosp`` of data row
  ``k mod 216``, so consecutive uploads differ by exactly one cell). Every upload has the same
  size: what changes with ``N`` is the history only. The file is small on purpose: the work
  that does not depend on the history (reading, rendering a version) stays small beside the
  work that might, so a cost growing with ``N`` shows in the ratio; a 110,000-row file would
  hide it and make 1,000 publications last an hour.

The history is built once per mode, incrementally, the two modes advancing together: for each
checkpoint ``N`` (10, 100, 1,000; ``--quick``: 10 and 100), the uploads up to ``N`` are validated
and published one a day (the clock moves one day per upload) and the history is kept as it is
then (its store's directory copied; the last checkpoint keeps the history itself). Then come
``reps`` rounds; in each, every checkpoint's history validates and publishes its next upload
with the calls counted and the publish timed (``N + 1`` in the first round, ``N + 2`` in the
next...), the checkpoints taken in turn (in reverse order every other round). Interleaved so,
the checkpoints share whatever else the machine runs meanwhile: measured one after the other,
a busy minute during N = 1,000 alone would be read as growth. Reported per mode and
``N``: the median publish seconds (and each repetition's), and the median CPU seconds of the
publish (``publish_cpu_seconds``: every thread of the process, so what else the machine runs
moves it far less than the wall time); of the repetition whose time is the
median (``upload``: which one), the storage calls by kind and total (with bytes read), the same
for its validate step (``ingest``), the rows of each published table, the manifest's size in
bytes and the upload index's (``index/{dataset}.json``, its shards of folded keys aside); and
the seconds spent building the history. With ``--out``, the section is written after each round,
so a run stopped by a time cap keeps the rounds it finished.
``publish_ratio_1000_to_10`` (and ``publish_cpu_ratio_1000_to_10`` on CPU seconds,
``calls_ratio_1000_to_10`` on total calls) is the larger of the two modes' ratios
(``ratios_1000_to_10_by_mode``: each mode's); ``*_100_to_10`` the same at 100 (the ratios are
to the first checkpoint; ``publish_ratio_1000_to_10`` is None when 1,000 was not measured).
Figures are reported, never asserted.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from bench.filestore import DirectoryStore
from opendepot import layout
from opendepot.config import Settings
from opendepot.ingest import ObjectEvent, ingest
from opendepot.publication import publish_dataset
from opendepot.registry import Cog, Registry, load_cog, load_registry
from opendepot.storage import Body, MemoryQueue, ObjectInfo, Store

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT.parent / "shared" / "data" / "real"
APPEND_SOURCE = REAL / "opencovid19-fr" / "dist" / "2020-10-31_9c91c00" / "chiffres-cles.csv"
SNAPSHOT_SOURCE = (REAL / "donnees-hospitalieres-groupees-covid19"
                   / "donnees-hospitalieres-groupees-covid19-2020-10-19-19h00.csv")
APPEND = ("chiffres-cles", "ministere-sante")
SNAPSHOT = ("donnees-hospitalieres-groupees-covid19", "spf")
CHECKPOINTS = (10, 100, 1000)
QUICK_CHECKPOINTS = (10, 100)
REPS = 3
KINDS = ("list", "get", "head", "put", "copy", "delete")
START = datetime(2021, 1, 1, 19, 0, tzinfo=UTC)
"""The first upload's time; each next upload comes one day later."""


class CountingStore:
    """A ``Store`` that counts the calls made to the store it wraps, by kind (``KINDS``;
    ``get_file`` counts as ``get``), and the bytes ``get`` and ``get_file`` return. Safe with
    concurrent callers (a publication copies files on several threads)."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self.bytes_read = 0
        self._lock = threading.Lock()

    def _count(self, kind: str, read: int = 0) -> None:
        with self._lock:
            self.calls[kind] += 1
            self.bytes_read += read

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.bytes_read = 0

    def snapshot(self) -> dict[str, int]:
        """Calls by kind (every kind, 0 included), ``total`` and ``bytes_read``."""
        with self._lock:
            out = {k: self.calls[k] for k in KINDS}
            out["total"] = sum(self.calls.values())
            out["bytes_read"] = self.bytes_read
            return out

    def get(self, bucket: str, key: str, *, version_id: str | None = None) -> bytes:
        body = self.inner.get(bucket, key, version_id=version_id)
        self._count("get", len(body))
        return body

    def get_file(
        self, bucket: str, key: str, out: BinaryIO, *, version_id: str | None = None
    ) -> int:
        size = self.inner.get_file(bucket, key, out, version_id=version_id)
        self._count("get", size)
        return size

    def head(self, bucket: str, key: str, *, version_id: str | None = None) -> ObjectInfo | None:
        self._count("head")
        return self.inner.head(bucket, key, version_id=version_id)

    def put(self, bucket: str, key: str, body: Body, content_type: str, *,
            if_match: str | None = None, if_none_match: bool = False,
            cache_control: str | None = None) -> str:
        self._count("put")
        return self.inner.put(bucket, key, body, content_type, if_match=if_match,
                              if_none_match=if_none_match, cache_control=cache_control)

    def copy(self, bucket: str, src_key: str, dst_key: str, *,
             cache_control: str | None = None) -> None:
        self._count("copy")
        self.inner.copy(bucket, src_key, dst_key, cache_control=cache_control)

    def list(self, bucket: str, prefix: str) -> list[ObjectInfo]:
        self._count("list")
        return self.inner.list(bucket, prefix)

    def delete(self, bucket: str, key: str, *, version_id: str | None = None) -> None:
        self._count("delete")
        self.inner.delete(bucket, key, version_id=version_id)


# ------------------------------------------------------------------------------ uploads


@dataclass(frozen=True)
class Upload:
    """One daily upload: its key in the incoming bucket, its bytes, its data rows."""

    key: str
    body: bytes
    rows: int


@dataclass(frozen=True)
class Series:
    """A dataset's daily uploads: ``upload(k)`` is the ``k``-th (0-based)."""

    mode: str
    dataset: str
    producer: str
    source: Path
    upload: Callable[[int], Upload]
    note: str


def _csv_bytes(header: Sequence[str], rows: Sequence[Sequence[str]]) -> bytes:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")  # the real file's dialect: comma, CRLF
    w.writerow(header)
    w.writerows(rows)
    return out.getvalue().encode("utf-8")


def append_days(path: Path = APPEND_SOURCE, producer: str = APPEND[1]
                ) -> tuple[list[str], list[tuple[date, list[list[str]]]]]:
    """The real chiffres-cles file's header and its rows of ``producer`` (``source_type``),
    grouped by day in date order (each day's rows in the file's order)."""
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        col, when = header.index("source_type"), header.index("date")
        by_day: dict[str, list[list[str]]] = {}
        for row in reader:
            if row and row[col] == producer:
                by_day.setdefault(row[when], []).append(row)
    return header, [(date.fromisoformat(d), by_day[d]) for d in sorted(by_day)]


def append_series(path: Path = APPEND_SOURCE) -> Series:
    dataset, producer = APPEND
    header, days = append_days(path, producer)
    when = header.index("date")
    span = (days[-1][0] - days[0][0]).days + 1

    def upload(k: int) -> Upload:
        cycle, i = divmod(k, len(days))
        day = days[i][0] + timedelta(days=cycle * span)
        rows = [[*r[:when], day.isoformat(), *r[when + 1:]] for r in days[i][1]]
        return Upload(f"{dataset}/{producer}/{day.isoformat()}.csv", _csv_bytes(header, rows),
                      len(rows))

    note = (f"{path.relative_to(REAL)}: the rows of source_type {producer}, {len(days)} days "
            f"({days[0][0]} .. {days[-1][0]}); upload k = the k-th day, dates shifted by "
            f"{span} days per cycle past the last")
    return Series("append", dataset, producer, path, upload, note)


def snapshot_series(path: Path = SNAPSHOT_SOURCE) -> Series:
    dataset, producer = SNAPSHOT
    lines = path.read_bytes().splitlines()
    header = lines[0].decode().split(";")
    data = [line.decode().split(";") for line in lines[1:] if line]
    col = header.index("hosp")

    def upload(k: int) -> Upload:
        rows = [list(r) for r in data]
        for i, r in enumerate(rows):  # row i was revised once per upload j <= k, j = i mod len
            revisions = (k - i) // len(rows) + 1 if k >= i else 0
            r[col] = str(int(r[col]) + revisions)
        body = "\n".join(";".join(r) for r in [header, *rows]) + "\n"
        return Upload(f"{dataset}/{producer}/{path.name}", body.encode("utf-8"), len(rows))

    note = (f"{path.relative_to(REAL)}: the producer's full file ({len(data)} rows) every day, "
            f"upload k with hosp of data row (k mod {len(data)}) one more than the day before")
    return Series("snapshot", dataset, producer, path, upload, note)


# ------------------------------------------------------------------------------ running


@dataclass
class History:
    """One dataset's store and clock, uploads validated and published one a day."""

    series: Series
    store: CountingStore
    settings: Settings
    registry: Registry
    cog: Cog
    queue: MemoryQueue = field(default_factory=MemoryQueue)
    count: int = 0
    """Uploads validated and published so far."""

    def _now(self) -> datetime:
        return START + timedelta(days=self.count)

    def validate(self) -> tuple[Upload, str, float]:
        """Validate the next upload (``ingest``); (upload, status, seconds)."""
        up = self.series.upload(self.count)
        bucket = self.settings.incoming_bucket
        etag = self.store.inner.put(bucket, up.key, up.body, "text/csv")  # the producer's put
        event = ObjectEvent(bucket=bucket, key=up.key, size=len(up.body), etag=etag,
                            version_id=None, sequencer=f"{self.count + 1:016X}",
                            event_time=self._now())
        started = time.perf_counter()
        out = ingest(self.store, self.queue, self.settings, self.registry, self.cog, event)
        return up, out.status, time.perf_counter() - started

    def publish(self) -> tuple[Any, float, float]:
        """Publish the dataset (``publish_dataset``) a few minutes after the upload; the day
        is done. (outcome, wall seconds, CPU seconds of this process: every thread's, so the
        figure does not move with what else the machine runs)."""
        ds = self.registry.get(self.series.dataset)
        assert ds is not None, self.series.dataset
        now = self._now() + timedelta(minutes=5)
        started, cpu = time.perf_counter(), time.process_time()
        out = publish_dataset(self.store, self.settings, self.registry, self.cog, ds, now)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        self.count += 1
        return out, seconds, cpu

    def day(self) -> None:
        """One upload validated and published, nothing measured."""
        up, status, _ = self.validate()
        if status != "accepted":
            raise RuntimeError(f"{up.key} (upload {self.count + 1}): {status}")
        self.publish()

    def copy(self, root: Path) -> History:
        """This history as it is now, its store copied to the directory ``root`` (new): the copy
        goes on from the same day, independently."""
        inner = self.store.inner
        assert isinstance(inner, DirectoryStore)
        shutil.copytree(inner.root, root)
        return replace(self, store=CountingStore(DirectoryStore(root)), queue=MemoryQueue())

    def manifest_bytes(self) -> int | None:
        info = self.store.inner.head(self.settings.published_bucket,
                                     layout.manifest_key(self.series.dataset))
        return None if info is None else info.size

    def index_bytes(self) -> int | None:
        """Size of the dataset's upload index (``index/{dataset}.json``; its shards of folded
        keys aside)."""
        info = self.store.inner.head(self.settings.internal_bucket,
                                     layout.upload_index_key(self.series.dataset))
        return None if info is None else info.size


def measure_once(h: History) -> dict[str, Any]:
    """Validate then publish the next upload, counting each step's storage calls."""
    h.store.reset()
    up, status, v_seconds = h.validate()
    v_calls = h.store.snapshot()
    h.store.reset()
    out, p_seconds, p_cpu = h.publish()
    return {"upload": h.count, "status": status, "upload_rows": up.rows, "created": out.created,
            "publish_seconds": p_seconds, "publish_cpu_seconds": p_cpu,
            "publish_calls": h.store.snapshot(),
            "validate_seconds": v_seconds, "validate_calls": v_calls, "rows": dict(out.rows),
            "manifest_bytes": h.manifest_bytes(), "index_bytes": h.index_bytes()}


def point(n: int, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One checkpoint's figures from its repetitions: medians, and the calls of the repetition
    whose publish time is the median."""
    by_time = sorted(runs, key=lambda r: r["publish_seconds"])
    mid = by_time[(len(by_time) - 1) // 2]
    return {
        "n": n,
        "upload": mid["upload"],
        "publish_seconds": round(statistics.median(r["publish_seconds"] for r in runs), 4),
        "publish_seconds_each": [round(r["publish_seconds"], 4) for r in runs],
        "publish_cpu_seconds": round(statistics.median(r["publish_cpu_seconds"] for r in runs), 4),
        "calls": mid["publish_calls"],
        "calls_each": [r["publish_calls"]["total"] for r in runs],
        "validate_seconds": round(statistics.median(r["validate_seconds"] for r in runs), 4),
        "validate_calls": mid["validate_calls"],
        "rows": mid["rows"],
        "manifest_bytes": mid["manifest_bytes"],
        "index_bytes": mid["index_bytes"],
        "uploads_measured": [r["upload"] for r in runs],
        "all_created": all(r["created"] and r["status"] == "accepted" for r in runs),
    }


@dataclass
class Mode:
    """One mode's history: built once, a copy kept at each checkpoint, then measured."""

    history: History
    """The history being built (it ends at the last checkpoint)."""
    at: dict[int, History] = field(default_factory=dict)
    """Checkpoint N -> the history as it was after N uploads (a copy, but for the last)."""
    runs: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    points: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    build_seconds: float = 0.0

    def build(self, n: int, copy_to: Path | None) -> None:
        """Build the history up to ``n`` uploads and keep it as checkpoint ``n``: a copy in
        ``copy_to`` (None: the history itself, which must then not be built further)."""
        started = time.perf_counter()
        h = self.history
        while h.count < n:
            h.day()
        self.at[n] = h if copy_to is None else h.copy(copy_to)
        self.runs[n] = []
        elapsed = time.perf_counter() - started
        self.build_seconds += elapsed
        self.seconds += elapsed

    def measure(self, n: int) -> dict[str, Any]:
        """One more measured upload at checkpoint ``n``; the checkpoint's figures so far."""
        started = time.perf_counter()
        self.runs[n].append(measure_once(self.at[n]))
        self.points[str(n)] = point(n, self.runs[n])
        self.seconds += time.perf_counter() - started
        return self.points[str(n)]

    def doc(self) -> dict[str, Any]:
        s = self.history.series
        return {"dataset": s.dataset, "producer": s.producer, "source": s.note,
                "uploads": self.history.count, "points": dict(self.points),
                "build_seconds": round(self.build_seconds, 1), "seconds": round(self.seconds, 1)}


def _mode(series: Series, root: Path) -> Mode:
    return Mode(History(series, CountingStore(DirectoryStore(root)),
                        Settings(publish_queue_url="memory://publish.fifo"), load_registry(),
                        load_cog()))


def ratios(modes: dict[str, Any], n: int, base: int = 10) -> tuple[float | None, float | None,
                                                                    dict[str, Any]]:
    """The larger of the modes' publish-time and total-call ratios of ``n`` to ``base``, and
    each mode's."""
    each: dict[str, Any] = {}
    for mode, doc in modes.items():
        a, b = doc["points"].get(str(base)), doc["points"].get(str(n))
        if a and b and a["publish_seconds"] and a["calls"]["total"]:
            each[mode] = {"publish": round(b["publish_seconds"] / a["publish_seconds"], 2),
                          "calls": round(b["calls"]["total"] / a["calls"]["total"], 2)}
            if a.get("publish_cpu_seconds") and b.get("publish_cpu_seconds"):
                each[mode]["publish_cpu"] = round(
                    b["publish_cpu_seconds"] / a["publish_cpu_seconds"], 2)
    if len(each) < len(modes) or not each:
        return None, None, each
    return (max(e["publish"] for e in each.values()), max(e["calls"] for e in each.values()),
            each)


def run(checkpoints: Sequence[int] = CHECKPOINTS, reps: int = REPS, *,
        tmp: Path | None = None, say: Callable[[str], None] = lambda _s: None,
        progress: Callable[[dict[str, Any]], None] = lambda _d: None) -> dict[str, Any]:
    """The history workload for both modes; the ``history`` section of ``results.json``. The
    modes advance together, checkpoint by checkpoint; ``progress`` gets the section as it is
    after each (so a run stopped by a time cap still gives the checkpoints it reached)."""
    started = time.perf_counter()
    load = [round(x, 2) for x in os.getloadavg()]
    top = Path(tempfile.mkdtemp(prefix="opendepot-history-", dir=tmp))
    doc: dict[str, Any] = {
        "checkpoints": list(checkpoints), "repetitions": reps,
        "store": "bench.filestore.DirectoryStore (local directory), calls counted by kind",
    }
    try:
        modes = [_mode(s, top / s.mode) for s in (append_series(), snapshot_series())]
        for n in checkpoints:
            for m in modes:
                last = n == checkpoints[-1]
                m.build(n, None if last else top / f"{m.history.series.mode}-{n}")
                say(f"  {m.history.series.mode}: N={n} built "
                    f"({time.perf_counter() - started:.0f} s so far)")
        for rep in range(reps):  # interleaved: every checkpoint shares the machine's moods
            for n in checkpoints if rep % 2 == 0 else checkpoints[::-1]:
                for m in modes:
                    m.measure(n)
            _summary(doc, {m.history.series.mode: m.doc() for m in modes}, started, load)
            progress(doc)
        for m in modes:
            for n in checkpoints:
                p = m.points[str(n)]
                say(f"  {m.history.series.mode} N={n}: publish {p['publish_seconds']:.3f} s "
                    f"(CPU {p['publish_cpu_seconds']:.3f} s), {p['calls']['total']} storage "
                    f"calls, manifest {p['manifest_bytes']} bytes")
    finally:
        shutil.rmtree(top, ignore_errors=True)
    return doc


def _summary(doc: dict[str, Any], modes: dict[str, Any], started: float,
             load: list[float]) -> None:
    """``doc`` with the modes' figures and the ratios of each checkpoint to the first."""
    doc["modes"] = modes
    checkpoints = doc["checkpoints"]
    base = checkpoints[0]
    for n in checkpoints[1:]:
        publish, calls, each = ratios(modes, n, base)
        doc[f"publish_ratio_{n}_to_{base}"] = publish
        doc[f"calls_ratio_{n}_to_{base}"] = calls
        doc[f"ratios_{n}_to_{base}_by_mode"] = each
        cpu = [e["publish_cpu"] for e in each.values() if "publish_cpu" in e]
        doc[f"publish_cpu_ratio_{n}_to_{base}"] = max(cpu) if len(cpu) == len(each) and cpu \
            else None
    doc.setdefault("publish_ratio_1000_to_10", None)
    doc.setdefault("calls_ratio_1000_to_10", None)
    doc["load_average"] = {"start": load, "end": [round(x, 2) for x in os.getloadavg()]}
    doc["seconds"] = round(time.perf_counter() - started, 1)


# ------------------------------------------------------------------------------ report


def _rows(rows: dict[str, int]) -> str:
    return " ".join(f"{k}={v}" for k, v in rows.items())


def table(doc: dict[str, Any]) -> str:
    """The history section of the bench's printed table."""
    if not doc.get("modes"):
        return f"history: {doc.get('failed', 'not measured')}"
    out = ["history: publish of upload N+1 after N daily uploads (median of "
           f"{doc['repetitions']}; file store; calls, rows, manifest of the median run)"]
    if doc.get("failed"):
        out.append(f"history: {doc['failed']}; the checkpoints reached:")
    head = ["mode", "N", "publish s", "cpu s", "calls", "list/get/head/put/copy/del", "read KB",
            "validate s", "v. calls", "manifest KB", "index KB", "rows"]
    lines = []
    for mode, m in doc["modes"].items():
        for n, p in m["points"].items():
            c = p["calls"]
            lines.append([mode, n, f"{p['publish_seconds']:.3f}",
                          f"{p.get('publish_cpu_seconds', 0):.3f}", str(c["total"]),
                          "/".join(str(c[k]) for k in KINDS), f"{c['bytes_read'] / 1e3:.0f}",
                          f"{p['validate_seconds']:.3f}", str(p["validate_calls"]["total"]),
                          f"{(p['manifest_bytes'] or 0) / 1e3:.1f}",
                          f"{(p.get('index_bytes') or 0) / 1e3:.1f}", _rows(p["rows"])])
    widths = [max(len(h), *(len(r[i]) for r in lines)) for i, h in enumerate(head)]
    out.append("  ".join(h.ljust(widths[i]) for i, h in enumerate(head)))
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(widths[i]) for i, c in enumerate(r)) for r in lines]
    ratio = [f"{k} = {v}" for k, v in doc.items()
             if k.startswith(("publish_ratio_", "publish_cpu_ratio_", "calls_ratio_"))
             and v is not None]
    if ratio:
        out.append("ratios (larger of the two modes): " + ", ".join(ratio))
    for mode, m in doc["modes"].items():
        out.append(f"{mode}: {m['dataset']} / {m['producer']}, {m['uploads']} uploads in "
                   f"{m['seconds']:.0f} s; {m['source']}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.history", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="stop at N = 100")
    ap.add_argument("--checkpoints", type=lambda s: [int(x) for x in s.split(",")],
                    help="comma-separated N (default 10,100,1000)")
    ap.add_argument("--reps", type=int, default=REPS, help=f"publishes measured per N ({REPS})")
    ap.add_argument("--out", type=Path, help="write the history section as JSON to this file")
    ap.add_argument("--tmp", type=Path, help="directory for the stores (default: the system's)")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    args = ap.parse_args(argv)
    checkpoints = args.checkpoints or (QUICK_CHECKPOINTS if args.quick else CHECKPOINTS)

    def say(text: str) -> None:
        if not args.quiet:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()

    def write(doc: dict[str, Any]) -> None:
        doc["quick"] = args.quick
        if args.out:
            args.out.write_text(json.dumps(doc, indent=1) + "\n")

    doc = run(checkpoints, args.reps, tmp=args.tmp, say=say, progress=write)
    print(table(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
