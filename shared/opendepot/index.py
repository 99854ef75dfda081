"""The HTTP index's domain: ``catalog.json`` and manifests shaped as data.gouv.fr (udata API v1)
documents, plus the pages, versions, schemas and exports built from them.

Pure functions over plain dicts: no boto3, no environment, no HTTP framework, no clock (``now``
is passed in). The handler (``functions/index_api/app.py``) reads ``catalog.json`` and the
manifests through the storage port, calls ``build_catalog`` once per catalog version and base
URL, then answers each request with the functions below. Errors a reuser can cause are one
exception family (``ApiError``), each class with its HTTP ``status``.

Identifiers (stable, derived from names, never stored):
- dataset ``id``: ``uuid5(NAMESPACE_URL, "opendepot:{dataset}")``;
- organization ``id``: ``uuid5(NAMESPACE_URL, "opendepot:organization:{slug}")`` unless the
  registry gives one;
- resource ``id``: ``uuid5(NAMESPACE_URL, "opendepot:{dataset}:{level}:{format}")`` (taken from
  the manifest for the current version, computed the same way for older versions);
- schema ``version``: the first 12 hex of the sha256 of the Table Schema's canonical JSON (sorted
  keys, no spaces): it changes exactly when the schema does.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import unicodedata
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

CATALOG_KEY = "catalog.json"
"""Key of the catalog in the published bucket."""
MANIFEST_NAME = "manifest.json"
"""Name of a dataset's manifest, under ``{dataset}/``."""
DATASETS_PATH = "/api/1/datasets/"
"""Path of the dataset list; every dataset route hangs below it."""
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
SORT_KEYS = ("title", "created", "last_update")
"""Values of ``sort`` (each may take a ``-`` prefix for descending order)."""

GRANULARITY = {"dep": "fr:departement", "reg": "fr:region", "fra": "country"}
"""udata spatial granularity of each geographic level."""
ZONES = ["country:fr"]
"""udata spatial zones every opendepot dataset covers (France, with its overseas departments)."""
MIMES = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}
"""MIME type of each published format."""
OPEN_FORMATS = frozenset({"csv", "parquet", "json"})
LICENSES: Mapping[str, tuple[str, str]] = {
    "lov2": (
        "Licence Ouverte / Open Licence version 2.0",
        "https://www.etalab.gouv.fr/licence-ouverte-open-licence",
    ),
    "fr-lo": (
        "Licence Ouverte / Open Licence",
        "https://www.etalab.gouv.fr/licence-ouverte-open-licence",
    ),
    "odc-odbl": (
        "Open Data Commons Open Database License (ODbL)",
        "https://opendatacommons.org/licenses/odbl/1-0/",
    ),
    "cc-by": ("Creative Commons Attribution", "https://creativecommons.org/licenses/by/4.0/"),
}
"""udata license id -> (title, URL)."""

FREQUENCY_PERIOD: Mapping[str, timedelta] = {
    "hourly": timedelta(hours=1),
    **dict.fromkeys(("fourTimesADay", "threeTimesADay", "semidaily", "daily"), timedelta(days=1)),
    **dict.fromkeys(
        ("fourTimesAWeek", "threeTimesAWeek", "semiweekly", "weekly"), timedelta(weeks=1)
    ),
    "biweekly": timedelta(weeks=2),
    **dict.fromkeys(("threeTimesAMonth", "semimonthly", "monthly"), timedelta(days=31)),
    "bimonthly": timedelta(days=62),
    "quarterly": timedelta(days=365 / 4),
    **dict.fromkeys(("threeTimesAYear", "semiannual", "annual"), timedelta(days=365)),
    "biennial": timedelta(days=730),
    "triennial": timedelta(days=1095),
    "quinquennial": timedelta(days=1825),
}
"""The longest wait before the next update, per udata frequency (udata's own table)."""
UNSCHEDULED = frozenset({"continuous", "irregular", "punctual"})
"""Frequencies without a due date: always "in time"."""
GRACE = timedelta(days=1)
"""Lateness tolerated before ``update_fulfilled_in_time`` turns false (udata: one day)."""
DESCRIPTION_QUALITY_LENGTH = 100
"""A description longer than this counts as documented (udata's default)."""

