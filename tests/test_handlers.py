"""Functional tests: the validate, publish and site Lambda handlers on moto (in process), fed the
S3 events of cases C09-C14 in ../shared/data/cases, mapped onto opendepot's key layout
(bucket ``covid-drop`` -> the incoming bucket, ``covid-published`` -> the published bucket,
``incoming/`` -> ``donnees-hospitalieres-covid19/``, kept URL-encoded as S3 sends it). Publish
asks the site function for a refresh through the site queue (standard, as in template.yaml)."""

from __future__ import annotations

import copy
import io
import json
import threading
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from moto import mock_aws

from conftest import HOSP
from opendepot import checks, runtime
from opendepot.checks import Batch, Check
from opendepot.config import Settings
from opendepot.registry import load_cog, load_registry
from opendepot.storage import S3Store, SqsQueue
from test_index_api import LambdaContext as Context

EVENTS = Path(__file__).parent / "events"
SETTINGS = Settings()
TXAD = "covid-hosp-txad"


class FailingStore:
    """Wraps a Store; raises on the ``fail_at``-th call of ``method`` (1-based) on a key that
    starts with ``prefix``."""

    def __init__(self, inner: Any, method: str, fail_at: int, prefix: str = "") -> None:
        self.inner, self.method, self.fail_at, self.calls = inner, method, fail_at, 0
        self.prefix = prefix
        self._lock = threading.Lock()  # a publication's puts run on several threads

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if name != self.method:
            return target

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not args[1].startswith(self.prefix):
                return target(*args, **kwargs)
            with self._lock:
                self.calls += 1
                call = self.calls
            if call == self.fail_at:
                raise RuntimeError(f"injected failure at {name} #{call}")
            return target(*args, **kwargs)

        return wrapped


