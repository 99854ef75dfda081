"""The Athena tables' columns and symlinks (issue 16, item 5; ``opendepot.athena``).

Every real file is published; each published Parquet file's columns and types are then the ones
``athena.level_columns`` derives from the registry for the Glue table of its level (what
template.yaml declares: ``tests/test_template.py``), and each level's table location holds
the version's symlink to that file. Two real FRA versions give two symlinks: Athena reads both.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import Pipeline
from opendepot import athena, layout
from opendepot.config import Settings
from opendepot.contracts import Manifest
from opendepot.registry import load_registry
from opendepot.storage import MemoryQueue, MemoryStore
from test_parquet_prefix import FRA, publish_september_then_december

SETTINGS = Settings(publish_queue_url="memory://publish.fifo")
ARROW_TO_GLUE = {pa.string(): "string", pa.int64(): "bigint", pa.float64(): "double",
                 pa.date32(): "date", pa.bool_(): "boolean"}


@pytest.fixture(scope="module")
def everything(every_real_published: Pipeline) -> Pipeline:
    """Every real file published (the session's, ``conftest.every_real_published``)."""
    return every_real_published


def test_every_real_level__parquet_columns_are_the_glue_tables_and_the_symlink_names_the_file(
    everything: Pipeline,
) -> None:
    p, bucket, checked = everything, everything.settings.published_bucket, 0
    for d in load_registry():
        manifest = Manifest.from_json(json.loads(p.published(layout.manifest_key(d.name))))
        parquet = [r for r in manifest.resources if r.format == "parquet"]
        assert [r.level for r in parquet] == athena.published_levels(d)
        for r in parquet:
            schema = pq.read_schema(io.BytesIO(p.published(r.path)))
            assert [(f.name.lower(), ARROW_TO_GLUE[f.type]) for f in schema] == (
                athena.level_columns(d, r.level)), (d.name, r.level)
            listed = [o.key for o in p.store.list(bucket, layout.athena_prefix(d.name, r.level))]
            assert listed == [f"{d.name}/athena/{r.level}/{manifest.version}.txt"]
            assert p.published(listed[0]) == f"s3://{bucket}/{r.path}\n".encode()
            checked += 1
    assert checked == 32


def test_two_real_versions__two_symlinks_older_rows_read_with_a_null_pop() -> None:
    """SPF added ``pop`` in December 2020: the September version's file lacks it; the table
    (today's schema, ``pop`` double) lists both files, so Athena reads 1254 + 2277 rows, the
    September ones with a null ``pop`` (Parquet columns are matched by name)."""
    p = Pipeline(MemoryStore(), MemoryQueue(), SETTINGS, datetime(2026, 11, 29, 8, 0, tzinfo=UTC))
    september, december = publish_september_then_december(p)
    bucket = p.settings.published_bucket
    keys = [o.key for o in p.store.list(bucket, layout.athena_prefix(FRA, "fra"))]
    files = [p.published(k).decode().strip().removeprefix(f"s3://{bucket}/") for k in keys]

    assert keys == [layout.athena_symlink_key(FRA, "fra", v) for v in (september, december)]
    assert files == [layout.published_file_key(FRA, v, "fra", "parquet")
                     for v in (september, december)]
    registry = load_registry()
    fra = registry.get(FRA)
    assert fra is not None
    columns = dict(athena.level_columns(fra, "fra"))
    assert columns["pop"] == "double" and columns["jour"] == "date"
    old, new = (pq.read_table(io.BytesIO(p.published(f))) for f in files)
    assert (old.num_rows, new.num_rows) == (1254, 2277)
    assert "pop" not in old.schema.names and "pop" in new.schema.names


def test_table_names_and_unknown_levels() -> None:
    hosp = load_registry().get("donnees-hospitalieres-covid19")
    assert hosp is not None
    assert athena.table_name(hosp.name, "dep") == "donnees_hospitalieres_covid19_dep"
    assert athena.published_levels(hosp) == ["dep", "reg", "fra"]
    with pytest.raises(ValueError, match="no level 'consolide'"):
        athena.level_columns(hosp, "consolide")
