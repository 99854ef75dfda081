"""The reuse catalogue: what reusers built on the published datasets, registered by a file.

A reuser registers a reuse by dropping one small JSON or YAML file at
``reuses/{reuser}/{name}.json|.yaml|.yml`` in the incoming bucket (``reuses`` is never a
dataset: ``opendepot.ingest`` routes these keys here before any dataset routing). The file is
validated against ``ReuseFile`` (its JSON Schema ships as ``opendepot/reference/
reuse.schema.json``, ``json_schema()``), its ``datasets`` against the registry (slugs or ids), and
gets a report in the same Frictionless shape as an upload's (``report.build_report``). The file
name is the reuse's identity: the same ``reuses/{reuser}/{name}`` dropped again (any extension)
updates the reuse (``created_at`` kept) instead of adding one.

An accepted reuse is stored in the published bucket as ``reuses/{id}.json`` (``Reuse`` record)
and in ``reuses/index.json``, every reuse in one object, switched with ``If-Match`` as
``catalog.json`` is (``catalog.ATTEMPTS`` tries, then ``PreconditionFailed`` and the queue
retries). A delivery older than the entry already indexed (``order_key``: arrival time, S3
sequencer padded, upload id) leaves the entry and the object as they are. The index serves
``/api/1/reuses/`` (``opendepot.reuses_http``); ``ReuseReader`` keeps it in memory,
revalidated by ETag.

Write order (a crash is repaired by the queue's retry): the reuse's object, the index, then the
report (the "done" marker, written by ``ingest``).
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
import unicodedata
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from opendepot import layout
from opendepot.catalog import ATTEMPTS, RETRY_SLEEP
from opendepot.config import Settings
from opendepot.issues import Issue, Issues, issue
from opendepot.keys import KeyRejected, check_safe, sequencer_key
from opendepot.registry import Registry
from opendepot.storage import NotFound, PreconditionFailed, Store

if TYPE_CHECKING:  # the index imports this module: not validate's dependencies (pandas)
    from opendepot.validate import Validation

log = logging.getLogger(__name__)

REUSES = "reuses"
"""First segment of a reuse registration's incoming key, of its report keys
(``reports/reuses/{reuser}/``) and of the published reuse objects; never a dataset name."""
INDEX_KEY = f"{REUSES}/index.json"
"""Every accepted reuse, one object (published bucket), switched with ``If-Match``."""
TYPES = ("api", "application", "idea", "news_article", "paper", "post", "visualization")
"""udata's reuse types (``udata.core.reuse.constants.REUSE_TYPES`` less ``hardware``)."""
TOPICS = (
    "health", "transport_and_mobility", "housing_and_development", "food_and_agriculture",
    "culture_and_recreation", "economy_and_business", "environment_and_energy",
    "work_and_training", "politics_and_public_life", "safety_and_security",
    "education_and_research", "society_and_demography", "law_and_justice", "open_data_tools",
    "others",
)  # fmt: skip
"""udata's reuse topics (``REUSE_TOPICS``)."""
FORMATS = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}
"""File name endings of a registration and how each is read."""
MAX_BYTES = 64 * 1024
"""Largest registration file read (bytes): a larger one is refused unread."""
REUSER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
"""A reuser's folder name."""
SCHEMA_ID = "https://opendepot.example.fr/schemas/reuse.schema.json"
JSON_MIME = "application/json"
REVALIDATE = "public, max-age=60, must-revalidate"

Text = Annotated[str, Field(min_length=1, max_length=200)]
Url = Annotated[str, Field(pattern=r"^https?://[^\s/?#]+[^\s]*$", max_length=2000)]
Tag = Annotated[str, Field(min_length=2, max_length=96)]


