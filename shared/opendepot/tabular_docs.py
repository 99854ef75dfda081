"""The documents of the row-level API besides the rows: a resource's profile and its own OpenAPI
document, in api-tabular's shapes.

- ``profile_document``: api-tabular's ``/profile/`` (``{"profile": <csv-detective analysis>,
  "indexes": null, "dataset_id", "deleted_at": null}``) computed from the Parquet file itself,
  row group by row group (one in memory at a time): ``header``, ``total_lines``, ``columns``
  (``python_type`` and ``format`` from the Table Schema type, ``score`` 1.0: declared, not
  guessed) and ``profile`` per column: ``min``, ``max`` (every ordered type), ``nb_distinct``,
  ``nb_missing_values`` (nulls), ``tops`` (the 10 most frequent values with their counts,
  ``[{"value", "count"}]``), and for numbers ``mean`` and ``std`` (sample). Kept per file: a
  version's file never changes.
- ``swagger_document``: api-tabular's ``/swagger/``: an OpenAPI 3.0 document of one resource's
  ``/data/`` route listing, per column, the operators its type allows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from opendepot import tabular
from opendepot.tabular import ParquetSource, type_name

TOPS = 10
"""Most frequent values listed per column (csv-detective's ``tops``)."""
PYTHON_TYPES = {"integer": "int", "number": "float", "boolean": "bool", "date": "date",
                "datetime": "datetime", "string": "string"}
"""csv-detective's ``python_type`` of each Table Schema type."""
OPERATORS_BY_TYPE: Mapping[str, tuple[str, ...]] = {
    "string": ("exact", "differs", "contains", "notcontains", "in", "notin", "isnull",
               "isnotnull", "less", "greater", "strictly_less", "strictly_greater"),
    "date": ("exact", "differs", "contains", "notcontains", "in", "notin", "isnull", "isnotnull",
             "less", "greater", "strictly_less", "strictly_greater"),
    "boolean": ("exact", "differs", "in", "notin", "isnull", "isnotnull"),
}
"""Operators per type (others: every one but ``contains``/``notcontains``)."""

_profiles = tabular.Lru(64)
"""Profiles by ``ParquetSource.identity`` (counted as 1 each: at most 64 kept)."""


@dataclass
class _Column:
    """Running statistics of one column over the row groups."""

    kind: str
    nulls: int = 0
    low: Any = None
    high: Any = None
    uniques: list[pa.Array] = field(default_factory=list)
    counts: list[pa.Table] = field(default_factory=list)
    total: float = 0.0
    squares: float = 0.0
    n: int = 0

    def add(self, col: pa.ChunkedArray) -> None:
        """Add one row group's values."""
        self.nulls += col.null_count
        valid = col.drop_null()
        if len(valid):
            mm = pc.min_max(valid)
            lo, hi = mm["min"].as_py(), mm["max"].as_py()
            self.low = lo if self.low is None else min(self.low, lo)
            self.high = hi if self.high is None else max(self.high, hi)
        self.uniques = [pc.unique(pa.chunked_array([*self.uniques, *valid.chunks], col.type))]
        vc = pc.value_counts(valid)
        found = pa.table({"value": vc.field("values"), "count": vc.field("counts")})
        self.counts = [_merge_counts([*self.counts, found])]
        if self.kind in ("integer", "number"):
            numbers = pc.cast(valid, pa.float64())
            self.total += pc.sum(numbers).as_py() or 0.0
            self.squares += pc.sum(pc.multiply(numbers, numbers)).as_py() or 0.0
            self.n += len(numbers)

    def document(self) -> dict[str, Any]:
        counts = self.counts[0] if self.counts else pa.table({"value": [], "count": []})
        top = counts.sort_by([("count", "descending"), ("value", "ascending")]).slice(0, TOPS)
        doc: dict[str, Any] = {
            "min": _json(self.low), "max": _json(self.high),
            "nb_distinct": len(self.uniques[0]) if self.uniques else 0,
            "nb_missing_values": self.nulls,
            "tops": [{"value": _json(v), "count": c} for v, c in
                     zip(top["value"].to_pylist(), top["count"].to_pylist(), strict=True)],
        }
        if self.kind in ("integer", "number"):
            mean = self.total / self.n if self.n else None
            var = (self.squares - self.n * mean * mean) / (self.n - 1) \
                if mean is not None and self.n > 1 else None
            doc["mean"] = mean
            doc["std"] = math.sqrt(max(var, 0.0)) if var is not None else None
        return doc


def _merge_counts(tables: Sequence[pa.Table]) -> pa.Table:
    """(value, count) tables summed by value."""
    if len(tables) == 1:
        return tables[0]
    out = pa.concat_tables(tables).group_by("value").aggregate([("count", "sum")])
    return pa.table({"value": out["value"], "count": out["count_sum"]})


def _json(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def profile_document(source: ParquetSource, dataset_id: str) -> dict[str, Any]:
    """api-tabular's ``/profile/`` of the file (see module docstring); computed once per file.

    Shape: ``{"profile": {"header": [...], "total_lines": n, "columns": {name: {"python_type",
    "format", "score"}}, "profile": {name: {"min", "max", "nb_distinct", "nb_missing_values",
    "tops": [{"value", "count"}], "mean"?, "std"?}}}, "indexes": null, "dataset_id",
    "deleted_at": null}``."""
    key = source.identity
    analysis = _profiles.get(key)
    if analysis is None:
        analysis = _analyse(source)
        _profiles.put(key, analysis, 1)
    return {"profile": analysis, "indexes": None, "dataset_id": dataset_id, "deleted_at": None}


def _analyse(source: ParquetSource) -> dict[str, Any]:
    frag = source.fragment()
    schema = frag.physical_schema
    stats = {f.name: _Column(type_name(f.type)) for f in schema}
    rows = 0
    for group in frag.split_by_row_group():
        table = group.to_table()
        rows += table.num_rows
        for name, col in zip(table.column_names, table.columns, strict=True):
            stats[name].add(col)
    return {
        "header": schema.names,
        "total_lines": rows,
        "columns": {f.name: {"python_type": PYTHON_TYPES[type_name(f.type)],
                             "format": type_name(f.type), "score": 1.0} for f in schema},
        "profile": {name: s.document() for name, s in stats.items()},
    }


# --- one resource's OpenAPI document (api-tabular's /swagger/) -----------------------------------

_DESCRIPTIONS = {
    "exact": "Exact match", "differs": "Differs from (nulls included)",
    "contains": "Contains (case ignored)", "notcontains": "Does not contain (case ignored)",
    "in": "One of (comma-separated)", "notin": "None of (comma-separated)",
    "isnull": "Is null (no value)", "isnotnull": "Is not null (no value)",
    "less": "Less or equal", "greater": "Greater or equal",
    "strictly_less": "Strictly less", "strictly_greater": "Strictly greater",
}


def _param(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


def swagger_document(rid: str, schema: pa.Schema, data_path: str) -> dict[str, Any]:
    """api-tabular's ``/swagger/`` of one resource: its ``/data/`` route with every parameter
    the file's columns allow (OpenAPI 3.0.3)."""
    params = [
        _param("page", "Page number (from 1)", {"type": "integer", "minimum": 1}),
        _param("page_size", f"Rows per page (at most {tabular.PAGE_SIZE_MAX})",
               {"type": "integer", "minimum": 1, "maximum": tabular.PAGE_SIZE_MAX}),
        _param("columns", "Columns to keep, comma-separated"),
    ]
    properties: dict[str, Any] = {tabular.ROW_ID: {"type": "integer"}}
    for f in schema:
        kind = type_name(f.type)
        allowed = OPERATORS_BY_TYPE.get(kind, tuple(
            op for op in tabular.FILTERS if op not in ("contains", "notcontains")))
        params += [_param(f"{f.name}__{op}", f"{_DESCRIPTIONS[op]} in column {f.name}")
                   for op in allowed]
        params.append(_param(f"{f.name}__sort", f"Sort on column {f.name}",
                             {"type": "string", "enum": ["asc", "desc"]}))
        properties[f.name] = {"type": {"date": "string", "datetime": "string"}.get(kind, kind),
                              **({"format": "date"} if kind == "date" else {}),
                              "nullable": True}
    page = {"type": "object", "properties": {
        "data": {"type": "array", "items": {"$ref": "#/components/schemas/Resource"}},
        "links": {"type": "object"}, "meta": {"type": "object"}}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "Resource data API", "version": "1.0.0",
                 "description": f"Rows of resource {rid}, filtered, sorted and paged."},
        "paths": {data_path: {"get": {
            "summary": "Rows of the resource", "operationId": "getResourceDataFromId",
            "parameters": params,
            "responses": {"200": {"description": "One page of rows", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ResourceData"}}}},
                "400": {"description": "Bad query parameter"}}}}},
        "components": {"schemas": {"ResourceData": page,
                                   "Resource": {"type": "object", "properties": properties}}},
    }
