"""Excel uploads read as the producer sees them (issue 13, item 5): saved values only (a formula
without one is refused naming sheet and cell), cached formula results said in the report, the
sheet read named and other data sheets warned of, the header found below title rows, and a
damaged workbook a plain rejection.

Workbooks are built in each test with openpyxl from the first rows of the real hospital file;
openpyxl saves formulas without a value, as a program that does not calculate them would, and
``with_cached`` writes the values Excel would have saved into the sheet's XML."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from dataclasses import replace

import pytest

from conftest import HOSP, REAL, need
from opendepot import formats
from opendepot.formats import Conversion, convert, convert_upload
from opendepot.registry import load_cog, load_registry
from opendepot.report import build_report
from opendepot.validate import validate

openpyxl = pytest.importorskip("openpyxl")

HEADER = ["dep", "sexe", "jour", "hosp", "rea", "rad", "dc"]
NAME = f"{HOSP}/spf/hospital.xlsx"


@pytest.fixture(scope="module")
def hosp():
    return load_registry().get(HOSP)


@pytest.fixture(scope="module")
def cog():
    return load_cog()


def real_rows(n: int) -> list[list[object]]:
    """The first ``n`` rows of the real hospital file, typed as a spreadsheet holds them
    (codes as text, counts as numbers, days as dates)."""
    path = need(REAL / HOSP / "donnees-hospitalieres-covid19-2020-11-07-19h00.csv")
    with open(path, encoding="utf-8") as f:
        reader = csv.reader(f, delimiter=";")
        next(reader)
        out = []
        for _, (dep, sexe, jour, *counts) in zip(range(n), reader, strict=False):
            out.append([dep, int(sexe), dt.date.fromisoformat(jour), *map(int, counts)])
    return out


def book_bytes(book) -> bytes:
    sink = io.BytesIO()
    book.save(sink)
    return sink.getvalue()


def data_book(rows: list[list[object]], *, title: str = "Données", above: int = 0):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = title
    for i in range(above):
        sheet.append([f"Titre {i + 1}: données hospitalières"] if i == 0 else [])
    sheet.append(HEADER)
    for row in rows:
        sheet.append(row)
    return book


def rewrite(raw: bytes, member: str, edit, compression=zipfile.ZIP_DEFLATED) -> bytes:
    """The workbook ``raw`` with ``edit`` applied to the bytes of ``member``."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw)) as src, zipfile.ZipFile(out, "w", compression) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            dst.writestr(info.filename, edit(data) if info.filename == member else data)
    return out.getvalue()


def with_cached(raw: bytes, values: dict[str, int], member: str = "xl/worksheets/sheet1.xml"):
    """``raw`` with the saved value ``values[cell]`` for each formula cell, as Excel saves it."""
    def edit(xml: bytes) -> bytes:
        for cell, value in values.items():
            start = xml.index(f'<c r="{cell}">'.encode())
            end = xml.index(b"<v />", start)
            xml = xml[:end] + f"<v>{value}</v>".encode() + xml[end + len(b"<v />"):]
        return xml
    return rewrite(raw, member, edit)


def csv_lines(out) -> list[str]:
    assert isinstance(out, bytes), out
    return out.decode("utf-8").splitlines()


def warnings_of(v) -> dict[str, str]:
    return {w.type: w.message for w in v.warnings.items}


# ------------------------------------------------------------------------- formulas


def test_formulas_without_saved_value__rejected_naming_sheet_cell_and_count(hosp, cog):
    book = data_book(real_rows(12))
    sheet = book.active
    for row in range(2, 14):  # dc = hosp - rea, a formula openpyxl saves without a value
        sheet[f"G{row}"] = f"=D{row}-E{row}"
    v = validate(book_bytes(book), hosp, cog, name=NAME)
    assert v.status == "rejected" and v.errors.by_type == {"formula-without-value": 1}
    assert v.rejection == (
        "sheet 'Données', cell G2: formula =D2-E2 has no saved value, nor do 11 more formula "
        "cells (G3, G4, G5, G6, ...); the workbook was written by a program that does not "
        "calculate formulas: open and save it in Excel or LibreOffice (or paste the values) and "
        "upload it again")
    assert v.rows_published == 0


