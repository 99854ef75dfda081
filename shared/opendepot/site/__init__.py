"""The static site: pages for people, generated at publish time from the published data.

Citizens, journalists and producers read these pages; reusers read the API. Every page is
rendered in Python from the published bucket (catalog, manifests, published files), readable
without JavaScript; scripts only add interaction. Every asset ships with the project (no CDN).

The site lives under ``site/`` in the published bucket (``layout.site_key``): S3/CloudFront
serve it in production, the local demo at ``http://127.0.0.1:8080/`` beside the API.

Shapes shared by the site's modules:

- ``Page``: one file of the site, its path as served (``datasets/x/`` for a page,
  ``assets/site.css`` for an asset), its bytes and its media type;
- ``environment()``: the Jinja2 environment of ``site/templates`` (autoescaped; filters
  ``fr_int``, ``fr_number``, ``fr_date``); every page extends ``base.html`` (blocks ``title``,
  ``head``, ``content``, ``scripts``; variables ``page_title``, ``root`` (relative path to the
  site's root, e.g. ``../../``), ``nav`` (the current section: ``home``, ``datasets``,
  ``epidemic``, ``business-support``));
- ``PageWriter``: puts pages in the published bucket, except those whose stored bytes are the
  same (``write_pages``: one batch).
"""

from __future__ import annotations

import functools
import hashlib
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from importlib import resources

import jinja2

from opendepot import layout
from opendepot.config import Settings
from opendepot.storage import Store

HTML = "text/html; charset=utf-8"
CSS = "text/css; charset=utf-8"
JS = "application/javascript; charset=utf-8"
CSV = "text/csv; charset=utf-8"
JSON = "application/json"
SVG = "image/svg+xml"
MIME = {".html": HTML, ".css": CSS, ".js": JS, ".csv": CSV, ".json": JSON, ".svg": SVG}
"""Media type by file suffix, for the assets shipped in ``site/static``."""
NBSP = "\u202f"
"""Narrow no-break space: the French thousands separator."""


@dataclass(frozen=True)
class Page:
    """One file of the site."""

    path: str
    """Path as served, without the leading ``/``: ``""`` (home), ``datasets/x/`` (a page: its
    ``index.html``), ``assets/site.css`` (a file)."""
    body: bytes
    mime: str = HTML

    @property
    def key(self) -> str:
        """Its key in the published bucket (``layout.site_key``)."""
        return layout.site_key(self.path)


def fr_int(value: object) -> str:
    """``1234567`` -> ``1 234 567`` (narrow no-break spaces); None or NaN -> ``–``."""
    if value is None or value != value:  # NaN
        return "–"
    return f"{int(round(float(str(value)))):,}".replace(",", NBSP).replace("-", "−")


def fr_number(value: object, digits: int = 1) -> str:
    """``1234.56`` -> ``1 234,6`` (``digits`` decimals, French separators); None or NaN -> ``–``."""
    if value is None or value != value:
        return "–"
    text = f"{float(str(value)):,.{digits}f}"
    return text.replace(",", NBSP).replace(".", ",").replace("-", "−")


MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre",
          "octobre", "novembre", "décembre")


def fr_date(value: date | datetime | str | None) -> str:
    """``2020-10-19`` (or a date) -> ``19 octobre 2020``; None -> ``–``."""
    if value is None:
        return "–"
    d = date.fromisoformat(str(value)[:10]) if isinstance(value, str) else value
    return f"{d.day} {MONTHS[d.month - 1]} {d.year}"


