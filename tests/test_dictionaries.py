"""Santé publique France's column dictionaries (``metadonnees-spf/``) against the registry.

The dictionaries are read as the real files they are: UTF-8 with a BOM, Latin-1, one file that
mixes UTF-8 and Latin-1 bytes, CRLF, trailing ``;;;;`` rows, a ``Type`` header cell ending in a
space or a no-break space, and one "CSV" that is an RTF document (the sex codes). Each documented
column's French description must be found in the registry field's description (the registry adds
to it, never contradicts it), and where the dictionary's type is wrong (``dep`` as an integer) the
field keeps the right type and its description says the dictionary is wrong.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pytest

from opendepot.decode import DecodeProblem, decode
from opendepot.registry import Dataset, Field, load_registry

STOCK = "donnees-hospitalieres-covid19"
DICTIONARIES = {
    # file -> (dataset it documents, how its bytes are encoded)
    "metadonnees-donnees-hospitalieres-covid19-maj20210810.csv": (STOCK, "utf-8+cp1252"),
    "metadonnees-donnees-hospitalieres-covid19-classes-age-maj20210810.csv": (
        "donnees-hospitalieres-classe-age-covid19", "cp1252"),
    "metadonnees-hospit-incid.csv": ("donnees-hospitalieres-nouveaux-covid19", "utf-8-sig"),
    "metadonnees-services-hospitaliers-covid19.csv": (
        "donnees-hospitalieres-etablissements-covid19", "utf-8-sig"),
    "metadonnees-covid-hospit-incid-reg.csv": ("covid-hospit-incid-reg", "utf-8-sig"),
}
SEX_CODES = "metadonnees-sexe.csv"
"""An RTF document named .csv: the codes of ``sexe`` (documents the stock dataset)."""
HOSPITAL_FAMILY = (
    STOCK,
    "donnees-hospitalieres-nouveaux-covid19",
    "donnees-hospitalieres-classe-age-covid19",
    "donnees-hospitalieres-classe-age-hebdo-covid19",
    "donnees-hospitalieres-etablissements-covid19",
    "covid-hospit-incid-reg",
    "covid-hosp-txad",
    "donnees-hospitalieres-groupees-covid19",
)
DICTIONARY_TYPES = {"integer": "integer", "string": "string", "string($date)": "date"}
"""SPF's type words -> Table Schema types (``string($date)`` is a date written as text)."""


# --- a robust reader --------------------------------------------------------------------------


def decode_text(raw: bytes) -> tuple[str, str]:
    """Text and how it was decoded: ``utf-8-sig``, ``utf-8``, ``cp1252`` (no valid UTF-8
    multi-byte sequence at all) or ``utf-8+cp1252`` (valid UTF-8 sequences and stray Latin-1
    bytes in one file: each invalid byte is read as CP1252)."""
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8"), "utf-8-sig"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    parts, rest = [], raw
    while rest:
        try:
            parts.append(rest.decode("utf-8"))
            rest = b""
        except UnicodeDecodeError as exc:
            parts.append(rest[: exc.start].decode("utf-8"))
            parts.append(rest[exc.start : exc.end].decode("cp1252"))
            rest = rest[exc.end :]
    mixed = re.search(rb"[\xc2-\xf4][\x80-\xbf]", raw) is not None
    return "".join(parts), "utf-8+cp1252" if mixed else "cp1252"


@dataclass(frozen=True)
class Entry:
    """One documented column."""

    column: str
    type: str
    description_fr: str
    description_en: str
    example: str


def read_dictionary(raw: bytes) -> tuple[list[Entry], str]:
    """The documented columns of an SPF dictionary, and its encoding."""
    text, encoding = decode_text(raw)
    rows = list(csv.reader(io.StringIO(text.replace("\r\n", "\n")), delimiter=";"))
    header = [c.strip() for c in rows[0]]  # "Type " and "Type\xa0" -> "Type"
    assert header == ["Colonne", "Type", "Description_FR", "Description_EN", "Exemple"], header
    entries = []
    for row in rows[1:]:
        cells = [c.strip() for c in row] + [""] * (len(header) - len(row))
        if not any(cells):  # the trailing ";;;;" rows
            continue
        entries.append(Entry(*cells[: len(header)]))
    return entries, encoding


def rtf_lines(text: str) -> list[str]:
    """The plain-text lines of a simple RTF document."""
    text = re.sub(r"\{\\(?:fonttbl|colortbl|\*)[^{}]*\}", "", text)  # groups without text
    text = re.sub(r"\\'([0-9a-fA-F]{2})",  # \'e9: a CP1252 byte in hex
                  lambda m: bytes([int(m.group(1), 16)]).decode("cp1252"), text)
    text = re.sub(r"\\\r?\n", "\n", text)  # a backslash ending a line is a paragraph break
    text = re.sub(r"\\[a-zA-Z]+-?\d* ?", "", text)  # control words
    text = text.replace("{", "").replace("}", "").replace("\r", "\n")
    return [line.strip() for line in text.split("\n") if line.strip()]


def fold(text: str) -> str:
    """Compare texts without case, accents, repeated spaces or a final full stop."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"\s+", " ", text).strip().rstrip(".").casefold()


def field_for(dataset: Dataset, column: str) -> Field:
    """The registry field a documented column is, by name (case-insensitive) or alias."""
    by_lower = {f.name.lower(): f.name for f in dataset.fields}
    name = by_lower.get(column.lower()) or dataset.aliases.get(column.lower())
    assert name is not None, f"{dataset.name}: documented column {column!r} is not in the schema"
    return dataset.field(name)


@pytest.fixture(scope="module")
def metadata_dir(real_dir) -> Path:
    return real_dir / "metadonnees-spf"


# --- tests ------------------------------------------------------------------------------------


def test_dictionary_folder__every_file_is_checked_here(metadata_dir):
    assert {p.name for p in metadata_dir.iterdir()} == {*DICTIONARIES, SEX_CODES}


@pytest.mark.parametrize("name", sorted(DICTIONARIES))
def test_dictionary__read_with_its_own_encoding_without_mojibake(metadata_dir, name):
    entries, encoding = read_dictionary((metadata_dir / name).read_bytes())
    assert encoding == DICTIONARIES[name][1]
    assert entries and all(e.column and e.description_fr for e in entries)
    for e in entries:
        assert "\ufffd" not in e.description_fr and "Ã" not in e.description_fr, e
    accented = " ".join(e.description_fr for e in entries)
    assert re.search(r"[éèà]", accented), "accented French letters expected"


@pytest.mark.parametrize("name", sorted(DICTIONARIES))
def test_documented_columns__registry_description_carries_spf_french_text(metadata_dir, name):
    dataset = load_registry().get(DICTIONARIES[name][0])
    assert dataset is not None
    entries, _ = read_dictionary((metadata_dir / name).read_bytes())
    for e in entries:
        f = field_for(dataset, e.column)
        description = f.descriptor.get("description", "")
        assert fold(e.description_fr) in fold(description), (name, e.column, description)


@pytest.mark.parametrize("name", sorted(DICTIONARIES))
def test_wrong_dictionary_types__schema_keeps_the_right_type_and_says_so(metadata_dir, name):
    dataset = load_registry().get(DICTIONARIES[name][0])
    assert dataset is not None
    entries, _ = read_dictionary((metadata_dir / name).read_bytes())
    for e in entries:
        f = field_for(dataset, e.column)
        said = DICTIONARY_TYPES[e.type]
        if said != f.type:
            description = f.descriptor["description"]
            assert "dictionnaire SPF" in description, (name, e.column, said, f.type)
            assert "dictionary" in f.descriptor["en"]["description"], (name, e.column)
    # the known wrong ones: codes kept as text, a count kept as an integer
    wrong = {field_for(dataset, e.column).name for e in entries
             if DICTIONARY_TYPES[e.type] != field_for(dataset, e.column).type}
    assert wrong == {
        STOCK: {"dep"},
        "donnees-hospitalieres-classe-age-covid19": {"reg", "cl_age90"},
        "donnees-hospitalieres-nouveaux-covid19": {"dep", "incid_hosp"},
        "donnees-hospitalieres-etablissements-covid19": {"dep"},
        "covid-hospit-incid-reg": {"reg"},
    }[dataset.name]


def test_sex_codes_rtf__read_as_text_and_match_the_sexe_field(metadata_dir):
    raw = (metadata_dir / SEX_CODES).read_bytes()
    assert raw.startswith(b"{\\rtf1")
    lines = rtf_lines(raw.decode("cp1252"))
    rows = [[c.strip() for c in line.split(";")] for line in lines]
    assert rows[0] == ["Code", "Sexe"]
    codes = dict(rows[1:])
    assert codes == {"0": "femmes + hommes", "1": "hommes", "2": "femmes"}
    sexe = load_registry().get(STOCK).field("sexe")
    assert sexe.constraints["enum"] == [int(c) for c in codes]
    for code, meaning in codes.items():
        assert f"{code} = {meaning}" in sexe.descriptor["description"]


def test_sex_codes_rtf__rejected_as_data_with_a_report_that_says_rtf(metadata_dir):
    problem = decode((metadata_dir / SEX_CODES).read_bytes(), max_bytes=1 << 20)
    assert isinstance(problem, DecodeProblem)
    assert problem.type == "format-error" and "RTF" in problem.message


@pytest.mark.parametrize("name", HOSPITAL_FAMILY)
def test_every_hospital_field__titled_and_described_in_french_and_english(name):
    dataset = load_registry().get(name)
    assert dataset is not None
    for f in dataset.fields:
        d = f.descriptor
        assert d.get("title") and d.get("description"), (name, f.name)
        en = d.get("en", {})
        assert en.get("title") and en.get("description"), (name, f.name)
        assert en["description"] != d["description"], (name, f.name)
