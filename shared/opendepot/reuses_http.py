"""The reuse catalogue over HTTP, in udata's shapes: ``/api/1/reuses/``, ``/api/1/reuses/{id}/``
and ``/api/1/datasets/{id}/reuses/`` (declared in ``functions/index_api/app.py`` over
``ReuseHandlers``), their query parameters and their OpenAPI models.

Documents (``reuse_document``) follow udata's ``Reuse`` (``udata/core/reuse/api_fields.py``):
``id``, ``slug``, ``title``, ``type``, ``url``, ``description``, ``tags``, ``badges`` (none),
``featured``/``private`` (false), ``archived``/``deleted`` (null), ``image`` and
``image_thumbnail`` (the reuser's image URL, both, never resized; null without one), ``topic``,
``created_at``/``last_modified`` (first and last registration), ``datasets`` (references:
``id``, ``title``, ``slug``, ``uri``, ``page``), ``organization`` or ``owner`` (a reference made
from the registration: the organization named when the reuser's folder is that name's slug,
else the reuser), ``metrics`` (``datasets`` counted; ``discussions``, ``followers``, ``views``
0: opendepot has none), ``extras`` (``reuser``, ``registered_as``: the incoming key,
``organization_claimed``: an organization name the folder does not vouch for, shown as the
file says and never resolved), ``uri`` and ``page`` (this API's URL).

Lists are udata pagers, newest first by default. Query parameters follow udata's rules (empty
values are absent, the last value wins except ``tag``, which repeats and must all match), but a
parameter the route does not take is a 400 naming it, never ignored.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import quote

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.request import Request
from pydantic import BaseModel, ConfigDict, Field

from opendepot import layout, paging
from opendepot.api_models import PageParam, PageSizeParam
from opendepot.index import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, BadRequest, Links, NotFound
from opendepot.index_http import Site, later, raw_query
from opendepot.reuses import READER, TOPICS, TYPES, counts_by_dataset_id, slugify

Document = dict[str, Any]
REUSES_PATH = "/api/1/reuses/"
SORT_KEYS = ("created", "title", "datasets")
SORT_VALUES = (*SORT_KEYS, *(f"-{k}" for k in SORT_KEYS))
"""Values of ``sort``: udata's ``created``, ``title``, ``datasets`` (``-``: descending)."""
DEFAULT_SORT = "-created"
LIST_PARAMS = ("page", "page_size", "q", "dataset", "tag", "type", "topic", "organization",
               "owner", "sort")
"""The parameters ``/api/1/reuses/`` takes (any other is a 400)."""
PAGE_PARAMS = ("page", "page_size", "q", "tag", "type", "topic", "sort")
"""The parameters ``/api/1/datasets/{id}/reuses/`` takes."""
NOT_EMPTY = ("page", "page_size", "type", "topic", "sort")
"""Parameters whose declared values exclude "": empty, they are a 400 (the others, empty, are
absent, as udata reads them)."""

# --- query parameters ---------------------------------------------------------------------------

TextP = Annotated[str, Query(description="Words that must all appear in title, description, "
                                         "tags, reuser or organization (accents, case ignored).")]
DatasetP = Annotated[str, Query(description="A dataset's slug or id the reuse uses.")]
TagP = Annotated[list[str], Query(description="A tag the reuse carries (repeat: all must match).")]
TypeP = Annotated[Literal[TYPES], Query(description="Reuse type (udata's).")]  # type: ignore[valid-type]
TopicP = Annotated[Literal[TOPICS], Query(description="Reuse topic (udata's).")]  # type: ignore[valid-type]
OrgP = Annotated[str, Query(description="The organization's slug or id (a name the reuser's "
                                        "folder vouches for).")]
OwnerP = Annotated[str, Query(description="The owner's (the reuser's) slug or id.")]
SortP = Annotated[Literal[SORT_VALUES], Query(  # type: ignore[valid-type]
    description="Sort key, `-` prefix for descending (default: `-created`, newest first).")]


@dataclass(frozen=True)
class ReuseQuery:
    """A reuse list's parsed query string."""

    page: paging.PageQuery
    q: str = ""
    dataset: str = ""
    tags: tuple[str, ...] = ()
    type: str = ""
    topic: str = ""
    organization: str = ""
    owner: str = ""
    sort: str = DEFAULT_SORT


