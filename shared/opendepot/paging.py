"""Query strings, filters, sort and the udata pager of the HTTP index's lists.

``parse_*`` read a query string (pairs in order, as received) by udata's rules: unknown
parameters ignored, empty values absent, the last value of a repeated parameter wins except
``tag`` (every value must match). ``list_datasets`` and ``list_versions`` cut one page of the
shaped catalog or versions (``opendepot.index``) and wrap it in udata's pager;
``datasets_csv`` lists the whole catalog as data.gouv.fr's CSV export. ``parse_at`` and
``version_at`` answer time travel (``/api/1/datasets/r/{id}?at=``): the version in force at a
moment. Pure functions.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from opendepot import contracts
from opendepot.index import (
    DATASETS_PATH,
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    SORT_KEYS,
    BadRequest,
    Catalog,
    Document,
    Links,
    NotFound,
    Versions,
    iso,
    parse_time,
    quality_document,
    version_file_document,
    with_quality,
)

# --- query strings ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageQuery:
    """``page`` and ``page_size`` of any paged list, and the query string to build links from."""

    page: int = 1
    """1-based page number."""
    page_size: int = DEFAULT_PAGE_SIZE
    """Items per page, 1..100."""
    params: tuple[tuple[str, str], ...] = ()
    """The query string as received, kept to build the pager links."""


@dataclass(frozen=True)
class ListQuery(PageQuery):
    """The parsed query string of ``GET /api/1/datasets/``."""

    q: str = ""
    """Words that must all appear (accents and case ignored) in title, description or tags."""
    tags: tuple[str, ...] = ()
    """Tags a dataset must all carry (``tag`` may repeat)."""
    organization: str = ""
    """Organization slug or id."""
    format: str = ""
    """A format one of the dataset's resources must have (``csv``, ``parquet``; any case)."""
    sort: str = ""
    """``title``, ``created`` or ``last_update``, ``-`` prefix for descending; "" = by slug."""


MAX_INTEGER = 2**63 - 1
"""Largest ``page`` (OpenAPI's ``integer``, int64): a larger number is a 400, and a number of
more digits than this one is refused without being parsed (Python refuses ``int()`` of more than
4,300 digits: that was a 500)."""
ECHO_CHARS = 40
"""Characters of a refused value repeated in the 400 message (the rest is cut: ``...``)."""


def shown(raw: str) -> str:
    """``repr`` of a query value for a message, cut to ``ECHO_CHARS`` characters."""
    return repr(raw) if len(raw) <= ECHO_CHARS else repr(raw[:ECHO_CHARS]) + "..."


def _positive(name: str, raw: str, maximum: int | None = None) -> int:
    if not raw.isascii() or not raw.isdigit():
        raise BadRequest(f"{name}={shown(raw)} is not an integer")
    limit = MAX_INTEGER if maximum is None else maximum
    digits = raw.lstrip("0") or "0"
    if len(digits) > len(str(limit)):  # never int() of 5,000 digits
        raise BadRequest(f"{name}={shown(digits)} must be at least 1 and at most {limit}")
    value = int(digits)
    if value < 1 or value > limit:
        bound = f" and at most {limit}" if maximum is not None or value > limit else ""
        raise BadRequest(f"{name}={value} must be at least 1{bound}")
    return value


def _values(
    params: Iterable[tuple[str, str]],
) -> tuple[tuple[tuple[str, str], ...], dict[str, str], list[str]]:
    pairs = tuple(params)
    values: dict[str, str] = {}
    tags: list[str] = []
    for name, value in pairs:
        value = value.strip()
        if not value:
            continue
        if name == "tag":
            tags.append(value)
        else:
            values[name] = value
    return pairs, values, tags


def _page(values: Mapping[str, str]) -> tuple[int, int]:
    page = _positive("page", values["page"]) if "page" in values else 1
    size = (
        _positive("page_size", values["page_size"], MAX_PAGE_SIZE)
        if "page_size" in values
        else DEFAULT_PAGE_SIZE
    )
    return page, size


