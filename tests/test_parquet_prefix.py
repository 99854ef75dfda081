"""The Parquet prefix (issue 14, item 5): ``{dataset}/parquet/{level}/`` holds only Parquet, one
object of a fixed name, the current version's table of that level, so ``pyarrow.dataset``,
``pandas.read_parquet`` and DuckDB's ``read_parquet`` read it as one table with one schema.

Real case: SPF added ``pop`` to its national test counts in December 2020. The registry before
that did not declare it: the September 2020 file is published under that registry (no ``pop``),
the December file under today's (``pop``, double). The prefix then holds the December table
alone; the two versions' immutable files read together, with ``pa.unify_schemas``, give the
September rows a typed null ``pop``. Every real file, published, has its dates as ``date32``."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from conftest import REAL, Pipeline
from opendepot import layout
from opendepot.config import Settings
from opendepot.contracts import Manifest
from opendepot.ingest import IngestOutcome, ObjectEvent, ingest
from opendepot.publication import PublishOutcome, publish_dataset
from opendepot.registry import Registry, load_cog, load_descriptor, load_registry, parse_dataset
from opendepot.storage import MemoryQueue, MemoryStore, S3Store, Store

FRA = "sp-pos-quot-fra"
SEPTEMBER, DECEMBER = (REAL / FRA / "paugier-mirror" / f / "sp-pos-quot-france.csv"
                       for f in ("2020-09-07_5c325db", "2020-12-08_ed0df79"))
PREFIX = "sp-pos-quot-fra/parquet/fra/"
KEY = PREFIX + "sp-pos-quot-fra-fra.parquet"
COLUMNS = ["fra", "jour", "P_f", "P_h", "P", "T_f", "T_h", "T", "cl_age90"]


def registry_before_pop() -> Registry:
    """Today's registry, but ``sp-pos-quot-fra`` as declared before SPF added ``pop``."""
    d = load_descriptor(FRA)
    d["schema"]["fields"] = [f for f in d["schema"]["fields"] if f["name"] != "pop"]
    del d["measures"]["pop"]
    return Registry({**load_registry().datasets, FRA: parse_dataset(d)})


def drop(p: Pipeline, registry: Registry, key: str, body: bytes,
         version_id: str | None = None) -> IngestOutcome:
    """``Pipeline.drop`` under ``registry`` (``version_id`` None: an unversioned bucket)."""
    p.seq += 1
    p.now += timedelta(minutes=1)
    etag = p.store.put(p.settings.incoming_bucket, key, body, "text/csv")
    event = ObjectEvent(p.settings.incoming_bucket, key, len(body), etag, version_id,
                        f"{p.seq:016X}", p.now)
    return ingest(p.store, p.queue, p.settings, registry, load_cog(), event)


def publish(p: Pipeline, registry: Registry, dataset: str = FRA) -> PublishOutcome:
    p.now += timedelta(seconds=5)
    ds_ = registry.get(dataset)
    assert ds_ is not None
    return publish_dataset(p.store, p.settings, registry, load_cog(), ds_, p.now)


def publish_september_then_december(p: Pipeline, version_ids: bool = True) -> list[str]:
    """The two real FRA files, each published under the registry of its time; their versions."""
    versions = []
    for i, (registry, path) in enumerate(((registry_before_pop(), SEPTEMBER),
                                          (load_registry(), DECEMBER))):
        out = drop(p, registry, f"{FRA}/spf/{path.parent.name}.csv", path.read_bytes(),
                   f"v{i}" if version_ids else None)
        assert out.status == "accepted", out.message
        published = publish(p, registry)
        assert published.created and published.version is not None
        versions.append(published.version)
    return versions


def mirror(store: Store, bucket: str, prefix: str, root: Path) -> Path:
    """Every object under ``prefix`` written to ``root/{key}``, as ``aws s3 sync`` of the
    prefix does; returns the local folder of the prefix."""
    for o in store.list(bucket, prefix):
        path = root / o.key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(store.get(bucket, o.key))
    return root / prefix


def source(path: Path) -> pd.DataFrame:
    """The producer's CSV as pandas reads it (the independent oracle)."""
    return pd.read_csv(path, sep=";", dtype={"fra": str, "jour": str, "cl_age90": str})


