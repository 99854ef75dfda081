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
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
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
from opendepot.udata_fields import with_reuses

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
    """A ``SORT_KEYS`` key, ``-`` prefix for descending; "" = by slug."""
    license: str = ""
    """License id (``lov2``...)."""
    geozone: str = ""
    """A spatial zone the dataset covers (``country:fr``)."""
    granularity: str = ""
    """The dataset's spatial granularity (``fr:departement``, ``fr:region``, ``country``)."""
    temporal_coverage: tuple[str, str] | None = None
    """A period (first day, last day) the dataset's temporal coverage must meet."""
    schema: str = ""
    """Name of a Table Schema one of its resources follows."""
    schema_version: str = ""
    """Version of a Table Schema one of its resources follows."""
    flags: tuple[tuple[str, bool], ...] = ()
    """``featured``, ``archived``, ``deleted``, ``private`` asked, with the value asked."""


MAX_INTEGER = 2**53 - 1
"""Largest ``page`` (the largest integer a JSON number holds exactly everywhere): a larger
number is a 400, and a number of more digits than this one is refused without being parsed
(Python refuses ``int()`` of more than 4,300 digits: that was a 500)."""
INTEGER_PARAMS = ("page", "page_size")
"""Parameters read as integers: an empty value is a 400 (udata's ``int`` parser)."""
NOT_EMPTY_PARAMS = ("temporal_coverage", "sort", "level", "featured", "archived", "deleted",
                    "private", "at")
"""Parameters whose declared values (a pattern, a list, a boolean) exclude the empty text: an
empty one is a 400, where udata's free-text filters (``q=``, ``tag=``) are ignored when empty."""
ECHO_CHARS = 40
"""Characters of a refused value repeated in the 400 message (the rest is cut: ``...``)."""


def shown(raw: str) -> str:
    """``repr`` of a query value for a message, cut to ``ECHO_CHARS`` characters."""
    return repr(raw) if len(raw) <= ECHO_CHARS else repr(raw[:ECHO_CHARS]) + "..."


def positive_integer(name: str, raw: str, maximum: int | None = None) -> int:
    """``raw`` (a query value) as an integer from 1 to ``maximum`` (``MAX_INTEGER`` when None).

    Raises: BadRequest naming ``name``: not ASCII digits, or out of range (never ``int()`` of
    thousands of digits)."""
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
            if name in INTEGER_PARAMS:
                raise BadRequest(f"{name}={shown(value)} is not an integer")
            if name in NOT_EMPTY_PARAMS:
                raise BadRequest(f"{name} is empty")
            continue
        if name == "tag":
            tags.append(value)
        else:
            values[name] = value
    return pairs, values, tags


def query_values(
    params: Iterable[tuple[str, str]],
) -> tuple[tuple[tuple[str, str], ...], dict[str, str], list[str]]:
    """A query string read by udata's rules: ``(pairs as received, last non-empty value by
    name, every ``tag``)``. Raises BadRequest: an empty ``page`` or ``page_size``."""
    return _values(params)


