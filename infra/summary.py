"""What the demo prints: a progress line while the queues run, what happened to each file,
then the published dataset (from its manifest) or every dataset (from ``catalog.json``) with
``curl`` lines to try.

Everything goes to stdout through ``out`` (flushed at once), except the progress line
(``Status``), which is on stderr.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from infra.reports import Outcome, count_warnings, error_lines, status_of
from infra.stack import LocalStack
from opendepot import layout
from opendepot.contracts import Catalog, Manifest


def out(text: str = "") -> None:
    """Print one line of the demo's screen to stdout, flushed."""
    print(text, flush=True)


def human_bytes(n: int) -> str:
    """A size in bytes as ``192 B``, ``1.6 KB``, ``1.3 MB``..."""
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


def short_function(name: str) -> str:
    """``opendepot-ValidateFunction`` -> ``validate``."""
    base = name.rsplit("-", 1)[-1]
    return base.removesuffix("Function").lower() or name


def print_outcomes(outcomes: list[Outcome], internal_bucket: str) -> None:
    """Print what happened to each file: accepted rows and warnings, or the first errors."""
    out("What happened to each file")
    out("--------------------------")
    for i, o in enumerate(outcomes, 1):
        r = o.report
        status = status_of(r)
        out(f"{i}. {o.file.name}  ({human_bytes(o.file.size)}, {o.seconds:.1f} s)")
        out(f"   key: {o.key}")
        if r is None:
            out(
                "   NO REPORT: the validate function wrote none for this upload "
                "(run with --verbose to see its logs)"
            )
        elif status == "accepted":
            meta = r.get("opendepot") or {}
            rows = meta.get("rows_published", meta.get("rows", "?"))
            out(
                f"   accepted: {rows} rows, {count_warnings(r)} warnings, "
                f"{meta.get('rows_left_out', 0)} rows left out"
            )
        else:
            out(f"   {status}:")
            for line in error_lines(r, 3):
                out(f"     {line}")
        if r is not None and (r.get("opendepot") or {}).get("report_key"):
            out(f"   report: s3://{internal_bucket}/{r['opendepot']['report_key']}")
        for c in o.crashes:
            out(f"   CRASH: {c}")
    out()


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
    key = layout.manifest_key(dataset)
    try:
        raw = stack.s3.get_object(Bucket=stack.published_bucket, Key=key)
    except stack.s3.exceptions.NoSuchKey:
        out(f"Nothing published for {dataset} (no {key} in the published bucket).")
        return False
    manifest = Manifest.from_json(json.loads(raw["Body"].read()))
    base = stack.public_base_url
    out(f"Published: {manifest.dataset}")
    out("-" * (11 + len(dataset)))
    out(
        f"current version  {manifest.version}  (published {manifest.published_at}, "
        f"{manifest.version_count} version(s), {_uploads(manifest)} upload(s))"
    )
    cov = manifest.temporal_coverage
    if cov is not None:
        out(f"days             {cov.start} to {cov.end}")
    out(
        "rows             "
        + ", ".join(f"{lvl} {n}" for lvl, n in manifest.rows.items())
        + f"  ({manifest.rows_left_out} left out)"
    )
    out("files (this version, then the stable latest link):")
    for res in manifest.resources:
        head = (
            f"  {res.level:<4} {res.format:<8} {res.rows:>8} rows "
            f"{human_bytes(res.bytes):>9}  "
        )
        out(f"{head}{base}/{res.path}")
        out(f"{'':<{len(head)}}{base}/{res.latest_path}")
    out(f"{'  datapackage.json':<40}{base}/{manifest.datapackage_path}")

    # check what a reuser would do: an anonymous download and the index
    resources = manifest.resources
    if resources:
        url = f"{base}/{resources[0].latest_path}"
        req = urllib.request.Request(url, headers={"Range": "bytes=0-0"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                r.read()
        except (urllib.error.URLError, OSError) as exc:
            out(
                f"  WARNING: anonymous download of {url} failed ({exc}); "
                "is the published bucket public-read in template.yaml?"
            )
    out()
    status, doc = _get_json(f"{api_url}/api/1/datasets/{dataset}/")
    latest = None
    if status == 200 and isinstance(doc, dict):
        for r in doc.get("resources") or []:
            if r.get("latest"):
                latest = r["latest"]
                break
        out(f"The index answers (GET /api/1/datasets/{dataset}/ -> {status}). Try:")
    else:
        out(
            f"The index did not answer GET /api/1/datasets/{dataset}/ as expected "
            f"(status {status or 'no answer'}). Try:"
        )
    if latest is None and resources:
        latest = f"{api_url}/api/1/datasets/r/{resources[0].id}"
    if latest and latest.startswith("/"):
        latest = api_url + latest
    out(f"  curl -s {api_url}/api/1/datasets/")
    out(f"  curl -s {api_url}/api/1/datasets/{dataset}/")
    if latest:
        out(f"  curl -L {latest}")
    out()
    return True


def print_catalog(stack: LocalStack, api_url: str) -> bool:
    """Print every published dataset from ``catalog.json``; False when there is none."""
    try:
        raw = stack.s3.get_object(Bucket=stack.published_bucket, Key=layout.CATALOG_KEY)
    except stack.s3.exceptions.NoSuchKey:
        out(f"Nothing published (no {layout.CATALOG_KEY} in the published bucket).")
        return False
    datasets = Catalog.from_json(json.loads(raw["Body"].read())).datasets
    out(f"Published: {len(datasets)} datasets")
    out("-" * 22)
    for d in datasets:
        rows = ", ".join(f"{lvl} {n}" for lvl, n in d.rows.items())
        cov = d.temporal_coverage
        span = f"{cov.start} to {cov.end}" if cov is not None else ""
        out(f"  {d.name:<48} {d.version}  {rows}  {span}")
    out()
    status, doc = _get_json(f"{api_url}/api/1/datasets/?page_size=100")
    total = doc.get("total") if isinstance(doc, dict) else None
    out(f"The index lists {total} datasets (GET /api/1/datasets/ -> {status}). Try:")
    first = datasets[0].name if datasets else "donnees-hospitalieres-covid19"
    out(f"  curl -s {api_url}/api/1/datasets/")
    out(f"  curl -s {api_url}/api/1/datasets/{first}/")
    resources = datasets[0].resources if datasets else ()
    if resources:
        out(f"  curl -L {api_url}/api/1/datasets/r/{resources[0].id}")
    out()
    return bool(datasets)



def say_report(stack: LocalStack, key: str) -> None:
    """One new report, as ``opendepot validate`` prints it, and where the JSON is."""
    from opendepot.report import format_human  # noqa: PLC0415

    try:
        body = stack.s3.get_object(Bucket=stack.internal_bucket, Key=key)["Body"].read()
        report = json.loads(body)
    except (ValueError, KeyError):
        return
    out(format_human(report, max_lines=5))
    out(f"  report: s3://{stack.internal_bucket}/{key}")


def _uploads(manifest: Manifest) -> int:
    """Uploads the current version is made of (manifests before the upload index list them)."""
    count = manifest.versions[0].upload_count if manifest.versions else None
    return len(manifest.uploads) if count is None else count
