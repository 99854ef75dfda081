"""Incremental publication (issue 14, item 1): an ``append`` dataset's new version is built from
the previous version's table plus the uploads since, and that gives the same published files as
a build from every upload. Real files: the chiffres-cles bulletins of four producers, the
nightly consolidated CSV of OpenCOVID19-fr (a ``snapshot`` producer inside the ``append``
dataset) and the hospital file that feeds it."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from opendepot import layout
from opendepot.config import Settings
from opendepot.contracts import UploadRecord
from opendepot.ingest import ObjectEvent, ingest
from opendepot.publication import PublishOutcome, publish_dataset
from opendepot.registry import Registry, load_cog, load_registry
from opendepot.storage import MemoryQueue, MemoryStore
from opendepot.upload_index import UploadIndex, fold, take_in
from opendepot.upload_index import read as read_index

HOSP, CC = "donnees-hospitalieres-covid19", "chiffres-cles"
HOSP_FILES = ("donnees-hospitalieres-covid19-2020-11-07-19h00.csv",
              "donnees-hospitalieres-covid19-2021-03-17-17h03.csv")
START = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Step:
    """One upload: its incoming key, the real file, and how many minutes after START S3 says
    it arrived (a late upload arrives before one already published)."""

    key: str
    path: Path
    minute: int


def steps(real: Path) -> list[Step]:
    """A day-by-day life of chiffres-cles from real files: bulletins (append), two nightly
    builds (snapshot), a new hospital version (a feed), a bulletin re-sent under its key with
    other content (a rewrite), and a ministry bulletin that S3 received before the previous
    one (late)."""
    cc = real / "opencovid19-fr"
    dist = f"{CC}/opencovid19-fr/chiffres-cles.csv"
    ms, spf = cc / "ministere-sante", cc / "sante-publique-france"
    return [
        Step(f"{HOSP}/spf/{HOSP_FILES[0]}", real / HOSP / HOSP_FILES[0], 1),
        Step(f"{CC}/sante-publique-france/2020-01-24.yaml", spf / "2020-01-24.yaml", 2),
        Step(f"{CC}/prefecture-02/2020-03-09.yaml", cc / "prefectures/02/2020-03-09.yaml", 3),
        Step(f"{CC}/ars-grand-est/2020-03-10.yaml",
             cc / "agences-regionales-sante/grand-est/2020-03-10.yaml", 4),
        Step(dist, cc / "dist/2020-03-12_f326e5b/chiffres-cles.csv", 5),
        Step(f"{CC}/sante-publique-france/2020-03-14.yaml", spf / "2020-03-14.yaml", 6),
        Step(f"{CC}/ministere-sante/2020-04-15.yaml", ms / "2020-04-15.yaml", 7),
        Step(dist, cc / "dist/2020-04-14_98091d6/chiffres-cles.csv", 8),
        Step(f"{HOSP}/spf/{HOSP_FILES[1]}", real / HOSP / HOSP_FILES[1], 9),
        Step(f"{CC}/ministere-sante/2020-11-02.yaml", ms / "2020-11-02.yaml", 10),
        # the SPF bulletin of 14 March re-sent under the key of the one of 24 January
        Step(f"{CC}/sante-publique-france/2020-01-24.yaml", spf / "2020-03-14.yaml", 11),
        Step(f"{CC}/ministere-sante/2021-02-19.yaml", ms / "2021-02-19.yaml", 12),
        # received before the 2021-02-19 bulletin published at minute 12
        Step(f"{CC}/ministere-sante/2020-04-15-bis.yaml", ms / "2020-04-15.yaml", 11),
    ]


class Pipeline:
    """A store, a queue and the registry; ``drop`` ingests one step's upload."""

    def __init__(self) -> None:
        self.settings = Settings(publish_queue_url="memory://publish.fifo")
        self.store, self.queue, self.cog = MemoryStore(), MemoryQueue(), load_cog()
        registry = load_registry()
        self.registry = Registry({n: registry.get(n) for n in (HOSP, CC)})
        self.count = 0

    def drop(self, step: Step) -> str:
        body = step.path.read_bytes()
        etag = self.store.put(self.settings.incoming_bucket, step.key, body, "text/csv")
        self.count += 1
        event = ObjectEvent(self.settings.incoming_bucket, step.key, len(body), etag,
                            f"v{self.count}", f"{self.count:016X}",
                            START + timedelta(minutes=step.minute))
        return ingest(self.store, self.queue, self.settings, self.registry, self.cog,
                      event).status

    def publish(self, dataset: str, minute: int) -> PublishOutcome:
        return publish_dataset(self.store, self.settings, self.registry, self.cog,
                               self.registry.get(dataset),
                               START + timedelta(minutes=minute, seconds=30))

    def latest(self, level: str, fmt: str) -> bytes:
        return self.store.get(self.settings.published_bucket, f"{CC}/latest/{CC}-{level}.{fmt}")


@pytest.fixture(scope="module")
def lives(real_dir: Path) -> Iterator[tuple[Pipeline, list[PublishOutcome], Pipeline]]:
    """(the pipeline publishing after every upload, its chiffres-cles outcomes, the pipeline
    publishing chiffres-cles once after every upload)."""
    daily, once, outcomes = Pipeline(), Pipeline(), []
    for i, step in enumerate(steps(real_dir)):
        assert daily.drop(step) == once.drop(step) == "accepted", step
        dataset = step.key.split("/", 1)[0]
        outcome = daily.publish(dataset, 20 + i)
        if dataset == HOSP:
            once.publish(HOSP, 20 + i)
            outcome = daily.publish(CC, 20 + i)  # its dependent, as the publish function asks
        outcomes.append(outcome)
    once.publish(CC, 60)
    yield daily, outcomes, once


