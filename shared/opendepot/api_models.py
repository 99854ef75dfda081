"""The HTTP index's documents and query parameters as pydantic models, for its OpenAPI document.

The documents are built by ``opendepot.index`` (plain dicts, udata shapes) and sent as built:
these models are what the OpenAPI document says of them (Powertools generates the schemas from
the models the routes declare), not a serialiser. ``tests/test_index_api_contract.py`` checks
every answer against the generated document, so a model that drifts from ``index`` fails there.

Objects are closed (``additionalProperties: false``, every key required, ``null`` allowed where
the document may carry it), except the Table Schema and the Data Package, which carry whatever
the publication wrote.

Query parameters (``PageParam``, ``SortParam``, ``LevelParam``...) are ``Annotated`` types with
Powertools' ``Query``: the route declarations use them, so the document lists exactly the
parameters each route reads, with the values the server accepts (``index.parse_*`` reads them).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import BaseModel, ConfigDict, Field

from opendepot.index import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, SORT_KEYS
from opendepot.registry import load_registry
from opendepot.udata_orgs import ORG_SORT_KEYS, RESOURCE_TYPES, V2_PAGE_SIZE

__all__ = [
    "LEVELS", "ORG_SORT_VALUES", "RESOURCE_TYPES", "SORT_VALUES", "AtParam", "Changes",
    "Checksum", "DataPackage", "Dataset", "DatasetPage", "DatasetV2", "Error", "FlagParam",
    "FormatParam", "LevelParam", "Organization", "OrganizationPage", "OrganizationParam",
    "OrganizationReference", "OrgSortParam", "PageParam", "PageSizeParam", "PeriodParam",
    "Quality", "Resource", "ResourcePage", "ResourceTypeParam", "SchemaRef", "SearchParam",
    "SortParam", "SpecificResource", "TableSchema", "TagParam", "TextParam", "V2PageSizeParam",
    "Version",
    "VersionPage", "VersionResource",
]  # fmt: skip


def _levels() -> tuple[str, ...]:
    """Every level a published table can have: ``dep``, ``reg``, ``fra``, then each dataset's
    own (its area level, roll-ups, consolidated table) in registry order."""
    out = ["dep", "reg", "fra"]
    for d in load_registry():
        extra = (d.consolidated.name,) if d.consolidated else ()
        out += [lv for lv in (*d.levels, *extra) if lv not in out]
    return tuple(out)


LEVELS: tuple[str, ...] = _levels()
"""Values of ``level`` (``/schema/``): a level outside them is a 400."""
SORT_VALUES: tuple[str, ...] = (*SORT_KEYS, *(f"-{k}" for k in SORT_KEYS))
"""Values of ``sort`` (``/api/1/datasets/``): any other is a 400."""
ORG_SORT_VALUES: tuple[str, ...] = (*ORG_SORT_KEYS, *(f"-{k}" for k in ORG_SORT_KEYS))
"""Values of ``sort`` (``/api/1/organizations/``)."""

# --- query parameters ---------------------------------------------------------------------------

PageParam = Annotated[int, Query(ge=1, le=2**53 - 1, description="Page number (from 1).")]
PageSizeParam = Annotated[
    int,
    Query(
        ge=1,
        le=MAX_PAGE_SIZE,
        description=f"Items per page (default {DEFAULT_PAGE_SIZE}, at most {MAX_PAGE_SIZE}).",
    ),
]
SearchParam = Annotated[
    str,
    Query(
        description="Words that must all appear in title, description or tags "
        "(accents and case ignored)."
    ),
]
TagParam = Annotated[
    list[str], Query(description="A tag the dataset carries (repeat: all must match).")
]
OrganizationParam = Annotated[str, Query(description="Organization slug or id.")]
FormatParam = Annotated[str, Query(description="A resource format (`csv`, `parquet`; any case).")]
SortParam = Annotated[
    Literal[SORT_VALUES],  # type: ignore[valid-type]  # values known at import
    Query(description="Sort key, `-` prefix for descending (default: by slug)."),
]
LevelParam = Annotated[
    Literal[LEVELS],  # type: ignore[valid-type]  # values known at import
    Query(description="Level of the table (default: the dataset's own); one the dataset has."),
]

TextParam = Annotated[str, Query(description="Exact value to match.")]
FlagParam = Annotated[
    bool, Query(description="true: only datasets with the flag; false: only those without.")
]
PeriodParam = Annotated[
    str,
    Query(
        pattern=r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[-/]\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$",
        description="A period `YYYY-MM-DD-YYYY-MM-DD` (first day, last day): datasets whose "
        "temporal coverage shares at least a day with it.",
    ),
]
OrgSortParam = Annotated[
    Literal[ORG_SORT_VALUES],  # type: ignore[valid-type]  # values known at import
    Query(description="Sort key, `-` prefix for descending (default: by slug)."),
]
V2PageSizeParam = Annotated[
    int,
    Query(ge=1, le=MAX_PAGE_SIZE,
          description=f"Items per page (default {V2_PAGE_SIZE}, at most {MAX_PAGE_SIZE})."),
]
ResourceTypeParam = Annotated[
    Literal[RESOURCE_TYPES],  # type: ignore[valid-type]  # udata's resource types
    Query(description="Resource type (every opendepot resource is `main`)."),
]

AtParam = Annotated[
    datetime,
    Query(description="A moment (ISO 8601, e.g. `2021-01-15T00:00:00Z`; no zone: UTC): "
          "redirect to the file of the version in force then (404 before the first version)."),
]

# --- documents ----------------------------------------------------------------------------------

Uuid = Annotated[str, Field(json_schema_extra={"format": "uuid"})]
Url = Annotated[str, Field(min_length=1)]
Count = Annotated[int, Field(ge=0)]
Time = str | None


class _Closed(BaseModel):
    # documentation only (never validates an answer): build the schema on first use
    model_config = ConfigDict(extra="forbid", defer_build=True)


class _Open(BaseModel):
    model_config = ConfigDict(defer_build=True)


class Error(_Closed):
    """The one error envelope."""

    status: int = Field(ge=400, le=599)
    message: str


class OrganizationReference(_Closed):
    """udata's ``OrganizationReference`` (a dataset's producer)."""

    id: str
    name: str
    acronym: str | None
    uri: Url
    slug: str
    page: Url
    logo: str | None
    logo_thumbnail: str | None
    badges: list[dict[str, str]] = Field(max_length=0)


class OrganizationMetrics(_Closed):
    datasets: Count
    members: Count
    reuses: Count
    followers: Count
    views: Count


class Organization(OrganizationReference):
    """udata's ``Organization``, made from the datasets it publishes."""

    url: str | None
    description: str
    business_number_id: str | None
    created_at: Time
    last_modified: Time
    deleted: None
    metrics: OrganizationMetrics
    members: list[dict[str, str]] = Field(max_length=0)
    extras: dict[str, str]