_LEVEL_LABEL = {"dep": "par département", "reg": "par région", "fra": "France entière"}
_FORMAT_LABEL = {"csv": "CSV (séparateur « ; », UTF-8)", "parquet": "Parquet (typé, zstd)"}

Document = dict[str, Any]
"""A JSON document as the API returns it."""


# --- errors -----------------------------------------------------------------------------------


class ApiError(Exception):
    """A request the index cannot answer; ``status`` is the HTTP status of the error envelope."""

    status: int = 500
    headers: ClassVar[Mapping[str, str]] = {}

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ApiError):
    """A query parameter is malformed or out of range."""

    status = 400


class NotFound(ApiError):
    """No dataset, resource, version or route by that name."""

    status = 404


class MethodNotAllowed(ApiError):
    """The path exists but the index is read-only (GET and HEAD only)."""

    status = 405
    headers: ClassVar[Mapping[str, str]] = {"Allow": "GET, HEAD, OPTIONS"}


def error_document(exc: ApiError) -> Document:
    """The one JSON error envelope: ``{"status": 404, "message": "..."}``."""
    return {"status": exc.status, "message": exc.message}


# --- identifiers, links, time -----------------------------------------------------------------


@dataclass(frozen=True)
class Links:
    """Base URLs the documents link to."""

    published_url: str
    """Base URL of the published bucket's files, no trailing slash."""
    api_base_url: str = ""
    """Base URL of this API, no trailing slash ("" gives relative links)."""

    def file(self, path: str) -> str:
        """Download URL of a published object."""
        return f"{self.published_url.rstrip('/')}/{path.lstrip('/')}"

    def api(self, path: str) -> str:
        """URL of an API path (relative when ``api_base_url`` is empty)."""
        return f"{self.api_base_url.rstrip('/')}{path}"

    def dataset(self, slug: str, tail: str = "") -> str:
        """URL of a dataset's API document, or of a path below it (``versions/``...)."""
        return self.api(f"{DATASETS_PATH}{quote(slug, safe='')}/{tail}")


def dataset_id(slug: str) -> str:
    """Stable id of a dataset: ``uuid5(NAMESPACE_URL, "opendepot:{slug}")``."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"opendepot:{slug}"))


def resource_id(slug: str, level: str, fmt: str) -> str:
    """Stable id of a resource: ``uuid5(NAMESPACE_URL, "opendepot:{dataset}:{level}:{format}")``."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"opendepot:{slug}:{level}:{fmt}"))


def schema_version(schema: Mapping[str, Any] | None) -> str | None:
    """Version of a Table Schema: first 12 hex of sha256 of its canonical JSON (None if none)."""
    if not schema:
        return None
    canonical = json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


def parse_time(value: str | None) -> datetime | None:
    """An ISO 8601 timestamp (``Z`` or offset; naive means UTC) as an aware datetime."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def iso(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` in UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def next_update(frequency: str, last_update: str | None) -> datetime | None:
    """When the next update is due: ``last_update`` plus the frequency's period (udata rule);
    None for frequencies without a period (``unknown``, ``continuous``, ``irregular``...)."""
    period = FREQUENCY_PERIOD.get(frequency)
    last = parse_time(last_update)
    if period is None or last is None:
        return None
    return last + period


# --- catalog -> documents ---------------------------------------------------------------------


def organization_document(org: Mapping[str, Any] | None) -> Document | None:
    """``{"id", "name", "slug"}`` of the producing organization (None when the entry has none)."""
    if not org:
        return None
    slug = str(org.get("slug") or org.get("name") or "")
    return {
        "id": str(
            org.get("id") or uuid.uuid5(uuid.NAMESPACE_URL, f"opendepot:organization:{slug}")
        ),
        "name": org.get("name", slug),
        "slug": slug,
    }


def _schema_ref(slug: str, schemas: Mapping[str, Any], level: str | None, links: Links) -> Document:
    """``{"name", "version", "url"}`` of a level's Table Schema (the primary level if None)."""
    tail = "schema/" + (f"?{urlencode({'level': level})}" if level else "")
    key = level or next(iter(schemas), None)
    return {
        "name": slug,
        "version": schema_version(schemas.get(key)) if key else None,
        "url": links.dataset(slug, tail),
    }