def parse_page_query(params: Iterable[tuple[str, str]]) -> PageQuery:
    """Read ``page`` and ``page_size`` (other parameters are ignored).

    Raises:
        BadRequest: ``page`` or ``page_size`` not a positive integer, ``page_size`` above 100.
    """
    pairs, values, _ = _values(params)
    page, size = _page(values)
    return PageQuery(page=page, page_size=size, params=pairs)


def parse_list_query(params: Iterable[tuple[str, str]]) -> ListQuery:
    """Read ``page``, ``page_size``, ``q``, ``tag``, ``organization``, ``format`` and ``sort``.

    Unknown parameters are ignored (as udata does); empty values count as absent; the last
    value of a repeated parameter wins, except ``tag`` (every value must match).

    Raises:
        BadRequest: ``page`` or ``page_size`` not a positive integer, ``page_size`` above 100,
            or an unknown ``sort``.
    """
    pairs, values, tags = _values(params)
    sort = values.get("sort", "")
    if sort and sort.removeprefix("-") not in SORT_KEYS:
        raise BadRequest(
            f"sort={shown(sort)} is not one of {', '.join(SORT_KEYS)} (prefix - to reverse)"
        )
    page, size = _page(values)
    return ListQuery(
        page=page,
        page_size=size,
        params=pairs,
        q=values.get("q", ""),
        tags=tuple(tags),
        organization=values.get("organization", ""),
        format=values.get("format", "").lower(),
        sort=sort,
    )


def parse_level(params: Iterable[tuple[str, str]], levels: Sequence[str]) -> str | None:
    """The ``level`` parameter (None when absent). Raises BadRequest if not one of ``levels``."""
    _, values, _ = _values(params)
    level = values.get("level")
    if level is not None and level not in levels:
        raise BadRequest(f"level={shown(level)} is not one of {', '.join(levels)}")
    return level


# --- the dataset list: filters, sort, pager -----------------------------------------------------


def fold(text: str) -> str:
    """Text for matching and sorting: accents removed, case folded (``Données`` -> ``donnees``)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _matches(d: Document, query: ListQuery) -> bool:
    if query.tags and not set(query.tags) <= set(d["tags"]):
        return False
    if query.organization:
        org = d["organization"] or {}
        if query.organization not in {org.get("slug"), org.get("id")}:
            return False
    if query.format and not any(str(r["format"]).lower() == query.format for r in d["resources"]):
        return False
    if query.q:
        haystack = fold(" ".join([d["title"], d["description"], *d["tags"]]))
        if not all(word in haystack for word in fold(query.q).split()):
            return False
    return True


_SORT_FIELD = {"title": "title", "created": "created_at", "last_update": "last_update"}


def _sorted(docs: Sequence[Document], sort: str) -> list[Document]:
    if not sort:
        return list(docs)  # already by slug
    name = _SORT_FIELD[sort.removeprefix("-")]
    # stable sort: ties keep slug order, also when descending
    return sorted(docs, key=lambda d: fold(str(d[name] or "")), reverse=sort.startswith("-"))


def page_url(url: str, params: Sequence[tuple[str, str]], page: int) -> str:
    """URL of another page of the list at ``url``: same parameters, ``page`` replaced."""
    out = [(k, v) for k, v in params if k != "page"]
    out.append(("page", str(page)))
    return f"{url}?{urlencode(out)}"


def pager(items: Sequence[Any], query: PageQuery, url: str) -> tuple[list[Any], Document]:
    """The slice of ``items`` on the query's page and the udata pager around it.

    Returns ``(slice, {"page", "page_size", "total", "next_page", "previous_page"})``. A page
    past the end is empty (with a ``previous_page``), not an error.
    """
    start = (query.page - 1) * query.page_size
    data = list(items[start : start + query.page_size])
    has_next = start + query.page_size < len(items)
    return data, {
        "page": query.page,
        "page_size": query.page_size,
        "total": len(items),
        "next_page": page_url(url, query.params, query.page + 1) if has_next else None,
        "previous_page": (page_url(url, query.params, query.page - 1) if query.page > 1 else None),
    }


def list_datasets(catalog: Catalog, query: ListQuery, links: Links, now: datetime) -> Document:
    """One page of the filtered, sorted dataset list, as a udata pager.

    Shape: ``{"data": [dataset_document + quality...], "page", "page_size", "total",
    "next_page": url | None, "previous_page": url | None}``.
    """
    found = _sorted([d for d in catalog.datasets if _matches(d, query)], query.sort)
    data, page = pager(found, query, links.api(DATASETS_PATH))
    return {"data": [with_quality(d, now) for d in data], **page}


def list_versions(versions: Versions, query: PageQuery) -> Document:
    """One page of a dataset's versions, newest first, as a udata pager of ``version_document``."""
    data, page = pager(versions.docs, query, versions.url)
    return {"data": data, **page}