class Internals(_Closed):
    created_at_internal: Time
    last_modified_internal: Time


class ResourceMetrics(_Closed):
    views: Count


class DatasetMetrics(_Closed):
    discussions: Count
    discussions_open: Count
    reuses: Count
    reuses_by_months: dict[str, Count]
    dataservices: Count
    followers: Count
    followers_by_months: dict[str, Count]
    views: Count
    resources_downloads: Count


class Checksum(_Closed):
    type: Literal["sha256"]
    value: str | None


class SchemaRef(_Closed):
    name: str
    version: str | None
    url: Url


class ResourceExtras(_Closed):
    rows: Count | None
    level: str
    version: str | None


class Resource(_Closed):
    """A file of the current version (udata resource)."""

    id: Uuid
    title: str
    description: str
    type: Literal["main"]
    filetype: Literal["file"]
    format: str
    url: Url
    latest: Url
    checksum: Checksum
    filesize: Count | None
    mime: str | None
    created_at: Time
    last_modified: Time
    schema_: SchemaRef = Field(alias="schema")
    extras: ResourceExtras
    internal: Internals
    metrics: ResourceMetrics
    harvest: None
    preview_url: None


class Quality(_Closed):
    license: bool
    temporal_coverage: bool
    spatial: bool
    update_frequency: bool
    update_fulfilled_in_time: bool | None
    dataset_description_quality: bool
    has_resources: bool
    has_open_format: bool
    all_resources_available: bool
    resources_documentation: bool
    score: float = Field(ge=0, le=1)


class TemporalCoverage(_Closed):
    start: str | None
    end: str | None


class Spatial(_Closed):
    granularity: str
    zones: list[str]
    geom: None


class DatasetExtras(_Closed):
    version: str | None
    rows: dict[str, Count]
    rows_left_out: Count
    levels: list[str]
    versions: Url
    datapackage: Url


class Dataset(_Closed):
    """A dataset (udata shape) with its resources and quality."""

    id: Uuid
    slug: str
    title: str
    acronym: str | None
    description: str
    created_at: Time
    last_modified: Time
    last_update: Time
    tags: list[str]
    frequency: str
    frequency_date: Time
    organization: OrganizationReference | None
    license: str
    temporal_coverage: TemporalCoverage | None
    spatial: Spatial | None
    schema_: SchemaRef = Field(alias="schema")
    extras: DatasetExtras
    resources: list[Resource]
    uri: Url
    page: Url
    quality: Quality
    description_short: str | None
    deleted: None
    archived: None
    featured: bool
    private: bool
    badges: list[dict[str, str]] = Field(max_length=0)
    harvest: None
    owner: None
    contact_points: list[dict[str, str]] = Field(max_length=0)
    metrics: DatasetMetrics
    internal: Internals


class ResourcesLink(_Closed):
    rel: Literal["subsection"]
    href: Url
    type: Literal["GET"]
    total: Count


