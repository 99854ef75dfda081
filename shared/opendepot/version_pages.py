"""A dataset's older versions, paged out of its manifest: a publication reads and writes a
manifest of bounded size whatever the dataset's history.

``{dataset}/manifest.json`` keeps its newest versions inline (``Manifest.versions``, at most
``2 * K``, K = ``contracts.VERSION_PAGE_SIZE``). When a new version makes the inline list longer,
the oldest K move to one page ``{dataset}/versions/{first}--{last}.json``
(``layout.versions_page_key``, a ``contracts.VersionsPage``) and the manifest names the page in
``version_pages`` (newest first; ``page_out``). The publication writes the page (immutable,
``If-None-Match``) before the manifest switch: a crash in between leaves a page no manifest
names, harmless, and the retry, starting from the same previous manifest, writes the same bytes
under the same key. A manifest written before pages existed (every version inline) is paged
out, K at a time, by its next publication.

Every version, newest first, is the inline ones then each page's in order (``every_version``):
pages are immutable, so a reader keeps each one it reads for good (``opendepot.reader``).
Readers that only need the newest versions (feeds: ``atom.FEED_SIZE`` + 1 at most
``K + 1``) read no page.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime

from opendepot import contracts, index, layout
from opendepot.contracts import Manifest, Version, VersionPage, VersionsPage
from opendepot.storage import Store

ReadPage = Callable[[VersionPage], VersionsPage]
"""Reads one page of a manifest (``read_page`` with its store and bucket, or a cache of it)."""


def page_out(manifest: Manifest, size: int | None = None) -> tuple[Manifest, list[VersionsPage]]:
    """``manifest`` with at most ``2 * size`` versions inline (``size``: K, by default
    ``contracts.VERSION_PAGE_SIZE``), and the pages to write first, newest first (none when it
    already had at most ``2 * size``). Each page holds the oldest ``size`` inline versions, newest
    first; ``version_pages`` lists the new pages before the ones it had. Deterministic: the same
    manifest gives the same pages. Raises ValueError: ``size`` below 1."""
    k = contracts.VERSION_PAGE_SIZE if size is None else size
    if k < 1:
        raise ValueError(f"a page holds at least one version, not {k}")
    inline, pages = list(manifest.versions), []
    while len(inline) > 2 * k:
        pages.append(VersionsPage(manifest.dataset, tuple(inline[-k:])))
        del inline[-k:]
    if not pages:
        return manifest, []
    pages.reverse()  # the last moved are the newest
    entries = tuple(VersionPage(page_key(p), p.versions[-1].version, p.versions[0].version,
                                len(p.versions)) for p in pages)
    return replace(manifest, versions=tuple(inline),
                   version_pages=entries + manifest.version_pages), pages


def page_key(page: VersionsPage) -> str:
    """Where ``page`` is stored: ``layout.versions_page_key`` of its oldest and newest
    version."""
    return layout.versions_page_key(page.dataset, page.versions[-1].version,
                                    page.versions[0].version)


def page_bytes(page: VersionsPage) -> bytes:
    """The stored JSON of ``page`` (UTF-8, one space indent, like the manifest)."""
    return json.dumps(page.to_json(), ensure_ascii=False, indent=1).encode("utf-8")


def read_page(store: Store, bucket: str, page: VersionPage) -> VersionsPage:
    """The page ``page`` names, read from ``bucket``.

    Raises:
        storage.NotFound: the page is missing; storage errors.
        ValueError: not JSON, or not a ``contracts.VersionsPage`` (``ContractError``).
    """
    return VersionsPage.from_json(json.loads(store.get(bucket, page.path)))


def page_reader(store: Store, bucket: str) -> ReadPage:
    """``read_page`` from ``store``'s ``bucket`` (no cache: for a one-off reader)."""
    return lambda page: read_page(store, bucket, page)


def every_version(manifest: Manifest, read: ReadPage) -> Iterator[Version]:
    """Every version of ``manifest``, newest first: the inline ones, then each page's; a page
    is read (``read``) only when the iteration reaches it."""
    yield from manifest.versions
    for page in manifest.version_pages:
        yield from read(page).versions


def history(manifest: Manifest, read: ReadPage) -> tuple[Version, ...]:
    """``every_version`` as a tuple (every page read)."""
    return tuple(every_version(manifest, read))


def complete(manifest: Manifest, read: ReadPage) -> Manifest:
    """``manifest`` with every version inline (``history``: each page read) and no pages: an
    in-memory view for the readers of the whole history (``index.build_versions``,
    ``index.version_entry``, ``paging.version_at``); ``manifest`` itself when it has no pages.
    Nothing is written."""
    if not manifest.version_pages:
        return manifest
    return replace(manifest, versions=history(manifest, read), version_pages=())


def inline_has(manifest: Manifest, version: str) -> bool:
    """Whether ``version`` and the version before it are both inline (or the manifest has no
    pages): ``index.version_entry(manifest, version)`` then needs no page (a newly published
    version, the one announced)."""
    oldest_first = sorted(v.version for v in manifest.versions)
    return not manifest.version_pages or version in oldest_first[1:]


def inline_at(manifest: Manifest, moment: datetime) -> bool:
    """Whether the version in force at ``moment`` (aware) is inline (or the manifest has no
    pages): an inline version was published at or before it (paged-out versions are older), so
    ``paging.version_at(manifest, moment)`` needs no page."""
    times = [index.parse_time(v.published_at) for v in manifest.versions]
    return not manifest.version_pages or any(t is not None and t <= moment for t in times)


def around(manifest: Manifest, version: str, read: ReadPage) -> Manifest:
    """What ``index.version_entry(_, version)`` needs: ``manifest`` when ``inline_has`` it, else
    ``complete``."""
    return manifest if inline_has(manifest, version) else complete(manifest, read)
