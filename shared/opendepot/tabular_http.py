"""The row-level API on the index's ``Site``: data.gouv.fr api-tabular's routes and shapes over
the Parquet copy of each resource's current version.

Routes (declared in ``functions/index_api/app.py`` with ``Site.read``; paths as api-tabular's,
``/api/resources/{rid}/...``, so a reuser changes only the host):

- ``/api/resources/{rid}/``: ``{"created_at", "url", "links": [{"href", "type": "GET",
  "rel": "profile"|"data"|"swagger"}]}``.
- ``/api/resources/{rid}/data/``: ``{"data": [row...], "links": {"profile", "swagger", "next",
  "prev"}, "meta": {"page", "page_size", "total"}}``; rows carry ``__id`` and the file's
  columns (or those of ``columns=``), typed (dates ISO 8601, null as null).
- ``/api/resources/{rid}/data/csv/`` and ``/data/json/``: the whole selection (filters, sort,
  ``columns``; no paging), CSV (``,``, header, formula-like text cells escaped as in the
  published CSV) or a JSON array, built batch by batch (``tabular.export``); a body over
  ``EXPORT_MAX_BYTES`` in the Lambda answer is a 403 (``bounded``), as more than
  ``tabular.EXPORT_MAX_ROWS`` rows is.
- ``/api/resources/{rid}/profile/`` and ``/swagger/``: ``tabular_docs``.

``rid`` is any resource id of the catalog (CSV or Parquet): the query runs on the Parquet file
of the same level of the dataset's current version. Errors are the index's envelope
(``{"status", "message"}``): 404 for an unknown resource, 400 naming the parameter, column or
value at fault (api-tabular answers ``{"errors": [{"code", "title", "detail"}]}``).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlencode

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.request import Request
from pydantic import BaseModel, ConfigDict, Field

from opendepot import index, tabular_params
from opendepot import index_http as http
from opendepot.api_models import PageParam
from opendepot.tabular_params import PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX

if TYPE_CHECKING:  # the engine (pyarrow) is imported by the first row query, not by the index
    import pyarrow as pa

    from opendepot import tabular
    from opendepot.tabular import ParquetSource

RESOURCES_PATH = "/api/resources/"
EXPORT_MAX_BYTES = 5_000_000
"""Bytes an export's body may take in the Lambda answer (``answer_bytes``, before compression):
AWS Lambda's synchronous answers are at most 6 MB, envelope and headers included."""
"""api-tabular's prefix; a resource is ``RESOURCES_PATH + "{rid}/"``."""

# --- query parameters (declared for the OpenAPI document; read from the raw query string) ------

TabularPageSizeParam = Annotated[int, Query(
    ge=1, le=PAGE_SIZE_MAX,
    description=f"Rows per page (default {PAGE_SIZE_DEFAULT}, at most {PAGE_SIZE_MAX}).")]
ColumnsParam = Annotated[str, Query(
    description="Columns to return, comma-separated (`__id` included); default: every one.")]
FILTER_NAME = f"^.+__({'|'.join(sorted({*tabular_params.FILTERS, 'sort'}))})$"
"""The name of a filter or sort parameter (the columns are the resource's: ``/swagger/``)."""
FiltersParam = Annotated[dict[str, str], Query(
    description="Filters and sorts, one query parameter each (form, exploded): "
    "`{column}__{operator}={value}` with operator one of "
    f"{', '.join(f'`{op}`' for op in tabular_params.FILTERS)} "
    "(`in`/`notin`: comma-separated values; "
    "`isnull`/`isnotnull`: no value), and `{column}__sort=asc|desc`. Values are parsed to the "
    "column's type (dates `YYYY-MM-DD`); an unknown column, operator or a bad value is a 400. "
    "See `/api/resources/{rid}/swagger/` for one resource's columns.",
    json_schema_extra={"propertyNames": {"pattern": FILTER_NAME}})]


def data_query(
    request: Request,
    page: PageParam = 1,
    page_size: TabularPageSizeParam = PAGE_SIZE_DEFAULT,
    columns: ColumnsParam = "",
    filters: FiltersParam | None = None,
) -> list[tuple[str, str]]:
    """``/data/``'s parameters (declared here); the raw query, for ``tabular.parse_query``."""
    return http.raw_query(request.resolved_event)


def export_query(
    request: Request, columns: ColumnsParam = "", filters: FiltersParam | None = None
) -> list[tuple[str, str]]:
    """The exports' parameters (declared here); the raw query."""
    return http.raw_query(request.resolved_event)


DataQuery = Annotated[list[tuple[str, str]], Depends(data_query)]
ExportQuery = Annotated[list[tuple[str, str]], Depends(export_query)]

