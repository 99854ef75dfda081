"""The HTTP index's domain: ``catalog.json`` entries shaped as data.gouv.fr (udata API v1) documents.

Pure functions over plain dicts: no boto3, no environment, no HTTP framework. The handler
(``functions/index_api/app.py``) reads ``catalog.json`` through the storage port, calls
``build_catalog`` once per catalog version, then answers each request with ``parse_list_query``,
``list_datasets``, ``get_dataset``, ``get_resource`` and ``find_resource``. Errors a reuser can
cause are one exception family (``ApiError``), each class with its HTTP ``status``.

Identifiers (stable, derived from names, never stored):
- dataset ``id``: ``uuid5(NAMESPACE_URL, "opendepot:{dataset}")``;
- organization ``id``: ``uuid5(NAMESPACE_URL, "opendepot:organization:{slug}")`` unless the
  registry gives one;
- resource ``id``: taken from the manifest (``uuid5(NAMESPACE_URL, "opendepot:{dataset}:{level}:{format}")``).
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlencode

CATALOG_KEY = "catalog.json"
"""Key of the catalog in the published bucket."""
DATASETS_PATH = "/api/1/datasets/"
"""Path of the dataset list; every other route hangs below it."""
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
SORT_KEYS = ("title", "created", "last_update")
"""Values of ``sort`` (each may take a ``-`` prefix for descending order)."""

GRANULARITY = {"dep": "fr:departement", "reg": "fr:region", "fra": "country"}
"""udata spatial granularity of each geographic level."""
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
    """No dataset, resource or route by that name."""

    status = 404


class MethodNotAllowed(ApiError):
    """The path exists but the index is read-only (GET and HEAD only)."""

    status = 405
    headers: ClassVar[Mapping[str, str]] = {"Allow": "GET, HEAD, OPTIONS"}


def error_document(exc: ApiError) -> Document:
    """The one JSON error envelope: ``{"status": 404, "message": "..."}``."""
    return {"status": exc.status, "message": exc.message}


# --- catalog -> documents ---------------------------------------------------------------------


@dataclass(frozen=True)
class Links:
    """Base URLs the documents link to (from the settings)."""

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


def dataset_id(slug: str) -> str:
    """Stable id of a dataset: ``uuid5(NAMESPACE_URL, "opendepot:{slug}")``."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"opendepot:{slug}"))


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


def resource_document(entry: Mapping[str, Any], res: Mapping[str, Any], links: Links) -> Document:
    """One file of the current version, as a udata resource.

    Shape: ``{"id", "title", "description", "type": "main", "filetype": "file",
    "format": "csv"|"parquet", "url": <this version's immutable file>,
    "latest": <api>/api/1/datasets/r/{id}, "checksum": {"type": "sha256", "value"},
    "filesize", "mime", "created_at", "last_modified",
    "extras": {"rows", "level", "version"}}``.
    """
    level = str(res.get("level", ""))
    fmt = str(res.get("format", ""))
    rows = res.get("rows")
    version = res.get("version") or entry.get("version")
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
        "mime": res.get("mime"),
        "created_at": res.get("created_at") or entry.get("created_at") or entry.get("published_at"),
        "last_modified": res.get("last_modified") or entry.get("published_at"),
        "extras": {"rows": rows, "level": level, "version": version},
    }


def dataset_document(entry: Mapping[str, Any], links: Links) -> Document:
    """One ``catalog.json`` entry as a udata dataset.

    Shape: ``{"id", "slug", "title", "description", "created_at", "last_modified",
    "last_update", "tags": [str], "frequency", "organization": {"id", "name", "slug"},
    "license", "temporal_coverage": {"start", "end"} | None,
    "spatial": {"granularity"} | None, "extras": {"version", "rows": {level: int},
    "rows_left_out"}, "resources": [resource_document...], "uri"}``.
    """
    slug = str(entry["name"])
    levels = list(entry.get("levels") or [])
    coverage = entry.get("temporal_coverage")
    return {
        "id": dataset_id(slug),
        "slug": slug,
        "title": entry.get("title", slug),
        "description": entry.get("description", ""),
        "created_at": entry.get("created_at") or entry.get("published_at"),
        "last_modified": entry.get("published_at"),
        "last_update": entry.get("published_at"),
        "tags": list(entry.get("tags") or []),
        "frequency": entry.get("frequency", "unknown"),
        "organization": organization_document(entry.get("organization")),
        "license": entry.get("license", "notspecified"),
        "temporal_coverage": (
            {"start": coverage.get("start"), "end": coverage.get("end")} if coverage else None
        ),
        "spatial": {"granularity": GRANULARITY.get(levels[0], "other")} if levels else None,
        "extras": {
            "version": entry.get("version"),
            "rows": dict(entry.get("rows") or {}),
            "rows_left_out": entry.get("rows_left_out", 0),
        },
        "resources": [resource_document(entry, r, links) for r in entry.get("resources") or []],
        "uri": links.api(f"{DATASETS_PATH}{slug}/"),
    }


