"""Every object key and every id opendepot makes: the one place their patterns are written.

Buckets (see docs/design.md, "Keys"):

- incoming: ``{dataset}/{producer}/{file...}`` (routed by ``opendepot.keys.route``);
- internal: ``reports/{dataset}/{producer}/{upload_id}.json`` (validation report),
  ``reports/_refused/{upload_id}.json`` (report of a key that cannot be trusted as a path),
  ``staging/{dataset}/{producer}/{upload_id}.parquet`` (accepted rows),
  ``staging/{dataset}/{producer}/{upload_id}.json`` (the upload record),
  ``announced/{dataset}/{version}.json`` (the version was announced: ``announced_key``),
  ``index/{dataset}.json`` (the upload index: ``upload_index_key``),
  ``index/{dataset}/folded/{version}.json`` (records folded into a version: ``folded_page_key``),
  ``index/{dataset}/keys/{prefix}-{digest}.json`` (a shard of the folded keys:
  ``folded_shard_key``),
  ``inbox/{dataset}/{upload_id}.json`` (an upload no publication took in yet: ``inbox_key``),
  ``pending/{dataset}/{version}.json`` (the published keys a publication is about to write:
  ``pending_key``);
- published: ``{dataset}/{version}/{dataset}-{level}.{csv|parquet}``,
  ``{dataset}/{version}/datapackage.json``, ``{dataset}/{version}/changes.json|.csv`` (what
  changed against the version before), ``{dataset}/latest/{dataset}-{level}.{fmt}``,
  ``{dataset}/parquet/{level}/{dataset}-{level}.parquet`` (a prefix per level holding only the
  current version's Parquet file: ``parquet_prefix``),
  ``{dataset}/athena/{level}/{version}.txt`` (the Athena table's symlink to a version's Parquet
  file: ``athena_symlink_key``), ``{dataset}/manifest.json``,
  ``{dataset}/versions/{first}--{last}.json`` (older versions moved out of the manifest:
  ``versions_page_key``), ``catalog.json``.

Ids: upload ``{YYYYMMDDTHHMMSSZ}-{12 hex}``; version ``YYYY-MM-DD-HHhMMmSSs`` (UTC); dataset,
resource and organization ids are uuid5 in ``NAMESPACE_URL`` (stable across versions).
Pure functions; none checks that a segment is safe (``opendepot.keys.check_safe`` does, before
any incoming key is routed).
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime

REPORTS = "reports/"
"""Prefix of every validation report (internal bucket)."""
REFUSED_PREFIX = "reports/_refused/"
"""Prefix of the reports of keys refused before routing (internal bucket)."""
STAGING = "staging/"
"""Prefix of every staged upload (internal bucket)."""
ANNOUNCED = "announced/"
"""Prefix of the markers of announced versions (internal bucket)."""
INDEX = "index/"
"""Prefix of the upload indexes and their folded pages (internal bucket)."""
INBOX = "inbox/"
"""Prefix of the uploads staged and not yet taken in by a publication (internal bucket)."""
PENDING = "pending/"
"""Prefix of the markers of publications not yet switched to (internal bucket)."""
MANIFEST_NAME = "manifest.json"
"""File name of a dataset's manifest, under ``{dataset}/``."""
DATAPACKAGE_NAME = "datapackage.json"
"""File name of a version's Data Package descriptor, under ``{dataset}/{version}/``."""
CHANGES_NAME = "changes.json"
"""File name of a version's changes against the one before, under ``{dataset}/{version}/``."""
CHANGES_CSV_NAME = "changes.csv"
"""File name of a version's changed cells, under ``{dataset}/{version}/``."""
CATALOG_KEY = "catalog.json"
"""Key of the catalog (published bucket)."""
LATEST = "latest"
"""The folder of a dataset's stable copies of its current files."""
PARQUET = "parquet"
"""The folder of a dataset's Parquet-only prefixes, one per level (``parquet_prefix``)."""
ATHENA = "athena"
"""The folder of a dataset's Athena table locations, one per level (``athena_prefix``)."""
VERSIONS = "versions"
"""The folder of a dataset's pages of older versions (``versions_page_key``)."""
SITE = "site/"
"""Prefix of the static site's pages and assets (published bucket): ``site/index.html`` is
served at ``/``, ``site/datasets/{slug}/index.html`` at ``/datasets/{slug}/``."""
VERSION_FORMAT = "%Y-%m-%d-%Hh%Mm%Ss"
"""``strftime`` format of a version id (UTC)."""


# --- internal bucket --------------------------------------------------------------------------


def report_prefix(dataset: str, producer: str) -> str:
    """``reports/{dataset}/{producer}/``: a producer's reports."""
    return f"{REPORTS}{dataset}/{producer}/"