def resource_document(entry: Mapping[str, Any], res: Mapping[str, Any], links: Links) -> Document:
    """One file of the current version, as a udata resource.

    Shape: ``{"id", "title", "description", "type": "main", "filetype": "file",
    "format": "csv"|"parquet", "url": <this version's immutable file>,
    "latest": <api>/api/1/datasets/r/{id}, "checksum": {"type": "sha256", "value"},
    "filesize", "mime", "created_at", "last_modified", "schema": {"name", "version", "url"},
    "extras": {"rows", "level", "version"}}``.
    """
    level = str(res.get("level", ""))
    fmt = str(res.get("format", ""))
    rows = res.get("rows")
    version = res.get("version") or entry.get("version")
    slug = str(entry["name"])
    description = res.get("description") or " ; ".join(
        part
        for part in (
            _LEVEL_LABEL.get(level, level),
            _FORMAT_LABEL.get(fmt, fmt),
            f"{rows} lignes" if rows is not None else "",
            f"version {version}" if version else "",
        )
        if part
    )
    return {
        "id": res["id"],
        "title": res.get("title") or res.get("name") or res["id"],
        "description": description,
        "type": "main",
        "filetype": "file",
        "format": fmt,
        "url": links.file(res["path"]),
        "latest": links.api(f"{DATASETS_PATH}r/{res['id']}"),
        "checksum": {"type": "sha256", "value": res.get("sha256")},
        "filesize": res.get("bytes"),
        "mime": res.get("mime") or MIMES.get(fmt),
        "created_at": res.get("created_at") or entry.get("created_at") or entry.get("published_at"),
        "last_modified": res.get("last_modified") or entry.get("published_at"),
        "schema": _schema_ref(slug, _schemas(entry), level or None, links),
        "extras": {"rows": rows, "level": level, "version": version},
    }


def _schemas(entry: Mapping[str, Any]) -> dict[str, Any]:
    """Table Schema per level from a catalog entry or manifest (primary level first)."""
    schemas = dict(entry.get("schemas") or {})
    levels = list(entry.get("levels") or [])
    if entry.get("schema") and levels and levels[0] not in schemas:
        schemas[levels[0]] = entry["schema"]
    order = {level: i for i, level in enumerate(levels)}
    return dict(sorted(schemas.items(), key=lambda kv: order.get(kv[0], len(order))))


