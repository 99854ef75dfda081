"""The storage port: ``S3Store`` (on moto) and ``MemoryStore`` answer ``head`` alike, with the
object's content type and ``Cache-Control``."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from opendepot.storage import MemoryStore, S3Store, Store

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