@functools.cache
def environment() -> jinja2.Environment:
    """The Jinja2 environment of the site's templates (autoescaped HTML)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("opendepot.site", "templates"),
        autoescape=jinja2.select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True,
        undefined=jinja2.StrictUndefined)
    env.filters.update(fr_int=fr_int, fr_number=fr_number, fr_date=fr_date)
    return env


def render(template: str, **context: object) -> bytes:
    """``template`` rendered with ``context``, as UTF-8 bytes."""
    return environment().get_template(template).render(**context).encode("utf-8")


def root_of(path: str) -> str:
    """The relative path from the page served at ``/{path}`` to the site's root (``""`` ->
    ``./``, ``datasets/x/`` -> ``../../``): pages link relatively, so the site works under any
    prefix."""
    depth = path.count("/")
    return "../" * depth if depth else "./"


def assets() -> list[Page]:
    """The shipped static files (``site/static``), served under ``assets/``."""
    folder = resources.files("opendepot.site") / "static"
    return [Page(f"assets/{f.name}", f.read_bytes(), MIME.get("." + f.name.rsplit(".", 1)[-1],
                                                              "application/octet-stream"))
            for f in sorted(folder.iterdir(), key=lambda f: f.name) if f.is_file()]


WRITE_THREADS = 4
"""Pages put at once."""
WRITE_BUDGET = 64 << 20
"""Bytes of pages waiting to be put before ``PageWriter.write`` waits for them."""


class PageWriter:
    """Puts pages in the published bucket, except the pages whose stored bytes are the same; a
    context manager (``close`` on exit).

    At the start, one listing of ``site/`` (``Store.list``: one S3 request per 1,000 keys) gives
    every stored file's ETag, which is the MD5 of its bytes (single-part puts into an SSE-S3
    bucket, as ``template.yaml`` declares it); a page whose MD5 is that ETag is not put, so its
    URL keeps its ``Last-Modified`` and caches keep it. A HEAD per page would cost one request
    per page, and a hash in the object's metadata a HEAD too. An ETag that is not an MD5
    (SSE-KMS, a multipart upload) never matches: the page is put, as before. Plain puts: a page
    is replaced whole, and a reader sees the old page or the new one. Not for concurrent
    writers (the site function runs one at a time: ``ReservedConcurrentExecutions: 1``).

    ``write`` returns once the pages are handed to ``threads`` threads, while the caller builds
    the next ones; it waits when more than ``WRITE_BUDGET`` bytes are waiting. ``written`` and
    ``unchanged`` count the pages put (or being put) and left as they were."""

    def __init__(self, store: Store, settings: Settings, *, threads: int = WRITE_THREADS) -> None:
        """Raises: StorageError (the listing)."""
        self.store, self.bucket = store, settings.published_bucket
        self.written = 0
        self.unchanged = 0
        self._etags = {o.key: o.etag for o in store.list(self.bucket, layout.SITE)}
        self._pool = ThreadPoolExecutor(max_workers=threads)
        self._pending: deque[tuple[Future[str], int]] = deque()
        self._waiting = 0

    def __enter__(self) -> PageWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(failing=exc[0] is not None)

    def write(self, pages: Sequence[Page]) -> None:
        """Put the pages of ``pages`` that differ from their stored copy.

        Raises: StorageError (of an earlier put, once it has ended)."""
        for p in pages:
            if self._etags.get(p.key) == _md5(p.body):
                self.unchanged += 1
                continue
            self._etags.pop(p.key, None)
            put = self._pool.submit(self.store.put, self.bucket, p.key, p.body, p.mime)
            self._pending.append((put, len(p.body)))
            self._waiting += len(p.body)
            self.written += 1
        while self._waiting > WRITE_BUDGET or (self._pending and self._pending[0][0].done()):
            self._settle()

    def _settle(self) -> None:
        put, size = self._pending.popleft()
        self._waiting -= size
        put.result()

    def flush(self) -> None:
        """Wait until every page handed to ``write`` is put.

        Raises: StorageError (the first failed put, once every put has ended)."""
        failed: Exception | None = None
        while self._pending:
            try:
                self._settle()
            except Exception as exc:  # the others still end before it is raised
                failed = failed or exc
        if failed is not None:
            raise failed

    def close(self, *, failing: bool = False) -> None:
        """Wait for every put, then stop the threads.

        Raises: StorageError (the first failed put), unless ``failing`` (an error is already
        on its way)."""
        try:
            self.flush()
        except Exception:
            if not failing:
                raise
        finally:
            self._pool.shutdown(wait=True)


def _md5(body: bytes) -> str:
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


def write_pages(store: Store, settings: Settings, pages: Sequence[Page]) -> PageWriter:
    """Put ``pages`` in the published bucket, those whose stored bytes are the same left as
    they are (``PageWriter``); the writer, closed, with its counts.

    Raises: StorageError."""
    with PageWriter(store, settings) as writer:
        writer.write(pages)
    return writer
