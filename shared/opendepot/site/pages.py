"""The site's home and dataset pages, rendered from documents already read (no storage here).

``opendepot.site.build`` reads ``catalog.json``, the manifests, a few ``changes.json`` and the
newest validation reports, and shapes the catalog with ``opendepot.index`` (the API's own
dataset and resource documents: the same links, sizes and checksums as the API serves); this
module turns those documents into pages:

- ``home_page``: ``""``, the inventory of the datasets (``templates/home.html``);
- ``dataset_page``: ``datasets/{slug}/`` (``templates/dataset.html``).

Freshness is the API's ``quality.update_fulfilled_in_time`` (``index.quality_document``, udata's
rule): a dataset is **late** when ``now`` is past its last version's publication time plus its
frequency's period (``index.FREQUENCY_PERIOD``) plus one day of grace (``index.GRACE``): daily,
late once the last version is more than 2 days old; weekly, more than 8 days; a frequency
without a period (``irregular``, ``continuous``, ``punctual``) is never late; ``unknown`` has no
freshness.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from opendepot import atom, index
from opendepot.site import Page, fr_date, fr_int, fr_number, render, root_of

FREQUENCY_LABELS: Mapping[str, str] = {
    "hourly": "horaire", "daily": "quotidienne", "semidaily": "deux fois par jour",
    "weekly": "hebdomadaire", "semiweekly": "deux fois par semaine", "biweekly": "bimensuelle",
    "monthly": "mensuelle", "quarterly": "trimestrielle", "annual": "annuelle",
    "irregular": "irrégulière", "continuous": "continue", "punctual": "ponctuelle",
    "unknown": "inconnue",
}
"""French label of a udata frequency (the code itself when not listed)."""
LEVEL_LABELS: Mapping[str, str] = {"dep": "départements", "reg": "régions", "fra": "France"}
"""French label of a geographic level (a consolidated table keeps its name)."""
FORMAT_LABELS: Mapping[str, str] = {"csv": "CSV", "parquet": "Parquet"}
STATUS_LABELS: Mapping[str, str] = {"accepted": "acceptée", "rejected": "rejetée",
                                    "held": "retenue", "failed": "en échec"}
"""French label of a validation status (``opendepot.report``: ``opendepot.status``)."""
STATUS_BADGE: Mapping[str, str] = {"accepted": "accepted", "rejected": "rejected",
                                   "held": "held", "failed": "rejected"}


@dataclass(frozen=True)
class Freshness:
    """A dataset's freshness at ``now`` (see the module docstring)."""

    state: str
    """``ok`` (on time), ``late`` or ``unknown`` (no frequency): also the badge's class."""
    label: str
    """``à jour``, ``en retard`` or ``inconnue``."""
    late_after: datetime | None
    """When it turns (turned) late: the last version + the period + ``index.GRACE``; None
    for a frequency without a period."""


@dataclass(frozen=True)
class UploadStatus:
    """One upload's validation, from its report (``opendepot.report``'s ``opendepot`` member)."""

    producer: str
    upload_id: str
    received_at: str | None
    """ISO 8601 UTC, from the upload id (``index.upload_time``)."""
    file: str
    """The uploaded file's name (last segment of its incoming key)."""
    status: str
    """``accepted``, ``rejected``, ``held`` or ``failed``."""
    rows: int | None
    rows_published: int | None
    errors: int | None
    warnings: int | None


@dataclass(frozen=True)
class VersionRow:
    """A version as the dataset page lists it: its API document and what it changed."""

    doc: index.Document
    """``index.version_document`` (``version``, ``published_at``, ``rows``, ``producers``...)."""
    headline: Mapping[str, Any] | None
    """``atom.headline_of`` its ``changes.json`` (None: a first version, or none recorded)."""
    changes_json: str | None
    """URL of its ``changes.json`` (None: none recorded)."""
    changes_csv: str | None
    """URL of its ``changes.csv`` (None: no changed cell, or none recorded)."""
    previous: str | None
    """The version published before it (None: the first version)."""


def freshness(doc: Mapping[str, Any], now: datetime) -> Freshness:
    """``doc``'s (``index.dataset_document``) freshness at ``now``."""
    in_time = index.quality_document(doc, now)["update_fulfilled_in_time"]
    due = index.parse_time(doc.get("frequency_date"))
    late_after = due + index.GRACE if due is not None else None
    if in_time is None:
        return Freshness("unknown", "inconnue", None)
    return Freshness("ok" if in_time else "late", "à jour" if in_time else "en retard",
                     late_after)