@dataclass(frozen=True)
class Catalog:
    """The catalog shaped for the API; built once per version of ``catalog.json``."""

    datasets: tuple[Document, ...] = ()
    """udata dataset documents, sorted by slug."""
    by_key: Mapping[str, Document] = field(default_factory=dict)
    """Dataset document by slug and by id."""
    resources: Mapping[str, tuple[Document, Document]] = field(default_factory=dict)
    """(dataset, resource) documents by resource id."""


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
    return Catalog(tuple(docs), by_key, resources)


def get_dataset(catalog: Catalog, key: str) -> Document:
    """The dataset whose slug or id is ``key``. Raises NotFound."""
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


# --- the dataset list: query, filters, sort, pager ---------------------------------------------


@dataclass(frozen=True)
class ListQuery:
    """The parsed query string of ``GET /api/1/datasets/``."""

    page: int = 1
    """1-based page number."""
    page_size: int = DEFAULT_PAGE_SIZE
    """Datasets per page, 1..100."""
    q: str = ""
    """Words that must all appear (accents and case ignored) in title, description or tags."""
    tags: tuple[str, ...] = ()
    """Tags a dataset must all carry (``tag`` may repeat)."""
    organization: str = ""
    """Organization slug or id."""
    sort: str = ""
    """``title``, ``created`` or ``last_update``, ``-`` prefix for descending; "" = by slug."""
    params: tuple[tuple[str, str], ...] = ()
    """The query string as received, kept to build the pager links."""


def _positive(name: str, raw: str, maximum: int | None = None) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name}={raw!r} is not an integer") from None
    if value < 1 or (maximum is not None and value > maximum):
        bound = f" and at most {maximum}" if maximum is not None else ""
        raise BadRequest(f"{name}={value} must be at least 1{bound}")
    return value


def parse_list_query(params: Iterable[tuple[str, str]]) -> ListQuery:
    """Read ``page``, ``page_size``, ``q``, ``tag``, ``organization`` and ``sort``.

    Unknown parameters are ignored (as udata does); empty values count as absent.

    Raises:
        BadRequest: ``page`` or ``page_size`` not a positive integer, ``page_size`` above 100,
            or an unknown ``sort``.
    """
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
    sort = values.get("sort", "")
    if sort and sort.removeprefix("-") not in SORT_KEYS:
        raise BadRequest(
            f"sort={sort!r} is not one of {', '.join(SORT_KEYS)} (prefix - to reverse)"
        )
    return ListQuery(
        page=_positive("page", values["page"]) if "page" in values else 1,
        page_size=(
            _positive("page_size", values["page_size"], MAX_PAGE_SIZE)
            if "page_size" in values
            else DEFAULT_PAGE_SIZE
        ),
        q=values.get("q", ""),
        tags=tuple(tags),
        organization=values.get("organization", ""),
        sort=sort,
        params=pairs,
    )


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


def page_url(links: Links, params: Sequence[tuple[str, str]], page: int) -> str:
    """URL of another page of the list: same parameters, ``page`` replaced (or appended)."""
    out = [(k, v) for k, v in params if k != "page"]
    out.append(("page", str(page)))
    return links.api(f"{DATASETS_PATH}?{urlencode(out)}")


def list_datasets(catalog: Catalog, query: ListQuery, links: Links) -> Document:
    """One page of the filtered, sorted dataset list, as a udata pager.

    Shape: ``{"data": [dataset_document...], "page", "page_size", "total",
    "next_page": url | None, "previous_page": url | None}``. A page past the end is empty
    (with a ``previous_page``), not an error.
    """
    found = _sorted([d for d in catalog.datasets if _matches(d, query)], query.sort)
    start = (query.page - 1) * query.page_size
    data = found[start : start + query.page_size]
    has_next = start + query.page_size < len(found)
    return {
        "data": data,
        "page": query.page,
        "page_size": query.page_size,
        "total": len(found),
        "next_page": page_url(links, query.params, query.page + 1) if has_next else None,
        "previous_page": page_url(links, query.params, query.page - 1) if query.page > 1 else None,
    }


# --- HTTP caching -----------------------------------------------------------------------------


def render(doc: Document) -> str:
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