def test_formula_without_value_in_a_title_row__not_read_so_not_refused(hosp, cog):
    book = data_book(real_rows(2), above=2)
    book.active["B1"] = "=TODAY()"  # above the header: never published
    v = validate(book_bytes(book), hosp, cog, name=NAME)
    assert v.status == "accepted" and v.rows_published == 2


def test_cached_formula_results__published_as_saved_and_said_in_the_report(hosp, cog):
    rows = real_rows(3)
    book = data_book(rows)
    for row in (2, 3, 4):
        book.active[f"D{row}"] = f"=E{row}+F{row}"
    # saved values that are stale (E2+F2 is 1, not 9): published as saved, the warning says so
    raw = with_cached(book_bytes(book), {"D2": 9, "D3": 5, "D4": 4})
    v = validate(raw, hosp, cog, name=NAME)
    assert v.status == "accepted" and v.errors.total == 0
    assert v.table.column("hosp").to_pylist() == [9, 5, 4]
    assert warnings_of(v)["excel-cached-formulas"] == (
        "sheet 'Données': 3 value(s) are formula results as the spreadsheet last saved them "
        "(first D2: formula =E2+F2); they are published as saved, never recalculated: check "
        "the workbook was recalculated before it was saved")
    report = build_report(v, None, {"key": NAME})
    assert [w["type"] for w in report["opendepot"]["warnings"]] == [
        "excel-sheet", "excel-cached-formulas"]
    assert report["tasks"][0]["stats"]["warningsByType"] == {
        "excel-cached-formulas": 1, "excel-sheet": 1}


def test_formula_saved_as_empty_text__an_empty_cell_not_a_missing_value(hosp, cog):
    book = data_book(real_rows(1))
    book.active["H1"] = "HospConv"
    book.active["H2"] = '=IF(D2>0,"",1)'  # Excel saves an empty text result as t="str", <v></v>

    def saved_empty(xml: bytes) -> bytes:
        return xml.replace(b'<c r="H2"><f>', b'<c r="H2" t="str"><f>').replace(
            b"<v />", b"<v></v>")

    raw = rewrite(book_bytes(book), "xl/worksheets/sheet1.xml", saved_empty)
    v = validate(raw, hosp, cog, name=NAME)
    assert v.status == "accepted" and v.table.column("HospConv").to_pylist() == [None]
    assert "1 value(s) are formula results" in warnings_of(v)["excel-cached-formulas"]


# --------------------------------------------------------------------------- sheets


def test_sheet_read__named_in_the_report_with_its_header_row(hosp, cog):
    v = validate(book_bytes(data_book(real_rows(4))), hosp, cog, name=NAME)
    assert v.status == "accepted" and v.rows_published == 4
    assert warnings_of(v) == {"excel-sheet": "rows read from sheet 'Données', header on row 1; "
                                             "line numbers in this report are the sheet's row "
                                             "numbers"}


def test_two_data_sheets__first_read_the_other_a_warning_naming_it(hosp, cog):
    rows = real_rows(6)
    book = data_book(rows[:3], title="Semaine 1")
    second = book.create_sheet("Semaine 2")
    second.append(HEADER)
    for row in rows[3:]:
        second.append(row)
    v = validate(book_bytes(book), hosp, cog, name=NAME)
    assert v.status == "accepted" and v.rows_published == 3
    assert v.table.column("sexe").to_pylist() == [r[1] for r in rows[:3]]
    warned = warnings_of(v)
    assert warned["excel-sheet"].startswith("rows read from sheet 'Semaine 1', header on row 1")
    assert warned["excel-other-sheets"] == (
        "sheet(s) 'Semaine 2' also have this dataset's column names but were not read (only "
        "'Semaine 1' is); put every row in one sheet, or upload each sheet as its own file")


