"""The local stack does not hold whole objects in memory: a child process moves a 256 MiB
object (a real published-style CSV, repeated) through ``S3Store`` on moto's server with
``infra.moto_disk`` applied, and each operation's peak resident memory stays bounded while the
bytes round-trip exactly. Also the patched moto's answers: ranges, part copies and multipart
checksums equal S3's."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import moto
import pytest
from moto import mock_aws

from infra import moto_disk
from opendepot.storage import PART_SIZE, S3Store, checksum_of

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT / ".." / "shared" / "data" / "real" / "donnees-hospitalieres-covid19"
CSV = REAL / "donnees-hospitalieres-covid19-2021-03-17-17h03.csv"
B = "opendepot-published-123456789012"

BOUND_MIB = 128
"""Peak above the resident size before each operation. A put has 2 parts of 8 MiB in flight
(``TRANSFER_THREADS``, ``PART_SIZE``); each is held about 4 times in this one process (the
client's read, werkzeug's bytearray and bytes, moto's spooled file before it rolls to disk): 64
MiB, plus the allocator's slack. Unpatched moto took 300 to 1,240 MiB for a 300 MiB object."""


@pytest.mark.e2e
def test_256_mib_through_s3store_on_the_local_stack__peaks_bounded_bytes_exact(
        tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.memory", "--size-mib", "256", "--seed", str(CSV)],
        cwd=ROOT, capture_output=True, text=True, timeout=900, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    peaks = result["peak_above_baseline_mib"]
    assert set(peaks) == {"put", "get_file", "copy", "ranges"}
    assert all(mib < BOUND_MIB for mib in peaks.values()), peaks
    sums = result["sha256"]
    assert sums["get_file"] == sums["copy"] == sums["ranges"] == sums["source"]
    first = CSV.read_bytes()
    expected = hashlib.sha256()
    left = 256 << 20
    while left > 0:
        expected.update(first[:left])
        left -= min(len(first), left)
    assert sums["source"] == expected.hexdigest()


@pytest.fixture
def s3() -> Iterator[object]:
    moto_disk.apply()
    with mock_aws():
        client = boto3.client("s3", region_name="eu-west-3")
        client.create_bucket(
            Bucket=B, CreateBucketConfiguration={"LocationConstraint": "eu-west-3"})
        yield client


def test_patched_moto__answers_ranges_like_s3(s3: object) -> None:
    body = CSV.read_bytes()
    store = S3Store(s3)
    store.put(B, "dep.csv", body, "text/csv")
    assert store.get_range(B, "dep.csv", 0, 40) == body[:40]
    assert store.get_range(B, "dep.csv", 1_000_000, 5) == body[1_000_000:1_000_005]
    assert store.get_range(B, "dep.csv", len(body) - 3, 100) == body[-3:]
    got = s3.get_object(Bucket=B, Key="dep.csv", Range="bytes=-11")  # type: ignore[attr-defined]
    assert got["ContentRange"] == f"bytes {len(body) - 11}-{len(body) - 1}/{len(body)}"
    assert got["Body"].read() == body[-11:]


def test_patched_moto_multipart__full_object_crc_and_part_copies_match_the_content(
        s3: object) -> None:
    part = CSV.read_bytes()[: PART_SIZE // 2] * 2  # 2 parts above S3's 5 MiB minimum
    body = part + part[:1234]
    up = s3.create_multipart_upload(  # type: ignore[attr-defined]
        Bucket=B, Key="big.csv", ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT")
    etags = [s3.upload_part(  # type: ignore[attr-defined]
        Bucket=B, Key="big.csv", UploadId=up["UploadId"], PartNumber=n, Body=chunk,
        ChecksumAlgorithm="CRC32")["ETag"] for n, chunk in ((1, part), (2, part[:1234]))]
    s3.complete_multipart_upload(  # type: ignore[attr-defined]
        Bucket=B, Key="big.csv", UploadId=up["UploadId"], MultipartUpload={
            "Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]})
    head = S3Store(s3).head(B, "big.csv")
    assert head is not None and head.size == len(body) and head.etag.endswith("-2")
    assert head.checksum is not None and head.checksum.value == checksum_of("CRC32", body)
    out = io.BytesIO()
    assert S3Store(s3).get_file(B, "big.csv", out) == len(body)
    assert out.getvalue() == body
    up = s3.create_multipart_upload(Bucket=B, Key="copy.csv")  # type: ignore[attr-defined]
    copied = s3.upload_part_copy(  # type: ignore[attr-defined]
        Bucket=B, Key="copy.csv", UploadId=up["UploadId"], PartNumber=1,
        CopySource={"Bucket": B, "Key": "big.csv"}, CopySourceRange="bytes=1000-2999")
    s3.complete_multipart_upload(  # type: ignore[attr-defined]
        Bucket=B, Key="copy.csv", UploadId=up["UploadId"], MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": copied["CopyPartResult"]["ETag"]}]})
    assert S3Store(s3).get(B, "copy.csv") == body[1000:3000]


def test_moto_disk_on_another_moto_version__refuses_to_patch(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(moto, "__version__", "5.3.0")
    with pytest.raises(moto_disk.MotoVersionError, match="5.3.0"):
        moto_disk.apply()
