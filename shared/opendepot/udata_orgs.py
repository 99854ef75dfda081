"""Organizations and the udata API v2 documents, made from the shaped catalog
(``opendepot.index.Catalog``).

- Organizations: every producer of a published dataset (the registry's ``organization`` of each
  declaration, carried by ``catalog.json``), in udata's ``Organization`` shape: the reference
  (``udata_fields.organization_reference``) plus ``url``, ``description``,
  ``business_number_id`` (null or "": the registry declares only a name and a slug),
  ``created_at`` (its first dataset's), ``last_modified`` (its latest dataset publication),
  ``deleted`` null, ``metrics`` (``datasets`` counted; ``members``, ``reuses``,
  ``followers``, ``views`` 0: opendepot has no members, no reuse owned by an organization, no
  followers and counts no views), ``members`` empty, ``extras`` ``{}``.
- API v2: a dataset whose ``resources`` is a link to their pager
  (``/api/2/datasets/{id}/resources/``, ``V2_PAGE_SIZE`` a page, ``type`` and ``q`` filters),
  and a resource found by its id alone (``{"resource", "dataset_id"}``).

Pure functions (``now`` passed in).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opendepot import paging
from opendepot.index import BadRequest, Catalog, Document, Links, NotFound
from opendepot.udata_fields import (
    ORGANIZATION_METRICS,
    ORGANIZATIONS_PATH,
    organization_reference,
)

ORG_SORT_KEYS = ("name", "reuses", "datasets", "followers", "views", "created", "last_modified")
"""udata's organization sorts (``-`` prefix for descending)."""
RESOURCE_TYPES = ("main", "documentation", "update", "api", "code", "other")
"""udata's resource types (``type`` of the v2 resource pager)."""
V2_PAGE_SIZE = 50
"""udata API v2's default page size of a dataset's resources."""
V2_DATASETS_PATH = "/api/2/datasets/"
_ORG_SORT_FIELD = {"name": "name", "created": "created_at", "last_modified": "last_modified"}


@dataclass(frozen=True)
class OrgQuery(paging.PageQuery):
    """The parsed query string of ``GET /api/1/organizations/``."""

    q: str = ""
    """Words that must all appear (accents and case ignored) in name, slug or acronym."""
    name: str = ""
    """Exact name (case ignored)."""
    business_number_id: str = ""
    sort: str = ""
    """An ``ORG_SORT_KEYS`` key, ``-`` prefix for descending; "" = by slug."""


@dataclass(frozen=True)
class ResourceQuery(paging.PageQuery):
    """The parsed query string of ``GET /api/2/datasets/{id}/resources/``."""

    type: str = ""
    q: str = ""
    """Text the title must contain (case ignored)."""


def parse_org_query(params: Iterable[tuple[str, str]]) -> OrgQuery:
    """Read ``page``, ``page_size``, ``q``, ``name``, ``business_number_id``, ``sort`` (udata's
    rules, see ``paging.parse_list_query``).

    Raises:
        BadRequest: ``page``/``page_size`` out of range, an unknown ``sort``, ``badge``
            (opendepot's organizations carry none).
    """
    base = paging.parse_page_query(params)
    _, values, _ = paging.query_values(base.params)
    if "badge" in values:
        raise BadRequest("badge is not a supported filter: opendepot's organizations "
                                "carry no badges")
    sort = values.get("sort", "")
    if sort and sort.removeprefix("-") not in ORG_SORT_KEYS:
        raise BadRequest(f"sort={paging.shown(sort)} is not one of "
                                f"{', '.join(ORG_SORT_KEYS)} (prefix - to reverse)")
    return OrgQuery(base.page, base.page_size, base.params, q=values.get("q", ""),
                    name=values.get("name", ""),
                    business_number_id=values.get("business_number_id", ""), sort=sort)


def parse_resource_query(params: Iterable[tuple[str, str]]) -> ResourceQuery:
    """Read ``page``, ``page_size`` (default ``V2_PAGE_SIZE``), ``type``, ``q``.

    Raises:
        BadRequest: ``page``/``page_size`` out of range, ``type`` not a udata resource type.
    """
    pairs = tuple(params)
    _, values, _ = paging.query_values(pairs)
    if "page_size" not in values:
        pairs = (*pairs, ("page_size", str(V2_PAGE_SIZE)))
    base = paging.parse_page_query(pairs)
    kind = values.get("type", "")
    if kind and kind not in RESOURCE_TYPES:
        raise BadRequest(f"type={paging.shown(kind)} is not one of "
                                f"{', '.join(RESOURCE_TYPES)}")
    return ResourceQuery(base.page, base.page_size, tuple(params), type=kind,
                         q=values.get("q", ""))


