"""The streaming publication path (``opendepot.consolidate``, step 4 of ``publish_dataset``)
against the in-memory path, its reference: the real hospital files ingested into the in-memory
store and published both ways, with the streaming path forced by tiny parts and batches. Every
level's CSV must be byte for byte the same and every Parquet table equal; published values are
checked against the source files and INSEE's own COG file, read here independently."""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench.workloads import read_grid, write_scaled
from conftest import HOSP
from opendepot import publication
from opendepot.config import Settings
from opendepot.consolidate import key_counts, plan_partitions
from opendepot.ingest import ObjectEvent, ingest
from opendepot.publication import _put_immutable, publish_dataset
from opendepot.registry import Dataset, Registry, load_cog, load_registry, parse_dataset, load_descriptor
from opendepot.storage import MemoryQueue, MemoryStore, PreconditionFailed
from test_datasets_hospital import upload_name
from test_real_hospital import publication_order

NEW = "donnees-hospitalieres-covid19-2021-03-17-17h03.csv"
LEVELS = ("dep", "reg", "fra")
TINY = {"STREAM_MIN_ROWS": 0, "PARTITION_ROWS": 5_000, "BATCH_ROWS": 7_000}
"""Forces the streaming path on the real file: ~23 parts of ~5,000 rows, read 7,000 at a time."""


def append_mode() -> Dataset:
    """The hospital dataset as an ``append`` dataset: uploads revise rows on the primary key."""
    descriptor = load_descriptor(HOSP)
    descriptor["mode"] = "append"
    return parse_dataset(descriptor)


@dataclass
class Published:
    """One dataset's published bucket after the uploads were ingested and published in turn."""

    store: MemoryStore
    settings: Settings
    streamed: int
    """How many publications took the streaming path."""
    statuses: list[str]
    """Ingest status of each upload."""

    def object(self, key: str) -> bytes:
        return self.store.get(self.settings.published_bucket, key)

    def manifest_of(self, dataset: str) -> dict[str, Any]:
        return json.loads(self.object(f"{dataset}/manifest.json"))

    @property
    def manifest(self) -> dict[str, Any]:
        return self.manifest_of(HOSP)

    def file(self, level: str, fmt: str, dataset: str = HOSP) -> bytes:
        return self.object(f"{dataset}/latest/{dataset}-{level}.{fmt}")

    def table(self, level: str, dataset: str = HOSP) -> pa.Table:
        return pq.read_table(io.BytesIO(self.file(level, "parquet", dataset)))

    def frame(self, level: str) -> pd.DataFrame:
        df = self.table(level).to_pandas()
        df["jour"] = df["jour"].astype(str)
        return df


def publish_all(
    dataset: Dataset, uploads: list[tuple[str, bytes]], tuning: dict[str, int] | None = None
) -> Published:
    """Ingest each upload and publish after each one (fixed clock: the same ids and versions in
    every run), with the publication constants in ``tuning``; counts the streaming publications."""
    settings = Settings(publish_queue_url="memory://publish.fifo")
    store, queue, cog = MemoryStore(), MemoryQueue(), load_cog()
    registry = Registry({dataset.name: dataset})
    streamed, statuses = 0, []
    real = publication._render_streaming

    def spy(*args: Any, **kwargs: Any) -> Any:
        nonlocal streamed
        streamed += 1
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(publication, "_render_streaming", spy)
        for name, value in (tuning or {}).items():
            m.setattr(publication, name, value)
        now = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
        for i, (name, body) in enumerate(uploads, 1):
            key = f"{dataset.name}/spf/{name}"
            etag = store.put(settings.incoming_bucket, key, body, "text/csv")
            now += timedelta(minutes=1)
            event = ObjectEvent(settings.incoming_bucket, key, len(body), etag, f"v{i}",
                                f"{i:016X}", now)
            statuses.append(ingest(store, queue, settings, registry, cog, event).status)
            publish_dataset(store, settings, registry, cog, dataset, now + timedelta(seconds=5))
    return Published(store, settings, streamed, statuses)


def assert_same_publication(
    streamed: Published, reference: Published, dataset: str = HOSP, levels: tuple[str, ...] = LEVELS
) -> None:
    """Same CSV bytes and Parquet tables per level, same rows, coverage and schemas."""
    for level in levels:
        assert streamed.file(level, "csv", dataset) == reference.file(level, "csv", dataset), level
        a, b = streamed.table(level, dataset), reference.table(level, dataset)
        assert a.schema == b.schema and a.equals(b), level
    s, r = streamed.manifest_of(dataset), reference.manifest_of(dataset)
    for k in ("rows", "temporal_coverage", "schemas", "uploads", "version"):
        assert s[k] == r[k], k
    for res in s["resources"]:  # each file is what the manifest says it is
        body = streamed.object(res["path"])
        assert (len(body), hashlib.sha256(body).hexdigest()) == (res["bytes"], res["sha256"])
        assert streamed.object(res["latest_path"]) == body