@pytest.fixture
def aws(monkeypatch):
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "eu-west-3"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        s3 = boto3.client("s3")
        for b in (SETTINGS.incoming_bucket, SETTINGS.internal_bucket, SETTINGS.published_bucket):
            s3.create_bucket(Bucket=b, CreateBucketConfiguration={"LocationConstraint": "eu-west-3"})
        s3.put_bucket_versioning(Bucket=SETTINGS.incoming_bucket,
                                 VersioningConfiguration={"Status": "Enabled"})
        sqs = boto3.client("sqs")
        url = sqs.create_queue(QueueName="opendepot-publish.fifo", Attributes={
            "FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
        site = sqs.create_queue(QueueName="opendepot-site")["QueueUrl"]
        settings = Settings(publish_queue_url=url, site_queue_url=site)
        rt = runtime.Runtime(settings, S3Store(s3), SqsQueue(sqs), load_registry(), load_cog())
        runtime.use(rt)
        yield rt, s3, sqs
        runtime.use(None)


def map_event(record: dict[str, Any], prefix: str = f"{HOSP}/") -> dict[str, Any]:
    r = copy.deepcopy(record)
    bucket = r["s3"]["bucket"]
    bucket["name"] = {"covid-drop": SETTINGS.incoming_bucket,
                      "covid-published": SETTINGS.published_bucket}[bucket["name"]]
    key = r["s3"]["object"]["key"]
    if key.startswith("incoming/"):
        r["s3"]["object"]["key"] = prefix + key[len("incoming/"):]
    return r


def sqs_event(*notifications: dict[str, Any]) -> dict[str, Any]:
    template = json.loads((EVENTS / "sqs_s3_object_created.json").read_text())
    records = []
    for i, n in enumerate(notifications):
        rec = copy.deepcopy(template["Records"][0])
        rec["messageId"] = f"msg-{i}"
        rec["body"] = json.dumps(n)
        records.append(rec)
    return {"Records": records}


def validate(event: dict[str, Any]) -> dict[str, Any]:
    from functions.validate import app

    return app.lambda_handler(event, Context())


def drain_publish(rt, sqs, *, store=None) -> dict[str, Any]:
    """Receive the publish queue's messages and run the publish handler on them."""
    from functions.publish import app

    msgs = sqs.receive_message(QueueUrl=rt.settings.publish_queue_url, MaxNumberOfMessages=10,
                               AttributeNames=["All"]).get("Messages", [])
    if not msgs:
        return {"batchItemFailures": []}
    template = json.loads((EVENTS / "sqs_publish_request.json").read_text())["Records"][0]
    records = []
    for m in msgs:
        rec = copy.deepcopy(template)
        rec.update(messageId=m["MessageId"], receiptHandle=m["ReceiptHandle"], body=m["Body"])
        records.append(rec)
    if store is not None:
        runtime.use(runtime.Runtime(rt.settings, store, rt.queue, rt.registry, rt.cog))
    try:
        result = app.lambda_handler({"Records": records}, Context())
    except BatchProcessingError:  # every record failed: Lambda reports the batch as failed
        result = {"batchItemFailures": [{"itemIdentifier": m["MessageId"]} for m in msgs]}
    finally:
        runtime.use(rt)
    failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
    for m in msgs:
        if m["MessageId"] not in failed:
            sqs.delete_message(QueueUrl=rt.settings.publish_queue_url, ReceiptHandle=m["ReceiptHandle"])
        else:
            sqs.change_message_visibility(QueueUrl=rt.settings.publish_queue_url,
                                          ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    return result


def put_for(s3, record: dict[str, Any], body: bytes) -> dict[str, Any]:
    """Upload ``body`` under the record's decoded key; return the record with the real
    versionId/eTag/size of that upload."""
    from urllib.parse import unquote_plus

    key = unquote_plus(record["s3"]["object"]["key"])
    r = s3.put_object(Bucket=SETTINGS.incoming_bucket, Key=key, Body=body)
    record = copy.deepcopy(record)
    record["s3"]["object"].update(size=len(body), eTag=r["ETag"].strip('"'), versionId=r["VersionId"])
    return record


def reports(s3, prefix: str = "reports/") -> list[dict[str, Any]]:
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=SETTINGS.internal_bucket,
                                                  Prefix=prefix).get("Contents", [])
            if o["Key"].endswith(".json")]  # each report's page (.html) is beside it
    return [json.loads(s3.get_object(Bucket=SETTINGS.internal_bucket, Key=k)["Body"].read())
            for k in keys]


def published_state(s3) -> dict[str, str]:
    """Every object of the published bucket with its ETag (what readers can see)."""
    out = {}
    for o in s3.list_objects_v2(Bucket=SETTINGS.published_bucket).get("Contents", []):
        out[o["Key"]] = o["ETag"]
    return out


def national(s3, day: str) -> int:
    body = s3.get_object(Bucket=SETTINGS.published_bucket,
                         Key=f"{HOSP}/latest/{HOSP}-fra.csv")["Body"].read()
    df = pd.read_csv(io.BytesIO(body), sep=";")
    return int(df[df.jour == day].hosp.iloc[0])


def test_s3_test_event__skipped_without_error(aws):
    result = validate(sqs_event({"Service": "Amazon S3", "Event": "s3:TestEvent",
                                 "Bucket": SETTINGS.incoming_bucket}))
    assert result == {"batchItemFailures": []}


def test_url_encoded_keys__decoded_once_and_read(aws, cases_dir):
    rt, s3, sqs = aws
    event = json.loads((cases_dir / "C09-url-encoded-key.json").read_text())
    body = (cases_dir / "C10-duplicate-delivery-object.csv").read_bytes()
    records = [put_for(s3, map_event(r, f"{HOSP}/spf/"), body) for r in event["Records"]]
    assert validate(sqs_event({"Records": records})) == {"batchItemFailures": []}
    keys = sorted(r["opendepot"]["key"] for r in reports(s3))
    assert keys == [
        f"{HOSP}/spf/ars/Île-de-France/donnees hospitalieres 2020-03-25 (1).csv",
        f"{HOSP}/spf/ehpad/déclaration 10:00=final.csv",
    ]
    assert all(r["opendepot"]["status"] == "accepted" for r in reports(s3))
    drain_publish(rt, sqs)
    manifest = json.loads(s3.get_object(Bucket=SETTINGS.published_bucket,
                                        Key=f"{HOSP}/manifest.json")["Body"].read())
    assert manifest["uploads"][0]["key"] in keys  # snapshot: the newest upload of spf


class OutOfMemory(Check):
    """Runs out of memory on a batch holding the marker value 424242 (test only)."""

    def batch(self, batch: Batch) -> None:
        if any("424242" in col.to_pylist() for col in batch.trimmed):
            raise MemoryError("simulated: Lambda out of memory")


def test_memory_error_in_validation__a_batch_item_failure_retried_no_report(aws, cases_dir):
    """An infrastructure failure is not the file's: the message fails (the queue redelivers it,
    then keeps it in the dead-letter queue), no report says "rejected", nothing is staged; the
    other message of the batch is processed."""
    rt, s3, sqs = aws
    template = json.loads((cases_dir / "C09-url-encoded-key.json").read_text())["Records"][0]
    header = "dep;sexe;jour;hosp;rea;rad;dc\n"
    records = []
    for name, hosp in (("fine.csv", "12"), ("oom.csv", "424242")):
        record = map_event(template, f"{HOSP}/spf/")
        record["s3"]["object"]["key"] = f"{HOSP}/spf/{name}"
        records.append(put_for(s3, record, f"{header}75;0;2020-03-24;{hosp};1;1;1\n".encode()))
    event = sqs_event({"Records": [records[0]]}, {"Records": [records[1]]})
    with checks.registered(OutOfMemory):
        result = validate(event)
    assert result == {"batchItemFailures": [{"itemIdentifier": "msg-1"}]}
    assert [r["opendepot"]["key"] for r in reports(s3)] == [f"{HOSP}/spf/fine.csv"]
    staged = s3.list_objects_v2(Bucket=SETTINGS.internal_bucket, Prefix="staging/")["Contents"]
    assert len(staged) == 2 and all("/spf/" in o["Key"] for o in staged)  # fine.csv's two files
    assert OutOfMemory not in checks.CHECKS
    assert validate(sqs_event({"Records": [records[1]]})) == {"batchItemFailures": []}  # retried
    assert sorted(r["opendepot"]["status"] for r in reports(s3)) == ["accepted", "accepted"]


def logged(caplog) -> str:
    text = "\n".join(r.getMessage() for r in caplog.records)
    caplog.clear()
    return text


def test_same_event_twice__second_is_a_logged_duplicate_with_no_effect(aws, cases_dir, caplog):
    rt, s3, sqs = aws
    event = json.loads((cases_dir / "C10-duplicate-delivery.json").read_text())
    body = (cases_dir / "C10-duplicate-delivery-object.csv").read_bytes()
    first, second = (map_event(inv["Records"][0]) for inv in event["invocations"])
    first = put_for(s3, first, body)
    second = copy.deepcopy(first)  # the same delivery: same key, versionId, eTag, sequencer
    validate(sqs_event({"Records": [first]}))
    drain_publish(rt, sqs)
    assert national(s3, "2020-03-24") == 1692
    before = published_state(s3)
    logged(caplog)
    assert validate(sqs_event({"Records": [second]})) == {"batchItemFailures": []}
    assert "duplicate: this object version was already processed" in logged(caplog)
    drain_publish(rt, sqs)
    assert published_state(s3) == before
    assert national(s3, "2020-03-24") == 1692
    # a new upload under the same key (new version) is processed, not skipped
    third = put_for(s3, first, body.replace(b"1076", b"1077"))
    third["s3"]["object"]["sequencer"] = "005E7B6A2C8D1A2B3D"  # S3 orders later writes higher
    validate(sqs_event({"Records": [third]}))
    drain_publish(rt, sqs)
    assert national(s3, "2020-03-24") == 1693


def test_own_outputs_and_unknown_files__ignored_or_reported_never_dropped(aws, cases_dir, caplog):
    rt, s3, sqs = aws
    event = json.loads((cases_dir / "C11-key-routing-recursion.json").read_text())
    own, renamed = (map_event(inv["Records"][0], "incoming/") for inv in event["invocations"])
    validate(sqs_event({"Records": [own]}))
    assert "not an input key" in logged(caplog)
    assert reports(s3) == [] and published_state(s3) == {}
    validate(sqs_event({"Records": [renamed]}))
    [report] = reports(s3, "reports/_refused/")
    err = report["tasks"][0]["errors"][0]
    assert err["type"] == "unrouted-key" and "incoming/spf/covid_hospit-2022-03-11-19h00.csv" in err["message"]
    assert "unrecognized input file" in logged(caplog)
    assert published_state(s3) == {}
    assert s3.list_objects_v2(Bucket=SETTINGS.incoming_bucket).get("KeyCount", 0) == 0


def test_failure_mid_publication__readers_keep_previous_version_then_retry_switches(aws, cases_dir):
    rt, s3, sqs = aws
    c10 = json.loads((cases_dir / "C10-duplicate-delivery.json").read_text())["invocations"][0]
    v1 = put_for(s3, map_event(c10["Records"][0]), (cases_dir / "C10-duplicate-delivery-object.csv").read_bytes())
    validate(sqs_event({"Records": [v1]}))
    drain_publish(rt, sqs)
    before = published_state(s3)
    catalog_before = s3.get_object(Bucket=SETTINGS.published_bucket, Key="catalog.json")["Body"].read()

    c12 = json.loads((cases_dir / "C12-partial-publication.json").read_text())["invocations"]
    v2 = put_for(s3, map_event(c12[0]["Records"][0]), (cases_dir / "C12-partial-publication-object.csv").read_bytes())
    validate(sqs_event({"Records": [v2]}))
    # the second put of a published file (the internal bucket's index and markers aside)
    failing = FailingStore(rt.store, "put", fail_at=2, prefix=f"{HOSP}/")
    result = drain_publish(rt, sqs, store=failing)
    # the version's six files are put concurrently (STORAGE_THREADS at a time): the second put
    # to start fails, the other five still run, and the publication stops once they have ended,
    # before its datapackage.json and the manifest
    assert len(result["batchItemFailures"]) == 1 and failing.calls == 6
    after = published_state(s3)
    # readers: same manifest, catalog and latest files; the one new object is an unreferenced
    # version file that no index lists
    assert {k: v for k, v in after.items() if k in before} == before
    assert [k for k in after if k not in before] and all(
        "/latest/" not in k and not k.endswith("manifest.json") for k in after if k not in before)
    assert s3.get_object(Bucket=SETTINGS.published_bucket, Key="catalog.json")["Body"].read() == catalog_before
    assert national(s3, "2020-03-24") == 1692

    drain_publish(rt, sqs)  # the queue's retry, no fault
    assert national(s3, "2020-03-25") == 2029
    manifest = json.loads(s3.get_object(Bucket=SETTINGS.published_bucket,
                                        Key=f"{HOSP}/manifest.json")["Body"].read())
    assert len(manifest["versions"]) == 2
    for r in manifest["resources"]:
        assert s3.head_object(Bucket=SETTINGS.published_bucket, Key=r["path"])["ContentLength"] == r["bytes"]


def test_oversized_object__rejected_before_download(aws, cases_dir):
    rt, s3, sqs = aws
    c12 = json.loads((cases_dir / "C12-partial-publication.json").read_text())["invocations"]
    huge = map_event(c12[1]["Records"][0])
    s3.put_object(Bucket=SETTINGS.incoming_bucket, Key=huge["s3"]["object"]["key"], Body=b"x")
    gets = []
    s3.meta.events.register("before-call.s3.GetObject", lambda **kw: gets.append(kw))
    validate(sqs_event({"Records": [huge]}))
    assert gets == []
    [report] = reports(s3)
    err = report["tasks"][0]["errors"][0]
    assert err["type"] == "object-too-large"
    assert "3221225472 bytes" in err["message"] and str(SETTINGS.max_object_bytes) in err["message"]
    assert huge["s3"]["object"]["key"] in err["message"]
    assert published_state(s3) == {}


def test_path_traversal_keys__rejected_before_any_read(aws, cases_dir):
    rt, s3, sqs = aws
    event = json.loads((cases_dir / "C14-path-traversal.json").read_text())
    gets = []
    s3.meta.events.register("before-call.s3.GetObject", lambda **kw: gets.append(kw))
    assert validate(sqs_event({"Records": [map_event(r, "incoming/") for r in event["Records"]]})) == {
        "batchItemFailures": []}
    assert gets == []
    found = sorted((r["tasks"][0]["errors"][0]["cell"], r["tasks"][0]["errors"][0]["type"])
                   for r in reports(s3, "reports/_refused/"))
    assert found == [
        ("/tmp/evil.csv", "unsafe-key"),
        ("incoming/../../tmp/evil.csv", "unsafe-key"),
        ("incoming/../published/hospitalisations/national.csv", "unsafe-key"),
    ]
    assert published_state(s3) == {}


def test_metrics__emitted_as_emf_for_accepted_files_and_published_rows(aws, cases_dir, capsys):
    rt, s3, sqs = aws
    c10 = json.loads((cases_dir / "C10-duplicate-delivery.json").read_text())["invocations"][0]
    record = put_for(s3, map_event(c10["Records"][0]),
                     (cases_dir / "C10-duplicate-delivery-object.csv").read_bytes())
    capsys.readouterr()
    validate(sqs_event({"Records": [record]}))
    drain_publish(rt, sqs)
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines()
           if line.startswith("{") and '"_aws"' in line]
    names = {m["Name"] for doc in emf for d in doc["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert {"FilesAccepted", "VersionsPublished", "RowsPublished", "PublishSeconds"} <= names
    rows = next(doc["RowsPublished"] for doc in emf if "RowsPublished" in doc)
    assert rows == [4.0]  # dep 75 and 92, region 11, France


def test_malformed_publish_request__failed_so_the_dead_letter_queue_keeps_it(aws):
    rt, s3, sqs = aws
    for body in ("not json", json.dumps({"upload_id": "x"}), json.dumps({"dataset": 7})):
        sqs.send_message(QueueUrl=rt.settings.publish_queue_url, MessageBody=body,
                         MessageGroupId="g", MessageDeduplicationId=str(abs(hash(body))))
        result = drain_publish(rt, sqs)
        assert len(result["batchItemFailures"]) == 1, body  # retried, then dead-lettered
        url = rt.settings.publish_queue_url
        for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])  # as the DLQ would
    assert published_state(s3) == {}


