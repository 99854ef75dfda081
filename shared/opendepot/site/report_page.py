"""A validation report as one standalone HTML page, for the producer who sent the file.

``report_html(report, context)`` renders the JSON report ``opendepot.report.build_report``
makes (the one ``opendepot.ingest`` writes) as a page in French: a summary (file, dataset,
producer, status, rows read, published and left out, counts), then the errors and the warnings
grouped by type (French title, English slug and title from ``opendepot.issues.CATALOGUE``),
each with its line, column and value, then excerpts of the file: the lines of the first
``EXCERPTS`` errors and ``WARNING_EXCERPTS`` warnings that name a line (distinct lines,
``line_of``), each with ``AROUND`` lines before and after and the header line, highlighted (the
value marked when its column can be found by splitting the line) and linked both ways with
the issue tables; lines close together share one excerpt. The page needs nothing else: its CSS
is inline, it has no script and makes no request; every value is escaped (a cell may hold
``<script>``).

The excerpts come from ``context``: line number -> text of that line, as decoded by
``opendepot.decode`` (UTF-8, whatever the upload's compression, encoding or line ends, a
workbook or bulletin as its CSV conversion). ``source_context(report, decoded)`` reads exactly
the lines the page shows (``wanted_lines``) from the decoded text in one streaming pass, in
``CHUNK_BYTES`` blocks, keeping at most ``LINE_CHARS`` characters of each: memory stays a block
and about a hundred short lines, whatever the file. Line numbers are the report's (header = 1,
physical lines); after a quoted value spanning lines the report numbers rows, so an excerpt
below such a value shows the lines as the file numbers them.

``html_key(report_key)``: the page's key beside its JSON report (``….json`` -> ``….html``).
"""

from __future__ import annotations

import bisect
import io
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from opendepot.decode import Decoded
from opendepot.issues import CATALOGUE
from opendepot.site import render

EXCERPTS = 20
"""Errors shown with an excerpt of the file (the first that name a line); the rest are listed."""
WARNING_EXCERPTS = 5
"""Warnings shown with an excerpt of the file (the first that name a line)."""
AROUND = 2
"""Lines shown before and after the line of an issue."""
LINE_CHARS = 400
"""Characters of a line an excerpt shows; a longer line is cut, with ``…`` after it."""
LINE_BYTES = 4 * LINE_CHARS
"""Bytes of a line kept while reading (UTF-8: at most 4 bytes a character)."""
CHUNK_BYTES = 1 << 20
"""Block read at a time by ``read_lines``."""

STATUS_FR = {
    "accepted": "Accepté",
    "rejected": "Refusé",
    "held": "Retenu, en attente de confirmation",
    "failed": "Non traité (échec technique)",
}
"""French label of each ``opendepot.status``."""

