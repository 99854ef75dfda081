"""Streaming decode (``decode_file``, the production decoder): the result of the former
in-memory decoder (the oracle ``tests/oracles.py``) on the same bytes, from a file.

Every real file and every case file, plain and gzipped, through chunks of every size from the
default down to 7 bytes (so chunk ends fall inside CR CR LF, CRLF and UTF-8 characters); the
boundary cases with their real expected values; and a property test on random bytes, random
gzip damage and random chunk sizes."""

from __future__ import annotations

import dataclasses
import gzip
import os
import tempfile
from pathlib import Path

import pyarrow.csv as pacsv
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracles import decode

from conftest import CASES, HOSP, REAL
from opendepot.decode import BOM, Decoded, DecodeProblem, decode_file
from opendepot.formats import convert, convertible
from opendepot.registry import load_registry

MAX = 1 << 30
CC = "chiffres-cles"  # the dataset that takes YAML bulletins: every converter path is exercised
FILES = sorted(
    p for root in (REAL, CASES) for p in root.rglob("*") if p.is_file() and p.suffix != ".md"
)


@pytest.fixture(scope="module")
def cc():
    return load_registry().get(CC)


def streamed(path: Path, workdir: Path, *, name: str = "x.csv", dataset=None,
             max_bytes: int = MAX, chunk_bytes: int = 16 << 20,
             encoding: str | None = None) -> Decoded | DecodeProblem:
    return decode_file(str(path), max_bytes=max_bytes, workdir=str(workdir),
                       converter=lambda b: convert(b, name, dataset),
                       convertible=convertible(name), chunk_bytes=chunk_bytes,
                       encoding=encoding)


def in_memory(raw: bytes, *, name: str = "x.csv", dataset=None, max_bytes: int = MAX,
              encoding: str | None = None) -> Decoded | DecodeProblem:
    return decode(raw, max_bytes=max_bytes, converter=lambda b: convert(b, name, dataset),
                  encoding=encoding)


def text_of(decoded: Decoded) -> bytes:
    if decoded.data is not None:
        return decoded.data
    assert decoded.path is not None
    return Path(decoded.path).read_bytes()


def assert_same(got: Decoded | DecodeProblem, expected: Decoded | DecodeProblem) -> None:
    """Same problem, or same fields with the text behind ``path`` equal to ``data``."""
    if isinstance(expected, DecodeProblem):
        assert got == expected
        return
    assert isinstance(got, Decoded), got
    assert (got.data is None) != (got.path is None)
    assert dataclasses.replace(got, data=text_of(got), path=None) == expected


def write(directory: Path, name: str, body: bytes) -> Path:
    path = directory / name
    path.write_bytes(body)
    return path


def test_shared_data__every_file_is_listed():
    assert len(FILES) >= 75  # 61 real files besides SOURCES.md, 18 case files besides CASES.md
    assert {p.suffix for p in FILES} == {".csv", ".json", ".yaml", ".yml"}


def file_id(path: Path) -> str:
    return str(path.relative_to(REAL.parent))


@pytest.mark.e2e
@pytest.mark.parametrize(("chunk_bytes", "encoding"),
                         [(16 << 20, None), (4096, "cp1252"), (7, "cp1252")])
@pytest.mark.parametrize("path", FILES, ids=file_id)
def test_every_shared_file__same_as_decode(path, chunk_bytes, encoding, tmp_path, cc):
    # the Latin-1 files: refused without a declared encoding, read as CP1252 with one
    name = f"{CC}/{path.parent.name}/{path.name}"
    expected = in_memory(path.read_bytes(), name=name, dataset=cc, encoding=encoding)
    got = streamed(path, tmp_path, name=name, dataset=cc, chunk_bytes=chunk_bytes,
                   encoding=encoding)
    assert_same(got, expected)
    if isinstance(got, Decoded) and got.path is not None and got.path != str(path):
        assert Path(got.path).parent == tmp_path