# ------------------------------------------------------------------------------ the site function


def site_requests(rt, sqs) -> list[dict[str, Any]]:
    """Every message waiting in the site queue (received: invisible until deleted)."""
    out: list[dict[str, Any]] = []
    while got := sqs.receive_message(QueueUrl=rt.settings.site_queue_url,
                                     MaxNumberOfMessages=10).get("Messages", []):
        out += got
    return out


def site_event(messages: list[dict[str, Any]]) -> dict[str, Any]:
    template = json.loads((EVENTS / "sqs_site_request.json").read_text())["Records"][0]
    records = []
    for m in messages:
        rec = copy.deepcopy(template)
        rec.update(messageId=m["MessageId"], receiptHandle=m["ReceiptHandle"], body=m["Body"])
        records.append(rec)
    return {"Records": records}


def run_site(rt, event: dict[str, Any], *, store=None, clock=None) -> dict[str, Any]:
    """The site handler on ``event`` (with ``store`` and ``clock`` instead of the runtime's)."""
    from functions.site import app

    runtime.use(runtime.Runtime(rt.settings, store or rt.store, rt.queue, rt.registry, rt.cog,
                                clock=clock or rt.clock))
    try:
        return app.lambda_handler(event, Context())
    finally:
        runtime.use(rt)


