"""The udata routes beyond the dataset list: organizations, API v2 and the resources export,
as handlers over an ``index_http.Site`` (declared in ``functions/index_api/app.py``).

- ``/api/1/organizations/`` (pager), ``/{org}/`` (slug or id), ``/{org}/datasets/`` (the
  dataset list's parameters, the organization fixed), ``/{org}/datasets.csv``,
  ``/{org}/datasets-resources.csv``;
- ``/api/2/datasets/{dataset}/`` (``resources`` a link), ``/api/2/datasets/{dataset}/resources/``
  (pager), ``/api/2/datasets/resources/{rid}/`` (a resource by id alone);
- ``/api/1/site/resources.csv``.

Documents come from ``opendepot.udata_orgs`` and ``opendepot.paging``; every answer carries
``Last-Modified`` (the catalog's generation, or the dataset's publication; for the answers
carrying ``metrics.reuses``, org datasets and the v2 dataset, the later of that and the reuse
index's last change) and honours
``X-Fields`` (JSON) as ``index_http.send_json`` does.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.request import Request

from opendepot import index, paging, udata_orgs
from opendepot.api_models import (
    OrgSortParam,
    PageParam,
    PageSizeParam,
    ResourceTypeParam,
    SearchParam,
    TextParam,
    V2PageSizeParam,
)
from opendepot.index import DEFAULT_PAGE_SIZE
from opendepot.index_http import ListQuery, Site, later, raw_query

RESOURCES_CSV_PATH = "/api/1/site/resources.csv"
CSV = "text/csv; charset=utf-8"


def org_query(
    request: Request,
    page: PageParam = 1,
    page_size: PageSizeParam = DEFAULT_PAGE_SIZE,
    q: SearchParam = "",
    name: TextParam = "",
    business_number_id: TextParam = "",
    sort: OrgSortParam | None = None,
) -> udata_orgs.OrgQuery:
    """``GET /api/1/organizations/``'s parameters (read by ``udata_orgs.parse_org_query``).

    Raises:
        index.BadRequest: a value the declaration does not allow.
    """
    return udata_orgs.parse_org_query(raw_query(request.resolved_event))


def resource_query(
    request: Request,
    page: PageParam = 1,
    page_size: V2PageSizeParam = udata_orgs.V2_PAGE_SIZE,
    type: ResourceTypeParam | None = None,  # udata's parameter name
    q: SearchParam = "",
) -> udata_orgs.ResourceQuery:
    """``GET /api/2/datasets/{dataset}/resources/``'s parameters
    (read by ``udata_orgs.parse_resource_query``).

    Raises:
        index.BadRequest: a value the declaration does not allow.
    """
    return udata_orgs.parse_resource_query(raw_query(request.resolved_event))


OrgQuery = Annotated[udata_orgs.OrgQuery, Depends(org_query)]
ResourceQuery = Annotated[udata_orgs.ResourceQuery, Depends(resource_query)]


class UdataHandlers:
    """Organizations, API v2 and the resources export over a ``Site`` (one method per
    operation, as ``index_http.Handlers``)."""

    def __init__(self, site: Site) -> None:
        self.site = site

    def list_organizations(self, query: OrgQuery) -> Response[str]:
        """Organizations (udata pager)."""
        s = self.site
        catalog = s.catalog()
        doc = udata_orgs.list_organizations(catalog, query, s.links())
        return s.json(doc, modified=catalog.generated_at)

    def get_organization(self, org: str) -> Response[str]:
        """One organization (by slug or id), made from the datasets it publishes."""
        s = self.site
        catalog = s.catalog()
        found = udata_orgs.get_organization(catalog, s.links(), org)
        return s.json(found, modified=catalog.generated_at)

    def list_organization_datasets(self, org: str, query: ListQuery) -> Response[str]:
        """An organization's datasets (udata pager; the dataset list's parameters)."""
        s = self.site
        catalog = s.catalog()
        found = udata_orgs.get_organization(catalog, s.links(), org)
        query = dataclasses.replace(query, organization=found["id"])
        url = f"{found['uri']}datasets/"
        counts, changed = s.reuse_counts()
        doc = paging.list_datasets(catalog, query, s.links(), s.now(), url=url, reuses=counts)
        return s.json(doc, modified=later(catalog.generated_at, changed))

    def organization_datasets_csv(self, org: str) -> Response[str]:
        """An organization's datasets, one `;`-separated row each."""
        s = self.site
        catalog = s.catalog()
        found = udata_orgs.get_organization(catalog, s.links(), org)
        datasets = udata_orgs.organization_datasets(catalog, found)
        return s.send(paging.datasets_csv(catalog, s.now(), datasets), CSV, catalog.generated_at)

    def organization_resources_csv(self, org: str) -> Response[str]:
        """The resources of an organization's datasets, one `;`-separated row each."""
        s = self.site
        catalog = s.catalog()
        found = udata_orgs.get_organization(catalog, s.links(), org)
        datasets = udata_orgs.organization_datasets(catalog, found)
        return s.send(paging.resources_csv(catalog, datasets), CSV, catalog.generated_at)

    def resources_csv(self) -> Response[str]:
        """Every resource of every dataset, one `;`-separated row each."""
        s = self.site
        catalog = s.catalog()
        return s.send(paging.resources_csv(catalog), CSV, catalog.generated_at)

    def get_dataset_v2(self, dataset: str) -> Response[str]:
        """One dataset (API v2: its resources are a link to their pager)."""
        s = self.site
        d = index.get_dataset(s.catalog(), dataset)
        counts, changed = s.reuse_counts()
        doc = udata_orgs.dataset_v2(paging.served(d, s.now(), counts), s.links())
        return s.json(doc, modified=later(d["last_modified"], changed))

    def list_resources_v2(self, dataset: str, query: ResourceQuery) -> Response[str]:
        """A dataset's resources (API v2 pager)."""
        s = self.site
        d = index.get_dataset(s.catalog(), dataset)
        doc = udata_orgs.list_resources_v2(d, query, s.links())
        return s.json(doc, modified=d["last_modified"])

    def get_resource_v2(self, rid: str) -> Response[str]:
        """A resource by its id alone, with its dataset's id (API v2)."""
        s = self.site
        catalog = s.catalog()
        doc = udata_orgs.resource_v2(catalog, rid)
        found = catalog.by_key[doc["dataset_id"]]
        return s.json(doc, modified=found["last_modified"])