@pytest.mark.e2e
@pytest.mark.parametrize(("chunk_bytes", "encoding"), [(16 << 20, None), (4096, "cp1252")])
@pytest.mark.parametrize("path", FILES, ids=file_id)
def test_every_shared_file_gzipped__same_as_decode(path, chunk_bytes, encoding, tmp_path, cc):
    name = f"{CC}/{path.parent.name}/{path.name}.gz"
    body = gzip.compress(path.read_bytes(), mtime=0)
    (tmp_path / "in").mkdir()
    source = write(tmp_path / "in", path.name + ".gz", body)
    expected = in_memory(body, name=name, dataset=cc, encoding=encoding)
    got = streamed(source, tmp_path, name=name, dataset=cc, chunk_bytes=chunk_bytes,
                   encoding=encoding)
    assert_same(got, expected)
    if isinstance(got, Decoded):
        assert got.compression == "gzip" and got.bytes == len(body)
    assert os.listdir(tmp_path / "in") == [path.name + ".gz"]  # never writes beside the input


def test_real_yaml_bulletin_gzipped__converted_then_read_from_disk(tmp_path, cc):
    yaml = REAL / "opencovid19-fr" / "ministere-sante" / "2020-04-15.yaml"
    name = f"{CC}/ministere-sante/2020-04-15.yaml.gz"
    body = gzip.compress(yaml.read_bytes())
    got = streamed(write(tmp_path, "b.yaml.gz", body), tmp_path, name=name, dataset=cc)
    assert isinstance(got, Decoded) and got.path is not None and got.data is None
    assert got.converted and (got.compression, got.bytes, got.delimiter) == ("gzip", len(body), ";")
    assert got.header[:3] == ("date", "granularite", "maille_code")
    # the gunzipped copy is gone; the converted CSV text is the one file left beside the input
    assert sorted(os.listdir(tmp_path)) == ["b.yaml.gz", Path(got.path).name]


def test_decode__the_production_decoder_on_bytes_text_in_memory(tmp_path):
    from opendepot.decode import decode as production

    raw = "région;dép\r\nRhône;01\r\n".encode("cp1252")
    got = production(raw, max_bytes=MAX, encoding="cp1252")
    assert isinstance(got, Decoded) and got.path is None
    assert got.data == "région;dép\nRhône;01\n".encode()
    assert got == decode(raw, max_bytes=MAX, encoding="cp1252")


def test_without_convertible__converter_never_called(tmp_path):
    def converter(raw: bytes) -> bytes:
        raise AssertionError("called")

    path = write(tmp_path, "a.yaml", b"date: 2020-04-15\n")
    got = decode_file(str(path), max_bytes=MAX, workdir=str(tmp_path), converter=converter)
    assert isinstance(got, Decoded) and got.header == ("date: 2020-04-15",)


# ----------------------------------------------------------------- boundaries, real values