TITLES_FR = {
    "reuse-field": "Champ de réutilisation invalide",
    "unknown-dataset": "Jeu de données inconnu",
    "reuse-no-image": "Réutilisation sans image",
    "source-error": "Fichier illisible",
    "format-error": "Format non reconnu",
    "encoding-error": "Encodage des caractères",
    "formula-without-value": "Formule sans valeur",
    "excel-sheet": "Feuille Excel lue",
    "excel-header": "En-tête Excel introuvable",
    "excel-other-sheets": "Autres feuilles Excel ignorées",
    "excel-cached-formulas": "Résultats de formules Excel en cache",
    "unsafe-key": "Nom de fichier dangereux",
    "unrouted-key": "Fichier déposé au mauvais endroit",
    "producer-not-allowed": "Producteur non autorisé",
    "object-too-large": "Fichier trop volumineux",
    "object-gone": "Fichier disparu avant lecture",
    "checksum-mismatch": "Somme de contrôle différente",
    "processing-failed": "Échec du traitement",
    "snapshot-shrink": "Fichier nettement plus petit que le précédent",
    "blank-label": "Nom de colonne vide",
    "duplicate-label": "Nom de colonne en double",
    "extra-label": "Colonne inconnue",
    "missing-label": "Colonne obligatoire absente",
    "too-many-columns": "Trop de colonnes",
    "line-too-long": "Ligne trop longue",
    "blank-row": "Ligne vide",
    "missing-cell": "Cellules manquantes",
    "extra-cell": "Cellules en trop",
    "duplicate-row": "Ligne en double",
    "type-error": "Valeur du mauvais type",
    "constraint-error": "Valeur hors contrainte",
    "unique-error": "Valeur déjà présente",
    "foreign-key": "Code géographique inconnu",
    "primary-key": "Clé en double",
    "padded-code": "Code complété d'un zéro",
    "cumulative-decrease": "Cumul en baisse",
    "missing-day": "Jour manquant",
    "total-below-parts": "Total inférieur à la somme des parties",
    "missing-total": "Ligne de total absente",
    "formula-cell": "Cellule lue comme une formule",
    "total-below-parts-error": "Total inférieur à la somme des parties",
    "implausible-rise": "Hausse invraisemblable",
}
"""French title of each issue type of ``opendepot.issues.CATALOGUE`` (the page shows the English
slug and title beside it)."""


def html_key(report_key: str) -> str:
    """The key of a report's page beside its JSON: ``reports/d/p/u.json`` ->
    ``reports/d/p/u.html`` (another suffix: ``.html`` appended)."""
    return report_key.removesuffix(".json") + ".html"