# --- documents (for the OpenAPI document) -------------------------------------------------------


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class DataLinks(_Doc):
    profile: str = Field(min_length=1)
    swagger: str = Field(min_length=1)
    next: str | None
    prev: str | None


class DataMeta(_Doc):
    page: int = Field(ge=1)
    page_size: int = Field(ge=1, le=PAGE_SIZE_MAX)
    total: int = Field(ge=0)


class DataPage(_Doc):
    """One page of rows (api-tabular's ``/data/``)."""

    data: list[dict[str, Any]]
    links: DataLinks
    meta: DataMeta


class ResourceLink(_Doc):
    href: str = Field(min_length=1)
    type: Literal["GET"]
    rel: Literal["profile", "data", "swagger"]


class ResourceMeta(_Doc):
    """A resource as api-tabular describes it."""

    created_at: str | None
    url: str = Field(min_length=1)
    links: list[ResourceLink]


class Profile(_Doc):
    """api-tabular's ``/profile/`` (csv-detective's analysis)."""

    profile: dict[str, Any]
    indexes: None
    dataset_id: str
    deleted_at: None


CSV = http.Answer("text/csv", schema={"type": "string"},
                  description="The selection as CSV (`,`, header line).")
JSON_ROWS = http.Answer("application/json", schema={
    "type": "array", "items": {"type": "object"}}, description="The selection as a JSON array.")
SWAGGER = http.Answer("application/json", schema={"type": "object", "required": ["openapi"]},
                      description="OpenAPI 3.0 document of this resource's `/data/` route.")

# --- the handlers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Located:
    """What a resource id points at."""

    dataset: index.Document
    resource: index.Document
    source: ParquetSource
    """The Parquet file of the resource's level in the current version."""


class Handlers:
    """The row-level routes over a ``Site`` (see module docstring); each method is one route's
    handler, its name the operation id. Raises ``index.NotFound`` / ``index.BadRequest``."""

    def __init__(self, site: http.Site) -> None:
        self.site = site

    def locate(self, rid: str) -> Located:
        """The resource ``rid`` and the Parquet file it is queried on.

        Raises:
            index.NotFound: no such resource, or its level has no Parquet copy.
        """
        s = self.site
        found = s.catalog().resources.get(rid)
        if found is None:
            raise index.NotFound(f"resource {rid!r} not found")
        dataset, resource = found
        level = (resource.get("extras") or {}).get("level")
        reader = s.reader()
        manifest = reader.manifest(str(dataset["slug"])).manifest
        parquet = next((r for r in manifest.resources
                        if r.level == level and r.format == "parquet"), None)
        if parquet is None:
            raise index.NotFound(f"resource {rid!r} has no Parquet copy to query")
        from opendepot.tabular import ParquetSource

        source = ParquetSource(reader.store, reader.settings.published_bucket, parquet.path,
                               parquet.bytes, parquet.sha256)
        return Located(dataset, resource, source)

    def _url(self, rid: str, tail: str = "") -> str:
        return f"{self.site.base()}{RESOURCES_PATH}{rid}/{tail}"

    def _plan(self, at: Located, pairs: list[tuple[str, str]], paged: bool) -> tabular.Plan:
        from opendepot import tabular

        return tabular.parse_query(pairs, at.source.fragment().physical_schema, paged)

    def tabular_resource(self, rid: str) -> Response[str]:
        """A resource and the links of its row-level API (api-tabular)."""
        at = self.locate(rid)
        links = [{"href": self._url(rid, f"{rel}/"), "type": "GET", "rel": rel}
                 for rel in ("profile", "data", "swagger")]
        return self.site.json({"created_at": at.resource.get("created_at"),
                               "url": at.resource["url"], "links": links})

    def tabular_data(self, rid: str, query: DataQuery) -> Response[str]:
        """Rows of a resource: filters, sort, page (api-tabular)."""
        at = self.locate(rid)
        plan = self._plan(at, query, paged=True)
        from opendepot import tabular

        result = tabular.query(at.source, plan)
        return self.site.json(data_document(plan, result, self._url(rid)))

    def tabular_data_csv(self, rid: str, query: ExportQuery) -> Response[str]:
        """Every selected row of a resource, as CSV (api-tabular)."""
        from opendepot import tabular

        at = self.locate(rid)
        batches = tabular.export(at.source, self._plan(at, query, False))
        body = bounded("CSV", csv_chunks(batches))
        return self._file(body, "text/csv; charset=utf-8", f"{rid}.csv")

    def tabular_data_json(self, rid: str, query: ExportQuery) -> Response[str]:
        """Every selected row of a resource, as a JSON array (api-tabular)."""
        from opendepot import tabular

        at = self.locate(rid)
        batches = tabular.export(at.source, self._plan(at, query, False))
        body = bounded("JSON", json_chunks(batches))
        return self._file(body, http.JSON, f"{rid}.json")

    def tabular_profile(self, rid: str) -> Response[str]:
        """Profile of a resource: types, min, max, nulls, distinct values (api-tabular)."""
        from opendepot import tabular_docs

        at = self.locate(rid)
        return self.site.json(tabular_docs.profile_document(at.source, str(at.dataset["id"])))

    def tabular_swagger(self, rid: str) -> Response[str]:
        """OpenAPI document of one resource's rows, its columns' parameters (api-tabular)."""
        at = self.locate(rid)
        schema = at.source.fragment().physical_schema
        data_path = f"{RESOURCES_PATH}{rid}/data/"
        from opendepot import tabular_docs

        return self.site.json(tabular_docs.swagger_document(rid, schema, data_path))

    def _file(self, body: str, media: str, name: str) -> Response[str]:
        headers = {"Content-Disposition": f'attachment; filename="{name}"'}
        return http.send(self.site.event, body, media, headers=headers)