def published_first(rt, s3, sqs, cases_dir) -> str:
    """C10 validated and published (the hospital dataset's first version); its version."""
    c10 = json.loads((cases_dir / "C10-duplicate-delivery.json").read_text())["invocations"][0]
    record = put_for(s3, map_event(c10["Records"][0]),
                     (cases_dir / "C10-duplicate-delivery-object.csv").read_bytes())
    validate(sqs_event({"Records": [record]}))
    assert drain_publish(rt, sqs) == {"batchItemFailures": []}
    manifest = json.loads(s3.get_object(Bucket=SETTINGS.published_bucket,
                                        Key=f"{HOSP}/manifest.json")["Body"].read())
    return str(manifest["version"])


def site_puts(s3) -> list[str]:
    """Keys put under site/ from now on (a list the caller reads later)."""
    keys: list[str] = []
    s3.meta.events.register("before-parameter-build.s3.PutObject",
                            lambda params, **kw: keys.append(params["Key"]))
    return keys


def test_publish__one_site_request_per_new_version_none_for_a_no_op(aws, cases_dir):
    rt, s3, sqs = aws
    version = published_first(rt, s3, sqs, cases_dir)
    (request,) = site_requests(rt, sqs)
    assert json.loads(request["Body"]) == {"dataset": HOSP, "version": version}
    sqs.delete_message(QueueUrl=rt.settings.site_queue_url, ReceiptHandle=request["ReceiptHandle"])

    sqs.send_message(QueueUrl=rt.settings.publish_queue_url, MessageGroupId=HOSP,
                     MessageBody=json.dumps({"dataset": HOSP, "upload_id": "again"}))
    assert drain_publish(rt, sqs) == {"batchItemFailures": []}  # nothing new to publish
    assert site_requests(rt, sqs) == []
    assert s3.list_objects_v2(Bucket=SETTINGS.published_bucket, Prefix="site/")["KeyCount"] == 0


