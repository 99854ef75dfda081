"""``opendepot demo``: the whole pipeline on this machine, the way a producer and a reuser see it.

1. Start the local stack (moto as S3 and SQS with the buckets and queues of ``template.yaml``)
   and the HTTP index on ``--port``.
2. Find the input files: ``--data``; else every real file of ``../shared/data/real/`` beside
   the checkout, each under the dataset and producer that ``infra/real_sources/*.json`` give it
   (only ``--dataset``'s folder when one is named); else a generated sample (said on screen).
3. Drop each file into ``s3://INCOMING/{dataset}/{producer}/{name}``, oldest publication first,
   and pump the queues into the validate and publish functions after each drop.
4. Print what happened to each file (from its validation report), then the published dataset
   (from its manifest) and ``curl`` lines to try.
5. Keep serving (and pumping new uploads) until Ctrl-C, or exit with ``--once``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.stack import DEFAULT_TEMPLATE, REPO_ROOT, LocalStack, TemplateError

DATE = re.compile(r"(\d{4}-\d{2}-\d{2})")


@dataclass(frozen=True)
class DemoOptions:
    """What ``opendepot demo`` was asked."""

    data: Path | None = None
    """A CSV file or a folder; None: the default folder, else the sample."""
    port: int = 8080
    """Port of the HTTP index (0: a free port)."""
    once: bool = False
    """Exit after publishing instead of serving."""
    dataset: str | None = None
    """Dataset slug: first segment of the incoming keys (None: every real dataset)."""
    producer: str = "spf"
    """Producer id: second segment of the incoming keys."""
    moto_port: int = 0
    """Port of the moto server (0: a free port)."""
    verbose: bool = False
    """Show the functions' logs and the HTTP access log."""
    template: Path = DEFAULT_TEMPLATE
    """The SAM template the local stack mirrors."""


@dataclass(frozen=True)
class InputFile:
    """One file to drop."""

    path: Path | None
    """Where it is read from (None for a generated sample)."""
    name: str
    """File name in the incoming key (unique in this run)."""
    date: str | None
    """Publication date found in its name or folders (``YYYY-MM-DD``)."""
    body: bytes | None = None
    """Content of a generated file."""
    dataset: str | None = None
    """Dataset it goes to (None: the one given by --dataset)."""
    producer: str | None = None
    """Producer that drops it (None: --producer)."""

    def read(self) -> bytes:
        if self.body is not None:
            return self.body
        assert self.path is not None
        return self.path.read_bytes()

    @property
    def size(self) -> int:
        return (
            len(self.body)
            if self.body is not None
            else (self.path.stat().st_size if self.path else 0)
        )


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


# ------------------------------------------------------------------------------ input files


def default_data_candidates(dataset: str) -> list[Path]:
    """Where the real files may be: beside the checkout (from this package), then from the CWD."""
    rel = Path("shared") / "data" / "real" / dataset
    cwd = Path.cwd()
    out: list[Path] = []
    for base in (REPO_ROOT.parent, cwd.parent, cwd, cwd.parent.parent):
        p = (base / rel).resolve()
        if p not in out:
            out.append(p)
    return out


def publication_date(path: Path) -> str | None:
    """The first ``YYYY-MM-DD`` in the file name, else in the nearest parent folder that has one."""
    for part in (path.name, *(p.name for p in path.parents)):
        m = DATE.search(part)
        if m:
            return m.group(1)
    return None


def unique_names(paths: list[Path]) -> dict[Path, str]:
    """A file name per path; names shared by several files get their parent folders as prefix
    (``2020-03-24_2c1018e-covid_hospit.csv``), as many as needed to tell them apart."""
    names = {p: p.name for p in paths}
    depth = 1
    while True:
        counts: dict[str, int] = {}
        for n in names.values():
            counts[n] = counts.get(n, 0) + 1
        clashes = [p for p, n in names.items() if counts[n] > 1]
        if not clashes:
            return names
        for p in clashes:
            parents = [q.name for q in p.parents][:depth][::-1]
            if len(parents) < depth:  # no more folders to tell them apart: use the whole path
                parents = [str(p.parent).strip("/").replace("/", "-")]
            names[p] = "-".join([*parents, p.name])
        depth += 1
        if depth > 64:
            raise ValueError("cannot make file names unique")