def test_lf_only_utf8__text_is_the_input_file_itself(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    body = "dep;jour;nom\n01;2020-03-18;Ain é\n".encode() * 3000
    path = write(tmp_path, "in.csv", body)
    got = decode_file(str(path), max_bytes=MAX, workdir=str(work), chunk_bytes=4096)
    assert isinstance(got, Decoded) and got.path == str(path) and got.data is None
    assert (got.encoding, got.delimiter, got.header) == ("utf-8", ";", ("dep", "jour", "nom"))
    assert got.line_ends == {"lf": 6000, "crlf": 0, "cr": 0, "crcrlf": 0}
    assert got.bytes == len(body)
    assert os.listdir(work) == []


def test_bom_crlf__normalised_copy_in_workdir_only(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    path = write(tmp_path, "in.csv", b"\xef\xbb\xbf\"dep\",\"jour\"\r\n01,2020-03-18\r\n")
    got = decode_file(str(path), max_bytes=MAX, workdir=str(work), chunk_bytes=5)
    assert isinstance(got, Decoded) and got.path is not None
    assert Path(got.path).parent == work and os.listdir(tmp_path) == ["in.csv", "work"]
    assert Path(got.path).read_bytes() == b'"dep","jour"\n01,2020-03-18\n'
    assert (got.encoding, got.delimiter, got.header) == ("utf-8-sig", ",", ("dep", "jour"))
    assert got.line_ends == {"lf": 0, "crlf": 2, "cr": 0, "crcrlf": 0}


def test_stray_latin1_byte_in_the_last_chunk_of_utf8__refused_never_mojibake(tmp_path):
    # issue 13: one stray Latin-1 byte used to make the whole file CP1252 ("SaÃ´ne-et-Loire")
    body = b"dep;nom\n" + "01;Saône-et-Loire\n".encode() * 1000 + b"02;Ard\xe8che\n"
    path = write(tmp_path, "in.csv", body)
    assert len(body) - body.index(b"\xe8") < 4096  # in the last 4096-byte chunk
    got = decode_file(str(path), max_bytes=MAX, workdir=str(tmp_path), chunk_bytes=4096,
                      encoding="cp1252")
    assert got == DecodeProblem(
        "encoding-error",
        "the file mixes UTF-8 text (first at line 2, byte offset 13) with bytes that are not "
        "UTF-8 (first 0xe8 at line 1002, byte offset 19014); it is not read as Windows-1252 as "
        "a whole, which would publish every UTF-8 accent as mojibake: save it all as UTF-8 and "
        "upload it again",
    )
    assert body[13:15] == "ô".encode() and body[19014] == 0xE8
    assert got == decode(body, max_bytes=MAX, encoding="cp1252")
    assert os.listdir(tmp_path) == ["in.csv"]
    # for a dataset without a declared encoding: the same places, no word of Windows-1252
    undeclared = decode_file(str(path), max_bytes=MAX, workdir=str(tmp_path), chunk_bytes=4096)
    assert undeclared == DecodeProblem(
        "encoding-error",
        "the file mixes UTF-8 text (first at line 2, byte offset 13) with bytes that are not "
        "UTF-8 (first 0xe8 at line 1002, byte offset 19014): save it all as UTF-8 and upload "
        "it again",
    )
    assert undeclared == decode(body, max_bytes=MAX)


def test_latin1_file_with_utf8_only_after_its_first_latin1_byte__refused(tmp_path):
    body = b"dep;nom\n02;Ard\xe8che\n" + b"01;Ain\n" * 2000 + "03;Allier é\n".encode()
    got = decode_file(str(write(tmp_path, "in.csv", body)), max_bytes=MAX,
                      workdir=str(tmp_path), chunk_bytes=4096, encoding="cp1252")
    assert isinstance(got, DecodeProblem) and got.type == "encoding-error"
    utf8_at = body.index("é".encode())
    assert got.message.startswith(f"the file mixes UTF-8 text (first at line 2003, byte offset "
                                  f"{utf8_at}) with bytes that are not UTF-8 "
                                  f"(first 0xe8 at line 2, byte offset 14)")
    assert got == decode(body, max_bytes=MAX, encoding="cp1252")


def test_wholly_cp1252_file__read_as_cp1252_when_declared(tmp_path):
    body = b"dep;nom\n" + b"01;Ain\n" * 2000 + "02;Ardèche;Saône\n".encode("cp1252")
    got = decode_file(str(write(tmp_path, "in.csv", body)), max_bytes=MAX,
                      workdir=str(tmp_path), chunk_bytes=4096, encoding="cp1252")
    assert isinstance(got, Decoded) and got.encoding == "cp1252"
    assert text_of(got).endswith("02;Ardèche;Saône\n".encode())


def test_undefined_cp1252_byte_in_the_last_chunk__absolute_offset(tmp_path):
    body = b"dep;nom\n" + b"01;Ain\n" * 2000 + b"02;\x81\n"
    path = write(tmp_path, "in.csv", body)
    got = decode_file(str(path), max_bytes=MAX, workdir=str(tmp_path), chunk_bytes=4096,
                      encoding="cp1252")
    assert got == DecodeProblem(
        "encoding-error",
        "the file is neither UTF-8 nor Windows-1252 text (byte 0x81 at line 2002, "
        "byte offset 14011)",
    )
    assert got == decode(body, max_bytes=MAX, encoding="cp1252")
    assert os.listdir(tmp_path) == ["in.csv"]


def test_bom_file_not_utf8__line_and_offset_from_the_file_start(tmp_path):
    body = b"\xef\xbb\xbfdep;nom\n" + b"01;Ain\n" * 1000 + b"02;Ard\xe8che\n"
    path = write(tmp_path, "in.csv", body)
    got = decode_file(str(path), max_bytes=MAX, workdir=str(tmp_path), chunk_bytes=1000)
    assert got == DecodeProblem(
        "encoding-error",
        "the file starts with a UTF-8 byte order mark but is not UTF-8: byte 0xe8 at line 1002 "
        "(byte offset 7017) is not valid UTF-8; save it as UTF-8",
    )
    assert body[7017] == 0xE8
    assert got == decode(body, max_bytes=MAX) and os.listdir(tmp_path) == ["in.csv"]


@pytest.mark.parametrize("pad", range(4))
@pytest.mark.parametrize("chunk_bytes", range(1, 9))
def test_cr_cr_lf_cut_at_every_chunk_boundary__counted_once(tmp_path, pad, chunk_bytes):
    body = b"x" * pad + b"a;b\r\r\nc;d\r\r\n\xc3\xa9;\xe2\x82\xac\r\r\n"
    path = write(tmp_path, "in.csv", body)
    got = decode_file(str(path), max_bytes=MAX, workdir=str(tmp_path), chunk_bytes=chunk_bytes)
    assert isinstance(got, Decoded)
    assert text_of(got) == b"x" * pad + "a;b\nc;d\né;€\n".encode()
    assert got.line_ends == {"lf": 0, "crlf": 0, "cr": 0, "crcrlf": 3}
    assert (got.encoding, got.header) == ("utf-8", ("x" * pad + "a", "b"))


@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 4, 5, 4096])
def test_run_of_crs_before_lf__decode_quirk_reproduced(tmp_path, chunk_bytes):
    # decode replaces CR CR LF, then CRLF only if the file has a plain CRLF, then CR: a run of
    # 3+ CRs before LF is one line end fewer when a CRLF comes anywhere, even much later
    alone = b"a\r\r\r\nb\nc"
    later = b"a\r\r\r\nb\n" + b"c\n" * 50 + b"d\r\n"
    for body, text in [(alone, b"a\n\nb\nc"), (later, b"a\nb\n" + b"c\n" * 50 + b"d\n")]:
        got = decode_file(str(write(tmp_path, "in.csv", body)), max_bytes=MAX,
                          workdir=str(tmp_path), chunk_bytes=chunk_bytes)
        assert isinstance(got, Decoded) and text_of(got) == text
        assert_same(got, decode(body, max_bytes=MAX))


