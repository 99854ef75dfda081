"""The static site (issue 15) in real headless Chromium: the fixtures.

Once per session: the real pipeline publishes, over the MemoryStore, the newest real CSV of
every dataset the dashboards declare (``opendepot/datasets/dashboards/*.json``) plus the four
the epidemic dashboard reads, each under its incoming key ``{dataset}/{producer}/{file}`` from
``infra/real_sources/*.json``; ``opendepot.site.build.refresh`` generates the site; one local
server (``infra.http_server.LocalHttpApi`` with ``SiteFiles``, as the demo) serves the site at
``/`` beside the HTTP index at ``/api/1/``, another the published bucket's files (as S3 does,
``Settings.public_base_url``), both on free ports of 127.0.0.1. One Chromium (Debian's ``/usr/bin/chromium``, ``make browser``; never a
browser of Playwright's own) serves every test; ``tour`` loads each page once per viewport and
keeps what every check needs (console, requests and their sizes, axe-core's violations,
screenshots), so each check is a test without loading the pages again.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from conftest import CASES, REAL, ROOT, Pipeline, need
from opendepot.config import Settings
from opendepot.registry import load_registry
from opendepot.storage import MemoryQueue, MemoryStore

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
"""Playwright's ``launch`` gives the browser a fresh temporary user-data-dir of its own."""
SHOTS = ROOT / "build" / "screenshots"
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "mobile": {"width": 390, "height": 844}}
EPIDEMIC_DATASETS = ("donnees-hospitalieres-covid19", "sp-pos-quot-fra", "sp-pos-quot-dep",
                     "chiffres-cles")
TIMEOUT_MS = 15_000
"""Longest wait for a page, a selector or a condition."""
SETTLE_MS = 100
"""A load is over when no request was pending at two checks this far apart."""
AXE_ROWS = 5
"""Rows of each table kept for axe-core (see ``Tab.run_axe``)."""
REPORT_CASE = "C03-duplicate-day-first-upload.csv"
"""A real broken case (rejected: 15 duplicated keys) for the HTML validation report."""
REPORT_PATH = "/reports/validation.html"
"""Where the files server serves that report."""
NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


def dashboards() -> list[dict[str, Any]]:
    """The dashboard declarations shipped with the package (none before they land)."""
    folder = resources.files("opendepot.datasets") / "dashboards"
    if not folder.is_dir():
        return []
    return [json.loads(f.read_text("utf-8")) for f in sorted(folder.iterdir(), key=str)
            if f.name.endswith(".json")]


def wanted_datasets() -> list[str]:
    """The epidemic four, then every source dataset of every declared dashboard that the
    registry knows (a declared one not registered yet is left out)."""
    names = list(EPIDEMIC_DATASETS)
    for board in dashboards():
        names += [s["dataset"] for s in board.get("sources", {}).values() if "dataset" in s]
    known = load_registry().datasets
    return [n for n in dict.fromkeys(names) if n in known]


def newest_real_csvs(datasets: list[str]) -> list[Any]:
    """The newest real CSV of each dataset, mapped (dataset, producer) by
    ``infra/real_sources``: ``infra.real_files.InputFile``s, oldest publication first."""
    from infra.real_files import collect_real

    files, _ = collect_real(need(REAL))
    newest: dict[str, Any] = {}
    for f in files:  # oldest first: the last one seen is the newest
        if f.dataset in datasets and f.name.endswith(".csv"):
            newest[f.dataset] = f
    return sorted(newest.values(), key=lambda f: (f.date or "", f.name))


@dataclass
class Published:
    """The published bucket and its site, and the two local servers: ``url`` the site beside
    the HTTP index (``LocalHttpApi`` with ``SiteFiles``, as the demo serves them), ``files_url``
    the published bucket's files (as S3 does: ``Settings.public_base_url``) and ``extra``."""

    pipeline: Pipeline
    url: str
    files_url: str
    files: list[Any]
    """The real files published (``infra.real_files.InputFile``)."""
    build_error: str = ""
    """What ``refresh`` raised ("" when the site was built): the pages written before it are
    still checked, and ``test_site__builds`` fails with it."""
    extra: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    """Paths the files server serves besides the bucket (the HTML validation report), with
    their media type."""

    @property
    def bucket(self) -> str:
        return self.pipeline.settings.published_bucket

    def site_paths(self) -> list[str]:
        """Every page of the site as served (``""``, ``datasets/x/``, ...)."""
        keys = [o.key for o in self.pipeline.store.list(self.bucket, "site/")]
        return sorted(k[len("site/"):-len("index.html")] for k in keys
                      if k.endswith("index.html"))


