"""Athena over the published Parquet: one Glue table per dataset level, reading every version.

A version's folder ``{dataset}/{version}/`` also holds CSV and JSON, and the Parquet prefix
``{dataset}/parquet/{level}/`` only the current version, so neither can be a table's location
for every version. Each level's table is therefore a *symlink table*
(``SymlinkTextInputFormat`` with the Parquet SerDe): its location ``{dataset}/athena/{level}/``
(``layout.athena_prefix``) holds one small text file per published version,
``{version}.txt`` (``layout.athena_symlink_key``), whose one line is the ``s3://`` URI of that
version's immutable Parquet file of the level. The publish function writes it once the version
is switched to (``write_symlinks``, from ``publication``'s refresh of ``latest/``, so the
repair path writes a missed one too); it is immutable, like the file it names. A new version
is in the table at its next query: no crawler, no partition to add, no manual step.

Athena gives each row's file as the ``"$path"`` pseudo-column, whose version folder is the
version (``VERSION_SQL``). Columns and types come from the dataset's Table Schema
(``level_columns``: ``GLUE_TYPES``), named in lower case as Athena does; a column the registry
added later reads as null in older versions (Parquet columns are matched by name).
"""

from __future__ import annotations

import re

from opendepot import layout
from opendepot.contracts import Manifest
from opendepot.partitions import PROVENANCE
from opendepot.registry import Dataset
from opendepot.rollup import rolled_up_measures, rollup_levels

GLUE_TYPES = {
    "string": "string",
    "integer": "bigint",
    "number": "double",
    "date": "date",
    "boolean": "boolean",
    "year": "bigint",
    "week": "string",
}
"""Table Schema field type -> Glue / Athena column type (as the published Parquet stores it:
``cells.ARROW_TYPES``)."""
SYMLINK_INPUT_FORMAT = "org.apache.hadoop.hive.ql.io.SymlinkTextInputFormat"
"""Input format of a table whose location lists its data files (one URI a line)."""
OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
"""Output format of a symlink table (Athena never writes into these tables)."""
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
"""SerDe reading the listed files as Parquet."""
SYMLINK_MIME = "text/plain"
"""Content type of a symlink file."""
VERSION_SQL = (
    "regexp_extract(\"$path\", '/([0-9]{4}-[0-9]{2}-[0-9]{2}-[0-9]{2}h[0-9]{2}m[0-9]{2}s)/', 1)"
)
"""Athena SQL giving a row's version id (``YYYY-MM-DD-HHhMMmSSs``) from its file's path."""


def published_levels(dataset: Dataset) -> list[str]:
    """Levels the publication writes a Parquet file for, in order: the producer's level, the
    ``consolidated`` table's name (if declared), then the roll-ups (``reg``, ``fra``)."""
    levels = [dataset.geography.level]
    if dataset.consolidated is not None:
        levels.append(dataset.consolidated.name)
    return levels + [lv for lv in rollup_levels(dataset) if lv not in levels]


def level_columns(dataset: Dataset, level: str) -> list[tuple[str, str]]:
    """``(name, Glue type)`` of one published level's columns, in the Parquet file's order:
    the dataset's fields (then ``producer`` and ``upload_id`` when it declares provenance) for
    the producer's level and the consolidated table; a roll-up's area code (``reg``/``fra``),
    the other key dimensions and the rolled-up measures. Names are lower-cased (Athena's).

    Raises:
        ValueError: ``level`` is not one of ``published_levels(dataset)``, or two columns have
            the same lower-cased name.
    """
    if level not in published_levels(dataset):
        raise ValueError(f"{dataset.name} publishes no level {level!r}")
    types = {f.name: GLUE_TYPES[f.type] for f in dataset.fields}
    columns: list[tuple[str, str]]
    if level in rollup_levels(dataset) and level != dataset.geography.level:
        measures = rolled_up_measures(dataset, dataset.field_names)
        columns = [(level, "string"), *((d, types[d]) for d in dataset.dimensions),
                   *((m, types[m]) for m in measures)]
    else:
        columns = list(types.items())
        if dataset.provenance:
            columns += [(name, "string") for name in PROVENANCE]
    lowered = [(name.lower(), kind) for name, kind in columns]
    if len({name for name, _ in lowered}) != len(lowered):
        raise ValueError(f"{dataset.name}-{level}: two columns differ only by case")
    return lowered


def table_name(dataset: str, level: str) -> str:
    """Glue table name of a dataset level: ``{dataset}_{level}``, lower case, ``-`` -> ``_``
    (``donnees_hospitalieres_covid19_dep``)."""
    return re.sub(r"[^a-z0-9_]", "_", f"{dataset}_{level}".lower())


def symlink_body(bucket: str, parquet_key: str) -> bytes:
    """A symlink file's content: the ``s3://`` URI of one Parquet file, and a newline."""
    return f"s3://{bucket}/{parquet_key}\n".encode()


def symlinks(bucket: str, manifest: Manifest) -> list[tuple[str, bytes]]:
    """``(key, body)`` of the symlink file of each Parquet resource of ``manifest``'s version:
    ``layout.athena_symlink_key`` -> ``symlink_body`` of the resource's immutable file."""
    return [
        (layout.athena_symlink_key(manifest.dataset, r.level, manifest.version),
         symlink_body(bucket, r.path))
        for r in manifest.resources if r.format == "parquet"
    ]