def report_key(dataset: str, producer: str, upload_id: str) -> str:
    """``reports/{dataset}/{producer}/{upload_id}.json``."""
    return f"{report_prefix(dataset, producer)}{upload_id}.json"


def refused_report_key(upload_id: str) -> str:
    """``reports/_refused/{upload_id}.json``: an unsafe or unroutable key's report."""
    return f"{REFUSED_PREFIX}{upload_id}.json"


def staging_prefix(dataset: str) -> str:
    """``staging/{dataset}/``: every staged upload of a dataset."""
    return f"{STAGING}{dataset}/"


def staged_parquet_key(dataset: str, producer: str, upload_id: str) -> str:
    """``staging/{dataset}/{producer}/{upload_id}.parquet``: the accepted rows."""
    return f"{staging_prefix(dataset)}{producer}/{upload_id}.parquet"


def staged_record_key(dataset: str, producer: str, upload_id: str) -> str:
    """``staging/{dataset}/{producer}/{upload_id}.json``: the upload record."""
    return f"{staging_prefix(dataset)}{producer}/{upload_id}.json"


def is_staged_record(key: str) -> bool:
    """True for an upload record's key (under ``staging/``, ``.json``), False for staged Parquet."""
    return key.startswith(STAGING) and key.endswith(".json")


def announced_key(dataset: str, version: str) -> str:
    """``announced/{dataset}/{version}.json``: written by the publish function once ``version``
    was announced and its dependent datasets asked to publish (absent: not yet)."""
    return f"{ANNOUNCED}{dataset}/{version}.json"


def upload_index_key(dataset: str) -> str:
    """``index/{dataset}.json``: the dataset's upload index (``opendepot.upload_index``)."""
    return f"{INDEX}{dataset}.json"


def folded_page_key(dataset: str, version: str) -> str:
    """``index/{dataset}/folded/{version}.json``: the ``append`` records folded into
    ``version`` (immutable)."""
    return f"{INDEX}{dataset}/folded/{version}.json"


def folded_pages_prefix(dataset: str) -> str:
    """``index/{dataset}/folded/``: the pages of ``folded_page_key`` (listed by a full build)."""
    return f"{INDEX}{dataset}/folded/"


def folded_shard_key(dataset: str, prefix: str, digest: str) -> str:
    """``index/{dataset}/keys/{prefix}-{digest}.json``: one shard of the upload index's folded
    keys (``opendepot.index_shards``; ``prefix``: hex digits of the key hash, maybe none;
    ``digest``: of its body), immutable."""
    return f"{INDEX}{dataset}/keys/{prefix}-{digest}.json"


def inbox_prefix(dataset: str) -> str:
    """``inbox/{dataset}/``: the dataset's uploads not yet taken in by a publication."""
    return f"{INBOX}{dataset}/"


def inbox_key(dataset: str, upload_id: str) -> str:
    """``inbox/{dataset}/{upload_id}.json``: a copy of the upload record, deleted once the
    upload index took it in."""
    return f"{inbox_prefix(dataset)}{upload_id}.json"


def pending_prefix(dataset: str) -> str:
    """``pending/{dataset}/``: the dataset's pending markers (``opendepot.pending``)."""
    return f"{PENDING}{dataset}/"


def pending_key(dataset: str, version: str) -> str:
    """``pending/{dataset}/{version}.json``: the keys of ``version``'s folder a publication is
    about to write, written before them and deleted once the version is switched to or its
    files are deleted (``opendepot.pending``)."""
    return f"{pending_prefix(dataset)}{version}.json"


# --- published bucket -------------------------------------------------------------------------


def site_key(path: str) -> str:
    """Key of the site file served at ``/{path}`` (a path ending in ``/``, or empty, is its
    ``index.html``)."""
    path = path.lstrip("/")
    return SITE + (path + "index.html" if path == "" or path.endswith("/") else path)


def manifest_key(dataset: str) -> str:
    """``{dataset}/manifest.json``."""
    return f"{dataset}/{MANIFEST_NAME}"


def version_prefix(dataset: str, version: str) -> str:
    """``{dataset}/{version}`` (no trailing slash): the folder of one immutable version."""
    return f"{dataset}/{version}"


def published_file_name(dataset: str, level: str, fmt: str) -> str:
    """``{dataset}-{level}.{fmt}``: a published table's file name (level: ``dep``, ``reg``,
    ``fra`` or a consolidated table's name; fmt: ``csv`` or ``parquet``)."""
    return f"{dataset}-{level}.{fmt}"


def version_file_key(dataset: str, version: str, name: str) -> str:
    """``{dataset}/{version}/{name}``: a file of one version."""
    return f"{version_prefix(dataset, version)}/{name}"


def published_file_key(dataset: str, version: str, level: str, fmt: str) -> str:
    """``{dataset}/{version}/{dataset}-{level}.{fmt}``."""
    return version_file_key(dataset, version, published_file_name(dataset, level, fmt))