def source(path: Path) -> pd.DataFrame:
    """A real hospital file read independently: codes as text, counts as numbers."""
    df = pd.read_csv(path, sep=";", dtype=str, keep_default_na=False)
    for m in ("hosp", "rea", "rad", "dc"):
        df[m] = pd.to_numeric(df[m].replace({"NA": None, "": None}))
    return df[df["dep"] != ""]


@pytest.fixture(scope="module")
def real_hospital(real_dir: Path) -> Callable[[dict[str, int] | None], Published]:
    """The real 2021-03-17 file published by the shipped registry entry, once per tuning."""
    body = (real_dir / HOSP / NEW).read_bytes()
    done: dict[str, Published] = {}

    def get(tuning: dict[str, int] | None) -> Published:
        key = json.dumps(tuning, sort_keys=True)
        if key not in done:
            done[key] = publish_all(load_registry().get(HOSP), [(NEW, body)], tuning)
            assert done[key].statuses == ["accepted"]
        return done[key]

    return get


def test_real_hospital_file__streaming_and_in_memory_publish_identical_files(real_hospital):
    reference, streamed = real_hospital(None), real_hospital(TINY)
    assert (reference.streamed, streamed.streamed) == (0, 1)
    assert streamed.manifest["rows"] == {"dep": 110_595, "reg": 19_710, "fra": 1_095}
    assert_same_publication(streamed, reference)
    # the streaming path wrote the department level part by part
    assert pq.ParquetFile(io.BytesIO(streamed.file("dep", "parquet"))).num_row_groups > 1


def test_real_hospital_file__streamed_national_and_region_values_match_source(
    real_hospital, real_dir: Path
):
    df = source(real_dir / HOSP / NEW)
    day = df[(df["jour"] == "2021-03-17") & (df["sexe"] == "0")]
    assert len(day) == 101 and day["hosp"].notna().all()
    cog = pd.read_csv(real_dir / "cog-insee" / "departement2020.csv", dtype=str)
    idf = day[day["dep"].isin(cog.loc[cog["reg"] == "11", "dep"])]
    assert len(idf) == 8  # Paris and the seven departments around it
    for published in (real_hospital(TINY), real_hospital(None)):
        fra = published.frame("fra")
        row = fra[(fra["jour"] == "2021-03-17") & (fra["sexe"] == 0)]
        assert row["hosp"].tolist() == [day["hosp"].sum()]
        assert row["dc"].tolist() == [day["dc"].sum()]
        reg = published.frame("reg")
        row = reg[(reg["reg"] == "11") & (reg["jour"] == "2021-03-17") & (reg["sexe"] == 0)]
        assert row["rea"].tolist() == [idf["rea"].sum()]
        dep = published.frame("dep")
        row = dep[(dep["dep"] == "2A") & (dep["jour"] == "2021-03-17") & (dep["sexe"] == 0)]
        assert row["hosp"].tolist() == day.loc[day["dep"] == "2A", "hosp"].tolist()


def test_append_uploads_repeating_keys__newest_upload_wins_in_both_paths(
    real_dir: Path, tmp_path: Path
):
    # the real file; then a revision of every one of its rows plus a second year (the bench's
    # deterministic scaling of the real series); then the real file's first 3,000 rows again
    real_file = real_dir / HOSP / NEW
    revised_file = tmp_path / "revised.csv"
    write_scaled(revised_file, 2, read_grid(real_file))
    real, revised = real_file.read_bytes(), revised_file.read_bytes()
    again = b"".join(real.splitlines(keepends=True)[:3001])
    uploads = [(NEW, real), ("revised.csv", revised), ("again-" + NEW, again)]
    reference = publish_all(append_mode(), uploads)
    streamed = publish_all(append_mode(), uploads, TINY)
    assert streamed.statuses == reference.statuses == ["accepted"] * 3
    assert (reference.streamed, streamed.streamed) == (0, 3)
    assert_same_publication(streamed, reference)

    key = ["dep", "sexe", "jour"]
    real_rows = source(real_file).set_index(key)
    again_rows = real_rows.iloc[:3000]
    revised_rows = source(revised_file).set_index(key)
    assert real_rows.index.isin(revised_rows.index).all()
    dep = streamed.frame("dep")
    dep["sexe"] = dep["sexe"].astype(str)
    dep = dep.set_index(key)
    assert len(dep) == len(revised_rows) == 2 * 110_595
    differs = again_rows.index[(again_rows["rad"] != revised_rows.loc[again_rows.index, "rad"])
                               .to_numpy()]
    assert len(differs) > 1000  # rows the last upload changed back
    assert dep.loc[differs, "rad"].tolist() == again_rows.loc[differs, "rad"].tolist()
    kept = revised_rows.index.difference(again_rows.index)
    assert dep.loc[kept, "rad"].tolist() == revised_rows.loc[kept, "rad"].tolist()
    # roll-ups follow the winning rows: national hosp on the real file's last day
    last_day = ("0", "2021-03-17")
    day = dep.xs(last_day, level=("sexe", "jour"))
    fra = streamed.frame("fra")
    row = fra[(fra["jour"] == "2021-03-17") & (fra["sexe"] == 0)]
    assert row["hosp"].tolist() == [day["hosp"].sum()]
    assert day["hosp"].sum() != real_rows.xs(last_day, level=("sexe", "jour"))["hosp"].sum()


