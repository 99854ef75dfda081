"""The OpenAPI 3.1 document of the HTTP index (served at ``/api/1/openapi.json``), generated.

Powertools' event handler writes it from the resolver's routes: paths and methods from the
route declarations (``index_http.Site.read``), path parameters from the handlers' signatures,
query parameters from the query dependencies' signatures (``index_http.list_query``...), bodies
from the pydantic models (``opendepot.api_models``). So a route, a parameter, an allowed value or
a document shape cannot change without the document changing with it.

This module only adds what every route shares, implemented once in ``index_http.send`` and
``error_response``: the ``If-None-Match`` and ``If-Modified-Since`` request headers, the
``ETag``/``Last-Modified``/``Cache-Control``/CORS headers of a 200, the 304, the 500 envelope;
it takes the bodies off HEAD operations, 302s and 304s, and drops the components nothing refers
to (Powertools always adds its 422 models; the index answers 400). The generated document is
kept per resolver (generation takes ~0.3 s, and imports Powertools' OpenAPI models only then).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver

OPENAPI_PATH = "/api/1/openapi.json"
CATALOG_JSONLD_PATH = "/catalog.jsonld"
DATASETS_CSV_PATH = "/api/1/site/datasets.csv"

TITLE = "opendepot index"
DESCRIPTION = (
    "Published datasets in data.gouv.fr API v1 (udata) shapes, with every version, Table "
    "Schemas, Data Packages and a DCAT-AP catalog. Read-only: GET and HEAD (other methods get "
    "405); every JSON answer has an ETag (If-None-Match gives 304) and, when built from "
    "published state, a Last-Modified (If-Modified-Since gives 304), CORS for any origin, gzip "
    'when asked, and errors are `{"status", "message"}`. Every JSON answer honours udata\'s '
    "`X-Fields` mask header (flask-restx syntax: `id,title,resources{id,url}`, `*` for the "
    "other keys; a malformed mask is a 400): it is not listed per operation, because a masked "
    "answer is a subset of the documented schema, which lists every key as required."
)
_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
_CACHE_HEADERS = {
    "ETag": {"description": "Entity tag of the body.", "schema": {"type": "string"}},
    "Last-Modified": {
        "description": "When the published state the answer is built from last changed "
        "(absent when the answer is not built from it).",
        "schema": {"type": "string"},
    },
    "Cache-Control": {"schema": {"type": "string"}},
    "Access-Control-Allow-Origin": {"schema": {"const": "*"}},
}
IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "ETag of a copy held: 304 when still current.",
    "schema": {"type": "string"},
}

IF_MODIFIED_SINCE = {
    "name": "If-Modified-Since",
    "in": "header",
    "required": False,
    "description": "An HTTP date: 304 when the answer's Last-Modified is not after it (ignored "
    "with If-None-Match, or when not an HTTP date).",
    "schema": {"type": "string"},
}

_generated: dict[int, dict[str, Any]] = {}


def openapi_document(app: ApiGatewayResolver, server_url: str = "") -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``app``'s routes; ``server_url`` is the API's base URL
    ("" = same origin: no ``servers``). Generated once per resolver; a fresh copy each call."""
    base = _generated.get(id(app))
    if base is None:
        base = _generated[id(app)] = _generate(app)
    doc = copy.deepcopy(base)
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc


def _generate(app: ApiGatewayResolver) -> dict[str, Any]:
    text = app.get_openapi_json_schema(
        title=TITLE, version="1", openapi_version="3.1.0", description=DESCRIPTION
    )
    doc: dict[str, Any] = json.loads(text)
    doc.pop("servers", None)
    for ops in doc["paths"].values():
        for method, op in ops.items():
            _shared(op, head=method == "head")
    schemas = doc.get("components", {}).get("schemas", {})
    used = _referenced(doc["paths"], schemas)
    doc["components"] = {"schemas": {k: v for k, v in schemas.items() if k in used}}
    return doc


def _shared(op: dict[str, Any], head: bool) -> None:
    """Add what every operation shares; take bodies off HEAD, 302 and 304."""
    op["parameters"] = [*map(_not_null, op.get("parameters", [])), IF_NONE_MATCH,
                        IF_MODIFIED_SINCE]
    responses = op["responses"]
    if "200" in responses:
        responses["200"]["headers"] = _CACHE_HEADERS
        responses["304"] = {
            "description": "Not modified (If-None-Match, or If-Modified-Since, holds).",
            "headers": _CACHE_HEADERS,
        }
    if "302" in responses:
        responses["302"]["headers"] = {"Location": {"schema": {"type": "string", "minLength": 1}}}
    responses["500"] = {"description": "Internal error.", "content": _ERROR}
    for status, response in responses.items():
        if head or status in ("302", "304") or not response.get("content"):
            response.pop("content", None)
    op["responses"] = dict(sorted(responses.items()))


def _not_null(param: dict[str, Any]) -> dict[str, Any]:
    """An optional query parameter is absent, never null: ``anyOf [X, null]`` becomes X."""
    kinds = param["schema"].get("anyOf", [])
    if len(kinds) == 2 and {"type": "null"} in kinds:
        kept = next(k for k in kinds if k != {"type": "null"})
        title = param["schema"].get("title")
        param["schema"] = {**kept, **({"title": title} if title else {})}
    return param


def _referenced(paths: dict[str, Any], schemas: dict[str, Any]) -> set[str]:
    """Names of the component schemas ``paths`` refer to, directly or through other schemas."""
    prefix = "#/components/schemas/"
    seen: set[str] = set()
    todo = [paths]
    while todo:
        text = json.dumps(todo.pop())
        for name in schemas:
            if name not in seen and f'"{prefix}{name}"' in text:
                seen.add(name)
                todo.append(schemas[name])
    return seen