def readers_agree(folder: Path) -> pa.Table:
    """The prefix's folder read by ``pyarrow.dataset``, ``pandas.read_parquet`` and DuckDB's
    ``read_parquet``: the same table, with one schema; returns it."""
    table = ds.dataset(folder, format="parquet").to_table()
    frame = pd.read_parquet(folder)
    assert pa.Table.from_pandas(frame, schema=table.schema, preserve_index=False).equals(table)
    with duckdb.connect() as con:
        duck = con.sql(f"SELECT * FROM read_parquet('{folder}/*.parquet')").to_arrow_table()
    assert duck.schema.names == table.schema.names
    assert duck.cast(table.schema).equals(table)
    return table


def test_layout__the_prefix_and_its_one_object_per_level() -> None:
    assert layout.parquet_prefix(FRA, "fra") == PREFIX
    assert layout.parquet_key(FRA, "fra") == KEY
    assert layout.parquet_key("donnees-hospitalieres-covid19", "reg") == (
        "donnees-hospitalieres-covid19/parquet/reg/donnees-hospitalieres-covid19-reg.parquet")


def test_prefix__reads_the_current_table_with_one_schema_after_a_later_upload_added_pop(
    pipeline: Pipeline, tmp_path: Path,
) -> None:
    """Done-when of issue 14, item 5: ``pyarrow.dataset.dataset(prefix)`` reads the current
    table of a dataset whose later upload added a column, with one schema."""
    p, bucket = pipeline, pipeline.settings.published_bucket
    september, december = publish_september_then_december(p)
    assert [o.key for o in p.store.list(bucket, PREFIX)] == [KEY]
    current = p.published(layout.published_file_key(FRA, december, "fra", "parquet"))
    assert p.published(KEY) == current  # the December version's file, byte for byte
    assert p.store.head(bucket, KEY).content_type == "application/vnd.apache.parquet"
    assert p.store.head(bucket, KEY).cache_control == "public, max-age=60, must-revalidate"

    table = readers_agree(mirror(p.store, bucket, PREFIX, tmp_path))
    assert table.schema.names == [*COLUMNS, "pop"]
    assert (table.schema.field("jour").type, table.schema.field("pop").type) == (
        pa.date32(), pa.float64())
    csv = source(DECEMBER)
    assert table.num_rows == len(csv) == 2277
    assert table["pop"].null_count == csv["pop"].isna().sum() == 0
    assert table["T"].to_pylist() == csv.sort_values(["jour", "cl_age90"])["T"].tolist()
    assert str(table["jour"][0]) == "2020-05-13" and str(table["jour"][-1]) == "2020-12-05"
    manifest = Manifest.from_json(json.loads(p.published(layout.manifest_key(FRA))))
    assert (manifest.version, manifest.rows) == (december, {"fra": 2277})
    assert [v.version for v in manifest.versions] == [december, september]


def test_two_versions__read_together_with_unified_schema_older_rows_get_typed_null_pop(
    pipeline: Pipeline, tmp_path: Path,
) -> None:
    """The prefix holds one version; two versions are read from their immutable files with an
    explicit unified schema (without it, ``pyarrow.dataset`` takes the first file's schema and
    ``pop`` is lost)."""
    p, bucket = pipeline, pipeline.settings.published_bucket
    versions = publish_september_then_december(p)
    paths = [str(mirror(p.store, bucket, layout.published_file_key(FRA, v, "fra", "parquet"),
                        tmp_path)) for v in versions]
    schemas = [pq.read_schema(f) for f in paths]
    assert [s.names for s in schemas] == [COLUMNS, [*COLUMNS, "pop"]]
    assert ds.dataset(paths).schema.names == COLUMNS  # the pitfall: first file's schema

    unified = pa.unify_schemas(schemas)
    both = ds.dataset(paths, schema=unified).to_table()
    assert both.schema.field("pop").type == pa.float64()
    assert both.num_rows == 1254 + 2277
    assert both["pop"].null_count == 1254  # every September row: a typed null
    # with the version as a column (its folder), per version: rows and non-null pop
    with_version = unified.append(pa.field("version", pa.string()))
    rows = ds.dataset(paths, schema=with_version, partition_base_dir=str(tmp_path / FRA),
                      partitioning=ds.partitioning(pa.schema([("version", pa.string())]))
                      ).to_table().group_by("version").aggregate([("jour", "count"),
                                                                  ("pop", "count")])
    assert sorted(zip(*rows.to_pydict().values(), strict=True)) == [
        (versions[0], 1254, 0), (versions[1], 2277, 2277)]