@pytest.mark.parametrize("name", [
    "covid-hospit-incid-reg",  # regions, rolled up to the nation
    "donnees-hospitalieres-classe-age-covid19",  # regions, three key columns
    "donnees-hospitalieres-nouveaux-covid19",  # departments and day only
])
def test_hospital_family_real_files__streaming_and_in_memory_publish_identical_files(
    name: str, real_dir: Path
):
    dataset = load_registry().get(name)
    uploads = [(upload_name(p), p.read_bytes()) for p in publication_order(real_dir / name)]
    reference = publish_all(dataset, uploads)
    streamed = publish_all(dataset, uploads, {**TINY, "PARTITION_ROWS": 3_000, "BATCH_ROWS": 2_500})
    assert streamed.statuses == reference.statuses and "accepted" in streamed.statuses
    assert reference.streamed == 0 and streamed.streamed >= 2
    assert_same_publication(streamed, reference, name, dataset.levels)


def test_single_first_key_value__published_in_memory(real_dir: Path):
    lines = (real_dir / HOSP / NEW).read_bytes().splitlines(keepends=True)
    paris = lines[0] + b"".join(line for line in lines[1:] if line.startswith(b'"75";'))
    reference = publish_all(load_registry().get(HOSP), [("paris.csv", paris)])
    tiny = publish_all(load_registry().get(HOSP), [("paris.csv", paris)],
                       {**TINY, "PARTITION_ROWS": 100})
    assert tiny.statuses == ["accepted"]
    assert (reference.streamed, tiny.streamed) == (0, 0)  # one value of dep: one part
    assert_same_publication(tiny, reference)
    assert tiny.manifest["rows"] == {"dep": 1_095, "reg": 1_095, "fra": 1_095}


def test_plan_partitions__balanced_ranges_in_key_order(real_dir: Path, tmp_path: Path):
    table = pd.read_csv(real_dir / HOSP / NEW, sep=";", dtype=str)[["dep"]]
    path = tmp_path / "staged.parquet"
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), path)
    schema = pa.schema([("dep", pa.string())])
    counts = key_counts([path, path], schema, "dep", 7_000)
    assert counts["value"].to_pylist() == sorted(set(table["dep"]))
    assert set(counts["count"].to_pylist()) == {2 * 365 * 3}
    plan = plan_partitions("dep", counts, 50_000)
    assert plan.parts == 5 and sum(plan.rows) == 2 * 110_595
    assert max(plan.rows) - min(plan.rows) <= 2 * 365 * 3  # balanced to within one value
    assert list(plan.part_of) == sorted(plan.part_of)  # ranges, in key order
    assert plan_partitions("dep", counts, 10**9).parts == 1


def test_failed_upload__temporary_files_removed(
    real_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    body = (real_dir / HOSP / NEW).read_bytes()

    class Broken(MemoryStore):
        def put(self, bucket: str, key: str, *args: Any, **kwargs: Any) -> str:
            if key.endswith("-reg.csv"):
                raise OSError("connection reset")
            return super().put(bucket, key, *args, **kwargs)

    settings, registry, cog = Settings(), load_registry(), load_cog()
    store = Broken()
    etag = store.put(settings.incoming_bucket, f"{HOSP}/spf/{NEW}", body, "text/csv")
    now = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
    event = ObjectEvent(settings.incoming_bucket, f"{HOSP}/spf/{NEW}", len(body), etag, "v1",
                        "01", now)
    ingest(store, MemoryQueue(), settings, registry, cog, event)
    for name, value in TINY.items():
        monkeypatch.setattr(publication, name, value)
    with pytest.raises(OSError, match="connection reset"):
        publish_dataset(store, settings, registry, cog, registry.get(HOSP), now)
    assert list(tmp_path.iterdir()) == []
    assert store.head(settings.published_bucket, f"{HOSP}/manifest.json") is None


def test_version_file_from_disk__retry_with_same_bytes_passes_other_bytes_fail(tmp_path: Path):
    store, bucket, key = MemoryStore(), "published", f"{HOSP}/v1/{HOSP}-dep.csv"
    path = tmp_path / "dep.csv"
    path.write_bytes(b'"dep";"sexe"\n"01";0\n')
    _put_immutable(store, bucket, key, path, "text/csv")
    _put_immutable(store, bucket, key, path, "text/csv")  # a retry after a crash
    path.write_bytes(b'"dep";"sexe"\n"02";0\n')
    with pytest.raises(PreconditionFailed):
        _put_immutable(store, bucket, key, path, "text/csv")
    assert store.get(bucket, key) == b'"dep";"sexe"\n"01";0\n'