def parse_reuse_query(params: Iterable[tuple[str, str]],
                      allowed: Sequence[str] = LIST_PARAMS) -> ReuseQuery:
    """Read a reuse list's query string (pairs as received).

    Raises:
        BadRequest: a parameter not in ``allowed`` (named, with the allowed ones), one of
            ``NOT_EMPTY`` given empty, ``page`` or
            ``page_size`` not allowed (``paging.parse_page_query``), ``type``, ``topic`` or
            ``sort`` not one of their values.
    """
    pairs = list(params)
    unknown = sorted({k for k, _ in pairs if k not in allowed})
    if unknown:
        names = ", ".join(paging.shown(k) for k in unknown)
        raise BadRequest(f"unknown parameter {names}: this list takes {', '.join(allowed)}")
    empty = sorted({k for k, v in pairs if k in NOT_EMPTY and not v.strip()})
    if empty:
        raise BadRequest(f"{', '.join(empty)} {'is' if len(empty) == 1 else 'are'} empty: "
                         f"give a value or leave the parameter out")
    page = paging.parse_page_query(pairs)
    values = {k: v.strip() for k, v in pairs if v.strip() and k != "tag"}
    tags = tuple(slugify(v) for k, v in pairs if k == "tag" and v.strip())
    for name, allowed_values in (("type", TYPES), ("topic", TOPICS), ("sort", SORT_VALUES)):
        value = values.get(name)
        if value is not None and value not in allowed_values:
            raise BadRequest(f"{name}={paging.shown(value)} is not one of "
                             f"{', '.join(allowed_values)}")
    return ReuseQuery(page=page, q=values.get("q", ""), dataset=values.get("dataset", ""),
                      tags=tags, type=values.get("type", ""), topic=values.get("topic", ""),
                      organization=values.get("organization", ""),
                      owner=values.get("owner", ""), sort=values.get("sort", DEFAULT_SORT))


def reuse_query(
    request: Request, page: PageParam = 1, page_size: PageSizeParam = DEFAULT_PAGE_SIZE,
    q: TextP = "", dataset: DatasetP = "", tag: TagP | None = None, type: TypeP | None = None,
    topic: TopicP | None = None, organization: OrgP = "", owner: OwnerP = "",
    sort: SortP | None = None,
) -> ReuseQuery:
    """``GET /api/1/reuses/``'s parameters (declared here, read by ``parse_reuse_query``)."""
    return parse_reuse_query(raw_query(request.resolved_event))


def dataset_reuse_query(
    request: Request, page: PageParam = 1, page_size: PageSizeParam = DEFAULT_PAGE_SIZE,
    q: TextP = "", tag: TagP | None = None, type: TypeP | None = None,
    topic: TopicP | None = None, sort: SortP | None = None,
) -> ReuseQuery:
    """``GET /api/1/datasets/{id}/reuses/``'s parameters."""
    return parse_reuse_query(raw_query(request.resolved_event), PAGE_PARAMS)


ListQuery = Annotated[ReuseQuery, Depends(reuse_query)]
DatasetListQuery = Annotated[ReuseQuery, Depends(dataset_reuse_query)]

# --- documents ----------------------------------------------------------------------------------