def test_site_request_that_cannot_be_sent__publication_stands_failure_logged_and_counted(
        aws, cases_dir, capsys, caplog):
    rt, s3, sqs = aws
    sqs.delete_queue(QueueUrl=rt.settings.site_queue_url)  # SQS answers QueueDoesNotExist
    capsys.readouterr()
    version = published_first(rt, s3, sqs, cases_dir)
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()
           if line.startswith("{")]
    (failed,) = [r for r in caplog.records if r.getMessage() == "site refresh not requested"]
    assert failed.levelname == "ERROR" and failed.version == version  # type: ignore[attr-defined]
    assert "QueueDoesNotExist" in failed.error and failed.exc_info  # type: ignore[attr-defined]
    assert national(s3, "2020-03-24") == 1692  # published all the same, and announced
    assert next(d["SiteRequestsFailed"] for d in out if "SiteRequestsFailed" in d) == [1.0]
    assert next(d["VersionsPublished"] for d in out if "VersionsPublished" in d) == [1.0]
    assert s3.list_objects_v2(Bucket=SETTINGS.internal_bucket,
                              Prefix=f"announced/{HOSP}/")["KeyCount"] == 1


def test_site_handler__refreshes_the_union_of_a_batch_once(aws, cases_dir, real_dir):
    rt, s3, sqs = aws
    published_first(rt, s3, sqs, cases_dir)
    txad = real_dir / TXAD / "covid-hosp-txad-fra-2022-03-11-19h00.csv"
    c10 = json.loads((cases_dir / "C10-duplicate-delivery.json").read_text())["invocations"][0]
    record = map_event(c10["Records"][0])
    record["s3"]["object"]["key"] = f"{TXAD}/spf/{txad.name}"
    validate(sqs_event({"Records": [put_for(s3, record, txad.read_bytes())]}))
    assert drain_publish(rt, sqs) == {"batchItemFailures": []}
    requests = site_requests(rt, sqs)
    assert sorted(json.loads(m["Body"])["dataset"] for m in requests) == [TXAD, HOSP]
    again = dict(requests[0], MessageId="again", ReceiptHandle="again")  # a duplicate delivery
    puts = site_puts(s3)

    assert run_site(rt, site_event([*requests, again])) == {"batchItemFailures": []}

    counts = {k: puts.count(k) for k in puts}
    assert set(counts.values()) == {1}, {k: n for k, n in counts.items() if n > 1}
    assert {"site/index.html", f"site/datasets/{HOSP}/index.html",
            f"site/datasets/{TXAD}/index.html", "site/dashboards/epidemic/index.html",
            "site/dashboards/epidemic/dep-75/index.html"} <= set(counts)
    assert not any(k.startswith("site/dashboards/business-support/") for k in counts)
    home = s3.get_object(Bucket=SETTINGS.published_bucket, Key="site/index.html")["Body"].read()
    assert f'data-dataset="{HOSP}"'.encode() in home and f'data-dataset="{TXAD}"'.encode() in home