def files_handler(store: MemoryStore, bucket: str, extra: dict[str, tuple[bytes, str]]) -> Any:
    """A handler serving ``extra`` paths, else the published bucket's keys (``/{key}``)."""
    import base64

    def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
        path = event["requestContext"]["http"]["path"]
        if path in extra:
            body, mime = extra[path]
        else:
            info = store.head(bucket, path.lstrip("/"))
            if info is None:
                return {"statusCode": 404, "headers": {"content-type": "text/plain"},
                        "body": "not found"}
            body, mime = store.get(bucket, info.key), info.content_type or ""
        return {"statusCode": 200, "headers": {"content-type": mime},
                "body": base64.b64encode(body).decode("ascii"), "isBase64Encoded": True}

    return handle


def refresh_site(pipeline: Pipeline) -> None:
    """Generate the whole site as the site function does (``opendepot.site.build.refresh``,
    every dataset)."""
    from opendepot.site import build

    build.refresh(pipeline.store, pipeline.settings, load_registry(), datasets=None,
                  now=pipeline.now)


def report_html(tmp: Path) -> bytes:
    """The HTML report ``opendepot validate --html`` writes for a real broken case."""
    case = need(CASES / REPORT_CASE)
    out = tmp / "report.html"
    cli = [sys.executable, "-m", "opendepot.cli", "validate", "--dataset",
           "donnees-hospitalieres-covid19", "--html", str(out), str(case)]
    done = subprocess.run(cli, capture_output=True, cwd=ROOT, timeout=120, check=False)
    assert done.returncode == 1, (done.returncode, done.stderr.decode()[-2000:])
    return out.read_bytes()


@pytest.fixture(scope="session")
def published() -> Iterator[Published]:
    from functions.index_api import app as index_api
    from infra.http_server import LocalHttpApi, SiteFiles

    store, extra = MemoryStore(), dict[str, tuple[bytes, str]]()
    bucket = Settings().published_bucket
    files_api = LocalHttpApi(files_handler(store, bucket, extra), port=0,
                             function_name="published-bucket")
    site_api = LocalHttpApi(index_api.lambda_handler, port=0, site=SiteFiles(store, bucket))
    with files_api, site_api:
        settings = Settings(publish_queue_url="memory://publish.fifo",
                            public_base_url=files_api.url)
        pipeline = Pipeline(store, MemoryQueue(), settings, NOW)
        files = newest_real_csvs(wanted_datasets())
        for f in files:
            pipeline.drop(f"{f.dataset}/{f.producer}/{f.name}", f.read())
            pipeline.publish(f.dataset)
        try:
            refresh_site(pipeline)
            error = ""
        except Exception:  # noqa: BLE001 (test_site__builds reports it; the rest is checked)
            error = traceback.format_exc()
        index_api.configure(store, settings, clock=lambda: pipeline.now)
        try:
            yield Published(pipeline, site_api.url, files_api.url, files, error, extra)
        finally:
            index_api.configure(None)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the session (Debian's, driven by Playwright)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} missing: run `make browser` (Debian's chromium package)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@contextlib.contextmanager
def fresh_page(browser: Any, **options: Any) -> Iterator[Any]:
    """A page in a new context of the session's browser (1280x800, French, no cache shared
    with other tests, ``TIMEOUT_MS`` per wait); the context closes after."""
    context = browser.new_context(viewport=VIEWPORTS["desktop"], locale="fr-FR", **options)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def axe_source() -> str:
    """axe-core's ``axe.min.js``, as the PyPI package ``axe-playwright-python`` ships it."""
    import axe_playwright_python

    return (Path(axe_playwright_python.__file__).parent / "axe.min.js").read_text("utf-8")