def test_notes_sheet_first__data_sheet_read_and_notes_named(hosp, cog):
    book = data_book(real_rows(5))
    notes = book.create_sheet("Notes", 0)
    notes.append(["Source : Santé publique France"])
    notes.append(["dep = département, sexe 0 = total"])
    v = validate(book_bytes(book), hosp, cog, name=NAME)
    assert v.status == "accepted" and v.rows_published == 5
    assert warnings_of(v)["excel-sheet"] == (
        "rows read from sheet 'Données', header on row 1; line numbers in this report are the "
        "sheet's row numbers; not read: 'Notes' (no row with this dataset's column names)")
    assert "excel-other-sheets" not in warnings_of(v)


def test_declared_sheet__read_even_when_not_first(hosp, cog):
    book = data_book(real_rows(2), title="Brouillon")
    final = book.create_sheet("Définitif")
    final.append(HEADER)
    final.append(["75", 0, dt.date(2020, 3, 18), 9, 1, 2, 3])
    declared = replace(hosp, excel_sheet="Définitif")
    v = validate(book_bytes(book), declared, cog, name=NAME)
    assert v.status == "accepted" and v.table.column("dep").to_pylist() == ["75"]
    assert "'Brouillon' also have" in warnings_of(v)["excel-other-sheets"]


def test_declared_sheet_missing__rejected_naming_the_sheets(hosp, cog):
    raw = book_bytes(data_book(real_rows(2), title="Feuil1"))
    v = validate(raw, replace(hosp, excel_sheet="Données"), cog, name=NAME)
    assert v.status == "rejected" and v.errors.by_type == {"format-error": 1}
    assert v.rejection == (f"the workbook has no sheet 'Données', the one dataset '{HOSP}' "
                           "reads (it has 'Feuil1')")


# --------------------------------------------------------------------------- header


def test_title_rows_above_header__header_found_and_lines_said(hosp, cog):
    rows = real_rows(4)
    rows[2][3] = "beaucoup"  # sheet row 4 + 3 = row 7 (header on row 4)
    v = validate(book_bytes(data_book(rows, above=3)), hosp, cog, name=NAME)
    assert v.labels == tuple(HEADER)
    (error,) = v.errors.items
    assert (error.type, error.row_number, error.cell) == ("type-error", 4, "beaucoup")
    assert warnings_of(v)["excel-sheet"] == (
        "rows read from sheet 'Données', header on row 4; line numbers in this report are the "
        "sheet's row numbers minus 3")


def test_no_header_in_first_rows__report_says_which_row_was_read_never_unnamed(hosp, cog):
    book = openpyxl.Workbook()
    book.active.title = "Données"
    book.active.append(["Titre"])
    book.active.append(["Département (code)", None, "Jour du relevé"])
    book.active.append(["01", 0, dt.date(2020, 3, 18)])
    v = validate(book_bytes(book), hosp, cog, name=NAME)
    assert v.status == "rejected" and v.labels == ("Titre",)
    assert not any("Unnamed" in label for label in v.labels)
    assert warnings_of(v)["excel-header"] == (
        "no row among the first 20 of sheet 'Données' has this dataset's column names (dep, "
        "sexe, jour, hosp, rea, HospConv, SSR_USLD, autres, rad, dc); row 1, the first "
        "non-blank one, was read as the header")
    assert v.errors.by_type["missing-label"] == 7


def test_blank_header_cell__blank_label_not_unnamed(hosp, cog):
    book = data_book(real_rows(1))
    book.active["H1"] = None
    book.active["I1"] = "commentaire"
    book.active["C1"] = None
    v = validate(book_bytes(book), hosp, cog, name=NAME)
    assert v.labels == ("dep", "sexe", "", "hosp", "rea", "rad", "dc", "", "commentaire")
    assert v.errors.by_type == {"blank-label": 2, "extra-label": 1, "missing-label": 1}


# ------------------------------------------------------------------------ cell text


