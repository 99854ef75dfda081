"""The OpenAPI 3.1 document of the HTTP index (served at ``/api/1/openapi.json``).

Written by hand, from the shapes ``opendepot.index`` builds; ``tests/test_index_api_contract.py``
checks that its paths are exactly the resolver's routes and that answers match its schemas.
OpenAPI 3.1 schemas are JSON Schema 2020-12, so any JSON Schema validator can check an answer.
"""

from __future__ import annotations

from typing import Any

from opendepot.index import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, SORT_KEYS

Schema = dict[str, Any]

OPENAPI_PATH = "/api/1/openapi.json"
CATALOG_JSONLD_PATH = "/catalog.jsonld"
DATASETS_CSV_PATH = "/api/1/site/datasets.csv"


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str, **extra: Any) -> Schema:
    return {"type": [kind, "null"], **extra}


def _object(properties: dict[str, Schema], *, closed: bool = True) -> Schema:
    schema: Schema = {"type": "object", "required": list(properties), "properties": properties}
    if closed:
        schema["additionalProperties"] = False
    return schema


STRING: Schema = {"type": "string"}
COUNT: Schema = {"type": "integer", "minimum": 0}
URL: Schema = {"type": "string", "minLength": 1}
TIME: Schema = _nullable("string")
ROWS: Schema = {"type": "object", "additionalProperties": COUNT}

SCHEMAS: dict[str, Schema] = {
    "Error": _object(
        {"status": {"type": "integer", "minimum": 400, "maximum": 599}, "message": STRING}
    ),
    "Organization": _object({"id": STRING, "name": STRING, "slug": STRING}),
    "Checksum": _object({"type": {"const": "sha256"}, "value": _nullable("string")}),
    "SchemaRef": _object({"name": STRING, "version": _nullable("string"), "url": URL}),
    "Resource": _object(
        {
            "id": {"type": "string", "format": "uuid"},
            "title": STRING,
            "description": STRING,
            "type": {"const": "main"},
            "filetype": {"const": "file"},
            "format": STRING,
            "url": URL,
            "latest": URL,
            "checksum": _ref("Checksum"),
            "filesize": _nullable("integer", minimum=0),
            "mime": _nullable("string"),
            "created_at": TIME,
            "last_modified": TIME,
            "schema": _ref("SchemaRef"),
            "extras": _object(
                {
                    "rows": _nullable("integer", minimum=0),
                    "level": STRING,
                    "version": _nullable("string"),
                }
            ),
        }
    ),
    "Quality": _object(
        {
            "license": {"type": "boolean"},
            "temporal_coverage": {"type": "boolean"},
            "spatial": {"type": "boolean"},
            "update_frequency": {"type": "boolean"},
            "update_fulfilled_in_time": _nullable("boolean"),
            "dataset_description_quality": {"type": "boolean"},
            "has_resources": {"type": "boolean"},
            "has_open_format": {"type": "boolean"},
            "all_resources_available": {"type": "boolean"},
            "resources_documentation": {"type": "boolean"},
            "score": {"type": "number", "minimum": 0, "maximum": 1},
        }
    ),
    "Dataset": _object(
        {
            "id": {"type": "string", "format": "uuid"},
            "slug": STRING,
            "title": STRING,
            "acronym": _nullable("string"),
            "description": STRING,
            "created_at": TIME,
            "last_modified": TIME,
            "last_update": TIME,
            "tags": {"type": "array", "items": STRING},
            "frequency": STRING,
            "frequency_date": TIME,
            "organization": {"oneOf": [_ref("Organization"), {"type": "null"}]},
            "license": STRING,
            "temporal_coverage": {
                "oneOf": [
                    _object({"start": _nullable("string"), "end": _nullable("string")}),
                    {"type": "null"},
                ]
            },
            "spatial": {
                "oneOf": [
                    _object(
                        {
                            "granularity": STRING,
                            "zones": {"type": "array", "items": STRING},
                            "geom": {"type": "null"},
                        }
                    ),
                    {"type": "null"},
                ]
            },
            "schema": _ref("SchemaRef"),
            "extras": _object(
                {
                    "version": _nullable("string"),
                    "rows": ROWS,
                    "rows_left_out": COUNT,
                    "levels": {"type": "array", "items": STRING},
                    "versions": URL,
                    "datapackage": URL,
                }
            ),
            "resources": {"type": "array", "items": _ref("Resource")},
            "uri": URL,
            "page": URL,
            "quality": _ref("Quality"),
        }
    ),
    "VersionResource": _object(
        {
            "id": {"type": "string", "format": "uuid"},
            "name": _nullable("string"),
            "level": STRING,
            "format": STRING,
            "mime": _nullable("string"),
            "url": URL,
            "checksum": _ref("Checksum"),
            "filesize": _nullable("integer", minimum=0),
            "rows": _nullable("integer", minimum=0),
        }
    ),
    "Version": _object(
        {
            "version": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}-\d{2}h\d{2}m\d{2}s$"},
            "published_at": TIME,
            "uploads": {
                "type": "array",
                "items": _object({"upload_id": STRING, "producer": _nullable("string")}),
            },
            "producers": {"type": "array", "items": STRING},
            "rows": ROWS,
            "resources": {"type": "array", "items": _ref("VersionResource")},
            "datapackage": URL,
            "uri": URL,
        }
    ),
    "TableSchema": {
        "type": "object",
        "required": ["fields", "version"],
        "properties": {
            "fields": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "type"],
                    "properties": {"name": STRING, "type": STRING},
                },
            },
            "missingValues": {"type": "array", "items": STRING},
            "primaryKey": {"type": "array", "items": STRING},
            "version": STRING,
        },
    },
    "DataPackage": {
        "type": "object",
        "required": ["name", "resources"],
        "properties": {
            "name": STRING,
            "version": STRING,
            "resources": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "path", "bytes", "hash", "schema"],
                    "properties": {
                        "name": STRING,
                        "path": URL,
                        "bytes": COUNT,
                        "hash": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
                        "schema": {"type": "object"},
                    },
                },
            },
        },
    },
}


