"""Build the shipped map geometry ``shared/opendepot/reference/geo/{departements,regions}.json``.

Source: ``../shared/data/geo/{departements,regions}-1000m.geojson`` (IGN ADMIN EXPRESS 2020 through
Etalab's ``contours-administratifs``, WGS84, see SOURCES.md there). The site draws its maps as
inline SVG, so the layout is computed here once and shipped ready to draw:

- projection: metropolitan France (Corsica included) in a spherical Lambert conformal conic with
  Lambert-93's parameters (standard parallels 44°N and 49°N, origin 46.5°N 3°E); each overseas
  department in an equirectangular projection scaled by cos(latitude of its own centre);
- layout: a fixed viewBox ``0 0 1000 H``; the mainland fitted on the left, Corsica and the five
  overseas departments (971, 972, 973, 974, 976; regions 01, 02, 03, 04, 06 and 94) each fitted in
  its own labelled box in a column on the right (each box has its own scale);
- simplification: Douglas-Peucker on shared arcs (the source's rings share exact vertices, so each
  border between two areas is cut at its junctions and simplified once: neighbours keep the same
  line, no gap nor overlap), tolerance ``TOLERANCE`` viewBox units; rings left smaller than
  ``MIN_AREA`` square units are dropped (islets), never an area's largest polygon;
- output: integer coordinates, each area an SVG path ``d`` (``M x y`` then relative ``l`` steps,
  ``z``; holes as further rings, drawn with ``fill-rule="evenodd"``) with its code, name, centroid
  (of its largest polygon) and inset (or null). JSON, keys and areas sorted: same bytes every run.

Usage: ``python -m infra.build_geo [--out DIR] [GEO_DIR]`` (``make geo``).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "shared" / "opendepot" / "reference" / "geo"
DEFAULT_SRC = ROOT.parent / "shared" / "data" / "geo"

Point = tuple[float, float]
Ring = list[Point]
Polygon = list[Ring]
"""An outer ring then its holes (GeoJSON order)."""

WIDTH = 1000
MARGIN = 10
MAIN_WIDTH = 790
"""The mainland is fitted in ``[MARGIN, MAIN_WIDTH - MARGIN]`` horizontally."""
GAP = 8
LABEL = 20
"""Height of an inset's label strip, viewBox units."""
TOLERANCE = 0.45
MIN_AREA = 2.0
INSETS: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("corse", "Corse", ("2A", "2B"), ("94",)),
    ("guadeloupe", "Guadeloupe", ("971",), ("01",)),
    ("martinique", "Martinique", ("972",), ("02",)),
    ("guyane", "Guyane", ("973",), ("03",)),
    ("reunion", "La Réunion", ("974",), ("04",)),
    ("mayotte", "Mayotte", ("976",), ("06",)),
)
"""(id, label, department codes, region codes) of each inset box, top to bottom."""
SOURCE = ("IGN, ADMIN EXPRESS 2020 (Etalab contours-administratifs, simplified at 1,000 m; "
          "copies from etalab/dashboard-aides-entreprises)")
LICENCE = "Licence Ouverte / Etalab Open Licence 2.0"
ATTRIBUTION = "IGN — ADMIN EXPRESS"


def lambert(lon: float, lat: float) -> Point:
    """Spherical Lambert conformal conic (parallels 44°N, 49°N; origin 46.5°N, 3°E), unit sphere;
    y grows northwards."""
    p1, p2, p0 = math.radians(44.0), math.radians(49.0), math.radians(46.5)
    n = math.log(math.cos(p1) / math.cos(p2)) / math.log(
        math.tan(math.pi / 4 + p2 / 2) / math.tan(math.pi / 4 + p1 / 2))
    f = math.cos(p1) * math.tan(math.pi / 4 + p1 / 2) ** n / n
    rho = f / math.tan(math.pi / 4 + math.radians(lat) / 2) ** n
    rho0 = f / math.tan(math.pi / 4 + p0 / 2) ** n
    theta = n * math.radians(lon - 3.0)
    return rho * math.sin(theta), rho0 - rho * math.cos(theta)


def equirectangular(lat0: float) -> Callable[[float, float], Point]:
    """Longitude scaled by cos(``lat0``), latitude as is (degrees); y grows northwards."""
    k = math.cos(math.radians(lat0))
    return lambda lon, lat: (lon * k, lat)