class ReuseFile(BaseModel):
    """A registration file's content (udata's reuse form): no other key is allowed."""

    model_config = ConfigDict(extra="forbid", strict=True, title="Reuse registration",
                              defer_build=True)

    title: Annotated[str, Field(min_length=1, max_length=350, description="udata's limit")]
    description: Annotated[str, Field(min_length=1, max_length=20000,
                                      description="Markdown, as udata's")]
    url: Url
    type: Literal[TYPES]  # type: ignore[valid-type]  # values known at import
    datasets: Annotated[list[Text], Field(min_length=1, max_length=100,
                                          description="Slugs or ids of registered datasets")]
    image: Url | None = None
    tags: Annotated[list[Tag], Field(max_length=30)] = []
    topic: Literal[TOPICS] | None = None  # type: ignore[valid-type]
    organization: Annotated[Text | None, Field(
        description="The publishing organization's name (else the reuser owns it)")] = None
    author: Annotated[Text | None, Field(
        description="The owner's name, 'First Last' (default: the reuser's folder name)")] = None


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a registration file, generated from ``ReuseFile``:
    the shipped ``reference/reuse.schema.json`` is this document (a test keeps them equal)."""
    schema = ReuseFile.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
            **schema}


def shipped_schema() -> dict[str, Any]:
    """``opendepot/reference/reuse.schema.json`` as shipped in the package."""
    text = resources.files("opendepot.reference").joinpath("reuse.schema.json").read_text("utf-8")
    result: dict[str, Any] = json.loads(text)
    return result


# --- keys and ids -------------------------------------------------------------------------------


def is_reuse_key(key: str) -> bool:
    """Whether an incoming key is a reuse registration's (first segment ``reuses``)."""
    return key.split("/", 1)[0] == REUSES


def route_reuse(key: str) -> tuple[str, str]:
    """``(reuser, file name)`` of ``reuses/{reuser}/{file}``.

    Raises:
        KeyRejected: unsafe key (``unsafe-key``), or not exactly three segments, or a reuser
            name outside ``REUSER`` (``unrouted-key``).
    """
    check_safe(key)
    parts = key.split("/")
    if len(parts) != 3 or not REUSER.match(parts[1]):
        raise KeyRejected(key, "unrouted-key",
                          f"key {key!r} is not of the form reuses/{{reuser}}/{{file}} (reuser: "
                          f"letters, digits, '.', '_' or '-'; one file per reuse)")
    return parts[1], parts[2]


def report_target(key: str, uid: str) -> tuple[str, dict[str, str]]:
    """Where the report of the registration ``key`` goes and the ids it carries:
    ``reports/reuses/{reuser}/{uid}.json``, or ``reports/_refused/{uid}.json`` for a key that
    cannot be routed."""
    try:
        reuser, _ = route_reuse(key)
    except KeyRejected:
        return layout.refused_report_key(uid), {}
    return layout.report_key(REUSES, reuser, uid), {"reuser": reuser, "producer": reuser}


def reuse_id(reuser: str, name: str) -> str:
    """Stable id of the reuse registered as ``reuses/{reuser}/{name}.{ext}``:
    ``uuid5(NAMESPACE_URL, "opendepot:reuse:{reuser}/{stem}")``."""
    stem = name.rsplit(".", 1)[0]
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"opendepot:reuse:{reuser}/{stem}"))


def slugify(text: str) -> str:
    """udata-like slug: accents removed, lower case, runs of other characters as ``-``, at most
    100 characters (``Suivi de l'épidémie`` -> ``suivi-de-l-epidemie``)."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    return re.sub(r"[^a-z0-9]+", "-", plain).strip("-")[:100].strip("-") or "reuse"


def published_key(rid: str) -> str:
    """Key of one reuse's object in the published bucket: ``reuses/{id}.json``."""
    return f"{REUSES}/{rid}.json"


# --- reading and checking a registration --------------------------------------------------------


@dataclass(frozen=True)
class Checked:
    """A registration file read and checked: its content (None when unusable), the issues
    found, its top-level keys (the report's labels)."""

    content: ReuseFile | None
    issues: Issues
    labels: tuple[str, ...] = ()
    datasets: tuple[tuple[str, str], ...] = ()
    """``(slug, title)`` of each dataset it names, in its order, once each."""


