"""S3 checksums (``x-amz-checksum-*``): when S3 holds one for an upload (sent by the producer,
or computed by its SDK), the bytes opendepot reads are checked against it and the report
records it (``opendepot.checksum``); a mismatch (a damaged read: S3 refuses a mismatched
upload) raises ``ChecksumMismatch``, an infrastructure failure retried, naming both values. Every S3
algorithm is verified (CRC32C and CRC64NVME with the AWS CRT, as botocore does); multipart
composite checksums are recorded, not verified. On moto (``S3Store``) and in memory
(``MemoryStore``) alike."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import boto3
import pytest
from botocore.httpchecksum import (
    Crc32Checksum,
    CrtCrc32cChecksum,
    CrtCrc64NvmeChecksum,
    Sha1Checksum,
    Sha256Checksum,
)
from moto import mock_aws

from conftest import HOSP
from opendepot import layout
from opendepot.config import Settings
from opendepot.failures import is_infrastructure
from opendepot.ingest import IngestOutcome, ObjectEvent, ingest
from opendepot.registry import load_cog, load_registry
from opendepot.storage import (
    Checksum,
    ChecksumDigest,
    ChecksumMismatch,
    MemoryQueue,
    MemoryStore,
    S3Store,
    Store,
    checksum_of,
)

KEY = f"{HOSP}/spf/C10-duplicate-delivery-object.csv"
T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
SETTINGS = Settings(publish_queue_url="memory://publish.fifo")
IN = SETTINGS.incoming_bucket
ORACLES = {"CRC32": Crc32Checksum, "SHA1": Sha1Checksum, "SHA256": Sha256Checksum,
           "CRC32C": CrtCrc32cChecksum, "CRC64NVME": CrtCrc64NvmeChecksum}
"""botocore's own implementations: the values the SDK sends as x-amz-checksum-*."""


@pytest.fixture
def body(cases_dir: Path) -> bytes:
    return (cases_dir / "C10-duplicate-delivery-object.csv").read_bytes()


def run(store: Store, etag: str, body: bytes, version: str | None = "v1") -> IngestOutcome:
    event = ObjectEvent(IN, KEY, len(body), etag, version, "0000000000000001", T0)
    return ingest(store, MemoryQueue(), SETTINGS, load_registry(), load_cog(), event)


def oracle(algorithm: str, body: bytes) -> str:
    value: str = ORACLES[algorithm]().handle(body)
    return value


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "eu-west-3"}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_REQUEST_CHECKSUM_CALCULATION"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        client = boto3.client("s3")
        for b in (IN, SETTINGS.internal_bucket):
            client.create_bucket(Bucket=b,
                                 CreateBucketConfiguration={"LocationConstraint": "eu-west-3"})
        client.put_bucket_versioning(Bucket=IN, VersioningConfiguration={"Status": "Enabled"})
        yield client


# ------------------------------------------------------------------------------- the digests


@pytest.mark.parametrize("algorithm", sorted(ORACLES))
def test_checksum_digest__same_value_as_botocore_whole_or_in_pieces(algorithm, body):
    digest = ChecksumDigest(algorithm)
    for start in range(0, len(body), 7):
        digest.update(body[start:start + 7])
    assert digest.value() == checksum_of(algorithm, body) == oracle(algorithm, body)


def test_checksum_digest__an_unknown_algorithm_refused():
    with pytest.raises(ValueError, match="cannot compute a MD5 checksum"):
        ChecksumDigest("MD5")


def test_checksum_digest__known_values_of_the_crcs():
    # the check values of the CRC catalogue ("123456789"), as S3 writes them (big-endian base64)
    check = {"CRC32": 0xCBF43926, "CRC32C": 0xE3069283, "CRC64NVME": 0xAE8B14860A799888}
    for algorithm, value in check.items():
        width = 8 if algorithm == "CRC64NVME" else 4
        expected = base64.b64encode(value.to_bytes(width, "big")).decode("ascii")
        assert checksum_of(algorithm, b"123456789") == expected


# ---------------------------------------------------------------------------- on moto (S3)


@pytest.mark.parametrize("algorithm", ["SHA256", "SHA1", "CRC32", "CRC32C", "CRC64NVME", None])
def test_checksum_sent_with_the_upload__verified_and_recorded_on_s3(s3, body, algorithm):
    extra = {"ChecksumAlgorithm": algorithm} if algorithm else {}
    put = s3.put_object(Bucket=IN, Key=KEY, Body=body, **extra)
    expected = algorithm or "CRC32"  # boto3 >= 1.36 sends a CRC32 when none is asked for
    sent = put[f"Checksum{expected}"]

    out = run(S3Store(s3), put["ETag"].strip('"'), body, put["VersionId"])

    assert out.status == "accepted"
    assert sent == oracle(expected, body)
    assert out.report is not None
    assert out.report["opendepot"]["checksum"] == {
        "algorithm": expected, "type": "FULL_OBJECT", "value": sent, "computed": sent,
        "verified": True}
    stored = json.loads(s3.get_object(Bucket=SETTINGS.internal_bucket,
                                      Key=out.report_key)["Body"].read())
    assert stored["opendepot"]["checksum"]["verified"] is True


