"""Feeds: rows a dataset takes from another dataset's current published version.

A descriptor declares them under ``feeds`` (see docs/design.md, "Dataset registry")::

    "feeds": [{"dataset": "donnees-hospitalieres-covid19", "producer": "<feed id>",
               "level": "dep", "filter": {"sexe": 0},
               "columns": {"date": "jour", "hospitalises": "hosp"},
               "templates": {"maille_code": "DEP-{dep}"},
               "names": {"maille_nom": "dep"},
               "constants": {"granularite": "departement"}}]

- ``filter``: rows kept (column == value, all must hold);
- ``columns``: target column <- source column, cast to the target's type;
- ``templates``: target column <- text built from source columns (``DEP-{dep}``);
- ``names``: target column <- INSEE COG name of the department code in a source column;
- ``constants``: target column <- one value for every row;
- ``producer``: the provenance of the fed rows (must not be a producer that may upload, so a
  fed row and an uploaded row never share a key); their ``upload_id`` is
  ``{dataset}@{version}``, the fed version they were read from.

Fed rows are read from the immutable version files the fed dataset's manifest points to (never
``latest/``), through the storage port. ``resolve`` reads manifests only; ``Feeds.extend``
reads the Parquet files. A fed dataset not published yet contributes nothing.
"""

from __future__ import annotations

import io
import json
import string
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from opendepot import layout
from opendepot.contracts import FedSource, FedUpload, Manifest
from opendepot.registry import Cog, Dataset, Registry
from opendepot.specs import FeedSpec
from opendepot.storage import Store

Feed = FeedSpec
"""One declared feed (see module docstring), parsed and checked by the registry."""


def declared(dataset: Dataset) -> tuple[Feed, ...]:
    """The feeds ``dataset`` declares (none for most datasets)."""
    return dataset.feeds


def dependents(registry: Registry, name: str) -> list[str]:
    """Datasets fed by ``name``: to republish when ``name`` publishes a new version."""
    return [ds.name for ds in registry if any(f.dataset == name for f in declared(ds))]


def _template(template: str, table: pa.Table) -> pa.Array:
    pieces: list[Any] = []
    for literal, name, _, _ in string.Formatter().parse(template):
        if literal:
            pieces.append(literal)
        if name:
            pieces.append(pc.cast(table[name], pa.string()))
    if not any(isinstance(p, pa.ChunkedArray | pa.Array) for p in pieces):
        return pa.array([template] * table.num_rows, pa.string())
    return pc.binary_join_element_wise(*pieces, "")


def fed_rows(feed: Feed, source: pa.Table, target: pa.Schema, upload_id: str, cog: Cog) -> pa.Table:
    """The rows ``feed`` takes from ``source``, shaped as ``target`` (the consolidated table's
    schema: the dataset's fields, then ``producer`` and ``upload_id``). Pure."""
    missing = feed.sources() - set(source.column_names)
    if missing:
        raise ValueError(f"feed from {feed.dataset}: columns {sorted(missing)} not in its "
                         f"published {feed.level} table")
    table = source
    for column, wanted in feed.filter.items():
        table = table.filter(pc.equal(table[column], pa.scalar(wanted).cast(table[column].type)))
    n = table.num_rows
    names = {code: d["name"] for code, d in cog.departments.items()}
    columns: dict[str, Any] = {}
    for f in target:
        if f.name in feed.columns:
            value: Any = pc.cast(table[feed.columns[f.name]], f.type)
        elif f.name in feed.templates:
            value = _template(feed.templates[f.name], table)
        elif f.name in feed.names:
            codes = table[feed.names[f.name]].to_pylist()
            value = pa.array([names.get(c) for c in codes], pa.string())
        elif f.name in feed.constants:
            value = pa.array([feed.constants[f.name]] * n, f.type)
        elif f.name == "producer":
            value = pa.array([feed.producer] * n, pa.string())
        elif f.name == "upload_id":
            value = pa.array([upload_id] * n, pa.string())
        else:
            value = pa.nulls(n, f.type)
        columns[f.name] = pc.cast(value, f.type)
    return pa.table(columns, schema=target)


@dataclass(frozen=True)
class FedVersion:
    """A feed and the fed dataset's version it reads now."""

    feed: Feed
    """The declared feed."""
    version: str
    """The fed dataset's current version."""
    published_at: str
    """When that version was published (ISO 8601 UTC)."""
    path: str
    """Key of the fed level's Parquet file in the published bucket (immutable version file)."""

    @property
    def upload_id(self) -> str:
        """``{fed dataset}@{version}`` (``layout.fed_upload_id``)."""
        return layout.fed_upload_id(self.feed.dataset, self.version)

    @property
    def record(self) -> FedUpload:
        """Stands for the fed version among the publication's uploads (manifest ``uploads``):
        its ``upload_id`` changes with the fed version, so a new one makes a new publication."""
        source = FedSource(self.feed.dataset, self.version, self.feed.level, self.path)
        return FedUpload(self.upload_id, self.feed.producer, source, self.published_at)


@dataclass(frozen=True)
class Feeds:
    """A dataset's feeds resolved to the fed datasets' current versions."""

    dataset: Dataset
    versions: tuple[FedVersion, ...] = ()
    store: Store | None = field(default=None, compare=False)
    bucket: str = ""

    @property
    def records(self) -> list[FedUpload]:
        """The fed versions as a manifest's ``uploads`` list them."""
        return [v.record for v in self.versions]

    def extend(self, table: pa.Table, cog: Cog) -> pa.Table:
        """``table`` (the consolidated uploads) plus every fed row, sorted like ``consolidate``
        sorts (primary key, then ``producer``). Unchanged when nothing is fed."""
        if not self.versions or self.store is None:
            return table
        parts = [table]
        for v in self.versions:
            source = pq.read_table(io.BytesIO(self.store.get(self.bucket, v.path)))
            parts.append(fed_rows(v.feed, source, table.schema, v.upload_id, cog))
        out = pa.concat_tables(parts)
        key = list(self.dataset.primary_key)
        if "producer" in out.column_names and "producer" not in key:
            key.append("producer")
        return out.sort_by([(k, "ascending") for k in key]) if key else out


def _parquet_path(manifest: Manifest, level: str) -> str | None:
    for r in manifest.resources:
        if r.level == level and r.format == "parquet":
            return r.path
    return None


def resolve(
    store: Store, bucket: str, dataset: Dataset, feeds: Iterable[Feed] | None = None
) -> Feeds:
    """The current version of each dataset ``dataset`` is fed by (manifests only)."""
    versions = []
    for feed in declared(dataset) if feeds is None else feeds:
        key = layout.manifest_key(feed.dataset)
        if store.head(bucket, key) is None:
            continue  # not published yet: nothing to feed
        manifest = Manifest.from_json(json.loads(store.get(bucket, key)))
        path = _parquet_path(manifest, feed.level)
        if path is None:
            raise ValueError(f"{dataset.name}: fed dataset {feed.dataset} publishes no "
                             f"{feed.level} Parquet file")
        versions.append(FedVersion(feed, manifest.version, manifest.published_at, path))
    return Feeds(dataset, tuple(versions), store, bucket)