def parse_at(params: Iterable[tuple[str, str]]) -> datetime | None:
    """The ``at`` parameter of a permanent link: an ISO 8601 time (``2021-01-15T00:00:00Z``,
    an offset, or a date alone: midnight; without a zone: UTC), aware; None when absent. A
    ``+`` of an offset sent unencoded arrives as a space and is read as ``+``.

    Raises:
        BadRequest: not an ISO 8601 time.
    """
    _, values, _ = _values(params)
    raw = values.get("at")
    if raw is None:
        return None
    for text in (raw, "+".join(raw.rsplit(" ", 1))):
        moment = parse_time(text)
        if moment is not None:
            return moment
    raise BadRequest(f"at={shown(raw)} is not an ISO 8601 time (e.g. 2021-01-15T00:00:00Z)")


def version_at(manifest: contracts.Manifest, at: datetime) -> contracts.Version:
    """The version of ``manifest`` in force at ``at``: the last one published at or before it.

    Raises:
        NotFound: ``at`` is before the first version (the message says when that was).
    """
    dated = sorted((t, v.version, v) for v in manifest.versions
                   if (t := parse_time(v.published_at)) is not None)
    before = [v for t, _, v in dated if t <= at]
    if not before:
        first = f": its first version was published at {iso(dated[0][0])}" if dated else ""
        raise NotFound(f"dataset {manifest.dataset!r} had no published version at {iso(at)}"
                       + first)
    return before[-1]


def file_at(
    slug: str, manifest: contracts.Manifest, rid: str, at: datetime, links: Links
) -> str:
    """URL of resource ``rid``'s file in the version in force at ``at`` (``version_at``).

    Raises:
        NotFound: before the first version, or that version had no such file.
    """
    version = version_at(manifest, at)
    for r in version.resources:
        doc = version_file_document(slug, r, links)
        if doc["id"] == rid:
            return str(doc["url"])
    raise NotFound(f"resource {rid!r} is not in version {version.version!r} of dataset "
                   f"{slug!r}, in force at {iso(at)}")


# --- exports ------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "id", "title", "slug", "acronym", "url", "organization", "organization_id", "description",
    "frequency", "license", "temporal_coverage.start", "temporal_coverage.end",
    "spatial.granularity", "spatial.zones", "created_at", "last_modified", "last_update",
    "tags", "resources_count", "main_resources_count", "resources_formats", "quality_score",
    "version", "rows",
)  # fmt: skip
"""Columns of ``/api/1/site/datasets.csv`` (data.gouv.fr's export names, then opendepot's)."""


def datasets_csv(catalog: Catalog, now: datetime) -> str:
    """Every dataset as one row of a ``;``-separated CSV, as data.gouv.fr's catalog export."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for d in catalog.datasets:
        org = d["organization"] or {}
        coverage = d["temporal_coverage"] or {}
        spatial = d["spatial"] or {}
        resources = d["resources"]
        writer.writerow(
            [
                d["id"], d["title"], d["slug"], d["acronym"] or "", d["page"],
                org.get("name", ""), org.get("id", ""), d["description"], d["frequency"],
                d["license"], coverage.get("start") or "", coverage.get("end") or "",
                spatial.get("granularity", ""), ",".join(spatial.get("zones") or []),
                d["created_at"] or "", d["last_modified"] or "", d["last_update"] or "",
                ",".join(d["tags"]), len(resources),
                sum(1 for r in resources if r["type"] == "main"),
                ",".join(sorted({str(r["format"]) for r in resources})),
                quality_document(d, now)["score"], d["extras"]["version"] or "",
                sum((d["extras"]["rows"] or {}).values()),
            ]
        )  # fmt: skip
    return out.getvalue()
