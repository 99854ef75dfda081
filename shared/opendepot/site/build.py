"""Regenerate the site after a publication: ``refresh``.

What ``refresh`` reads (through ``opendepot.reader.CatalogReader``, the index's own reader, so
the pages show exactly what the API serves):

- ``catalog.json`` (one ``head``, one ``get``): the home page, every dataset's document;
- per dataset page: its ``manifest.json`` (one ``head``, one ``get``), the ``changes.json`` of
  its newest ``VERSIONS_SHOWN`` versions (one ``get`` each, small), and its newest
  ``REPORTS_SHOWN`` validation reports: one listing of ``reports/{dataset}/`` in the internal
  bucket (every report of every producer of the dataset: one S3 ``ListObjectsV2`` call per
  1,000 reports, the only cost here that grows with history), then one ``get`` per report
  shown (a report is up to ``Settings.max_report_bytes``; the real ones are up to 0.5 MB),
  ``REPORT_THREADS`` at a time;
- the dashboards: ``opendepot.site.dashboards.dashboard_batches`` (its own reads), written one
  batch (an area's page and files) at a time, so memory holds one area's files, not the site's.

Every file goes through one ``site.PageWriter``: one listing of ``site/``, and a file whose
stored bytes are the same is not put (its URL keeps its ``Last-Modified``).

Nothing else: no other manifest, no published table. Pages link relatively (``links_for``),
so the site works under any prefix; API links are absolute when ``Settings.api_base_url`` is
set, else relative to the site's root (the site is then served beside the API, as in the local
demo).
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opendepot import atom, concurrency, index, layout, site
from opendepot.config import Settings
from opendepot.reader import CachedManifest, CatalogReader
from opendepot.registry import Registry
from opendepot.site import Page
from opendepot.site.pages import UploadStatus, VersionRow, dataset_page, home_page
from opendepot.storage import NotFound, Store

REPORTS_SHOWN = 10
"""Newest validation reports a dataset page shows (every producer together)."""
VERSIONS_SHOWN = 10
"""Newest versions a dataset page lists with their changes (the API lists every version)."""
REPORT_THREADS = 4
"""Reports read at once."""
DASHBOARDS = "opendepot.site.dashboards"
"""The module building the dashboards (``dashboard_batches``)."""

log = logging.getLogger(__name__)


def links_for(settings: Settings, path: str) -> str:
    """The API base URL the page at ``path`` links with: ``Settings.api_base_url`` when set,
    else the relative path to the site's root without its last ``/`` (``.`` for the home,
    ``../..`` for ``datasets/x/``), so ``index.Links.api("/api/1/...")`` is relative."""
    return settings.api_base_url or site.root_of(path).removesuffix("/")


@dataclass(frozen=True)
class Refreshed:
    """What ``refresh`` did."""

    pages: tuple[Page, ...]
    """The assets, the home and the dataset pages, with their bytes (small)."""
    dashboards: tuple[str, ...]
    """Paths of the dashboards' pages and data files (their bytes are not kept)."""
    written: int
    """Files put."""
    unchanged: int
    """Files not put: their stored bytes were the same (``site.PageWriter``)."""

    @property
    def paths(self) -> list[str]:
        """Every file's path, pages first."""
        return [p.path for p in self.pages] + list(self.dashboards)


def refresh(
    store: Store, settings: Settings, registry: Registry, *, datasets: Iterable[str] | None,
    now: datetime, dashboards: bool = True,
) -> Refreshed:
    """Regenerate and write (``site.PageWriter``: files whose stored bytes are the same are not
    put) the assets, the home, the page of each dataset of ``datasets`` (None: every dataset in
    the catalog; a name not in the catalog is skipped) and the dashboards built from them
    (unless ``dashboards`` is False: the pages for people only, e.g. a quick rebuild). ``now``:
    the time freshness is computed at (aware, UTC).

    The home and dataset pages are written before the dashboards are built: a failing
    dashboard leaves them written.

    Raises: StorageError; index.UnreadableDocument (``catalog.json`` or a manifest that does
    not parse); whatever ``dashboard_batches`` raises."""
    wanted = None if datasets is None else list(dict.fromkeys(datasets))
    with site.PageWriter(store, settings) as writer:
        pages, boards = _write(store, settings, registry, writer, wanted, now, dashboards)
    names = [p.path for p in pages if p.path.startswith("datasets/")]
    log.info("site refreshed", extra={"files": len(pages) + len(boards), "pages": names,
                                      "written": writer.written, "unchanged": writer.unchanged})
    return Refreshed(tuple(pages), tuple(boards), writer.written, writer.unchanged)


def _write(
    store: Store, settings: Settings, registry: Registry, writer: site.PageWriter,
    wanted: list[str] | None, now: datetime, dashboards: bool,
) -> tuple[list[Page], list[str]]:
    """``refresh``'s work: the pages for people (written first), then the dashboards."""
    reader = CatalogReader(settings, store, clock=lambda: now, log=log)
    docs = reader.catalog(links_for(settings, "")).datasets
    pages = [*site.assets(), home_page(docs, now)]
    names = [d["slug"] for d in docs] if wanted is None else wanted
    base = links_for(settings, "datasets/x/")  # every dataset page is as deep
    shaped = reader.catalog(base).by_key if names else {}
    for name in names:
        doc = shaped.get(name)
        page = _dataset_page(store, settings, reader, doc, base, now) if doc else None
        if page is not None:
            pages.append(page)
        elif doc is None:
            log.warning("no site page: dataset not in the catalog", extra={"dataset": name})
    writer.write(pages)
    writer.flush()  # put before any dashboard is built: a failing one leaves them written
    boards: list[str] = []
    for batch in _dashboards(store, settings, registry, wanted) if dashboards else ():
        writer.write(batch)
        boards += [p.path for p in batch]
    return pages, boards


