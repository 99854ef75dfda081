"""Published CSV cannot run in a spreadsheet (issue 13, item 6; OWASP's CSV injection rule).

Text cells starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return are written with a
leading ``'`` in the published CSV only, quoted as any text; numbers and dates are never
touched; the Parquet file keeps the text as sent; the report has one ``formula-cell`` warning
per column. Tables built here, and a real opencovid19-fr file with cells planted in it.
"""

from __future__ import annotations

import csv
import io
from datetime import date

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from report_invariant import assert_agrees

from conftest import REAL
from opendepot import checks, render
from opendepot.checks.formula_cells import FormulaCells
from opendepot.registry import load_cog, load_registry
from opendepot.validate import validate

CHIFFRES = REAL / "opencovid19-fr" / "dist" / "2020-03-12_f326e5b" / "chiffres-cles.csv"
REAL_TEXT_FILES = [
    ("chiffres-cles", "2020-03-12_f326e5b/chiffres-cles.csv"),
    ("chiffres-cles", "2020-05-28_66f66c9/chiffres-cles.csv"),
    ("chiffres-cles", "2020-10-31_9c91c00/chiffres-cles.csv"),
    ("production-masques", "2020-06-04_8cde1d3/production-masques.csv"),
]


def table() -> pa.Table:
    return pa.table({
        "nom": ["=1+2", "-x", "ok", None, "\tx", "\rligne", "@SUM(A1)", "+33 6", "a;b", "'=déjà"],
        "n": pa.array([-7, 1, 2, 3, 4, 5, 6, 7, 8, -9], pa.int64()),
        "x": pa.array([-0.5, None, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], pa.float64()),
        "jour": [date(2020, 3, 18)] * 10,
    })


def plain_csv(t: pa.Table) -> bytes:
    sink = io.BytesIO()
    pacsv.write_csv(t, sink, render.CSV_OPTIONS)
    return sink.getvalue()


def test_csv_bytes__formula_cells_get_a_quote_numbers_and_dates_untouched():
    out = render.csv_bytes(table(), header=True).to_pybytes().decode("utf-8")
    assert out == (
        '"nom";"n";"x";"jour"\n'
        "\"'=1+2\";-7;-0.5;2020-03-18\n"
        "\"'-x\";1;;2020-03-18\n"
        '"ok";2;1;2020-03-18\n'
        ";3;2;2020-03-18\n"
        "\"'\tx\";4;3;2020-03-18\n"
        "\"'\rligne\";5;4;2020-03-18\n"
        "\"'@SUM(A1)\";6;5;2020-03-18\n"
        "\"'+33 6\";7;6;2020-03-18\n"
        '"a;b";8;7;2020-03-18\n'
        "\"'=déjà\";-9;8;2020-03-18\n"
    )
    rows = list(csv.reader(io.StringIO(out, newline=""), delimiter=";"))
    assert [r[0] for r in rows[1:]] == ["'=1+2", "'-x", "ok", "", "'\tx", "'\rligne",
                                        "'@SUM(A1)", "'+33 6", "a;b", "'=déjà"]
    assert [r[1] for r in rows[1:3]] == ["-7", "1"]


def test_neutralised__same_table_without_formula_cells():
    t = table().slice(2, 1)  # "ok"
    assert render.neutralised(t) is t
    assert render.csv_bytes(t, header=False).to_pybytes() == b'"ok";2;1;2020-03-18\n'
    large = pa.table({"s": pa.array(["=A1", "b"], pa.large_string())})
    assert render.neutralised(large).column(0).to_pylist() == ["'=A1", "b"]


def test_formula_cells__mask_false_for_nulls():
    mask = render.formula_cells(pa.array(["=a", "a=", None, "", "-", " =a"]))
    assert mask.to_pylist() == [True, False, False, False, True, False]


