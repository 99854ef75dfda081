"""Maps of departments and regions as inline SVG, readable without any script, in French.

The geometry ships precomputed (``opendepot/reference/geo/{departements,regions}.json``, built by
``make geo`` = ``infra/build_geo.py`` from IGN ADMIN EXPRESS 2020): a fixed viewBox ``0 0 1000 H``
(``H`` = 785), the mainland on the left, Corsica and the five overseas departments each in a
labelled inset box in a column on the right, each area an SVG path with integer coordinates and
the centroid of its largest polygon.

Two kinds of map, one DOM contract (the browser tests rely on it)::

    <figure class="map" data-map="{id}" data-level="dep|reg">
      <figcaption>{title}</figcaption>
      <svg role="img" aria-labelledby="{title id} {desc id}"> <title/> <desc/>
        <path data-code="75" data-value="1234" fill="..."><title>Paris : 1 234 patients</title>
        <path data-code="48" class="no-data"> (no value: grey, never filled in nor interpolated)
      </svg>
      <ul class="legend">...</ul>
      <p class="coverage" data-reported="96" data-total="101">96 départements sur 101 ont des
         données</p>
      <p class="no-geometry" data-codes="975 977">Sans géométrie : 975 (3 patients), ...</p>
      <details><table class="map-data"> <tr data-row="75"> code, name, value of every area
      </table></details>
      <p class="attribution">Fond de carte : IGN — ADMIN EXPRESS ...</p>
    </figure>

- ``choropleth``: each area filled by its class; 5 classes from the quintiles of the reported
  values, each break rounded to 2 significant figures (``breaks``); ColorBrewer's sequential
  "Blues" (colour-blind safe), its 5 darker steps so the lightest class still stands out from the
  white page and from the grey of missing areas (``PALETTE``);
- ``symbols``: a circle at each area's centroid, its AREA proportional to the value (radius
  ``∝ √|value|``), largest drawn first; the legend (two reference circles) is drawn in a strip
  under the map, at the map's scale.

Values are ``{area code: number or None}``; None and NaN mean "no value" (the area is greyed and
counted as missing). Codes with no geometry (975, 977, 978...) are listed under the map with their
value, never dropped silently. Functions return ``Markup`` (a ``str`` Jinja2 does not escape again):
every name and text is escaped here.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Literal

from markupsafe import Markup, escape

Level = Literal["dep", "reg"]
FILES: dict[str, str] = {"dep": "departements.json", "reg": "regions.json"}
NOUNS: dict[str, tuple[str, str]] = {"dep": ("département", "départements"),
                                     "reg": ("région", "régions")}
PALETTE = ("#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#084594")
"""Fill of the classes, lowest first (ColorBrewer Blues, steps 4-8 of 9)."""
NO_DATA = "#e5e5e5"
"""Fill of an area without a value (also ``.no-data`` in site.css)."""
SYMBOL = "#2171b5"
NEGATIVE = "#d6604d"
"""Fill of the circle of a negative value (area ∝ its absolute value)."""
MAX_RADIUS: dict[str, float] = {"dep": 26.0, "reg": 55.0}
"""Radius of the largest circle, viewBox units (the mainland is 770 units wide)."""


@dataclass(frozen=True)
class Area:
    """One department or region as drawn."""

    code: str
    name: str
    d: str
    """SVG path, integer viewBox coordinates (``M x y`` then relative ``l`` steps, ``z``)."""
    centroid: tuple[int, int]
    inset: str | None
    """Id of its inset box (``corse``, ``guadeloupe``...), None on the mainland."""


@dataclass(frozen=True)
class Inset:
    """A labelled box beside the mainland: ``box`` is (x, y, width, height), viewBox units."""

    id: str
    label: str
    box: tuple[int, int, int, int]


@dataclass(frozen=True)
class Geometry:
    """The shipped geometry of a level: viewBox (0, 0, width, height), the mainland's bounding
    box (x, y, width, height), the insets, the areas sorted by code, source and licence."""

    level: str
    view_box: tuple[int, int, int, int]
    mainland: tuple[int, int, int, int]
    insets: tuple[Inset, ...]
    areas: tuple[Area, ...]
    source: str
    licence: str
    attribution: str

    def names(self) -> dict[str, str]:
        """``{code: name}`` of every area."""
        return {a.code: a.name for a in self.areas}


def _box(v: Sequence[int]) -> tuple[int, int, int, int]:
    return v[0], v[1], v[2], v[3]


@functools.cache
def geometry(level: Level) -> Geometry:
    """The shipped geometry of ``level`` (``dep``: 101 departments, ``reg``: 18 regions).

    Raises: KeyError for another level."""
    raw = json.loads((resources.files("opendepot.reference") / "geo" / FILES[level])
                     .read_text("utf-8"))
    return Geometry(
        level=level, view_box=_box(raw["viewBox"]), mainland=_box(raw["mainland"]),
        insets=tuple(Inset(i["id"], i["label"], _box(i["box"])) for i in raw["insets"]),
        areas=tuple(Area(a["code"], a["name"], a["d"], (a["centroid"][0], a["centroid"][1]),
                         a["inset"]) for a in raw["areas"]),
        source=raw["source"], licence=raw["licence"], attribution=raw["attribution"])


def _number(value: float | None) -> float | None:
    if value is None:
        return None
    v = float(value)
    return None if math.isnan(v) else v


def _nice(x: float) -> float:
    """``x`` rounded to 2 significant figures."""
    if x == 0 or not math.isfinite(x):
        return x
    mag = 10.0 ** (math.floor(math.log10(abs(x))) - 1)
    return round(round(x / mag) * mag, 10)


def breaks(values: Sequence[float]) -> list[float]:
    """The class breaks of ``values``: the quintiles (linear interpolation between order
    statistics), each rounded to 2 significant figures, kept when strictly above the minimum and
    at most the maximum, without repeats. 4 breaks make 5 classes; fewer when values repeat
    (``[]``: a single class). A value ``v`` falls in class ``sum(v >= b for b in breaks)``."""
    vals = sorted(values)
    if not vals:
        return []
    out: list[float] = []
    for k in range(1, 5):
        pos = k * (len(vals) - 1) / 5
        lo = math.floor(pos)
        q = vals[lo] + (vals[min(lo + 1, len(vals) - 1)] - vals[lo]) * (pos - lo)
        b = _nice(q)
        if vals[0] < b <= vals[-1] and (not out or b > out[-1]):
            out.append(b)
    return out


def colours(count: int) -> list[str]:
    """``count`` (1 to 5) fills from ``PALETTE``, spread over it, lowest first."""
    if count <= 1:
        return [PALETTE[2]]
    return [PALETTE[round(i * (len(PALETTE) - 1) / (count - 1))] for i in range(count)]


def _raw(v: float) -> str:
    """A value for ``data-value``: ``1234`` for an integral float, else its repr."""
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)


def _text(v: float | None, unit: str, fmt: Callable[[float], str]) -> str:
    """``"1 234 patients"``, or ``"pas de donnée"`` for None."""
    return "pas de donnée" if v is None else f"{fmt(v)} {unit}".rstrip()


def _label(name: str, v: float | None, unit: str, fmt: Callable[[float], str]) -> str:
    """The hover text of an area: ``"Paris : 1 234 patients"``."""
    return f"{name} : {_text(v, unit, fmt)}"


def _ids(map_id: str) -> tuple[str, str]:
    base = "map-" + re.sub(r"[^A-Za-z0-9_-]", "-", map_id)
    return f"{base}-title", f"{base}-desc"


def _frame(geo: Geometry) -> str:
    """The inset boxes and their labels."""
    parts = ['<g class="insets" fill="none" stroke="#8c8c8c" stroke-width="1">']
    for i in geo.insets:
        x, y, w, h = i.box
        parts.append(f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="3"/>'
                     f'<text x="{x + 6}" y="{y + 16}" fill="#333" stroke="none" '
                     f'font-size="16">{escape(i.label)}</text>')
    return "".join(parts) + "</g>"


def _coverage(geo: Geometry, known: Mapping[str, float | None]) -> str:
    total = len(geo.areas)
    reported = sum(1 for a in geo.areas if known.get(a.code) is not None)
    one, many = NOUNS[geo.level]
    noun = one if reported <= 1 else many
    verb = "a" if reported <= 1 else "ont"
    return (f'<p class="coverage" data-reported="{reported}" data-total="{total}">'
            f"{reported} {noun} sur {total} {verb} des données</p>")


def _outside(geo: Geometry, known: Mapping[str, float | None], unit: str,
             fmt: Callable[[float], str]) -> str:
    """The codes that have a value (or None) but no geometry, listed with their value."""
    drawn = {a.code for a in geo.areas}
    extra = sorted(c for c in known if c not in drawn)
    if not extra:
        return ""
    items = ", ".join(f"{c} ({_text(known[c], unit, fmt)})" for c in extra)
    return (f'<p class="no-geometry" data-codes="{escape(" ".join(extra))}">'
            f"Sans géométrie : {escape(items)}</p>")


def _table(geo: Geometry, known: Mapping[str, float | None], title: str, unit: str,
           fmt: Callable[[float], str]) -> str:
    """Every area's code, name and value, for readers of tables and screen readers."""
    one = NOUNS[geo.level][0]
    rows = "".join(
        f'<tr data-row="{escape(a.code)}"><td>{escape(a.code)}</td><td>{escape(a.name)}</td>'
        f'<td class="num">{escape(fmt(v) if (v := known.get(a.code)) is not None else "–")}</td>'
        f"</tr>" for a in geo.areas)
    head = (f"<tr><th>Code</th><th>{one.capitalize()}</th>"
            f'<th class="num">{escape(unit) or "Valeur"}</th></tr>')
    return (f"<details><summary>Données de la carte</summary>"
            f'<div class="table-scroll"><table class="map-data"><caption>{escape(title)}'
            f"</caption><thead>{head}</thead><tbody>{rows}</tbody></table></div></details>")


