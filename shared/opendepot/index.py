"""The HTTP index's domain: ``catalog.json`` and manifests shaped as data.gouv.fr (udata API v1)
documents, plus the versions, schemas and data packages built from them.

Pure functions over the typed records of ``opendepot.contracts`` (``Catalog``, ``CatalogEntry``,
``Resource``, ``Manifest``, ``Version``): no boto3, no environment, no HTTP framework, no clock
(``now`` is passed in). ``opendepot.reader`` reads ``catalog.json`` and the manifests through the
storage port, parses them with the contracts and calls ``build_catalog`` once per catalog version
and base URL; ``opendepot.index_http`` answers each request with the functions below and those
of ``opendepot.paging`` (query strings, filters, pager, the CSV export, time travel) and
``opendepot.atom`` (feeds). The documents served are plain JSON
objects (``Document``). Errors are one exception family (``ApiError``), each class with its
HTTP ``status``.

Identifiers (stable, derived from names, never stored; made by ``opendepot.layout``):
- dataset ``id``: ``uuid5(NAMESPACE_URL, "opendepot:{dataset}")``;
- organization ``id``: ``uuid5(NAMESPACE_URL, "opendepot:organization:{slug}")`` unless the
  registry gives one;
- resource ``id``: ``uuid5(NAMESPACE_URL, "opendepot:{dataset}:{level}:{format}")`` (taken from
  the manifest for the current version, computed the same way for older versions);
- schema ``version``: the first 12 hex of the sha256 of the Table Schema's canonical JSON (sorted
  keys, no spaces): it changes exactly when the schema does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

from opendepot import contracts, udata_fields
from opendepot.layout import CATALOG_KEY as CATALOG_KEY
from opendepot.layout import MANIFEST_NAME as MANIFEST_NAME
from opendepot.layout import VERSION_FORMAT, datapackage_key
from opendepot.layout import dataset_id as dataset_id
from opendepot.layout import resource_id as resource_id

DATASETS_PATH = "/api/1/datasets/"
"""Path of the dataset list; every dataset route hangs below it."""
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
SORT_KEYS = ("title", "created", "last_update", "reuses", "followers", "views")
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


class TooLarge(ApiError):
    """An export of more rows than the API serves at once (api-tabular's 403)."""

    status = 403


class MethodNotAllowed(ApiError):
    """The path exists but the index is read-only (GET and HEAD only)."""

    status = 405
    headers: ClassVar[Mapping[str, str]] = {"Allow": "GET, HEAD, OPTIONS"}


class UnreadableDocument(ApiError):
    """A published ``catalog.json`` or manifest that does not parse (not JSON, or not its
    contract: ``contracts.ContractError``): an operator's problem, answered as a 500 whose
    message says nothing of the bucket; the cause is logged by the reader and chained."""

    status = 500

    def __init__(self, key: str) -> None:
        super().__init__("internal error")
        self.key = key
        """The object key that did not parse."""


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


def organization_document(org: Mapping[str, Any] | None, api: str = "") -> Document | None:
    """udata's ``OrganizationReference`` of the producer (``udata_fields``); None when none."""
    return udata_fields.organization_reference(org, api)


def level_schemas(
    schemas: Mapping[str, Mapping[str, Any]],
    levels: Sequence[str],
    primary: Mapping[str, Any] | None = None,
) -> dict[str, Mapping[str, Any]]:
    """Table Schema per level, in the order of ``levels`` (other tables after them).

    ``primary`` (a manifest's ``schema``) stands for the first level when ``schemas`` lacks it.
    """
    out = dict(schemas)
    if primary and levels and levels[0] not in out:
        out[levels[0]] = primary
    order = {level: i for i, level in enumerate(levels)}
    return dict(sorted(out.items(), key=lambda kv: order.get(kv[0], len(order))))


def _schema_ref(
    slug: str, schemas: Mapping[str, Mapping[str, Any]], level: str | None, links: Links
) -> Document:
    """``{"name", "version", "url"}`` of a level's Table Schema (the primary level if None)."""
    tail = "schema/" + (f"?{urlencode({'level': level})}" if level else "")
    key = level or next(iter(schemas), None)
    return {
        "name": slug,
        "version": schema_version(schemas.get(key)) if key else None,
        "url": links.dataset(slug, tail),
    }


def resource_document(
    entry: contracts.CatalogEntry,
    res: contracts.Resource,
    links: Links,
    schemas: Mapping[str, Mapping[str, Any]] | None = None,
) -> Document:
    """One file of the current version, as a udata resource. ``schemas``: the entry's
    ``level_schemas`` (computed when None).

    Shape: ``{"id", "title", "description", "type": "main", "filetype": "file",
    "format": "csv"|"parquet", "url": <this version's immutable file>,
    "latest": <api>/api/1/datasets/r/{id}, "checksum": {"type": "sha256", "value"},
    "filesize", "mime", "created_at", "last_modified", "schema": {"name", "version", "url"},
    "extras": {"rows", "level", "version"}}`` plus ``udata_fields.resource_fields`` (``internal``,
    ``metrics``, ``harvest``, ``preview_url``).
    """
    level, fmt, version = res.level, res.format, entry.version
    if schemas is None:
        schemas = level_schemas(entry.schemas, entry.levels)
    labels = (
        _LEVEL_LABEL.get(level, level),
        _FORMAT_LABEL.get(fmt, fmt),
        f"{res.rows} lignes",
        f"version {version}" if version else "",
    )
    created = entry.created_at or entry.published_at
    modified = res.last_modified or entry.published_at
    return {
        "id": res.id,
        "title": res.title or res.name or res.id,
        "description": " ; ".join(part for part in labels if part),
        "type": "main",
        "filetype": "file",
        "format": fmt,
        "url": links.file(res.path),
        "latest": links.api(f"{DATASETS_PATH}r/{res.id}"),
        "checksum": {"type": "sha256", "value": res.sha256},
        "filesize": res.bytes,
        "mime": res.mime or MIMES.get(fmt),
        "created_at": created,
        "last_modified": modified,
        "schema": _schema_ref(entry.name, schemas, level or None, links),
        "extras": {"rows": res.rows, "level": level, "version": version},
        **udata_fields.resource_fields(created, modified),
    }


def dataset_document(entry: contracts.CatalogEntry, links: Links) -> Document:
    """One ``catalog.json`` entry as a udata dataset, without ``quality`` (time-dependent: see
    ``with_quality``).

    Shape: ``{"id", "slug", "title", "acronym": None, "description", "created_at",
    "last_modified", "last_update", "tags": [str], "frequency", "frequency_date",
    "organization": {"id", "name", "slug"} | None, "license", "temporal_coverage": {"start",
    "end"} | None, "spatial": {"granularity", "zones", "geom"} | None, "schema": {"name",
    "version", "url"}, "extras": {"version", "rows": {level: int}, "rows_left_out", "levels",
    "versions", "datapackage"}, "resources": [resource_document...], "uri", "page"}`` plus
    ``udata_fields.dataset_fields`` (``metrics``, ``internal``, ``featured``...).
    """
    slug = entry.name
    levels = list(entry.levels)
    coverage = entry.temporal_coverage
    frequency = entry.frequency or "unknown"
    schemas = level_schemas(entry.schemas, levels)
    resources = [resource_document(entry, r, links, schemas) for r in entry.resources]
    last_update = max(
        (r["last_modified"] for r in resources if r["last_modified"]), default=entry.published_at
    )
    due = next_update(frequency, last_update)
    uri = links.dataset(slug)
    return {
        "id": dataset_id(slug),
        "slug": slug,
        "title": entry.title,
        "acronym": None,
        "description": entry.description,
        "created_at": entry.created_at or entry.published_at,
        "last_modified": entry.published_at,
        "last_update": last_update,
        "tags": list(entry.tags),
        "frequency": frequency,
        "frequency_date": iso(due) if due else None,
        "organization": organization_document(entry.organization, links.api_base_url),
        "license": entry.license or "notspecified",
        "temporal_coverage": coverage.to_json() if coverage else None,
        "spatial": (
            {"granularity": GRANULARITY.get(levels[0], "other"), "zones": list(ZONES), "geom": None}
            if levels
            else None
        ),
        "schema": _schema_ref(slug, schemas, None, links),
        "extras": {
            "version": entry.version,
            "rows": dict(entry.rows),
            "rows_left_out": entry.rows_left_out,
            "levels": levels,
            "versions": links.dataset(slug, "versions/"),
            "datapackage": links.dataset(slug, "datapackage.json"),
        },
        "resources": resources,
        "uri": uri,
        "page": uri,
        **udata_fields.dataset_fields(entry.description, entry.created_at or entry.published_at,
                                      entry.published_at),
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


def build_catalog(published: contracts.Catalog | None, links: Links) -> Catalog:
    """Shape ``catalog.json`` (parsed with ``contracts.Catalog.from_json``).

    ``None`` (no catalog published yet) gives an empty catalog.
    """
    if published is None:
        return Catalog()
    docs = sorted((dataset_document(e, links) for e in published.datasets), key=lambda d: d["slug"])
    by_key: dict[str, Document] = {}
    resources: dict[str, tuple[Document, Document]] = {}
    for d in docs:
        by_key[d["slug"]] = by_key[d["id"]] = d
        for r in d["resources"]:
            resources[r["id"]] = (d, r)
    return Catalog(tuple(docs), by_key, resources, published.generated_at)


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


# --- versions (from the manifest) -------------------------------------------------------------


def _level_of(slug: str, name: str) -> str:
    """Level of a published table from its name (``{dataset}-{level}``)."""
    return name.removeprefix(f"{slug}-") if name.startswith(f"{slug}-") else name


def _producers_by_upload(manifest: contracts.Manifest) -> dict[str, str | None]:
    known: dict[str, str | None] = {}
    for u in (*(u for e in manifest.versions for u in e.uploads), *manifest.uploads):
        known[u.upload_id] = u.producer
    return known


def upload_time(upload_id: str) -> str | None:
    """When an upload arrived, read from its id (``YYYYMMDDTHHMMSSZ-…``; a fed version's
    ``{dataset}@{version}``: that version's time), ISO 8601 UTC; None when the id says none."""
    stamp = upload_id.rpartition("@")[2] if "@" in upload_id else upload_id.partition("-")[0]
    for fmt in ("%Y%m%dT%H%M%SZ", VERSION_FORMAT):
        try:
            return iso(datetime.strptime(stamp, fmt).replace(tzinfo=UTC))
        except ValueError:
            pass
    return None


def version_file_document(slug: str, r: contracts.VersionFile, links: Links) -> Document:
    """A file of a version: ``{"id", "name", "level", "format", "mime", "url", "checksum":
    {"type", "value"}, "filesize", "rows"}``; ``id`` is ``layout.resource_id`` of the level
    (read from the name, ``{dataset}-{level}``) and format, the same in every version."""
    level = _level_of(slug, r.name)
    return {
        "id": resource_id(slug, level, r.format),
        "name": r.name,
        "level": level,
        "format": r.format,
        "mime": MIMES.get(r.format),
        "url": links.file(r.path),
        "checksum": {"type": "sha256", "value": r.sha256},
        "filesize": r.bytes,
        "rows": r.rows,
    }


def version_document(
    slug: str,
    entry: contracts.Version,
    links: Links,
    producers: Mapping[str, str | None] | None = None,
    before: contracts.Version | None = None,
) -> Document:
    """One entry of a manifest's ``versions`` as the API serves it.

    Shape: ``{"version", "published_at", "uploads": [{"upload_id", "producer", "received_at",
    "new"}], "producers": [str], "upload_count": int, "rows": {level: int},
    "resources": [version_file_document...],
    "datapackage": url, "uri": url}``, plus ``"changes": url`` (``changes_document``) when the
    version recorded its changes. ``producer`` is null when the manifest no longer knows it;
    ``received_at`` is ``upload_time``; ``new`` is true for the uploads this version brought
    (not in ``before``, the version published before it: every upload of a first version).
    Versions published with an upload index list only the uploads they brought, then their fed
    versions (``new`` when not fed to the version before); ``upload_count`` is how many uploads
    the version is made of in all.
    """
    known, earlier = producers or {}, set(before.upload_ids if before else ())
    brought = entry.upload_count is not None  # lists only what it brought (fed versions aside)
    uploads = [{"upload_id": u, "producer": known.get(u), "received_at": upload_time(u),
                "new": u not in earlier if not brought or "@" in u else True}
               for u in entry.upload_ids]
    return {
        "version": entry.version,
        "published_at": entry.published_at,
        "uploads": uploads,
        "producers": sorted({p for u in uploads if (p := u["producer"])}),
        "upload_count": entry.upload_count if brought else len(entry.upload_ids),
        "rows": dict(entry.rows),
        "resources": [version_file_document(slug, r, links) for r in entry.resources],
        "datapackage": links.file(datapackage_key(slug, entry.version)),
        "uri": links.dataset(slug, f"versions/{quote(entry.version, safe='')}/"),
        **({"changes": _changes_url(slug, entry.version, links)} if entry.changes else {}),
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


def build_versions(slug: str, manifest: contracts.Manifest, links: Links) -> Versions:
    """Shape every entry of a manifest's ``versions`` (newest first, whatever the stored order)."""
    known = _producers_by_upload(manifest)
    entries = sorted(manifest.versions, key=lambda e: e.version, reverse=True)
    docs = tuple(version_document(slug, e, links, known, entries[i + 1] if i + 1 < len(entries)
                                  else None) for i, e in enumerate(entries))
    return Versions(slug, docs, {d["version"]: d for d in docs}, links.dataset(slug, "versions/"))


def get_version(versions: Versions, version: str) -> Document:
    """One version of a dataset. Raises NotFound."""
    doc = versions.by_version.get(version)
    if doc is None:
        raise NotFound(f"version {version!r} not found in dataset {versions.slug!r}")
    return doc


CHANGES_SUMMARY_KEYS = ("key", "rows", "cells", "columns", "key_values", "history", "schema",
                        "drops_published", "warnings")
"""The summary keys of a changes document (``opendepot.changes.SUMMARY_KEYS``: the index does
not import that module, which needs Arrow)."""


def _changes_url(slug: str, version: str, links: Links) -> str:
    return links.dataset(slug, f"versions/{quote(version, safe='')}/changes/")


def version_entry(
    manifest: contracts.Manifest, version: str
) -> tuple[contracts.Version, contracts.Version | None]:
    """A version of the manifest and the one published just before it (None for the first).

    Raises NotFound."""
    entries = sorted(manifest.versions, key=lambda e: e.version)
    for i, entry in enumerate(entries):
        if entry.version == version:
            return entry, entries[i - 1] if i else None
    raise NotFound(f"version {version!r} not found in dataset {manifest.dataset!r}")


def changes_document(
    slug: str, entry: contracts.Version, before: contracts.Version | None,
    stored: Mapping[str, Any] | None, links: Links,
) -> Document:
    """What a version changed against the one before, as served: the stored ``changes.json``
    (``opendepot.changes.document``: ``{"dataset", "level", "version", "previous", "note",
    "csv", "key", "rows", "cells", "columns", "key_values", "history", "schema",
    "drops_published", "warnings"}``) with ``csv`` the changed cells' URL (null when none) and
    ``uri`` this document's URL. A first version that recorded nothing gets the same shape with
    ``note`` "no previous version" and null summary keys.

    Raises NotFound: a later version without a stored changes document (published before
    changes were kept)."""
    if stored is None:
        if before is not None:
            raise NotFound(f"version {entry.version!r} of dataset {slug!r} has no changes "
                           f"document (published before changes were kept)")
        stored = {"dataset": slug, "level": None, "version": entry.version, "previous": None,
                  "note": "no previous version", "csv": None,
                  **dict.fromkeys(CHANGES_SUMMARY_KEYS)}
    csv = entry.changes.csv_path if entry.changes is not None else None
    return {**stored, "csv": links.file(csv) if csv else None,
            "uri": _changes_url(slug, entry.version, links)}


# --- schema and data package ------------------------------------------------------------------


def schema_levels(dataset: Mapping[str, Any], manifest: contracts.Manifest) -> list[str]:
    """The levels ``/schema/`` serves for a dataset: its document's ``extras.levels``, then any
    other table the manifest has a schema for (a consolidated table)."""
    levels = [*dataset["extras"]["levels"]]
    return levels + [k for k in manifest.schemas if k not in levels]


def schema_document(
    manifest: contracts.Manifest, levels: Sequence[str], level: str | None
) -> Document:
    """The Table Schema of ``level`` (the primary level when None) with its ``version``.

    Raises NotFound when the manifest has no schema for that level.
    """
    schemas = level_schemas(manifest.schemas, levels, manifest.schema)
    key = level or next(iter(schemas), None)
    schema = schemas.get(key) if key else None
    if not schema:
        raise NotFound(f"no Table Schema for level {key!r} of dataset {manifest.dataset!r}")
    return {**schema, "version": schema_version(schema)}


def datapackage_document(
    package: Mapping[str, Any], manifest: contracts.Manifest, links: Links
) -> Document:
    """The version's ``datapackage.json`` with each resource ``path`` made an absolute URL.

    Published next to its files, the package uses relative paths; served by the API it must
    point at the files themselves.
    """
    folder = manifest.datapackage_path.rpartition("/")[0]
    resources = []
    for r in package.get("resources") or []:
        path = r.get("path")
        if isinstance(path, str) and "://" not in path:
            r = {**r, "path": links.file(f"{folder}/{path}" if folder else path)}
        resources.append(r)
    return {**package, "resources": resources}


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