def test_site_handler__identical_pages_not_put_again_changed_ones_are(aws, cases_dir):
    from datetime import UTC, datetime, timedelta

    rt, s3, sqs = aws
    published_first(rt, s3, sqs, cases_dir)
    event = site_event(site_requests(rt, sqs))
    now = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
    puts = site_puts(s3)
    run_site(rt, event, clock=lambda: now)
    first = list(puts)
    css = s3.head_object(Bucket=SETTINGS.published_bucket, Key="site/assets/site.css")
    puts.clear()

    run_site(rt, event, clock=lambda: now)  # the same pages: nothing put
    assert puts == [] and len(first) > 100
    run_site(rt, event, clock=lambda: now + timedelta(days=3))  # the home says "late" now
    assert sorted(puts) == ["site/datasets/donnees-hospitalieres-covid19/index.html",
                            "site/index.html"]
    again = s3.head_object(Bucket=SETTINGS.published_bucket, Key="site/assets/site.css")
    assert again["LastModified"] == css["LastModified"] and again["ETag"] == css["ETag"]


def test_site_handler__a_failed_refresh_fails_the_whole_batch(aws, cases_dir, capsys):
    rt, s3, sqs = aws
    published_first(rt, s3, sqs, cases_dir)
    event = site_event(site_requests(rt, sqs))
    failing = FailingStore(rt.store, "put", fail_at=1, prefix="site/")
    capsys.readouterr()
    with pytest.raises(RuntimeError, match="injected failure at put #1"):
        run_site(rt, event, store=failing)
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines()
           if line.startswith("{") and '"_aws"' in line]
    assert next(doc["SiteRefreshesFailed"] for doc in emf if "SiteRefreshesFailed" in doc) == [1.0]
    assert run_site(rt, event) == {"batchItemFailures": []}  # the queue's retry
    assert s3.head_object(Bucket=SETTINGS.published_bucket, Key="site/index.html")


def test_site_handler__a_malformed_request_fails_alone(aws, cases_dir):
    rt, s3, sqs = aws
    published_first(rt, s3, sqs, cases_dir)
    (request,) = site_requests(rt, sqs)
    bad = dict(request, MessageId="bad", Body=json.dumps({"version": "x"}))
    result = run_site(rt, site_event([bad, request]))
    assert result == {"batchItemFailures": [{"itemIdentifier": "bad"}]}
    assert s3.head_object(Bucket=SETTINGS.published_bucket,
                          Key=f"site/datasets/{HOSP}/index.html")