@dataclass
class Load:
    """One page load: what the browser saw."""

    path: str
    url: str
    viewport: str
    console: list[str] = field(default_factory=list)
    """Console errors and uncaught exceptions."""
    failed: list[str] = field(default_factory=list)
    """Requests that failed or answered >= 400."""
    foreign: list[str] = field(default_factory=list)
    """Requests to a host other than 127.0.0.1."""
    sizes: dict[str, int] = field(default_factory=dict)
    """Bytes transferred per request URL (headers + encoded body)."""
    axe: list[dict[str, Any]] | None = None
    """axe-core's violations (id, impact, help, nodes); None where it was not run."""
    lang: str = ""
    """The ``lang`` of ``<html>``."""
    overflow: int = 0
    """Horizontal overflow: the document's scroll width past the viewport, in CSS px."""
    shot: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    """Time taken: ``load`` (until the network is idle), ``axe``, ``shot``."""


class Tab:
    """A page of the session's browser that records what each load does (cache disabled, so
    every load is a first view)."""

    def __init__(self, context: Any) -> None:
        self.page = context.new_page()
        cdp = context.new_cdp_session(self.page)
        cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
        self.load: Load | None = None
        self.requests: list[Any] = []
        self.pending: set[Any] = set()
        self.page.on("requestfinished", lambda r: self.pending.discard(r))
        self.page.on("requestfailed", lambda r: self.pending.discard(r))
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self._note("console", f"uncaught: {e}"))
        self.page.on("request", self._request)
        self.page.on("requestfailed",
                     lambda r: self._note("failed", f"{r.url}: {r.failure}"))
        self.page.on("response", lambda r: r.status >= 400 and self._note(
            "failed", f"{r.url}: HTTP {r.status}"))

    def _note(self, what: str, text: str) -> None:
        if self.load is not None:
            getattr(self.load, what).append(text)

    def _console(self, msg: Any) -> None:
        if msg.type in ("error", "assert"):
            self._note("console", f"{msg.text} ({msg.location.get('url', '')})")

    def _request(self, request: Any) -> None:
        self.requests.append(request)
        self.pending.add(request)
        host = urlsplit(request.url).hostname
        if request.url.startswith(("data:", "blob:", "about:")):
            return
        if host != "127.0.0.1":
            self._note("foreign", request.url)

    def visit(self, url: str, path: str = "", viewport: str = "desktop") -> Load:
        """Load ``url`` and wait until no request is pending (after the load event, twice
        ``SETTLE_MS`` apart: what the scripts fetch at start is counted); the load's record."""
        self.page.set_viewport_size(VIEWPORTS[viewport])
        self.load, self.requests = Load(path, url, viewport), []
        started = time.monotonic()
        self.page.goto(url, wait_until="load")
        self.settle(started)
        self.load.seconds["load"] = time.monotonic() - started
        for r in self.requests:
            try:
                s = r.sizes()
            except Exception:  # noqa: BLE001 (a request without a response: counted in failed)
                continue
            self.load.sizes[r.url] = self.load.sizes.get(r.url, 0) + max(
                0, s["responseBodySize"]) + max(0, s["responseHeadersSize"])
        self.load.overflow = int(self.page.evaluate(
            "document.documentElement.scrollWidth - window.innerWidth"))
        self.load.lang = str(self.page.evaluate("document.documentElement.lang"))
        return self.load

    def settle(self, started: float) -> None:
        """Wait until no request is pending for ``SETTLE_MS`` (at most ``TIMEOUT_MS``)."""
        quiet = 0
        while quiet < 2 and time.monotonic() - started < TIMEOUT_MS / 1000:
            self.page.wait_for_timeout(SETTLE_MS)
            quiet = 0 if self.pending else quiet + 1

    def run_axe(self, source: str) -> list[dict[str, Any]]:
        """axe-core's violations in the current page (evaluated, so no request is made).

        Every table body is cut to its first ``AXE_ROWS`` rows first (the rows of a table
        share their markup and style; the epidemic dashboard's 2,500 data rows take axe's
        color-contrast rule 10 s): call it last on a load."""
        self.page.evaluate(
            "n => document.querySelectorAll('table tbody').forEach("
            "b => [...b.rows].slice(n).forEach(r => r.remove()))", AXE_ROWS)
        if not self.page.evaluate("typeof window.axe !== 'undefined'"):
            self.page.evaluate(source)
        found = self.page.evaluate(
            "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
            ".map(v => ({id: v.id, impact: v.impact, help: v.help,"
            " nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))}))")
        return list(found)