def test_gzip_past_the_limit__stops_with_decode_problem(tmp_path):
    body = gzip.compress(b"dep;jour\n" + b"01;2020-03-18\n" * 100_000, mtime=0)
    path = write(tmp_path, "in.csv.gz", body)
    work = tmp_path / "work"
    work.mkdir()
    got = decode_file(str(path), max_bytes=1_000_000, workdir=str(work), chunk_bytes=4096)
    assert got == DecodeProblem(
        "source-error",
        f"the {len(body)}-byte gzip file expands past the size limit of 1000000 bytes once "
        "decompressed; it was not read further",
    )
    assert got == decode(body, max_bytes=1_000_000) and os.listdir(work) == []


def test_gzip_exactly_at_the_limit__decoded(tmp_path):
    text = b"dep;jour\n" + b"01;2020-03-18\n" * 1000
    path = write(tmp_path, "in.csv.gz", gzip.compress(text))
    got = decode_file(str(path), max_bytes=len(text), workdir=str(tmp_path), chunk_bytes=100)
    assert isinstance(got, Decoded) and got.compression == "gzip" and text_of(got) == text
    assert got.path != str(path) and Path(got.path).parent == tmp_path


def test_corrupt_gzip__where_zlib_stops_as_decode(tmp_path):
    body = bytearray(gzip.compress(b"dep;jour\n" + b"01;2020-03-18\n" * 1000, mtime=0))
    body[12] ^= 0xFF  # inside the first deflate block
    path = write(tmp_path, "in.csv.gz", bytes(body))
    got = decode_file(str(path), max_bytes=MAX, workdir=str(tmp_path), chunk_bytes=16)
    assert isinstance(got, DecodeProblem) and got.type == "source-error"
    assert got.message.startswith("the gzip stream is corrupt: reading stops at byte ")
    assert "(Error -3 while decompressing data: " in got.message
    assert got == decode(bytes(body), max_bytes=MAX) and os.listdir(tmp_path) == ["in.csv.gz"]


