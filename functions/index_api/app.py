"""HTTP index of published datasets, in data.gouv.fr (udata API v1) shapes.

Routes (GET and HEAD; OPTIONS answers CORS pre-flights; other methods get 405), listed in
``ROUTES`` and described by ``opendepot.openapi`` (served at ``/api/1/openapi.json``):
- ``/api/1/datasets/``: pager of datasets (``page``, ``page_size``, ``q``, ``tag``,
  ``organization``, ``format``, ``sort``);
- ``/api/1/datasets/{slug or id}/``: one dataset with its resources;
- ``/api/1/datasets/{slug or id}/resources/{rid}/``: one resource;
- ``/api/1/datasets/r/{rid}``: 302 to the current version's immutable file;
- ``/api/1/datasets/{slug or id}/versions/`` and ``.../versions/{version}/``: every version;
- ``/api/1/datasets/{slug or id}/schema/`` (``level``) and ``.../datapackage.json``;
- ``/api/1/site/datasets.csv``, ``/catalog.jsonld`` (DCAT-AP), ``/api/1/openapi.json``.

Every answer with a body carries an ``ETag`` and honours ``If-None-Match`` (304); bodies of
1 KiB or more are gzipped when the client accepts it (the ETag is then weak, as nginx does).
Errors are one envelope, ``{"status", "message"}``, built in ``_error``. Documents are shaped by
``opendepot.index`` and ``opendepot.dcat``; this module only routes and caches.
``catalog.json`` and each manifest are read through the storage port and kept between
invocations, revalidated with one ``head`` each per request that needs them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError, ServiceError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from opendepot import dcat, index, openapi
from opendepot.config import Settings
from opendepot.storage import NotFound as ObjectNotFound
from opendepot.storage import S3Store, Store

logger = Logger(service="opendepot-index-api")
app = APIGatewayHttpResolver(
    cors=CORSConfig(
        allow_origin="*",
        allow_headers=["If-None-Match"],
        expose_headers=["ETag", "Location", "Content-Encoding"],
        max_age=3600,
    )
)

JSON = "application/json; charset=utf-8"
JSON_CACHE = "public, max-age=60"
IMMUTABLE_CACHE = "public, max-age=86400"
GZIP_MIN_BYTES = 1024
BASES_KEPT = 4
"""Catalogs shaped for at most this many API base URLs are kept (one in production)."""

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Manifest:
    etag: str
    manifest: dict[str, Any]
    packages: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Parsed ``datapackage.json`` by key (immutable files: never revalidated)."""
    versions: dict[str, index.Versions] = field(default_factory=dict)
    """The versions shaped per API base URL."""


