"""The one publication path (``opendepot.levels``, step 3 of ``publish_dataset``) against the
plain whole-table oracle (``tests/publish_oracle.py``: every upload read whole, Arrow's
``group_by`` for the newest row of each key and for the roll-ups, each level written in one piece).

Real files go through ingest and publish (in-memory store) with production's tuning (the real
files make one part) and with tiny parts (``TINY``: ~23 parts of the real hospital file); both
publications must have the same CSV bytes, Parquet tables and manifest figures, and each must be
the oracle's, computed from the same staged uploads. Published values are also checked against
the source files and INSEE's own COG file, read here independently."""

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
from publish_oracle import render_whole

from bench.workloads import read_grid, write_scaled
from conftest import HOSP
from opendepot import feeds
from opendepot.config import Settings
from opendepot.consolidate import select_uploads
from opendepot.ingest import ObjectEvent, ingest
from opendepot.levels import Levels, Tuning, plan, render_levels, whole_table_needed
from opendepot.partitions import Upload, key_counts, plan_partitions
from opendepot.publication import TUNING, publish_dataset, put_immutable, staged_records
from opendepot.registry import (
    Dataset,
    Registry,
    load_cog,
    load_descriptor,
    load_registry,
    parse_dataset,
)
from opendepot.storage import MemoryQueue, MemoryStore, PreconditionFailed
from test_datasets_hospital import upload_name
from test_real_hospital import publication_order

NEW = "donnees-hospitalieres-covid19-2021-03-17-17h03.csv"
LEVELS = ("dep", "reg", "fra")
TINY = Tuning(partition_rows=5_000, batch_rows=7_000)
"""Many parts on the real file: ~23 parts of ~5,000 rows, read 7,000 at a time."""
CC = "chiffres-cles"


def append_mode() -> Dataset:
    """The hospital dataset as an ``append`` dataset: uploads revise rows on the primary key."""
    descriptor = load_descriptor(HOSP)
    descriptor["mode"] = "append"
    return parse_dataset(descriptor)


@dataclass
class Published:
    """The buckets after uploads were ingested and published in turn."""

    store: MemoryStore
    settings: Settings
    registry: Registry
    tuning: Tuning
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

    def row_groups(self, level: str, dataset: str = HOSP) -> int:
        """Row groups of a level's Parquet file: one per part written (parts < 1 M rows)."""
        return pq.ParquetFile(io.BytesIO(self.file(level, "parquet", dataset))).num_row_groups

    def frame(self, level: str) -> pd.DataFrame:
        df = self.table(level).to_pandas()
        df["jour"] = df["jour"].astype(str)
        return df


def publish_all(
    datasets: Dataset | list[Dataset],
    uploads: list[tuple[str, bytes]],
    tuning: Tuning = TUNING,
) -> Published:
    """Ingest each upload (``name``, or ``dataset/producer/name``) and publish its dataset after
    each one (fixed clock: the same ids and versions in every run) with ``tuning``."""
    datasets = datasets if isinstance(datasets, list) else [datasets]
    settings = Settings(publish_queue_url="memory://publish.fifo")
    store, queue, cog = MemoryStore(), MemoryQueue(), load_cog()
    registry = Registry({ds.name: ds for ds in datasets})
    statuses = []
    now = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
    for i, (name, body) in enumerate(uploads, 1):
        key = name if "/" in name else f"{datasets[0].name}/spf/{name}"
        etag = store.put(settings.incoming_bucket, key, body, "text/csv")
        now += timedelta(minutes=1)
        event = ObjectEvent(settings.incoming_bucket, key, len(body), etag, f"v{i}",
                            f"{i:016X}", now)
        statuses.append(ingest(store, queue, settings, registry, cog, event).status)
        dataset = registry.get(key.split("/", 1)[0])
        publish_dataset(store, settings, registry, cog, dataset, now + timedelta(seconds=5),
                        tuning=tuning)
    return Published(store, settings, registry, tuning, statuses)


def assert_same_publication(
    cut: Published, reference: Published, dataset: str = HOSP, levels: tuple[str, ...] = LEVELS
) -> None:
    """Same CSV bytes and Parquet tables per level, same rows, coverage and schemas."""
    for level in levels:
        assert cut.file(level, "csv", dataset) == reference.file(level, "csv", dataset), level
        a, b = cut.table(level, dataset), reference.table(level, dataset)
        assert a.schema == b.schema and a.equals(b), level
    s, r = cut.manifest_of(dataset), reference.manifest_of(dataset)
    for k in ("rows", "temporal_coverage", "schemas", "uploads", "version"):
        assert s[k] == r[k], k
    for res in s["resources"]:  # each file is what the manifest says it is
        body = cut.object(res["path"])
        assert (len(body), hashlib.sha256(body).hexdigest()) == (res["bytes"], res["sha256"])
        assert cut.object(res["latest_path"]) == body