def collect_files(root: Path) -> list[InputFile]:
    """Every ``*.csv`` under ``root`` (or ``root`` itself), oldest publication first."""
    paths = (
        [root]
        if root.is_file()
        else [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() == ".csv"]
    )
    dates = {
        p: publication_date(p.relative_to(root) if root.is_dir() else Path(p.name)) for p in paths
    }
    ordered = sorted(paths, key=lambda p: (dates[p] is None, dates[p] or "", str(p)))
    names = unique_names(ordered)
    return [InputFile(p, names[p], dates[p]) for p in ordered]


SOURCES_DIR = Path(__file__).resolve().parent / "real_sources"
NOT_INPUTS = ("SOURCES.md", "cog-insee/", "metadonnees-spf/")
"""Files under ../shared/data/real that are references or documentation, not producer uploads."""


def real_sources() -> list[dict[str, str]]:
    """The glob -> (dataset, producer) entries of ``infra/real_sources/*.json``, in file order."""
    out: list[dict[str, str]] = []
    for f in sorted(SOURCES_DIR.glob("*.json")):
        out.extend(json.loads(f.read_text("utf-8")))
    return out


def real_root_candidates() -> list[Path]:
    """Where ``shared/data/real`` may be: beside the checkout, then from the CWD."""
    return [p.parent for p in default_data_candidates("x")]


def awaiting_real(root: Path) -> list[tuple[Path, str]]:
    """Real files kept out of the demo on purpose, each with why: the entries of
    ``infra/real_sources/*.json`` whose ``dataset`` is null (data whose dataset is not declared
    yet; its ``awaiting`` text says which and where it is tracked)."""
    out: list[tuple[Path, str]] = []
    for entry in real_sources():
        if entry.get("dataset") is None:
            out.extend((p, entry["awaiting"]) for p in sorted(root.glob(entry["glob"])) if p.is_file())
    return out


def collect_real(root: Path) -> tuple[list[InputFile], list[str]]:
    """Every real file mapped to a dataset and producer, oldest publication first; and the
    relative paths of the files no mapping covers (references excluded)."""
    assigned: dict[Path, tuple[str, str]] = {}
    waiting = {p for p, _ in awaiting_real(root)}
    for entry in real_sources():
        if entry.get("dataset") is None:
            continue  # awaiting a dataset: see ``awaiting_real``
        for p in sorted(root.glob(entry["glob"])):
            if p.is_file():
                assigned.setdefault(p, (entry["dataset"], entry["producer"]))
    unmapped = sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file()
        and p not in assigned
        and p not in waiting
        and not str(p.relative_to(root)).startswith(NOT_INPUTS)
    )
    dates = {p: publication_date(p.relative_to(root)) for p in assigned}
    ordered = sorted(assigned, key=lambda p: (dates[p] is None, dates[p] or "", str(p)))
    names = unique_names(ordered)
    files = [
        InputFile(p, names[p], dates[p], dataset=assigned[p][0], producer=assigned[p][1])
        for p in ordered
    ]
    return files, unmapped


def sample_inputs() -> list[InputFile]:
    from infra.sample import sample_files

    return [
        InputFile(None, name, publication_date(Path(name)), body) for name, body in sample_files()
    ]


# ------------------------------------------------------------------------------ output


def _out(text: str = "") -> None:
    print(text, flush=True)


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


