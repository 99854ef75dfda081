"""Ordering of uploads: for one key, S3's sequencer decides, whatever the order of events."""

from __future__ import annotations

import io
from datetime import timedelta

import pandas as pd

from conftest import HOSP, Pipeline
from opendepot.consolidate import current_versions, select_uploads
from opendepot.contracts import UploadRecord
from opendepot.ingest import ObjectEvent
from opendepot.keys import sequencer_key
from opendepot.registry import load_registry

BODY = "dep;sexe;jour;hosp;rea;rad;dc\n75;0;2020-03-24;{hosp};1;1;1\n"


def test_sequencer_key__right_padded_so_lengths_compare():
    assert sequencer_key("005E7B6A2C8D1A2B3C") < sequencer_key("005E7B6A2C8D1A2B3D")
    assert sequencer_key("0055AED6DCD90281E5") < sequencer_key("0055AED6DCD90281E5A0")
    assert sequencer_key("0A") > sequencer_key("09FFFF")


def _event(p: Pipeline, key: str, body: bytes, sequencer: str, at) -> ObjectEvent:
    etag = p.store.put(p.settings.incoming_bucket, key, body, "text/csv")
    return ObjectEvent(p.settings.incoming_bucket, key, len(body), etag, None, sequencer, at)


def test_older_write_delivered_last__never_replaces_the_newer(pipeline):
    key = f"{HOSP}/spf/daily.csv"
    t = pipeline.now
    # S3 wrote hosp=100 (sequencer ...E5) then hosp=200 (...F0); the events arrive in the
    # opposite order, the older one with a later timestamp.
    newer = _event(pipeline, key, BODY.format(hosp=200).encode(), "0055AED6DCD90281F0", t)
    assert pipeline.ingest(newer).status == "accepted"
    pipeline.publish()
    older = _event(pipeline, key, BODY.format(hosp=100).encode(), "0055AED6DCD90281E5",
                   t + timedelta(seconds=3))
    assert pipeline.ingest(older).status == "accepted"  # valid, but superseded for its key
    out = pipeline.publish()
    assert not out.created
    dep = pd.read_csv(io.BytesIO(pipeline.published(f"{HOSP}/latest/{HOSP}-dep.csv")), sep=";")
    assert dep.hosp.tolist() == [200]


def record(key: str, sequencer: str, upload_id: str, received_at: str) -> UploadRecord:
    return UploadRecord.from_json({
        "key": key, "bucket": "in", "version_id": None, "etag": "e", "sequencer": sequencer,
        "received_at": received_at, "size": 1, "upload_id": upload_id, "dataset": HOSP,
        "producer": "spf", "rows": 1, "areas": 1, "sha256": "s", "bytes": 1,
        "report_key": "r", "staged_key": "s"})


def test_current_versions__one_record_per_key_by_sequencer():
    records = [record("a", "10", "2", "2"), record("a", "0F", "3", "3"), record("b", "01", "1", "1")]
    assert sorted(r.upload_id for r in current_versions(records)) == ["1", "2"]
    ds = load_registry().get(HOSP)
    assert [r.upload_id for r in select_uploads(ds, records)] == ["2"]


def test_without_sequencers__the_later_arrival_of_a_key_is_current():
    """moto's events carry no sequencer: the arrival time (milliseconds) decides, never the
    upload id's hash."""
    records = [record("a", "", "20260101T000000Z-ffff", "2026-01-01T00:00:00.100Z"),
               record("a", "", "20260101T000000Z-0000", "2026-01-01T00:00:00.900Z")]
    assert [r.upload_id for r in current_versions(records)] == ["20260101T000000Z-0000"]
