"""The storage port: ``S3Store`` (on moto) and ``MemoryStore`` answer ``head`` alike, with the
object's content type and ``Cache-Control``."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from opendepot.storage import (
    MULTIPART_THRESHOLD,
    PART_SIZE,
    MemoryStore,
    NotFound,
    PreconditionFailed,
    S3Store,
    Store,
    etags_of,
)

B = "opendepot-published-123456789012"


@pytest.fixture(params=["s3", "memory"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-3")
        s3.create_bucket(Bucket=B, CreateBucketConfiguration={"LocationConstraint": "eu-west-3"})
        yield S3Store(s3)


def test_head__gives_content_type_and_cache_control_as_written_and_copied(store: Store) -> None:
    etag = store.put(B, "ds/v1/ds-dep.csv", b"dep;n\n01;2\n", "text/csv; charset=utf-8",
                     cache_control="public, max-age=31536000, immutable")
    head = store.head(B, "ds/v1/ds-dep.csv")
    assert head is not None
    assert (head.size, head.etag, head.content_type, head.cache_control) == (
        11, etag, "text/csv; charset=utf-8", "public, max-age=31536000, immutable")
    store.copy(B, "ds/v1/ds-dep.csv", "ds/latest/ds-dep.csv", cache_control="no-cache")
    latest = store.head(B, "ds/latest/ds-dep.csv")
    assert latest is not None
    assert (latest.etag, latest.content_type, latest.cache_control) == (
        etag, "text/csv; charset=utf-8", "no-cache")
    store.put(B, "ds/manifest.json", b"{}", "application/json")
    plain = store.head(B, "ds/manifest.json")
    assert plain is not None and plain.cache_control is None
    assert store.head(B, "ds/missing.json") is None


REAL_CSV = (Path(__file__).resolve().parent.parent / ".." / "shared" / "data" / "real"
            / "donnees-hospitalieres-covid19" / "donnees-hospitalieres-covid19-2021-03-17-17h03.csv")


@pytest.fixture
def s3store() -> Iterator[S3Store]:
    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-3")
        s3.create_bucket(Bucket=B, CreateBucketConfiguration={"LocationConstraint": "eu-west-3"})
        yield S3Store(s3)


def big_body() -> bytes:
    """The real hospital CSV repeated past ``MULTIPART_THRESHOLD`` (3,852,766 bytes x 18)."""
    body = REAL_CSV.read_bytes() * (MULTIPART_THRESHOLD // REAL_CSV.stat().st_size + 1)
    assert len(body) > MULTIPART_THRESHOLD
    return body


def test_put_and_copy_above_the_threshold__go_multipart_and_round_trip_with_metadata(
        s3store: S3Store, tmp_path: Path) -> None:
    body = big_body()
    parts = -(-len(body) // PART_SIZE)
    src = tmp_path / "dep.csv"
    src.write_bytes(body)
    with src.open("rb") as f:
        etag = s3store.put(B, "ds/v1/dep.csv", f, "text/csv; charset=utf-8",
                           cache_control="public, max-age=60")
    assert etag.endswith(f"-{parts}")
    s3store.copy(B, "ds/v1/dep.csv", "ds/latest/dep.csv", cache_control="no-cache")
    s3store.copy(B, "ds/v1/dep.csv", "ds/v2/dep.csv")
    for key, cache in (("ds/v1/dep.csv", "public, max-age=60"),
                       ("ds/latest/dep.csv", "no-cache"), ("ds/v2/dep.csv", "public, max-age=60")):
        head = s3store.head(B, key)
        assert head is not None
        assert (head.size, head.content_type, head.cache_control) == (
            len(body), "text/csv; charset=utf-8", cache)
        assert head.etag.endswith(f"-{parts}")
        out = io.BytesIO()
        assert s3store.get_file(B, key, out) == len(body)
        assert hashlib.sha256(out.getvalue()).digest() == hashlib.sha256(body).digest()


def test_conditional_puts_above_the_threshold__keep_their_preconditions_and_known_etags(
        s3store: S3Store, tmp_path: Path) -> None:
    body = big_body()
    src = tmp_path / "dep.csv"
    src.write_bytes(body)
    md5 = hashlib.md5(body, usedforsecurity=False).hexdigest()
    with src.open("rb") as f:  # if_none_match: multipart, If-None-Match on the completion
        etag = s3store.put(B, "ds/v1/dep.csv", f, "text/csv", if_none_match=True)
    assert etag.endswith(f"-{-(-len(body) // PART_SIZE)}")
    assert etags_of(src) == etags_of(body) == {md5, etag}
    with pytest.raises(PreconditionFailed), src.open("rb") as f:
        s3store.put(B, "ds/v1/dep.csv", f, "text/csv", if_none_match=True)
    again = s3store.put(B, "ds/v1/dep.csv", body, "text/csv", if_match=etag)  # one request
    assert again == md5
    with pytest.raises(PreconditionFailed):
        s3store.put(B, "ds/v1/dep.csv", body, "text/csv", if_match=etag)
    assert etags_of(b"dep;n\n") == {hashlib.md5(b"dep;n\n", usedforsecurity=False).hexdigest()}


def test_get_file__reads_empty_objects_and_raises_not_found_for_missing_ones(
        s3store: S3Store) -> None:
    s3store.put(B, "empty.csv", b"", "text/csv")
    out = io.BytesIO()
    assert s3store.get_file(B, "empty.csv", out) == 0 and out.getvalue() == b""
    with pytest.raises(NotFound):
        s3store.get_file(B, "missing.csv", out)
    with pytest.raises(NotFound):
        s3store.copy(B, "missing.csv", "other.csv")