def test_corrupt_gzip_checksum__refused_at_the_crc_with_lines_decoded(tmp_path):
    body = bytearray(gzip.compress(b"dep;jour\n01;2020-03-18\n", mtime=0))
    body[-6] ^= 0x01  # the CRC-32 of the trailer
    path = write(tmp_path, "in.csv.gz", bytes(body))
    got = decode_file(str(path), max_bytes=MAX, workdir=str(tmp_path), chunk_bytes=3)
    assert got == DecodeProblem(
        "source-error",
        f"the gzip stream is corrupt: reading stops at byte {len(body) - 5} of the compressed "
        "file (Error -3 while decompressing data: incorrect data check); 2 complete lines were "
        "decoded before it, the last one (line 2) '01;2020-03-18'; nothing was read: upload the "
        "file again",
    )
    assert got == decode(bytes(body), max_bytes=MAX)


@pytest.mark.parametrize("chunk_bytes", [1, 7, 4096])
def test_truncated_gzip__refused_naming_where_it_ends(tmp_path, chunk_bytes):
    text = b"dep;jour\n" + b"01;2020-03-18\n" * 1000
    body = gzip.compress(text, mtime=0)[:-12]  # the trailer and the last bytes of deflate data
    path = write(tmp_path, "in.csv.gz", body)
    got = decode_file(str(path), max_bytes=MAX, workdir=str(tmp_path), chunk_bytes=chunk_bytes)
    assert isinstance(got, DecodeProblem) and got.type == "source-error"
    assert got.message.startswith(f"the gzip stream is cut short: it ends at byte {len(body)} "
                                  "of the compressed file, before the end of its data")
    assert "the last one (line " in got.message and "'01;2020-03-18'" in got.message
    assert got == decode(body, max_bytes=MAX) and os.listdir(tmp_path) == ["in.csv.gz"]


@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 4096])
def test_corrupt_checksum_just_past_the_limit__corrupt_as_decode(tmp_path, chunk_bytes):
    # zlib reads past the last byte allowed to the next symbol (here: the end of the stream and
    # its checksum) before it stops, so decode finds the damage rather than the size
    text = b"dep;jour\n" + b"01;2020-03-18\n" * 20
    body = bytearray(gzip.compress(text, mtime=0))
    body[-6] ^= 0x01
    path = write(tmp_path, "in.csv.gz", bytes(body))
    got = decode_file(str(path), max_bytes=len(text) - 1, workdir=str(tmp_path),
                      chunk_bytes=chunk_bytes)
    assert isinstance(got, DecodeProblem)
    assert got.message.startswith(f"the gzip stream is corrupt: reading stops at byte "
                                  f"{len(body) - 5} of the compressed file (Error -3 while "
                                  "decompressing data: incorrect data check); 21 complete lines")
    assert got == decode(bytes(body), max_bytes=len(text) - 1)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b" \r\n\t\n", DecodeProblem("source-error", "the file is empty")),
        (gzip.compress(b"\n\n"), DecodeProblem("source-error", "the file is empty")),
        (b"a;b\n\x00\x01", DecodeProblem("format-error", "the file is not text: it contains a "
                                                          "NUL byte (line 2, byte offset 4)")),
        (b"\xef\xbb\xbf\r\n {\\rtf1\\ansi", DecodeProblem("format-error",
                                                          "the file is an RTF document, not CSV")),
    ],
)
def test_checks_before_encoding__same_problems(tmp_path, body, problem):
    got = decode_file(str(write(tmp_path, "in", body)), max_bytes=MAX, workdir=str(tmp_path),
                      chunk_bytes=2)
    assert got == problem == decode(body, max_bytes=MAX)


