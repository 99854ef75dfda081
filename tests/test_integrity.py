"""Issue 13, items 1 and 2: an upload is read whole and as its producer wrote it, or refused
with a reason naming where the problem is; never published silently wrong.

Inputs are built here from the real files (``../shared/data/real``): gzipped and cut, damaged,
split in members; re-encoded as UTF-16; given a stray Latin-1 byte or a NUL byte."""

from __future__ import annotations

import gzip
import zlib

import pytest

from conftest import HOSP, REAL
from opendepot.decode import Decoded, DecodeProblem, decode
from opendepot.registry import load_registry

MAX = 1 << 30
HOSP_FILE = REAL / HOSP / f"{HOSP}-2020-11-07-19h00.csv"
CC_FILE = REAL / "opencovid19-fr" / "dist" / "2020-03-12_f326e5b" / "chiffres-cles.csv"
CC_KEY = "chiffres-cles/opencovid19-fr/chiffres-cles.csv"
HOSP_KEY = f"{HOSP}/spf/{HOSP}.csv"


def hosp_rows(n: int) -> bytes:
    """The header and the first ``n`` data rows of the real hospital file (LF line ends)."""
    lines = HOSP_FILE.read_bytes().splitlines(keepends=True)
    return b"".join(lines[: n + 1])


def decompressed_prefix(packed: bytes) -> bytes:
    """What zlib gives from a (possibly cut) gzip stream: what a reader without checks gets."""
    return zlib.decompressobj(wbits=31).decompress(packed)


def errors_of(outcome) -> list[dict]:
    return outcome.report["tasks"][0]["errors"]


def staged(pipeline) -> list[str]:
    return [k for k in pipeline.store.buckets.get(pipeline.settings.internal_bucket, {})
            if k.startswith("staging/")]


# ----------------------------------------------------------------------- 1: gzip complete


def cut_inside_a_number(text: bytes, packed: bytes) -> bytes:
    """The longest prefix of ``packed`` whose decompressed text ends inside a number of the
    last row it reaches (as "152" read as "1"): a digit out, the next digit not."""
    for end in range(len(packed) - 1, 0, -1):
        out = decompressed_prefix(packed[:end])
        if out[-1:].isdigit() and text[len(out) : len(out) + 1].isdigit():
            return packed[:end]
    raise AssertionError("no cut inside a number")


def test_whole_gzip_of_2700_real_rows__accepted_with_every_row(pipeline):
    text = hosp_rows(2700)
    out = pipeline.drop(HOSP_KEY + ".gz", gzip.compress(text, mtime=0))
    assert out.status == "accepted"
    assert out.report["opendepot"]["rows"] == 2700
    assert out.report["opendepot"]["compression"] == "gzip"


def test_gzip_cut_inside_the_last_cell__rejected_naming_where_it_ends(pipeline):
    text = hosp_rows(2700)
    cut = cut_inside_a_number(text, gzip.compress(text, mtime=0))
    got = decompressed_prefix(cut)
    lines = got.count(b"\n")
    partial = got.rsplit(b"\n", 1)[1]
    whole = text.splitlines()[lines]
    assert whole.startswith(partial) and len(partial) < len(whole)  # "152" would read "1"
    out = pipeline.drop(HOSP_KEY + ".gz", cut)
    assert out.status == "rejected" and staged(pipeline) == []
    (error,) = errors_of(out)
    last_whole = text.splitlines()[lines - 1].decode()
    assert error["type"] == "source-error"
    assert error["message"] == (
        f"the gzip stream is cut short: it ends at byte {len(cut)} of the compressed file, "
        f"before the end of its data and its CRC-32 and length check; {lines} complete lines "
        f"were decoded before it, the last one (line {lines}) {last_whole!r}; nothing was "
        f"read: upload the whole file again"
    )


