"""The shrink guard is on by default for every dataset with a snapshot producer (issue 13,
item 7): a valid 27-row file no longer replaces the 110,595-row history of the flagship hospital
stock dataset; it is held with a report naming the loss and the name to confirm it under. A
dataset opts out only with a reason, and the registry refuses an opt-out without one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from conftest import HOSP, REAL, Pipeline
from opendepot.config import Settings
from opendepot.ingest import IngestOutcome, ObjectEvent, ingest
from opendepot.publication import PublishOutcome, publish_dataset
from opendepot.registry import (
    Registry,
    RegistryError,
    ShrinkGuard,
    load_cog,
    load_descriptor,
    load_registry,
    parse_dataset,
)
from opendepot.specs import DEFAULT_MAX_LOSS_PERCENT
from opendepot.storage import MemoryQueue, MemoryStore

FULL = REAL / HOSP / "donnees-hospitalieres-covid19-2021-03-17-17h03.csv"
FLOW = "donnees-hospitalieres-nouveaux-covid19"
OFF = "a test dataset whose producer sends one department per file"


def first_rows(path, n: int) -> bytes:
    """The header and the first ``n`` data rows of a real file, bytes as written."""
    lines = path.read_bytes().splitlines(keepends=True)
    return b"".join(lines[: n + 1])


@dataclass
class RegistryPipeline(Pipeline):
    """The in-memory pipeline over a given registry (a variant of a shipped descriptor)."""

    registry: Registry | None = None

    def ingest(self, event: ObjectEvent) -> IngestOutcome:
        registry = self.registry or load_registry()
        return ingest(self.store, self.queue, self.settings, registry, load_cog(), event)

    def publish(self, dataset: str = HOSP) -> PublishOutcome:
        registry = self.registry or load_registry()
        ds = registry.get(dataset)
        assert ds is not None
        return publish_dataset(self.store, self.settings, registry, load_cog(), ds, self.now)


def pipeline_over(registry: Registry | None) -> RegistryPipeline:
    return RegistryPipeline(MemoryStore(), MemoryQueue(), Settings(publish_queue_url="q"),
                            datetime(2026, 11, 29, tzinfo=UTC), registry=registry)


@dataclass
class Run:
    full: IngestOutcome
    first: PublishOutcome
    small: IngestOutcome
    after: PublishOutcome
    confirmed: IngestOutcome | None = None
    last: PublishOutcome | None = None


def run_table_row(p: RegistryPipeline, *, confirm: bool) -> Run:
    full = p.drop(f"{HOSP}/spf/{FULL.name}", FULL.read_bytes())
    first = p.publish()
    small = p.drop(f"{HOSP}/spf/hospit-27.csv", first_rows(FULL, 27))
    out = Run(full, first, small, p.publish())
    if confirm:
        out.confirmed = p.drop(f"{HOSP}/spf/hospit-27.confirm.csv", first_rows(FULL, 27))
        out.last = p.publish()
    return out


@pytest.fixture(scope="module")
def guarded() -> Run:
    return run_table_row(pipeline_over(None), confirm=True)


@pytest.fixture(scope="module")
def opted_out() -> Run:
    d = load_descriptor(HOSP)
    d["shrinkGuard"] = {"off": OFF}
    registry = Registry({**load_registry().datasets, HOSP: parse_dataset(d)})
    return run_table_row(pipeline_over(registry), confirm=False)


def test_hospital_stock__guarded_by_default_with_no_guard_declared():
    assert "shrinkGuard" not in load_descriptor(HOSP)
    assert "shrinkGuard" not in load_descriptor(FLOW)
    default = ShrinkGuard(DEFAULT_MAX_LOSS_PERCENT, DEFAULT_MAX_LOSS_PERCENT)
    assert load_registry().get(HOSP).shrink_guard == default == ShrinkGuard(50, 50)
    assert load_registry().get(FLOW).shrink_guard == default


def test_27_row_file_after_the_full_history__held_naming_the_loss_and_how_to_confirm(guarded):
    assert guarded.full.status == "accepted"
    assert guarded.first.rows["dep"] == 110595
    held = guarded.small
    assert held.status == "held"
    assert held.report["opendepot"]["status"] == "held"
    assert held.report["opendepot"]["rows_published"] == 27  # valid: held, not rejected
    (shrink,) = held.report["tasks"][0]["errors"]
    assert shrink["type"] == "snapshot-shrink"
    assert shrink["message"].startswith(
        f"this upload has 27 rows, 99% fewer than the 110595 of the previous upload "
        f"({HOSP}/spf/{FULL.name}, ")
    assert "more than the 50% the dataset allows, so it is held, not published" in (
        shrink["message"])
    assert shrink["message"].endswith(
        "upload it again with '.confirm' before the extension: hospit-27.confirm.csv")
    assert held.message == shrink["message"]
    # nothing new staged: the history stays published
    assert not guarded.after.created and guarded.after.rows["dep"] == 110595


def test_held_file__published_when_uploaded_under_the_confirm_name(guarded):
    assert guarded.confirmed is not None and guarded.confirmed.status == "accepted"
    assert guarded.last is not None and guarded.last.created
    assert guarded.last.rows["dep"] == 27


def test_opted_out_dataset__publishes_the_27_row_file(opted_out):
    assert opted_out.full.status == "accepted" and opted_out.first.rows["dep"] == 110595
    assert opted_out.small.status == "accepted"
    assert opted_out.small.report["tasks"][0]["errors"] == []
    assert opted_out.after.created and opted_out.after.rows["dep"] == 27


def _refused(guard: object) -> str:
    d = load_descriptor(HOSP)
    d["shrinkGuard"] = guard
    with pytest.raises(RegistryError) as caught:
        parse_dataset(d)
    return str(caught.value)


def test_opt_out__needs_a_reason_and_no_limits():
    d = load_descriptor(HOSP)
    d["shrinkGuard"] = {"off": f"  {OFF} "}
    assert parse_dataset(d).shrink_guard == ShrinkGuard(None, None, off_reason=OFF)
    assert not parse_dataset(d).shrink_guard.on
    expected = (f"{HOSP}.json: shrinkGuard.off: expected the reason the dataset opts out of "
                "the shrink guard, got ''")
    assert _refused({"off": ""}) == expected
    assert _refused({"off": "   "}) == expected
    assert _refused({"off": True}) == f"{HOSP}.json: shrinkGuard.off: expected text, got True"
    assert _refused({"off": OFF, "maxRowLossPercent": 20}) == (
        f"{HOSP}.json: shrinkGuard.maxRowLossPercent: the guard is off; a limit is meaningless "
        "beside 'off'")


def test_limits__a_declared_one_replaces_its_default_only_and_stays_within_0_100():
    d = load_descriptor(HOSP)
    d["shrinkGuard"] = {"maxRowLossPercent": 100}  # rows never held, areas still guarded
    assert parse_dataset(d).shrink_guard == ShrinkGuard(100, 50)
    assert _refused({"maxRowLossPercent": 150}) == (
        f"{HOSP}.json: shrinkGuard.maxRowLossPercent: expected at most 100, got 150")
    assert _refused({"maxAreaLossPercent": -1}) == (
        f"{HOSP}.json: shrinkGuard.maxAreaLossPercent: expected at least 0, got -1")


def test_append_only_dataset__has_no_guard_and_may_not_declare_one():
    d = load_descriptor(HOSP)
    d["mode"] = "append"
    assert parse_dataset(d).shrink_guard is None
    d["shrinkGuard"] = {"maxRowLossPercent": 20}
    with pytest.raises(RegistryError) as caught:
        parse_dataset(d)
    assert str(caught.value) == (f"{HOSP}.json: shrinkGuard: no producer of this dataset is a "
                                 "snapshot (mode, producerModes): the guard would never act")


def test_every_shipped_snapshot_dataset__has_a_guard_or_a_reason():
    guarded, opted_out, unguarded = {}, {}, []
    for ds in load_registry():
        snapshot = [p for p in ds.producers if ds.mode_of(p) == "snapshot"]
        assert snapshot, ds.name  # every shipped dataset has a snapshot producer
        guard = ds.shrink_guard
        assert guard is not None, ds.name
        if guard.on:
            limits = (guard.max_row_loss_percent, guard.max_area_loss_percent)
            assert all(x is not None and 0 <= x <= 100 for x in limits), ds.name
            guarded[ds.name] = limits
        elif guard.off_reason and guard.off_reason.strip():
            opted_out[ds.name] = guard.off_reason
        else:
            unguarded.append(ds.name)
    assert unguarded == []
    assert opted_out == {}  # none opts out: see docs/design.md, "Shrink guard"
    assert len(guarded) == 18
    assert guarded[HOSP] == guarded[FLOW] == (50, 50)
    assert guarded["sp-pos-quot-dep"] == (20, 5)
    assert guarded["chiffres-cles"] == (20, 50)  # its snapshot producer: opencovid19-fr