def owner_id(reuser: str) -> str:
    """Id of a reuser as a udata user: ``uuid5(NAMESPACE_URL, "opendepot:reuser:{reuser}")``."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"opendepot:reuser:{reuser}"))


def verified_organization(name: str | None, reuser: str) -> bool:
    """Whether a registration's ``organization`` name is vouched for by where it was dropped:
    the reuser's folder (``reuses/{reuser}/``, writable by that principal alone) is the
    name's slug (``Etalab`` from ``reuses/etalab/``). Any other name is a claim: it never
    becomes an organization reference (a reuser would pose as a publisher)."""
    return bool(name) and slugify(str(name)) == reuser


def _organization(name: str | None, reuser: str) -> Document | None:
    if not name or not verified_organization(name, reuser):
        return None
    slug = slugify(name)
    return {"id": layout.organization_id(slug), "name": name, "acronym": None, "slug": slug,
            "uri": None, "page": None, "logo": None, "logo_thumbnail": None, "badges": []}


def _owner(reuser: str, author: str | None) -> Document:
    first, _, last = (author or reuser).partition(" ")
    return {"id": owner_id(reuser), "slug": reuser, "first_name": first, "last_name": last,
            "avatar": None, "avatar_thumbnail": None, "uri": None, "page": None}


def reuse_uri(slug: str, links: Links) -> str:
    """API URL of a reuse."""
    return links.api(f"{REUSES_PATH}{quote(slug, safe='')}/")


def reuse_document(r: Mapping[str, Any], links: Links) -> Document:
    """One stored reuse record (``opendepot.reuses.record_of``) as udata's ``Reuse`` (see the
    module docstring for the fields)."""
    datasets = [{"id": layout.dataset_id(d["slug"]), "title": d["title"], "slug": d["slug"],
                 "uri": links.dataset(d["slug"]), "page": links.dataset(d["slug"])}
                for d in r["datasets"]]
    organization = _organization(r.get("organization"), r["reuser"])
    claimed = None if organization else r.get("organization")
    uri = reuse_uri(r["slug"], links)
    return {
        "id": r["id"], "slug": r["slug"], "title": r["title"], "type": r["type"],
        "url": r["url"], "description": r["description"], "tags": list(r.get("tags") or []),
        "badges": [], "featured": False, "private": False, "archived": None, "deleted": None,
        "image": r.get("image"), "image_thumbnail": r.get("image"), "topic": r.get("topic"),
        "created_at": r["created_at"], "last_modified": r["last_modified"],
        "datasets": datasets, "organization": organization,
        "owner": None if organization else _owner(r["reuser"], r.get("author")),
        "metrics": {"datasets": len(datasets), "discussions": 0, "followers": 0, "views": 0},
        "extras": {"reuser": r["reuser"], "registered_as": r.get("key"),
                   "organization_claimed": claimed},
        "uri": uri, "page": uri,
    }


def _matches(d: Document, query: ReuseQuery, dataset: str = "") -> bool:
    wanted = dataset or query.dataset
    if wanted and not any(wanted in (x["slug"], x["id"]) for x in d["datasets"]):
        return False
    if query.type and d["type"] != query.type:
        return False
    if query.topic and d["topic"] != query.topic:
        return False
    if query.tags and not set(query.tags) <= set(d["tags"]):
        return False
    org, owner = d["organization"] or {}, d["owner"] or {}
    if query.organization and query.organization not in (org.get("slug"), org.get("id")):
        return False
    if query.owner and query.owner not in (owner.get("slug"), owner.get("id")):
        return False
    if query.q:
        text = " ".join([d["title"], d["description"], *d["tags"], d["extras"]["reuser"],
                         org.get("name") or d["extras"]["organization_claimed"] or ""])
        return all(word in paging.fold(text) for word in paging.fold(query.q).split())
    return True


def _sorted(docs: list[Document], sort: str) -> list[Document]:
    key, reverse = sort.removeprefix("-"), sort.startswith("-")
    docs = sorted(docs, key=lambda d: d["slug"])  # ties: by slug, whatever the direction
    if key == "title":
        return sorted(docs, key=lambda d: paging.fold(d["title"]), reverse=reverse)
    if key == "datasets":
        return sorted(docs, key=lambda d: len(d["datasets"]), reverse=reverse)
    return sorted(docs, key=lambda d: str(d["created_at"]), reverse=reverse)


def list_reuses(docs: Sequence[Document], query: ReuseQuery, url: str,
                dataset: str = "") -> Document:
    """One page of the filtered, sorted reuses as a udata pager (``{"data", "page",
    "page_size", "total", "next_page", "previous_page"}``); ``dataset``: only the reuses of
    that dataset (slug or id), whatever the query says."""
    found = _sorted([d for d in docs if _matches(d, query, dataset)], query.sort)
    data, page = paging.pager(found, query.page, url)
    return {"data": data, **page}


def last_modified(docs: Sequence[Document], changed: str | None = None) -> str | None:
    """A list's ``Last-Modified``: the later of the newest ``last_modified`` of ``docs`` and
    ``changed``, the reuse index's last change (``reuses.IndexState.changed_at``, which moves
    at every change, also one an older delivery makes); None: no reuse."""
    newest = max((str(d["last_modified"]) for d in docs if d["last_modified"]), default=None)
    return later(newest, changed)


def get_reuse(docs: Sequence[Document], key: str) -> Document:
    """The reuse whose id is ``key``, else the one whose slug is ``key`` (an id always wins,
    as udata looks ids up first). Raises NotFound."""
    found = next((d for d in docs if d["id"] == key), None) or next(
        (d for d in docs if d["slug"] == key), None)
    if found is None:
        raise NotFound(f"reuse {key!r} not found")
    return found


# --- handlers -----------------------------------------------------------------------------------


class ReuseHandlers:
    """The reuse routes over a ``Site`` (see ``opendepot.index_http.Handlers``): each method is
    one operation; the reuse index is read through one ``ReuseReader`` per process."""

    def __init__(self, site: Site) -> None:
        self.site = site

    def documents(self) -> list[Document]:
        """Every indexed reuse as udata documents, for the request in hand's base URL."""
        r = self.site.reader()
        links = self.site.links()
        return [reuse_document(x, links) for x in READER.reuses(r.store, r.settings)]

    def changed_at(self) -> str | None:
        """The reuse index's last change (None: no index)."""
        r = self.site.reader()
        return READER.state(r.store, r.settings).changed_at

    def counts_by_dataset_id(self) -> dict[str, int]:
        """Reuses per dataset id (``metrics.reuses`` of the dataset documents)."""
        r = self.site.reader()
        return counts_by_dataset_id(r.store, r.settings)

    def list_reuses(self, query: ListQuery) -> Response[str]:
        """Reuses (udata pager)."""
        s, docs = self.site, self.documents()
        doc = list_reuses(docs, query, s.links().api(REUSES_PATH))
        return s.json(doc, modified=last_modified(docs, self.changed_at()))

    def get_reuse(self, reuse: str) -> Response[str]:
        """One reuse, by id or slug."""
        doc = get_reuse(self.documents(), reuse)
        return self.site.json(doc, modified=doc["last_modified"])

    def list_dataset_reuses(self, dataset: str, query: DatasetListQuery) -> Response[str]:
        """The reuses of one dataset (udata pager)."""
        s, docs = self.site, self.documents()
        slug = s.slug(dataset)
        url = s.links().dataset(slug, "reuses/")
        doc = list_reuses(docs, query, url, dataset=slug)
        return s.json(doc, modified=last_modified(docs, self.changed_at()))