def late_days(frequency: str) -> int | None:
    """Whole days after its last version a dataset of ``frequency`` turns late (daily: 2,
    weekly: 8); None when it never does."""
    period = index.FREQUENCY_PERIOD.get(frequency)
    return None if period is None else round((period + index.GRACE) / timedelta(days=1))


def legend(frequencies: Sequence[str]) -> list[str]:
    """One French sentence per frequency of ``frequencies`` (in order, once each) saying when a
    dataset turns late."""
    out = []
    for f in dict.fromkeys(frequencies):
        days = late_days(f)
        label = FREQUENCY_LABELS.get(f, f)
        if days is not None:
            out.append(f"{label} : en retard quand la dernière version a plus de {days} jours")
        elif f in index.UNSCHEDULED:
            out.append(f"{label} : jamais en retard (pas d'échéance)")
        else:
            out.append(f"{label} : fraîcheur inconnue")
    return out


def human_bytes(n: int | None) -> str:
    """``3742202`` -> ``3,7 Mo`` (decimal units, French: o, ko, Mo, Go); None -> ``–``."""
    if n is None:
        return "–"
    if n < 1000:
        return f"{fr_int(n)} o"
    for unit, size in (("ko", 1e3), ("Mo", 1e6), ("Go", 1e9)):
        if n < size * 1000 or unit == "Go":
            return f"{fr_number(n / size, 1)} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def fr_moment(value: str | None) -> str:
    """``2026-11-29T08:02:10Z`` -> ``29 novembre 2026 à 08 h 02 UTC``; None -> ``–``."""
    moment = index.parse_time(value)
    if moment is None:
        return "–"
    return f"{fr_date(moment.date())} à {moment:%H} h {moment:%M} UTC"


def level_label(level: str) -> str:
    return LEVEL_LABELS.get(level, level)