def dataset_document(entry: Mapping[str, Any], links: Links) -> Document:
    """One ``catalog.json`` entry as a udata dataset, without ``quality`` (time-dependent: see
    ``with_quality``).

    Shape: ``{"id", "slug", "title", "acronym", "description", "created_at", "last_modified",
    "last_update", "tags": [str], "frequency", "frequency_date", "organization": {"id", "name",
    "slug"}, "license", "temporal_coverage": {"start", "end"} | None,
    "spatial": {"granularity", "zones", "geom"} | None, "schema": {"name", "version", "url"},
    "extras": {"version", "rows": {level: int}, "rows_left_out", "levels", "versions",
    "datapackage"}, "resources": [resource_document...], "uri", "page"}``.
    """
    slug = str(entry["name"])
    levels = list(entry.get("levels") or [])
    coverage = entry.get("temporal_coverage")
    frequency = str(entry.get("frequency") or "unknown")
    resources = [resource_document(entry, r, links) for r in entry.get("resources") or []]
    last_update = max(
        (r["last_modified"] for r in resources if r["last_modified"]),
        default=entry.get("published_at"),
    )
    due = next_update(frequency, last_update)
    uri = links.dataset(slug)
    schemas = _schemas(entry)
    return {
        "id": dataset_id(slug),
        "slug": slug,
        "title": entry.get("title", slug),
        "acronym": entry.get("acronym"),
        "description": entry.get("description", ""),
        "created_at": entry.get("created_at") or entry.get("published_at"),
        "last_modified": entry.get("published_at"),
        "last_update": last_update,
        "tags": list(entry.get("tags") or []),
        "frequency": frequency,
        "frequency_date": iso(due) if due else None,
        "organization": organization_document(entry.get("organization")),
        "license": entry.get("license") or "notspecified",
        "temporal_coverage": (
            {"start": coverage.get("start"), "end": coverage.get("end")} if coverage else None
        ),
        "spatial": (
            {"granularity": GRANULARITY.get(levels[0], "other"), "zones": list(ZONES), "geom": None}
            if levels
            else None
        ),
        "schema": _schema_ref(slug, schemas, None, links),
        "extras": {
            "version": entry.get("version"),
            "rows": dict(entry.get("rows") or {}),
            "rows_left_out": entry.get("rows_left_out", 0),
            "levels": levels,
            "versions": links.dataset(slug, "versions/"),
            "datapackage": links.dataset(slug, "datapackage.json"),
        },
        "resources": resources,
        "uri": uri,
        "page": uri,
    }


def quality_document(d: Mapping[str, Any], now: datetime) -> Document:
    """udata's ``quality`` of a dataset document at ``now``.

    ``update_fulfilled_in_time``: true while ``now`` is at most one day past ``frequency_date``
    (last update + the frequency's period); always true for ``continuous``, ``irregular`` and
    ``punctual``; null when the frequency is ``unknown`` (or not a udata frequency).
    ``score`` is the share of the nine udata criteria met.
    """
    due = parse_time(d.get("frequency_date"))
    frequency = d.get("frequency") or "unknown"
    in_time: bool | None
    if due is not None:
        in_time = now <= due + GRACE
    elif frequency in UNSCHEDULED:
        in_time = True
    else:
        in_time = None
    resources = d.get("resources") or []
    license_id = d.get("license")
    q: Document = {
        "license": bool(license_id) and license_id != "notspecified",
        "temporal_coverage": bool(d.get("temporal_coverage")),
        "spatial": bool(d.get("spatial")),
        "update_frequency": frequency != "unknown",
        "update_fulfilled_in_time": in_time,
        "dataset_description_quality": len(d.get("description") or "") > DESCRIPTION_QUALITY_LENGTH,
        "has_resources": bool(resources),
        "has_open_format": any(str(r.get("format")).lower() in OPEN_FORMATS for r in resources),
        "all_resources_available": bool(resources),  # our own immutable files
        "resources_documentation": any(r.get("description") for r in resources),
    }
    met = sum(1 for k, v in q.items() if v is True and k != "has_resources")
    q["score"] = round(met / 9, 4)
    return q


def with_quality(d: Document, now: datetime) -> Document:
    """The dataset document as served at ``now``: with its ``quality``."""
    return {**d, "quality": quality_document(d, now)}


@dataclass(frozen=True)
class Catalog:
    """The catalog shaped for the API; built once per version of ``catalog.json`` and base URL."""

    datasets: tuple[Document, ...] = ()
    """udata dataset documents (without ``quality``), sorted by slug."""
    by_key: Mapping[str, Document] = field(default_factory=dict)
    """Dataset document by slug and by id."""
    resources: Mapping[str, tuple[Document, Document]] = field(default_factory=dict)
    """(dataset, resource) documents by resource id."""
    generated_at: str | None = None
    """``generated_at`` of ``catalog.json``."""


