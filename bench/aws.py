"""The validate and publish handlers on moto in process, as ``tests/test_handlers.py`` runs them.

``MotoPipeline`` starts ``mock_aws`` with the template's three buckets (incoming versioned) and
the FIFO publish queue, installs an ``opendepot.runtime.Runtime`` over them, and offers one call
per step, each timed around the handler call only:

- ``upload(key, body)``: ``put_object`` into the incoming bucket (not timed) and the SQS-wrapped
  S3 ``ObjectCreated`` event Lambda would receive for it (key URL-encoded, real ETag, version id);
- ``validate(event)``: ``functions.validate.app.lambda_handler``;
- ``publish()``: receive the publish queue's messages and run
  ``functions.publish.app.lambda_handler``.
"""

from __future__ import annotations

import copy
import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

DATASET = "donnees-hospitalieres-covid19"
PRODUCER = "spf"
REGION = "eu-west-3"
EVENTS = Path(__file__).resolve().parent.parent / "tests" / "events"

SQS_RECORD: dict[str, Any] = {
    "messageId": "",
    "receiptHandle": "",
    "body": "",
    "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0"},
    "messageAttributes": {},
    "md5OfBody": "",
    "eventSource": "aws:sqs",
    "awsRegion": REGION,
}


@dataclass
class Context:
    """The Lambda context attributes Powertools reads."""

    function_name: str = "opendepot-bench"
    memory_limit_in_mb: int = 3008
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:opendepot-bench"
    aws_request_id: str = "bench-0000"


def fake_credentials() -> None:
    """Fake AWS credentials and region, and no endpoint: boto3 talks to ``mock_aws`` only."""
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SECURITY_TOKEN="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_DEFAULT_REGION=REGION,
    )
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        os.environ.pop(name, None)
    os.environ.setdefault("AWS_REQUEST_CHECKSUM_CALCULATION", CHECKSUMS)


CHECKSUMS = "when_required"
"""botocore (>= 1.36) sends every ``put_object`` body ``aws-chunked`` with a CRC trailer by
default; moto 5.2 decodes that body with ``decoded += chunk`` in a loop
(``S3Response._handle_encoded_body``), quadratic in the size: 40 MB take 1.9 s, 240 MB 41 s,
against 0.3 s and 2.2 s with plain bodies. ``when_required`` (checksums only where S3 demands
them) removes that emulator cost from every figure; real S3 streams either form."""


def run_validate(event: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    """The validate handler on ``event``, timed around the call: (seconds, response)."""
    from functions.validate import app

    started = time.perf_counter()
    out = app.lambda_handler(event, Context(function_name="opendepot-validate"))
    return time.perf_counter() - started, out


def publish_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """The SQS FIFO event the publish function receives for received ``messages``."""
    event = sqs_event([m["Body"] for m in messages], queue_arn,
                      [m["ReceiptHandle"] for m in messages])
    for r, m in zip(event["Records"], messages, strict=True):
        r["messageId"] = m["MessageId"]
        r["attributes"].update(MessageGroupId=DATASET, SequenceNumber="1")
    return event


def s3_event(bucket: str, key: str, size: int, etag: str, version_id: str | None,
             sequencer: str, when: datetime) -> dict[str, Any]:
    """One S3 ``ObjectCreated:Put`` notification, key URL-encoded as S3 sends it."""
    obj: dict[str, Any] = {
        "key": quote_plus(key), "size": size, "eTag": etag, "sequencer": sequencer}
    if version_id:
        obj["versionId"] = version_id
    return {"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": REGION,
        "eventTime": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:BENCH"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "BENCH", "x-amz-id-2": "BENCH"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "bench",
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": "BENCH"},
                       "arn": f"arn:aws:s3:::{bucket}"},
            "object": obj,
        },
    }]}


def sqs_event(
    bodies: list[str], queue_arn: str, handles: list[str] | None = None
) -> dict[str, Any]:
    """A Lambda SQS event with one record per body."""
    records = []
    for i, body in enumerate(bodies):
        r = copy.deepcopy(SQS_RECORD)
        r.update(messageId=f"bench-{i}", receiptHandle=(handles or [f"h{i}"] * len(bodies))[i],
                 body=body, eventSourceARN=queue_arn)
        records.append(r)
    return {"Records": records}