# --- OpenAPI models -----------------------------------------------------------------------------


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class ReuseDatasetRef(_Closed):
    """A dataset a reuse uses (udata's dataset reference)."""

    id: str
    title: str
    slug: str
    uri: str
    page: str


class ReuseOrganization(_Closed):
    """The organization a registration names (udata's ``OrganizationReference``; no page)."""

    id: str
    name: str
    acronym: None
    slug: str
    uri: None
    page: None
    logo: None
    logo_thumbnail: None
    badges: list[dict[str, str]] = Field(max_length=0)


class ReuseOwner(_Closed):
    """The reuser as udata's ``UserReference`` (no user pages in opendepot)."""

    id: str
    slug: str
    first_name: str
    last_name: str
    avatar: None
    avatar_thumbnail: None
    uri: None
    page: None


class ReuseMetrics(_Closed):
    datasets: int = Field(ge=1)
    discussions: int = Field(ge=0, le=0)
    followers: int = Field(ge=0, le=0)
    views: int = Field(ge=0, le=0)


class ReuseExtras(_Closed):
    reuser: str
    registered_as: str | None
    organization_claimed: str | None


class Reuse(_Closed):
    """udata's ``Reuse``, registered by a file under ``reuses/{reuser}/``."""

    id: str
    slug: str
    title: str
    type: Literal[TYPES]  # type: ignore[valid-type]
    url: str
    description: str
    tags: list[str]
    badges: list[dict[str, str]] = Field(max_length=0)
    featured: bool
    private: bool
    archived: None
    deleted: None
    image: str | None
    image_thumbnail: str | None
    topic: Literal[TOPICS] | None  # type: ignore[valid-type]
    created_at: str
    last_modified: str
    datasets: list[ReuseDatasetRef] = Field(min_length=1)
    organization: ReuseOrganization | None
    owner: ReuseOwner | None
    metrics: ReuseMetrics
    extras: ReuseExtras
    uri: str
    page: str


class ReusePage(_Closed):
    """A udata pager of reuses."""

    data: list[Reuse] = Field(max_length=MAX_PAGE_SIZE)
    page: int = Field(ge=1)
    page_size: int = Field(ge=1, le=MAX_PAGE_SIZE)
    total: int = Field(ge=0)
    next_page: str | None
    previous_page: str | None
