"""Runtime settings: one frozen object built once from the environment at cold start.

This is the only module of opendepot that reads ``os.environ``. Every value has a default that
matches ``template.yaml`` and the local stack, or fails loudly at start.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_STACK = "opendepot"
DEFAULT_ACCOUNT = "123456789012"


class ConfigError(RuntimeError):
    """A setting is missing or malformed; raised at cold start, never per request."""


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not an integer") from exc
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} must be positive")
    return value


@dataclass(frozen=True)
class Settings:
    """Where opendepot reads and writes, and its limits."""

    incoming_bucket: str = f"{DEFAULT_STACK}-incoming-{DEFAULT_ACCOUNT}"
    """Private, versioned bucket producers drop files into, keys ``{dataset}/{producer}/{file}``."""
    internal_bucket: str = f"{DEFAULT_STACK}-internal-{DEFAULT_ACCOUNT}"
    """Private bucket for validation reports (``reports/``) and staged uploads (``staging/``)."""
    published_bucket: str = f"{DEFAULT_STACK}-published-{DEFAULT_ACCOUNT}"
    """Public bucket of versioned files, ``latest/`` copies, manifests and ``catalog.json``."""
    publish_queue_url: str = ""
    """URL of the FIFO queue the validate function sends publish requests to."""
    site_queue_url: str = ""
    """URL of the standard queue the publish function sends site requests to
    (``contracts.SiteMessage``, one per new version; the site function refreshes the static
    site from it). "" = no site queue: nothing is sent, and the site is built by
    ``opendepot site build`` only."""
    public_base_url: str = ""
    """Base URL under which PUBLISHED objects are downloadable (no trailing slash)."""
    api_base_url: str = ""
    """Base URL of the HTTP index, used for ``latest`` links and pager URLs ("" = relative)."""
    max_errors: int = 1000
    """Errors kept in a validation report before "reached error limit" (the total is still
    counted)."""
    max_line_bytes: int = 16 * 1024 * 1024
    """Longest line of a file (after decoding to UTF-8, without its line end) validation reads,
    in bytes; a longer line rejects the file (``line-too-long``, naming it). The longest line of
    the real files is 611 bytes; 16 MiB is also the largest block the CSV reader is given."""
    max_columns: int = 1000
    """Most columns a header may have; more reject the file (``too-many-columns``) before any
    label is checked. The widest real header has 20 columns, the widest schema 20 fields."""
    max_report_bytes: int = 2 * 1024 * 1024
    """Largest validation report (its JSON as written, in bytes): past it long values are cut
    and fewer issues listed, all still counted (the report says what was left out). The largest
    real report is 489 KB (1,000 warnings listed); 2 MiB holds 1,000 errors and 1,000 warnings
    of about 1 KB each (rows of 20 columns) in full."""
    max_object_bytes: int = 512 * 1024 * 1024
    """Largest object (and largest decompressed size) the validate function reads, in bytes."""
    max_receives: int = 5
    """Receives of a validate message before the queue moves it to its dead-letter queue: the
    validate queue's ``maxReceiveCount`` in ``template.yaml`` (keep them equal). On that last
    receive a failed upload gets a failure report (``opendepot.ingest.report_failure``)."""
    versions_topic_arn: str = ""
    """ARN of the SNS topic told of each new version (``notify``; "" = nobody is told)."""
    site_dashboards: bool = True
    """Whether the site function regenerates the dashboards that read the datasets of its batch
    (besides the home and their pages). ``OPENDEPOT_SITE_DASHBOARDS=0``: pages for people only
    (a quicker refresh; ``opendepot site build`` rebuilds everything)."""

    def __post_init__(self) -> None:
        for name in ("incoming_bucket", "internal_bucket", "published_bucket"):
            if not getattr(self, name):
                raise ConfigError(f"setting {name} is empty")

    @property
    def published_url(self) -> str:
        """Base URL of published files; defaults to the bucket's virtual-host S3 URL."""
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        return f"https://{self.published_bucket}.s3.amazonaws.com"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build the settings from ``OPENDEPOT_*`` variables (see README, "Configuration").

        Raises:
            ConfigError: a value is malformed.
        """
        env = os.environ if env is None else env
        d = cls()
        return cls(
            incoming_bucket=env.get("OPENDEPOT_INCOMING_BUCKET", d.incoming_bucket),
            internal_bucket=env.get("OPENDEPOT_INTERNAL_BUCKET", d.internal_bucket),
            published_bucket=env.get("OPENDEPOT_PUBLISHED_BUCKET", d.published_bucket),
            publish_queue_url=env.get("OPENDEPOT_PUBLISH_QUEUE_URL", ""),
            site_queue_url=env.get("OPENDEPOT_SITE_QUEUE_URL", ""),
            public_base_url=env.get("OPENDEPOT_PUBLIC_BASE_URL", ""),
            api_base_url=env.get("OPENDEPOT_API_BASE_URL", "").rstrip("/"),
            max_errors=_int(env, "OPENDEPOT_MAX_ERRORS", d.max_errors),
            max_line_bytes=_int(env, "OPENDEPOT_MAX_LINE_BYTES", d.max_line_bytes),
            max_columns=_int(env, "OPENDEPOT_MAX_COLUMNS", d.max_columns),
            max_report_bytes=_int(env, "OPENDEPOT_MAX_REPORT_BYTES", d.max_report_bytes),
            max_object_bytes=_int(env, "OPENDEPOT_MAX_OBJECT_BYTES", d.max_object_bytes),
            max_receives=_int(env, "OPENDEPOT_MAX_RECEIVES", d.max_receives),
            versions_topic_arn=env.get("OPENDEPOT_VERSIONS_TOPIC_ARN", ""),
            site_dashboards=env.get("OPENDEPOT_SITE_DASHBOARDS", "1") not in ("0", "false"),
        )