def _dashboards(
    store: Store, settings: Settings, registry: Registry, datasets: Sequence[str] | None,
) -> Iterator[list[Page]]:
    """``dashboard_batches`` of the dashboards using ``datasets`` (None: every dashboard); none
    when the module is not installed (logged)."""
    try:
        module = importlib.import_module(DASHBOARDS)
    except ModuleNotFoundError as exc:
        if exc.name != DASHBOARDS:
            raise
        log.warning("no dashboards: %s is missing", DASHBOARDS)
        return
    if datasets is not None and not datasets:
        return  # no dataset asked for: no dashboard reads it
    changed = None if datasets is None else set(datasets)
    yield from module.dashboard_batches(store, settings, registry, changed=changed)


def _dataset_page(
    store: Store, settings: Settings, reader: CatalogReader, doc: index.Document, base: str,
    now: datetime,
) -> Page | None:
    """The page of the dataset of ``doc`` (its document shaped for ``base``); None (logged)
    when it has no manifest."""
    name = str(doc["slug"])
    try:
        m = reader.manifest(name)
    except index.NotFound:
        log.warning("no site page: dataset has no manifest", extra={"dataset": name})
        return None
    manifest = m.manifest
    schemas = index.level_schemas(manifest.schemas, list(doc["extras"]["levels"]),
                                  manifest.schema)
    total = len(manifest.versions) + sum(p.count for p in manifest.version_pages)
    return dataset_page(doc, schemas, version_rows(reader, m, base), total,
                        latest_reports(store, settings, name), now)


def version_rows(reader: CatalogReader, m: CachedManifest, base: str) -> list[VersionRow]:
    """The newest ``VERSIONS_SHOWN`` versions of ``m`` (inline: no page of older versions is
    read), newest first, each with the headline of its ``changes.json`` (one ``get`` each).

    Raises: StorageError."""
    slug, links = m.manifest.dataset, reader.links(base)
    docs = reader.recent_versions(slug, base).docs
    entries = {e.version: e for e in m.manifest.versions}
    rows = []
    for i, doc in enumerate(docs[:VERSIONS_SHOWN]):
        entry = entries.get(doc["version"])
        changes = entry.changes if entry is not None else None
        headline = None
        if changes is not None:
            try:
                headline = atom.headline_of(reader.version_json(m, changes.path))
            except index.UnreadableDocument:
                headline = None  # logged by the reader; the page says "no comparison"
        previous = (changes.previous if changes is not None
                    else docs[i + 1]["version"] if i + 1 < len(docs) else None)
        rows.append(VersionRow(
            doc, headline, links.file(changes.path) if changes else None,
            links.file(changes.csv_path) if changes and changes.csv_path else None, previous))
    return rows


def latest_reports(
    store: Store, settings: Settings, dataset: str, limit: int = REPORTS_SHOWN,
) -> list[UploadStatus]:
    """The validation of ``dataset``'s newest ``limit`` uploads, every producer together,
    newest first (by upload id, which sorts by arrival time), read from their reports
    (``reports/{dataset}/{producer}/{upload_id}.json``, internal bucket): one listing of
    ``reports/{dataset}/``, one ``get`` per report shown. A report gone meanwhile or that does
    not parse is left out (logged).

    Raises: StorageError."""
    prefix = f"{layout.REPORTS}{dataset}/"
    found = [o.key for o in store.list(settings.internal_bucket, prefix)
             if o.key.endswith(".json")]
    found.sort(key=lambda k: k.rsplit("/", 1)[-1], reverse=True)
    read = concurrency.map_ordered(lambda k: _status(store, settings, k), found[:limit],
                                   threads=REPORT_THREADS)
    return [s for s in read if s is not None]


def _status(store: Store, settings: Settings, key: str) -> UploadStatus | None:
    """One report's ``UploadStatus``; None when it is gone or unreadable (logged)."""
    try:
        report = json.loads(store.get(settings.internal_bucket, key))
        meta: dict[str, Any] = report.get("opendepot") or {}
        stats: dict[str, Any] = report.get("stats") or {}
    except NotFound:
        return None
    except (ValueError, AttributeError) as exc:  # not JSON, not an object
        log.warning("report unreadable: left off the site", extra={"key": key, "error": str(exc)})
        return None
    upload_id = str(meta.get("upload_id") or key.rsplit("/", 1)[-1].removesuffix(".json"))
    status = meta.get("status") or ("accepted" if report.get("valid") else "rejected")
    return UploadStatus(
        producer=str(meta.get("producer") or key.split("/")[2]), upload_id=upload_id,
        received_at=index.upload_time(upload_id),
        file=str(meta.get("key") or "").rsplit("/", 1)[-1], status=str(status),
        rows=meta.get("rows"), rows_published=meta.get("rows_published"),
        errors=stats.get("errors"), warnings=stats.get("warnings"))
