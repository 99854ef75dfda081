"""Input converters (``opendepot.formats``): YAML bulletins and Excel workbooks to CSV text.

Unit tests on bytes: synthetic bulletins for each quirk seen in the real opencovid19-fr files
(quoted and unquoted dates, CRLF, no final newline, comments, nulls, list or mapping blocks,
nested lists, key typos, ``COM-987``), and the real files' own defects."""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io

import pytest

from conftest import HOSP, REAL
from opendepot.decode import Decoded, DecodeProblem, decode
from opendepot.formats import convert
from opendepot.registry import load_cog, load_registry
from opendepot.validate import validate

CC = "chiffres-cles"
YAML_DIR = REAL / "opencovid19-fr"


@pytest.fixture(scope="module")
def cc():
    return load_registry().get(CC)


def rows(out: bytes | DecodeProblem | None) -> list[dict[str, str]]:
    assert isinstance(out, bytes), out
    return list(csv.DictReader(io.StringIO(out.decode("utf-8")), delimiter=";"))


def problem(out: bytes | DecodeProblem | None) -> str:
    assert isinstance(out, DecodeProblem), out
    assert out.type == "format-error"
    return out.message


MINISTRY = b"""date: 2020-04-15
source:
  nom: Minist\xc3\xa8re des Solidarit\xc3\xa9s et de la Sant\xc3\xa9
  # PDF confidentiel
donneesNationales:
  casConfirmes: 106206
  decesEhpad: 6524
"""


@pytest.mark.parametrize(
    "date_line", [b"date: 2020-04-15", b'date: "2020-04-15"', b"date: '2020-04-15'"])
def test_yaml_date_quoted_or_not__same_iso_date(cc, date_line):
    body = MINISTRY.replace(b"date: 2020-04-15", date_line)
    (row,) = rows(convert(body, f"{CC}/ministere-sante/2020-04-15.yaml", cc))
    assert row["date"] == "2020-04-15"
    assert (row["granularite"], row["maille_code"], row["maille_nom"]) == ("pays", "FRA", "France")
    assert (row["cas_confirmes"], row["deces_ehpad"], row["deces"]) == ("106206", "6524", "")
    assert row["source_nom"] == "Ministère des Solidarités et de la Santé"
    assert row["source_type"] == "ministere-sante"  # from the producer, declared in the registry


def test_yaml_crlf_no_final_newline_and_yml__same_rows_as_lf(cc):
    lf = rows(convert(MINISTRY, f"{CC}/ministere-sante/a.yaml", cc))
    crlf = MINISTRY.replace(b"\n", b"\r\n").rstrip(b"\r\n")
    assert rows(convert(crlf, f"{CC}/ministere-sante/a.yml", cc)) == lf


def test_gzipped_yaml__decoded_like_plain(cc):
    name = f"{CC}/ministere-sante/2020-04-15.yaml.gz"
    plain = convert(MINISTRY, name, cc)
    out = decode(gzip.compress(MINISTRY), max_bytes=1 << 20,
                 converter=lambda b: convert(b, name, cc))
    assert isinstance(out, Decoded) and out.compression == "gzip" and out.data == plain


def test_yaml_mapping_or_list_blocks_nulls_comments_and_nested_lists__one_row_per_area(cc):
    body = b"""date: "2020-03-24"
source:
  nom: ARS
  url: https://example.org/a.pdf
donneesRegionales:
  nom: Provence-Alpes-C\xc3\xb4te d'Azur
  code: REG-93
  casConfirmes: # pas de chiffre aujourd'hui
  hospitalise: 509
  reanimation: 133 # +10
donneesDepartementales:
- nom: Haut-Rhin
  code: DEP-68
  deces: 3
  victimes:
    - age: 91
      sexe: homme
      date: "2020-03-07"
- code: COM-987
  casConfirmes: 25
  donneesRegionales:
"""
    out = rows(convert(body, f"{CC}/ars-provence-alpes-cote-dazur/2020-03-24.yaml", cc))
    assert [(r["maille_code"], r["granularite"]) for r in out] == [
        ("REG-93", "region"), ("DEP-68", "departement"), ("COM-987", "collectivite-outremer")]
    paca, haut_rhin, polynesie = out
    assert (paca["cas_confirmes"], paca["hospitalises"], paca["reanimation"]) == ("", "509", "133")
    assert paca["maille_nom"] == "Provence-Alpes-Côte d'Azur"
    assert haut_rhin["deces"] == "3" and polynesie["maille_nom"] == ""
    assert {r["source_url"] for r in out} == {"https://example.org/a.pdf"}
    assert {r["source_type"] for r in out} == {"agences-regionales-sante"}


