"""Maps of the site (``opendepot.site.maps``) over the shipped geometry (``make geo``), with real
values from the hospital files: which areas are coloured, which are grey, the counts, the insets,
the bytes of the shipped files."""

from __future__ import annotations

import csv
import io
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import ROOT, SHARED_DATA, need
from infra import build_geo
from opendepot.registry import load_cog
from opendepot.site import fr_int, maps

SVG = "{http://www.w3.org/2000/svg}"
HOSP = "donnees-hospitalieres-covid19/donnees-hospitalieres-covid19-2021-03-17-17h03.csv"
NEW_2021 = ("donnees-hospitalieres-nouveaux-covid19/"
            "donnees-hospitalieres-nouveaux-covid19-2021-06-02-19h09.csv")
NEW_2022 = ("donnees-hospitalieres-nouveaux-covid19/"
            "donnees-hospitalieres-nouveaux-covid19-2022-02-11-19h05.csv")
REA_REG = "covid-hospit-incid-reg/covid-hospit-incid-reg-2021-05-06-19h05.csv"


def last_day(name: str, column: str, key: str = "dep",
             keep: Callable[[dict[str, str]], bool] = lambda r: True) -> dict[str, float | None]:
    """``{area code: value}`` of the file's last day (``NA`` -> None), as a page would map it."""
    text = need(SHARED_DATA / "real" / name).read_text("utf-8")
    rows = [r for r in csv.DictReader(io.StringIO(text), delimiter=";") if keep(r)]
    day = max(r["jour"] for r in rows)
    return {r[key].zfill(2): None if r[column] == "NA" else float(r[column])
            for r in rows if r["jour"] == day}


def parse(figure: str) -> ET.Element:
    """The figure as XML (the maps write well-formed markup)."""
    return ET.fromstring(figure)


def paths(fig: ET.Element) -> dict[str, ET.Element]:
    return {p.attrib["data-code"]: p for p in fig.iter(f"{SVG}path")}


def points(d: str) -> list[tuple[int, int]]:
    """Absolute points of a path ``M x y l dx dy ... z`` (one subpath per ring)."""
    out = []
    for sub in re.findall(r"M([^lz]*)(?:l([^z]*))?z", d):
        x, y = (int(v) for v in re.findall(r"-?\d+", sub[0]))
        out.append((x, y))
        steps = [int(v) for v in re.findall(r"-?\d+", sub[1])]
        for dx, dy in zip(steps[::2], steps[1::2], strict=True):
            x, y = x + dx, y + dy
            out.append((x, y))
    return out


def test_shipped_geometry__the_cog_codes_and_names():
    cog = load_cog()
    deps, regs = maps.geometry("dep"), maps.geometry("reg")
    assert [a.code for a in deps.areas] == sorted(cog.departments) and len(deps.areas) == 101
    assert [a.code for a in regs.areas] == sorted(cog.regions) and len(regs.areas) == 18
    assert deps.names() == {c: d["name"] for c, d in cog.departments.items()}
    assert regs.names() == {c: r["name"] for c, r in cog.regions.items()}
    assert deps.names()["2A"] == "Corse-du-Sud" and regs.names()["94"] == "Corse"
    assert {a.code: a.inset for a in deps.areas if a.inset} == {
        "2A": "corse", "2B": "corse", "971": "guadeloupe", "972": "martinique", "973": "guyane",
        "974": "reunion", "976": "mayotte"}
    assert {a.code: a.inset for a in regs.areas if a.inset} == {
        "94": "corse", "01": "guadeloupe", "02": "martinique", "03": "guyane", "04": "reunion",
        "06": "mayotte"}
    assert deps.attribution == "IGN — ADMIN EXPRESS" and "Etalab" in deps.licence


def test_shipped_geometry__small_and_integer():
    folder = ROOT / "shared" / "opendepot" / "reference" / "geo"
    assert (folder / "departements.json").stat().st_size < 150_000
    assert (folder / "regions.json").stat().st_size < 60_000
    for level in ("dep", "reg"):
        for a in maps.geometry(level).areas:
            assert re.fullmatch(r"(M\d+ \d+(l[-\d ]+)?z)+", a.d), a.code


@pytest.mark.parametrize("level", ["dep", "reg"])
def test_insets__apart_from_the_mainland_and_each_area_inside_its_box(level):
    geo = maps.geometry(level)
    mx, my, mw, mh = geo.mainland
    boxes = {i.id: i.box for i in geo.insets}
    assert [i.label for i in geo.insets] == ["Corse", "Guadeloupe", "Martinique", "Guyane",
                                             "La Réunion", "Mayotte"]
    for x, y, w, h in boxes.values():
        assert x >= mx + mw or y >= my + mh, "an inset box overlaps the mainland's bounding box"
        assert x + w <= geo.view_box[2] and y + h <= geo.view_box[3]
    ordered = sorted(boxes.values(), key=lambda b: b[1])
    assert all(a[1] + a[3] < b[1] for a, b in zip(ordered, ordered[1:], strict=False))
    for a in geo.areas:
        pts = points(a.d)
        x0, y0, w, h = boxes[a.inset] if a.inset else geo.mainland
        assert all(x0 <= x <= x0 + w and y0 <= y <= y0 + h for x, y in pts), a.code
        cx, cy = a.centroid
        assert x0 <= cx <= x0 + w and y0 <= cy <= y0 + h, a.code
    xs = [x for a in geo.areas if not a.inset for x, _ in points(a.d)]
    ys = [y for a in geo.areas if not a.inset for _, y in points(a.d)]
    assert (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)) == geo.mainland