def _parse(body: bytes, name: str) -> tuple[Any, Issue | None]:
    kind = FORMATS.get("." + name.rsplit(".", 1)[-1].lower()) if "." in name else None
    if kind is None:
        return None, issue("format-error", cell=name, detail=(
            f"{name!r}: a reuse registration is a JSON (.json) or YAML (.yaml, .yml) file"))
    try:
        text = body.decode("utf-8-sig")
        doc = json.loads(text) if kind == "json" else yaml.safe_load(text)
    except (UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        first = " ".join(str(exc).split())[:300]
        return None, issue("format-error", cell=name,
                           detail=f"{name!r} is not readable {kind.upper()} (UTF-8): {first}")
    if not isinstance(doc, dict):
        return None, issue("format-error", cell=name, detail=(
            f"{name!r} holds a {type(doc).__name__}, not a mapping of the reuse's fields"))
    return doc, None


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def field_issues(error: ValidationError) -> list[Issue]:
    """One ``reuse-field`` issue per problem pydantic found: the field's path, the value as
    written and what is expected."""
    out = []
    for e in error.errors(include_url=False):
        where = ".".join(str(p) for p in e["loc"]) or "(document)"
        kind = e["type"]
        if kind == "missing":
            problem, cell = "is required and missing", None
        elif kind == "extra_forbidden":
            allowed = ", ".join(ReuseFile.model_fields)
            problem, cell = f"is not a reuse field (allowed: {allowed})", _shown(e["input"])
        else:
            cell = _shown(e["input"])
            problem = f"value {cell} is not allowed: {e['msg'][0].lower()}{e['msg'][1:]}"
        out.append(issue("reuse-field", field=where, cell=cell, problem=problem, rule=kind))
    return out


def _dataset_refs(names: Sequence[str], registry: Registry) -> tuple[list[tuple[str, str]],
                                                                      list[str]]:
    by_id = {layout.dataset_id(d.name): d for d in registry}
    found: list[tuple[str, str]] = []
    unknown = []
    for name in names:
        d = registry.get(name) or by_id.get(name)
        if d is None:
            unknown.append(name)
        elif (d.name, d.title) not in found:
            found.append((d.name, d.title))
    return found, unknown


def check(body: bytes, name: str, registry: Registry, max_errors: int = 100) -> Checked:
    """Read a registration file (``name`` gives its format) and check it against ``ReuseFile``
    and ``registry``. Never raises for the file's problems: they are the issues."""
    issues = Issues.limited(max_errors)
    doc, problem = _parse(body, name)
    if problem is not None:
        issues.add(problem)
        return Checked(None, issues)
    labels = tuple(str(k) for k in doc)
    try:
        content = ReuseFile.model_validate(doc)
    except ValidationError as exc:
        for found in field_issues(exc):
            issues.add(found)
        return Checked(None, issues, labels)
    refs, unknown = _dataset_refs(content.datasets, registry)
    if unknown:
        known = ", ".join(d.name for d in registry)
        issues.add(issue("unknown-dataset", field="datasets", cell=", ".join(unknown),
                         values=", ".join(repr(u) for u in unknown),
                         verb="is" if len(unknown) == 1 else "are", known=known,
                         count=len(unknown)))
        return Checked(None, issues, labels)
    if content.image is None:
        issues.add(issue("reuse-no-image", field="image"))
    return Checked(content, issues, labels, tuple(refs))


# --- the stored record --------------------------------------------------------------------------


def record_of(
    checked: Checked, reuser: str, name: str, context: Mapping[str, Any]
) -> dict[str, Any]:
    """The stored record of an accepted registration (``checked.content`` set); ``context`` is
    the upload's (``key``, ``received_at``, ``sequencer``, ``upload_id``). Shape: ``{"id",
    "slug", "reuser", "key", "upload_id", "title", "description", "type", "url", "image",
    "tags", "topic", "organization", "author", "datasets": [{"slug", "title"}], "created_at",
    "last_modified", "order": [received_at, sequencer, upload_id]}``; ``slug`` is settled when
    indexed (``index_reuse``)."""
    c = checked.content
    assert c is not None
    received = str(context.get("received_at") or "")
    tags = list(dict.fromkeys(slugify(t) for t in c.tags))
    return {
        "id": reuse_id(reuser, name), "slug": slugify(c.title), "reuser": reuser,
        "key": context.get("key"), "upload_id": context.get("upload_id"), "title": c.title,
        "description": c.description, "type": c.type, "url": c.url, "image": c.image,
        "tags": tags, "topic": c.topic, "organization": c.organization, "author": c.author,
        "datasets": [{"slug": s, "title": t} for s, t in checked.datasets],
        "created_at": received, "last_modified": received,
        "order": [received, str(context.get("sequencer") or ""), str(context.get("upload_id"))],
    }


def read_index(store: Store, settings: Settings) -> tuple[list[dict[str, Any]], str | None]:
    """``(reuses, etag)`` of ``reuses/index.json`` (``([], None)`` when there is none).

    Raises: StorageError; ValueError when the index is not JSON of the expected shape."""
    reuses, etag, _ = read_index_state(store, settings)
    return reuses, etag


def read_index_state(
    store: Store, settings: Settings
) -> tuple[list[dict[str, Any]], str | None, str | None]:
    """``(reuses, etag, generated_at)`` of ``reuses/index.json`` (``([], None, None)`` when
    there is none); ``generated_at`` is the index's last change (``changed_at``).

    Raises: StorageError; ValueError when the index is not JSON of the expected shape."""
    bucket = settings.published_bucket
    head = store.head(bucket, INDEX_KEY)
    if head is None:
        return [], None, None
    try:
        doc = json.loads(store.get(bucket, INDEX_KEY))
    except NotFound:
        return [], None, None
    if not isinstance(doc, dict) or not isinstance(doc.get("reuses"), list):
        raise ValueError(f"{INDEX_KEY} is not {{'reuses': [...]}}")
    changed = doc.get("generated_at")
    return list(doc["reuses"]), head.etag, str(changed) if changed else None


def _moment(text: str | None) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00")) if text else None
    except ValueError:
        return None
    return moment.replace(tzinfo=moment.tzinfo or UTC) if moment else None


def changed_at(now: str, previous: str | None) -> str:
    """The index's ``generated_at`` for a change made at ``now`` (ISO 8601) when the index says
    ``previous``: ``now``, or the second after ``previous`` when ``now`` is not in a later
    second (deliveries out of order, clock skew). Each change thus moves ``generated_at`` to a
    later second, so a ``Last-Modified`` made from it changes with every change
    (``YYYY-MM-DDTHH:MM:SS.mmmZ``)."""
    moment, before = _moment(now), _moment(previous)
    if moment is None:
        moment = datetime.now(UTC)
    if before is not None and moment.replace(microsecond=0) <= before.replace(microsecond=0):
        moment = before.replace(microsecond=0) + timedelta(seconds=1)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _settled(record: dict[str, Any], others: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``record`` with ``created_at`` of its previous entry and a slug no other reuse has."""
    mine = next((r for r in others if r["id"] == record["id"]), None)
    out = dict(record)
    if mine is not None:
        out["created_at"] = mine.get("created_at") or out["created_at"]
    taken = {r["slug"] for r in others if r["id"] != record["id"]}
    ids = {str(r["id"]) for r in others}
    if out["slug"] in taken or out["slug"] in ids or UUID_SHAPED.fullmatch(out["slug"]):
        out["slug"] = f"{out['slug']}-{record['id'][:8]}"
    return out


UUID_SHAPED = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
                         r"[0-9a-fA-F]{12}")
"""A slug of this shape (any UUID's text) is never given: ``/api/1/reuses/{x}/`` reads ids."""


def order_key(order: Sequence[Any] | None) -> tuple[str, str, str]:
    """Comparable form of a record's ``order`` (``[received_at, sequencer, upload_id]``): the
    S3 sequencer padded (``keys.sequencer_key``), so sequencers of different lengths or case
    compare as S3 documents them."""
    received, sequencer, upload = (list(order or []) + ["", "", ""])[:3]
    return str(received), sequencer_key(str(sequencer)), str(upload)


def _put_if_newer(store: Store, bucket: str, record: dict[str, Any]) -> bool:
    """Write ``record`` as ``reuses/{id}.json`` unless the object there is of a later delivery
    (``order_key``), conditionally on the object read (``If-Match``/``If-None-Match``), so the
    object never goes back to an older delivery. Returns whether it was written.

    Raises: PreconditionFailed after ``ATTEMPTS`` lost races; StorageError."""
    key = published_key(record["id"])
    for attempt in range(1, ATTEMPTS + 1):
        head = store.head(bucket, key)
        if head is not None:
            try:
                stored = json.loads(store.get(bucket, key))
            except (NotFound, ValueError):
                stored = {}
            if order_key(stored.get("order")) > order_key(record["order"]):
                return False
        try:
            store.put(bucket, key, _json(record), JSON_MIME, cache_control=REVALIDATE,
                      if_match=head.etag if head else None, if_none_match=head is None)
            return True
        except PreconditionFailed:
            if attempt == ATTEMPTS:
                raise
            time.sleep(random.uniform(*RETRY_SLEEP) * attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def index_reuse(store: Store, settings: Settings, record: dict[str, Any], now: str) -> bool:
    """Store ``record`` (``record_of``) as ``reuses/{id}.json`` (only over an older delivery's
    object: ``_put_if_newer``) and put it into ``reuses/index.json`` with ``If-Match``
    (``If-None-Match`` when there is no index), read again and retried on a lost race; an entry
    of a later delivery (``order_key``) is left as it is. The index's ``generated_at`` is
    ``changed_at(now, its previous one)``. The object is written first and never goes back, so
    it is never older than the index's entry. Returns True when the index changed.

    Raises:
        PreconditionFailed: ``catalog.ATTEMPTS`` writes in a row lost the race.
        StorageError: other storage failures."""
    bucket = settings.published_bucket
    for attempt in range(1, ATTEMPTS + 1):
        reuses, etag, previous = read_index_state(store, settings)
        mine = next((r for r in reuses if r["id"] == record["id"]), None)
        if mine is not None and order_key(mine.get("order")) > order_key(record["order"]):
            return False  # a later registration of this file is already indexed
        settled = _settled(record, reuses)
        if not _put_if_newer(store, bucket, settled):
            return False  # a later delivery is being indexed: it writes the index
        body = {"generated_at": changed_at(now, previous),
                "reuses": sorted([*(r for r in reuses if r["id"] != settled["id"]), settled],
                                 key=lambda r: str(r["id"]))}
        try:
            store.put(bucket, INDEX_KEY, _json(body), JSON_MIME, if_match=etag,
                      if_none_match=etag is None, cache_control=REVALIDATE)
            return True
        except PreconditionFailed:
            if attempt == ATTEMPTS:
                raise
            low, high = RETRY_SLEEP
            time.sleep(random.uniform(low, high) * attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def _json(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# --- one registration, end to end ---------------------------------------------------------------


@dataclass(frozen=True)
class Registration:
    """What became of one registration file: the report's validation and the stored record."""

    validation: Validation
    record: dict[str, Any] | None = None
    """The record indexed (None: rejected)."""


def validation_of(key: str, checked: Checked, seconds: float = 0.0) -> Validation:
    """The ``Validation`` a report is built from (``report.build_report``): one "row", the
    reuse; accepted when ``checked.content`` is set."""
    from opendepot.validate import Validation  # noqa: PLC0415  # the validate function only

    issues = checked.issues
    accepted = checked.content is not None
    first = issues.errors.items[0].message if issues.errors.items else ""
    return Validation(name=key, errors=issues.errors, warnings=issues.warnings,
                      rows=1 if checked.labels else 0, rows_published=1 if accepted else 0,
                      accepted=accepted, labels=checked.labels, seconds=seconds,
                      rejection="" if accepted else first or "invalid reuse registration")


def register(store: Store, settings: Settings, registry: Registry, body: bytes,
             context: Mapping[str, Any]) -> Registration:
    """Check the registration ``body`` found at ``context["key"]`` (a routable reuse key) and,
    when accepted, store and index it (``index_reuse``). The caller writes the report.

    Raises: what ``index_reuse`` raises (infrastructure failures)."""
    started = time.perf_counter()
    key = str(context["key"])
    reuser, name = route_reuse(key)
    checked = check(body, name, registry, max_errors=settings.max_errors)
    record = None
    if checked.content is not None:
        record = record_of(checked, reuser, name, context)
        index_reuse(store, settings, record, str(context.get("received_at") or ""))
    return Registration(validation_of(key, checked, time.perf_counter() - started), record)


def too_large(key: str, size: int) -> Issue:
    """The refusal of a registration file over ``MAX_BYTES``."""
    return issue("object-too-large", cell=str(size), detail=(
        f"{key!r} is {size} bytes, over the {MAX_BYTES} bytes a reuse registration may have; "
        f"it was not read"))


def dataset_counts(reuses: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Reuses per dataset slug (each reuse counted once per dataset it names)."""
    out: dict[str, int] = {}
    for r in reuses:
        for d in r.get("datasets") or []:
            out[d["slug"]] = out.get(d["slug"], 0) + 1
    return out


class ReuseReader:
    """``reuses/index.json`` kept in memory, revalidated with one ``head`` per call (a ``get``
    only when its ETag changed). Not thread-safe beyond reading an object twice."""

    def __init__(self) -> None:
        self._kept: dict[tuple[int, str], tuple[str | None, IndexState]] = {}

    def reuses(self, store: Store, settings: Settings) -> tuple[dict[str, Any], ...]:
        """Every indexed reuse record, by id.

        Raises: StorageError; ValueError (an index not of the expected shape)."""
        return self.state(store, settings).reuses

    def state(self, store: Store, settings: Settings) -> IndexState:
        """The index's records and its last change (``IndexState``; empty when none).

        Raises: StorageError; ValueError (an index not of the expected shape)."""
        where = (id(store), settings.published_bucket)
        head = store.head(settings.published_bucket, INDEX_KEY)
        if head is None:
            self._kept.pop(where, None)
            return IndexState()
        kept = self._kept.get(where)
        if kept is not None and kept[0] == head.etag:
            return kept[1]
        found, etag, changed = read_index_state(store, settings)
        state = IndexState(tuple(found), changed)
        self._kept[where] = (etag, state)
        log.info("reuse index loaded", extra={"etag": etag, "reuses": len(found)})
        return state


@dataclass(frozen=True)
class IndexState:
    """What ``reuses/index.json`` holds."""

    reuses: tuple[dict[str, Any], ...] = ()
    """Every indexed reuse record, by id."""
    changed_at: str | None = None
    """Its ``generated_at`` (ISO 8601): a later second at each change (``changed_at``); None
    when there is no index."""


READER = ReuseReader()
"""The process's reader of the reuse index (the index function's routes and metrics share it)."""


def counts_by_dataset_id(store: Store, settings: Settings) -> dict[str, int]:
    """Reuses per dataset id (``layout.dataset_id``): what ``metrics.reuses`` of the dataset
    documents says (``opendepot.paging.served``), read through ``READER``.

    Raises: StorageError; ValueError (an index not of the expected shape)."""
    return reuse_metrics(store, settings)[0]


def reuse_metrics(store: Store, settings: Settings) -> tuple[dict[str, int], str | None]:
    """``(reuses per dataset id, the index's last change)``: ``metrics.reuses`` and what the
    ``Last-Modified`` of an answer carrying it must not be before (None: no index), read
    through ``READER``.

    Raises: StorageError; ValueError (an index not of the expected shape)."""
    state = READER.state(store, settings)
    counts = dataset_counts(state.reuses)
    return {layout.dataset_id(slug): n for slug, n in counts.items()}, state.changed_at
