"""The records that cross stages, typed: upload record, publish message, manifest, catalog.

Each record is a frozen dataclass with ``to_json() -> dict`` (the JSON object as stored, keys in
the order the writers have always written them) and ``from_json(d) -> Self``. Field names are
the JSON names, so documents stored before these classes existed read unchanged, and
``Record.from_json(d).to_json() == d`` (key order included) for every document the stages write.

Decisions (see docs/design.md, "Upload record" to "Catalog"):

- **Unknown keys are kept**, in ``extra`` (a mapping written back after the known keys). A
  reader older than the writer (a rolling deploy: a publish function still on the previous
  layer) then neither fails nor drops what it does not know, and a read-modify-write (a manifest
  carries its previous ``versions`` forward) keeps them.
- **Wrong types and missing required keys fail loudly**: ``ContractError`` (a ``ValueError``)
  naming the record and the key, e.g. ``Manifest.rows: expected an object of integers``.
- Keys that readers have always treated as optional (``rows_left_out``, ``temporal_coverage``,
  ``schemas``, a manifest's ``versions``...) default when absent; every writer writes them, so
  the round trip is exact for written documents.

Mappings inside records (``rows``, Table Schemas, the organization) are plain dicts typed as
read-only ``Mapping``: do not mutate them; build a new record (``dataclasses.replace``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from opendepot.contract_fields import ContractError as ContractError  # re-exported
from opendepot.contract_fields import (
    JsonObject,
    _counts,
    _each,
    _extra,
    _get,
    _int,
    _object,
    _opt_int,
    _opt_str,
    _str,
    _strs,
    _with_extra,
)

# --- staging ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class UploadRecord:
    """An accepted upload: ``staging/{dataset}/{producer}/{upload_id}.json`` in the internal
    bucket, written by ``ingest`` after the staged Parquet, read by ``publication``; the
    manifest's ``uploads`` list them."""

    key: str
    """The incoming key, decoded (``{dataset}/{producer}/{file}``)."""
    bucket: str
    """The incoming bucket."""
    version_id: str | None
    """The object's S3 version id (None in an unversioned bucket, e.g. moto)."""
    etag: str
    """The object's ETag, as in the S3 event."""
    sequencer: str
    """The S3 event's sequencer (empty locally): orders writes of one key."""
    received_at: str
    """Event time, ISO 8601 UTC with milliseconds (``2020-11-07T19:00:00.000Z``)."""
    size: int
    """Object size in bytes, as in the S3 event."""
    upload_id: str
    """``{YYYYMMDDTHHMMSSZ}-{12 hex}`` (see ``layout.upload_id``)."""
    dataset: str
    """Dataset slug."""
    producer: str
    """Producer id (second key segment)."""
    rows: int
    """Rows staged (accepted rows, left-out rows excluded)."""
    rows_left_out: int
    """Rows with errors left out within the error budget."""
    areas: int | None
    """Distinct area codes staged (None for a dataset without an area column)."""
    sha256: str
    """SHA-256 (hex) of the object's bytes as read."""
    bytes: int
    """Bytes read."""
    report_key: str
    """Key of the validation report in the internal bucket."""
    staged_key: str
    """Key of the staged Parquet file in the internal bucket."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Keys this version does not know, kept and written back."""

    FIELDS: ClassVar[tuple[str, ...]] = (
        "key", "bucket", "version_id", "etag", "sequencer", "received_at", "size", "upload_id",
        "dataset", "producer", "rows", "rows_left_out", "areas", "sha256", "bytes", "report_key",
        "staged_key"
    )

    def to_json(self) -> JsonObject:
        """The stored JSON object (keys in the order above, then ``extra``)."""
        return _with_extra({k: getattr(self, k) for k in self.FIELDS}, self.extra)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> UploadRecord:
        """Raises: ContractError (missing key, wrong type)."""
        w = "UploadRecord"
        return cls(
            key=_str(d, w, "key"), bucket=_str(d, w, "bucket"),
            version_id=_opt_str(d, w, "version_id"), etag=_str(d, w, "etag"),
            sequencer=_str(d, w, "sequencer"), received_at=_str(d, w, "received_at"),
            size=_int(d, w, "size"), upload_id=_str(d, w, "upload_id"),
            dataset=_str(d, w, "dataset"), producer=_str(d, w, "producer"),
            rows=_int(d, w, "rows"), rows_left_out=_int(d, w, "rows_left_out", 0),
            areas=_opt_int(d, w, "areas"), sha256=_str(d, w, "sha256"),
            bytes=_int(d, w, "bytes"), report_key=_str(d, w, "report_key"),
            staged_key=_str(d, w, "staged_key"), extra=_extra(d, cls.FIELDS),
        )