def staged_uploads(published: Published, dataset: Dataset, directory: Path) -> list[Upload]:
    """The uploads the dataset's last publication was made of, downloaded into ``directory``."""
    directory.mkdir()
    records = staged_records(published.store, published.settings, dataset.name)
    uploads = []
    for i, r in enumerate(select_uploads(dataset, records)):
        path = directory / f"{i}.parquet"
        path.write_bytes(published.store.get(published.settings.internal_bucket, r.staged_key))
        uploads.append(Upload(path, r.producer, r.upload_id, r.rows))
    return uploads


def assert_oracle_publication(
    published: Published, name: str, tmp_path: Path, tuning: Tuning | None = None
) -> Levels:
    """The dataset's last publication re-rendered from its staged uploads by the production
    path (with ``tuning``, else the publication's) and by the oracle: the same files, schemas,
    rows and coverage; and the production files are the published ones. Returns production's."""
    dataset, cog = published.registry.get(name), load_cog()
    assert dataset is not None
    fed = feeds.resolve(published.store, published.settings.published_bucket, dataset)
    (tmp_path / "got").mkdir(parents=True)
    (tmp_path / "want").mkdir()
    got = render_levels(dataset, staged_uploads(published, dataset, tmp_path / "a"), fed, cog,
                        tmp_path / "got", tuning or published.tuning)
    want = render_whole(dataset, staged_uploads(published, dataset, tmp_path / "b"), fed, cog,
                        tmp_path / "want")
    assert [(f.name, f.rows) for f in got.files] == [(f.name, f.rows) for f in want.files]
    for g, w in zip(got.files, want.files, strict=True):
        if g.format == "csv":
            assert g.path.read_bytes() == w.path.read_bytes(), g.name
        else:
            a, b = pq.read_table(g.path), pq.read_table(w.path)
            assert a.schema == b.schema and a.equals(b), g.name
        assert published.file(g.level, g.format, name) == g.path.read_bytes(), g.name
    assert got.schemas == want.schemas
    assert list(got.rows.items()) == list(want.rows.items())
    assert got.coverage == want.coverage
    manifest = published.manifest_of(name)
    assert (manifest["rows"], manifest["temporal_coverage"]) == (got.rows, got.coverage)
    return got


def source(path: Path) -> pd.DataFrame:
    """A real hospital file read independently: codes as text, counts as numbers."""
    df = pd.read_csv(path, sep=";", dtype=str, keep_default_na=False)
    for m in ("hosp", "rea", "rad", "dc"):
        df[m] = pd.to_numeric(df[m].replace({"NA": None, "": None}))
    return df[df["dep"] != ""]


@pytest.fixture(scope="module")
def real_hospital(real_dir: Path) -> Callable[[Tuning], Published]:
    """The real 2021-03-17 file published by the shipped registry entry, once per tuning."""
    body = (real_dir / HOSP / NEW).read_bytes()
    done: dict[Tuning, Published] = {}

    def get(tuning: Tuning) -> Published:
        if tuning not in done:
            done[tuning] = publish_all(load_registry().get(HOSP), [(NEW, body)], tuning)
            assert done[tuning].statuses == ["accepted"]
        return done[tuning]

    return get


def test_real_hospital_file__one_part_and_many_parts_publish_the_oracles_files(
    real_hospital, tmp_path: Path
):
    one, many = real_hospital(TUNING), real_hospital(TINY)
    assert many.manifest["rows"] == {"dep": 110_595, "reg": 19_710, "fra": 1_095}
    assert_same_publication(many, one)
    assert assert_oracle_publication(one, HOSP, tmp_path / "one").parts == 1
    assert assert_oracle_publication(many, HOSP, tmp_path / "many").parts == 23
    # the department level was written part by part; in one piece with production's tuning
    assert (one.row_groups("dep"), many.row_groups("dep")) == (1, 23)


def test_real_hospital_file__national_and_region_values_match_source(
    real_hospital, real_dir: Path
):
    df = source(real_dir / HOSP / NEW)
    day = df[(df["jour"] == "2021-03-17") & (df["sexe"] == "0")]
    assert len(day) == 101 and day["hosp"].notna().all()
    cog = pd.read_csv(real_dir / "cog-insee" / "departement2020.csv", dtype=str)
    idf = day[day["dep"].isin(cog.loc[cog["reg"] == "11", "dep"])]
    assert len(idf) == 8  # Paris and the seven departments around it
    for published in (real_hospital(TINY), real_hospital(TUNING)):
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


