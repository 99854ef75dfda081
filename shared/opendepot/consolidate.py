"""Which staged uploads make a publication, and in which order.

``select_uploads`` keeps the current write of every key, then each ``snapshot`` producer's newest
upload and every upload of an ``append`` producer, oldest first (``upload_order``): on a repeated
primary key the newest upload's row wins when the publication consolidates them
(``opendepot.partitions.consolidate_part``). Roll-ups and the source-priority table are in
``opendepot.rollup``; cutting a publication into parts in ``opendepot.partitions``; the path that
renders a publication in ``opendepot.levels``.
"""

from __future__ import annotations

from collections.abc import Sequence

from opendepot.contracts import UploadRecord
from opendepot.keys import sequencer_key
from opendepot.registry import Dataset


def upload_order(record: UploadRecord) -> tuple[str, str, str]:
    """Sort key of uploads, oldest first: arrival time, then S3 sequencer, then id."""
    return (record.received_at, sequencer_key(record.sequencer), record.upload_id)


def write_order(record: UploadRecord) -> tuple[str, str, str]:
    """Sort key of the writes of one incoming key, oldest first: S3 sequencer, then arrival
    time, then id."""
    return (sequencer_key(record.sequencer), record.received_at, record.upload_id)


def current_versions(records: Sequence[UploadRecord]) -> list[UploadRecord]:
    """Drop every upload superseded by a later write of the same key.

    For one key, S3's ``sequencer`` orders writes (compared right-padded with zeros), whatever
    the order in which the events arrived or their timestamps.
    """
    newest: dict[str, UploadRecord] = {}
    for r in records:
        seen = newest.get(r.key)
        # without a sequencer (moto's events carry none) the arrival time decides
        if seen is None or write_order(r) > write_order(seen):
            newest[r.key] = r
    return list(newest.values())


def select_uploads(dataset: Dataset, records: Sequence[UploadRecord]) -> list[UploadRecord]:
    """The uploads a publication is made of, oldest first.

    Older writes of a key are dropped first (``current_versions``); then ``snapshot``: each
    producer's newest upload (it is that producer's full history); ``append``: every upload.
    """
    ordered = sorted(current_versions(records), key=upload_order)
    keep: dict[tuple[str, str], UploadRecord] = {}
    for r in ordered:  # snapshot producers: the newest upload replaces the older ones
        snapshot = dataset.mode_of(r.producer) == "snapshot"
        keep[(r.producer, "" if snapshot else r.upload_id)] = r
    return sorted(keep.values(), key=upload_order)
