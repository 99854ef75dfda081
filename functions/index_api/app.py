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
from opendepot import atom
from opendepot import index_http as http
from opendepot.index import DATASETS_PATH as DATASETS
from opendepot.index_http import Answer
from opendepot.openapi import CATALOG_JSONLD_PATH, DATASETS_CSV_PATH, OPENAPI_PATH

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


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