def _page(values: Mapping[str, str]) -> tuple[int, int]:
    page = positive_integer("page", values["page"]) if "page" in values else 1
    size = (
        positive_integer("page_size", values["page_size"], MAX_PAGE_SIZE)
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


UNSUPPORTED_FILTERS: Mapping[str, str] = {
    "organization_badge": "opendepot's organizations carry no badges",
    "owner": "opendepot's datasets are owned by organizations, never by a user",
    "followed_by": "opendepot has no users nor followers",
    "topic": "opendepot has no topics",
    "credit": "opendepot has no credits",
    "dataservice": "opendepot has no dataservices",
    "reuse": "the dataset list is not filtered by reuse (see /api/1/reuses/{id}/)",
}
"""udata dataset-list filters opendepot answers with a 400 naming them (and why)."""
FLAGS = ("featured", "archived", "deleted", "private")
"""udata's boolean filters (every opendepot dataset is public, live and not featured)."""
_PERIOD = re.compile(r"^([0-9]{4}-[0-9]{2}-[0-9]{2})[-/]([0-9]{4}-[0-9]{2}-[0-9]{2})$")


def _boolean(name: str, raw: str) -> bool:
    """flask-restx's ``inputs.boolean``: true/1/on, false/0 (any case)."""
    low = raw.lower()
    if low in ("true", "1", "on"):
        return True
    if low in ("false", "0"):
        return False
    raise BadRequest(f"{name}={shown(raw)} is not a boolean (true or false)")


def _period(raw: str) -> tuple[str, str]:
    """``(first day, last day)`` of a ``temporal_coverage`` value. Raises BadRequest: not two
    dates ``YYYY-MM-DD``, an impossible date (``2020-02-30``), or the last day before the
    first."""
    found = _PERIOD.match(raw)
    if not found:
        raise BadRequest(f"temporal_coverage={shown(raw)} is not a period "
                         "YYYY-MM-DD-YYYY-MM-DD (first day, then last day)")
    for day in (found[1], found[2]):
        try:
            date.fromisoformat(day)
        except ValueError:
            raise BadRequest(f"temporal_coverage={shown(raw)}: {day} is not a date") from None
    if found[2] < found[1]:
        raise BadRequest(f"temporal_coverage={shown(raw)}: the period ends ({found[2]}) before "
                         f"it starts ({found[1]})")
    return found[1], found[2]


def parse_list_query(params: Iterable[tuple[str, str]]) -> ListQuery:
    """Read the dataset list's parameters: ``page``, ``page_size``, ``q``, ``tag``,
    ``organization``, ``format``, ``sort``, ``license``, ``geozone``, ``granularity``,
    ``temporal_coverage``, ``schema``, ``schema_version``, ``featured``, ``archived``,
    ``deleted``, ``private``.

    Other parameters are ignored (as udata does), except udata's filters opendepot cannot
    honour (``UNSUPPORTED_FILTERS``): a 400 naming them. Empty values count as absent (but an
    empty ``page`` or ``page_size`` is a 400, as udata's ``int`` parser answers); the last
    value of a repeated parameter wins, except ``tag`` (every value must match).

    Raises:
        BadRequest: ``page`` or ``page_size`` not a positive integer, ``page_size`` above 100,
            an unknown ``sort``, a flag not a boolean, a ``temporal_coverage`` not a period
            (two real dates, the first not after the last), an unsupported filter.
    """
    pairs, values, tags = _values(params)
    for name, why in UNSUPPORTED_FILTERS.items():
        if name in values:
            raise BadRequest(f"{name} is not a supported filter: {why}")
    sort = values.get("sort", "")
    if sort and sort.removeprefix("-") not in SORT_KEYS:
        raise BadRequest(
            f"sort={shown(sort)} is not one of {', '.join(SORT_KEYS)} (prefix - to reverse)"
        )
    page, size = _page(values)
    coverage = values.get("temporal_coverage")
    return ListQuery(
        page=page, page_size=size, params=pairs, q=values.get("q", ""), tags=tuple(tags),
        organization=values.get("organization", ""), format=values.get("format", "").lower(),
        sort=sort, license=values.get("license", ""), geozone=values.get("geozone", ""),
        granularity=values.get("granularity", ""),
        temporal_coverage=_period(coverage) if coverage else None,
        schema=values.get("schema", ""), schema_version=values.get("schema_version", ""),
        flags=tuple((f, _boolean(f, values[f])) for f in FLAGS if f in values),
    )  # fmt: skip


def parse_level(
    params: Iterable[tuple[str, str]], levels: Sequence[str], known: Sequence[str] = ()
) -> str | None:
    """The ``level`` parameter (None when absent), one of the dataset's ``levels``.

    Raises: NotFound, a level of ``known`` (every dataset's, which the OpenAPI document lists)
    that this dataset does not have; BadRequest, any other level."""
    _, values, _ = _values(params)
    level = values.get("level")
    if level is not None and level not in levels:
        if level in known:
            raise NotFound(f"no table at level {level!r} here: its levels are {', '.join(levels)}")
        raise BadRequest(f"level={shown(level)} is not one of {', '.join(levels)}")
    return level


# --- the dataset list: filters, sort, pager -----------------------------------------------------


def fold(text: str) -> str:
    """Text for matching and sorting: accents removed, case folded (``Données`` -> ``donnees``)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _meets(coverage: Mapping[str, Any] | None, period: tuple[str, str]) -> bool:
    """Whether a temporal coverage meets a period (shares at least a day; an open end runs on)."""
    if not coverage or not coverage.get("start"):
        return False
    end = str(coverage.get("end") or "9999-12-31")
    return str(coverage["start"])[:10] <= period[1] and end[:10] >= period[0]


def _matches(d: Document, query: ListQuery) -> bool:
    resources, spatial = d["resources"], d["spatial"] or {}
    org = d["organization"] or {}
    tests = (
        not query.tags or set(query.tags) <= set(d["tags"]),
        not query.organization or query.organization in {org.get("slug"), org.get("id")},
        not query.format or any(str(r["format"]).lower() == query.format for r in resources),
        not query.license or d["license"] == query.license,
        not query.geozone or query.geozone in (spatial.get("zones") or []),
        not query.granularity or spatial.get("granularity") == query.granularity,
        not query.temporal_coverage or _meets(d["temporal_coverage"], query.temporal_coverage),
        not query.schema or any((r["schema"] or {}).get("name") == query.schema
                                for r in resources),
        not query.schema_version or any((r["schema"] or {}).get("version") == query.schema_version
                                        for r in resources),
        all(bool(d.get(flag)) == wanted for flag, wanted in query.flags),
    )  # fmt: skip
    if not all(tests):
        return False
    if query.q:  # words of the title, description, tags, slug or id
        haystack = fold(" ".join([d["title"], d["description"], *d["tags"], d["slug"], d["id"]]))
        if not all(word in haystack for word in fold(query.q).split()):
            return False
    return True


_SORT_FIELD = {"title": "title", "created": "created_at", "last_update": "last_update"}


def _sorted(docs: Sequence[Document], sort: str) -> list[Document]:
    if not sort:
        return list(docs)  # already by slug
    key, reverse = sort.removeprefix("-"), sort.startswith("-")
    # stable sort: ties keep slug order, also when descending
    if key in _SORT_FIELD:
        name = _SORT_FIELD[key]
        return sorted(docs, key=lambda d: fold(str(d[name] or "")), reverse=reverse)
    return sorted(docs, key=lambda d: int(d["metrics"].get(key) or 0), reverse=reverse)


def served(d: Document, now: datetime, reuses: Mapping[str, int] | None = None) -> Document:
    """A dataset document as served at ``now``: with its ``quality``, and its
    ``metrics.reuses`` from ``reuses`` (reuse count by dataset id; None: as built, 0)."""
    out = with_quality(d, now)
    return with_reuses(out, reuses.get(d["id"], 0)) if reuses is not None else out


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


def list_datasets(
    catalog: Catalog, query: ListQuery, links: Links, now: datetime, url: str = "",
    reuses: Mapping[str, int] | None = None,
) -> Document:
    """One page of the filtered, sorted dataset list, as a udata pager. ``url``: the list's
    URL (the pager links' base; "" for ``/api/1/datasets/``); ``reuses``: reuse count by
    dataset id (see ``served``; None: as built).

    Shape: ``{"data": [served dataset documents...], "page", "page_size", "total",
    "next_page": url | None, "previous_page": url | None}``.
    """
    docs = [served(d, now, reuses) for d in catalog.datasets] if reuses is not None else list(
        catalog.datasets)
    found = _sorted([d for d in docs if _matches(d, query)], query.sort)
    data, page = pager(found, query, url or links.api(DATASETS_PATH))
    return {"data": [served(d, now) if reuses is None else d for d in data], **page}


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


def datasets_csv(
    catalog: Catalog, now: datetime, datasets: Sequence[Document] | None = None
) -> str:
    """Every dataset (or those of ``datasets``) as one row of a ``;``-separated CSV, as
    data.gouv.fr's catalog export."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for d in catalog.datasets if datasets is None else datasets:
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


RESOURCES_CSV_COLUMNS = (
    "dataset.id", "dataset.title", "dataset.slug", "dataset.url", "dataset.organization",
    "dataset.organization_id", "dataset.license", "dataset.private", "dataset.archived", "id",
    "url", "title", "description", "filetype", "type", "format", "mime", "filesize",
    "checksum.type", "checksum.value", "created_at", "modified", "downloads",
    "harvest.created_at", "harvest.modified_at", "schema_name", "schema_version", "preview_url",
    "extras",
)  # fmt: skip
"""Columns of ``/api/1/site/resources.csv``: udata's ``ResourcesCsvAdapter``, in its order."""


def resources_csv(catalog: Catalog, datasets: Sequence[Document] | None = None) -> str:
    """Every resource of every dataset (or of ``datasets``) as one row of a ``;``-separated
    CSV, as data.gouv.fr's resources export (``RESOURCES_CSV_COLUMNS``; booleans ``False``
    as udata writes them, ``extras`` as JSON, ``downloads`` 0: not counted)."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\n")
    writer.writerow(RESOURCES_CSV_COLUMNS)
    for d in catalog.datasets if datasets is None else datasets:
        org = d["organization"] or {}
        head = [d["id"], d["title"], d["slug"], d["page"], org.get("name", ""),
                org.get("id", ""), d["license"], d["private"], bool(d["archived"])]
        for r in d["resources"]:
            checksum, schema = r["checksum"] or {}, r["schema"] or {}
            writer.writerow([
                *head, r["id"], r["url"], r["title"], r["description"], r["filetype"],
                r["type"], r["format"], r["mime"] or "", r["filesize"] if r["filesize"] is not
                None else "", checksum.get("type", ""), checksum.get("value") or "",
                r["created_at"] or "", r["last_modified"] or "", r["metrics"]["views"], "", "",
                schema.get("name") or "", schema.get("version") or "", r["preview_url"] or "",
                json.dumps(r["extras"], ensure_ascii=False, sort_keys=True),
            ])  # fmt: skip
    return out.getvalue()
