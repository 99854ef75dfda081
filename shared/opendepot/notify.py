"""Telling reusers of each new version: the message, and the port it is sent through.

The publish function sends one ``Announcement`` per new version, after the manifest switch
(``announce``): never for a publication that found nothing new. On AWS it goes to the SNS topic
of ``template.yaml`` (``VersionsTopic``, ``OPENDEPOT_VERSIONS_TOPIC_ARN``) that reusers
subscribe to by e-mail, HTTPS or SQS; the ``dataset`` message attribute lets a subscription's
filter policy keep only some datasets (``{"dataset": ["donnees-hospitalieres-covid19"]}``).

The message (``Announcement.body``, JSON)::

    {"type": "opendepot.version", "dataset", "dataset_id", "title", "version",
     "published_at", "previous": <version before> | null, "rows": {level: int},
     "uploads": [<upload ids, oldest first>], "changes": <changes.Changes.headline> | null,
     "links": {"dataset", "versions", "version", "changes" | null, "changed_cells" | null,
               "feed", "files": [{"id", "name", "level", "format", "rows", "url", "latest"}]}}

``url`` is the version's immutable file, ``latest`` the permanent ``/api/1/datasets/r/{id}``
link. E-mail subscribers get ``Announcement.text`` instead (SNS ``MessageStructure`` json: the
JSON is the ``default``, the text the ``email`` one), with ``subject``.

Ports: ``SnsNotifier`` (boto3 SNS client), ``MemoryNotifier`` (tests: keeps what was sent),
``NO_NOTIFIER`` (no topic configured: nothing is sent).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

from opendepot import atom, index, layout, version_pages
from opendepot.config import Settings
from opendepot.contracts import Manifest
from opendepot.storage import Store

KIND = "opendepot.version"
"""``type`` of a new-version message."""
SUBJECT_CHARS = 100
"""SNS's longest e-mail subject."""


@dataclass(frozen=True)
class Announcement:
    """One new version, as told to subscribers."""

    dataset: str
    version: str
    body: dict[str, Any]
    """The JSON message (see the module's docstring)."""
    subject: str
    """E-mail subject (at most ``SUBJECT_CHARS`` characters)."""
    text: str
    """E-mail body: ``atom.summary_text`` and the links."""

    def attributes(self) -> dict[str, str]:
        """Message attributes subscribers filter on: ``dataset``."""
        return {"dataset": self.dataset}


class Notifier(Protocol):
    """Where announcements go."""

    def send(self, announcement: Announcement) -> str | None:
        """Send it; the message id (None: nothing sent). Raises: the transport's errors."""
        ...


class NoNotifier:
    """No topic configured: nothing is sent."""

    def send(self, announcement: Announcement) -> str | None:
        return None


NO_NOTIFIER = NoNotifier()


@dataclass
class MemoryNotifier:
    """``Notifier`` in memory, for tests: keeps what was sent."""

    sent: list[Announcement] = field(default_factory=list)

    def send(self, announcement: Announcement) -> str | None:
        self.sent.append(announcement)
        return f"memory-{len(self.sent)}"


class SnsNotifier:
    """``Notifier`` over a boto3 SNS client and one topic."""

    def __init__(self, client: Any, topic_arn: str) -> None:
        self._sns = client
        self.topic_arn = topic_arn

    def send(self, announcement: Announcement) -> str | None:
        """``Publish`` with ``MessageStructure`` json (JSON by default, text by e-mail) and
        the ``dataset`` attribute. Raises: botocore's errors."""
        message = {"default": json.dumps(announcement.body, ensure_ascii=False),
                   "email": announcement.text}
        answer = self._sns.publish(
            TopicArn=self.topic_arn, Message=json.dumps(message, ensure_ascii=False),
            MessageStructure="json", Subject=announcement.subject,
            MessageAttributes={k: {"DataType": "String", "StringValue": v}
                               for k, v in announcement.attributes().items()})
        return str(answer.get("MessageId") or "") or None


def announcement(
    manifest: Manifest, version: str, title: str, headline: Mapping[str, Any] | None,
    links: index.Links,
) -> Announcement:
    """The announcement of ``version`` of ``manifest``'s dataset (see the module's docstring).

    Raises:
        index.NotFound: the manifest has no such version.
    """
    slug = manifest.dataset
    entry, before = index.version_entry(manifest, version)
    files = []
    for r in entry.resources:
        doc = index.version_file_document(slug, r, links)
        files.append({k: doc[k] for k in ("id", "name", "level", "format", "rows", "url")}
                     | {"latest": links.api(f"{index.DATASETS_PATH}r/{doc['id']}")})
    changes = entry.changes
    quoted = quote(version, safe="")
    csv = changes.csv_path if changes is not None else None
    urls = {
        "dataset": links.dataset(slug), "versions": links.dataset(slug, "versions/"),
        "version": links.dataset(slug, f"versions/{quoted}/"),
        "changes": links.dataset(slug, f"versions/{quoted}/changes/") if changes else None,
        "changed_cells": links.file(csv) if csv else None,
        "feed": links.dataset(slug, atom.VERSIONS_FEED), "files": files,
    }
    previous = before.version if before is not None else None
    body = {"type": KIND, "dataset": slug, "dataset_id": index.dataset_id(slug), "title": title,
            "version": version, "published_at": entry.published_at, "previous": previous,
            "rows": dict(entry.rows), "uploads": list(entry.upload_ids),
            "changes": dict(headline) if headline is not None else None, "links": urls}
    lines = [f"{title} ({slug}): version {version}, published at {entry.published_at}.", "",
             atom.summary_text(entry.rows, headline, previous), "",
             f"Version: {urls['version']}"]
    if urls["changes"]:
        lines.append(f"What changed: {urls['changes']}")
    lines += [f"{f['name']}.{f['format']}: {f['url']}" for f in files]
    subject = f"opendepot: {slug} {version}"
    return Announcement(slug, version, body, subject[:SUBJECT_CHARS], "\n".join(lines))


def announce(
    notifier: Notifier, store: Store, settings: Settings, title: str, dataset: str,
    version: str, headline: Mapping[str, Any] | None,
) -> str | None:
    """Read ``dataset``'s manifest, build the announcement of ``version`` and send it; the
    message id (None: nothing sent; with ``NO_NOTIFIER`` nothing is read either). Links: the
    published files' base URL and ``settings.api_base_url``.

    Raises:
        storage errors reading the manifest, ``contracts.ContractError``, ``index.NotFound``
        (no such version), and the notifier's errors: the caller decides (the publish function
        logs them and counts ``NotificationsFailed``; the version stays published).
    """
    if isinstance(notifier, NoNotifier):
        return None
    bucket = settings.published_bucket
    manifest = Manifest.from_json(json.loads(store.get(bucket, layout.manifest_key(dataset))))
    # an older version (a late retry) may be paged out: then its pages are read
    manifest = version_pages.around(manifest, version, version_pages.page_reader(store, bucket))
    links = index.Links(settings.published_url, settings.api_base_url)
    return notifier.send(announcement(manifest, version, title, headline, links))