def _downloads(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per level: ``{"level", "label", "files": [{"format", "label", "url"}]}``, stable links
    (``latest``: ``/api/1/datasets/r/{id}``, always the current version's file)."""
    by_level: dict[str, dict[str, Any]] = {}
    for r in doc["resources"]:
        level = r["extras"]["level"]
        row = by_level.setdefault(level, {"level": level, "label": level_label(level),
                                          "files": []})
        row["files"].append({"format": r["format"], "url": r["latest"],
                             "label": FORMAT_LABELS.get(r["format"], r["format"])})
    return list(by_level.values())


def _rows(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"level": level, "label": level_label(level), "rows": n}
            for level, n in doc["extras"]["rows"].items()]


def _summary(doc: Mapping[str, Any], now: datetime, root: str) -> dict[str, Any]:
    """What the home and the dataset page say of a dataset (``doc``: its document)."""
    org = doc.get("organization") or {}
    frequency = str(doc.get("frequency") or "unknown")
    coverage = doc.get("temporal_coverage") or {}
    return {
        "slug": doc["slug"], "title": doc["title"], "href": f"{root}datasets/{doc['slug']}/",
        "organization": org.get("name") or "–", "frequency": frequency,
        "frequency_label": FREQUENCY_LABELS.get(frequency, frequency),
        "freshness": freshness(doc, now), "version": doc["extras"]["version"],
        "published_at": doc["last_modified"], "published": fr_moment(doc["last_modified"]),
        "coverage_end": coverage.get("end"), "coverage_start": coverage.get("start"),
        "rows": _rows(doc), "downloads": _downloads(doc), "api": doc["uri"],
    }


def home_page(datasets: Sequence[index.Document], now: datetime) -> Page:
    """``""``: every dataset (``index.dataset_document`` shaped with links relative to the
    root, see ``build.links_for``), by title, with its freshness at ``now``."""
    root = root_of("")
    rows = [_summary(d, now, root) for d in sorted(datasets, key=lambda d: d["title"].casefold())]
    late = sum(1 for r in rows if r["freshness"].state == "late")
    body = render("home.html", page_title="Jeux de données COVID-19", root=root, nav="home",
                  datasets=rows, late=late, now=now, now_text=fr_moment(index.iso(now)),
                  legend=legend([r["frequency"] for r in rows]))
    return Page("", body)


def _fields(schema: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A Table Schema's fields as the page documents them: ``{"name", "type", "title",
    "description", "unit", "constraints": [str]}`` (required, enum, minimum, maximum...)."""
    out = []
    for f in schema.get("fields") or []:
        c = f.get("constraints") or {}
        said = []
        if c.get("required"):
            said.append("obligatoire")
        if "enum" in c:
            said.append("valeurs : " + ", ".join(str(v) for v in c["enum"]))
        for key, word in (("minimum", "minimum"), ("maximum", "maximum"),
                          ("minLength", "longueur minimale"), ("maxLength", "longueur maximale"),
                          ("pattern", "motif")):
            if key in c:
                said.append(f"{word} : {c[key]}")
        if c.get("unique"):
            said.append("unique")
        out.append({"name": f.get("name"), "type": f.get("type", "any"),
                    "title": f.get("title") or "", "description": f.get("description") or "",
                    "unit": f.get("unit") or "", "constraints": said})
    return out


def _resources(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"id": r["id"], "title": r["title"], "level": r["extras"]["level"],
             "level_label": level_label(r["extras"]["level"]), "format": r["format"],
             "format_label": FORMAT_LABELS.get(r["format"], r["format"]),
             "bytes": r["filesize"], "size": human_bytes(r["filesize"]),
             "rows": r["extras"]["rows"], "sha256": r["checksum"]["value"],
             "latest": r["latest"], "url": r["url"]} for r in doc["resources"]]


def change_sentence(headline: Mapping[str, Any] | None, previous: str | None) -> list[str]:
    """A version's changes in French sentences (``atom.summary_text``'s content)."""
    if headline is None:
        return ["Première version." if previous is None
                else "Aucune comparaison enregistrée avec la version précédente."]
    r = headline.get("rows") or {}
    out = [f"{fr_int(r.get('added'))} lignes ajoutées, {fr_int(r.get('removed'))} supprimées, "
           f"{fr_int(r.get('changed'))} modifiées ({fr_int(headline.get('cells_changed'))} "
           "cellules)."]
    if headline.get("drops_published"):
        out.append("Attention : des valeurs publiées auparavant manquent dans cette version.")
    out += [f"Avertissement : {w}." for w in headline.get("warnings") or []]
    return out


def _versions(rows: Sequence[VersionRow]) -> list[dict[str, Any]]:
    out = []
    for v in rows:
        out.append({"version": v.doc["version"], "published": fr_moment(v.doc["published_at"]),
                    "published_at": v.doc["published_at"], "rows": [
                        {"label": level_label(k), "rows": n} for k, n in v.doc["rows"].items()],
                    "producers": v.doc["producers"], "uploads": v.doc["upload_count"],
                    "changes": change_sentence(v.headline, v.previous),
                    "changes_json": v.changes_json, "changes_csv": v.changes_csv,
                    "uri": v.doc["uri"]})
    return out


def dataset_page(
    doc: index.Document, schemas: Mapping[str, Mapping[str, Any]], versions: Sequence[VersionRow],
    versions_total: int, reports: Sequence[UploadStatus] | None, now: datetime,
) -> Page:
    """``datasets/{slug}/``: ``doc`` (its document, links relative to the page, see
    ``build.links_for``), the Table Schema of each level (``schemas``, first level first),
    ``versions`` (newest first; ``versions_total``: how many it has in all), the newest
    uploads' validation (``reports``; None: not read) at ``now``."""
    path = f"datasets/{doc['slug']}/"
    root = root_of(path)
    license_id = doc.get("license") or "notspecified"
    name, url = index.LICENSES.get(license_id, (license_id, None))
    levels = [{"level": k, "label": level_label(k), "fields": _fields(s)}
              for k, s in schemas.items()]
    body = render(
        "dataset.html", page_title=doc["title"], root=root, nav="datasets",
        d=_summary(doc, now, root), description=[p for p in doc["description"].split("\n")
                                                 if p.strip()],
        license={"id": license_id, "name": name, "url": url},
        legend=legend([str(doc.get("frequency") or "unknown")]),
        resources=_resources(doc), schemas=levels, versions=_versions(versions),
        versions_total=versions_total, versions_api=doc["extras"]["versions"],
        datapackage=doc["extras"]["datapackage"], reports=reports,
        status_labels=STATUS_LABELS, status_badge=STATUS_BADGE,
        now_text=fr_moment(index.iso(now)), feed=atom.VERSIONS_FEED)
    return Page(path, body)