def _pager(item: str) -> Schema:
    return _object(
        {
            "data": {"type": "array", "items": _ref(item), "maxItems": MAX_PAGE_SIZE},
            "page": {"type": "integer", "minimum": 1},
            "page_size": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
            "total": COUNT,
            "next_page": _nullable("string"),
            "previous_page": _nullable("string"),
        }
    )


SCHEMAS["DatasetPage"] = _pager("Dataset")
SCHEMAS["VersionPage"] = _pager("Version")


def _param(
    name: str, where: str, description: str, schema: Schema | None = None, **kw: Any
) -> Schema:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "description": description,
        "schema": schema or STRING,
        **kw,
    }


PAGE = _param("page", "query", "Page number (from 1).", {"type": "integer", "minimum": 1})
PAGE_SIZE = _param(
    "page_size",
    "query",
    f"Items per page (default {DEFAULT_PAGE_SIZE}, at most {MAX_PAGE_SIZE}: above is a 400).",
    {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
)
DATASET = _param("dataset", "path", "Dataset slug or id.")
RID = _param(
    "rid", "path", "Resource id (stable across versions).", {"type": "string", "format": "uuid"}
)
VERSION = _param("version", "path", "Version id, `YYYY-MM-DD-HHhMMmSSs` (UTC).")
IF_NONE_MATCH = _param("If-None-Match", "header", "ETag of a copy held: 304 when still current.")

_ERROR_JSON = {"application/json": {"schema": _ref("Error")}}
_CACHE_HEADERS = {
    "ETag": {"description": "Entity tag of the body.", "schema": STRING},
    "Cache-Control": {"schema": STRING},
    "Access-Control-Allow-Origin": {"schema": {"const": "*"}},
}


def _errors(*statuses: int) -> dict[str, Schema]:
    text = {400: "Bad query parameter.", 404: "Not found.", 500: "Internal error."}
    return {str(s): {"description": text[s], "content": _ERROR_JSON} for s in statuses}


def _ok(description: str, media: str, schema: Schema) -> dict[str, Schema]:
    return {
        "200": {
            "description": description,
            "headers": _CACHE_HEADERS,
            "content": {media: {"schema": schema}},
        },
        "304": {"description": "Not modified (If-None-Match holds).", "headers": _CACHE_HEADERS},
    }


def _operations(
    op_id: str,
    summary: str,
    parameters: list[Schema],
    responses: dict[str, Schema],
    tag: str,
) -> dict[str, Schema]:
    """The GET operation and its HEAD twin (same answer without a body)."""
    get = {
        "operationId": op_id,
        "summary": summary,
        "tags": [tag],
        "parameters": [*parameters, IF_NONE_MATCH],
        "responses": responses,
    }
    head_responses = {
        status: {k: v for k, v in r.items() if k != "content"} for status, r in responses.items()
    }
    head = {
        **get,
        "operationId": f"{op_id}_head",
        "summary": f"{summary} (headers only)",
        "responses": head_responses,
    }
    return {"get": get, "head": head}


def openapi_document(server_url: str = "") -> dict[str, Any]:
    """The OpenAPI 3.1 document; ``server_url`` is the API's base URL ("" = same origin)."""
    list_params = [
        PAGE,
        PAGE_SIZE,
        _param(
            "q",
            "query",
            "Words that must all appear in title, description or tags (accents and case ignored).",
        ),
        _param(
            "tag",
            "query",
            "A tag the dataset carries (repeat: all must match).",
            {"type": "array", "items": STRING},
            explode=True,
        ),
        _param("organization", "query", "Organization slug or id."),
        _param("format", "query", "A resource format (`csv`, `parquet`)."),
        _param(
            "sort",
            "query",
            "Sort key, `-` prefix for descending.",
            {"enum": [*SORT_KEYS, *(f"-{k}" for k in SORT_KEYS)]},
        ),
    ]
    paths: dict[str, Any] = {
        "/api/1/datasets/": _operations(
            "list_datasets",
            "Datasets (udata pager)",
            list_params,
            {
                **_ok("A page of datasets.", "application/json", _ref("DatasetPage")),
                **_errors(400, 404, 500),
            },
            "datasets",
        ),
        "/api/1/datasets/{dataset}/": _operations(
            "get_dataset",
            "One dataset with its resources",
            [DATASET],
            {**_ok("The dataset.", "application/json", _ref("Dataset")), **_errors(404, 500)},
            "datasets",
        ),
        "/api/1/datasets/{dataset}/resources/{rid}/": _operations(
            "get_resource",
            "One resource of a dataset",
            [DATASET, RID],
            {**_ok("The resource.", "application/json", _ref("Resource")), **_errors(404, 500)},
            "datasets",
        ),
        "/api/1/datasets/r/{rid}": _operations(
            "latest_file",
            "Permanent link: redirect to the current version's file",
            [RID],
            {
                "302": {
                    "description": "Redirect to the current immutable file.",
                    "headers": {"Location": {"schema": URL}},
                },
                **_errors(404, 500),
            },
            "datasets",
        ),
        "/api/1/datasets/{dataset}/versions/": _operations(
            "list_versions",
            "Every published version, newest first",
            [DATASET, PAGE, PAGE_SIZE],
            {
                **_ok("A page of versions.", "application/json", _ref("VersionPage")),
                **_errors(400, 404, 500),
            },
            "versions",
        ),
        "/api/1/datasets/{dataset}/versions/{version}/": _operations(
            "get_version",
            "One published version",
            [DATASET, VERSION],
            {**_ok("The version.", "application/json", _ref("Version")), **_errors(404, 500)},
            "versions",
        ),
        "/api/1/datasets/{dataset}/schema/": _operations(
            "get_schema",
            "Table Schema of the current version",
            [
                DATASET,
                _param("level", "query", "Geographic level (default: the dataset's own)."),
            ],
            {
                **_ok(
                    "The Table Schema, with its version.", "application/json", _ref("TableSchema")
                ),
                **_errors(400, 404, 500),
            },
            "schemas",
        ),
        "/api/1/datasets/{dataset}/datapackage.json": _operations(
            "get_datapackage",
            "Data Package of the current version",
            [DATASET],
            {
                **_ok(
                    "The Data Package (paths are absolute URLs).",
                    "application/json",
                    _ref("DataPackage"),
                ),
                **_errors(404, 500),
            },
            "schemas",
        ),
        DATASETS_CSV_PATH: _operations(
            "datasets_csv",
            "Every dataset, one `;`-separated row each",
            [],
            {**_ok("CSV export.", "text/csv", STRING), **_errors(500)},
            "exports",
        ),
        CATALOG_JSONLD_PATH: _operations(
            "catalog_jsonld",
            "DCAT-AP 3.0 catalog (JSON-LD)",
            [],
            {**_ok("DCAT-AP JSON-LD.", "application/ld+json", {"type": "object"}), **_errors(500)},
            "exports",
        ),
        OPENAPI_PATH: _operations(
            "openapi",
            "This document",
            [],
            {**_ok("OpenAPI 3.1.", "application/json", {"type": "object"}), **_errors(500)},
            "exports",
        ),
    }
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "opendepot index",
            "version": "1",
            "description": (
                "Published datasets in data.gouv.fr API v1 (udata) shapes, with every version, "
                "Table Schemas, Data Packages and a DCAT-AP catalog. Read-only: GET and HEAD "
                "(other methods get 405); every JSON answer has an ETag (If-None-Match gives "
                "304), CORS for any origin, gzip when asked, and errors are "
                '`{"status", "message"}`.'
            ),
        },
        "paths": paths,
        "components": {"schemas": SCHEMAS},
    }
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc
