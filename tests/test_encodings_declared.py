"""Issue 13 item 2: encodings are decided honestly. A file is UTF-8 (BOM or not), UTF-16
(converted), or in the single-byte encoding its dataset declares (descriptor ``"encoding"``:
``cp1252`` or ``iso-8859-15``); without a declaration a file that is not UTF-8 is refused,
naming the line, byte offset and value of its first byte that is not, never guessed as CP1252.

Checked on the real Latin-1 files of Santé publique France (the regional ICU file of March 2022,
the June 2020 department indicators) and on the SPF column dictionaries (one wholly Latin-1, one
mixing UTF-8 and Latin-1 bytes)."""

from __future__ import annotations

import re

import pytest

from conftest import REAL
from infra.demo import collect_real
from opendepot.decode import Decoded, DecodeProblem, decode, decode_file
from opendepot.registry import (
    SINGLE_BYTE_ENCODINGS,
    RegistryError,
    load_cog,
    load_descriptor,
    load_registry,
    parse_dataset,
)
from opendepot.validate import validate

MAX = 1 << 30
INCID_REG = "covid-hospit-incid-reg"
INCID_REG_FILE = REAL / INCID_REG / "covid-hospit-incid-reg-2022-03-11-19h00.csv"
IND_DEP = "indicateurs-suivi-epidemie-covid-dep"
IND_DEP_FILE = (REAL / "indicateurs-suivi-epidemie" / "etalab-mirror" / "2020-06-16_c5b4a5d"
                / "table_indicateurs_open_data_dep.csv")
DICTIONARIES = REAL / "metadonnees-spf"


def undeclared(name: str):
    """The registered dataset ``name`` parsed from its descriptor without its ``encoding``."""
    descriptor = load_descriptor(name)
    assert descriptor.pop("encoding") == "cp1252"
    dataset = parse_dataset(descriptor)
    assert dataset.encoding is None
    return dataset


def not_utf8(byte: int, line: int, offset: int) -> str:
    return (f"the file is not UTF-8 text: byte {byte:#04x} at line {line} (byte offset {offset}) "
            "is not valid UTF-8, and the dataset does not declare a single-byte encoding (such "
            "as Windows-1252) for its files, so none is guessed: save the file as UTF-8 and "
            "upload it again")


# ------------------------------------------------------------------- the real Latin-1 files


def test_real_latin1_icu_file__refused_without_the_declaration_naming_line_offset_byte():
    raw = INCID_REG_FILE.read_bytes()
    v = validate(raw, undeclared(INCID_REG), load_cog(), name=f"{INCID_REG}/spf/x.csv")
    assert not v.accepted and v.table is None
    (error,) = v.errors.items
    assert (error.type, error.message) == ("encoding-error", not_utf8(0xE9, 2171, 57941))
    # the first non-ASCII byte of the file: the Latin-1 'é' of "La Réunion", line 2171
    assert re.search(rb"[\x80-\xff]", raw).start() == 57941
    assert raw.splitlines()[2170] == b'2020-03-19;"La R\xe9union";4;0'


def test_real_latin1_icu_file__accepted_with_its_accents_for_its_declared_dataset():
    dataset = load_registry().get(INCID_REG)
    assert dataset.encoding == "cp1252"
    v = validate(INCID_REG_FILE.read_bytes(), dataset, load_cog(), name=f"{INCID_REG}/spf/x.csv")
    assert v.accepted and v.decoded.encoding == "cp1252"
    assert (v.rows, v.rows_published, v.rows_left_out) == (13737, 13014, 723)  # 723 "NA" rows
    names = set(v.table.column("libelle").to_pylist())
    assert {"Auvergne-Rhône-Alpes", "La Réunion", "Provence-Alpes-Côte d'Azur",
            "Bourgogne-Franche-Comté"} <= names
    assert len(names) == 18
    assert not [n for n in names if "Ã" in n or "\ufffd" in n]  # no mojibake


def test_real_latin1_indicators_file__refused_undeclared_read_with_accents_declared():
    raw = IND_DEP_FILE.read_bytes()
    cog = load_cog()
    refused = validate(raw, undeclared(IND_DEP), cog, name=f"{IND_DEP}/spf/x.csv")
    (error,) = refused.errors.items
    assert (error.type, error.message) == ("encoding-error", not_utf8(0xF4, 2, 219))
    assert raw[219:220] == "ô".encode("cp1252")  # "Auvergne Rh\xf4ne Alpes", line 2 (dep 01)
    v = validate(raw, load_registry().get(IND_DEP), cog, name=f"{IND_DEP}/spf/x.csv")
    assert v.accepted and v.decoded.encoding == "cp1252"
    rows = v.table.to_pylist()
    by_dep = {r["dep"]: r for r in rows}
    assert by_dep["01"]["libelle_reg"] == "Auvergne Rhône Alpes"
    assert by_dep["69"]["libelle_dep"] == "Rhône"


def test_declared_datasets__exactly_those_whose_real_files_are_not_utf8(real_dir, tmp_path):
    registry = load_registry()
    declaring = {name for name, d in registry.datasets.items() if d.encoding}
    assert declaring == {INCID_REG, IND_DEP}
    assert {name for name in registry.datasets if "encoding" in load_descriptor(name)} == declaring
    files, _ = collect_real(real_dir)
    refused = {}
    for f in files:
        got = decode_file(str(f.path), max_bytes=MAX, workdir=str(tmp_path))
        if isinstance(got, DecodeProblem):
            assert got.type != "encoding-error" or f.dataset in declaring, (f.name, got)
            refused[f.name] = (f.dataset, got.type)
            if got.type == "encoding-error":  # read with the declared encoding instead
                declared = decode_file(str(f.path), max_bytes=MAX, workdir=str(tmp_path),
                                       encoding=registry.get(f.dataset).encoding)
                assert isinstance(declared, Decoded) and declared.encoding == "cp1252"
    assert refused == {
        "covid-hospit-incid-reg-2022-03-11-19h00.csv": (INCID_REG, "encoding-error"),
        "table_indicateurs_open_data_dep.csv": (IND_DEP, "encoding-error"),
    }


def test_real_dictionary_mixing_utf8_and_latin1__refused_even_with_a_declaration():
    raw = (DICTIONARIES / "metadonnees-donnees-hospitalieres-covid19-maj20210810.csv").read_bytes()
    where = ("the file mixes UTF-8 text (first at line 2, byte offset 66) with bytes that are "
             "not UTF-8 (first 0xe9 at line 5, byte offset 243)")
    assert raw[66:68] == "é".encode() and raw[243] == 0xE9
    assert decode(raw, max_bytes=MAX) == DecodeProblem(
        "encoding-error", f"{where}: save it all as UTF-8 and upload it again")
    assert decode(raw, max_bytes=MAX, encoding="cp1252") == DecodeProblem(
        "encoding-error",
        f"{where}; it is not read as Windows-1252 as a whole, which would publish every UTF-8 "
        "accent as mojibake: save it all as UTF-8 and upload it again")


def test_real_wholly_latin1_dictionary__no_break_space_named_then_read_when_declared():
    name = "metadonnees-donnees-hospitalieres-covid19-classes-age-maj20210810.csv"
    raw = (DICTIONARIES / name).read_bytes()
    assert decode(raw, max_bytes=MAX) == DecodeProblem("encoding-error", not_utf8(0xA0, 1, 12))
    got = decode(raw, max_bytes=MAX, encoding="cp1252")
    assert isinstance(got, Decoded) and got.header[1] == "Type\xa0"  # the header cell "Type "
    assert "réanimation" in got.data.decode()


# ------------------------------------------------------------------------- ISO-8859-15


def test_iso_8859_15__euro_sign_read_as_the_dataset_declares():
    raw = "dep;montant\n01;12 €\n".encode("iso-8859-15")
    assert raw.endswith(b"12 \xa4\n")  # 0xa4: the euro sign in ISO-8859-15
    got = decode(raw, max_bytes=MAX, encoding="iso-8859-15")
    assert isinstance(got, Decoded) and got.encoding == "iso-8859-15"
    assert got.data == "dep;montant\n01;12 €\n".encode()
    # the same bytes declared Windows-1252 are the currency sign: the declaration decides
    assert decode(raw, max_bytes=MAX, encoding="cp1252").data.decode().endswith("12 ¤\n")
    assert raw[18] == 0xA4
    assert decode(raw, max_bytes=MAX) == DecodeProblem("encoding-error", not_utf8(0xA4, 2, 18))


def test_iso_8859_15__c1_control_byte_refused_naming_it():
    raw = b"dep;montant\n01;12 \x80\n"  # 0x80: the euro sign of Windows-1252, a control here
    assert decode(raw, max_bytes=MAX, encoding="iso-8859-15") == DecodeProblem(
        "encoding-error",
        "the file is neither UTF-8 nor ISO-8859-15 text (byte 0x80 at line 2, byte offset 18)")
    assert decode(raw, max_bytes=MAX, encoding="cp1252").data.decode().endswith("12 €\n")


@pytest.mark.parametrize("chunk_bytes", [1, 2, 5, 4096])
def test_declared_encoding_streamed__same_at_every_chunk_size(tmp_path, chunk_bytes):
    body = "région;montant\r\n" + "Rhône;12 €\r\n" * 700 + "Réunion;3\r\n"
    raw = body.encode("iso-8859-15")
    path = tmp_path / "in.csv"
    path.write_bytes(raw)
    got = decode_file(str(path), max_bytes=MAX, workdir=str(tmp_path), chunk_bytes=chunk_bytes,
                      encoding="iso-8859-15")
    assert isinstance(got, Decoded) and got.path is not None
    with open(got.path, "rb") as f:
        assert f.read() == body.replace("\r\n", "\n").encode()
    assert (got.encoding, got.header) == ("iso-8859-15", ("région", "montant"))
    assert got.line_ends == {"lf": 0, "crlf": 702, "cr": 0, "crcrlf": 0}


# ------------------------------------------------------------------ the setting itself


def test_registry__unknown_encoding_refused_naming_the_key():
    descriptor = load_descriptor(INCID_REG)
    descriptor["encoding"] = "latin-1"
    with pytest.raises(RegistryError, match=re.escape(
            "encoding: expected one of cp1252, iso-8859-15, got 'latin-1'")):
        parse_dataset(descriptor, f"{INCID_REG}.json")
    descriptor["encoding"] = 1252
    with pytest.raises(RegistryError, match="encoding: expected text"):
        parse_dataset(descriptor, f"{INCID_REG}.json")
    descriptor["encoding"] = None  # null: as absent, UTF-8 and UTF-16 only
    assert parse_dataset(descriptor).encoding is None


def test_decode__every_registry_encoding_accepted_any_other_raises():
    raw = "nom\nRhône\n".encode("cp1252")
    for encoding in SINGLE_BYTE_ENCODINGS:
        got = decode(raw, max_bytes=MAX, encoding=encoding)
        assert isinstance(got, Decoded) and got.encoding == encoding
        assert got.data == "nom\nRhône\n".encode()
    with pytest.raises(ValueError, match="encoding must be one of cp1252, iso-8859-15 or None"):
        decode(raw, max_bytes=MAX, encoding="latin-1")


def test_utf8_files__unchanged_by_a_declaration():
    raw = "nom\nRhône\n".encode()
    for encoding in (None, *SINGLE_BYTE_ENCODINGS):
        got = decode(raw, max_bytes=MAX, encoding=encoding)
        assert isinstance(got, Decoded) and (got.encoding, got.data) == ("utf-8", raw)