class DatasetV2(Dataset):
    """A dataset in udata API v2's shape: ``resources`` is a link to their pager."""

    resources: ResourcesLink  # type: ignore[assignment]  # v2 replaces the list by a link


class SpecificResource(_Closed):
    """A resource found by its id alone, with its dataset's id (udata API v2)."""

    resource: Resource
    dataset_id: Uuid


class VersionResource(_Closed):
    id: Uuid
    name: str | None
    level: str
    format: str
    mime: str | None
    url: Url
    checksum: Checksum
    filesize: Count | None
    rows: Count | None


class Upload(_Closed):
    """An upload (or a fed dataset's version, ``{dataset}@{version}``) a version brought (or,
    for versions published before the upload index, was made of)."""

    upload_id: str
    producer: str | None
    received_at: Time = Field(description="When it arrived (from its id), ISO 8601 UTC.")
    new: bool = Field(description="Brought by this version (not in the version before).")


class Version(_Closed):
    """One published version, with its immutable files."""

    version: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}-\d{2}h\d{2}m\d{2}s$")
    published_at: Time
    uploads: list[Upload]
    producers: list[str]
    upload_count: Count = Field(description="Uploads (and fed versions) it is made of in all.")
    rows: dict[str, Count]
    resources: list[VersionResource]
    datapackage: Url
    uri: Url
    changes: Url | None = Field(
        default=None, description="What it changed (present when the version recorded it)."
    )


Scalar = int | float | str | bool | None
"""A cell or key value (dates as ISO text)."""


class ChangeRows(_Closed):
    before: Count
    after: Count
    added: Count
    removed: Count
    changed: Count
    unchanged: Count


class ChangeCells(_Closed):
    changed: Count
    csv_rows: Count | None
    csv_truncated: bool


class CellChange(_Closed):
    key: dict[str, Scalar]
    old: Scalar
    new: Scalar
    delta: int | float


class ColumnChange(_Closed):
    name: str
    measure: bool
    changed: Count
    largest: list[CellChange]


class KeyValueChange(_Closed):
    column: str
    before: Count
    after: Count
    added: Count
    missing: Count
    missing_values: list[Scalar]


class Span(_Closed):
    start: Scalar
    end: Scalar


class HistoryChange(_Closed):
    column: str
    before: Span | None
    after: Span | None
    shrunk: bool


class SchemaColumn(_Closed):
    name: str
    type: str


class SchemaRetype(_Closed):
    name: str
    old: str
    new: str


class SchemaChange(_Closed):
    added: list[SchemaColumn]
    removed: list[SchemaColumn]
    retyped: list[SchemaRetype]
    additive: bool


class Changes(_Closed):
    """What a version changed against the one before (a first version: ``note`` "no previous
    version" and the summary keys null)."""

    dataset: str
    level: str | None
    version: str
    previous: str | None
    note: str | None
    csv: Url | None = Field(description="The changed cells (CSV: key, column, old, new).")
    key: list[str] | None
    rows: ChangeRows | None
    cells: ChangeCells | None
    columns: list[ColumnChange] | None
    key_values: list[KeyValueChange] | None
    history: HistoryChange | None
    schema_: SchemaChange | None = Field(alias="schema")
    drops_published: bool | None
    warnings: list[str] | None
    uri: Url


class _Pager(_Closed):
    page: int = Field(ge=1)
    page_size: int = Field(ge=1, le=MAX_PAGE_SIZE)
    total: Count
    next_page: str | None
    previous_page: str | None


class DatasetPage(_Pager):
    """A udata pager of datasets."""

    data: list[Dataset] = Field(max_length=MAX_PAGE_SIZE)


class OrganizationPage(_Pager):
    """A udata pager of organizations."""

    data: list[Organization] = Field(max_length=MAX_PAGE_SIZE)


class ResourcePage(_Pager):
    """A udata API v2 pager of one dataset's resources."""

    data: list[Resource] = Field(max_length=MAX_PAGE_SIZE)


class VersionPage(_Pager):
    """A udata pager of versions, newest first."""

    data: list[Version] = Field(max_length=MAX_PAGE_SIZE)


class SchemaField(_Open):
    name: str
    type: str


class TableSchema(_Open):
    """A level's Table Schema with its ``version`` (other Table Schema keys as published)."""

    fields: list[SchemaField]
    missingValues: list[str] = Field(default_factory=list)  # Table Schema's name
    primaryKey: list[str] = Field(default_factory=list)  # Table Schema's name
    version: str


class PackageResource(_Open):
    name: str
    path: Url
    bytes: Count
    hash: str = Field(pattern="^sha256:[0-9a-f]{64}$")
    schema_: dict[str, object] = Field(alias="schema")


class DataPackage(_Open):
    """The current version's Data Package, paths as absolute URLs."""

    name: str
    version: str | None = None
    resources: list[PackageResource]