class Corrupting:
    """Reads one digit wrong (33 becomes 32 on the last line): what a corrupted read would
    give, still a valid CSV that would otherwise be published."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def get_file(self, bucket: str, key: str, out: BinaryIO, *, version_id: str | None = None
                 ) -> int:
        buf = io.BytesIO()
        size = self.inner.get_file(bucket, key, buf, version_id=version_id)
        data = bytearray(buf.getvalue())
        data[-2] ^= 1
        out.write(bytes(data))
        return size


def test_bytes_read_differ_from_the_checksum__retried_naming_both_values_on_s3(s3, body):
    put = s3.put_object(Bucket=IN, Key=KEY, Body=body, ChecksumAlgorithm="SHA256")
    read = body[:-2] + b"2\n"
    assert body.endswith(b"33\n")

    with pytest.raises(ChecksumMismatch) as raised:
        run(Corrupting(S3Store(s3)), put["ETag"].strip('"'), body, put["VersionId"])

    stored, computed = oracle("SHA256", body), oracle("SHA256", read)
    assert is_infrastructure(raised.value)  # the queue retries it; no report for the producer
    assert str(raised.value) == (
        f"the SHA256 checksum stored with the upload is {stored}, but the {len(body)} bytes "
        f"opendepot read give {computed}: what was read is not what was uploaded (S3 refuses "
        "an upload whose checksum does not match, so the copy read was damaged on its way), "
        "so nothing was validated or published; it is read again.")
    for bucket_prefix in (layout.STAGING, "reports/"):
        assert s3.list_objects_v2(Bucket=SETTINGS.internal_bucket,
                                  Prefix=bucket_prefix).get("KeyCount") == 0
    # read again undamaged (the retry): accepted, the checksum verified
    out = run(S3Store(s3), put["ETag"].strip('"'), body, put["VersionId"])
    assert out.status == "accepted" and out.report is not None
    assert out.report["opendepot"]["checksum"]["verified"] is True


def test_multipart_upload__composite_checksum_on_s3(s3):
    mp = s3.create_multipart_upload(Bucket=IN, Key=KEY, ChecksumAlgorithm="CRC32")
    parts = []
    for number, data in enumerate([b"x" * (5 << 20), b"y" * 100], 1):
        r = s3.upload_part(Bucket=IN, Key=KEY, UploadId=mp["UploadId"], PartNumber=number,
                           Body=data, ChecksumAlgorithm="CRC32")
        parts.append({"PartNumber": number, "ETag": r["ETag"], "ChecksumCRC32": r["ChecksumCRC32"]})
    s3.complete_multipart_upload(Bucket=IN, Key=KEY, UploadId=mp["UploadId"],
                                 MultipartUpload={"Parts": parts})

    head = S3Store(s3).head(IN, KEY)

    assert head is not None and head.etag.endswith("-2")
    assert head.checksum is not None
    assert (head.checksum.algorithm, head.checksum.type) == ("CRC32", "COMPOSITE")
    assert head.checksum.value != checksum_of("CRC32", b"x" * (5 << 20) + b"y" * 100)


# ----------------------------------------------------------------------------- in memory


@pytest.mark.parametrize("algorithm", sorted(ORACLES))
def test_memory_store__stores_the_checksum_s3_would(s3, body, algorithm):
    memory = MemoryStore()
    memory.put(IN, KEY, body, "text/csv", checksum_algorithm=algorithm)
    put = s3.put_object(Bucket=IN, Key=KEY, Body=body, ChecksumAlgorithm=algorithm)
    on_s3 = S3Store(s3).head(IN, KEY, version_id=put["VersionId"])
    in_memory = memory.head(IN, KEY)

    assert in_memory is not None and on_s3 is not None
    assert in_memory.checksum == on_s3.checksum == Checksum(algorithm, oracle(algorithm, body))


def test_memory_store__checksum_verified_mismatch_retried(body):
    memory = MemoryStore()
    etag = memory.put(IN, KEY, body, "text/csv", checksum_algorithm="CRC32")
    first = run(memory, etag, body).report
    assert first is not None and first["opendepot"]["checksum"]["verified"] is True
    staged = memory.list(SETTINGS.internal_bucket, layout.STAGING)
    assert len(staged) == 2  # the first upload's Parquet and record

    other = oracle("CRC32", body + b"\n")
    obj = memory.buckets[IN][KEY]
    memory.buckets[IN][KEY] = dataclasses.replace(obj, checksum=Checksum("CRC32", other))
    with pytest.raises(ChecksumMismatch, match=(
            f"^the CRC32 checksum stored with the upload is {re.escape(other)}, but the "
            f"{len(body)} bytes opendepot read give {re.escape(oracle('CRC32', body))}:")):
        run(memory, etag, body, "v2")

    assert memory.list(SETTINGS.internal_bucket, layout.STAGING) == staged  # nothing new


@pytest.mark.parametrize(("checksum", "note"), [
    (Checksum("CRC32", "pKNgKw==-2", "COMPOSITE"),
     "a multipart upload's composite checksum (of its parts' checksums) cannot be recomputed "
     "from the content"),
])
def test_checksum_not_computable__recorded_unverified_and_accepted(body, checksum, note):
    memory = MemoryStore()
    etag = memory.put(IN, KEY, body, "text/csv")
    memory.buckets[IN][KEY] = dataclasses.replace(memory.buckets[IN][KEY], checksum=checksum)

    out = run(memory, etag, body)

    assert out.status == "accepted"
    assert out.report is not None
    assert out.report["opendepot"]["checksum"] == {
        "algorithm": checksum.algorithm, "type": checksum.type, "value": checksum.value,
        "computed": None, "verified": None, "note": note}


def test_no_checksum__none_recorded(body):
    memory = MemoryStore()
    out = run(memory, memory.put(IN, KEY, body, "text/csv"), body)
    assert out.status == "accepted"
    assert out.report is not None and out.report["opendepot"]["checksum"] is None
    assert out.report["tasks"][0]["stats"]["sha256"] == hashlib.sha256(body).hexdigest()