def test_make_geo__rebuilds_the_shipped_bytes(tmp_path: Path):
    build_geo.main(["--out", str(tmp_path), str(need(SHARED_DATA / "geo"))])
    shipped = ROOT / "shared" / "opendepot" / "reference" / "geo"
    for name in ("departements.json", "regions.json"):
        assert (tmp_path / name).read_bytes() == (shipped / name).read_bytes(), name


def test_choropleth__hospital_stock_last_day_every_department_coloured_by_its_class():
    values = last_day(HOSP, "hosp", keep=lambda r: r["sexe"] == "0")
    assert len(values) == 101 and values["75"] == 1236.0 and values["48"] == 16.0
    html = maps.choropleth("dep", values, map_id="hosp-dep", title="Patients hospitalisés",
                           unit="patients", fmt=fr_int)
    fig = parse(html)
    assert fig.tag == "figure" and fig.attrib == {"class": "map", "data-map": "hosp-dep",
                                                  "data-level": "dep"}
    bounds = maps.breaks([v for v in values.values() if v is not None])
    assert bounds == [63.0, 100.0, 200.0, 340.0]  # quintiles 63, 100, 197, 345: 2 figures
    fills = dict(zip(range(5), maps.PALETTE, strict=True))
    found = paths(fig)
    assert len(found) == 101
    for code, p in found.items():
        v = values[code]
        assert v is not None and "class" not in p.attrib
        assert p.attrib["data-value"] == str(int(v))
        assert p.attrib["fill"] == fills[sum(v >= b for b in bounds)], code
    assert found["75"].find(f"{SVG}title").text == "Paris : 1\u202f236 patients"
    cover = fig.find("p[@class='coverage']")
    assert cover.attrib == {"class": "coverage", "data-reported": "101", "data-total": "101"}
    assert cover.text == "101 départements sur 101 ont des données"
    legend = ["".join(li.itertext()).strip() for li in fig.find("ul[@class='legend']")]
    assert legend == ["moins de 63 patients (20 départements)",
                      "de 63 à moins de 100 patients (20 départements)",
                      "de 100 à moins de 200 patients (21 départements)",
                      "de 200 à moins de 340 patients (18 départements)",
                      "340 patients ou plus (22 départements)"]
    assert fig.find("p[@class='no-geometry']") is None


def test_choropleth__lozere_missing_in_the_flow_file_is_grey_and_counted():
    values = last_day(NEW_2021, "incid_hosp")
    assert values["48"] is None and len(values) == 101
    fig = parse(maps.choropleth("dep", values, map_id="new", title="Nouvelles hospitalisations",
                                unit="patients", fmt=fr_int))
    found = paths(fig)
    lozere = found["48"]
    assert lozere.attrib["class"] == "no-data" and lozere.attrib["fill"] == maps.NO_DATA
    assert "data-value" not in lozere.attrib
    assert lozere.find(f"{SVG}title").text == "Lozère : pas de donnée"
    coloured = {c for c, p in found.items() if p.attrib.get("fill") in maps.PALETTE}
    assert coloured == {c for c, v in values.items() if v is not None} and len(coloured) == 100
    assert {c for c, p in found.items() if p.attrib.get("class") == "no-data"} == {"48"}
    cover = fig.find("p[@class='coverage']")
    assert (cover.attrib["data-reported"], cover.attrib["data-total"]) == ("100", "101")
    assert cover.text == "100 départements sur 101 ont des données"
    table = {tr.attrib["data-row"]: [td.text for td in tr] for tr in fig.iter("tr")
             if "data-row" in tr.attrib}
    assert table["48"] == ["48", "Lozère", "–"] and len(table) == 101


