"""The typed records that cross stages (``opendepot.contracts``) and the key layout
(``opendepot.layout``): exact round trips of the JSON the stages write, unknown keys kept,
bad documents refused naming record and key, and every key and id of a real publication made
by the layout."""

from __future__ import annotations

import json
import string
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import HOSP, REAL, Pipeline
from opendepot import layout
from opendepot.config import Settings
from opendepot.contracts import (
    Catalog,
    CatalogEntry,
    ContractError,
    Coverage,
    FedSource,
    FedUpload,
    Manifest,
    PublishMessage,
    Resource,
    SiteMessage,
    UploadRecord,
    Version,
    VersionFile,
    VersionUpload,
    upload_from_json,
)
from opendepot.storage import MemoryQueue, MemoryStore

HOSP_FILE = REAL / HOSP / "donnees-hospitalieres-covid19-2021-03-17-17h03.csv"

# ------------------------------------------------------------------ strategies

text = st.text(max_size=12)
slug = st.text(string.ascii_lowercase + "-", min_size=1, max_size=12)
count = st.integers(min_value=0, max_value=2**53)
counts = st.dictionaries(slug, count, max_size=4)
scalar = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
json_value = st.recursive(scalar, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(text, inner, max_size=3), max_leaves=8)
schema = st.dictionaries(text, json_value, max_size=4)


def extras(known: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any]]:
    """Keys a newer writer might add (never one the record knows)."""
    return st.dictionaries(slug.filter(lambda k: k not in known), json_value, max_size=2)


upload_records = st.builds(
    UploadRecord, key=text, bucket=text, version_id=st.none() | text, etag=text, sequencer=text,
    received_at=text, size=count, upload_id=text, dataset=slug, producer=slug, rows=count,
    rows_left_out=count, areas=st.none() | count, sha256=text, bytes=count, report_key=text,
    staged_key=text, extra=extras(UploadRecord.FIELDS))
fed_uploads = st.builds(
    FedUpload, upload_id=text, producer=slug,
    feed=st.builds(FedSource, dataset=slug, version=text, level=slug, path=text),
    received_at=text, extra=extras(FedUpload.FIELDS))
resources = st.builds(
    Resource, id=text, name=text, title=text, level=slug, format=slug, mime=text, path=text,
    latest_path=text, sha256=text, bytes=count, rows=count, last_modified=text,
    extra=extras(Resource.FIELDS))
coverages = st.none() | st.builds(Coverage, start=text, end=text)
versions = st.builds(
    Version, version=text, published_at=text, upload_ids=st.lists(text, max_size=3).map(tuple),
    uploads=st.lists(st.builds(VersionUpload, upload_id=text, producer=slug), max_size=3)
    .map(tuple),
    rows=counts,
    resources=st.lists(st.builds(VersionFile, name=text, format=slug, path=text, sha256=text,
                                 bytes=count, rows=count, extra=extras(VersionFile.FIELDS)),
                       max_size=3).map(tuple),
    extra=extras(Version.FIELDS))
manifests = st.builds(
    Manifest, dataset=slug, version=text, published_at=text, created_at=text,
    uploads=st.lists(upload_records | fed_uploads, max_size=3).map(tuple), rows=counts,
    rows_left_out=count, temporal_coverage=coverages,
    resources=st.lists(resources, max_size=3).map(tuple), datapackage_path=text, schema=schema,
    schemas=st.dictionaries(slug, schema, max_size=2),
    versions=st.lists(versions, max_size=2).map(tuple), extra=extras(Manifest.FIELDS))
entries = st.builds(
    CatalogEntry, name=slug, title=text, description=text,
    organization=st.dictionaries(st.sampled_from(["name", "slug", "id"]), text), license=text,
    frequency=text, tags=st.lists(text, max_size=3).map(tuple), version=text,
    published_at=text, created_at=text, rows=counts, rows_left_out=count,
    temporal_coverage=coverages, levels=st.lists(slug, max_size=3).map(tuple),
    resources=st.lists(resources, max_size=2).map(tuple),
    schemas=st.dictionaries(slug, schema, max_size=2), manifest_path=text,
    extra=extras(CatalogEntry.FIELDS))
catalogs = st.builds(Catalog, generated_at=text, datasets=st.lists(entries, max_size=3)
                     .map(tuple), extra=extras(Catalog.FIELDS))


def through_json(doc: dict[str, Any]) -> dict[str, Any]:
    """What a reader gets back from storage."""
    loaded: dict[str, Any] = json.loads(json.dumps(doc, ensure_ascii=False))
    return loaded


# ------------------------------------------------------------------ round trips


@settings(max_examples=60, deadline=None)
@given(st.one_of(upload_records, fed_uploads, resources, versions, manifests, catalogs))
def test_round_trip__record_to_json_and_back_is_the_same_record_and_bytes(record: Any) -> None:
    stored = through_json(record.to_json())
    again = type(record).from_json(stored)
    assert again == record
    assert json.dumps(again.to_json()) == json.dumps(stored)  # same keys, same order