# --- organizations --------------------------------------------------------------------------------


def organizations(catalog: Catalog, links: Links) -> list[Document]:
    """Every organization producing a published dataset, by slug (udata's shape, see module)."""
    grouped: dict[str, list[Document]] = {}
    for d in catalog.datasets:
        if d["organization"]:
            grouped.setdefault(d["organization"]["id"], []).append(d)
    out = []
    for datasets in grouped.values():
        created = [str(d["created_at"]) for d in datasets if d["created_at"]]
        modified = [str(d["last_modified"]) for d in datasets if d["last_modified"]]
        ref = organization_reference(datasets[0]["organization"], links.api_base_url)
        assert ref is not None  # grouped only datasets with an organization
        out.append({
            **ref, "url": None, "description": "", "business_number_id": None,
            "created_at": min(created, default=None), "last_modified": max(modified, default=None),
            "deleted": None,
            "metrics": {**dict.fromkeys(ORGANIZATION_METRICS, 0), "datasets": len(datasets)},
            "members": [], "extras": {},
        })  # fmt: skip
    return sorted(out, key=lambda o: o["slug"])


def get_organization(catalog: Catalog, links: Links, key: str) -> Document:
    """The organization whose slug or id is ``key``. Raises NotFound."""
    for org in organizations(catalog, links):
        if key in (org["slug"], org["id"]):
            return org
    raise NotFound(f"organization {key!r} not found")


def _org_matches(org: Mapping[str, Any], query: OrgQuery) -> bool:
    if query.name and org["name"].casefold() != query.name.casefold():
        return False
    if query.business_number_id and org["business_number_id"] != query.business_number_id:
        return False
    haystack = paging.fold(" ".join([org["name"], org["slug"], org["acronym"] or ""]))
    return all(word in haystack for word in paging.fold(query.q).split())


def list_organizations(catalog: Catalog, query: OrgQuery, links: Links) -> Document:
    """One page of the filtered, sorted organizations, as a udata pager."""
    found = [o for o in organizations(catalog, links) if _org_matches(o, query)]
    if query.sort:
        key, reverse = query.sort.removeprefix("-"), query.sort.startswith("-")
        if key in _ORG_SORT_FIELD:
            field = _ORG_SORT_FIELD[key]
            found.sort(key=lambda o: paging.fold(str(o[field] or "")), reverse=reverse)
        else:
            found.sort(key=lambda o: int(o["metrics"][key]), reverse=reverse)
    data, page = paging.pager(found, query, links.api(ORGANIZATIONS_PATH))
    return {"data": data, **page}


def organization_datasets(catalog: Catalog, org: Mapping[str, Any]) -> list[Document]:
    """The datasets an organization publishes (catalog documents, by slug)."""
    return [d for d in catalog.datasets if (d["organization"] or {}).get("id") == org["id"]]


# --- API v2 ---------------------------------------------------------------------------------------


def v2_resources_url(dataset: Mapping[str, Any], links: Links) -> str:
    """URL of a dataset's v2 resource pager (by id, as udata links it)."""
    return links.api(f"{V2_DATASETS_PATH}{dataset['id']}/resources/")


def dataset_v2(served: Mapping[str, Any], links: Links) -> Document:
    """A served dataset document in API v2's shape: ``resources`` becomes
    ``{"rel": "subsection", "href": <pager, first page>, "type": "GET", "total"}``."""
    href = f"{v2_resources_url(served, links)}?page=1&page_size={V2_PAGE_SIZE}"
    link = {"rel": "subsection", "href": href, "type": "GET", "total": len(served["resources"])}
    return {**served, "resources": link}


def list_resources_v2(
    dataset: Mapping[str, Any], query: ResourceQuery, links: Links
) -> Document:
    """One page of a dataset's resources (``type``, ``q`` filters), as a udata pager."""
    found: Sequence[Document] = [
        r for r in dataset["resources"]
        if (not query.type or r["type"] == query.type)
        and query.q.casefold() in str(r["title"]).casefold()
    ]  # fmt: skip
    data, page = paging.pager(found, query, v2_resources_url(dataset, links))
    return {"data": data, **page}


def resource_v2(catalog: Catalog, rid: str) -> Document:
    """``{"resource", "dataset_id"}`` of the resource whose id is ``rid``. Raises NotFound."""
    found = catalog.resources.get(rid)
    if found is None:
        raise NotFound(f"resource {rid!r} not found")
    return {"resource": found[1], "dataset_id": found[0]["id"]}