def data_document(plan: tabular.Plan, result: tabular.Result, resource_url: str) -> dict[str, Any]:
    """api-tabular's ``/data/`` answer; ``resource_url`` is ``.../api/resources/{rid}/``. The
    pager links keep the query as received, ``page`` and ``page_size`` put last."""
    from opendepot import tabular

    kept = [(k, v) for k, v in plan.params if k not in ("page", "page_size")]

    def page(n: int) -> str:
        query = urlencode([*kept, ("page", n), ("page_size", plan.page_size)])
        return f"{resource_url}data/?{query}"

    more = plan.offset + plan.page_size < result.total
    return {
        "data": tabular.jsonable(result.rows),
        "links": {"profile": f"{resource_url}profile/", "swagger": f"{resource_url}swagger/",
                  "next": page(plan.page + 1) if more else None,
                  "prev": page(plan.page - 1) if plan.page > 1 else None},
        "meta": {"page": plan.page, "page_size": plan.page_size, "total": result.total},
    }


def answer_bytes(text: str) -> int:
    """Bytes ``text`` takes in the Lambda answer's JSON ``body`` (quotes, backslashes, control
    and non-ASCII characters escaped, as ``json.dumps`` writes them), before any compression:
    at least its UTF-8 size."""
    return len(json.dumps(text)) - 2


def bounded(kind: str, chunks: Iterator[str], limit: int | None = None) -> str:
    """The export body made of ``chunks``, if it takes at most ``limit`` bytes in the Lambda
    answer (``answer_bytes``; ``EXPORT_MAX_BYTES`` when None). Past the limit the chunks are
    only counted (memory stays bounded) to name the whole size.

    Raises:
        index.TooLarge: the body would be larger (api-tabular's 403); the message names the
            size, the limit and what to do.
    """
    limit = EXPORT_MAX_BYTES if limit is None else limit
    kept: list[str] = []
    size = 0
    for chunk in chunks:
        size += answer_bytes(chunk)
        if size <= limit:
            kept.append(chunk)
        elif kept:
            kept.clear()  # past the limit: count the rest, keep nothing
    if size > limit:
        raise index.TooLarge(
            f"the {kind} export of this selection is {size} bytes, over the {limit} bytes an "
            "answer may carry (AWS Lambda answers at most 6 MB): filter it further, choose "
            "fewer columns, or download the whole file")
    return "".join(kept)


def csv_chunks(batches: Iterator[pa.Table]) -> Iterator[str]:
    """CSV text batch by batch: a header line, then rows (``,``; text quoted when needed;
    formula-like text cells escaped with ``'`` as in the published CSV; dates ISO)."""
    import pyarrow.csv as pacsv

    from opendepot import render

    header = True
    for batch in batches:
        sink = io.BytesIO()
        options = pacsv.WriteOptions(include_header=header, quoting_style="needed")
        pacsv.write_csv(render.neutralised(batch), sink, options)
        header = False
        yield sink.getvalue().decode("utf-8")


def json_chunks(batches: Iterator[pa.Table]) -> Iterator[str]:
    """A JSON array of row objects, batch by batch (``tabular.jsonable`` values)."""
    from opendepot import tabular

    yield "["
    first = True
    for batch in batches:
        for row in tabular.jsonable(batch):
            yield ("" if first else ",") + json.dumps(row, ensure_ascii=False,
                                                      separators=(",", ":"))
            first = False
    yield "]"