def polygons(geometry: dict[str, object]) -> list[Polygon]:
    """A GeoJSON Polygon or MultiPolygon as a list of polygons of (lon, lat) rings."""
    coords = geometry["coordinates"]
    parts = [coords] if geometry["type"] == "Polygon" else coords
    assert isinstance(parts, list)
    return [[[(float(x), float(y)) for x, y in ring] for ring in part] for part in parts]


def rings_of(areas: dict[str, list[Polygon]]) -> Iterable[Ring]:
    for parts in areas.values():
        for part in parts:
            yield from part


def open_ring(ring: Ring) -> Ring:
    return ring[:-1] if len(ring) > 1 and ring[0] == ring[-1] else list(ring)


def junctions(areas: dict[str, list[Polygon]]) -> set[Point]:
    """Vertices where a ring's neighbours differ from another ring's: where three areas meet,
    where a shared border meets a coast, where two rings touch."""
    near: dict[Point, set[Point]] = {}
    for ring in rings_of(areas):
        pts = open_ring(ring)
        for i, p in enumerate(pts):
            near.setdefault(p, set()).update((pts[i - 1], pts[(i + 1) % len(pts)]))
    return {p for p, n in near.items() if len(n) > 2}


def perpendicular(p: Point, a: Point, b: Point) -> float:
    dx, dy = b[0] - a[0], b[1] - a[1]
    if dx == 0 and dy == 0:
        return math.hypot(p[0] - a[0], p[1] - a[1])
    return abs(dy * p[0] - dx * p[1] + b[0] * a[1] - b[1] * a[0]) / math.hypot(dx, dy)


def douglas_peucker(pts: Sequence[Point], tol: float) -> list[Point]:
    """The points of the open line ``pts`` kept by Douglas-Peucker at ``tol`` (ends kept)."""
    keep = [False] * len(pts)
    keep[0] = keep[-1] = True
    stack = [(0, len(pts) - 1)]
    while stack:
        i, j = stack.pop()
        best, at = -1.0, -1
        for k in range(i + 1, j):
            d = perpendicular(pts[k], pts[i], pts[j])
            if d > best:
                best, at = d, k
        if at >= 0 and best > tol:
            keep[at] = True
            stack += [(i, at), (at, j)]
    return [p for p, k in zip(pts, keep, strict=True) if k]


class Simplifier:
    """Simplifies rings arc by arc, each shared arc once (cached in its canonical direction)."""

    def __init__(self, nodes: set[Point], project: Callable[[Point], Point], tol: float) -> None:
        self.nodes, self.project, self.tol = nodes, project, tol
        self.cache: dict[tuple[Point, ...], list[Point]] = {}

    def arc(self, pts: list[Point]) -> list[Point]:
        """``pts`` (source points, ends fixed) simplified, in projected coordinates."""
        flip = pts[-1] < pts[0] or (pts[-1] == pts[0] and len(pts) > 2 and pts[-2] < pts[1])
        key = tuple(reversed(pts) if flip else pts)
        if key not in self.cache:
            self.cache[key] = douglas_peucker([self.project(p) for p in key], self.tol)
        out = self.cache[key]
        return list(reversed(out)) if flip else list(out)

    def ring(self, ring: Ring) -> list[Point]:
        """A closed ring simplified (open: last point not repeated), projected."""
        pts = open_ring(ring)
        cut = [i for i, p in enumerate(pts) if p in self.nodes]
        if not cut:  # an island, or a ring no other ring touches: from its smallest point
            start = pts.index(min(pts))
            pts = pts[start:] + pts[:start]
            flip = pts[-1] < pts[1]
            seq = [pts[0]] + pts[:0:-1] if flip else pts
            far = max(range(len(seq)), key=lambda k: (math.dist(seq[0], seq[k]), -k))
            done = self.arc(seq[:far + 1])[:-1] + self.arc(seq[far:] + seq[:1])[:-1]
            return [done[0]] + done[:0:-1] if flip else done
        pts = pts[cut[0]:] + pts[:cut[0]]
        cut = [i - cut[0] for i in cut] + [len(pts)]
        pts = pts + pts[:1]
        out: list[Point] = []
        for a, b in zip(cut, cut[1:], strict=False):
            out += self.arc(pts[a:b + 1])[:-1]
        return out


Box = tuple[float, float, float, float]
"""x, y, width, height (viewBox units, y down)."""