def build_catalog(raw: Mapping[str, Any] | None, links: Links) -> Catalog:
    """Shape a parsed ``catalog.json`` (``{"generated_at", "datasets": [entry...]}``).

    ``None`` (no catalog published yet) gives an empty catalog.
    """
    docs = sorted(
        (dataset_document(e, links) for e in (raw or {}).get("datasets") or []),
        key=lambda d: d["slug"],
    )
    by_key: dict[str, Document] = {}
    resources: dict[str, tuple[Document, Document]] = {}
    for d in docs:
        by_key[d["slug"]] = by_key[d["id"]] = d
        for r in d["resources"]:
            resources[r["id"]] = (d, r)
    return Catalog(tuple(docs), by_key, resources, (raw or {}).get("generated_at"))


def get_dataset(catalog: Catalog, key: str) -> Document:
    """The dataset whose slug or id is ``key`` (without ``quality``). Raises NotFound."""
    doc = catalog.by_key.get(key)
    if doc is None:
        raise NotFound(f"dataset {key!r} not found")
    return doc


def get_resource(catalog: Catalog, dataset_key: str, resource_id: str) -> Document:
    """One resource of one dataset. Raises NotFound."""
    dataset = get_dataset(catalog, dataset_key)
    found = catalog.resources.get(resource_id)
    if found is not None and found[0] is dataset:
        return found[1]
    raise NotFound(f"resource {resource_id!r} not found in dataset {dataset['slug']!r}")


def find_resource(catalog: Catalog, resource_id: str) -> Document:
    """A resource by id alone (what ``/r/{id}`` redirects from). Raises NotFound."""
    found = catalog.resources.get(resource_id)
    if found is None:
        raise NotFound(f"resource {resource_id!r} not found")
    return found[1]


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


def _positive(name: str, raw: str, maximum: int | None = None) -> int:
    if not raw.isascii() or not raw.isdigit():
        raise BadRequest(f"{name}={raw!r} is not an integer")
    value = int(raw)
    if value < 1 or (maximum is not None and value > maximum):
        bound = f" and at most {maximum}" if maximum is not None else ""
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
            f"sort={sort!r} is not one of {', '.join(SORT_KEYS)} (prefix - to reverse)"
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
        raise BadRequest(f"level={level!r} is not one of {', '.join(levels)}")
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


# --- versions (from the manifest) -------------------------------------------------------------


def _level_of(slug: str, name: str) -> str:
    """Level of a published table from its name (``{dataset}-{level}``)."""
    return name.removeprefix(f"{slug}-") if name.startswith(f"{slug}-") else name


def _producers_by_upload(manifest: Mapping[str, Any]) -> dict[str, str | None]:
    known: dict[str, str | None] = {}
    for entry in manifest.get("versions") or []:
        for u in entry.get("uploads") or []:
            known[str(u.get("upload_id"))] = u.get("producer")
    for u in manifest.get("uploads") or []:
        known[str(u.get("upload_id"))] = u.get("producer")
    return known


def version_document(
    slug: str,
    entry: Mapping[str, Any],
    links: Links,
    producers: Mapping[str, str | None] | None = None,
) -> Document:
    """One entry of a manifest's ``versions`` as the API serves it.

    Shape: ``{"version", "published_at", "uploads": [{"upload_id", "producer"}],
    "producers": [str], "rows": {level: int}, "resources": [{"id", "name", "level", "format",
    "mime", "url", "checksum": {"type", "value"}, "filesize", "rows"}], "datapackage": url,
    "uri": url}``. ``producer`` is null when the manifest no longer knows it.
    """
    version = str(entry["version"])
    known = producers or {}
    uploads = [{"upload_id": u, "producer": known.get(u)} for u in entry.get("upload_ids") or []]
    resources = []
    for r in entry.get("resources") or []:
        fmt = str(r.get("format", ""))
        level = str(r.get("level") or _level_of(slug, str(r.get("name", ""))))
        resources.append(
            {
                "id": r.get("id") or resource_id(slug, level, fmt),
                "name": r.get("name"),
                "level": level,
                "format": fmt,
                "mime": r.get("mime") or MIMES.get(fmt),
                "url": links.file(r["path"]),
                "checksum": {"type": "sha256", "value": r.get("sha256")},
                "filesize": r.get("bytes"),
                "rows": r.get("rows"),
            }
        )
    return {
        "version": version,
        "published_at": entry.get("published_at"),
        "uploads": uploads,
        "producers": sorted({p for u in uploads if (p := u["producer"])}),
        "rows": dict(entry.get("rows") or {}),
        "resources": resources,
        "datapackage": links.file(f"{slug}/{version}/datapackage.json"),
        "uri": links.dataset(slug, f"versions/{quote(version, safe='')}/"),
    }