@settings(max_examples=30, deadline=None)
@given(st.one_of(upload_records, fed_uploads))
def test_manifest_uploads__fed_versions_and_upload_records_told_apart(upload: Any) -> None:
    assert upload_from_json(through_json(upload.to_json())) == upload


def test_unknown_keys__kept_in_extra_and_written_back_after_the_known_ones() -> None:
    doc = {"dataset": "d", "upload_id": "u"}
    assert PublishMessage.from_json(doc).to_json() == doc
    resource = {"id": "i", "name": "n", "title": "t", "level": "dep", "format": "csv",
                "mime": "text/csv", "path": "p", "latest_path": "l", "sha256": "s", "bytes": 1,
                "rows": 2, "last_modified": "m", "checksum_md5": "abc"}
    parsed = Resource.from_json(resource)
    assert parsed.extra == {"checksum_md5": "abc"} and parsed.rows == 2
    assert list(parsed.to_json()) == list(resource)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rows": "110595"}, "UploadRecord.rows: expected an integer, got '110595'"),
        ({"rows": True}, "UploadRecord.rows: expected an integer, got True"),
        ({"staged_key": None}, "UploadRecord.staged_key: expected a string, got None"),
        ({"areas": "101"}, "UploadRecord.areas: expected an integer or null, got '101'"),
    ],
)
def test_bad_upload_record__refused_naming_record_and_key(
    change: dict[str, Any], message: str, published: dict[str, bytes]
) -> None:
    record = json.loads(published["record"])
    with pytest.raises(ContractError) as err:
        UploadRecord.from_json({**record, **change})
    assert str(err.value) == message


def test_missing_key__refused_naming_record_and_key(published: dict[str, bytes]) -> None:
    manifest = json.loads(published["manifest"])
    del manifest["resources"][1]["sha256"]
    with pytest.raises(ContractError, match=r"^Resource\.sha256: missing$"):
        Manifest.from_json(manifest)
    with pytest.raises(ContractError, match=r"^PublishMessage\.dataset: missing$"):
        PublishMessage.from_json({"upload_id": "x"})
    with pytest.raises(ContractError, match=r"^SiteMessage\.dataset: missing$"):
        SiteMessage.from_json({"version": "2021-03-17-17h03m00s"})


def test_site_message__round_trips_and_names_its_dataset_and_version() -> None:
    doc = {"dataset": HOSP, "version": "2021-03-17-17h03m00s"}
    assert SiteMessage.from_json(doc) == SiteMessage(HOSP, "2021-03-17-17h03m00s")
    assert SiteMessage.from_json(doc).to_json() == doc
    assert SiteMessage.from_json({"dataset": HOSP}).version == ""  # informational only
    with pytest.raises(ContractError, match=r"^SiteMessage\.version: expected a string"):
        SiteMessage.from_json({"dataset": HOSP, "version": 7})


# ------------------------------------------------------------------ a real publication


@pytest.fixture(scope="module")
def published() -> dict[str, bytes]:
    """The real hospital file validated and published over the in-memory store: the stored
    upload record, manifest and catalog, as bytes."""
    p = Pipeline(MemoryStore(), MemoryQueue(), Settings(publish_queue_url="memory://publish"),
                 datetime(2026, 11, 29, tzinfo=UTC))
    out = p.drop(f"{HOSP}/spf/{HOSP_FILE.name}", HOSP_FILE.read_bytes())
    assert out.status == "accepted" and out.upload_id is not None
    assert p.publish().created
    internal = p.settings.internal_bucket
    record = p.store.get(internal, layout.staged_record_key(HOSP, "spf", out.upload_id))
    message = p.queue.sent[0][1]
    return {"record": record, "manifest": p.published(layout.manifest_key(HOSP)),
            "catalog": p.published(layout.CATALOG_KEY), "message": json.dumps(message).encode()}


def test_real_publication__stored_json_reads_and_writes_back_byte_for_byte(
    published: dict[str, bytes],
) -> None:
    def again(record: Any, compact: bool = False) -> bytes:
        """As publication writes it: records indented, manifest and catalog compact."""
        layout_ = {"separators": (",", ":")} if compact else {"indent": 1}
        return json.dumps(record.to_json(), ensure_ascii=False, **layout_).encode("utf-8")

    assert again(UploadRecord.from_json(json.loads(published["record"]))) == published["record"]
    assert again(Manifest.from_json(json.loads(published["manifest"])),
                 True) == published["manifest"]
    assert again(Catalog.from_json(json.loads(published["catalog"])), True) == published["catalog"]


