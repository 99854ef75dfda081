"""The local stack: moto with template.yaml's resources, the queue pump, the HTTP API, the demo.

Tests that need ``template.yaml`` skip until it exists. Handlers here are stand-ins that record
what they receive; the real functions run only in the end-to-end demo test.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest

from infra.http_server import LocalHttpApi
from infra.pump import BatchResult, Pump, bindings_for
from infra.sample import sample_csv, sample_files
from infra.stack import SITE_QUEUE, LocalStack, load_template

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
STACK, ACCOUNT, REGION = "opendepot", "123456789012", "eu-west-3"


def _template_or_skip() -> dict[str, Any]:
    if not TEMPLATE.is_file():
        pytest.skip("template.yaml is not written yet: the local stack mirrors its resources")
    return load_template(TEMPLATE)


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    _template_or_skip()
    with LocalStack(TEMPLATE, api_port=None) as s:
        yield s


def _sub(value: Any) -> str:
    """The template's names are ``!Sub`` over pseudo parameters only (or plain strings)."""
    text = value["Fn::Sub"] if isinstance(value, dict) else value
    for name, v in {
        "AWS::StackName": STACK,
        "AWS::AccountId": ACCOUNT,
        "AWS::Region": REGION,
    }.items():
        text = text.replace("${" + name + "}", v)
    assert "${" not in text, f"unexpected substitution in {value!r}"
    return text


def _records(body: str) -> list[dict[str, Any]]:
    return json.loads(body).get("Records", [])


def _noop(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"batchItemFailures": []}


# ------------------------------------------------------------------------------ resources