def test_yaml_unknown_key__rejected_naming_key_and_line(cc):
    body = MINISTRY + b"  hospitalisationsEnCours: 12\n"
    message = problem(convert(body, f"{CC}/ministere-sante/x.yaml", cc))
    assert "line 8" in message and "'hospitalisationsEnCours'" in message


def test_yaml_repeated_key__rejected_not_silently_overwritten(cc):
    body = MINISTRY + b"  casConfirmes: 106207\n"
    message = problem(convert(body, f"{CC}/ministere-sante/x.yaml", cc))
    assert "line 8" in message and "repeats the one on line 6" in message


def test_yaml_tab_line__rejected_as_invalid_yaml_naming_the_line(cc):
    body = MINISTRY + b"\t\n# next\n"
    message = problem(convert(body, f"{CC}/ministere-sante/x.yaml", cc))
    assert message.startswith("the file is not valid YAML: line 8, column 1:")
    assert "'\\t'" in message


def test_real_corse_bulletin__rejected_as_invalid_yaml_at_line_25(cc):
    raw = (YAML_DIR / "agences-regionales-sante" / "corse" / "2020-03-27.yaml").read_bytes()
    message = problem(convert(raw, f"{CC}/ars-corse/2020-03-27.yaml", cc))
    assert "not valid YAML: line 25, column 1" in message and "(line 25 is '\\t')" in message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"PK\x03\x04" + b"\x00" * 40, "is a ZIP archive (an Excel workbook?), not YAML text"),
        (b"{\\rtf1\\ansi\\ansicpg1252 hello}", "is an RTF document, not YAML text"),
        (b"date: 2020-04-15\ndonneesNationales: {deces: 1\n", "not valid YAML: line 3, column 1"),
        (b"date;maille_code;cas_confirmes\n2020-04-15;FRA;3\n",
         "not a bulletin: its top level is plain text"),
        (b"- 1\n- 2\n", "not a bulletin: its top level is a list"),
        (b"source:\n  nom: x\ndonneesNationales:\n  deces: 1\n", "no top-level 'date'"),
        (b"date: 2020-04-15\nsource:\n  nom: x\n", "has no figures"),
        (b"date: 2020-04-15\ndonneesNationale:\n  deces: 1\n",
         "top-level keys this dataset does not know: 'donneesNationale' (line 2)"),
        (b"date: 2020-04-15\ndonneesDepartementales:\n  - nom: Ain\n    deces: 1\n",
         "line 3: an area of donneesDepartementales has no code"),
        (b"date: 2020-04-15\ndonneesNationales:\n  deces: [1, 2]\n",
         "line 3: the value of 'deces' is a list"),
    ],
)
def test_file_not_a_bulletin__rejected_saying_what_it_is(cc, body, expected):
    assert expected in problem(convert(body, f"{CC}/ministere-sante/x.yaml", cc))


def test_yaml_for_a_dataset_without_bulletins__rejected():
    message = problem(convert(MINISTRY, f"{HOSP}/spf/x.yaml", load_registry().get(HOSP)))
    assert "takes no YAML bulletins" in message


