"""The udata fields opendepot serves beside its own, in udata's shapes (opendatateam/udata
``udata/core/dataset/api_fields.py``, ``udata/core/organization/api_fields.py``).

What opendepot has no notion of is served with udata's value for "none": ``deleted``,
``archived``, ``harvest``, ``owner`` null; ``featured``, ``private`` false; ``badges``,
``contact_points`` empty; metrics 0 (udata's ``get_metrics`` default), except ``reuses``,
counted from the reuse catalogue (``metrics_document``). Pure functions; ``index`` builds its
documents with them (this module does not import ``index``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from opendepot.layout import organization_id

ORGANIZATIONS_PATH = "/api/1/organizations/"
"""Path of the organization list; each organization hangs below it."""
DATASET_METRICS = (
    "discussions", "discussions_open", "reuses", "reuses_by_months", "dataservices", "followers",
    "followers_by_months", "views", "resources_downloads",
)  # fmt: skip
"""udata's ``Dataset.__metrics_keys__``, in its order."""
ORGANIZATION_METRICS = ("datasets", "members", "reuses", "followers", "views")
"""udata's ``Organization.__metrics_keys__``."""
RESOURCE_METRICS = ("views",)
"""udata's ``Resource.__metrics_keys__``."""

Document = dict[str, Any]


def metrics_document(reuses: int = 0) -> Document:
    """A dataset's ``metrics``, udata's keys: ``reuses`` is the number of reuses of the
    reuse catalogue that use the dataset; the ``*_by_months`` are ``{}``; the others are 0
    (opendepot has no discussions, followers, dataservices, and counts no views or downloads).
    The one place the dataset metrics are made."""
    out: Document = dict.fromkeys(DATASET_METRICS, 0)
    out.update(reuses=reuses, reuses_by_months={}, followers_by_months={})
    return out


def with_reuses(dataset: Mapping[str, Any], reuses: int) -> Document:
    """The dataset document with ``metrics.reuses`` set to ``reuses`` (the rest unchanged)."""
    return {**dataset, "metrics": metrics_document(reuses)}


def organization_uri(slug: str, api: str = "") -> str:
    """API URL of an organization (``api``: the API's base URL, "" for a relative link)."""
    return f"{api.rstrip('/')}{ORGANIZATIONS_PATH}{quote(slug, safe='')}/"


def organization_reference(org: Mapping[str, Any] | None, api: str = "") -> Document | None:
    """udata's ``OrganizationReference`` of a dataset's producer (None when none):
    ``{"id", "name", "acronym", "uri", "slug", "page", "logo", "logo_thumbnail", "badges"}``;
    ``id`` is the registry's, else ``layout.organization_id(slug)``; ``page`` is ``uri`` (no
    web page); ``logo`` as the registry gives it (null otherwise)."""
    if not org:
        return None
    slug = str(org.get("slug") or org.get("name") or "")
    uri = organization_uri(slug, api)
    logo = org.get("logo")
    return {
        "id": str(org.get("id") or organization_id(slug)),
        "name": str(org.get("name") or slug),
        "acronym": org.get("acronym"),
        "uri": uri,
        "slug": slug,
        "page": uri,
        "logo": logo,
        "logo_thumbnail": logo,
        "badges": [],
    }


def resource_fields(created_at: str | None, last_modified: str | None) -> Document:
    """udata resource keys opendepot adds to its own: ``internal`` (``created_at_internal``:
    the dataset's first publication; ``last_modified_internal``: this file's publication),
    ``metrics`` (``views`` 0), ``harvest`` and ``preview_url`` null."""
    return {
        "internal": {"created_at_internal": created_at, "last_modified_internal": last_modified},
        "metrics": dict.fromkeys(RESOURCE_METRICS, 0),
        "harvest": None,
        "preview_url": None,
    }


def dataset_fields(
    description: str, created_at: str | None, last_modified: str | None
) -> Document:
    """udata dataset keys opendepot adds to its own: ``description_short`` (the description's
    first paragraph, at most 200 characters), ``deleted``/``archived``/``harvest``/``owner``
    null, ``featured``/``private`` false, ``badges``/``contact_points`` empty, ``metrics``
    (``metrics_document``) and ``internal`` (``created_at_internal``: first publication;
    ``last_modified_internal``: the current version's publication)."""
    first = description.strip().split("\n\n", 1)[0].strip()
    return {
        "description_short": first[:200] if first else None,
        "deleted": None,
        "archived": None,
        "featured": False,
        "private": False,
        "badges": [],
        "harvest": None,
        "owner": None,
        "contact_points": [],
        "metrics": metrics_document(),
        "internal": {"created_at_internal": created_at, "last_modified_internal": last_modified},
    }