def fit(points: Sequence[Point], box: Box) -> Callable[[Point], Point]:
    """The map from projected ``points`` (y north) into ``box`` (y down): uniform scale, centred."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    s = min(box[2] / (x1 - x0), box[3] / (y1 - y0))
    ox = box[0] + (box[2] - s * (x1 - x0)) / 2
    oy = box[1] + (box[3] - s * (y1 - y0)) / 2
    return lambda p: (ox + s * (p[0] - x0), oy + s * (y1 - p[1]))


def projected(parts: Iterable[list[Polygon]], proj: Callable[[float, float], Point]) -> list[Point]:
    return [proj(*p) for polys in parts for poly in polys for ring in poly for p in ring]


def layout(deps: dict[str, list[Polygon]]) -> tuple[dict[str, Callable[[Point], Point]],
                                                     dict[str, Box], int]:
    """The full transform (lon, lat) -> viewBox of the mainland (key ``""``) and of each inset,
    each inset's box, and the viewBox height. Computed from the departments only, so that the
    regions land on exactly the same places."""
    in_inset = {c for _, _, codes, _ in INSETS for c in codes}
    main = projected((p for c, p in deps.items() if c not in in_inset), lambert)
    xs, ys = [p[0] for p in main], [p[1] for p in main]
    width = MAIN_WIDTH - 2 * MARGIN
    height = round(width * (max(ys) - min(ys)) / (max(xs) - min(xs)))
    total = height + 2 * MARGIN
    mainfit = fit(main, (MARGIN, MARGIN, width, height))
    out: dict[str, Callable[[Point], Point]] = {"": lambda p: mainfit(lambert(*p))}
    boxes: dict[str, Box] = {}
    box_h = (height - GAP * (len(INSETS) - 1)) / len(INSETS)
    for i, (key, _, codes, _) in enumerate(INSETS):
        raw = [p for c in codes for poly in deps[c] for ring in poly for p in ring]
        lat0 = (min(p[1] for p in raw) + max(p[1] for p in raw)) / 2
        proj = lambert if key == "corse" else equirectangular(lat0)
        box = (float(MAIN_WIDTH), MARGIN + i * (box_h + GAP), float(WIDTH - MARGIN - MAIN_WIDTH),
               box_h)
        boxes[key] = box
        inner = fit([proj(*p) for p in raw],
                    (box[0] + 4, box[1] + LABEL, box[2] - 8, box[3] - LABEL - 4))
        out[key] = (lambda pr, fi: lambda p: fi(pr(*p)))(proj, inner)
    return out, boxes, total


IntRing = list[tuple[int, int]]


def signed_area(ring: Sequence[tuple[float, float]]) -> float:
    return sum(a[0] * b[1] - b[0] * a[1] for a, b in zip(ring, [*ring[1:], ring[0]],
                                                         strict=True)) / 2


def rounded(ring: list[Point]) -> IntRing:
    out: IntRing = []
    for x, y in ring:
        p = (round(x), round(y))
        if not out or out[-1] != p:
            out.append(p)
    while len(out) > 1 and out[0] == out[-1]:
        out.pop()
    return out


def numbers(values: Iterable[int]) -> str:
    """Integers for an SVG path: a space only where no minus sign separates them."""
    text = ""
    for v in values:
        s = str(v)
        if text and text[-1] not in "Mlz" and not s.startswith("-"):
            text += " "
        text += s
    return text


def path_d(rings: Sequence[IntRing]) -> str:
    """``M x y`` then relative ``l`` steps and ``z``, one subpath per ring."""
    parts = []
    for ring in rings:
        steps = [v for a, b in zip(ring, ring[1:], strict=False)
                 for v in (b[0] - a[0], b[1] - a[1])]
        parts.append("M" + numbers(ring[0]) + ("l" + numbers(steps) if steps else "") + "z")
    return "".join(parts)


def centroid(ring: IntRing) -> list[int]:
    a = signed_area(ring)
    cx = sum((p[0] + q[0]) * (p[0] * q[1] - q[0] * p[1])
             for p, q in zip(ring, [*ring[1:], ring[0]], strict=True)) / (6 * a)
    cy = sum((p[1] + q[1]) * (p[0] * q[1] - q[0] * p[1])
             for p, q in zip(ring, [*ring[1:], ring[0]], strict=True)) / (6 * a)
    return [round(cx), round(cy)]


def shape(polys: list[Polygon], simp: Simplifier) -> tuple[str, list[int]]:
    """An area's path ``d`` and the centroid of its largest polygon (islets and holes smaller
    than ``MIN_AREA`` left out, never the largest polygon)."""
    kept: list[tuple[IntRing, list[IntRing]]] = []
    for poly in polys:
        holes = [rounded(simp.ring(r)) for r in poly[1:]]
        kept.append((rounded(simp.ring(poly[0])),
                     [h for h in holes if len(h) >= 3 and abs(signed_area(h)) >= MIN_AREA]))
    sizes = [abs(signed_area(outer)) if len(outer) >= 3 else 0.0 for outer, _ in kept]
    big = max(range(len(kept)), key=lambda i: (sizes[i], -i))
    rings: list[IntRing] = []
    for i, (outer, holes) in enumerate(kept):
        if i == big or sizes[i] >= MIN_AREA:
            rings += [outer, *holes]
    return path_d(rings), centroid(kept[big][0])


def read(path: Path) -> dict[str, tuple[str, list[Polygon]]]:
    """``{code: (name, polygons)}`` of a GeoJSON FeatureCollection with ``code`` and ``nom``."""
    data = json.loads(path.read_text("utf-8"))
    return {f["properties"]["code"]: (f["properties"]["nom"], polygons(f["geometry"]))
            for f in data["features"]}


def build(src: Path) -> dict[str, bytes]:
    """``{file name: bytes}`` of the shipped geometry (``departements.json``, ``regions.json``)."""
    sources = {"departements.json": read(src / "departements-1000m.geojson"),
               "regions.json": read(src / "regions-1000m.geojson")}
    deps = {c: p for c, (_, p) in sources["departements.json"].items()}
    transforms, boxes, height = layout(deps)
    out: dict[str, bytes] = {}
    for name, areas in sources.items():
        level = 0 if name == "departements.json" else 1
        inset_of = {c: key for key, _, *codes in INSETS for c in codes[level]}
        polys = {c: p for c, (_, p) in areas.items()}
        nodes = junctions(polys)
        simps = {key: Simplifier(nodes, fn, TOLERANCE) for key, fn in transforms.items()}
        rows: list[dict[str, object]] = []
        for code in sorted(areas):
            d, centre = shape(polys[code], simps[inset_of.get(code, "")])
            rows.append({"code": code, "name": areas[code][0], "d": d, "centroid": centre,
                         "inset": inset_of.get(code)})
        out[name] = document(rows, boxes, height)
    return out


def document(rows: list[dict[str, object]], boxes: dict[str, Box], height: int) -> bytes:
    """The shipped JSON: metadata, viewBox, the mainland's bounding box, the insets, the areas."""
    main = [p for r in rows if r["inset"] is None for p in points(str(r["d"]))]
    xs, ys = [p[0] for p in main], [p[1] for p in main]
    doc = {
        "source": SOURCE, "licence": LICENCE, "attribution": ATTRIBUTION,
        "projection": "mainland and Corsica: spherical Lambert conformal conic (44°N, 49°N; "
                      "origin 46.5°N 3°E); overseas: equirectangular, cos(centre latitude)",
        "simplification": f"Douglas-Peucker on shared arcs, {TOLERANCE} units; rings under "
                          f"{MIN_AREA} square units dropped; integer coordinates",
        "viewBox": [0, 0, WIDTH, height],
        "mainland": [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)],
        "insets": [{"id": key, "label": label, "box": [round(v) for v in boxes[key]]}
                   for key, label, _, _ in INSETS],
        "areas": rows,
    }
    return (json.dumps(doc, ensure_ascii=False, separators=(",", ":"), indent=None)
            .replace('},{"code"', '},\n{"code"') + "\n").encode("utf-8")


def points(d: str) -> list[tuple[int, int]]:
    """The absolute points of a path written by ``path_d``."""
    out: list[tuple[int, int]] = []
    for sub in d.split("z"):
        if not sub:
            continue
        head, _, tail = sub[1:].partition("l")
        x, y = (int(v) for v in head.replace("-", " -").split())
        out.append((x, y))
        steps = [int(v) for v in tail.replace("-", " -").split()]
        for dx, dy in zip(steps[::2], steps[1::2], strict=True):
            x, y = x + dx, y + dy
            out.append((x, y))
    return out


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    out = OUT
    if args[:1] == ["--out"]:
        out, args = Path(args[1]), args[2:]
    src = Path(args[0]) if args else DEFAULT_SRC
    out.mkdir(parents=True, exist_ok=True)
    for name, body in build(src).items():
        (out / name).write_bytes(body)
        print(f"wrote {out / name} ({len(body):,} bytes)")


if __name__ == "__main__":
    main()