class MotoPipeline:
    """moto in process with the template's buckets and publish queue; a context manager."""

    def __init__(self) -> None:
        from opendepot.config import Settings

        self.defaults = Settings()
        self._mock: Any = None
        self.s3: Any = None
        self.sqs: Any = None
        self.runtime: Any = None
        self.queue_arn = f"arn:aws:sqs:{REGION}:123456789012:opendepot-publish.fifo"
        self._seq = 0

    def __enter__(self) -> MotoPipeline:
        import boto3
        from moto import mock_aws

        from infra import moto_disk
        from opendepot import runtime
        from opendepot.config import Settings
        from opendepot.registry import load_cog, load_registry
        from opendepot.storage import S3Store, SqsQueue

        fake_credentials()
        moto_disk.apply()  # moto keeps large objects on disk, as on the local stack
        self._mock = mock_aws()
        self._mock.start()
        self.s3 = boto3.client("s3", region_name=REGION)
        self.sqs = boto3.client("sqs", region_name=REGION)
        d = self.defaults
        for b in (d.incoming_bucket, d.internal_bucket, d.published_bucket):
            self.s3.create_bucket(
                Bucket=b, CreateBucketConfiguration={"LocationConstraint": REGION})
        self.s3.put_bucket_versioning(Bucket=d.incoming_bucket,
                                      VersioningConfiguration={"Status": "Enabled"})
        url = self.sqs.create_queue(QueueName="opendepot-publish.fifo", Attributes={
            "FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
        settings = Settings(publish_queue_url=url)
        self.runtime = runtime.Runtime(settings, S3Store(self.s3), SqsQueue(self.sqs),
                                       load_registry(), load_cog())
        runtime.use(self.runtime)
        # the handlers' modules (and Powertools) are imported here, outside any timing: the
        # Lambda init phase, not the invocation
        import functions.publish.app  # noqa: F401
        import functions.validate.app  # noqa: F401
        return self

    def __exit__(self, *exc: object) -> None:
        from opendepot import runtime

        runtime.use(None)
        if self._mock is not None:
            self._mock.stop()
            self._mock = None

    @property
    def settings(self) -> Any:
        return self.runtime.settings

    def key_for(self, name: str) -> str:
        return f"{DATASET}/{PRODUCER}/{name}"

    def upload(self, key: str, body: bytes) -> dict[str, Any]:
        """Put ``body`` into the incoming bucket; return the validate function's SQS event."""
        r = self.s3.put_object(Bucket=self.settings.incoming_bucket, Key=key, Body=body)
        self._seq += 1
        note = s3_event(self.settings.incoming_bucket, key, len(body), r["ETag"].strip('"'),
                        r.get("VersionId"), f"{self._seq:016X}", datetime.now(UTC))
        return sqs_event([json.dumps(note)],
                         f"arn:aws:sqs:{REGION}:123456789012:opendepot-validate")

    def validate(self, event: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        """Run the validate handler; (seconds, response)."""
        return run_validate(event)

    def publish_messages(self) -> list[dict[str, Any]]:
        """The messages waiting in the publish queue (received, not yet deleted)."""
        r = self.sqs.receive_message(QueueUrl=self.settings.publish_queue_url,
                                     MaxNumberOfMessages=10, AttributeNames=["All"])
        return list(r.get("Messages") or [])

    def publish(self, messages: list[dict[str, Any]]) -> tuple[float, dict[str, Any]]:
        """Run the publish handler on received messages, then delete them; (seconds, response)."""
        from functions.publish import app

        event = publish_event(messages, self.queue_arn)
        started = time.perf_counter()
        out = app.lambda_handler(event, Context(function_name="opendepot-publish"))
        seconds = time.perf_counter() - started
        for m in messages:
            self.sqs.delete_message(QueueUrl=self.settings.publish_queue_url,
                                    ReceiptHandle=m["ReceiptHandle"])
        return seconds, out

    def send_publish_request(self, body: str) -> None:
        self.sqs.send_message(QueueUrl=self.settings.publish_queue_url, MessageBody=body,
                              MessageGroupId=DATASET)

    def manifest(self) -> dict[str, Any] | None:
        from opendepot import layout

        try:
            body = self.s3.get_object(Bucket=self.settings.published_bucket,
                                      Key=layout.manifest_key(DATASET))["Body"].read()
        except self.s3.exceptions.NoSuchKey:
            return None
        return json.loads(body)

    def report(self, key: str) -> dict[str, Any] | None:
        """The newest validation report written for ``key`` (None if there is none)."""
        from opendepot import layout

        prefix = layout.report_prefix(DATASET, PRODUCER)
        reports = self.s3.list_objects_v2(Bucket=self.settings.internal_bucket,
                                          Prefix=prefix).get("Contents", [])
        for o in sorted(reports, key=lambda o: o["Key"], reverse=True):
            doc = json.loads(self.s3.get_object(Bucket=self.settings.internal_bucket,
                                                Key=o["Key"])["Body"].read())
            if doc.get("opendepot", {}).get("key") == key:
                return doc
        return None

    # -- staging kept between the validate child and the publish child
    def save_staging(self, directory: Path, messages: list[dict[str, Any]]) -> None:
        """Copy ``staging/`` of the internal bucket and the publish messages to ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        bucket = self.settings.internal_bucket
        keys: list[dict[str, str]] = []
        from opendepot import layout

        listed = self.s3.list_objects_v2(Bucket=bucket, Prefix=layout.STAGING)
        for o in listed.get("Contents", []):
            name = f"{len(keys):04d}.bin"
            self.s3.download_file(bucket, o["Key"], str(directory / name))
            keys.append({"key": o["Key"], "file": name})
        (directory / "staging.json").write_text(json.dumps(
            {"objects": keys, "messages": [m["Body"] for m in messages]}, indent=1))

    def load_staging(self, directory: Path) -> None:
        """Put what ``save_staging`` saved back into the internal bucket and the publish queue."""
        index = json.loads((directory / "staging.json").read_text())
        for o in index["objects"]:
            self.s3.upload_file(str(directory / o["file"]), self.settings.internal_bucket, o["key"])
        for body in index["messages"]:
            self.send_publish_request(body)
