"""Incoming keys: decoding, safety checks, routing to dataset and producer; S3 sequencers.

Incoming keys are ``{dataset}/{producer}/{file...}``. Keys in S3 events are URL-encoded
(``+`` for space, ``%XX`` otherwise); they are decoded exactly once with ``unquote_plus``.
Every key opendepot writes, and every id, is made by ``opendepot.layout`` (``upload_id`` is
re-exported here for older callers).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote_plus

from opendepot.layout import upload_id

__all__ = ["IncomingKey", "KeyRejected", "check_safe", "decode_event_key", "route",
           "sequencer_key", "upload_id"]


class KeyRejected(ValueError):
    """The key is unsafe or does not fit ``{dataset}/{producer}/{file}``.

    ``reason`` is a slug (``unsafe-key``, ``unrouted-key``), ``key`` the decoded key.
    """

    def __init__(self, key: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.reason = reason


@dataclass(frozen=True)
class IncomingKey:
    """A routed incoming key."""

    key: str
    """The decoded key."""
    dataset: str
    """First segment: the dataset slug."""
    producer: str
    """Second segment: the producer id."""
    filename: str
    """Last segment: the file name the producer gave."""

    @property
    def confirmed(self) -> bool:
        """The producer confirms an upload held by the shrink guard: ``.confirm.`` in its name
        (``chiffres-cles.confirm.csv``)."""
        return ".confirm." in self.filename.lower()


def decode_event_key(raw: str) -> str:
    """Decode a key as it arrives in an S3 event (``unquote_plus``, once)."""
    return unquote_plus(raw)


def check_safe(key: str) -> None:
    """Reject keys that could escape a prefix or a directory.

    Raises:
        KeyRejected: empty key, absolute key (leading ``/``), a ``..`` or ``.`` segment, an
            empty segment (``a//b``), a backslash or a control character.
    """
    if not key:
        raise KeyRejected(key, "unsafe-key", "empty key")
    if key.startswith("/"):
        raise KeyRejected(key, "unsafe-key", f"absolute key {key!r}: keys must be relative")
    if "\\" in key or any(ord(c) < 32 for c in key):
        raise KeyRejected(key, "unsafe-key", f"key {key!r} has a backslash or a control character")
    for segment in key.split("/"):
        if segment in {"..", "."}:
            raise KeyRejected(key, "unsafe-key", f"key {key!r} has a {segment!r} segment")
        if segment == "":
            raise KeyRejected(key, "unsafe-key", f"key {key!r} has an empty segment")


def route(key: str) -> IncomingKey:
    """Split a decoded, safe key into dataset, producer and file name.

    Raises:
        KeyRejected: unsafe key, or fewer than three segments (``unrouted-key``).
    """
    check_safe(key)
    parts = key.split("/")
    if len(parts) < 3:
        raise KeyRejected(
            key,
            "unrouted-key",
            f"key {key!r} is not of the form {{dataset}}/{{producer}}/{{file}}",
        )
    return IncomingKey(key=key, dataset=parts[0], producer=parts[1], filename=parts[-1])


def sequencer_key(sequencer: str) -> str:
    """Comparable form of an S3 ``sequencer`` (hex of varying length): right-padded with zeros."""
    return sequencer.upper().ljust(32, "0")