@dataclass(frozen=True)
class FedSource:
    """Which published file a fed version is read from (``FedUpload.feed``)."""

    dataset: str
    """The fed dataset."""
    version: str
    """Its version read."""
    level: str
    """The level read (``dep``)."""
    path: str
    """Key of that level's Parquet file in the published bucket (an immutable version file)."""

    def to_json(self) -> JsonObject:
        """``{"dataset", "version", "level", "path"}``."""
        return {"dataset": self.dataset, "version": self.version, "level": self.level,
                "path": self.path}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> FedSource:
        """Raises: ContractError."""
        w = "FedSource"
        return cls(_str(d, w, "dataset"), _str(d, w, "version"), _str(d, w, "level"),
                   _str(d, w, "path"))


@dataclass(frozen=True)
class FedUpload:
    """A fed dataset's version standing among a publication's uploads (see ``opendepot.feeds``):
    its ``upload_id`` changes with the fed version, so a new one makes a new publication."""

    upload_id: str
    """``{fed dataset}@{version}``."""
    producer: str
    """The feed's producer (provenance of the fed rows)."""
    feed: FedSource
    """The file read."""
    received_at: str
    """The fed version's ``published_at``."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Keys this version does not know, kept and written back."""

    FIELDS: ClassVar[tuple[str, ...]] = ("upload_id", "producer", "feed", "received_at")

    rows_left_out: ClassVar[int] = 0
    """Fed rows are never left out (for sums over a manifest's uploads)."""

    def to_json(self) -> JsonObject:
        """``{"upload_id", "producer", "feed": {...}, "received_at"}``."""
        body = {"upload_id": self.upload_id, "producer": self.producer,
                "feed": self.feed.to_json(), "received_at": self.received_at}
        return _with_extra(body, self.extra)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> FedUpload:
        """Raises: ContractError."""
        w = "FedUpload"
        return cls(_str(d, w, "upload_id"), _str(d, w, "producer"),
                   FedSource.from_json(_object(d, w, "feed")), _str(d, w, "received_at"),
                   _extra(d, cls.FIELDS))


ManifestUpload = UploadRecord | FedUpload
"""An entry of a manifest's ``uploads``."""


def upload_from_json(d: Mapping[str, Any]) -> ManifestUpload:
    """A manifest's upload entry: a ``FedUpload`` when it has a ``feed`` key, else an
    ``UploadRecord``. Raises: ContractError."""
    if isinstance(d, Mapping) and "feed" in d:
        return FedUpload.from_json(d)
    return UploadRecord.from_json(d)


@dataclass(frozen=True)
class PublishMessage:
    """The FIFO message validate sends to publish (``MessageGroupId`` = ``dataset``); also sent
    by publish to a dataset's dependents, with ``upload_id`` = ``{fed dataset}@{version}``."""

    dataset: str
    """Dataset to publish."""
    upload_id: str
    """The upload (or fed version) that asked for it; informational: publish always
    consolidates every staged upload."""

    def to_json(self) -> JsonObject:
        """``{"dataset", "upload_id"}``."""
        return {"dataset": self.dataset, "upload_id": self.upload_id}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> PublishMessage:
        """Raises: ContractError (e.g. a message without ``dataset``)."""
        return cls(_str(d, "PublishMessage", "dataset"), _str(d, "PublishMessage", "upload_id", ""))


@dataclass(frozen=True)
class SiteMessage:
    """Publish -> site queue after a run that created ``version`` (informational) of ``dataset``."""

    dataset: str
    version: str

    def to_json(self) -> JsonObject:
        return {"dataset": self.dataset, "version": self.version}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> SiteMessage:  # raises ContractError
        return cls(_str(d, "SiteMessage", "dataset"), _str(d, "SiteMessage", "version", ""))


# --- manifest ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Coverage:
    """First and last value of the time field (ISO dates, or ISO week labels)."""

    start: str
    """First value."""
    end: str
    """Last value."""

    def to_json(self) -> JsonObject:
        """``{"start", "end"}``."""
        return {"start": self.start, "end": self.end}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Coverage:
        """Raises: ContractError."""
        return cls(_str(d, "Coverage", "start"), _str(d, "Coverage", "end"))