def _clean(values: Mapping[str, float | None]) -> dict[str, float | None]:
    return {str(k): _number(v) for k, v in values.items()}


def _describe(geo: Geometry, known: Mapping[str, float | None], unit: str,
              fmt: Callable[[float], str]) -> str:
    """The text of the SVG's ``<desc>``: range of the values and count of missing areas."""
    have = [(v, a.name) for a in geo.areas if (v := known.get(a.code)) is not None]
    one, many = NOUNS[geo.level]
    missing = len(geo.areas) - len(have)
    text = f"Carte des {many}."
    if have:
        low, high = min(have), max(have)
        text += (f" De {fmt(low[0])} ({low[1]}) à {fmt(high[0])} ({high[1]})"
                 f" {unit}.".replace(" .", "."))
    if missing:
        text += f" {missing} {one if missing == 1 else many} sans donnée, en gris."
    return text


def _figure(geo: Geometry, kind: str, map_id: str, title: str, svg_body: str, height: int,
            desc: str, after: str) -> Markup:
    """The figure around an SVG body (the contract in the module's docstring)."""
    tid, did = _ids(map_id)
    x, y, w, _ = geo.view_box
    svg = (f'<svg class="map-{kind}" viewBox="{x} {y} {w} {height}" role="img" '
           f'aria-labelledby="{tid} {did}" xmlns="http://www.w3.org/2000/svg">'
           f'<title id="{tid}">{escape(title)}</title><desc id="{did}">{escape(desc)}</desc>'
           f"{_frame(geo)}{svg_body}</svg>")
    attribution = (f'<p class="attribution muted">Fond de carte : {escape(geo.attribution)} '
                   f"({escape(geo.licence)}).</p>")
    return Markup(f'<figure class="map" data-map="{escape(map_id)}" data-level="{geo.level}">'
                  f"<figcaption>{escape(title)}</figcaption>{svg}{after}{attribution}</figure>")