def test_real_publication__values_and_every_key_from_the_layout(
    published: dict[str, bytes],
) -> None:
    m = Manifest.from_json(json.loads(published["manifest"]))
    assert dict(m.rows) == {"dep": 110595, "reg": 19710, "fra": 1095}
    assert m.temporal_coverage == Coverage("2020-03-18", "2021-03-17")
    assert m.rows_left_out == 0 and m.created_at == m.published_at
    (upload,) = m.uploads
    assert isinstance(upload, UploadRecord)
    assert (upload.rows, upload.areas, upload.size, upload.bytes) == (110595, 101, 3852766, 3852766)
    assert upload.sha256 == "8e716d4ab708e78e1f75edcfd3f1df3d96d614ab2d1e66730a08ca1414f187d4"
    assert upload.report_key == layout.report_key(HOSP, "spf", upload.upload_id)
    assert upload.staged_key == layout.staged_parquet_key(HOSP, "spf", upload.upload_id)
    assert upload.upload_id == layout.upload_id(
        datetime(2026, 11, 29, 0, 1, tzinfo=UTC), upload.key, "v1", upload.etag, "")
    assert UploadRecord.from_json(json.loads(published["record"])) == upload
    assert PublishMessage.from_json(json.loads(published["message"])) == PublishMessage(
        HOSP, upload.upload_id)
    assert m.datapackage_path == layout.datapackage_key(HOSP, m.version)
    assert [(r.level, r.format) for r in m.resources] == [
        (lv, fmt) for lv in ("dep", "reg", "fra") for fmt in ("csv", "parquet")]
    for r in m.resources:
        assert r.id == layout.resource_id(HOSP, r.level, r.format)
        assert r.path == layout.published_file_key(HOSP, m.version, r.level, r.format)
        assert r.latest_path == layout.latest_key(HOSP, r.level, r.format)
    (version,) = m.versions
    assert version.upload_ids == m.upload_ids == (upload.upload_id,)
    assert version.resources == tuple(VersionFile.of(r) for r in m.resources)
    (entry,) = Catalog.from_json(json.loads(published["catalog"])).datasets
    assert entry.manifest_path == layout.manifest_key(HOSP)
    assert (entry.version, entry.resources, entry.rows) == (m.version, m.resources, m.rows)


def test_fed_upload__the_feed_entry_of_a_manifest() -> None:
    fed = FedUpload(layout.fed_upload_id(HOSP, "2026-11-29-00h01m05s"), "feed-producer",
                    FedSource(HOSP, "2026-11-29-00h01m05s", "dep", "x.parquet"), "t")
    assert fed.to_json() == {
        "upload_id": "donnees-hospitalieres-covid19@2026-11-29-00h01m05s",
        "producer": "feed-producer",
        "feed": {"dataset": HOSP, "version": "2026-11-29-00h01m05s", "level": "dep",
                 "path": "x.parquet"},
        "received_at": "t"}
    assert fed.rows_left_out == 0
    assert replace(fed, producer="p").to_json()["producer"] == "p"


# ------------------------------------------------------------------ layout


def test_layout__ids_keep_their_published_values() -> None:
    # Pinned: resource and dataset ids are in every client's bookmarks (uuid5, never reseeded).
    assert layout.resource_id(HOSP, "dep", "csv") == "c6a03b84-ca1a-5c68-81c0-d194903a013c"
    assert layout.dataset_id(HOSP) == "0e90eb11-c8a1-5f7c-a523-8c0112c2b474"
    assert layout.organization_id("sante-publique-france") == "c2eaeed4-2cec-543b-9a2d-a967b97e7f48"
    t = datetime(2020, 11, 7, 19, 0, 0, tzinfo=UTC)
    uid = layout.upload_id(t, "ds/spf/f.csv", None, "etag", "0055")
    assert uid.startswith("20201107T190000Z-") and len(uid) == 29
    assert uid == layout.upload_id(t, "ds/spf/f.csv", None, "etag", "0055")
    assert uid != layout.upload_id(t, "ds/spf/f.csv", None, "etag", "0056")
    assert layout.upload_id(t, "k", "v1", "a", "b") == layout.upload_id(t, "k", "v1", "c", "d")
    assert layout.version_id(datetime(2026, 11, 29, 7, 30, 12)) == "2026-11-29-07h30m12s"
    assert layout.parse_version("2026-11-29-07h30m12s") == datetime(2026, 11, 29, 7, 30, 12)


def test_layout__key_patterns() -> None:
    assert layout.report_key("ds", "spf", "u") == "reports/ds/spf/u.json"
    assert layout.refused_report_key("u") == "reports/_refused/u.json"
    assert layout.staged_parquet_key("ds", "spf", "u") == "staging/ds/spf/u.parquet"
    assert layout.staged_record_key("ds", "spf", "u") == "staging/ds/spf/u.json"
    assert layout.staging_prefix("ds") == "staging/ds/"
    assert layout.is_staged_record("staging/ds/spf/u.json")
    assert not layout.is_staged_record("staging/ds/spf/u.parquet")
    assert layout.manifest_key("ds") == "ds/manifest.json"
    assert layout.CATALOG_KEY == "catalog.json"
    assert layout.published_file_key("ds", "v", "reg", "csv") == "ds/v/ds-reg.csv"
    assert layout.latest_key("ds", "fra", "parquet") == "ds/latest/ds-fra.parquet"
    assert layout.datapackage_key("ds", "v") == "ds/v/datapackage.json"