def _coverage(d: Mapping[str, Any], where: str) -> Coverage | None:
    value = _get(d, where, "temporal_coverage", None)
    return None if value is None else Coverage.from_json(value)


@dataclass(frozen=True)
class Resource:
    """One published file of the current version (manifest and catalog ``resources``)."""

    id: str
    """``layout.resource_id``: uuid5, the same for every version."""
    name: str
    """File name without extension: ``{dataset}-{level}``."""
    title: str
    """French title: ``{dataset title}, {level title} ({FORMAT})``."""
    level: str
    """``dep``, ``reg``, ``fra`` or the consolidated table's name."""
    format: str
    """``csv`` or ``parquet``."""
    mime: str
    """Media type."""
    path: str
    """Key of this version's file in the published bucket (immutable)."""
    latest_path: str
    """Key of the ``latest/`` copy."""
    sha256: str
    """SHA-256 (hex) of the file."""
    bytes: int
    """File size."""
    rows: int
    """Data rows."""
    last_modified: str
    """When this version was published, ISO 8601 UTC (``2026-11-29T07:30:12Z``)."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Keys this version does not know, kept and written back."""

    FIELDS: ClassVar[tuple[str, ...]] = (
        "id", "name", "title", "level", "format", "mime", "path", "latest_path", "sha256", "bytes",
        "rows", "last_modified"
    )

    def to_json(self) -> JsonObject:
        """The stored JSON object."""
        return _with_extra({k: getattr(self, k) for k in self.FIELDS}, self.extra)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Resource:
        """Raises: ContractError."""
        w = "Resource"
        return cls(
            id=_str(d, w, "id"), name=_str(d, w, "name"), title=_str(d, w, "title"),
            level=_str(d, w, "level"), format=_str(d, w, "format"), mime=_str(d, w, "mime"),
            path=_str(d, w, "path"), latest_path=_str(d, w, "latest_path"),
            sha256=_str(d, w, "sha256"), bytes=_int(d, w, "bytes"), rows=_int(d, w, "rows"),
            last_modified=_str(d, w, "last_modified"), extra=_extra(d, cls.FIELDS),
        )


@dataclass(frozen=True)
class VersionFile:
    """A file of a past or current version (``versions[].resources``)."""

    name: str
    """File name without extension."""
    format: str
    """``csv`` or ``parquet``."""
    path: str
    """Key of the version's file (immutable)."""
    sha256: str
    """SHA-256 (hex)."""
    bytes: int
    """File size."""
    rows: int
    """Data rows."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Keys this version does not know, kept and written back."""

    FIELDS: ClassVar[tuple[str, ...]] = ("name", "format", "path", "sha256", "bytes", "rows")

    @classmethod
    def of(cls, r: Resource) -> VersionFile:
        """The version entry's view of a current resource."""
        return cls(r.name, r.format, r.path, r.sha256, r.bytes, r.rows)

    def to_json(self) -> JsonObject:
        """``{"name", "format", "path", "sha256", "bytes", "rows"}``."""
        return _with_extra({k: getattr(self, k) for k in self.FIELDS}, self.extra)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> VersionFile:
        """Raises: ContractError."""
        w = "VersionFile"
        return cls(_str(d, w, "name"), _str(d, w, "format"), _str(d, w, "path"),
                   _str(d, w, "sha256"), _int(d, w, "bytes"), _int(d, w, "rows"),
                   _extra(d, cls.FIELDS))


@dataclass(frozen=True)
class VersionUpload:
    """An upload of a version, as the history keeps it (``versions[].uploads``)."""

    upload_id: str
    """Upload id (or ``{fed dataset}@{version}``)."""
    producer: str
    """Producer id."""

    def to_json(self) -> JsonObject:
        """``{"upload_id", "producer"}``."""
        return {"upload_id": self.upload_id, "producer": self.producer}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> VersionUpload:
        """Raises: ContractError."""
        return cls(_str(d, "VersionUpload", "upload_id"), _str(d, "VersionUpload", "producer"))


