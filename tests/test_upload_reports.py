"""Every upload gets a report, even one that can never be processed: the object (or its
version) gone before it is read is a rejection (``object-gone``); an infrastructure failure is
retried, and on the queue's last receive the validate function writes a failure report (status
``failed``, ``processing-failed``) then fails the message all the same, so it reaches the
dead-letter queue. A redriven upload is validated again and its report replaces the failure
report (a failure report does not make it a duplicate). Held uploads are logged at WARNING."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from botocore.exceptions import ClientError
from moto import mock_aws

from conftest import HOSP, REAL, need
from opendepot import layout, runtime
from opendepot.config import Settings
from opendepot.failures import is_infrastructure
from opendepot.ingest import IngestOutcome, ObjectEvent, ingest, report_failure
from opendepot.registry import load_cog, load_registry
from opendepot.storage import MemoryQueue, MemoryStore, NotFound, S3Store, Store
from test_index_api import LambdaContext as Context

ROOT = Path(__file__).resolve().parents[1]
KEY = f"{HOSP}/spf/C10-duplicate-delivery-object.csv"
T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
SETTINGS = Settings(publish_queue_url="memory://publish.fifo")
FRA = "sp-pos-quot-fra"
FRA_FILE = REAL / FRA / "paugier-mirror" / "2022-03-21_194f6d9" / "sp-pos-quot-france.csv"


def event_for(key: str, body: bytes, etag: str, version: str | None, n: int = 1) -> ObjectEvent:
    return ObjectEvent(SETTINGS.incoming_bucket, key, len(body), etag, version, f"{n:016X}", T0)


def run_ingest(store: Store, event: ObjectEvent, queue: MemoryQueue | None = None
               ) -> IngestOutcome:
    return ingest(store, queue or MemoryQueue(), SETTINGS, load_registry(), load_cog(), event)


def stored_report(store: Store, out: IngestOutcome) -> dict[str, Any]:
    assert out.report_key is not None
    report: dict[str, Any] = json.loads(store.get(SETTINGS.internal_bucket, out.report_key))
    return report


class Failing:
    """A store whose ``method`` raises ``error`` on ``bucket`` until ``fixed``."""

    def __init__(self, inner: Store, method: str, bucket: str, error: Exception) -> None:
        self.inner, self.method, self.bucket, self.error = inner, method, bucket, error
        self.fixed = False

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if name != self.method:
            return target

        def call(bucket: str, *args: Any, **kwargs: Any) -> Any:
            if bucket == self.bucket and not self.fixed:
                raise self.error
            return target(bucket, *args, **kwargs)

        return call


# ------------------------------------------------------------------------ object or version gone


def test_object_deleted_before_read__rejected_with_an_object_gone_report(cases_dir):
    store = MemoryStore()
    body = (cases_dir / "C10-duplicate-delivery-object.csv").read_bytes()
    etag = store.put(SETTINGS.incoming_bucket, KEY, body, "text/csv")
    store.delete(SETTINGS.incoming_bucket, KEY)  # the producer deleted it before we read it
    queue = MemoryQueue()

    out = run_ingest(store, event_for(KEY, body, etag, None), queue)

    assert out.status == "rejected"
    report = stored_report(store, out)
    (error,) = report["tasks"][0]["errors"]
    assert error["type"] == "object-gone" and error["title"] == "Object Gone"
    assert error["message"] == (
        f"s3://{SETTINGS.incoming_bucket}/{KEY} was gone when opendepot came to read it: it "
        "was deleted (or that version removed) after the upload, so nothing was read, validated "
        "or published. If the file should be published, upload it again.")
    assert report["opendepot"]["status"] == "rejected"
    assert report["opendepot"]["rejection"] == error["message"]
    assert report["opendepot"]["checksum"] is None
    assert queue.sent == []
    assert store.list(SETTINGS.internal_bucket, layout.STAGING) == []
    # a redelivery of the same notification is a duplicate: the report is final
    assert run_ingest(store, event_for(KEY, body, etag, None)).status == "duplicate"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "eu-west-3"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("s3")
        for b in (SETTINGS.incoming_bucket, SETTINGS.internal_bucket):
            client.create_bucket(Bucket=b,
                                 CreateBucketConfiguration={"LocationConstraint": "eu-west-3"})
        client.put_bucket_versioning(Bucket=SETTINGS.incoming_bucket,
                                     VersioningConfiguration={"Status": "Enabled"})
        yield client


@pytest.fixture(params=["s3", "memory"])
def versioned(request: pytest.FixtureRequest) -> Iterator[Store]:
    """A store whose incoming bucket keeps versions: S3Store on moto, or MemoryStore."""
    if request.param == "memory":
        yield MemoryStore(versioned=True)
        return
    yield S3Store(request.getfixturevalue("s3"))


def test_version_removed__both_stores_answer_not_found_and_the_upload_is_gone(
    versioned: Store, cases_dir: Path
):
    body = (cases_dir / "C10-duplicate-delivery-object.csv").read_bytes()
    b = SETTINGS.incoming_bucket
    etag = versioned.put(b, KEY, body, "text/csv")
    first = versioned.head(b, KEY)
    assert first is not None and first.version_id is not None
    versioned.put(b, KEY, body + b"75;1;2020-03-25;1;1;1;1\n", "text/csv")  # a second version
    if isinstance(versioned, S3Store):
        boto3.client("s3").delete_object(Bucket=b, Key=KEY, VersionId=first.version_id)
    else:
        assert isinstance(versioned, MemoryStore)
        versioned.delete(b, KEY, version_id=first.version_id)

    with pytest.raises(NotFound, match=f"version {first.version_id}"):
        versioned.get(b, KEY, version_id=first.version_id)
    assert versioned.head(b, KEY, version_id=first.version_id) is None
    current = versioned.head(b, KEY)
    assert current is not None and current.size == len(body) + 24  # the second one is current

    out = run_ingest(versioned, event_for(KEY, body, etag, first.version_id))

    assert out.status == "rejected"
    report = stored_report(versioned, out)
    (error,) = report["tasks"][0]["errors"]
    assert error["type"] == "object-gone"
    assert error["message"].startswith(
        f"s3://{b}/{KEY} (version {first.version_id}) was gone when opendepot came to read it")
    assert error["note"] == f"s3://{b}/{KEY} (version {first.version_id})"


class DeletedWhileReading:
    """The object exists at ``head`` and is gone at ``get_file`` (deleted in between)."""

    def __init__(self, inner: MemoryStore) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def get_file(self, bucket: str, key: str, out: Any, *, version_id: str | None = None) -> int:
        self.inner.delete(bucket, key)
        return self.inner.get_file(bucket, key, out, version_id=version_id)


def test_object_deleted_between_head_and_read__also_gone(cases_dir):
    memory = MemoryStore()
    body = (cases_dir / "C10-duplicate-delivery-object.csv").read_bytes()
    etag = memory.put(SETTINGS.incoming_bucket, KEY, body, "text/csv")
    out = run_ingest(DeletedWhileReading(memory), event_for(KEY, body, etag, "v1"))
    assert out.status == "rejected"
    assert [e["type"] for e in stored_report(memory, out)["tasks"][0]["errors"]] == [
        "object-gone"]


def test_access_denied__an_infrastructure_failure_retried_not_a_report(cases_dir):
    memory = MemoryStore()
    body = (cases_dir / "C10-duplicate-delivery-object.csv").read_bytes()
    etag = memory.put(SETTINGS.incoming_bucket, KEY, body, "text/csv")
    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}},
                         "GetObject")
    store = Failing(memory, "get_file", SETTINGS.incoming_bucket, denied)

    with pytest.raises(ClientError) as raised:
        run_ingest(store, event_for(KEY, body, etag, "v1"))

    assert is_infrastructure(raised.value)
    assert memory.list(SETTINGS.internal_bucket, layout.REPORTS) == []
    store.fixed = True  # the policy fixed: the retry validates it
    assert run_ingest(store, event_for(KEY, body, etag, "v1")).status == "accepted"


# ------------------------------------------------------------------- retries exhausted (handler)


def notification(event: ObjectEvent) -> dict[str, Any]:
    return {"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "eu-west-3",
        "eventTime": event.event_time.isoformat().replace("+00:00", "Z"),
        "eventName": "ObjectCreated:Put",
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "incoming",
               "bucket": {"name": event.bucket,
                          "arn": f"arn:aws:s3:::{event.bucket}"},
               "object": {"key": event.key, "size": event.size, "eTag": event.etag,
                          "versionId": event.version_id, "sequencer": event.sequencer}},
    }]}


def sqs_event(event: ObjectEvent, receives: int) -> dict[str, Any]:
    template = json.loads((ROOT / "tests" / "events" / "sqs_s3_object_created.json").read_text())
    record = template["Records"][0]
    record["body"] = json.dumps(notification(event))
    record["attributes"]["ApproximateReceiveCount"] = str(receives)
    return {"Records": [record]}


def handle(store: Any, event: ObjectEvent, receives: int) -> dict[str, Any]:
    from functions.validate import app

    runtime.use(runtime.Runtime(SETTINGS, store, MemoryQueue(), load_registry(), load_cog()))
    try:
        return app.lambda_handler(sqs_event(event, receives), Context())
    finally:
        runtime.use(None)


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def metric_names(lines: list[dict[str, Any]]) -> set[str]:
    return {m["Name"] for doc in lines if "_aws" in doc
            for d in doc["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}


@pytest.fixture
def upload(cases_dir: Path) -> tuple[MemoryStore, ObjectEvent]:
    memory = MemoryStore()
    body = (cases_dir / "C10-duplicate-delivery-object.csv").read_bytes()
    etag = memory.put(SETTINGS.incoming_bucket, KEY, body, "text/csv")
    return memory, event_for(KEY, body, etag, "v1")


def test_last_receive_fails__failure_report_then_dead_letter_then_redrive_replaces_it(
    upload: tuple[MemoryStore, ObjectEvent], capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
):
    memory, event = upload
    outage = ConnectionError("incoming bucket unreachable")
    store = Failing(memory, "get_file", SETTINGS.incoming_bucket, outage)
    upload_id = layout.upload_id(T0, KEY, "v1", event.etag, event.sequencer)
    report_key = layout.report_key(HOSP, "spf", upload_id)

    for receive in range(1, SETTINGS.max_receives):  # retried: no report yet
        with pytest.raises(BatchProcessingError):
            handle(store, event, receive)
        assert memory.head(SETTINGS.internal_bucket, report_key) is None
    capsys.readouterr()
    caplog.clear()
    with pytest.raises(BatchProcessingError) as last:  # the last receive: fails all the same
        handle(store, event, SETTINGS.max_receives)
    emf = json_lines(capsys.readouterr().out)

    ((_, raised, _),) = last.value.child_exceptions
    assert raised is outage  # the original error, so the message goes to the DLQ
    report = json.loads(memory.get(SETTINGS.internal_bucket, report_key))
    od = report["opendepot"]
    (error,) = report["tasks"][0]["errors"]
    assert (od["status"], od["attempts"], report["valid"]) == ("failed", 5, False)
    assert error["type"] == "processing-failed" and error["title"] == "Processing Failed"
    assert error["message"] == (
        "opendepot could not process this upload: 5 attempts failed, the last with "
        "ConnectionError (incoming bucket unreachable). This is not a problem found in the file. "
        "The operators were alerted and the notification is kept in the validate dead-letter "
        "queue; once the cause is fixed they run 'opendepot redrive' and the upload is "
        "validated again, its report replacing this one. You need not upload it again.")
    assert error["note"] == "ConnectionError after 5 attempts"
    assert (od["rejection"], od["upload_id"], od["key"]) == (error["message"], upload_id, KEY)
    (failed,) = [r for r in caplog.records if getattr(r, "status", None) == "failed"]
    assert failed.levelno == logging.ERROR and failed.report_key == report_key
    assert failed.getMessage().startswith(f"FAILED {KEY}: opendepot could not process")
    assert "FilesFailed" in metric_names(emf)

    store.fixed = True  # the cause fixed; `opendepot redrive` sends the message back
    assert handle(store, event, 1) == {"batchItemFailures": []}
    report = json.loads(memory.get(SETTINGS.internal_bucket, report_key))
    assert report["opendepot"]["status"] == "accepted"
    assert report["opendepot"]["rows_published"] == 2  # the two lines of the file
    # now the report is final: the same notification again is a duplicate
    assert run_ingest(memory, event).status == "duplicate"


class Killed(BaseException):
    """The process dying mid-attempt (a time limit, out of memory): no ``except`` runs."""


def test_last_receive_killed_mid_attempt__the_report_written_before_it_stays(upload):
    memory, event = upload
    store = Failing(memory, "get_file", SETTINGS.incoming_bucket, Killed())
    report_key = layout.report_key(
        HOSP, "spf", layout.upload_id(T0, KEY, "v1", event.etag, event.sequencer))

    with pytest.raises(Killed):
        handle(store, event, SETTINGS.max_receives - 1)
    assert memory.head(SETTINGS.internal_bucket, report_key) is None  # not the last: none
    with pytest.raises(Killed):
        handle(store, event, SETTINGS.max_receives)

    report = json.loads(memory.get(SETTINGS.internal_bucket, report_key))
    (error,) = report["tasks"][0]["errors"]
    assert (report["opendepot"]["status"], error["type"]) == ("failed", "processing-failed")
    assert error["message"].startswith(
        "opendepot could not process this upload: 5 attempts failed, the last with "
        "AttemptUnfinished (the last attempt did not finish: the function stopped (its time "
        "limit or its memory) before it could write a report).")
    store.fixed = True  # redriven: validated again, its report replaces the failure report
    assert handle(store, event, 1) == {"batchItemFailures": []}
    assert json.loads(memory.get(SETTINGS.internal_bucket, report_key))["opendepot"][
        "status"] == "accepted"


def test_last_receive_succeeding__its_own_report_only(upload):
    memory, event = upload
    assert handle(memory, event, SETTINGS.max_receives) == {"batchItemFailures": []}
    assert run_ingest(memory, event).status == "duplicate"  # the final report is there


def test_failure_report_never_replaces_a_final_report(upload):
    memory, event = upload
    accepted = run_ingest(memory, event)
    assert accepted.status == "accepted"
    before = memory.get(SETTINGS.internal_bucket, accepted.report_key or "")

    written = report_failure(memory, SETTINGS, load_registry(), event, TimeoutError("late"), 5)

    assert written is None
    assert memory.get(SETTINGS.internal_bucket, accepted.report_key or "") == before


def test_failure_report_of_a_refused_key__at_the_refused_report_key():
    memory = MemoryStore()
    event = event_for("../evil.csv", b"x", "e", None)
    out = report_failure(memory, SETTINGS, load_registry(), event, MemoryError(), 5)
    assert out is not None and out.status == "failed"
    assert out.report_key == layout.refused_report_key(out.upload_id or "")
    report = stored_report(memory, out)
    assert report["tasks"][0]["errors"][0]["message"].startswith(
        "opendepot could not process this upload: 5 attempts failed, the last with MemoryError "
        "(no message).")


def test_earlier_receives_fail__no_report(upload):
    memory, event = upload
    store = Failing(memory, "get_file", SETTINGS.incoming_bucket, TimeoutError("slow"))
    with pytest.raises(BatchProcessingError):
        handle(store, event, SETTINGS.max_receives - 1)
    assert memory.list(SETTINGS.internal_bucket, layout.REPORTS) == []


def test_failure_report_cannot_be_written__logged_and_the_original_error_raised(
    upload, caplog: pytest.LogCaptureFixture
):
    memory, event = upload
    store = Failing(Failing(memory, "get_file", SETTINGS.incoming_bucket, TimeoutError("slow")),
                    "put", SETTINGS.internal_bucket, ConnectionError("internal bucket down"))
    with pytest.raises(BatchProcessingError) as last:
        handle(store, event, SETTINGS.max_receives)

    ((_, raised, _),) = last.value.child_exceptions
    assert isinstance(raised, TimeoutError) and str(raised) == "slow"
    assert memory.list(SETTINGS.internal_bucket, layout.REPORTS) == []
    # the report written before the last attempt and the one after it: both logged
    before, problem = [r for r in caplog.records
                       if "could not write the failure report" in r.getMessage()]
    assert before.getMessage().endswith("after 5 receives (AttemptUnfinished: the last attempt "
                                        "did not finish: the function stopped (its time limit "
                                        "or its memory) before it could write a report)")
    assert problem.levelno == logging.ERROR
    assert problem.getMessage() == (f"could not write the failure report of {KEY} after 5 "
                                    "receives (TimeoutError: slow)")
    assert problem.exc_info is not None and str(problem.exc_info[1]) == "internal bucket down"


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags read as plain values."""


_CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def test_max_receives__the_validate_queues_max_receive_count_and_set_from_the_environment():
    with (ROOT / "template.yaml").open(encoding="utf-8") as f:
        template = yaml.load(f, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    queue = template["Resources"]["ValidateQueue"]["Properties"]
    assert queue["RedrivePolicy"]["maxReceiveCount"] == Settings().max_receives == 5
    assert Settings.from_env({"OPENDEPOT_MAX_RECEIVES": "3"}).max_receives == 3


# ---------------------------------------------------------------------------- held: visible


def test_held_upload__logged_at_warning_with_the_held_message_and_counted(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
):
    memory = MemoryStore()
    body = need(FRA_FILE).read_bytes()
    lines = body.splitlines(keepends=True)
    assert len(lines) == 7426
    key = f"{FRA}/spf/sp-pos-quot-france.csv"
    first = event_for(key, body, memory.put(SETTINGS.incoming_bucket, key, body, "text/csv"),
                      "v1", 1)
    assert handle(memory, first, 1) == {"batchItemFailures": []}
    short = b"".join(lines[:2001])  # the header and 2,000 of the 7,425 rows
    second = ObjectEvent(SETTINGS.incoming_bucket, key, len(short),
                         memory.put(SETTINGS.incoming_bucket, key, short, "text/csv"), "v2",
                         f"{2:016X}", T0.replace(hour=9))
    capsys.readouterr()
    caplog.clear()

    assert handle(memory, second, 1) == {"batchItemFailures": []}
    emf = json_lines(capsys.readouterr().out)

    (record,) = [r for r in caplog.records if getattr(r, "status", None) == "held"]
    assert record.levelno == logging.WARNING
    held = {"message": record.getMessage()}
    assert re.fullmatch(
        r"held: this upload has 2000 rows, 73% fewer than the 7425 of the previous upload "
        rf"\({re.escape(key)}, [^)]*\); more than the 20% the dataset allows, so it is held, not "
        r"published\. If it is right, upload it again with '\.confirm' before the extension: "
        r"sp-pos-quot-france\.confirm\.csv", held["message"]), held["message"]
    assert "FilesHeld" in metric_names(emf)
    assert "FilesAccepted" not in metric_names(emf)
