"""HTTP index of published datasets, in data.gouv.fr (udata API v1) shapes.

Routes (GET and HEAD; OPTIONS answers CORS pre-flights; other methods get 405):
- ``/api/1/datasets/``: pager of datasets (``page``, ``page_size``, ``q``, ``tag``,
  ``organization``, ``sort``);
- ``/api/1/datasets/{slug or id}/``: one dataset with its resources;
- ``/api/1/datasets/{slug or id}/resources/{rid}/``: one resource;
- ``/api/1/datasets/r/{rid}``: 302 to the current version's immutable file.

JSON answers carry an ``ETag`` and honour ``If-None-Match`` (304). Errors are one envelope,
``{"status", "message"}``, built in ``_error``. Documents are shaped by ``opendepot.index``;
this module only routes. ``catalog.json`` is read through the storage port and kept between
invocations, revalidated with one ``head`` per request.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError, ServiceError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from opendepot import index
from opendepot.config import Settings
from opendepot.storage import NotFound as ObjectNotFound
from opendepot.storage import S3Store, Store

logger = Logger(service="opendepot-index-api")
app = APIGatewayHttpResolver(cors=CORSConfig(allow_origin="*", expose_headers=["ETag", "Location"]))

JSON_CACHE = "public, max-age=60"
LIST = index.DATASETS_PATH
DATASET = LIST + "<dataset>/"
RESOURCE = LIST + "<dataset>/resources/<rid>/"
REDIRECT = LIST + "r/<rid>"
_READ = ["GET", "HEAD"]
_KNOWN_PATHS = [
    re.compile("^" + re.sub(r"<\w+>", "[^/]+", rule).rstrip("/") + "/?$")
    for rule in (LIST, DATASET, RESOURCE, REDIRECT)
]


class Index:
    """What the function reads from: settings, the store, the last catalog parsed."""

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self.links = index.Links(settings.published_url, settings.api_base_url)
        self._store = store
        self._etag: str | None = None
        self._catalog = index.Catalog()

    @property
    def store(self) -> Store:
        """The store, made on first use (boto3 reads ``AWS_ENDPOINT_URL`` for moto)."""
        if self._store is None:
            self._store = S3Store(boto3.client("s3"))
        return self._store

    def catalog(self) -> index.Catalog:
        """The current catalog: one ``head``; a ``get`` only when its ETag changed."""
        bucket = self.settings.published_bucket
        info = self.store.head(bucket, index.CATALOG_KEY)
        if info is None:
            self._etag, self._catalog = None, index.Catalog()
        elif info.etag != self._etag:
            try:
                raw = json.loads(self.store.get(bucket, index.CATALOG_KEY))
            except ObjectNotFound:
                raw = None
            self._catalog = index.build_catalog(raw, self.links)
            self._etag = info.etag if raw is not None else None
            logger.info(
                "catalog loaded",
                extra={"etag": info.etag, "datasets": len(self._catalog.datasets)},
            )
        return self._catalog


_index: Index | None = None
_settings = Settings.from_env()  # cold start: a bad setting fails here, not per request


def configure(store: Store | None = None, settings: Settings | None = None) -> Index:
    """Replace the store and settings (tests, the local stack); forgets the cached catalog."""
    global _index
    _index = Index(settings or _settings, store)
    return _index


def current() -> Index:
    """The process-wide ``Index`` (made from the cold-start settings on first use)."""
    return _index or configure()


# --- responses ----------------------------------------------------------------------------------


def _head() -> bool:
    return app.current_event.http_method.upper() == "HEAD"


def _json(
    doc: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response[str]:
    """A JSON answer with ETag and Cache-Control; 304 when ``If-None-Match`` holds."""
    body = index.render(doc)
    tag = index.etag(body)
    out = {"ETag": tag, **(headers or {})}
    out.setdefault("Cache-Control", JSON_CACHE if status == 200 else "no-cache")
    if status == 200 and index.etag_matches(app.current_event.headers.get("if-none-match"), tag):
        return Response(status_code=304, headers=out, body="")
    return Response(
        status_code=status,
        content_type="application/json; charset=utf-8",
        headers=out,
        body="" if _head() else body,
    )


def _query() -> list[tuple[str, str]]:
    raw = app.current_event.get("rawQueryString")
    if raw is None:
        raw = urlencode(app.current_event.get("queryStringParameters") or {})
    return parse_qsl(raw, keep_blank_values=True)


@app.not_found
def _no_route(_: NotFoundError) -> Response[str]:
    path = app.current_event.path
    if any(p.match(path) for p in _KNOWN_PATHS):
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


@app.route(LIST, method=_READ)
@app.route(LIST.rstrip("/"), method=_READ)
def list_datasets() -> Response[str]:
    idx = current()
    query = index.parse_list_query(_query())
    return _json(index.list_datasets(idx.catalog(), query, idx.links))


@app.route(DATASET, method=_READ)
@app.route(DATASET.rstrip("/"), method=_READ)
def get_dataset(dataset: str) -> Response[str]:
    return _json(index.get_dataset(current().catalog(), dataset))


@app.route(RESOURCE, method=_READ)
@app.route(RESOURCE.rstrip("/"), method=_READ)
def get_resource(dataset: str, rid: str) -> Response[str]:
    return _json(index.get_resource(current().catalog(), dataset, rid))


@app.route(REDIRECT, method=_READ)
@app.route(REDIRECT + "/", method=_READ)
def latest_file(rid: str) -> Response[str]:
    resource = index.find_resource(current().catalog(), rid)
    return Response(
        status_code=302, headers={"Location": resource["url"], "Cache-Control": "no-cache"}, body=""
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