@dataclass
class Watched(MemoryStore):
    """A ``MemoryStore`` that, after every write, notes what a reader listing the prefix would
    see (the objects under it, by ETag) and which version the manifest names."""

    seen: list[tuple[tuple[str, ...], str | None]] = field(default_factory=list)

    def put(self, bucket: str, key: str, *args: Any, **kwargs: Any) -> str:
        etag = super().put(bucket, key, *args, **kwargs)
        if bucket == Settings().published_bucket:
            objects = tuple(o.etag for o in self.list(bucket, PREFIX))
            head = self.head(bucket, layout.manifest_key(FRA))
            version = (None if head is None else
                       json.loads(self.get(bucket, layout.manifest_key(FRA)))["version"])
            self.seen.append((objects, version))
        return etag


def test_prefix__never_shows_two_files_and_never_runs_ahead_of_the_manifest() -> None:
    store = Watched()
    p = Pipeline(store, MemoryQueue(), Settings(publish_queue_url="memory://publish.fifo"),
                 datetime(2026, 11, 29, 8, 0, tzinfo=UTC))
    september, december = publish_september_then_december(p)
    bucket = p.settings.published_bucket
    etag = {v: store.head(bucket, layout.published_file_key(FRA, v, "fra", "parquet")).etag
            for v in (september, december)}
    assert max(len(objects) for objects, _ in store.seen) == 1
    shown = [objects[0] for objects, _ in store.seen if objects]
    assert shown[0] == etag[september] and shown[-1] == etag[december]
    changes = [b for a, b in zip(shown, shown[1:], strict=False) if a != b]
    assert changes == [etag[december]]  # one switch, old -> new, never back
    for objects, version in store.seen:
        if objects:  # the prefix shows the manifest's version, or the one before until copied
            assert version in (september, december)
            assert objects[0] == etag[version] or (version, objects[0]) == (
                december, etag[september])


class CopyFails(MemoryStore):
    """A ``MemoryStore`` whose next copy to the prefix fails once ``armed`` (the function dies
    after the manifest switch, before the prefix is copied)."""

    armed = False

    def copy(self, bucket: str, src_key: str, dst_key: str, *,
             cache_control: str | None = None) -> None:
        if dst_key == KEY and self.armed:
            self.armed = False
            raise OSError("injected: the function died before the prefix was copied")
        super().copy(bucket, src_key, dst_key, cache_control=cache_control)


def test_crash_after_the_switch__the_prefix_shows_the_old_table_until_the_retry_copies() -> None:
    store = CopyFails()
    p = Pipeline(store, MemoryQueue(), Settings(publish_queue_url="memory://publish.fifo"),
                 datetime(2026, 11, 29, 8, 0, tzinfo=UTC))
    bucket, registry = p.settings.published_bucket, load_registry()
    drop(p, registry_before_pop(), f"{FRA}/spf/september.csv", SEPTEMBER.read_bytes(), "v1")
    september = publish(p, registry_before_pop()).version
    assert september is not None
    drop(p, registry, f"{FRA}/spf/december.csv", DECEMBER.read_bytes(), "v2")
    store.armed = True
    with pytest.raises(OSError, match="injected"):
        publish(p, registry)
    old = p.published(layout.published_file_key(FRA, september, "fra", "parquet"))
    assert [o.key for o in store.list(bucket, PREFIX)] == [KEY]
    assert p.published(KEY) == old  # switched, not copied yet: the old table, whole
    again = publish(p, registry)  # the queue's retry: same uploads, repairs the copies
    assert not again.created and again.version not in (None, september)
    assert again.version is not None
    assert p.published(KEY) == p.published(
        layout.published_file_key(FRA, again.version, "fra", "parquet"))
    assert pq.read_schema(io.BytesIO(p.published(KEY))).names == [*COLUMNS, "pop"]


@pytest.fixture(scope="module")
def everything(every_real_published: Pipeline) -> Pipeline:
    """Every real file published (the session's, ``conftest.every_real_published``)."""
    return every_real_published