@dataclass(frozen=True)
class VersionChanges:
    """Where a version's changes against the one before are (``versions[].changes``): ``path``
    the key of its ``changes.json``, ``csv_path`` of its ``changes.csv`` (None: none, as for a
    first version), ``previous`` the version compared with (None: a first version)."""

    path: str
    csv_path: str | None
    previous: str | None

    def to_json(self) -> JsonObject:
        """``{"path", "csv_path", "previous"}``."""
        return {"path": self.path, "csv_path": self.csv_path, "previous": self.previous}

    @classmethod
    def from_json(cls, d: Any) -> VersionChanges | None:
        """None for an absent (None) entry. Raises: ContractError."""
        w = "VersionChanges"
        return None if d is None else cls(_str(d, w, "path"), _opt_str(d, w, "csv_path"),
                                          _opt_str(d, w, "previous"))


@dataclass(frozen=True)
class Version:
    """One entry of a manifest's ``versions`` (newest first, the current one included)."""

    version: str
    """``YYYY-MM-DD-HHhMMmSSs`` UTC."""
    published_at: str
    """ISO 8601 UTC."""
    upload_ids: tuple[str, ...]
    """Ids of the uploads (and fed versions) it was made of, oldest first."""
    uploads: tuple[VersionUpload, ...]
    """The same uploads with their producer."""
    rows: Mapping[str, int]
    """Level -> rows."""
    resources: tuple[VersionFile, ...]
    """Its files."""
    changes: VersionChanges | None = None
    """Its changes against the version before (None: not recorded, and no ``changes`` key)."""
    upload_count: int | None = None
    """Uploads (and fed versions) it is made of, when ``upload_ids`` lists only those it
    brought (new since the version before: the upload index's versions); None in versions
    that list every upload they are made of (published before the upload index)."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Keys this version does not know, kept and written back."""

    FIELDS: ClassVar[tuple[str, ...]] = (
        "version", "published_at", "upload_ids", "uploads", "rows", "resources", "changes",
        "upload_count"
    )

    def to_json(self) -> JsonObject:
        """The stored JSON object."""
        body: JsonObject = {"version": self.version, "published_at": self.published_at,
                "upload_ids": list(self.upload_ids),
                "uploads": [u.to_json() for u in self.uploads], "rows": dict(self.rows),
                "resources": [r.to_json() for r in self.resources]}
        if self.changes is not None:
            body["changes"] = self.changes.to_json()
        if self.upload_count is not None:
            body["upload_count"] = self.upload_count
        return _with_extra(body, self.extra)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Version:
        """Raises: ContractError."""
        w = "Version"
        return cls(
            version=_str(d, w, "version"), published_at=_str(d, w, "published_at"),
            upload_ids=_strs(d, w, "upload_ids"),
            uploads=_each(d, w, "uploads", VersionUpload.from_json, []),
            rows=_counts(d, w, "rows"),
            resources=_each(d, w, "resources", VersionFile.from_json),
            changes=VersionChanges.from_json(d.get("changes")),
            upload_count=_opt_int(d, w, "upload_count"),
            extra=_extra(d, cls.FIELDS),
        )


VERSION_PAGE_SIZE = 20
"""K, the versions of one page (``VersionsPage``): a manifest keeps at most ``2 * K`` versions
inline; when a new one makes more, the oldest ``K`` move to a page (``opendepot.version_pages``).
At least ``atom.FEED_SIZE``, so the newest ``FEED_SIZE + 1`` versions (a feed's entries and the
version before its last) are always inline."""


@dataclass(frozen=True)
class VersionPage:
    """One entry of a manifest's ``version_pages`` (newest first): ``path`` the key of an
    immutable ``VersionsPage`` (``layout.versions_page_key``), ``first`` and ``last`` its oldest
    and newest version ids, ``count`` its versions."""

    path: str
    first: str
    last: str
    count: int

    def to_json(self) -> JsonObject:
        """``{"path", "first", "last", "count"}``."""
        return {"path": self.path, "first": self.first, "last": self.last, "count": self.count}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> VersionPage:
        """Raises: ContractError."""
        w = "VersionPage"
        return cls(_str(d, w, "path"), _str(d, w, "first"), _str(d, w, "last"),
                   _int(d, w, "count"))