class Index:
    """What the function reads from: settings, the store, the clock, and what it keeps."""

    def __init__(
        self, settings: Settings, store: Store | None = None, clock: Clock = _utcnow
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._store = store
        self._etag: str | None = None
        self._raw: dict[str, Any] | None = None
        self._shaped: dict[str, index.Catalog] = {}
        self._manifests: dict[str, _Manifest] = {}

    @property
    def store(self) -> Store:
        """The store, made on first use (boto3 reads ``AWS_ENDPOINT_URL`` for moto)."""
        if self._store is None:
            self._store = S3Store(boto3.client("s3"))
        return self._store

    def links(self, base: str) -> index.Links:
        return index.Links(self.settings.published_url, base)

    def catalog(self, base: str) -> index.Catalog:
        """The current catalog shaped for ``base``: one ``head``; a ``get`` only when its ETag
        changed; shaped once per catalog version and base URL."""
        bucket = self.settings.published_bucket
        info = self.store.head(bucket, index.CATALOG_KEY)
        if info is None:
            self._etag, self._raw, self._shaped = None, None, {}
        elif info.etag != self._etag:
            try:
                raw = json.loads(self.store.get(bucket, index.CATALOG_KEY))
            except ObjectNotFound:
                raw = None
            self._etag, self._raw, self._shaped = (info.etag if raw else None), raw, {}
            logger.info(
                "catalog loaded",
                extra={"etag": info.etag, "datasets": len((raw or {}).get("datasets") or [])},
            )
        shaped = self._shaped.get(base)
        if shaped is None:
            if len(self._shaped) >= BASES_KEPT:
                self._shaped.pop(next(iter(self._shaped)))
            shaped = self._shaped[base] = index.build_catalog(self._raw, self.links(base))
        return shaped

    def manifest(self, slug: str) -> _Manifest:
        """A dataset's manifest: one ``head``; a ``get`` only when its ETag changed."""
        bucket = self.settings.published_bucket
        key = f"{slug}/{index.MANIFEST_NAME}"
        info = self.store.head(bucket, key)
        if info is None:
            self._manifests.pop(slug, None)
            raise index.NotFound(f"dataset {slug!r} has no published version")
        cached = self._manifests.get(slug)
        if cached is None or cached.etag != info.etag:
            cached = _Manifest(info.etag, json.loads(self.store.get(bucket, key)))
            self._manifests[slug] = cached
            logger.info("manifest loaded", extra={"dataset": slug, "etag": info.etag})
        return cached

    def versions(self, slug: str, base: str) -> index.Versions:
        """A dataset's versions shaped for ``base`` (once per manifest version)."""
        m = self.manifest(slug)
        shaped = m.versions.get(base)
        if shaped is None:
            if len(m.versions) >= BASES_KEPT:
                m.versions.pop(next(iter(m.versions)))
            shaped = m.versions[base] = index.build_versions(slug, m.manifest, self.links(base))
        return shaped

    def datapackage(self, slug: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The current version's ``datapackage.json`` (parsed) and the manifest."""
        m = self.manifest(slug)
        key = m.manifest.get("datapackage_path")
        if not key:
            raise index.NotFound(f"dataset {slug!r} has no datapackage.json")
        if key not in m.packages:
            try:
                m.packages[key] = json.loads(self.store.get(self.settings.published_bucket, key))
            except ObjectNotFound:
                raise index.NotFound(f"dataset {slug!r} has no datapackage.json") from None
        return m.packages[key], m.manifest


_index: Index | None = None
_settings = Settings.from_env()  # cold start: a bad setting fails here, not per request


def configure(
    store: Store | None = None, settings: Settings | None = None, clock: Clock | None = None
) -> Index:
    """Replace the store, settings and clock (tests, the local stack); forgets what was kept."""
    global _index
    _index = Index(settings or _settings, store, clock or _utcnow)
    return _index


def current() -> Index:
    """The process-wide ``Index`` (made from the cold-start settings on first use)."""
    return _index or configure()


# --- requests -----------------------------------------------------------------------------------


def _head() -> bool:
    return bool(app.current_event.http_method.upper() == "HEAD")


def _query() -> list[tuple[str, str]]:
    raw = app.current_event.get("rawQueryString")
    if raw is None:
        raw = urlencode(app.current_event.get("queryStringParameters") or {})
    return parse_qsl(raw, keep_blank_values=True)


def _base() -> str:
    """Base URL of this API: the setting, else the URL the request came to (API Gateway's
    domain, ``X-Forwarded-Proto``, and the stage when it is not ``$default``)."""
    configured = current().settings.api_base_url
    if configured:
        return configured.rstrip("/")
    event = app.current_event
    ctx = event.get("requestContext") or {}
    host = ctx.get("domainName") or event.headers.get("host")
    if not host:
        return ""
    proto = (event.headers.get("x-forwarded-proto") or "https").split(",")[0].strip()
    stage = ctx.get("stage")
    prefix = f"/{stage}" if stage and stage != "$default" else ""
    return f"{proto}://{host}{prefix}"


def _links() -> index.Links:
    return current().links(_base())


def _catalog() -> index.Catalog:
    return current().catalog(_base())


# --- responses ----------------------------------------------------------------------------------


def _send(
    body: str,
    content_type: str,
    status: int = 200,
    headers: dict[str, str] | None = None,
    cache: str = JSON_CACHE,
) -> Response[str]:
    """An answer with ETag, Cache-Control and Vary; 304 when ``If-None-Match`` holds; gzip
    when asked and worth it (the ETag is then weak)."""
    event_headers = app.current_event.headers
    tag = index.etag(body)
    gzip = (
        status == 200
        and not _head()
        and len(body) >= GZIP_MIN_BYTES
        and "gzip" in (event_headers.get("accept-encoding") or "")
    )
    out = {"ETag": f"W/{tag}" if gzip else tag, "Vary": "Accept-Encoding", **(headers or {})}
    out.setdefault("Cache-Control", cache if status == 200 else "no-cache")
    if status == 200 and index.etag_matches(event_headers.get("if-none-match"), tag):
        return Response(status_code=304, headers=out, body="", compress=False)
    return Response(
        status_code=status,
        content_type=content_type,
        headers=out,
        body="" if _head() else body,
        compress=gzip,
    )


def _json(
    doc: Any, status: int = 200, headers: dict[str, str] | None = None, cache: str = JSON_CACHE
) -> Response[str]:
    """A JSON answer (see ``_send``)."""
    return _send(index.render(doc), JSON, status, headers, cache)


@app.not_found
def _no_route(_: NotFoundError) -> Response[str]:
    path = app.current_event.path
    method = app.current_event.http_method.upper()
    if method not in ("GET", "HEAD") and any(p.match(path) for p in _PATTERNS):
        raise index.MethodNotAllowed(f"{app.current_event.http_method} is not allowed on {path}")
    raise index.NotFound(f"no route for {path}")


@app.exception_handler(Exception)  # type: ignore[untyped-decorator]  # Powertools leaves it untyped
def _error(exc: Exception) -> Response[str]:
    """The one place where an exception becomes the JSON error envelope."""
    if not isinstance(exc, index.ApiError):
        if isinstance(exc, ServiceError):
            api = index.ApiError(str(exc.msg))
            api.status = int(exc.status_code)
        else:
            logger.exception("unhandled error")
            api = index.ApiError("internal error")
        exc = api
    return _json(index.error_document(exc), exc.status, dict(exc.headers))


# --- routes ---------------------------------------------------------------------------------------

ROUTES: list[str] = []
"""Every path the index answers (Powertools rules, ``<name>`` for a parameter)."""
_PATTERNS: list[re.Pattern[str]] = []


def read(rule: str) -> Callable[[Callable[..., Response[str]]], Callable[..., Response[str]]]:
    """Register a GET and HEAD route, and its twin with or without the trailing slash (except
    for file names, which have none)."""

    def register(func: Callable[..., Response[str]]) -> Callable[..., Response[str]]:
        app.route(rule, method=["GET", "HEAD"])(func)
        last = rule.rsplit("/", 1)[-1]
        twin = "." not in last or last.startswith("<")
        if twin:
            app.route(rule[:-1] if rule.endswith("/") else rule + "/", method=["GET", "HEAD"])(func)
        ROUTES.append(rule)
        pattern = re.sub(r"<\w+>", "[^/]+", rule.rstrip("/") if twin else rule)
        _PATTERNS.append(re.compile(f"^{pattern}{'/?' if twin else ''}$"))
        return func

    return register


LIST = index.DATASETS_PATH
DATASET = LIST + "<dataset>/"


@read(LIST)
def list_datasets() -> Response[str]:
    query = index.parse_list_query(_query())
    return _json(index.list_datasets(_catalog(), query, _links(), current().clock()))


@read(DATASET)
def get_dataset(dataset: str) -> Response[str]:
    doc = index.get_dataset(_catalog(), dataset)
    return _json(index.with_quality(doc, current().clock()))


@read(DATASET + "resources/<rid>/")
def get_resource(dataset: str, rid: str) -> Response[str]:
    return _json(index.get_resource(_catalog(), dataset, rid))


@read(DATASET + "versions/")
def list_versions(dataset: str) -> Response[str]:
    slug = index.get_dataset(_catalog(), dataset)["slug"]
    query = index.parse_page_query(_query())
    return _json(index.list_versions(current().versions(slug, _base()), query))


@read(DATASET + "versions/<version>/")
def get_version(dataset: str, version: str) -> Response[str]:
    slug = index.get_dataset(_catalog(), dataset)["slug"]
    doc = index.get_version(current().versions(slug, _base()), version)
    return _json(doc, cache=IMMUTABLE_CACHE)


@read(DATASET + "schema/")
def get_schema(dataset: str) -> Response[str]:
    doc = index.get_dataset(_catalog(), dataset)
    manifest = current().manifest(doc["slug"]).manifest
    levels = [*doc["extras"]["levels"]]
    levels += [k for k in manifest.get("schemas") or {} if k not in levels]
    level = index.parse_level(_query(), levels)
    return _json(index.schema_document(manifest, levels, level))


@read(DATASET + "datapackage.json")
def get_datapackage(dataset: str) -> Response[str]:
    slug = index.get_dataset(_catalog(), dataset)["slug"]
    package, manifest = current().datapackage(slug)
    return _json(index.datapackage_document(package, manifest, _links()))


@read(LIST + "r/<rid>")
def latest_file(rid: str) -> Response[str]:
    resource = index.find_resource(_catalog(), rid)
    return Response(
        status_code=302, headers={"Location": resource["url"], "Cache-Control": "no-cache"}, body=""
    )


@read(openapi.DATASETS_CSV_PATH)
def datasets_csv() -> Response[str]:
    body = index.datasets_csv(_catalog(), current().clock())
    return _send(body, "text/csv; charset=utf-8")


@read(openapi.CATALOG_JSONLD_PATH)
def catalog_jsonld() -> Response[str]:
    base = _base() or "http://localhost"
    doc = dcat.catalog_jsonld(current().catalog(base), dcat.CatalogInfo(base_url=base))
    return _send(index.render(doc), "application/ld+json; charset=utf-8")


@read(openapi.OPENAPI_PATH)
def openapi_json() -> Response[str]:
    return _json(openapi.openapi_document(_base()))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
