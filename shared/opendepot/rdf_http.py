"""The index's RDF routes, as udata serves them (opendatateam/udata ``udata/core/dataset/api.py``,
``udata/core/site/api.py``): one dataset, or the whole catalog, as DCAT-AP 3.0
(``opendepot.dcat``) in JSON-LD, Turtle, RDF/XML, N3, N-Triples or TriG (``opendepot.rdf``).

- ``/api/1/datasets/{dataset}/rdf`` and ``/api/1/site/catalog``: the serialisation the
  ``Accept`` header asks for (``rdf.negotiate``: JSON-LD by default), with ``Vary: Accept`` and
  a ``Content-Location`` naming the suffixed URL of that variant; 406 (JSON error envelope)
  when no served type is acceptable. udata answers these with a 302 to the suffixed URL and
  never a 406; opendepot answers the variant itself (one round trip, same bytes).
- ``/api/1/datasets/{dataset}/rdf.{format}`` and ``/api/1/site/catalog.{format}``: the format
  the suffix names (``rdf.FORMATS``); an unknown suffix is a 404, as in udata.
- The catalog is not paged (udata pages it with Hydra at 100 datasets; opendepot publishes tens).

Each answer has ``Last-Modified`` (the dataset's ``last_modified``, the catalog's
``generated_at``) and the ETag of its body. ``RdfHandlers`` takes the ``index_http.Site``;
``functions/index_api/app.py`` declares the routes with ``ANSWER``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path

from opendepot import dcat, index, rdf
from opendepot.index_http import Answer, Site, send

SITE_CATALOG_PATH = "/api/1/site/catalog"
"""udata's path of the whole catalog as RDF (``.{format}`` for one serialisation)."""
_STRING = {"type": "string"}
ANSWER = Answer(
    rdf.JSON_LD.media,
    schema={"type": "object", "required": ["@context", "@graph"]},
    description="DCAT-AP 3.0 graph, in the serialisation asked for.",
    more={media: _STRING for media in rdf.MEDIA_TYPES if media != rdf.JSON_LD.media},
)
"""The 200 of every RDF route: a JSON-LD object, or the text of another serialisation."""

FormatParam = Annotated[
    Literal[rdf.SUFFIXES],  # type: ignore[valid-type]  # values known at import
    Path(description="Serialisation: `jsonld`/`json` JSON-LD, `ttl` Turtle, `rdf`/`xml` "
         "RDF/XML, `n3` N3, `nt` N-Triples, `trig` TriG."),
]


class NotAcceptable(index.ApiError):
    """The ``Accept`` header admits none of the served RDF media types."""

    status = 406
    headers: ClassVar[Mapping[str, str]] = {"Vary": "Accept, Accept-Encoding"}


class RdfHandlers:
    """The RDF operations over a ``Site`` (one method per route; see ``index_http.Handlers``
    for the conventions). Errors: ``index.NotFound`` (dataset, suffix), ``NotAcceptable``."""

    def __init__(self, site: Site) -> None:
        self.site = site

    def dataset_rdf(self, dataset: str) -> Response[str]:
        """One dataset as DCAT-AP RDF, in the serialisation the Accept header asks for."""
        fmt = self._negotiated()
        doc, found, base = self._dataset(dataset)
        where = f"{base}{index.DATASETS_PATH}{found['slug']}/rdf.{fmt.suffix}"
        return self._answer(doc, fmt, found["last_modified"], where)

    def dataset_rdf_format(self, dataset: str, format: FormatParam) -> Response[str]:
        """One dataset as DCAT-AP RDF, in the serialisation its suffix names."""
        fmt = _suffix(format)
        doc, found, _ = self._dataset(dataset)
        return self._answer(doc, fmt, found["last_modified"])

    def catalog_rdf(self) -> Response[str]:
        """The whole catalog as DCAT-AP RDF, in the serialisation the Accept header asks for."""
        fmt = self._negotiated()
        doc, modified, base = self._catalog()
        return self._answer(doc, fmt, modified, f"{base}{SITE_CATALOG_PATH}.{fmt.suffix}")

    def catalog_rdf_format(self, format: FormatParam) -> Response[str]:
        """The whole catalog as DCAT-AP RDF, in the serialisation its suffix names."""
        fmt = _suffix(format)
        doc, modified, _ = self._catalog()
        return self._answer(doc, fmt, modified)

    # -- helpers

    def _base(self) -> str:
        return self.site.base() or "http://localhost"

    def _negotiated(self) -> rdf.RdfFormat:
        accept = self.site.event.headers.get("accept")
        fmt = rdf.negotiate(accept)
        if fmt is None:
            raise NotAcceptable(
                f"Accept {accept!r} admits none of {', '.join(rdf.MEDIA_TYPES)}")
        return fmt

    def _dataset(self, key: str) -> tuple[dict[str, Any], dict[str, Any], str]:
        base = self._base()
        found = index.get_dataset(self.site.reader().catalog(base), key)
        return dcat.dataset_jsonld(found, base), found, base

    def _catalog(self) -> tuple[dict[str, Any], str | None, str]:
        base = self._base()
        catalog = self.site.reader().catalog(base)
        doc = dcat.catalog_jsonld(catalog, dcat.CatalogInfo(base_url=base))
        return doc, catalog.generated_at, base

    def _answer(
        self, doc: dict[str, Any], fmt: rdf.RdfFormat, modified: str | None,
        location: str | None = None,
    ) -> Response[str]:
        """``doc`` in ``fmt``; a negotiated answer (``location``) varies with ``Accept``."""
        headers = {"Vary": "Accept, Accept-Encoding", "Content-Location": location} if location \
            else None
        return send(self.site.event, rdf.serialise(doc, fmt), f"{fmt.media}; charset=utf-8",
                    headers=headers, modified=modified)


def _suffix(suffix: str) -> rdf.RdfFormat:
    """The format of a ``rdf.{suffix}``. Raises index.NotFound for one not served."""
    fmt = rdf.FORMATS.get(suffix)
    if fmt is None:
        raise index.NotFound(f"no RDF format {suffix!r}: one of {', '.join(rdf.SUFFIXES)}")
    return fmt