@dataclass(frozen=True)
class VersionsPage:
    """``{dataset}/versions/{first}--{last}.json``: versions moved out of a manifest, newest
    first (written once, before the manifest that names it, never changed)."""

    dataset: str
    """Dataset slug."""
    versions: tuple[Version, ...]
    """The versions, newest first, as the manifest had them."""

    def to_json(self) -> JsonObject:
        """``{"dataset", "versions": [version...]}``."""
        return {"dataset": self.dataset, "versions": [v.to_json() for v in self.versions]}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> VersionsPage:
        """Raises: ContractError."""
        w = "VersionsPage"
        return cls(_str(d, w, "dataset"), _each(d, w, "versions", Version.from_json))


@dataclass(frozen=True)
class Manifest:
    """``{dataset}/manifest.json`` in the published bucket: the current version, switched with
    ``If-Match`` (the one atomic step of a publication), and the history of versions."""

    dataset: str
    """Dataset slug."""
    version: str
    """Current version, ``YYYY-MM-DD-HHhMMmSSs`` UTC."""
    published_at: str
    """When it was published, ISO 8601 UTC."""
    created_at: str
    """``published_at`` of the first version."""
    uploads: tuple[ManifestUpload, ...]
    """The uploads the current version brought (new since the version before), then the fed
    versions it is made of, oldest first; its ``versions`` entry's ``upload_count`` says how
    many uploads it is made of in all (the upload index, internal, lists them). Manifests
    written before the upload index list every upload here."""
    rows: Mapping[str, int]
    """Level -> rows of the current version."""
    rows_left_out: int
    """Rows left out, within their error budget, of every upload the current version is made
    of."""
    temporal_coverage: Coverage | None
    """First and last value of the time field at the producer's level (None without one)."""
    resources: tuple[Resource, ...]
    """Files of the current version."""
    datapackage_path: str
    """Key of the current version's ``datapackage.json``."""
    schema: Mapping[str, Any]
    """Table Schema of the producer's level."""
    schemas: Mapping[str, Mapping[str, Any]]
    """Level -> Table Schema."""
    versions: tuple[Version, ...]
    """The newest versions (at most ``2 * VERSION_PAGE_SIZE``), newest first, the current one
    included; older ones are in ``version_pages`` (``version_pages.every_version``: all)."""
    version_pages: tuple[VersionPage, ...] = ()
    """Pages of the older versions, newest first (the key is absent while there is none)."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Keys this version does not know, kept and written back."""

    FIELDS: ClassVar[tuple[str, ...]] = (
        "dataset", "version", "published_at", "created_at", "uploads", "rows", "rows_left_out",
        "temporal_coverage", "resources", "datapackage_path", "schema", "schemas", "versions",
        "version_pages"
    )

    @property
    def version_count(self) -> int:
        """Every version: ``versions`` plus those of ``version_pages``."""
        return len(self.versions) + sum(p.count for p in self.version_pages)

    @property
    def upload_ids(self) -> tuple[str, ...]:
        """Ids of ``uploads``, in order (a publication's identity)."""
        return tuple(u.upload_id for u in self.uploads)

    def to_json(self) -> JsonObject:
        """The stored JSON object."""
        cov = self.temporal_coverage
        body = {
            "dataset": self.dataset, "version": self.version, "published_at": self.published_at,
            "created_at": self.created_at, "uploads": [u.to_json() for u in self.uploads],
            "rows": dict(self.rows), "rows_left_out": self.rows_left_out,
            "temporal_coverage": None if cov is None else cov.to_json(),
            "resources": [r.to_json() for r in self.resources],
            "datapackage_path": self.datapackage_path, "schema": dict(self.schema),
            "schemas": {k: dict(v) for k, v in self.schemas.items()},
            "versions": [v.to_json() for v in self.versions],
        }
        if self.version_pages:  # absent until a first page: older manifests round-trip
            body["version_pages"] = [p.to_json() for p in self.version_pages]
        return _with_extra(body, self.extra)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Manifest:
        """Raises: ContractError."""
        w = "Manifest"
        return cls(
            dataset=_str(d, w, "dataset"), version=_str(d, w, "version"),
            published_at=_str(d, w, "published_at"), created_at=_str(d, w, "created_at"),
            uploads=_each(d, w, "uploads", upload_from_json), rows=_counts(d, w, "rows"),
            rows_left_out=_int(d, w, "rows_left_out", 0),
            temporal_coverage=_coverage(d, w),
            resources=_each(d, w, "resources", Resource.from_json),
            datapackage_path=_str(d, w, "datapackage_path"), schema=_object(d, w, "schema"),
            schemas=_object(d, w, "schemas", {}),
            versions=_each(d, w, "versions", Version.from_json, []),
            version_pages=_each(d, w, "version_pages", VersionPage.from_json, []),
            extra=_extra(d, cls.FIELDS),
        )