def test_gzip_cut_at_60_percent__rejected_nothing_published(pipeline):
    text = hosp_rows(2700)
    packed = gzip.compress(text, mtime=0)
    cut = packed[: len(packed) * 60 // 100]
    lines = decompressed_prefix(cut).count(b"\n")
    assert 0 < lines < 2700  # what a reader without checks would publish
    out = pipeline.drop(HOSP_KEY + ".gz", cut)
    assert out.status == "rejected" and staged(pipeline) == []
    message = errors_of(out)[0]["message"]
    assert message.startswith(f"the gzip stream is cut short: it ends at byte {len(cut)} ")
    assert f"; {lines} complete lines were decoded before it, the last one (line {lines}) " \
        in message


def test_gzip_crc_damaged__rejected_at_the_checksum():
    text = hosp_rows(300)
    packed = bytearray(gzip.compress(text, mtime=0))
    packed[-8] ^= 0x40  # first byte of the CRC-32
    got = decode(bytes(packed), max_bytes=MAX)
    assert isinstance(got, DecodeProblem)
    assert got.message.startswith(f"the gzip stream is corrupt: reading stops at byte "
                                  f"{len(packed) - 5} of the compressed file (Error -3 while "
                                  "decompressing data: incorrect data check); 301 complete lines")


def test_gzip_length_damaged__rejected_at_the_length():
    packed = bytearray(gzip.compress(hosp_rows(300), mtime=0))
    packed[-4] ^= 0x01  # ISIZE, the length modulo 2**32
    got = decode(bytes(packed), max_bytes=MAX)
    assert isinstance(got, DecodeProblem)
    assert f"reading stops at byte {len(packed) - 1} " in got.message
    assert "incorrect length check" in got.message


def test_gzip_in_two_members__every_member_read(pipeline):
    # gzip -c a >> f; gzip -c b >> f: the second member used to be dropped without a word
    text = hosp_rows(600)
    cut = text.index(b"\n", len(text) // 2) + 1
    body = gzip.compress(text[:cut], mtime=0) + gzip.compress(text[cut:], mtime=0)
    got = decode(body, max_bytes=MAX)
    assert isinstance(got, Decoded) and got.data == text
    out = pipeline.drop(HOSP_KEY + ".gz", body)
    assert out.status == "accepted" and out.report["opendepot"]["rows"] == 600


def test_gzip_then_zero_padding__read_then_other_bytes__rejected():
    text = hosp_rows(50)
    packed = gzip.compress(text, mtime=0)
    padded = decode(packed + b"\x00" * 1000, max_bytes=MAX)
    assert isinstance(padded, Decoded) and padded.data == text
    assert decode(packed + b"PK\x03\x04junk", max_bytes=MAX) == DecodeProblem(
        "source-error",
        f"the gzip stream ends at byte {len(packed)} of the {len(packed) + 8}-byte file, but 8 "
        "more bytes follow that are not gzip data; nothing was read: upload the file again",
    )


# ------------------------------------------------------------------------ 2: encodings


def test_real_utf8_file_with_one_stray_latin1_byte__rejected_naming_line_and_offset(pipeline):
    raw = CC_FILE.read_bytes()
    assert pipeline.drop(CC_KEY, raw).status == "accepted"
    assert "Auvergne-Rhône-Alpes".encode() in raw
    line = raw.splitlines()[40]
    at = raw.index(line) + len(line) - 1  # the last byte of line 41 (ASCII)
    damaged = raw[:at] + b"\xe9" + raw[at + 1 :]  # one Latin-1 'é'
    out = pipeline.drop("chiffres-cles/opencovid19-fr/stray.csv", damaged)
    assert out.status == "rejected"
    (error,) = errors_of(out)
    first_utf8 = next(i for i, b in enumerate(raw) if b >= 0x80)
    assert (first_utf8, raw[: first_utf8].count(b"\n") + 1) == (161, 3)  # "Santé", line 3
    assert (error["type"], error["message"]) == (
        "encoding-error",
        f"the file mixes UTF-8 text (first at line 3, byte offset 161) with bytes that are not "
        f"UTF-8 (first 0xe9 at line 41, byte offset {at}): save it all as UTF-8 and upload it "
        f"again",
    )
    published = pipeline.store.buckets.get(pipeline.settings.published_bucket, {})
    assert not any(b"Auvergne-Rh\xc3\x83\xc2\xb4ne" in o.body for o in published.values())


@pytest.mark.parametrize(
    ("path", "dataset"),
    [(REAL / "covid-hospit-incid-reg" / "covid-hospit-incid-reg-2022-03-11-19h00.csv",
      "covid-hospit-incid-reg"),
     (REAL / "indicateurs-suivi-epidemie" / "etalab-mirror" / "2020-06-16_c5b4a5d"
      / "table_indicateurs_open_data_dep.csv", "indicateurs-suivi-epidemie-covid-dep")],
    ids=lambda p: getattr(p, "name", p),
)
def test_real_wholly_cp1252_files__read_as_the_cp1252_their_dataset_declares(path, dataset):
    encoding = load_registry().get(dataset).encoding
    assert encoding == "cp1252"
    got = decode(path.read_bytes(), max_bytes=MAX, encoding=encoding)
    assert isinstance(got, Decoded) and got.encoding == "cp1252"
    assert got.data == path.read_bytes().decode("cp1252").replace("\r\n", "\n").encode()


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_real_file_as_utf16__converted_and_accepted_like_utf8(pipeline, encoding):
    text = hosp_rows(400).decode()
    body = text.encode(encoding)  # "utf-16": with a BOM (little-endian here); others: none
    got = decode(body, max_bytes=MAX)
    assert isinstance(got, Decoded) and got.data == text.encode()
    assert got.encoding == ("utf-16-le" if encoding == "utf-16" else encoding)
    out = pipeline.drop(HOSP_KEY, body)
    assert out.status == "accepted" and out.report["opendepot"]["rows"] == 400
    assert out.report["opendepot"]["encoding"] == got.encoding


def test_utf16_with_an_odd_last_byte__refused_save_as_utf8():
    body = "dép;jour\n01;2020-03-18\n".encode("utf-16") + b"\x0a"
    assert decode(body, max_bytes=MAX) == DecodeProblem(
        "encoding-error",
        f"the file is UTF-16 (little-endian) text with an invalid sequence at byte offset "
        f"{len(body) - 1}: UTF-16: save as UTF-8",
    )


@pytest.mark.parametrize("row", [10, 2650])  # before, and after, the first 64 KiB
def test_nul_byte_in_a_row__same_rejection_wherever_it_is(pipeline, row):
    text = hosp_rows(2700)
    lines = text.splitlines(keepends=True)
    at = sum(map(len, lines[:row])) + 2  # third byte of line row + 1
    body = text[:at] + b"\x00" + text[at + 1 :]
    assert (at < 65536) == (row == 10)  # NUL_SCAN_BYTES: the NUL used to be "binary" only here
    out = pipeline.drop(HOSP_KEY, body)
    assert out.status == "rejected"
    (error,) = errors_of(out)
    assert (error["type"], error["message"]) == (
        "format-error",
        f"the file is not text: it contains a NUL byte (line {row + 1}, byte offset {at})",
    )
