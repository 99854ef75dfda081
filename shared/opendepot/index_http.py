"""The HTTP side of the index, on Powertools' event handler: how routes are declared, how
answers are sent, how errors become the envelope, how query strings are read.

- ``Site``: the index on one resolver. ``Site.read(rule, ...)`` registers a GET and a HEAD
  operation (and the rule's twin with or without the trailing slash, hidden from the OpenAPI
  document) with the response model the OpenAPI document shows; ``Site.rules`` lists every
  rule; a known path asked with another method is a 405, any other a 404. ``Site.reader()``
  is the cached reader over the runtime's settings, store and clock.
- ``send``: the body with ``ETag``, ``Cache-Control``, ``Vary`` and, for answers built from
  published state, ``Last-Modified``; ``304`` when ``If-None-Match`` holds (or, without
  ``If-None-Match``, when ``If-Modified-Since`` is not before ``Last-Modified``: the later of
  the published state's time and, for answers carrying ``metrics.reuses``, the reuse index's
  last change, ``later``); gzip when
  asked and worth it (the ETag is then weak, as nginx does). ``send_json`` first applies the
  request's ``X-Fields`` mask (``opendepot.xfields``) to a 200's document.
- ``error_response``: the one place an exception becomes ``{"status", "message"}``.
- ``list_query``, ``page_query``, ``level_query``, ``at_query``: the query parameters of the
  routes that take some, as Powertools dependencies. Their signatures declare the parameters
  (``api_models`` types: that is what the OpenAPI document lists); the values are read from the
  raw query string by ``paging.parse_*`` (udata's rules: unknown parameters ignored, empty
  values absent, the last value wins, ``tag`` repeats), so the route gets a parsed
  ``paging.PageQuery``.
- ``Handlers``: what each route answers, one method per operation (its name is the operation
  id, the first line of its docstring the summary); ``functions/index_api/app.py`` declares
  each route with ``Site.read`` over one of them and does nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qsl, urlencode

from aws_lambda_powertools.event_handler import CORSConfig, Response
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.exceptions import ServiceError
from aws_lambda_powertools.event_handler.request import Request
from aws_lambda_powertools.utilities.data_classes.common import BaseProxyEvent
from pydantic import BaseModel

from opendepot import atom, dcat, index, openapi, paging, reuses, runtime, xfields
from opendepot.api_models import (
    LEVELS,
    AtParam,
    Error,
    FlagParam,
    FormatParam,
    LevelParam,
    OrganizationParam,
    PageParam,
    PageSizeParam,
    PeriodParam,
    SearchParam,
    SortParam,
    TagParam,
    TextParam,
)
from opendepot.config import Settings
from opendepot.index import DEFAULT_PAGE_SIZE
from opendepot.reader import CatalogReader, Clock, utcnow
from opendepot.storage import Store

JSON = "application/json; charset=utf-8"
JSON_CACHE = "public, max-age=60"
IMMUTABLE_CACHE = "public, max-age=86400"
"""Cache-Control of immutable documents (a published version)."""
GZIP_MIN_BYTES = 1024
CORS = CORSConfig(
    allow_origin="*",
    allow_headers=["If-None-Match", "If-Modified-Since", "X-Fields"],
    expose_headers=["ETag", "Last-Modified", "Location", "Content-Encoding"],
    max_age=3600,
)
"""Any origin may read; pre-flights are answered (OPTIONS) and cached an hour."""

Handler = TypeVar("Handler", bound=Callable[..., Any])


# --- requests -----------------------------------------------------------------------------------


def raw_query(event: BaseProxyEvent) -> list[tuple[str, str]]:
    """The query string as received, in order, blanks kept (``rawQueryString``, else the
    decoded ``queryStringParameters``)."""
    raw = event.get("rawQueryString")
    if raw is None:
        raw = urlencode(event.get("queryStringParameters") or {})
    return parse_qsl(raw, keep_blank_values=True)


def base_url(event: BaseProxyEvent, configured: str) -> str:
    """Base URL of this API: ``configured`` (the setting), else the URL the request came to (API
    Gateway's domain, ``X-Forwarded-Proto``, and the stage when it is not ``$default``); "" when
    the request says nothing of its host."""
    if configured:
        return configured.rstrip("/")
    ctx = event.get("requestContext") or {}
    host = ctx.get("domainName") or event.headers.get("host")
    if not host:
        return ""
    proto = (event.headers.get("x-forwarded-proto") or "https").split(",")[0].strip()
    stage = ctx.get("stage")
    prefix = f"/{stage}" if stage and stage != "$default" else ""
    return f"{proto}://{host}{prefix}"


def list_query(
    request: Request,
    page: PageParam = 1,
    page_size: PageSizeParam = DEFAULT_PAGE_SIZE,
    q: SearchParam = "",
    tag: TagParam | None = None,
    organization: OrganizationParam = "",
    format: FormatParam = "",  # udata's parameter name
    sort: SortParam | None = None,
    license: TextParam = "",
    geozone: TextParam = "",
    granularity: TextParam = "",
    temporal_coverage: PeriodParam | None = None,
    schema: TextParam = "",
    schema_version: TextParam = "",
    featured: FlagParam | None = None,
    archived: FlagParam | None = None,
    deleted: FlagParam | None = None,
    private: FlagParam | None = None,
) -> paging.ListQuery:
    """``GET /api/1/datasets/``'s parameters (declared here, read by ``paging.parse_list_query``;
    udata's filters opendepot cannot honour, ``paging.UNSUPPORTED_FILTERS``, are a 400).

    Raises:
        index.BadRequest: a value the declaration does not allow.
    """
    return paging.parse_list_query(raw_query(request.resolved_event))


def page_query(
    request: Request, page: PageParam = 1, page_size: PageSizeParam = DEFAULT_PAGE_SIZE
) -> paging.PageQuery:
    """A paged list's parameters (declared here, read by ``paging.parse_page_query``).

    Raises:
        index.BadRequest: ``page`` or ``page_size`` not allowed.
    """
    return paging.parse_page_query(raw_query(request.resolved_event))


def level_query(request: Request, level: LevelParam | None = None) -> list[tuple[str, str]]:
    """The schema's ``level`` (declared here); the query, for ``paging.parse_level`` to check
    against the dataset's own levels."""
    return raw_query(request.resolved_event)


def at_query(request: Request, at: AtParam | None = None) -> datetime | None:
    """A permanent link's ``at`` (declared here, read by ``paging.parse_at``): None when absent.

    Raises:
        index.BadRequest: not an ISO 8601 time.
    """
    return paging.parse_at(raw_query(request.resolved_event))


# --- responses ----------------------------------------------------------------------------------


def http_date(moment: str | None) -> str | None:
    """An ISO 8601 time as an HTTP date (``Sun, 29 Nov 2026 07:30:12 GMT``); None if none."""
    parsed = index.parse_time(moment)
    return format_datetime(parsed.astimezone(UTC), usegmt=True) if parsed else None


def later(*moments: str | None) -> str | None:
    """The latest of ISO 8601 ``moments`` (None and unreadable ones skipped; None if none): the
    ``Last-Modified`` of an answer built from more than one source."""
    dated = [(t, m) for m in moments if (t := index.parse_time(m)) is not None]
    return max(dated)[1] if dated else None


def not_modified_since(event: BaseProxyEvent, last_modified: str | None) -> bool:
    """Whether ``If-Modified-Since`` holds: present, without ``If-None-Match`` (which wins,
    RFC 9110), an HTTP date, and ``last_modified`` (an HTTP date) not after it."""
    since = event.headers.get("if-modified-since")
    if not since or not last_modified or event.headers.get("if-none-match"):
        return False
    try:
        return parsedate_to_datetime(last_modified) <= parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False


def send(
    event: BaseProxyEvent,
    body: str,
    content_type: str,
    status: int = 200,
    headers: dict[str, str] | None = None,
    cache: str = JSON_CACHE,
    modified: str | None = None,
) -> Response[str]:
    """An answer with ETag, Cache-Control (``no-cache`` unless 200), Vary and ``Last-Modified``
    (``modified``: ISO 8601, when the answer is built from published state); 304 when
    ``If-None-Match`` holds, or ``If-Modified-Since`` does (``not_modified_since``); gzip when
    asked and at least ``GZIP_MIN_BYTES`` (weak ETag); no body for HEAD."""
    head = event.http_method.upper() == "HEAD"
    tag = index.etag(body)
    gzip = (
        status == 200
        and not head
        and len(body) >= GZIP_MIN_BYTES
        and "gzip" in (event.headers.get("accept-encoding") or "")
    )
    out = {"ETag": f"W/{tag}" if gzip else tag, "Vary": "Accept-Encoding", **(headers or {})}
    out.setdefault("Cache-Control", cache if status == 200 else "no-cache")
    last = http_date(modified) if status == 200 else None
    if last:
        out["Last-Modified"] = last
    if status == 200 and (
        index.etag_matches(event.headers.get("if-none-match"), tag)
        or not_modified_since(event, last)
    ):
        return Response(status_code=304, headers=out, body="", compress=False)
    body = "" if head else body
    return Response(status, content_type, body, out, compress=gzip)


def send_json(
    event: BaseProxyEvent,
    doc: Any,
    status: int = 200,
    headers: dict[str, str] | None = None,
    cache: str = JSON_CACHE,
    modified: str | None = None,
) -> Response[str]:
    """A JSON document (``index.render``), sent as ``send`` does; a 200's document first goes
    through the request's ``X-Fields`` mask (``Vary`` names it).

    Raises:
        index.BadRequest: a malformed mask (``xfields.parse``/``apply``).
    """
    if status == 200:
        mask = xfields.parse(xfields.header(event.headers))
        doc = xfields.apply(mask, doc) if mask else doc
    vary = {"Vary": "Accept-Encoding, X-Fields"}
    return send(event, index.render(doc), JSON, status, {**vary, **(headers or {})}, cache,
                modified)


def redirect(location: str) -> Response[str]:
    """A 302 to ``location``, never cached (the target changes with each version)."""
    return Response(302, None, "", {"Location": location, "Cache-Control": "no-cache"})


def error_response(event: BaseProxyEvent, exc: Exception, log: Any) -> Response[str]:
    """The one place where an exception becomes the JSON error envelope: ``index.ApiError``
    with its status, Powertools' ``ServiceError`` with its, anything else a logged 500."""
    if not isinstance(exc, index.ApiError):
        if isinstance(exc, ServiceError):
            api = index.ApiError(str(exc.msg))
            api.status = int(exc.status_code)
        else:
            log.exception("unhandled error")
            api = index.ApiError("internal error")
        exc = api
    return send_json(event, index.error_document(exc), exc.status, dict(exc.headers))


# --- routes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What a route's 200 is: media type and the model the OpenAPI document shows."""

    media: str = "application/json"
    model: type[BaseModel] | None = None
    """The body's model (None: ``schema`` below)."""
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    description: str = "OK"
    more: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Other media types of the 200 (content negotiation), each with its body's schema."""


class Site:
    """The index on one Powertools resolver: its routes, its reader, the request in hand.

    Installs the resolver's 404/405 and error handlers. The reader is the runtime's
    (``opendepot.runtime.current()``: settings, store, clock), made once per runtime and kept
    between invocations, unless ``configure`` pinned another store.
    """

    def __init__(self, app: ApiGatewayResolver, log: Any) -> None:
        self.app = app
        self.log = log
        """Where unhandled errors and loads are logged (a Powertools ``Logger``)."""
        self.rules: list[str] = []
        """Every rule declared (Powertools syntax, ``<name>`` for a parameter), in order."""
        self._patterns: list[re.Pattern[str]] = []
        self._pinned: CatalogReader | None = None
        self._kept: tuple[runtime.Runtime, CatalogReader] | None = None
        app.not_found(self._no_route)
        app.exception_handler(Exception)(self._error)

    # -- wiring

    def configure(
        self,
        store: Store | None = None,
        settings: Settings | None = None,
        clock: Clock | None = None,
    ) -> None:
        """Serve from ``store`` (tests, the local stack) with ``settings`` and ``clock`` (the
        runtime's when None); ``store`` None: back to the runtime's. Forgets what was kept."""
        self._kept = None
        if store is None:
            self._pinned = None
            return
        settings = settings or runtime.current().settings
        self._pinned = CatalogReader(settings, store, clock or utcnow, self.log)

    def reader(self) -> CatalogReader:
        """The reader in force."""
        if self._pinned is not None:
            return self._pinned
        rt = runtime.current()
        if self._kept is None or self._kept[0] is not rt:
            self._kept = (rt, CatalogReader(rt.settings, rt.store, rt.clock, self.log))
        return self._kept[1]

    # -- the request in hand

    @property
    def event(self) -> BaseProxyEvent:
        return self.app.current_event

    def base(self) -> str:
        """This API's base URL for the request in hand (see ``base_url``)."""
        return base_url(self.event, self.reader().settings.api_base_url)

    def links(self) -> index.Links:
        return self.reader().links(self.base())

    def catalog(self) -> index.Catalog:
        return self.reader().catalog(self.base())

    def slug(self, dataset: str) -> str:
        """The slug of the dataset whose slug or id is ``dataset``. Raises index.NotFound."""
        return str(index.get_dataset(self.catalog(), dataset)["slug"])

    def now(self) -> datetime:
        return self.reader().clock()

    def reuse_counts(self) -> tuple[dict[str, int], str | None]:
        """``(reuses per dataset id, the reuse index's last change)``
        (``reuses.reuse_metrics``): an answer carrying ``metrics.reuses`` is modified at the
        later of its published state's time and that change (``later``)."""
        r = self.reader()
        return reuses.reuse_metrics(r.store, r.settings)

    def json(
        self, doc: Any, cache: str = JSON_CACHE, modified: str | None = None
    ) -> Response[str]:
        """``doc`` as the answer (see ``send_json``); ``modified``: the ISO 8601 time of the
        published state it is built from (``Last-Modified``), None when none."""
        return send_json(self.event, doc, cache=cache, modified=modified)

    def send(self, body: str, content_type: str, modified: str | None = None) -> Response[str]:
        """``body`` as the answer (see ``send``)."""
        return send(self.event, body, content_type, modified=modified)

    # -- routes

    def read(
        self,
        rule: str,
        answer: Answer | type[BaseModel] | None,
        tag: str = "datasets",
        errors: Sequence[int] = (404,),
    ) -> Callable[[Handler], Handler]:
        """Register ``func`` for GET and HEAD on ``rule`` (operation ids ``{func name}`` and
        ``{func name}_head``, summary the first line of its docstring), and on its twin with or
        without the trailing slash (except for file names, which have none), hidden from the
        OpenAPI document. ``answer``: the 200's model (JSON) or ``Answer``; None: a 302
        redirect. ``errors``: statuses documented besides 500."""
        if isinstance(answer, type):
            answer = Answer(model=answer)

        def register(func: Handler) -> Handler:
            last = rule.rsplit("/", 1)[-1]
            twin = "." not in last or last.startswith("<")
            summary = (func.__doc__ or func.__name__).strip().splitlines()[0].rstrip(".")
            for method, suffix in (("GET", ""), ("HEAD", "_head")):
                self.app.route(
                    rule,
                    method=method,
                    summary=f"{summary} (headers only)" if suffix else summary,
                    tags=[tag],
                    operation_id=func.__name__ + suffix,
                    responses=_responses(answer, errors),
                )(func)
                if twin:
                    other = rule[:-1] if rule.endswith("/") else rule + "/"
                    self.app.route(other, method=method, include_in_schema=False)(func)
            self.rules.append(rule)
            pattern = re.sub(r"<\w+>", "[^/]+", rule.rstrip("/") if twin else rule)
            self._patterns.append(re.compile(f"^{pattern}{'/?' if twin else ''}$"))
            return func

        return register

    def _no_route(self, _: Exception) -> Response[str]:
        """No route matched: 405 when the path is a route's (another method), else 404."""
        path, method = self.event.path, self.event.http_method.upper()
        if method not in ("GET", "HEAD") and any(p.match(path) for p in self._patterns):
            raise index.MethodNotAllowed(f"{self.event.http_method} is not allowed on {path}")
        raise index.NotFound(f"no route for {path}")

    def _error(self, exc: Exception) -> Response[str]:
        return error_response(self.event, exc, self.log)


_ERROR_TEXT = {400: "Bad query parameter.", 403: "Selection too large to export.",
               404: "Not found.", 406: "Not acceptable."}


def _responses(answer: Answer | None, errors: Sequence[int]) -> dict[int, Any]:
    """The OpenAPI responses of a route (``opendepot.openapi`` adds what every route shares)."""
    out: dict[int, Any] = {}
    if answer is None:
        out[302] = {"description": "Redirect to the current immutable file.", "content": {}}
    else:
        content = {"model": answer.model} if answer.model else {"schema": answer.schema}
        media = {answer.media: content, **{k: {"schema": v} for k, v in answer.more.items()}}
        out[200] = {"description": answer.description, "content": media}
    for status in errors:
        error = {"application/json": {"model": Error}}
        out[status] = {"description": _ERROR_TEXT[status], "content": error}
    return out


# --- what each route answers --------------------------------------------------------------------

ListQuery = Annotated[paging.ListQuery, Depends(list_query)]
"""``GET /api/1/datasets/``'s parsed query (a Powertools dependency)."""
PageQuery = Annotated[paging.PageQuery, Depends(page_query)]
"""A paged list's parsed query."""
LevelQuery = Annotated[list[tuple[str, str]], Depends(level_query)]
"""The query of ``/schema/`` (its ``level`` is checked against the dataset's levels)."""
AtQuery = Annotated[datetime | None, Depends(at_query)]
"""A permanent link's parsed ``at`` (None: now)."""


class Handlers:
    """The index's operations over a ``Site``. Each method is one route's handler: its name is
    the operation id, its docstring's first line the summary, its parameters the path
    parameters and query dependencies Powertools passes. Each raises ``index.ApiError`` (the
    error envelope, see ``error_response``) and answers through ``Site.json``/``send``."""

    def __init__(self, site: Site) -> None:
        self.site = site
        """The resolver, reader and request in hand."""

    def list_datasets(self, query: ListQuery) -> Response[str]:
        """Datasets (udata pager)."""
        s = self.site
        catalog = s.catalog()
        counts, changed = s.reuse_counts()
        doc = paging.list_datasets(catalog, query, s.links(), s.now(), reuses=counts)
        return s.json(doc, modified=later(catalog.generated_at, changed))

    def get_dataset(self, dataset: str) -> Response[str]:
        """One dataset with its resources."""
        s = self.site
        d = index.get_dataset(s.catalog(), dataset)
        counts, changed = s.reuse_counts()
        return s.json(paging.served(d, s.now(), counts),
                      modified=later(d["last_modified"], changed))

    def get_resource(self, dataset: str, rid: str) -> Response[str]:
        """One resource of a dataset."""
        s = self.site
        catalog = s.catalog()
        found = index.get_resource(catalog, dataset, rid)
        return s.json(found, modified=index.get_dataset(catalog, dataset)["last_modified"])

    def latest_file(self, rid: str, at: AtQuery) -> Response[str]:
        """Permanent link: redirect to the current version's file.

        With ``at`` (ISO 8601), to the file of the version in force at that moment: 404 before
        the dataset's first version or when that version had no such file."""
        s = self.site
        if at is None:
            return redirect(index.find_resource(s.catalog(), rid)["url"])
        found = s.catalog().resources.get(rid)
        if found is None:
            raise index.NotFound(f"resource {rid!r} not found")
        slug, reader = str(found[0]["slug"]), s.reader()
        manifest = reader.in_force_at(reader.manifest(slug), at)
        return redirect(paging.file_at(slug, manifest, rid, at, s.links()))

    def recent_atom(self) -> Response[str]:
        """The newest versions of every dataset (Atom 1.0 feed)."""
        s = self.site
        reader = s.reader()
        body = reader.recent_feed(s.base())
        return s.send(body, atom.MEDIA, reader.catalog(s.base()).generated_at)

    def versions_atom(self, dataset: str) -> Response[str]:
        """The newest versions of one dataset (Atom 1.0 feed)."""
        s = self.site
        doc = index.get_dataset(s.catalog(), dataset)
        return s.send(s.reader().versions_feed(doc, s.base()), atom.MEDIA, doc["last_modified"])

    def list_versions(self, dataset: str, query: PageQuery) -> Response[str]:
        """Every published version, newest first."""
        s = self.site
        doc = index.get_dataset(s.catalog(), dataset)
        versions = s.reader().versions(doc["slug"], s.base())
        return s.json(paging.list_versions(versions, query), modified=doc["last_modified"])

    def get_version(self, dataset: str, version: str) -> Response[str]:
        """One published version."""
        s = self.site
        versions = s.reader().versions(s.slug(dataset), s.base())
        found = index.get_version(versions, version)
        return s.json(found, cache=IMMUTABLE_CACHE, modified=found["published_at"])

    def get_changes(self, dataset: str, version: str) -> Response[str]:
        """What a version changed against the one before (summary; link to the changed cells)."""
        s = self.site
        slug, reader = s.slug(dataset), s.reader()
        m = reader.manifest(slug)
        entry, before = reader.version_entry(m, version)
        stored = reader.version_json(m, entry.changes.path) if entry.changes else None
        doc = index.changes_document(slug, entry, before, stored, s.links())
        return s.json(doc, cache=IMMUTABLE_CACHE, modified=entry.published_at)

    def get_schema(self, dataset: str, query: LevelQuery) -> Response[str]:
        """Table Schema of the current version."""
        s = self.site
        doc = index.get_dataset(s.catalog(), dataset)
        manifest = s.reader().manifest(doc["slug"]).manifest
        levels = index.schema_levels(doc, manifest)
        found = index.schema_document(manifest, levels, paging.parse_level(query, levels, LEVELS))
        return s.json(found, modified=doc["last_modified"])

    def get_datapackage(self, dataset: str) -> Response[str]:
        """Data Package of the current version (paths are absolute URLs)."""
        s = self.site
        package, manifest = s.reader().datapackage(s.slug(dataset))
        doc = index.datapackage_document(package, manifest, s.links())
        return s.json(doc, modified=manifest.published_at)

    def datasets_csv(self) -> Response[str]:
        """Every dataset, one `;`-separated row each."""
        s = self.site
        catalog = s.catalog()
        body = paging.datasets_csv(catalog, s.now())
        return s.send(body, "text/csv; charset=utf-8", catalog.generated_at)

    def catalog_jsonld(self) -> Response[str]:
        """DCAT-AP 3.0 catalog (JSON-LD)."""
        s = self.site
        base = s.base() or "http://localhost"
        catalog = s.reader().catalog(base)
        doc = dcat.catalog_jsonld(catalog, dcat.CatalogInfo(base_url=base))
        return s.send(index.render(doc), "application/ld+json; charset=utf-8", catalog.generated_at)

    def openapi_json(self) -> Response[str]:
        """This document (OpenAPI 3.1)."""
        return self.site.json(openapi.openapi_document(self.site.app, self.site.base()))