# --- catalog ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogEntry:
    """One dataset of ``catalog.json``: registry metadata plus its manifest's current version."""

    name: str
    """Dataset slug."""
    title: str
    """French title."""
    description: str
    """French description (Markdown)."""
    organization: Mapping[str, Any]
    """``{"name", "slug"}`` (and ``id`` when the registry gives one)."""
    license: str
    """License id (``lov2``)."""
    frequency: str
    """udata frequency (``daily``...)."""
    tags: tuple[str, ...]
    """Tags."""
    version: str
    """Current version."""
    published_at: str
    """When it was published, ISO 8601 UTC."""
    created_at: str
    """``published_at`` of the first version."""
    rows: Mapping[str, int]
    """Level -> rows."""
    rows_left_out: int
    """As in the manifest."""
    temporal_coverage: Coverage | None
    """As in the manifest."""
    levels: tuple[str, ...]
    """The dataset's levels (``dep``, ``reg``, ``fra``)."""
    resources: tuple[Resource, ...]
    """As in the manifest."""
    schemas: Mapping[str, Mapping[str, Any]]
    """Level -> Table Schema, as in the manifest."""
    manifest_path: str
    """Key of the dataset's manifest."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Keys this version does not know, kept and written back."""

    FIELDS: ClassVar[tuple[str, ...]] = (
        "name", "title", "description", "organization", "license", "frequency", "tags", "version",
        "published_at", "created_at", "rows", "rows_left_out", "temporal_coverage", "levels",
        "resources", "schemas", "manifest_path"
    )

    def to_json(self) -> JsonObject:
        """The stored JSON object."""
        cov = self.temporal_coverage
        body = {
            "name": self.name, "title": self.title, "description": self.description,
            "organization": dict(self.organization), "license": self.license,
            "frequency": self.frequency, "tags": list(self.tags), "version": self.version,
            "published_at": self.published_at, "created_at": self.created_at,
            "rows": dict(self.rows), "rows_left_out": self.rows_left_out,
            "temporal_coverage": None if cov is None else cov.to_json(),
            "levels": list(self.levels), "resources": [r.to_json() for r in self.resources],
            "schemas": {k: dict(v) for k, v in self.schemas.items()},
            "manifest_path": self.manifest_path,
        }
        return _with_extra(body, self.extra)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CatalogEntry:
        """Raises: ContractError."""
        w = "CatalogEntry"
        return cls(
            name=_str(d, w, "name"), title=_str(d, w, "title"),
            description=_str(d, w, "description", ""),
            organization=_object(d, w, "organization", {}), license=_str(d, w, "license", ""),
            frequency=_str(d, w, "frequency", ""), tags=_strs(d, w, "tags", []),
            version=_str(d, w, "version"), published_at=_str(d, w, "published_at"),
            created_at=_str(d, w, "created_at"), rows=_counts(d, w, "rows"),
            rows_left_out=_int(d, w, "rows_left_out", 0), temporal_coverage=_coverage(d, w),
            levels=_strs(d, w, "levels", []),
            resources=_each(d, w, "resources", Resource.from_json),
            schemas=_object(d, w, "schemas", {}), manifest_path=_str(d, w, "manifest_path", ""),
            extra=_extra(d, cls.FIELDS),
        )


@dataclass(frozen=True)
class Catalog:
    """``catalog.json`` in the published bucket, rebuilt from every manifest after a switch."""

    generated_at: str
    """When it was written, ISO 8601 UTC."""
    datasets: tuple[CatalogEntry, ...]
    """One entry per published dataset, in registry order."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Keys this version does not know, kept and written back."""

    FIELDS: ClassVar[tuple[str, ...]] = ("generated_at", "datasets")

    def to_json(self) -> JsonObject:
        """``{"generated_at", "datasets": [entry...]}``."""
        body = {"generated_at": self.generated_at,
                "datasets": [e.to_json() for e in self.datasets]}
        return _with_extra(body, self.extra)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Catalog:
        """Raises: ContractError."""
        w = "Catalog"
        return cls(_str(d, w, "generated_at"),
                   _each(d, w, "datasets", CatalogEntry.from_json), _extra(d, cls.FIELDS))
