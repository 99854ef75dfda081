"""Rendering published files: CSV and Parquet bytes, and the version's Data Package.

- CSV in the dialect Santé publique France's reusers already read: ``;`` separator, UTF-8
  without BOM, LF, ISO dates, text quoted, numbers bare, empty cell for missing.
- Parquet: zstd, typed columns (codes are strings, counts int64, dates date32), null for missing.
  The AWS SDK for pandas Lambda layer builds Arrow without zstd; there (only) the codec falls back
  to snappy, which every Parquet reader also reads. ``PARQUET_CODEC`` says which one is in use.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

CSV_MIME = "text/csv"
PARQUET_MIME = "application/vnd.apache.parquet"
FORMATS = {"csv": CSV_MIME, "parquet": PARQUET_MIME}
TABLE_SCHEMA_TYPES = {
    pa.string(): "string",
    pa.int64(): "integer",
    pa.float64(): "number",
    pa.date32(): "date",
    pa.bool_(): "boolean",
}


LICENSES = {
    "lov2": {
        "name": "etalab-2.0",
        "title": "Licence Ouverte / Open Licence version 2.0",
        "path": "https://www.etalab.gouv.fr/licence-ouverte-open-licence",
    },
    "odc-odbl": {
        "name": "ODbL-1.0",
        "title": "Open Data Commons Open Database License 1.0",
        "path": "https://opendatacommons.org/licenses/odbl/1-0/",
    },
}
"""Data Package licence objects for the registry's udata licence ids."""


@dataclass(frozen=True)
class RenderedFile:
    """One published file's bytes and what the manifest says of it."""

    name: str
    """File name without directory, e.g. ``donnees-hospitalieres-covid19-dep.csv``."""
    level: str
    format: str
    """``csv`` or ``parquet``."""
    body: bytes
    rows: int

    @property
    def mime(self) -> str:
        return FORMATS[self.format]

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


def to_csv(table: pa.Table) -> bytes:
    """CSV bytes (see module docstring)."""
    sink = io.BytesIO()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(delimiter=";", quoting_style="needed"))
    return sink.getvalue()


PARQUET_CODEC = "zstd" if pa.Codec.is_available("zstd") else "snappy"
"""Parquet compression: zstd, or snappy where this Arrow build lacks zstd (see module docstring)."""


def to_parquet(table: pa.Table) -> bytes:
    """Parquet bytes, compressed with ``PARQUET_CODEC``."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression=PARQUET_CODEC)
    return sink.getvalue()


def render_level(dataset_name: str, level: str, table: pa.Table) -> list[RenderedFile]:
    """The CSV and Parquet files of one level."""
    base = f"{dataset_name}-{level}"
    return [
        RenderedFile(f"{base}.csv", level, "csv", to_csv(table), table.num_rows),
        RenderedFile(f"{base}.parquet", level, "parquet", to_parquet(table), table.num_rows),
    ]


def level_schema(table: pa.Table, declared: dict[str, Any], primary_key: list[str]) -> dict[str, Any]:
    """Table Schema of one published level: declared fields where they exist (title,
    description), the type from the Arrow column, and the level's own key columns."""
    by_name = {f["name"]: f for f in declared.get("fields", [])}
    fields = []
    for col in table.schema:
        f = dict(by_name.get(col.name, {"name": col.name}))
        f["type"] = TABLE_SCHEMA_TYPES.get(col.type, "any")
        if col.name in ("reg", "fra") and col.name not in by_name:
            f["title"] = {"reg": "Région (code INSEE)", "fra": "France"}[col.name]
        fields.append(f)
    return {"fields": fields, "missingValues": [""], "primaryKey": primary_key}


def datapackage(
    dataset: Any, version: str, files: list[RenderedFile], schemas: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """A Frictionless Data Package describing one published version.

    ``dataset`` is a registry ``Dataset``; ``schemas`` maps level -> Table Schema.
    """
    resources = []
    for f in files:
        r: dict[str, Any] = {
            "name": f.name.rsplit(".", 1)[0].lower() + ("-" + f.format),
            "path": f.name,
            "format": f.format,
            "mediatype": f.mime,
            "bytes": len(f.body),
            "hash": f"sha256:{f.sha256}",
            "rows": f.rows,
            "schema": schemas[f.level],
        }
        if f.format == "parquet":
            r["codec"] = PARQUET_CODEC  # not "compression": that names a whole-file zip/gz
        if f.format == "csv":
            r["encoding"] = "utf-8"
            r["dialect"] = {"delimiter": ";", "quoteChar": '"', "header": True}
        resources.append(r)
    return {
        "name": dataset.name,
        "title": dataset.title,
        "description": dataset.description,
        "version": version,
        "licenses": [LICENSES.get(dataset.license, {"name": dataset.license})],
        "resources": resources,
    }