def tour_paths(published: Published) -> dict[str, str]:
    """The site's pages every check visits, path -> kind: the home, each dataset page, each
    dashboard, a few per-area pages of each dashboard."""
    paths = published.site_paths()
    chosen: dict[str, str] = {}
    for p in paths:
        parts = p.strip("/").split("/") if p else []
        if not parts:
            chosen[p] = "home"
        elif parts[0] == "datasets" and len(parts) == 2:
            chosen[p] = "dataset"
        elif parts[0] == "dashboards" and len(parts) == 2:
            chosen[p] = "dashboard"
    for board in [p for p, k in chosen.items() if k == "dashboard"]:
        areas = [p for p in paths if p.startswith(board) and p != board]
        preferred = [p for p in areas if any(c in p for c in ("dep-75", "reg-11", "dep-2A"))]
        for p in (preferred or areas)[:3]:
            chosen[p] = "area"
    return chosen


def axe_paths(kinds: dict[str, str]) -> set[str]:
    """Where axe-core runs (at 1280x800): every dashboard and the first page of each other
    kind (the pages of one kind share their template; axe takes 1 to 12 s a page)."""
    first: dict[str, str] = {}
    for path, kind in kinds.items():
        first.setdefault(kind if kind != "area" else path.rsplit("/", 2)[0], path)
    return set(first.values()) | {p for p, k in kinds.items() if k == "dashboard"}


def shot_name(path: str, viewport: str) -> str:
    return (path.strip("/").replace("/", "_").replace(".", "_") or "home") + f"-{viewport}.png"


@pytest.fixture(scope="session")
def tour(published: Published, browser: Any, tmp_path_factory: pytest.TempPathFactory
         ) -> dict[str, dict[str, Load]]:
    """Every page of ``tour_paths`` and the HTML validation report (``REPORT_PATH``) loaded
    at 1280x800 (axe-core run on ``axe_paths`` there) and at 390x844, each load a first view; screenshots under
    build/screenshots/ listed in its index.json. Returns path -> viewport -> Load."""
    try:
        published.extra[REPORT_PATH] = (
            report_html(tmp_path_factory.mktemp("report")), "text/html; charset=utf-8")
    except Exception as exc:  # noqa: BLE001 (the report test says why; the tour goes on)
        print(f"HTML report not available: {exc}")
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    context = browser.new_context(viewport=VIEWPORTS["desktop"], locale="fr-FR",
                                  service_workers="block")
    context.set_default_timeout(TIMEOUT_MS)
    tab, axe = Tab(context), axe_source()
    loads: dict[str, dict[str, Load]] = {}
    kinds = tour_paths(published)
    urls = {path: f"{published.url}/{path}" for path in kinds}
    if REPORT_PATH in published.extra:
        urls[REPORT_PATH.lstrip("/")] = published.files_url + REPORT_PATH
    axed = axe_paths(kinds) | {REPORT_PATH.lstrip("/")}
    try:
        for path, url in urls.items():
            for viewport in VIEWPORTS:
                load = tab.visit(url, path, viewport)
                started = time.monotonic()
                load.shot = shot_name(path, viewport)
                tab.page.screenshot(path=str(SHOTS / load.shot))
                load.seconds["shot"] = time.monotonic() - started
                if viewport == "desktop" and path in axed:
                    load.axe = tab.run_axe(axe)
                load.seconds["axe"] = time.monotonic() - started - load.seconds["shot"]
                loads.setdefault(path, {})[viewport] = load
    finally:
        context.close()
    index = [{"page": "/" + p, "viewport": v, "size": VIEWPORTS[v], "file": ld.shot,
              "seconds": {k: round(t, 2) for k, t in ld.seconds.items()}}
             for p, by in loads.items() for v, ld in by.items()]
    (SHOTS / "index.json").write_text(json.dumps(index, indent=1), "utf-8")
    return loads