def _paths(geo: Geometry, known: Mapping[str, float | None], fill: Callable[[float], str],
           unit: str, fmt: Callable[[float], str], stroke: str = "#fff") -> str:
    """One path per area (``data-code``; ``data-value`` and ``fill(value)``, or ``no-data``)."""
    parts = [f'<g class="areas" stroke="{stroke}" stroke-width="0.8" stroke-linejoin="round" '
             'fill-rule="evenodd">']
    for a in geo.areas:
        v = known.get(a.code)
        attrs = (f'class="no-data" fill="{NO_DATA}"' if v is None
                 else f'data-value="{_raw(v)}" fill="{fill(v)}"')
        parts.append(f'<path d="{a.d}" data-code="{escape(a.code)}" {attrs}>'
                     f"<title>{escape(_label(a.name, v, unit, fmt))}</title></path>")
    return "".join(parts) + "</g>"


def _legend(bounds: list[float], counts: list[int], fills: list[str], missing: int,
            level: str, unit: str, fmt: Callable[[float], str]) -> str:
    one, many = NOUNS[level]
    items = []
    for i, fill in enumerate(fills):
        if not bounds:
            text = "toutes les valeurs"
        elif i == 0:
            text = f"moins de {_text(bounds[0], unit, fmt)}"
        elif i == len(bounds):
            text = f"{_text(bounds[-1], unit, fmt)} ou plus"
        else:
            text = f"de {fmt(bounds[i - 1])} à moins de {_text(bounds[i], unit, fmt)}"
        items.append((fill, text, counts[i], ""))
    if missing:
        items.append((NO_DATA, "pas de donnée", missing, ' class="no-data"'))
    lis = "".join(
        f'<li{cls}><svg class="swatch" width="18" height="12" aria-hidden="true">'
        f'<rect width="18" height="12" fill="{fill}" stroke="#8c8c8c" stroke-width="0.5"/>'
        f"</svg> {escape(text)} ({n} {one if n <= 1 else many})</li>"
        for fill, text, n, cls in items)
    return f'<ul class="legend">{lis}</ul>'