def _issues(report: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The report's listed errors and warnings (issue objects)."""
    tasks = report.get("tasks") or [{}]
    od = report.get("opendepot") or {}
    return list(tasks[0].get("errors") or []), list(od.get("warnings") or [])


def line_of(item: dict[str, Any]) -> int | None:
    """The line an issue object names: its ``rowNumber``, or 1 for a header issue (tagged
    ``#header``: label errors, too many columns); None for an issue of the whole file."""
    row = item.get("rowNumber")
    if isinstance(row, int) and row >= 1:
        return row
    return 1 if "#header" in (item.get("tags") or ()) else None


def excerpt_issues(report: dict[str, Any]) -> list[tuple[str, int]]:
    """Which issues get an excerpt: ``(kind, index)`` (kind ``error`` or ``warning``, index in
    its list) of the first ``EXCERPTS`` errors and the first ``WARNING_EXCERPTS`` warnings that
    name a line (``line_of``) no issue before them names (errors first): the others on that
    line point to its excerpt."""
    errors, warnings = _issues(report)
    out: list[tuple[str, int]] = []
    seen: set[int] = set()
    for kind, items, most in (("error", errors, EXCERPTS),
                              ("warning", warnings, WARNING_EXCERPTS)):
        picked = 0
        for i, item in enumerate(items):
            line = line_of(item)
            if picked < most and line is not None and line not in seen:
                out.append((kind, i))
                seen.add(line)
                picked += 1
    return out


def _window(line: int) -> range:
    return range(max(line - AROUND, 1), line + AROUND + 1)


def wanted_lines(report: dict[str, Any]) -> set[int]:
    """The line numbers the page of ``report`` shows: the header (1), and ``AROUND`` lines
    around the line of each issue ``excerpt_issues`` picks (empty when none names a line)."""
    errors, warnings = _issues(report)
    lists = {"error": errors, "warning": warnings}
    wanted = {n for kind, i in excerpt_issues(report)
              for n in _window(line_of(lists[kind][i]) or 1)}
    return wanted | {1} if wanted else set()


def _text(piece: bytes) -> str:
    """One line as shown: decoded, cut to ``LINE_CHARS`` characters (``…`` when cut)."""
    cut = len(piece) > LINE_BYTES
    text = piece[:LINE_BYTES].decode("utf-8", errors="ignore" if cut else "replace")
    if cut or len(text) > LINE_CHARS:
        return text[:LINE_CHARS] + "…"
    return text


def read_lines(source: str | bytes | BinaryIO, wanted: Collection[int]) -> dict[int, str]:
    """The lines numbered ``wanted`` (1-based, LF line ends) of ``source`` (a path, bytes or
    a binary file), each cut to ``LINE_CHARS`` characters: one pass in ``CHUNK_BYTES`` blocks,
    stopping after the last wanted line; blocks without a wanted line are only counted. A line
    past the end is absent from the result. Raises OSError when the path cannot be read."""
    if not wanted:
        return {}
    if isinstance(source, str):
        with open(source, "rb") as f:
            return read_lines(f, wanted)
    if isinstance(source, bytes):
        return read_lines(io.BytesIO(source), wanted)
    targets = sorted(set(wanted))
    wanted, last = set(targets), targets[-1]
    out: dict[int, str] = {}
    line, carry = 1, b""  # line: the number of the line the next block continues
    while line <= last:
        block = source.read(CHUNK_BYTES)
        if not block:
            break
        ends = block.count(b"\n")
        following = targets[bisect.bisect_left(targets, line)]  # some wanted line is >= line
        if following > line + ends:  # no wanted line in this block: counted only
            line += ends
            continue
        parts, carried = block.split(b"\n"), b""
        for number in targets[bisect.bisect_left(targets, line):
                              bisect.bisect_right(targets, line + ends)]:
            k, part = number - line, parts[number - line]
            piece = ((carry if k == 0 else b"") + part[:LINE_BYTES + 1])[:LINE_BYTES + 1]
            if k < ends:
                out[line + k] = _text(piece)
            else:  # the block's last line goes on in the next block
                carried = piece
        line, carry = line + ends, carried
    if carry and line in wanted:  # the file's last line, without a line end
        out[line] = _text(carry)
    return out


def source_context(report: dict[str, Any], decoded: Decoded | None) -> dict[int, str]:
    """The lines of the decoded upload the page of ``report`` shows (``wanted_lines``), read
    from ``decoded`` (its text on disk or in memory; None: the file was not decoded, so no
    excerpt). Raises OSError when the decoded text on disk cannot be read."""
    wanted = wanted_lines(report)
    if decoded is None or not wanted:
        return {}
    text = decoded.path if decoded.path is not None else decoded.data
    return read_lines(text if text is not None else b"", wanted)


# ------------------------------------------------------------------------------ the page


@dataclass(frozen=True)
class Flag:
    """An issue flagged on an excerpt's line, linking to its row in the issue tables."""

    anchor: str
    title: str


@dataclass(frozen=True)
class ExcerptLine:
    """One line of an excerpt: its number, its text in three parts (``hit``: the value of the
    line's first issue when it can be found in its column, else empty), its issues."""

    number: int
    before: str
    hit: str = ""
    after: str = ""
    flags: tuple[Flag, ...] = ()
    """The issues of this line (empty: a line around them)."""
    gap: bool = False
    """Lines are left out before this one (between the header and the window)."""

    @property
    def current(self) -> bool:
        """An issue's own line."""
        return bool(self.flags)


@dataclass(frozen=True)
class Excerpt:
    """Lines of the file around one or more issue lines close together."""

    first: int
    """First issue line (the excerpt's id is ``extrait-{first}``)."""
    last: int
    lines: tuple[ExcerptLine, ...]


@dataclass(frozen=True)
class IssueView:
    """One listed issue as the page shows it."""

    anchor: str
    """Its element id (``erreur-3``, ``avertissement-1``): its row in the issue tables."""
    line: int | None
    column: str | None
    number: int | None
    value: str | None
    message: str
    shown_at: str | None = None
    """The id of the excerpt line showing its line (``ligne-{line}``), None: not shown."""


@dataclass(frozen=True)
class Group:
    """The issues of one type: titles, true count, those listed."""

    slug: str
    title_fr: str
    title_en: str
    count: int
    issues: tuple[IssueView, ...]

    @property
    def unlisted(self) -> int:
        """Issues of this type counted but not listed in the report (its error limit)."""
        return max(self.count - len(self.issues), 0)


def _hit(text: str, value: str | None, number: int | None,
         delimiter: str | None) -> tuple[str, str, str]:
    """``text`` split around ``value`` when it is the whole ``number``-th (1-based) field of the
    line split on ``delimiter``, quoted or not; else the whole text first."""
    if not value or number is None or not delimiter:
        return text, "", ""
    fields = text.split(delimiter)
    if not 1 <= number <= len(fields) or fields[number - 1] not in (value, f'"{value}"'):
        return text, "", ""
    start = sum(len(f) + len(delimiter) for f in fields[: number - 1])
    end = start + len(fields[number - 1])
    return text[:start], text[start:end], text[end:]


def _title(slug: str) -> tuple[str, str]:
    """(French title, English title) of an issue type."""
    kind = CATALOGUE.get(slug)
    english = kind.title if kind else slug.replace("-", " ").title()
    return TITLES_FR.get(slug, english), english


def _excerpts(picked: list[tuple[str, int, dict[str, Any]]], flagged: Mapping[int, list[Flag]],
              context: Mapping[int, str], delimiter: str | None) -> list[Excerpt]:
    """The excerpts of the ``picked`` issues (kind, index, issue), in line order: issue lines
    whose windows touch share one excerpt; each starts with the header line. ``flagged``: the
    issues of each line. A line missing from ``context`` is not shown (nor its issue)."""
    lines = sorted({line for _, _, item in picked
                    if (line := line_of(item)) is not None and line in context})
    first_issue: dict[int | None, dict[str, Any]] = {}
    for _, _, item in picked:
        first_issue.setdefault(line_of(item), item)
    clusters: list[list[int]] = []
    for line in lines:
        if clusters and line - AROUND <= clusters[-1][-1] + AROUND + 1:
            clusters[-1].append(line)
        else:
            clusters.append([line])
    out = []
    for cluster in clusters:
        numbers = range(max(cluster[0] - AROUND, 1), cluster[-1] + AROUND + 1)
        shown: list[ExcerptLine] = []
        for n in ([1] if numbers.start > 1 else []) + [n for n in numbers if n in context]:
            if n not in context:
                continue
            gap = bool(shown) and n > shown[-1].number + 1
            if n in cluster:
                item = first_issue[n]
                before, hit, after = _hit(context[n], item.get("cell"),
                                          item.get("fieldNumber"), delimiter)
                shown.append(ExcerptLine(n, before, hit, after, tuple(flagged[n]), gap))
            else:
                shown.append(ExcerptLine(n, context[n], gap=gap))
        out.append(Excerpt(cluster[0], cluster[-1], tuple(shown)))
    return out


def _anchor(kind: str, i: int) -> str:
    """The element id of the ``i``-th (0-based) issue of ``kind`` (``erreur-1``...)."""
    return f"{'erreur' if kind == 'error' else 'avertissement'}-{i + 1}"


def _groups(kind: str, items: list[dict[str, Any]], by_type: Mapping[str, int],
            shown: Collection[int]) -> list[Group]:
    """The issues of one kind grouped by type, most frequent type first; ``shown``: the lines
    an excerpt shows as issue lines."""
    views: dict[str, list[IssueView]] = {}
    for i, item in enumerate(items):
        line = line_of(item)
        views.setdefault(str(item.get("type")), []).append(IssueView(
            anchor=_anchor(kind, i), line=line,
            column=item.get("fieldName") or None, number=item.get("fieldNumber") or None,
            value=item.get("cell"), message=str(item.get("message") or ""),
            shown_at=f"ligne-{line}" if line in shown else None))
    counts = {slug: max(int(by_type.get(slug, 0)), len(views.get(slug, [])))
              for slug in [*by_type, *views]}
    return [Group(slug, *_title(slug), counts[slug], tuple(views.get(slug, [])))
            for slug in sorted(counts, key=lambda s: (-counts[s], s))]


DELIMITERS_FR = {";": "point-virgule (;)", ",": "virgule (,)", "\t": "tabulation"}


def _summary(report: dict[str, Any]) -> list[tuple[str, Any]]:
    """The summary table's rows: (French label, value), values absent left out."""
    od, task = report.get("opendepot") or {}, (report.get("tasks") or [{}])[0]
    stats, tstats = report.get("stats") or {}, task.get("stats") or {}
    encoding = od.get("encoding")
    read = ("converti en CSV (classeur Excel ou bulletin YAML)" if od.get("converted") else
            ", ".join(x for x in (
                encoding and f"encodage {encoding}",
                od.get("delimiter") and "séparateur " + DELIMITERS_FR.get(
                    od["delimiter"], repr(od["delimiter"])),
                od.get("compression") and f"compressé ({od['compression']})") if x))
    rows = [
        ("Fichier déposé", od.get("key") or task.get("place")),
        ("Jeu de données", od.get("dataset")),
        ("Producteur", od.get("producer")),
        ("Reçu le", od.get("received_at")),
        ("Identifiant du dépôt", od.get("upload_id")),
        ("Taille (octets)", tstats.get("bytes")),
        ("Lecture", read or None),
        ("Lignes de données lues", od.get("rows")),
        ("Lignes publiées", od.get("rows_published")),
        ("Lignes écartées (avec erreur)", od.get("rows_left_out")),
        ("Erreurs", stats.get("errors")),
        ("Avertissements", stats.get("warnings")),
    ]
    return [(label, value) for label, value in rows if value not in (None, "")]


def report_html(report: dict[str, Any], context: Mapping[int, str] | None = None) -> bytes:
    """The page of ``report`` (the JSON report's dict), UTF-8 HTML; ``context``: line number ->
    decoded text of the lines ``wanted_lines(report)`` names (``source_context``), for the
    excerpts; without it (or without a line in it) an issue is listed without excerpt."""
    context = context or {}
    od = report.get("opendepot") or {}
    task = (report.get("tasks") or [{}])[0]
    tstats = task.get("stats") or {}
    errors, warnings = _issues(report)
    lists = {"error": errors, "warning": warnings}
    picked = [(k, i, lists[k][i]) for k, i in excerpt_issues(report)]
    flagged: dict[int, list[Flag]] = {}  # every listed issue of a line an excerpt shows
    lines = {line_of(item) for _, _, item in picked}
    for kind, items in lists.items():
        for i, item in enumerate(items):
            if (line := line_of(item)) in lines and line is not None:
                flagged.setdefault(line, []).append(
                    Flag(_anchor(kind, i), _title(str(item.get("type")))[0]))
    excerpts = _excerpts(picked, flagged, context, od.get("delimiter"))
    shown = {x.number for e in excerpts for x in e.lines if x.current}
    groups = {kind: _groups(kind, lists[kind], tstats.get(f"{kind}sByType") or {}, shown)
              for kind in lists}
    notes = list(task.get("warnings") or [])
    notes = notes[: max(len(notes) - len(warnings), 0)]
    key = str(od.get("key") or task.get("place") or "")
    status = str(od.get("status") or ("accepted" if report.get("valid") else "rejected"))
    return render(
        "report.html", file=key.rsplit("/", 1)[-1] or key, status=status,
        status_fr=STATUS_FR.get(status, status), rejection=od.get("rejection") or "",
        summary=_summary(report), errors=groups["error"], warnings=groups["warning"],
        notes=notes, excerpts=excerpts, issue_lines=len(shown), limit=EXCERPTS,
        warning_limit=WARNING_EXCERPTS, around=AROUND,
        unshown=sum(1 for g in groups["error"] + groups["warning"] for e in g.issues
                    if e.shown_at is None))