def test_cells__text_as_the_spreadsheet_shows_it(hosp):
    book = data_book([["01", 0, dt.date(2020, 3, 18), 2.0, 0, 1, 0],
                      ["2A", 1, dt.datetime(2020, 3, 18, 12, 30), 0.5, True, None, "x"]])
    for _ in range(3):
        book.active.append([])  # formatted empty rows at the end
    book.active.append([None, None])
    assert csv_lines(convert(book_bytes(book), NAME, hosp)) == [
        "dep;sexe;jour;hosp;rea;rad;dc",
        "01;0;2020-03-18;2;0;1;0",
        "2A;1;2020-03-18 12:30:00;0.5;true;;x",
    ]


def test_blank_row_between_data__blank_row_error_on_its_sheet_line(hosp, cog):
    rows = real_rows(3)
    book = data_book(rows[:1])
    book.active.append([])
    book.active.append(rows[1])
    book.active.cell(row=6, column=1, value=rows[2][0])  # rows 4 and 5 absent from the XML
    for column, value in enumerate(rows[2][1:], start=2):
        book.active.cell(row=6, column=column, value=value)
    v = validate(book_bytes(book), hosp, cog, name=NAME)
    assert [(e.type, e.row_number) for e in v.errors.items] == [
        ("blank-row", 3), ("blank-row", 5)]


# ---------------------------------------------------------------- damaged workbooks


def damaged(raw: bytes, how: str) -> bytes:
    if how == "bad sheet XML":
        return rewrite(raw, "xl/worksheets/sheet1.xml", lambda xml: xml[: len(xml) // 2])
    if how == "cut at 60 %":
        return raw[: len(raw) * 6 // 10]
    if how == "CRC mismatch":
        stored = rewrite(raw, "", lambda x: x, compression=zipfile.ZIP_STORED)
        return stored.replace(b"<t>jour</t>", b"<t>JOUR</t>")
    if how == "not a workbook":
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as archive:
            archive.writestr("rapport.txt", "dep;sexe\n")
        return out.getvalue()
    raise AssertionError(how)


@pytest.mark.parametrize(("how", "expected"), [
    ("bad sheet XML", "the Excel workbook cannot be read: ParseError: "),
    ("cut at 60 %", "the Excel workbook cannot be read: it is not a complete ZIP archive "
                    "(File is not a zip file); the upload may have been cut short"),
    ("CRC mismatch", "the Excel workbook cannot be read: part xl/worksheets/sheet1.xml of the "
                     "archive fails its CRC check (the file is damaged or cut short)"),
    ("not a workbook", "the Excel workbook cannot be read: it is a ZIP archive without "
                       "xl/workbook.xml, not an Excel workbook (.xlsx)"),
])
def test_damaged_workbook__plain_rejection_never_report_this(hosp, cog, how, expected):
    raw = damaged(book_bytes(data_book(real_rows(40))), how)
    v = validate(raw, hosp, cog, name=NAME)
    assert v.status == "rejected" and v.errors.by_type == {"format-error": 1}
    assert v.rejection.startswith(expected), v.rejection
    assert "report this" not in v.rejection


def test_workbook_expanding_past_the_limit__refused_unread(hosp, cog, monkeypatch):
    raw = book_bytes(data_book(real_rows(40)))
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        expanded = sum(info.file_size for info in archive.infolist())
    monkeypatch.setattr(formats, "MAX_WORKBOOK_BYTES", expanded - 1)
    v = validate(raw, hosp, cog, name=NAME)
    assert v.status == "rejected" and v.rejection == (
        f"the Excel workbook cannot be read: it expands to {expanded} bytes, past the limit of "
        f"{expanded - 1} bytes for a workbook; it was not read (split it, or upload it as "
        "gzipped CSV)")
    monkeypatch.setattr(formats, "MAX_WORKBOOK_BYTES", expanded)
    assert validate(raw, hosp, cog, name=NAME).status == "accepted"


def test_conversion__carries_warnings_and_csv(hosp):
    made = convert_upload(book_bytes(data_book(real_rows(1), above=1)), NAME, hosp)
    assert isinstance(made, Conversion)
    assert [w.type for w in made.warnings] == ["excel-sheet"]
    assert csv_lines(made.data) == ["dep;sexe;jour;hosp;rea;rad;dc", "01;0;2020-03-18;2;0;1;0"]
