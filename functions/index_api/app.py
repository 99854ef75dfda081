"""HTTP index of published datasets, in data.gouv.fr (udata API v1) shapes: the routes.

Each route is declared once, here (``Site.read``: GET and HEAD, the twin with or without the
trailing slash, the model of its answer, the error statuses it documents); what it answers is
the method of ``opendepot.index_http.Handlers`` it names. ``/api/1/openapi.json`` is generated
from these declarations. Reads go through ``opendepot.reader`` over the runtime's settings,
store and clock (``opendepot.runtime``); ``configure`` pins another store (tests, local stack).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from opendepot import api_models as m
from opendepot import atom, rdf_http, reuses_http, tabular_http, udata_http
from opendepot import index_http as http
from opendepot.index import DATASETS_PATH as DATASETS
from opendepot.index_http import Answer
from opendepot.openapi import CATALOG_JSONLD_PATH, DATASETS_CSV_PATH, OPENAPI_PATH
from opendepot.udata_fields import ORGANIZATIONS_PATH
from opendepot.udata_orgs import V2_DATASETS_PATH as V2_DATASETS

logger = Logger(service="opendepot-index-api")
app = APIGatewayHttpResolver(cors=http.CORS)
site = http.Site(app, logger)
on = http.Handlers(site)
configure, ROUTES = site.configure, site.rules
DATASET = DATASETS + "<dataset>/"
CSV, JSONLD = Answer("text/csv", schema={"type": "string"}), Answer("application/ld+json")
ATOM = Answer("application/atom+xml", schema={"type": "string"}, description="Atom 1.0 feed.")

site.read(DATASETS, m.DatasetPage, errors=(400,))(on.list_datasets)
site.read(DATASET, m.Dataset)(on.get_dataset)
site.read(DATASET + "resources/<rid>/", m.Resource)(on.get_resource)
site.read(atom.RECENT_PATH, ATOM, "feeds", ())(on.recent_atom)
site.read(DATASETS + "r/<rid>", None, errors=(400, 404))(on.latest_file)
site.read(DATASET + "versions/", m.VersionPage, "versions", (400, 404))(on.list_versions)
site.read(DATASET + "versions/<version>/", m.Version, "versions")(on.get_version)
site.read(DATASET + "versions/<version>/changes/", m.Changes, "versions")(on.get_changes)
site.read(DATASET + atom.VERSIONS_FEED, ATOM, "feeds")(on.versions_atom)
site.read(DATASET + "schema/", m.TableSchema, "schemas", (400, 404))(on.get_schema)
site.read(DATASET + "datapackage.json", m.DataPackage, "schemas")(on.get_datapackage)
site.read(DATASETS_CSV_PATH, CSV, "exports", ())(on.datasets_csv)
site.read(CATALOG_JSONLD_PATH, JSONLD, "exports", ())(on.catalog_jsonld)
site.read(OPENAPI_PATH, Answer(), "exports", ())(on.openapi_json)
# udata parity: organizations, API v2, resources export (opendepot.udata_http)
ud, ORG = udata_http.UdataHandlers(site), ORGANIZATIONS_PATH + "<org>/"
site.read(ORGANIZATIONS_PATH, m.OrganizationPage, "organizations", (400,))(ud.list_organizations)
site.read(ORG, m.Organization, "organizations")(ud.get_organization)
site.read(ORG + "datasets/", m.DatasetPage, "organizations", (400, 404))(
    ud.list_organization_datasets)
site.read(ORG + "datasets.csv", CSV, "organizations")(ud.organization_datasets_csv)
site.read(ORG + "datasets-resources.csv", CSV, "organizations")(ud.organization_resources_csv)
site.read(udata_http.RESOURCES_CSV_PATH, CSV, "exports", ())(ud.resources_csv)
site.read(V2_DATASETS + "resources/<rid>/", m.SpecificResource, "datasets v2")(ud.get_resource_v2)
site.read(V2_DATASETS + "<dataset>/", m.DatasetV2, "datasets v2")(ud.get_dataset_v2)
site.read(V2_DATASETS + "<dataset>/resources/", m.ResourcePage, "datasets v2", (400, 404))(
    ud.list_resources_v2)
# the reuse catalogue (opendepot.reuses_http)
ru, REUSES = reuses_http.ReuseHandlers(site), reuses_http.REUSES_PATH
site.read(REUSES, reuses_http.ReusePage, "reuses", (400,))(ru.list_reuses)
site.read(REUSES + "<reuse>/", reuses_http.Reuse, "reuses")(ru.get_reuse)
site.read(DATASET + "reuses/", reuses_http.ReusePage, "reuses", (400, 404))(
    ru.list_dataset_reuses)
# the row-level API, in api-tabular's paths and shapes (opendepot.tabular_http)
tab, TAB = tabular_http.Handlers(site), tabular_http.RESOURCES_PATH + "<rid>/"
site.read(TAB, tabular_http.ResourceMeta, "tabular")(tab.tabular_resource)
site.read(TAB + "data/", tabular_http.DataPage, "tabular", (400, 404))(tab.tabular_data)
site.read(TAB + "data/csv/", tabular_http.CSV, "tabular", (400, 403, 404))(tab.tabular_data_csv)
site.read(TAB + "data/json/", tabular_http.JSON_ROWS, "tabular", (400, 403, 404))(
    tab.tabular_data_json)
site.read(TAB + "profile/", tabular_http.Profile, "tabular")(tab.tabular_profile)
site.read(TAB + "swagger/", tabular_http.SWAGGER, "tabular")(tab.tabular_swagger)
# DCAT-AP RDF by content negotiation or suffix, as udata serves it (opendepot.rdf_http)
rdf, RDF_ANSWER = rdf_http.RdfHandlers(site), rdf_http.ANSWER
site.read(DATASET + "rdf", RDF_ANSWER, "exports", (404, 406))(rdf.dataset_rdf)
site.read(DATASET + "rdf.<format>", RDF_ANSWER, "exports")(rdf.dataset_rdf_format)
site.read(rdf_http.SITE_CATALOG_PATH, RDF_ANSWER, "exports", (406,))(rdf.catalog_rdf)
site.read(rdf_http.SITE_CATALOG_PATH + ".<format>", RDF_ANSWER, "exports")(
    rdf.catalog_rdf_format)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