def test_rtf_after_blank_chunks__found(tmp_path):
    body = b" " * 100_000 + b"{\\rtf1"
    got = decode_file(str(write(tmp_path, "in", body)), max_bytes=MAX, workdir=str(tmp_path))
    assert got == DecodeProblem("format-error", "the file is an RTF document, not CSV")


def test_source__pyarrow_reads_the_same_table_in_memory_and_on_disk(tmp_path):
    path = REAL / HOSP / f"{HOSP}-2020-11-07-19h00.csv"
    raw = path.read_bytes()
    memory, disk = decode(raw, max_bytes=MAX), decode_file(str(path), max_bytes=MAX,
                                                           workdir=str(tmp_path))
    assert isinstance(memory, Decoded) and isinstance(disk, Decoded)
    options = pacsv.ParseOptions(delimiter=memory.delimiter)
    with disk.source() as source:
        table = pacsv.read_csv(source, parse_options=options)
    assert table.equals(pacsv.read_csv(memory.source(), parse_options=options))
    assert table.num_rows == sum(memory.line_ends.values()) - 1


def test_decoded__holds_data_or_path_never_both():
    fields = {"encoding": "utf-8", "compression": None, "delimiter": None, "header": (),
              "line_ends": {}, "bytes": 0}
    with pytest.raises(ValueError, match="exactly one"):
        Decoded(data=None, **fields)
    with pytest.raises(ValueError, match="exactly one"):
        Decoded(data=b"", path="x", **fields)


# ---------------------------------------------------------------------------- properties

TOKENS = [b"a", b"1", b";", b",", b"\t", b'"', b" ", b"\n", b"\r", b"\r\n", b"\r\r\n",
          b"\xc3\xa9", b"\xe2\x82\xac", b"\xf0\x9f\x98\x80", b"\xe9", b"\x81", b"\xc3",
          BOM, b"\x00", b"{\\rtf", b"\x0b"]
bodies = st.one_of(
    st.binary(max_size=80),
    st.lists(st.one_of(st.sampled_from(TOKENS), st.binary(max_size=2)), max_size=80).map(b"".join),
)


@st.composite
def uploads(draw) -> tuple[bytes, int]:
    """(object bytes, max_bytes): plain text, or gzip whole, cut, damaged or followed by more."""
    body = draw(bodies)
    how = draw(st.sampled_from(["plain", "bom", "gzip", "cut", "damaged", "trailing"]))
    if how == "plain":
        return body, MAX
    if how == "bom":
        return BOM + body, MAX
    packed = bytearray(gzip.compress(body, compresslevel=draw(st.sampled_from([0, 1, 9])),
                                     mtime=0))
    if how == "cut":
        packed = packed[: draw(st.integers(2, len(packed)))]
        return bytes(packed), draw(st.sampled_from([MAX, len(body)]))
    elif how == "damaged":
        where = draw(st.integers(2, len(packed) - 1))
        packed[where] ^= draw(st.integers(1, 255))
    elif how == "trailing":
        packed += draw(st.sampled_from([b"", gzip.compress(b"more")])) + draw(st.binary())
    return bytes(packed), draw(st.integers(0, len(body) + 2))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(upload=uploads(), chunk_bytes=st.integers(1, 12),
       encoding=st.sampled_from([None, "cp1252", "iso-8859-15"]))
def test_random_bytes_and_chunks__decode_file_agrees_with_decode(upload, chunk_bytes, encoding):
    raw, max_bytes = upload
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory, "in")
        path.write_bytes(raw)
        got = decode_file(str(path), max_bytes=max_bytes, workdir=directory,
                          chunk_bytes=chunk_bytes, encoding=encoding)
        assert_same(got, decode(raw, max_bytes=max_bytes, encoding=encoding))
        kept = {"in"} | ({Path(got.path).name} if isinstance(got, Decoded) else set())
        assert set(os.listdir(directory)) == kept