def test_render_level__csv_escaped_parquet_as_sent(tmp_path):
    t = table()
    csv_file, parquet_file = render.render_level("ds", "dep", t, tmp_path)
    assert csv_file.path.read_bytes() == plain_csv(render.neutralised(t))
    assert csv_file.path.read_bytes() != plain_csv(t)
    assert pq.read_table(parquet_file.path).equals(t)
    assert pq.read_table(parquet_file.path)["nom"][0].as_py() == "=1+2"


def chiffres_with(cells: dict[tuple[int, str], str]) -> bytes:
    """The real 2020-03-12 chiffres-cles file with some cells replaced: (data row, column)."""
    text = CHIFFRES.read_text("utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    header = rows[0]
    for (row, column), value in cells.items():
        rows[row + 1][header.index(column)] = value
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8")


def test_validate__one_warning_per_text_column_with_count_and_first_line(real_dir):
    assert FormulaCells in checks.CHECKS
    body = chiffres_with({
        (1, "source_nom"): '=HYPERLINK("http://x.example","clic")',
        (5, "source_nom"): "@SUM(1+1)",
        (9, "source_nom"): "-moins",
        (3, "maille_nom"): "+33 6 00 00 00 00",
    })
    ds = load_registry().get("chiffres-cles")
    v = assert_agrees(validate(body, ds, load_cog(), name="chiffres-cles.csv"))
    assert v.accepted and v.errors.total == 0
    found = [(w.row_number, w.field_name, w.cell, w.note) for w in v.warnings.items
             if w.type == "formula-cell"]
    assert found == [  # schema order: maille_nom, then source_nom
        (5, "maille_nom", "+33 6 00 00 00 00", "1 cell(s), first at line 5"),
        (3, "source_nom", '=HYPERLINK("http://x.example","clic")', "3 cell(s), first at line 3"),
    ]
    assert v.warnings.by_type["formula-cell"] == 2
    [first] = [w for w in v.warnings.items if w.field_name == "maille_nom"]
    assert first.message == (
        "Line 5, column maille_nom: 1 text cell(s) start with =, +, -, @, tab or carriage return, "
        "the first '+33 6 00 00 00 00'; a spreadsheet would run them as formulas, so the "
        "published CSV writes them with a leading ' (the Parquet file keeps them as sent)")
    # the staged (Parquet) rows keep the text as sent; the published CSV escapes it
    staged = v.table
    assert staged["source_nom"][1].as_py() == '=HYPERLINK("http://x.example","clic")'
    published = render.csv_bytes(staged, header=True).to_pybytes().decode("utf-8")
    assert '"\'=HYPERLINK(""http://x.example"",""clic"")"' in published
    assert "\"'@SUM(1+1)\"" in published and "\"'-moins\"" in published


def test_validate__formula_in_a_numeric_column_is_a_type_error(real_dir):
    body = chiffres_with({(2, "cas_confirmes"): "=1+2", (4, "deces"): "-7"})
    v = assert_agrees(validate(body, load_registry().get("chiffres-cles"), load_cog(),
                               name="chiffres-cles.csv"))
    assert [(e.type, e.row_number, e.field_name, e.cell, e.note) for e in v.errors.items] == [
        ("type-error", 4, "cas_confirmes", "=1+2", "type is integer"),
        ("constraint-error", 6, "deces", "-7", "constraint minimum")]  # -7 read as a number
    assert "formula-cell" not in v.warnings.by_type


@pytest.mark.parametrize(("name", "path"), REAL_TEXT_FILES, ids=[p for _, p in REAL_TEXT_FILES])
def test_real_files__no_formula_cell_and_the_same_published_csv(real_dir, name, path):
    raw = (REAL / "opencovid19-fr" / "dist" / path).read_bytes()
    v = validate(raw, load_registry().get(name), load_cog(), name=path.rsplit("/", 1)[-1])
    assert v.table is not None and v.table.num_rows > 0
    assert "formula-cell" not in v.warnings.by_type
    assert render.neutralised(v.table) is v.table