def latest_file_key(dataset: str, name: str) -> str:
    """``{dataset}/latest/{name}``: the stable copy of a current file."""
    return f"{dataset}/{LATEST}/{name}"


def latest_key(dataset: str, level: str, fmt: str) -> str:
    """``{dataset}/latest/{dataset}-{level}.{fmt}``."""
    return latest_file_key(dataset, published_file_name(dataset, level, fmt))


def parquet_prefix(dataset: str, level: str) -> str:
    """``{dataset}/parquet/{level}/``: a prefix that holds only Parquet, exactly one object
    (``parquet_key``): the current version's table of that level, replaced in one copy at each
    switch, so ``pyarrow.dataset``, ``pandas.read_parquet`` or DuckDB read it as one table with
    one schema (see docs/design.md, "Parquet prefix")."""
    return f"{dataset}/{PARQUET}/{level}/"


def parquet_key(dataset: str, level: str) -> str:
    """``{dataset}/parquet/{level}/{dataset}-{level}.parquet``: the one object under
    ``parquet_prefix`` (a fixed name: each switch overwrites it, never adds a second file)."""
    return f"{parquet_prefix(dataset, level)}{published_file_name(dataset, level, 'parquet')}"


def athena_prefix(dataset: str, level: str) -> str:
    """``{dataset}/athena/{level}/``: the location of the level's Athena table, one symlink
    file per published version (``athena_symlink_key``; see ``opendepot.athena``)."""
    return f"{dataset}/{ATHENA}/{level}/"


def athena_symlink_key(dataset: str, level: str, version: str) -> str:
    """``{dataset}/athena/{level}/{version}.txt``: one line, the ``s3://`` URI of the version's
    Parquet file of that level (immutable, written once the version is switched to)."""
    return f"{athena_prefix(dataset, level)}{version}.txt"


def datapackage_key(dataset: str, version: str) -> str:
    """``{dataset}/{version}/datapackage.json``."""
    return version_file_key(dataset, version, DATAPACKAGE_NAME)


def changes_key(dataset: str, version: str) -> str:
    """``{dataset}/{version}/changes.json``."""
    return version_file_key(dataset, version, CHANGES_NAME)


def changes_csv_key(dataset: str, version: str) -> str:
    """``{dataset}/{version}/changes.csv``."""
    return version_file_key(dataset, version, CHANGES_CSV_NAME)


def versions_page_key(dataset: str, first: str, last: str) -> str:
    """``{dataset}/versions/{first}--{last}.json``: an immutable page of the manifest's older
    versions (``contracts.VersionsPage``), ``first`` and ``last`` its oldest and newest version
    ids (``YYYY-MM-DD-HHhMMmSSs``); written once, before the manifest that names it."""
    return f"{dataset}/{VERSIONS}/{first}--{last}.json"


# --- ids --------------------------------------------------------------------------------------


def upload_id(
    received_at: datetime, key: str, version_id: str | None, etag: str, sequencer: str
) -> str:
    """Id of one object version: ``YYYYMMDDTHHMMSSZ-<12 hex>``.

    Sorts by arrival time; the same object version (key and versionId, or key, eTag and
    sequencer when the bucket is not versioned) always gets the same id.
    """
    identity = f"{key}\n{version_id or ''}\n{'' if version_id else etag + ':' + sequencer}"
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:12]
    return f"{received_at.strftime('%Y%m%dT%H%M%SZ')}-{digest}"


def version_id(now: datetime) -> str:
    """``YYYY-MM-DD-HHhMMmSSs`` of ``now`` (UTC)."""
    return now.strftime(VERSION_FORMAT)


def parse_version(version: str) -> datetime:
    """The naive datetime a version id stands for (UTC). Raises: ValueError (not a version id)."""
    return datetime.strptime(version, VERSION_FORMAT)


def fed_upload_id(dataset: str, version: str) -> str:
    """``{dataset}@{version}``: a fed dataset's version among a publication's uploads."""
    return f"{dataset}@{version}"


def dataset_id(dataset: str) -> str:
    """Stable id of a dataset: ``uuid5(NAMESPACE_URL, "opendepot:{dataset}")``."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"opendepot:{dataset}"))


def resource_id(dataset: str, level: str, fmt: str) -> str:
    """Stable id of a resource (the same for every version):
    ``uuid5(NAMESPACE_URL, "opendepot:{dataset}:{level}:{format}")``."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"opendepot:{dataset}:{level}:{fmt}"))


def organization_id(slug: str) -> str:
    """Id of an organization the registry gives none:
    ``uuid5(NAMESPACE_URL, "opendepot:organization:{slug}")``."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"opendepot:organization:{slug}"))