def test_symbols__978_listed_without_geometry_and_circle_areas_proportional():
    values = last_day(NEW_2022, "incid_hosp")
    assert "978" in values and len(values) == 102
    fig = parse(maps.symbols("dep", values, map_id="sym", title="Nouvelles hospitalisations",
                             unit="patients", fmt=fr_int))
    extra = fig.find("p[@class='no-geometry']")
    assert extra.attrib["data-codes"] == "978"
    assert extra.text == f"Sans géométrie : 978 ({fr_int(values['978'])} patients)"
    circles = {c.attrib["data-symbol"]: c for c in fig.iter(f"{SVG}circle")
               if "data-symbol" in c.attrib}
    assert set(circles) == set(values) - {"978"}
    assert len(fig.findall(".//*[@data-code]")) == 101, "only the areas' paths carry data-code"
    largest = max(v for c, v in values.items() if c != "978" and v is not None)
    areas = {a.code: a for a in maps.geometry("dep").areas}
    for code, c in circles.items():
        v = values[code]
        assert v is not None
        assert float(c.attrib["r"]) == pytest.approx(
            maps.MAX_RADIUS["dep"] * math.sqrt(v / largest), abs=0.051)
        assert (int(c.attrib["cx"]), int(c.attrib["cy"])) == areas[code].centroid
    radii = [float(c.attrib["r"]) for c in fig.iter(f"{SVG}circle")
             if "data-symbol" in c.attrib]
    assert radii == sorted(radii, reverse=True), "small circles are drawn last, on top"
    cover = fig.find("p[@class='coverage']")
    assert (cover.attrib["data-reported"], cover.attrib["data-total"]) == ("101", "101")


def test_choropleth__regions_of_the_icu_file():
    values = last_day(REA_REG, "incid_rea", key="reg")
    fig = parse(maps.choropleth("reg", values, map_id="rea", title="Admissions en réanimation",
                                unit="patients", fmt=fr_int))
    found = paths(fig)
    assert len(found) == 18
    have = {c for c, v in values.items() if v is not None and c in found}
    assert {c for c, p in found.items() if "data-value" in p.attrib} == have
    cover = fig.find("p[@class='coverage']")
    assert cover.text == f"{len(have)} régions sur 18 ont des données"
    assert found["11"].find(f"{SVG}title").text == (
        f"Île-de-France : {fr_int(values['11'])} patients")


def test_maps__one_value_singular_and_nothing_invented():
    fig = parse(maps.choropleth("dep", {"2A": 3.0, "2B": float("nan"), "975": None},
                                map_id="one", title="t", unit="", fmt=fr_int))
    found = paths(fig)
    assert found["2A"].attrib["fill"] == maps.PALETTE[2] and found["2A"].attrib["data-value"] == "3"
    assert sum(p.attrib.get("class") == "no-data" for p in found.values()) == 100
    assert fig.find("p[@class='coverage']").text == "1 département sur 101 a des données"
    assert fig.find("p[@class='no-geometry']").text == "Sans géométrie : 975 (pas de donnée)"
    empty = parse(maps.symbols("reg", {}, map_id="none", title="t", unit="", fmt=fr_int))
    assert empty.find("p[@class='coverage']").text == "0 région sur 18 a des données"
    assert not [c for c in empty.iter(f"{SVG}circle") if "data-symbol" in c.attrib]


def test_breaks__quintiles_rounded_and_repeats_collapsed():
    assert maps.breaks([float(v) for v in range(1, 101)]) == [21.0, 41.0, 60.0, 80.0]
    assert maps.breaks([5.0, 5.0, 5.0]) == []
    assert maps.breaks([0.0, 0.0, 0.0, 1.0]) == [0.4]
    assert maps.breaks([]) == [] and maps.breaks([1234.0, 98765.0]) == [21000.0, 40000.0, 60000.0,
                                                                         79000.0]
    assert maps.colours(1) == [maps.PALETTE[2]] and maps.colours(5) == list(maps.PALETTE)


def luminance(colour: str) -> float:
    rgb = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def test_palette__darker_by_step_and_distinct_from_white_and_from_missing():
    lum = [luminance(c) for c in maps.PALETTE]
    assert lum == sorted(lum, reverse=True)
    white = 1.0
    assert (white + 0.05) / (lum[0] + 0.05) > 1.7
    assert (white + 0.05) / (lum[-1] + 0.05) > 9
    assert (luminance(maps.NO_DATA) + 0.05) / (lum[0] + 0.05) > 1.3


def test_maps__names_and_texts_escaped_and_svg_labelled():
    html = maps.choropleth("dep", {"22": 1.0}, map_id='x"<y>', title="<b>Patients & co</b>",
                           unit="<i>", fmt=fr_int)
    assert "<b>" not in html and "<i>" not in html and "Côtes-d'Armor" not in html
    assert "Côtes-d&#39;Armor : 1 &lt;i&gt;" in html
    fig = parse(html)
    assert fig.attrib["data-map"] == 'x"<y>'
    svg = fig.find(f"{SVG}svg")
    assert svg.attrib["role"] == "img"
    title_id, desc_id = svg.attrib["aria-labelledby"].split()
    assert svg.find(f"{SVG}title").attrib["id"] == title_id == "map-x--y--title"
    assert svg.find(f"{SVG}title").text == "<b>Patients & co</b>"
    desc = svg.find(f"{SVG}desc")
    assert desc.attrib["id"] == desc_id
    assert desc.text == "Carte des départements. De 1 (Côtes-d'Armor) à 1 (Côtes-d'Armor) <i>. " \
        "100 départements sans donnée, en gris."
    labels = [t.text for t in svg.iter(f"{SVG}text")]
    assert labels == ["Corse", "Guadeloupe", "Martinique", "Guyane", "La Réunion", "Mayotte"]