@pytest.mark.e2e
def test_local_stack__creates_exactly_the_template_buckets_and_queues(stack: LocalStack) -> None:
    resources = load_template(TEMPLATE)["Resources"]
    buckets = {lid: r for lid, r in resources.items() if r["Type"] == "AWS::S3::Bucket"}
    queues = {lid: r for lid, r in resources.items() if r["Type"] == "AWS::SQS::Queue"}
    names = {lid: _sub(r["Properties"]["QueueName"]) for lid, r in queues.items()}
    arns = {lid: f"arn:aws:sqs:{REGION}:{ACCOUNT}:{n}" for lid, n in names.items()}

    created = {b["Name"] for b in stack.s3.list_buckets()["Buckets"]}
    assert created == {_sub(r["Properties"]["BucketName"]) for r in buckets.values()}
    for lid, r in buckets.items():
        wanted = (r["Properties"].get("VersioningConfiguration") or {}).get("Status")
        got = stack.s3.get_bucket_versioning(Bucket=stack.buckets[lid]).get("Status")
        assert got == wanted, lid

    urls = stack.sqs.list_queues().get("QueueUrls", [])
    assert {u.rsplit("/", 1)[-1] for u in urls} == set(names.values())
    for lid, r in queues.items():
        props = r["Properties"]
        attrs = stack.sqs.get_queue_attributes(
            QueueUrl=stack.queues[lid].url, AttributeNames=["All"]
        )["Attributes"]
        assert attrs["QueueArn"] == arns[lid]
        fifo = bool(props.get("FifoQueue", False))
        assert (attrs.get("FifoQueue") == "true") == fifo, lid
        assert names[lid].endswith(".fifo") == fifo, lid
        if "ContentBasedDeduplication" in props:
            assert (
                attrs["ContentBasedDeduplication"]
                == str(props["ContentBasedDeduplication"]).lower()
            )
        if "VisibilityTimeout" in props:
            assert attrs["VisibilityTimeout"] == str(props["VisibilityTimeout"])
        if "RedrivePolicy" in props:
            target = props["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
            policy = json.loads(attrs["RedrivePolicy"])
            assert policy["deadLetterTargetArn"] == arns[target]
            assert int(policy["maxReceiveCount"]) == int(props["RedrivePolicy"]["maxReceiveCount"])
        else:
            assert "RedrivePolicy" not in attrs
    assert stack.publish_queue.fifo
    assert stack.env["OPENDEPOT_PUBLISH_QUEUE_URL"] == stack.publish_queue_url
    assert stack.site_queue is not None and not stack.site_queue.fifo
    assert stack.env["OPENDEPOT_SITE_QUEUE_URL"] == stack.site_queue.url
    assert stack.env["OPENDEPOT_SITE_DASHBOARDS"] == "0"  # tests pump file by file


@pytest.mark.e2e
def test_incoming_bucket__notifies_the_validate_queue_as_the_template_says(
    stack: LocalStack,
) -> None:
    config = stack.s3.get_bucket_notification_configuration(Bucket=stack.incoming_bucket)
    wanted = load_template(TEMPLATE)["Resources"]["IncomingBucket"]["Properties"][
        "NotificationConfiguration"
    ]["QueueConfigurations"]
    got = config["QueueConfigurations"]
    assert [c["QueueArn"] for c in got] == [stack.validate_queue.arn] * len(wanted)
    assert [c["Events"] for c in got] == [[w["Event"]] for w in wanted]


@pytest.mark.e2e
def test_put_object_with_spaces_and_accents__sends_an_event_whose_key_decodes_to_the_key(
    stack: LocalStack,
) -> None:
    key = "donnees-hospitalieres-covid19/spf/données été 2020 + copie.csv"
    stack.s3.put_object(Bucket=stack.incoming_bucket, Key=key, Body=b'"dep";"sexe"\n')
    messages = stack.sqs.receive_message(QueueUrl=stack.validate_queue_url, MaxNumberOfMessages=10)[
        "Messages"
    ]
    records = [r for m in messages for r in _records(m["Body"])]
    assert len(records) == 1
    raw = records[0]["s3"]["object"]["key"]
    assert raw != key  # URL-encoded on the wire
    assert unquote_plus(raw) == key
    assert records[0]["eventName"].startswith("ObjectCreated")
    assert records[0]["s3"]["bucket"]["name"] == stack.incoming_bucket


# ------------------------------------------------------------------------------ pump


@pytest.mark.e2e
def test_pump__calls_the_handler_with_the_lambda_sqs_event_shape(stack: LocalStack) -> None:
    seen: list[tuple[dict[str, Any], Any]] = []

    def recorder(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.append((event, context))
        return {"batchItemFailures": []}

    stack.s3.put_object(Bucket=stack.incoming_bucket, Key="ds/spf/a b.csv", Body=b"x")
    stack.sqs.send_message(
        QueueUrl=stack.publish_queue_url, MessageBody='{"dataset": "ds"}', MessageGroupId="ds"
    )
    bindings = bindings_for(stack, {"ValidateQueue": recorder, "PublishQueue": recorder})
    stats = Pump(stack.sqs, bindings, region=stack.region).run(timeout=10)

    records = [(r, ctx) for event, ctx in seen for r in event["Records"]]
    by_queue = {r["eventSourceARN"]: (r, ctx) for r, ctx in records}
    assert stats.failed == 0 and not stats.errors
    assert stats.handled == len(records) == 3  # s3:TestEvent, the object, the publish request
    for r, ctx in records:
        assert set(r) >= {
            "messageId",
            "receiptHandle",
            "body",
            "attributes",
            "messageAttributes",
            "md5OfBody",
            "eventSource",
            "eventSourceARN",
            "awsRegion",
        }
        assert r["eventSource"] == "aws:sqs"
        assert r["awsRegion"] == REGION
        assert r["attributes"]["ApproximateReceiveCount"] == "1"
        assert r["attributes"]["SentTimestamp"].isdigit()
        assert ctx.aws_request_id and ctx.memory_limit_in_mb > 0
        assert ctx.invoked_function_arn == (
            f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{ctx.function_name}"
        )
        assert ctx.get_remaining_time_in_millis() > 0
    publish, _ = by_queue[stack.publish_queue.arn]
    assert publish["attributes"]["MessageGroupId"] == "ds"
    assert json.loads(publish["body"]) == {"dataset": "ds"}
    keys = [rec["s3"]["object"]["key"] for r, _ in records for rec in _records(r["body"])]
    assert [unquote_plus(k) for k in keys] == ["ds/spf/a b.csv"]
    assert all(sum(stack.queue_depth(q.url)) == 0 for q in stack.queues.values())


@pytest.mark.e2e
def test_handler_failure__is_retried_then_lands_in_the_dead_letter_queue(stack: LocalStack) -> None:
    queue = stack.validate_queue
    assert queue.max_receive_count and queue.dead_letter_queue
    deliveries: list[str] = []

    def failing(event: dict[str, Any], context: Any) -> dict[str, Any]:
        failures = []
        for r in event["Records"]:
            if _records(r["body"]):  # the s3:TestEvent goes through
                deliveries.append(r["attributes"]["ApproximateReceiveCount"])
                failures.append({"itemIdentifier": r["messageId"]})
        return {"batchItemFailures": failures}

    stack.s3.put_object(Bucket=stack.incoming_bucket, Key="ds/spf/bad.csv", Body=b"x")
    pump = Pump(stack.sqs, bindings_for(stack, {"ValidateQueue": failing, "PublishQueue": _noop}))
    stats = pump.run(timeout=10)

    n = queue.max_receive_count
    assert deliveries == [str(i) for i in range(1, n + 1)]
    assert stats.per_queue["ValidateQueue"][1] == n
    dlq = stack.queues[queue.dead_letter_queue]
    dead = stack.sqs.receive_message(QueueUrl=dlq.url, MaxNumberOfMessages=10)["Messages"]
    assert [unquote_plus(_records(m["Body"])[0]["s3"]["object"]["key"]) for m in dead] == [
        "ds/spf/bad.csv"
    ]
    assert sum(stack.queue_depth(queue.url)) == 0


@pytest.mark.e2e
def test_handler_crash_on_the_fifo_queue__fails_the_batch_until_the_dead_letter_queue(
    stack: LocalStack,
) -> None:
    queue = stack.publish_queue
    assert queue.max_receive_count and queue.dead_letter_queue

    def crashing(event: dict[str, Any], context: Any) -> dict[str, Any]:
        raise RuntimeError("storage is down")

    stack.sqs.send_message(QueueUrl=queue.url, MessageBody='{"dataset": "ds"}', MessageGroupId="ds")
    pump = Pump(stack.sqs, bindings_for(stack, {"ValidateQueue": _noop, "PublishQueue": crashing}))
    stats = pump.run(timeout=10)

    assert len(stats.errors) == queue.max_receive_count
    assert "storage is down" in stats.errors[0]
    dlq = stack.queues[queue.dead_letter_queue]
    assert stack.queue_depth(dlq.url)[0] == 1


# ------------------------------------------------------------------------------ HTTP API


@pytest.fixture
def http_api() -> Iterator[tuple[LocalHttpApi, list[dict[str, Any]], dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    answer: dict[str, Any] = {}

    def handler(event: dict[str, Any], context: Any) -> Any:
        events.append(event)
        if answer.get("raise"):
            raise RuntimeError("bug")
        return answer["response"]

    with LocalHttpApi(handler, port=0) as api:
        yield api, events, answer


def _call(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def test_http_server__turns_a_get_into_an_http_api_v2_event_and_returns_the_response(
    http_api: tuple[LocalHttpApi, list[dict[str, Any]], dict[str, Any]],
) -> None:
    api, events, answer = http_api
    answer["response"] = {
        "statusCode": 201,
        "headers": {"Content-Type": "application/json", "ETag": '"v1"'},
        "cookies": ["seen=1"],
        "body": '{"ok": true}',
        "isBase64Encoded": False,
    }
    status, headers, body = _call(
        f"{api.url}/api/1/datasets/?q=covid&tag=a&tag=b",
        {"X-Custom": "Yes", "Cookie": "s=1; t=2", "User-Agent": "test-agent"},
    )

    assert (status, body) == (201, b'{"ok": true}')
    assert headers["Content-Type"] == "application/json"
    assert headers["ETag"] == '"v1"'
    assert headers["Set-Cookie"] == "seen=1"
    (event,) = events
    assert event["version"] == "2.0"
    assert event["routeKey"] == "$default"
    assert event["rawPath"] == "/api/1/datasets/"
    assert event["rawQueryString"] == "q=covid&tag=a&tag=b"
    assert event["queryStringParameters"] == {"q": "covid", "tag": "a,b"}
    assert event["headers"]["x-custom"] == "Yes"
    assert all(name == name.lower() for name in event["headers"])
    assert event["cookies"] == ["s=1", "t=2"]
    assert event["isBase64Encoded"] is False
    http = event["requestContext"]["http"]
    assert http == {
        "method": "GET",
        "path": "/api/1/datasets/",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "test-agent",
    }


def test_http_server__decodes_base64_bodies_and_answers_500_when_the_handler_raises(
    http_api: tuple[LocalHttpApi, list[dict[str, Any]], dict[str, Any]],
) -> None:
    api, events, answer = http_api
    answer["response"] = {
        "statusCode": 200,
        "headers": {"content-type": "application/octet-stream"},
        "body": "AAEC",
        "isBase64Encoded": True,
    }
    assert _call(f"{api.url}/bin")[::2] == (200, b"\x00\x01\x02")
    assert "queryStringParameters" not in events[-1]

    answer["response"] = {"statusCode": 304, "headers": {"etag": '"v1"'}}
    assert _call(f"{api.url}/x", {"If-None-Match": '"v1"'})[::2] == (304, b"")
    assert events[-1]["headers"]["if-none-match"] == '"v1"'

    answer["raise"] = True
    status, _, body = _call(f"{api.url}/boom")
    assert (status, json.loads(body)) == (500, {"message": "Internal Server Error"})


# ------------------------------------------------------------------------------ demo pieces


def test_demo_input_files__go_oldest_first_with_clashing_names_prefixed(tmp_path: Path) -> None:
    from infra.demo import collect_files

    for rel in (
        "mirror/2020-03-24_2c1018e/covid_hospit.csv",
        "mirror/2020-03-23_3f62f18/covid_hospit.csv",
        "donnees-hospitalieres-covid19-2020-11-07-19h00.csv",
        "donnees-hospitalieres-covid19-2021-03-17-17h03.csv",
        "mirror/README.md",
    ):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")

    files = collect_files(tmp_path)

    assert [(f.name, f.date) for f in files] == [
        ("2020-03-23_3f62f18-covid_hospit.csv", "2020-03-23"),
        ("2020-03-24_2c1018e-covid_hospit.csv", "2020-03-24"),
        ("donnees-hospitalieres-covid19-2020-11-07-19h00.csv", "2020-11-07"),
        ("donnees-hospitalieres-covid19-2021-03-17-17h03.csv", "2021-03-17"),
    ]


def test_demo_find_report__matches_the_key_and_its_version() -> None:
    from infra.demo import count_warnings, error_lines, find_report

    def report(key: str, version: str, upload: str, valid: bool) -> dict[str, Any]:
        errors = (
            []
            if valid
            else [
                {
                    "type": "type-error",
                    "message": f"bad {i}",
                    "rowNumber": i + 2,
                    "fieldName": "hosp",
                    "cell": "x",
                }
                for i in range(5)
            ]
        )
        return {
            "valid": valid,
            "stats": {"errors": len(errors), "warnings": 7},
            "tasks": [{"errors": errors, "stats": {"errors": len(errors), "warnings": 7}}],
            "opendepot": {
                "key": key,
                "version_id": version,
                "upload_id": upload,
                "status": "accepted" if valid else "rejected",
            },
        }

    reports = [
        report("d/p/a.csv", "v1", "1", False),
        report("d/p/a.csv", "v2", "2", True),
        report("d/p/b.csv", "v9", "3", True),
    ]

    assert find_report(reports, "d/p/a.csv", "v1") is reports[0]
    assert find_report(reports, "d/p/a.csv", "v2") is reports[1]
    assert find_report(reports, "d/p/c.csv", None) is None
    assert count_warnings(reports[1]) == 7
    lines = error_lines(reports[0], 3)
    assert sum("bad" in line for line in lines) == 3
    assert "more" in lines[-1]


def test_sample__keeps_spf_dialect_totals_and_cumulative_counts() -> None:
    data = sample_csv()
    lines = data.decode("utf-8").split("\n")
    assert data == sample_csv()  # deterministic
    assert lines[0] == '"dep";"sexe";"jour";"hosp";"rea";"rad";"dc"'
    assert lines[-1] == "" and b"\r" not in data and not data.startswith(b"\xef\xbb\xbf")
    rows = [line.split(";") for line in lines[1:-1]]
    deps = {r[0].strip('"') for r in rows}
    assert {"2A", "2B", "971", "75"} <= deps
    assert all(r[0].startswith('"') and r[2].startswith('"') and r[1] in "012" for r in rows)
    by = {(r[0], r[2], r[1]): [int(v) for v in r[3:]] for r in rows}
    days = sorted({r[2] for r in rows})
    assert len(days) == 10
    for (dep, day, sexe), values in by.items():
        if sexe == "0":
            assert values == [
                a + b for a, b in zip(by[dep, day, "1"], by[dep, day, "2"], strict=True)
            ]
    for dep in {r[0] for r in rows}:
        for sexe in "012":
            series = [by[dep, d, sexe] for d in days]
            for before, after in itertools.pairwise(series):
                assert after[2] >= before[2] and after[3] >= before[3]  # rad, dc
    names = [n for n, _ in sample_files()]
    assert names == sorted(names) and all("19h00.csv" in n for n in names)


def test_cli__offers_the_demo_subcommand_with_its_defaults() -> None:
    from opendepot.cli import SUBCOMMANDS, build_parser

    args = build_parser().parse_args(["demo"])
    assert "demo" in SUBCOMMANDS
    assert (args.port, args.once, args.dataset, args.producer, args.data) == (
        8080,
        False,
        None,
        "spf",
        None,
    )
    assert build_parser().parse_args(["demo", "--once", "--port", "0"]).once is True


@pytest.mark.e2e
def test_demo_once_on_the_sample__publishes_it_and_exits_0(tmp_path: Path) -> None:
    _template_or_skip()
    for name, body in sample_files():
        (tmp_path / name).write_bytes(body)

    # a process of its own, as a user runs it: the functions keep module-level state
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "opendepot.cli",
            "demo",
            "--once",
            "--port",
            "0",
            "--data",
            str(tmp_path),
            "--template",
            str(TEMPLATE),
        ],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "shared"), str(ROOT)])},
    )
    out = done.stdout

    assert done.returncode == 0, out + done.stderr
    assert out.count("accepted:") == 2, out
    assert "Published: donnees-hospitalieres-covid19" in out
    assert "/api/1/datasets/r/" in out
    assert "--once: the local stack stops now" in out  # the links above are not left dangling
    # the site requests of the run, held while the files dropped, in one batch of the function
    (site,) = [line for line in out.splitlines() if line.startswith("Site: ")]
    assert "built by the site function from 2 site requests" in site, site
    assert "1 dataset pages, dashboards epidemic" in site, site