class Status:
    """A one-line progress display on stderr (redrawn on a terminal, plain lines otherwise)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.phase = ""
        self.started = time.monotonic()
        self.counts: dict[str, list[int]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def begin(self) -> None:
        self.started = time.monotonic()
        self.counts = {}
        self.phase = "waiting for the queue"
        if self.tty:
            self._stop.clear()
            self._thread = threading.Thread(target=self._tick, daemon=True)
            self._thread.start()

    def _line(self) -> str:
        done = "  ".join(
            f"{fn}: {c[0]} record{'s' if c[0] != 1 else ''}" + (f" ({c[1]} failed)" if c[1] else "")
            for fn, c in self.counts.items()
        )
        elapsed = time.monotonic() - self.started
        return f"      {elapsed:5.1f} s  {self.phase:<22} {done}"

    def _tick(self) -> None:
        while not self._stop.wait(0.2):
            with self._lock:
                sys.stderr.write("\r\033[K" + self._line())
                sys.stderr.flush()

    def running(self, function: str) -> None:
        self.phase = f"running {function}"

    def batch(self, function: str, size: int, failed: int, error: str | None) -> None:
        c = self.counts.setdefault(function, [0, 0])
        c[0] += size
        c[1] += failed
        self.phase = "waiting for the queue"
        if not self.tty and (failed or error):
            note = f", {failed} returned to the queue" if failed else ""
            print(
                f"      {function}: {size} record{'s' if size != 1 else ''}{note}"
                + (f" - crashed: {error}" if error else ""),
                file=sys.stderr,
                flush=True,
            )

    def end(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            with self._lock:
                sys.stderr.write("\r\033[K")
                sys.stderr.flush()


def _short_function(name: str) -> str:
    """``opendepot-ValidateFunction`` -> ``validate``."""
    base = name.rsplit("-", 1)[-1]
    return base.removesuffix("Function").lower() or name


# ------------------------------------------------------------------------------ reports


REFUSED_PREFIX = "reports/_refused/"
"""Where the validate function files reports of keys it could not route (docs/design.md)."""


def _report_list(stack: LocalStack, dataset: str, producer: str) -> list[dict[str, Any]]:
    """Every report of this dataset and producer, then those of refused keys."""
    s3 = stack.s3
    out = []
    for prefix in (f"reports/{dataset}/{producer}/", REFUSED_PREFIX):
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


def _status_of(report: dict[str, Any] | None) -> str:
    if report is None:
        return "no report"
    meta = report.get("opendepot") or {}
    status = meta.get("status")
    if status:
        return str(status)
    return "accepted" if report.get("valid") else "rejected"


def print_outcomes(outcomes: list[Outcome], internal_bucket: str) -> None:
    _out("What happened to each file")
    _out("--------------------------")
    for i, o in enumerate(outcomes, 1):
        r = o.report
        status = _status_of(r)
        _out(f"{i}. {o.file.name}  ({_human_bytes(o.file.size)}, {o.seconds:.1f} s)")
        _out(f"   key: {o.key}")
        if r is None:
            _out(
                "   NO REPORT: the validate function wrote none for this upload "
                "(run with --verbose to see its logs)"
            )
        elif status == "accepted":
            meta = r.get("opendepot") or {}
            rows = meta.get("rows_published", meta.get("rows", "?"))
            _out(
                f"   accepted: {rows} rows, {count_warnings(r)} warnings, "
                f"{meta.get('rows_left_out', 0)} rows left out"
            )
        else:
            _out(f"   {status}:")
            for line in error_lines(r, 3):
                _out(f"     {line}")
        if r is not None and (r.get("opendepot") or {}).get("report_key"):
            _out(f"   report: s3://{internal_bucket}/{r['opendepot']['report_key']}")
        for c in o.crashes:
            _out(f"   CRASH: {c}")
    _out()


# ------------------------------------------------------------------------------ summary


def _get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None
    except (urllib.error.URLError, ValueError, OSError):
        return 0, None


def print_summary(stack: LocalStack, api_url: str, dataset: str) -> bool:
    """Print the published dataset from its manifest; False when there is none."""
    try:
        raw = stack.s3.get_object(Bucket=stack.published_bucket, Key=f"{dataset}/manifest.json")
    except stack.s3.exceptions.NoSuchKey:
        _out(
            f"Nothing published for {dataset} (no {dataset}/manifest.json in the published bucket)."
        )
        return False
    manifest = json.loads(raw["Body"].read())
    base = stack.public_base_url
    _out(f"Published: {manifest.get('dataset', dataset)}")
    _out("-" * (11 + len(dataset)))
    _out(
        f"current version  {manifest.get('version')}  (published {manifest.get('published_at')}, "
        f"{len(manifest.get('versions') or [])} version(s), {len(manifest.get('uploads') or [])} upload(s))"
    )
    cov = manifest.get("temporal_coverage") or {}
    if cov:
        _out(f"days             {cov.get('start')} to {cov.get('end')}")
    rows = manifest.get("rows") or {}
    _out(
        "rows             "
        + ", ".join(f"{lvl} {n}" for lvl, n in rows.items())
        + f"  ({manifest.get('rows_left_out', 0)} left out)"
    )
    _out("files (this version, then the stable latest link):")
    for res in manifest.get("resources") or []:
        head = (
            f"  {res.get('level', ''):<4} {res.get('format', ''):<8} {res.get('rows', '?'):>8} rows "
            f"{_human_bytes(int(res.get('bytes') or 0)):>9}  "
        )
        _out(f"{head}{base}/{res.get('path')}")
        if res.get("latest_path"):
            _out(f"{'':<{len(head)}}{base}/{res['latest_path']}")
    if manifest.get("datapackage_path"):
        _out(f"{'  datapackage.json':<40}{base}/{manifest['datapackage_path']}")

    # check what a reuser would do: an anonymous download and the index
    resources = manifest.get("resources") or []
    if resources and resources[0].get("latest_path"):
        url = f"{base}/{resources[0]['latest_path']}"
        req = urllib.request.Request(url, headers={"Range": "bytes=0-0"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                r.read()
        except (urllib.error.URLError, OSError) as exc:
            _out(
                f"  WARNING: anonymous download of {url} failed ({exc}); "
                "is the published bucket public-read in template.yaml?"
            )
    _out()
    status, doc = _get_json(f"{api_url}/api/1/datasets/{dataset}/")
    latest = None
    if status == 200 and isinstance(doc, dict):
        for r in doc.get("resources") or []:
            if r.get("latest"):
                latest = r["latest"]
                break
        _out(f"The index answers (GET /api/1/datasets/{dataset}/ -> {status}). Try:")
    else:
        _out(
            f"The index did not answer GET /api/1/datasets/{dataset}/ as expected "
            f"(status {status or 'no answer'}). Try:"
        )
    if latest is None and resources:
        latest = f"{api_url}/api/1/datasets/r/{resources[0].get('id')}"
    if latest and latest.startswith("/"):
        latest = api_url + latest
    _out(f"  curl -s {api_url}/api/1/datasets/")
    _out(f"  curl -s {api_url}/api/1/datasets/{dataset}/")
    if latest:
        _out(f"  curl -L {latest}")
    _out()
    return True


def print_catalog(stack: LocalStack, api_url: str) -> bool:
    """Print every published dataset from ``catalog.json``; False when there is none."""
    try:
        raw = stack.s3.get_object(Bucket=stack.published_bucket, Key="catalog.json")
    except stack.s3.exceptions.NoSuchKey:
        _out("Nothing published (no catalog.json in the published bucket).")
        return False
    datasets = json.loads(raw["Body"].read()).get("datasets") or []
    _out(f"Published: {len(datasets)} datasets")
    _out("-" * 22)
    for d in datasets:
        rows = ", ".join(f"{lvl} {n}" for lvl, n in (d.get("rows") or {}).items())
        cov = d.get("temporal_coverage") or {}
        span = f"{cov.get('start')} to {cov.get('end')}" if cov else ""
        _out(f"  {d['name']:<48} {d.get('version')}  {rows}  {span}")
    _out()
    status, doc = _get_json(f"{api_url}/api/1/datasets/?page_size=100")
    total = doc.get("total") if isinstance(doc, dict) else None
    _out(f"The index lists {total} datasets (GET /api/1/datasets/ -> {status}). Try:")
    first = datasets[0]["name"] if datasets else "donnees-hospitalieres-covid19"
    _out(f"  curl -s {api_url}/api/1/datasets/")
    _out(f"  curl -s {api_url}/api/1/datasets/{first}/")
    resources = datasets[0].get("resources") if datasets else None
    if resources:
        _out(f"  curl -L {api_url}/api/1/datasets/r/{resources[0]['id']}")
    _out()
    return bool(datasets)


# ------------------------------------------------------------------------------ the run


@contextlib.contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        # as the server itself binds: a port left in TIME_WAIT by the last run is free
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _inputs(options: DemoOptions) -> list[InputFile] | None:
    if options.data is not None:
        root = options.data.expanduser().resolve()
        if not root.exists():
            print(f"opendepot demo: --data {options.data}: no such file or folder", file=sys.stderr)
            return None
        files = collect_files(root)
        _out(f"Input: {root} ({len(files)} CSV file{'s' if len(files) != 1 else ''})")
        return files
    if options.dataset is not None:
        from opendepot.registry import load_registry  # noqa: PLC0415

        names = sorted(load_registry().datasets)
        if options.dataset not in names:
            print(f"opendepot demo: unknown dataset {options.dataset!r}; one of: "
                  + ", ".join(names), file=sys.stderr)
            return None
    for root in real_root_candidates():
        if root.is_dir():
            files, unmapped = collect_real(root)
            if options.dataset is not None:
                files, unmapped = [f for f in files if f.dataset == options.dataset], []
            if files:
                datasets = sorted({f.dataset for f in files if f.dataset})
                _out(
                    f"Input: {root} ({len(files)} real files for {len(datasets)} datasets, "
                    "mapped by infra/real_sources/*.json)"
                )
                for rel in unmapped:
                    _out(f"       not dropped (no dataset declared for it): {rel}")
                if options.dataset is None:
                    for why in sorted({why for _, why in awaiting_real(root)}):
                        held = [p for p, w in awaiting_real(root) if w == why]
                        _out(f"       not dropped ({len(held)} files awaiting {why.split(';')[0]})")
                return files
    candidates = default_data_candidates(options.dataset or "donnees-hospitalieres-covid19")
    for root in candidates:
        if root.is_dir():
            files = collect_files(root)
            _out(
                f"Input: {root} ({len(files)} CSV file{'s' if len(files) != 1 else ''}, real data)"
            )
            return files
    if options.dataset not in (None, "donnees-hospitalieres-covid19"):
        print(f"opendepot demo: no real files for {options.dataset} (looked in {candidates[0]}); "
              "the generated sample is of donnees-hospitalieres-covid19 only", file=sys.stderr)
        return None
    files = sample_inputs()
    _out(f"Input: no data folder at {candidates[0]}")
    _out(
        f"       so using a GENERATED SAMPLE ({len(files)} files, made-up figures shaped like "
        "SPF's file; see infra/sample.py)"
    )
    return files


def _import(module: str, name: str) -> Callable[..., Any]:
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def run_demo(options: DemoOptions) -> int:
    """Run the demo; returns the exit code (0: the pipeline ran; 1: something crashed; 2: usage)."""
    logging.basicConfig(
        level=logging.INFO if options.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    files = _inputs(options)
    if files is None:
        return 2
    if not files:
        print("opendepot demo: no CSV file to drop", file=sys.stderr)
        return 2
    port = options.port or _free_port()
    if not _port_free(port):
        print(f"opendepot demo: port {port} is taken; choose another with --port", file=sys.stderr)
        return 2
    # the functions log JSON to stdout (rejections at ERROR): keep the demo's screen readable
    # unless --verbose; failures still show (pump log, DLQ warning) with a hint to use -v
    quiet = (
        {}
        if options.verbose
        else {
            "POWERTOOLS_LOG_LEVEL": "CRITICAL",
            "POWERTOOLS_METRICS_DISABLED": "true",
        }
    )
    with _env({"POWERTOOLS_SERVICE_NAME": "opendepot", **quiet}):
        try:
            stack = LocalStack(options.template, port=options.moto_port, api_port=port)
        except TemplateError as exc:
            print(f"opendepot demo: {exc}", file=sys.stderr)
            return 2
        with stack:
            return _run_on_stack(stack, files, port, options)


def _run_on_stack(
    stack: LocalStack, files: list[InputFile], port: int, options: DemoOptions
) -> int:
    from infra.http_server import LocalHttpApi
    from infra.pump import Binding, Pump, bindings_for

    # handlers read their settings at import: import them now that the stack is up
    try:
        bindings = bindings_for(stack)
        module, name = stack.handler_of("IndexApiFunction") or (
            "functions.index_api.app",
            "lambda_handler",
        )
        index_handler = _import(module, name)
    except (ImportError, AttributeError) as exc:
        print(
            f"opendepot demo: a function is missing ({exc}); "
            "functions/{validate,publish,index_api}/app.py must define lambda_handler",
            file=sys.stderr,
        )
        return 1

    status = Status()

    def watched(b: Binding) -> Binding:
        fn = _short_function(b.function_name)

        def handler(event: dict[str, Any], context: Any) -> Any:
            status.running(fn)
            return b.handler(event, context)

        return Binding(
            b.queue,
            handler,
            b.function_name,
            b.batch_size,
            b.memory_size,
            b.timeout,
            b.report_batch_item_failures,
        )

    pump = Pump(
        stack.sqs,
        [watched(b) for b in bindings],
        region=stack.region,
        account_id=stack.account_id,
        on_batch=lambda r: status.batch(
            _short_function(r.function_name), r.size, r.failed, r.error
        ),
    )
    api = LocalHttpApi(index_handler, port=port, access_log=options.verbose)
    try:
        api.start()
    except OSError as exc:
        print(f"opendepot demo: cannot serve on port {port}: {exc}", file=sys.stderr)
        return 2
    try:
        _out(f"Local stack: S3 and SQS (moto) at {stack.endpoint}, index at {api.url}")
        _out(f"  buckets: {', '.join(stack.buckets.values())}")
        _out(f"  queues:  {', '.join(q.name for q in stack.queues.values())}")
        if options.verbose and stack.ignored:
            _out(f"  not applied locally: {', '.join(stack.ignored)}")
        _out()
        outcomes = _drop_all(stack, pump, status, files, options)
        crashed = sum(len(o.crashes) for o in outcomes) > 0
        print_outcomes(outcomes, stack.internal_bucket)
        if not options.verbose and any(o.failed for o in outcomes):
            _out(
                "(some messages failed and were retried: run with --verbose to see the functions' logs)"
            )
            _out()
        dead = _dead_letters(stack)
        for name, n in dead.items():
            _out(f"WARNING: {n} message(s) in the dead-letter queue {name}")
            crashed = True
        if any(o.report is None for o in outcomes):
            crashed = True
        datasets = list(dict.fromkeys(
            o.key.split("/", 1)[0] for o in outcomes if _status_of(o.report) == "accepted"
        ))
        if len(datasets) > 1:
            published = print_catalog(stack, api.url)
        else:
            only = datasets[0] if datasets else options.dataset or "donnees-hospitalieres-covid19"
            published = print_summary(stack, api.url, only)
        if not published and any(_status_of(o.report) == "accepted" for o in outcomes):
            _out("WARNING: files were accepted but nothing was published")
            crashed = True
        if options.once:
            _out("(--once: the local stack stops now, so those links answer only while "
                 "'make demo' runs without --once)")
            return 1 if crashed else 0
        _serve(stack, pump, api, options)
        return 1 if crashed else 0
    finally:
        status.end()
        api.stop()


def _drop_all(
    stack: LocalStack, pump: Any, status: Status, files: list[InputFile], options: DemoOptions
) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for i, f in enumerate(files, 1):
        dataset = f.dataset or options.dataset or "donnees-hospitalieres-covid19"
        producer = f.producer or options.producer
        key = f"{dataset}/{producer}/{f.name}"
        _out(
            f"[{i}/{len(files)}] {f.name} ({_human_bytes(f.size)}"
            + (f", published {f.date}" if f.date else "")
            + ")"
        )
        _out(f"      -> s3://{stack.incoming_bucket}/{key}")
        r = stack.s3.put_object(
            Bucket=stack.incoming_bucket, Key=key, Body=f.read(), ContentType="text/csv"
        )
        outcome = Outcome(f, key, r.get("VersionId"))
        status.begin()
        started = time.monotonic()
        try:
            stats = pump.run()
        finally:
            status.end()
        outcome.seconds = time.monotonic() - started
        outcome.crashes = list(stats.errors)
        outcome.failed = stats.failed
        outcome.report = find_report(
            _report_list(stack, dataset, producer), key, outcome.version_id
        )
        counts = ", ".join(
            f"{q.removesuffix('Queue').lower()} {h}" + (f" ({fl} failed)" if fl else "")
            for q, (h, fl) in stats.per_queue.items()
        )
        _out(
            f"      {_status_of(outcome.report)} in {outcome.seconds:.1f} s ({counts or 'no message'})"
        )
        outcomes.append(outcome)
    _out()
    return outcomes


def _dead_letters(stack: LocalStack) -> dict[str, int]:
    out = {}
    for q in stack.dead_letter_queues():
        visible, in_flight, delayed = stack.queue_depth(q.url)
        if visible + in_flight + delayed:
            out[q.name] = visible + in_flight + delayed
    return out


def _report_keys(stack: LocalStack) -> list[str]:
    """Keys of every report in the internal bucket."""
    pages = stack.s3.get_paginator("list_objects_v2").paginate(
        Bucket=stack.internal_bucket, Prefix="reports/"
    )
    return [o["Key"] for page in pages for o in page.get("Contents", []) if o["Key"].endswith(".json")]


def _say_report(stack: LocalStack, key: str) -> None:
    """One new report, as ``opendepot validate`` prints it, and where the JSON is."""
    from opendepot.report import format_human  # noqa: PLC0415

    try:
        report = json.loads(stack.s3.get_object(Bucket=stack.internal_bucket, Key=key)["Body"].read())
    except (ValueError, KeyError):
        return
    _out(format_human(report, max_lines=5))
    _out(f"  report: s3://{stack.internal_bucket}/{key}")


def _serve(stack: LocalStack, pump: Any, api: Any, options: DemoOptions) -> None:
    _out(f"Serving the index on {api.url} and S3/SQS on {stack.endpoint}; Ctrl-C to stop.")
    _out("New uploads are processed as they arrive, e.g.:")
    _out(
        f"  aws --endpoint-url {stack.endpoint} s3 cp FILE.csv "
        f"s3://{stack.incoming_bucket}/{options.dataset or 'donnees-hospitalieres-covid19'}/"
        f"{options.producer}/FILE.csv"
    )

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # `kill` stops the demo as cleanly as Ctrl-C

    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, interrupt) if main else None
    seen = set(_report_keys(stack))
    try:
        while True:
            stats = pump.run()
            if stats.handled:
                _out(
                    f"processed {stats.handled} message(s)"
                    + (f", {stats.failed} returned to the queue" if stats.failed else "")
                )
                for key in _report_keys(stack):
                    if key not in seen:  # a new upload's report: say what happened to it
                        seen.add(key)
                        _say_report(stack, key)
            time.sleep(0.5)
    except KeyboardInterrupt:
        _out("\nStopping.")
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