@dataclass(frozen=True)
class Versions:
    """A dataset's versions shaped for the API; built once per manifest version and base URL."""

    slug: str
    docs: tuple[Document, ...] = ()
    """``version_document`` of every version, newest first."""
    by_version: Mapping[str, Document] = field(default_factory=dict)
    url: str = ""
    """URL of the versions list (the pager links' base)."""


def build_versions(slug: str, manifest: Mapping[str, Any], links: Links) -> Versions:
    """Shape every entry of a manifest's ``versions`` (newest first, whatever the stored order)."""
    known = _producers_by_upload(manifest)
    entries = sorted(manifest.get("versions") or [], key=lambda e: str(e["version"]), reverse=True)
    docs = tuple(version_document(slug, e, links, known) for e in entries)
    return Versions(slug, docs, {d["version"]: d for d in docs}, links.dataset(slug, "versions/"))


def list_versions(versions: Versions, query: PageQuery) -> Document:
    """One page of a dataset's versions, newest first, as a udata pager of ``version_document``."""
    data, page = pager(versions.docs, query, versions.url)
    return {"data": data, **page}


def get_version(versions: Versions, version: str) -> Document:
    """One version of a dataset. Raises NotFound."""
    doc = versions.by_version.get(version)
    if doc is None:
        raise NotFound(f"version {version!r} not found in dataset {versions.slug!r}")
    return doc


# --- schema and data package ------------------------------------------------------------------


def schema_document(
    manifest: Mapping[str, Any], levels: Sequence[str], level: str | None
) -> Document:
    """The Table Schema of ``level`` (the primary level when None) with its ``version``.

    Raises NotFound when the manifest has no schema for that level.
    """
    schemas = _schemas({**manifest, "levels": list(levels)})
    key = level or next(iter(schemas), None)
    schema = schemas.get(key) if key else None
    if not schema:
        raise NotFound(f"no Table Schema for level {key!r} of dataset {manifest.get('dataset')!r}")
    return {**schema, "version": schema_version(schema)}


def datapackage_document(
    package: Mapping[str, Any], manifest: Mapping[str, Any], links: Links
) -> Document:
    """The version's ``datapackage.json`` with each resource ``path`` made an absolute URL.

    Published next to its files, the package uses relative paths; served by the API it must
    point at the files themselves.
    """
    folder = str(manifest.get("datapackage_path", "")).rpartition("/")[0]
    resources = []
    for r in package.get("resources") or []:
        path = r.get("path")
        if isinstance(path, str) and "://" not in path:
            r = {**r, "path": links.file(f"{folder}/{path}" if folder else path)}
        resources.append(r)
    return {**package, "resources": resources}


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


# --- HTTP caching -----------------------------------------------------------------------------


def render(doc: Any) -> str:
    """The JSON text of a document (UTF-8 text, not ASCII escapes), as the API sends it."""
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def etag(body: str) -> str:
    """Strong entity tag of a response body: ``"<first 32 hex of its sha256>"``."""
    return '"' + hashlib.sha256(body.encode("utf-8")).hexdigest()[:32] + '"'


def etag_matches(if_none_match: str | None, tag: str) -> bool:
    """Whether an ``If-None-Match`` header holds for ``tag`` (weak comparison, ``*`` matches)."""
    if not if_none_match:
        return False
    bare = tag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == bare:
            return True
    return False