@pytest.mark.e2e
def test_served_demo__says_what_happened_to_each_new_upload(
    stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    from conftest import CASES, HOSP
    from infra.reports import report_keys
    from infra.summary import say_report
    from opendepot import runtime

    runtime.use(None)
    pump = Pump(stack.sqs, bindings_for(stack), region=stack.region)
    pump.run(timeout=30)  # the bucket's s3:TestEvent
    before = set(report_keys(stack))
    key = f"{HOSP}/spf/C06-corsica-20.csv"
    stack.s3.put_object(Bucket=stack.incoming_bucket, Key=key,
                        Body=(CASES / "C06-corsica-20.csv").read_bytes())
    pump.run(timeout=30)
    runtime.use(None)
    new = [k for k in report_keys(stack) if k not in before]
    assert len(new) == 1
    capsys.readouterr()  # the handlers' own log lines
    say_report(stack, new[0])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"REJECTED {key}: ") and out[0].endswith("1 error, 0 warnings")
    assert "Line 4, column dep: '20' is not a valid department code" in "\n".join(out)
    assert out[-1] == f"  report: s3://{stack.internal_bucket}/{new[0]}"


@pytest.mark.e2e
def test_site_queue__held_while_files_drop_then_one_batch_of_the_site_function_builds_the_pages(
    stack: LocalStack,
) -> None:
    from conftest import CASES, HOSP
    from opendepot import runtime

    runtime.use(None)
    batches: list[BatchResult] = []
    pump = Pump(stack.sqs, bindings_for(stack), region=stack.region, on_batch=batches.append)
    pump.run(timeout=30)  # the bucket's s3:TestEvent
    for name in ("C10-duplicate-delivery-object.csv", "C12-partial-publication-object.csv"):
        stack.s3.put_object(Bucket=stack.incoming_bucket, Key=f"{HOSP}/spf/{name}",
                            Body=(CASES / name).read_bytes())
        pump.run(timeout=60, hold=[SITE_QUEUE])
    assert stack.site_queue is not None
    held = stack.queue_depth(stack.site_queue.url)
    listed = stack.s3.list_objects_v2(Bucket=stack.published_bucket, Prefix="site/")
    batches.clear()

    stats = pump.run(timeout=120)
    runtime.use(None)

    assert held == (2, 0, 0) and listed["KeyCount"] == 0  # two versions, two requests, no page
    assert [(b.queue, b.size, b.failed) for b in batches] == [(SITE_QUEUE, 2, 0)]
    assert stats.errors == [] and sum(stack.queue_depth(stack.site_queue.url)) == 0
    home = stack.s3.get_object(Bucket=stack.published_bucket, Key="site/index.html")
    manifest = json.loads(stack.s3.get_object(
        Bucket=stack.published_bucket, Key=f"{HOSP}/manifest.json")["Body"].read())
    assert f'data-version="{manifest["version"]}"'.encode() in home["Body"].read()