def test_yaml_latin1_text__decoded_once_per_file_only_when_declared(cc):
    body = MINISTRY.decode("utf-8").encode("cp1252")
    name = f"{CC}/ministere-sante/x.yaml"
    assert cc.encoding is None  # the real bulletins are all UTF-8: nothing is guessed
    assert convert(body, name, cc) == DecodeProblem(
        "encoding-error",
        "the file is not UTF-8 text: byte 0xe8 at line 3 (byte offset 38) is not valid UTF-8, "
        "and the dataset does not declare a single-byte encoding (such as Windows-1252) for its "
        "files, so none is guessed: save the file as UTF-8 and upload it again",
    )
    assert body[38:39] == "è".encode("cp1252")  # "Ministère"
    (row,) = rows(convert(body, name, dataclasses.replace(cc, encoding="cp1252")))
    assert row["source_nom"] == "Ministère des Solidarités et de la Santé"
    mixed = body.replace(b"Sant\xe9", "Santé".encode())  # one UTF-8 accent: never mojibake
    problem = convert(mixed, name, dataclasses.replace(cc, encoding="cp1252"))
    assert isinstance(problem, DecodeProblem) and problem.message.startswith(
        "the file mixes UTF-8 text (first at line 3, byte offset 71) with bytes that are not "
        "UTF-8 (first 0xe8 at line 3, byte offset 38); it is not read as Windows-1252")
    assert mixed[71:73] == "é".encode()


def test_yaml_values_kept_as_written__typing_left_to_validation(cc):
    body = MINISTRY.replace(b"casConfirmes: 106206", b"casConfirmes: 12 personnes")
    v = validate(body, cc, load_cog(), name=f"{CC}/ministere-sante/x.yaml")
    assert not v.accepted
    (error,) = v.errors.items
    assert (error.type, error.field_name, error.cell) == (
        "type-error", "cas_confirmes", "12 personnes")


def test_yaml_name_without_producer__no_source_type(cc):
    (row,) = rows(convert(MINISTRY, "2020-04-15.yaml", cc))
    assert row["source_type"] == ""


def test_excel_workbook__still_converted_to_csv():
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["dep", "sexe", "jour", "hosp", "rea", "rad", "dc"])
    sheet.append(["01", "0", "2020-03-18", "2", "0", "1", "0"])
    sink = io.BytesIO()
    book.save(sink)
    out = convert(sink.getvalue(), f"{HOSP}/spf/x.xlsx", load_registry().get(HOSP))
    assert isinstance(out, bytes)
    assert out.decode().splitlines() == ["dep;sexe;jour;hosp;rea;rad;dc", "01;0;2020-03-18;2;0;1;0"]


def test_excel_workbook_saved_as_csv__rejected_with_an_excel_hint(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    book.active.append(["dep", "sexe", "jour", "hosp", "rea", "rad", "dc"])
    book.save(tmp_path / "hospital.csv")  # a workbook under a CSV name
    from opendepot.validate import validate_file

    v = validate_file(str(tmp_path / "hospital.csv"), load_registry().get(HOSP), load_cog(),
                      name=f"{HOSP}/spf/hospital.csv", workdir=str(tmp_path))
    assert not v.accepted and v.errors.by_type == {"format-error": 1}
    assert "ZIP archive, most likely an Excel workbook" in v.rejection
    assert ".xlsx" in v.rejection


def test_converted_upload__report_says_so_not_an_encoding(real_dir, capsys):
    from opendepot.cli import main

    path = real_dir / "opencovid19-fr" / "prefectures" / "02" / "2020-03-09.yaml"
    assert main(["validate", str(path), "--dataset", CC]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "  read as a workbook or YAML bulletin, converted to CSV"
    assert main(["validate", str(path), "--dataset", CC, "--json"]) == 0
    assert '"converted": true' in capsys.readouterr().out


def test_csv__not_converted(cc):
    assert convert(b"date,maille_code\n", f"{CC}/opencovid19-fr/chiffres-cles.csv", cc) is None