def test_append_uploads_repeating_keys__newest_upload_wins_in_every_part(
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
    many = publish_all(append_mode(), uploads, TINY)
    assert many.statuses == ["accepted"] * 3
    # (one part against the oracle: test_real_hospital_file__one_part_and_many_parts_...)
    # 334,785 rows read (before the newest row of each key is kept): 67 parts of ~5,000
    assert assert_oracle_publication(many, HOSP, tmp_path).parts == 67

    key = ["dep", "sexe", "jour"]
    real_rows = source(real_file).set_index(key)
    again_rows = real_rows.iloc[:3000]
    revised_rows = source(revised_file).set_index(key)
    assert real_rows.index.isin(revised_rows.index).all()
    dep = many.frame("dep")
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
    fra = many.frame("fra")
    row = fra[(fra["jour"] == "2021-03-17") & (fra["sexe"] == 0)]
    assert row["hosp"].tolist() == [day["hosp"].sum()]
    assert day["hosp"].sum() != real_rows.xs(last_day, level=("sexe", "jour"))["hosp"].sum()


@pytest.mark.parametrize("name", [
    "covid-hospit-incid-reg",  # regions, rolled up to the nation
    "donnees-hospitalieres-classe-age-covid19",  # regions, three key columns
    "donnees-hospitalieres-nouveaux-covid19",  # departments and day only
])
def test_hospital_family_real_files__one_part_and_many_parts_publish_the_oracles_files(
    name: str, real_dir: Path, tmp_path: Path
):
    dataset = load_registry().get(name)
    uploads = [(upload_name(p), p.read_bytes()) for p in publication_order(real_dir / name)]
    one = publish_all(dataset, uploads)
    many = publish_all(dataset, uploads, Tuning(partition_rows=3_000, batch_rows=2_500))
    assert many.statuses == one.statuses and "accepted" in many.statuses
    assert_same_publication(many, one, name, dataset.levels)
    assert assert_oracle_publication(many, name, tmp_path).parts >= 2


def test_single_first_key_value__one_part_whatever_the_tuning(real_dir: Path, tmp_path: Path):
    lines = (real_dir / HOSP / NEW).read_bytes().splitlines(keepends=True)
    paris = lines[0] + b"".join(line for line in lines[1:] if line.startswith(b'"75";'))
    tiny = publish_all(load_registry().get(HOSP), [("paris.csv", paris)],
                       Tuning(partition_rows=100, batch_rows=7_000))
    assert tiny.statuses == ["accepted"]
    assert assert_oracle_publication(tiny, HOSP, tmp_path).parts == 1  # one value of dep
    assert tiny.manifest["rows"] == {"dep": 1_095, "reg": 1_095, "fra": 1_095}


def chiffres_cles_uploads(real: Path) -> list[tuple[str, bytes]]:
    """The real hospital file (it feeds chiffres-cles), then chiffres-cles files of several
    producers: two versions of the nightly consolidated CSV (one key, a ``snapshot`` producer in
    an ``append`` dataset) and bulletins of the ministry, SPF, an ARS and a prefecture."""
    cc = real / "opencovid19-fr"
    dist = f"{CC}/opencovid19-fr/chiffres-cles.csv"
    files = [
        (f"{HOSP}/spf/{NEW}", real / HOSP / NEW),
        (dist, cc / "dist/2020-03-12_f326e5b/chiffres-cles.csv"),
        (f"{CC}/ministere-sante/2020-04-15.yaml", cc / "ministere-sante/2020-04-15.yaml"),
        (f"{CC}/sante-publique-france/2020-03-14.yaml",
         cc / "sante-publique-france/2020-03-14.yaml"),
        (f"{CC}/ars-grand-est/2020-03-10.yaml", cc / "agences-regionales-sante/grand-est/2020-03-10.yaml"),
        (f"{CC}/prefecture-02/2020-03-09.yaml", cc / "prefectures/02/2020-03-09.yaml"),
        (dist, cc / "dist/2020-04-14_98091d6/chiffres-cles.csv"),
    ]
    return [(key, path.read_bytes()) for key, path in files]


def test_chiffres_cles_with_feeds_provenance_and_priority__the_oracles_files(
    real_dir: Path, tmp_path: Path
):
    registry = load_registry()
    one = publish_all([registry.get(HOSP), registry.get(CC)], chiffres_cles_uploads(real_dir))
    assert one.statuses == ["accepted"] * 7
    # the hospital file published: chiffres-cles publishes again with its rows
    publish_dataset(one.store, one.settings, one.registry, load_cog(), registry.get(CC),
                    datetime(2026, 11, 30, tzinfo=UTC))
    # feeds, provenance and a consolidated table: the whole table, one part whatever the tuning
    got = assert_oracle_publication(one, CC, tmp_path, TINY)
    assert got.parts == 1 and list(got.rows) == ["sources", "consolide"]
    manifest = one.manifest_of(CC)
    # the manifest lists what the current version brought, then its fed version; it is made
    # of the chiffres-cles uploads a rebuild selects (opencovid19-fr's newest only) and the
    # hospital version, and every producer's rows are in the table
    assert manifest["uploads"][-1]["upload_id"].startswith(f"{HOSP}@")
    selected = select_uploads(registry.get(CC), staged_records(one.store, one.settings, CC))
    assert manifest["versions"][0]["upload_count"] == len(selected) + 1 == 6
    table = pq.read_table(io.BytesIO(one.file(registry.get(CC).geography.level, "parquet", CC)))
    assert {"sante-publique-france-donnees-hospitalieres", "opencovid19-fr",
            "ministere-sante", "prefecture-02"} <= set(table["producer"].to_pylist())
    fed = table.filter(pa.compute.equal(table["producer"],
                                        "sante-publique-france-donnees-hospitalieres"))
    # one fed row per department and day of the hospital file's totals (sexe 0)
    hosp = source(real_dir / HOSP / NEW)
    assert fed.num_rows == int((hosp["sexe"] == "0").sum()) > 0


def test_plan__datasets_needing_the_whole_table_make_one_part(real_dir: Path, tmp_path: Path):
    published = publish_all(load_registry().get(HOSP), [(NEW, (real_dir / HOSP / NEW).read_bytes())])
    uploads = staged_uploads(published, load_registry().get(HOSP), tmp_path / "staged")
    cog = load_cog()
    assert plan(load_registry().get(HOSP), uploads, cog, TINY).parts.parts == 23
    assert plan(load_registry().get(HOSP), uploads, cog, TUNING).parts.parts == 1
    schema = plan(load_registry().get(HOSP), uploads, cog, TINY).schema
    assert schema.field("hosp").type == pa.int64()
    assert not whole_table_needed(load_registry().get(HOSP), schema)
    # float sums depend on their order: never summed in parts
    floats = schema.set(schema.get_field_index("hosp"), pa.field("hosp", pa.float64()))
    assert whole_table_needed(load_registry().get(HOSP), floats)
    assert whole_table_needed(load_registry().get(CC), schema)  # feeds, provenance, priority
    appended = append_mode()
    assert plan(appended, uploads * 2, cog, TINY).parts.parts == 45  # rows of both counted


def test_plan_partitions__balanced_ranges_in_key_order(real_dir: Path, tmp_path: Path):
    table = pd.read_csv(real_dir / HOSP / NEW, sep=";", dtype=str)[["dep"]]
    path = tmp_path / "staged.parquet"
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), path)
    schema = pa.schema([("dep", pa.string())])
    counts = key_counts([path, path], schema, "dep", 7_000)
    assert counts["value"].to_pylist() == sorted(set(table["dep"]))
    assert set(counts["count"].to_pylist()) == {2 * 365 * 3}
    cut = plan_partitions("dep", counts, 50_000)
    assert cut.parts == 5 and sum(cut.rows) == 2 * 110_595
    assert max(cut.rows) - min(cut.rows) <= 2 * 365 * 3  # balanced to within one value
    assert list(cut.part_of) == sorted(cut.part_of)  # ranges, in key order
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
    with pytest.raises(OSError, match="connection reset"):
        publish_dataset(store, settings, registry, cog, registry.get(HOSP), now, tuning=TINY)
    assert list(tmp_path.iterdir()) == []
    assert store.head(settings.published_bucket, f"{HOSP}/manifest.json") is None


def test_version_file_from_disk__retry_with_same_bytes_passes_other_bytes_fail(tmp_path: Path):
    store, bucket, key = MemoryStore(), "published", f"{HOSP}/v1/{HOSP}-dep.csv"
    path = tmp_path / "dep.csv"
    path.write_bytes(b'"dep";"sexe"\n"01";0\n')
    put_immutable(store, bucket, key, path, "text/csv")
    put_immutable(store, bucket, key, path, "text/csv")  # a retry after a crash
    path.write_bytes(b'"dep";"sexe"\n"02";0\n')
    with pytest.raises(PreconditionFailed):
        put_immutable(store, bucket, key, path, "text/csv")
    assert store.get(bucket, key) == b'"dep";"sexe"\n"01";0\n'