def choropleth(level: Level, values: Mapping[str, float | None], *, map_id: str, title: str,
               unit: str, fmt: Callable[[float], str]) -> Markup:
    """A choropleth map of ``values`` (``{area code: number or None}``) over ``level``'s areas.

    Each area with a value is filled by its class (``breaks``: quintiles rounded to 2 significant
    figures, up to 5 classes, ``PALETTE``); an area without one (absent, None, NaN) gets class
    ``no-data`` and the grey ``NO_DATA``, never a guessed colour. Each path has ``data-code``,
    ``data-value`` (raw number) when it has a value, and a ``<title>`` ``"{name} : {fmt(value)}
    {unit}"`` shown on hover. ``map_id`` names the figure (``data-map``) and the SVG's title and
    desc ids; ``title`` is its caption. Returns the ``<figure class="map">`` (contract in the
    module's docstring) as Markup.

    Raises: KeyError for an unknown level."""
    geo = geometry(level)
    known = _clean(values)
    have = [v for a in geo.areas if (v := known.get(a.code)) is not None]
    bounds = breaks(have)
    fills = colours(len(bounds) + 1)
    counts = [0] * len(fills)
    for v in have:
        counts[sum(v >= b for b in bounds)] += 1

    def fill(v: float) -> str:
        return fills[sum(v >= b for b in bounds)]

    legend = _legend(bounds, counts, fills, len(geo.areas) - len(have), level, unit, fmt)
    after = (legend + _coverage(geo, known) + _outside(geo, known, unit, fmt)
             + _table(geo, known, title, unit, fmt))
    return _figure(geo, "choropleth", map_id, title, _paths(geo, known, fill, unit, fmt),
                   geo.view_box[3], _describe(geo, known, unit, fmt), after)


def radius(value: float, largest: float, max_radius: float) -> float:
    """The radius of ``value``'s circle when ``largest`` (> 0) gets ``max_radius``: the circle's
    area is proportional to ``|value|``."""
    return max_radius * math.sqrt(abs(value) / largest) if largest > 0 else 0.0


