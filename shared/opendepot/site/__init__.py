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
- ``write_pages``: puts pages in the published bucket.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from importlib import resources

import jinja2

from opendepot import concurrency, layout
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


def write_pages(store: Store, settings: Settings, pages: Sequence[Page]) -> None:
    """Put ``pages`` in the published bucket (plain puts: a page is replaced whole, and a reader
    sees the old page or the new one).

    Raises: StorageError."""
    concurrency.map_ordered(
        lambda p: store.put(settings.published_bucket, p.key, p.body, p.mime), list(pages),
        threads=4)