def test_daily_publications__most_built_from_the_previous_version(lives):
    _, outcomes, _ = lives
    reasons = [o.full_build_reason for o in outcomes]
    assert not outcomes[0].created  # the hospital file first: nothing staged for chiffres-cles
    assert all(o.created for o in outcomes[1:])
    assert reasons[1] == "no append upload folded yet"  # the first bulletin
    # bulletins, nightly builds (their rows replace the producer's) and the new hospital version
    assert [i for i, r in enumerate(reasons) if r is None][1:] == [2, 3, 4, 5, 6, 7, 8, 9, 11]
    assert outcomes[8].upload_ids == (f"{HOSP}@2026-11-29-08h28m30s",)  # the feed alone
    assert reasons[10] == (f"{CC}/sante-publique-france/2020-01-24.yaml rewritten after it "
                           "was published")
    assert reasons[12] == "an upload of ministere-sante arrived after a newer one was published"


@pytest.mark.parametrize("level", ["sources", "consolide"])
def test_incremental_versions__same_files_as_one_build_from_every_upload(lives, level):
    daily, _, once = lives
    assert daily.latest(level, "csv") == once.latest(level, "csv")
    a = pq.read_table(io.BytesIO(daily.latest(level, "parquet")))
    b = pq.read_table(io.BytesIO(once.latest(level, "parquet")))
    assert a.schema == b.schema and a.equals(b)
    assert a.num_rows > 1000  # the nightly build's rows are there


def test_after_folding__index_holds_each_snapshot_producer_once_and_nothing_pending(lives):
    daily, _, _ = lives
    index, _ = read_index(daily.store, daily.settings, CC)
    assert index is not None and index.pending == ()
    assert list(index.snapshot) == ["opencovid19-fr"]
    # the second nightly build replaced the first, the rewrite replaced the January bulletin
    assert index.snapshot["opencovid19-fr"].received_at.startswith("2026-11-29T08:08")
    assert index.folded_count == 8  # 9 bulletin uploads, one key written twice
    staged = {o.key for o in daily.store.list(daily.settings.internal_bucket, f"staging/{CC}/")}
    # staged copies of the first nightly build and of the rewritten bulletin expired
    assert len([k for k in staged if k.endswith(".parquet")]) == 8 + 1


def test_daily_and_once__same_rows_left_out_in_the_manifest(lives):
    daily, _, once = lives
    key = f"{CC}/manifest.json"
    a, b = (json.loads(p.store.get(p.settings.published_bucket, key)) for p in (daily, once))
    assert a["rows_left_out"] == b["rows_left_out"] > 0  # the nightly builds' bad rows


def record(key: str, upload_id: str, minute: int, left_out: int) -> UploadRecord:
    """An append bulletin's upload record (only ids, orders and counts matter to the index)."""
    return UploadRecord(
        key=key, bucket="incoming", version_id=None, etag="e", sequencer=f"{minute:016X}",
        received_at=f"2026-11-29T08:{minute:02d}:00.000Z", size=1, upload_id=upload_id,
        dataset=CC, producer="ministere-sante", rows=3, rows_left_out=left_out, areas=1,
        sha256="0" * 64, bytes=1, report_key=f"reports/{CC}/ministere-sante/{upload_id}.json",
        staged_key=f"staging/{CC}/ministere-sante/{upload_id}.parquet")


def test_fold__a_rewritten_key_counts_only_its_current_write_left_out_rows():
    dataset = load_registry().get(CC)
    key = f"{CC}/ministere-sante/2020-04-15.yaml"
    first, second = record(key, "u1", 1, 7), record(key, "u2", 2, 0)
    index = UploadIndex(CC, pending=(first,))
    index = fold(index, dataset, "2026-11-29-08h01m30s", ["u1"]).index
    assert index.folded_rows_left_out == 7
    folded = fold(take_in(index, [second]), dataset, "2026-11-29-08h02m30s", ["u2"])
    assert folded.index.folded_rows_left_out == 0
    assert [r.upload_id for r in folded.expired] == ["u1"]
    again = UploadIndex.from_json(json.loads(json.dumps(folded.index.to_json())))
    assert again == folded.index  # rows left out of each key survive the round trip


def test_snapshot_uploads_replaced__staged_copies_written_down_then_deleted_by_the_next_one(
    pipeline, real_dir: Path,
):
    """An older snapshot upload's staged copies are named in the index by the fold that
    supersedes it (``expiring``) and deleted by the next publication, after its own switch: a
    crash between a switch and the deletions loses none of them."""
    raw = (real_dir / HOSP / HOSP_FILES[0]).read_bytes()
    lines = raw.split(b"\n")
    days = [lines[0] + b"\n" + b"\n".join(lines[1:1 + n]) + b"\n" for n in (300, 600, 900)]
    staged: list[str] = []
    for i, body in enumerate(days):
        out = pipeline.drop(f"{HOSP}/spf/day-{i}.csv", body)
        assert pipeline.publish(HOSP).created
        assert out.upload_id is not None
        staged.append(layout.staged_parquet_key(HOSP, "spf", out.upload_id))
    index, _ = read_index(pipeline.store, pipeline.settings, HOSP)
    assert index is not None and index.snapshot["spf"].staged_key == staged[2]
    kept = {o.key for o in pipeline.store.list(pipeline.settings.internal_bucket,
                                               f"staging/{HOSP}/") if o.key.endswith(".parquet")}
    # day 0 went at the third publication; day 1, superseded by it, is written down for the next
    assert staged[0] not in kept and {staged[1], staged[2]} <= kept
    assert staged[1] in index.expiring and staged[0] not in index.expiring