def test_every_real_dataset__each_level_prefix_holds_its_parquet_dates_date32_readers_agree(
    everything: Pipeline, tmp_path: Path,
) -> None:
    p, bucket = everything, everything.settings.published_bucket
    registry = load_registry()
    prefixes, date_columns = 0, set()
    for d in registry:
        manifest = Manifest.from_json(json.loads(p.published(layout.manifest_key(d.name))))
        declared = {f["name"]: f["type"] for f in d.schema["fields"]}
        for r in manifest.resources:
            if r.format != "parquet":
                continue
            prefix, key = layout.parquet_prefix(d.name, r.level), layout.parquet_key(d.name, r.level)
            assert [o.key for o in p.store.list(bucket, prefix)] == [key]
            body = p.published(key)
            assert hashlib.sha256(body).hexdigest() == r.sha256
            schema = pq.read_schema(io.BytesIO(body))
            assert not [f.name for f in schema if pa.types.is_temporal(f.type)
                        and not pa.types.is_date32(f.type)], (d.name, r.level)
            dates = [f.name for f in schema if pa.types.is_date32(f.type)]
            assert dates == [f.name for f in schema if declared.get(f.name) == "date"]
            level_schema = {f["name"]: f["type"] for f in manifest.schemas[r.level]["fields"]}
            assert all(level_schema[c] == "date" for c in dates)
            date_columns.update(dates)
            table = readers_agree(mirror(p.store, bucket, prefix, tmp_path))
            assert table.num_rows == r.rows == manifest.rows[r.level]
            prefixes += 1
    assert prefixes == 32  # 18 datasets: their levels (chiffres-cles: sources and consolide)
    assert date_columns == {"jour", "extract_date", "date"}


MOTO_HOST = "127.0.0.1"


@pytest.fixture
def moto_endpoint() -> Iterator[str]:
    """A moto S3 server on a free port (its state is global to the process: reset around)."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address=MOTO_HOST, port=0, verbose=False)
    server.start()
    endpoint = f"http://{MOTO_HOST}:{server.get_host_and_port()[1]}"

    def reset() -> None:
        req = urllib.request.Request(f"{endpoint}/moto-api/reset", data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()

    reset()
    try:
        yield endpoint
    finally:
        reset()
        server.stop()


def test_prefix_on_s3__pyarrow_dataset_lists_one_file_old_table_then_new(
    moto_endpoint: str,
) -> None:
    """Over S3 (moto, versioned published bucket as in the template), ``pyarrow.dataset`` on
    the prefix: the September table, then the December table with ``pop``."""
    keys = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="eu-west-3", **keys)
    settings = Settings(publish_queue_url="memory://publish.fifo")
    for b in (settings.incoming_bucket, settings.internal_bucket, settings.published_bucket):
        s3.create_bucket(Bucket=b, CreateBucketConfiguration={"LocationConstraint": "eu-west-3"})
    s3.put_bucket_versioning(Bucket=settings.published_bucket,
                             VersioningConfiguration={"Status": "Enabled"})
    p = Pipeline(S3Store(s3), MemoryQueue(), settings,  # type: ignore[arg-type]
                 datetime(2026, 11, 29, 8, 0, tzinfo=UTC))
    fs = pafs.S3FileSystem(endpoint_override=moto_endpoint, scheme="http", region="eu-west-3",
                           access_key="testing", secret_key="testing")
    where = f"{settings.published_bucket}/{PREFIX}"
    seen = []
    for registry, path in ((registry_before_pop(), SEPTEMBER), (load_registry(), DECEMBER)):
        assert drop(p, registry, f"{FRA}/spf/{path.parent.name}.csv", path.read_bytes()
                    ).status == "accepted"
        assert publish(p, registry).created
        dataset = ds.dataset(where, filesystem=fs, format="parquet")
        assert dataset.files == [f"{settings.published_bucket}/{KEY}"]
        table = dataset.to_table()
        assert pd.read_parquet(where, filesystem=fs).shape == (table.num_rows,
                                                               table.num_columns)
        seen.append((table.num_rows, table.schema.names, table.schema.field("jour").type))
    assert seen == [(1254, COLUMNS, pa.date32()), (2277, [*COLUMNS, "pop"], pa.date32())]