def _nice_down(x: float) -> float:
    """``x`` rounded down to 1 significant figure (a round reference value for the legend)."""
    if x <= 0:
        return x
    mag = 10.0 ** math.floor(math.log10(x))
    return round(math.floor(x / mag) * mag, 10)


def _symbol_legend(geo: Geometry, largest: float, rmax: float, unit: str,
                   fmt: Callable[[float], str]) -> tuple[str, int]:
    """Two reference circles in a strip under the map, and the strip's height."""
    if largest <= 0:
        return "", 0
    top = geo.view_box[3]
    strip = round(2 * rmax + 24)
    base = top + strip - 8
    refs = [v for v in dict.fromkeys((_nice_down(largest), _nice_down(largest / 4))) if v > 0]
    parts = ['<g class="symbol-legend" font-size="18" fill="#333">']
    x = 20.0
    for v in refs:
        r = radius(v, largest, rmax)
        parts.append(f'<circle cx="{x + rmax:.1f}" cy="{base - r:.1f}" r="{r:.1f}" '
                     f'fill="none" stroke="#333" stroke-width="1"/>'
                     f'<text x="{x + rmax + r + 6:.1f}" y="{base - 4}">'
                     f"{escape(f'{fmt(v)} {unit}'.rstrip())}</text>")
        x += 2 * rmax + 190
    return "".join(parts) + "</g>", strip


def symbols(level: Level, values: Mapping[str, float | None], *, map_id: str, title: str,
            unit: str, fmt: Callable[[float], str]) -> Markup:
    """A proportional-symbol map of ``values`` (``{area code: number or None}``).

    Areas with a value are drawn white (``data-value`` on the path), areas without one grey
    (class ``no-data``), as in ``choropleth``; each value gets a circle at the area's centroid
    (``<circle data-symbol="{code}" data-value>`` with the same ``<title>``; only the areas'
    paths carry ``data-code``), its area proportional to
    ``|value|`` (``radius``; ``MAX_RADIUS[level]`` for the largest; negative values in
    ``NEGATIVE``; 0 has no visible circle), larger circles first so small ones stay on top. The
    legend (two round reference values) is a strip added under the map. Returns the ``<figure
    class="map">`` as Markup.

    Raises: KeyError for an unknown level."""
    geo = geometry(level)
    known = _clean(values)
    rmax = MAX_RADIUS[level]
    drawn = sorted(((v, a) for a in geo.areas if (v := known.get(a.code)) is not None),
                   key=lambda p: (-abs(p[0]), p[1].code))
    largest = abs(drawn[0][0]) if drawn else 0.0
    circles = ['<g class="symbols" fill-opacity="0.75" stroke="#fff" stroke-width="0.8">']
    for v, a in drawn:
        circles.append(
            f'<circle cx="{a.centroid[0]}" cy="{a.centroid[1]}" '
            f'r="{radius(v, largest, rmax):.1f}" fill="{NEGATIVE if v < 0 else SYMBOL}" '
            f'data-symbol="{escape(a.code)}" data-value="{_raw(v)}">'
            f"<title>{escape(_label(a.name, v, unit, fmt))}</title></circle>")
    legend, strip = _symbol_legend(geo, largest, rmax, unit, fmt)
    body = (_paths(geo, known, lambda v: "#fff", unit, fmt, stroke="#8c8c8c")
            + "".join(circles) + "</g>" + legend)
    note = (f'<p class="muted symbol-note">Surface des cercles proportionnelle à la valeur ; '
            f"le plus grand : {escape(_label(drawn[0][1].name, drawn[0][0], unit, fmt))}.</p>"
            if drawn else "")
    after = (note + _coverage(geo, known) + _outside(geo, known, unit, fmt)
             + _table(geo, known, title, unit, fmt))
    return _figure(geo, "symbols", map_id, title, body, geo.view_box[3] + strip,
                   _describe(geo, known, unit, fmt), after)
