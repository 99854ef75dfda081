"""Unit tests of decoding and validation on small inputs: structure checks, Table Schema types
and constraints, domain warnings, the error limit, and property-based robustness."""

from __future__ import annotations

import gzip
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from report_invariant import assert_agrees, assert_report_agrees

from conftest import HOSP, Pipeline
from opendepot.decode import decode
from opendepot.registry import load_cog, load_descriptor, parse_dataset
from opendepot.report import build_report, format_human
from opendepot.validate import validate

HEADER = "dep;sexe;jour;hosp;rea;rad;dc\n"


def hosp_warning():
    """The hospital dataset with its totals checked as warnings (the rows built here are not
    consistent sums; the shipped error is tested in ``tests/test_checks_statistics.py``)."""
    d = load_descriptor(HOSP)
    d["plausibility"] = {"totalBelowParts": "warning"}
    return parse_dataset(d)


def run(body: bytes | str, dataset=None, **kw):
    if isinstance(body, str):
        body = body.encode()
    v = validate(body, dataset or hosp_warning(), load_cog(), name="t.csv", **kw)
    return assert_agrees(v)


def kinds(v) -> list[tuple[str, int | None]]:
    return [(e.type, e.row_number) for e in v.errors.items]


def test_header_problems__each_named_with_its_column():
    v = run("dep;sexe;;jour;hosp;rea;rad;dc;Dep;extra\n01;0;;2020-03-18;1;1;1;1;01;x\n")
    assert not v.accepted
    assert [(e.type, e.field_number) for e in v.errors.items] == [
        ("blank-label", 3), ("duplicate-label", 9), ("extra-label", 10)]


def test_missing_and_extra_cells_and_blank_rows__reported_at_their_lines():
    body = HEADER + "01;0;2020-03-18;1;1;1;1\n01;1;2020-03-18;1;1\n\n01;2;2020-03-18;1;1;1;1;9\n"
    v = run(body)
    assert kinds(v) == [("missing-cell", 3), ("extra-cell", 5), ("blank-row", 4)]
    assert v.rows == 4 and not v.accepted  # 3 bad rows of 4 is over the 0.5% budget


@pytest.mark.parametrize(
    "body, slug, words",
    [
        (b"", "source-error", "empty"),
        (b"\x00\x01\x02binary\x00", "format-error", "not text"),
        (b"{\\rtf1\\ansi\\ansicpg1252 hello}", "format-error", "RTF"),
        (HEADER.encode(), "source-error", "no data rows"),
        (gzip.compress(b"x" * 5000), "source-error", "size limit"),
        (b"\x1f\x8bnot really gzip", "source-error", "corrupt"),
    ],
)
def test_unreadable_files__rejected_with_a_clear_reason(body, slug, words):
    v = run(body, max_bytes=1000)
    assert not v.accepted
    assert v.errors.items[0].type == slug and words in v.errors.items[0].message


def test_gzip_and_declared_cp1252__decoded_per_file():
    text = HEADER + "2A;0;18/03/2020;1;2;3;4\n"
    v = run(gzip.compress(text.encode("cp1252")))
    assert v.accepted and v.decoded.compression == "gzip"
    assert str(v.table.column("jour")[0]) == "2020-03-18"  # DD/MM/YYYY accepted by the registry
    raw = "région;dép\r\nRhône;01\r\n".encode("cp1252")
    latin = decode(raw, max_bytes=1000, encoding="cp1252")  # the dataset declares it
    assert (latin.encoding, latin.header, latin.delimiter) == ("cp1252", ("région", "dép"), ";")
    assert latin.data == "région;dép\nRhône;01\n".encode()
    undeclared = decode(raw, max_bytes=1000)  # never guessed
    assert undeclared.type == "encoding-error"
    assert "byte 0xe9 at line 1 (byte offset 1) is not valid UTF-8" in undeclared.message
    mixed = decode("a;b\né;1\n".encode() + "è;2\n".encode("cp1252"), max_bytes=1000)
    # mostly UTF-8 with a stray cp1252 byte: refused naming where, never re-read as mojibake
    assert mixed.type == "encoding-error" and "line 3" in mixed.message


def test_type_errors__decimal_never_truncated_and_date_checked():
    v = run(HEADER + "01;0;2020-03-18;1.5;1;1;1\n01;1;2020-02-30;1;1;1;1\n" +
            "".join(f"01;2;2020-03-{d:02d};1;1;1;1\n" for d in range(1, 28)))
    assert sorted((e.type, e.row_number, e.field_name, e.cell) for e in v.errors.items) == [
        ("type-error", 2, "hosp", "1.5"), ("type-error", 3, "jour", "2020-02-30")]


def test_constraints__minimum_enum_and_unique():
    v = run(HEADER + "01;3;2020-03-18;-1;1;1;1\n")
    assert [(e.type, e.field_name, e.note) for e in v.errors.items] == [
        ("constraint-error", "sexe", "constraint enum"), ("constraint-error", "hosp", "constraint minimum")]
    descriptor = load_descriptor(HOSP)
    descriptor["schema"]["fields"][2]["constraints"]["unique"] = True  # jour unique (test only)
    ds = parse_dataset(descriptor)
    u = run(HEADER + "01;0;2020-03-18;1;1;1;1\n01;1;2020-03-18;1;1;1;1\n", ds)
    assert [(e.type, e.row_number, e.cell) for e in u.errors.items] == [("unique-error", 3, "2020-03-18")]


def test_total_row_smaller_than_its_parts__warning_not_error():
    v = run(HEADER + "75;0;2020-03-18;10;1;1;1\n75;1;2020-03-18;7;1;1;1\n75;2;2020-03-18;5;0;0;0\n")
    assert v.accepted
    [w] = v.warnings.items
    assert (w.type, w.row_number, w.field_name, w.cell) == ("total-below-parts", 2, "hosp", "10")
    assert "sum of its parts 12" in w.message


def test_error_limit__keeps_the_first_errors_and_counts_all():
    body = HEADER + "".join(f"01;0;2020-03-{i + 1:02d};x{i};1;1;1\n" for i in range(30))
    v = run(body, max_errors=5)
    assert len(v.errors.items) == 5 and v.errors.total == 30
    report = build_report(v, body.encode(), {"key": "k"})
    assert report["stats"]["errors"] == 30
    assert report["tasks"][0]["warnings"][0] == "reached error limit: 5 errors shown of 30 found"
    assert "and 25 more" in format_human(report, max_lines=5)


def test_human_report__names_file_line_column_value_and_expectation():
    v = run(HEADER + "20;0;2020-03-18;1;1;1;1\n")
    text = format_human(build_report(v, b"", {"key": f"{HOSP}/spf/f.csv"}))
    assert text.splitlines()[0].startswith(f"REJECTED {HOSP}/spf/f.csv")
    assert "Line 2, column dep: '20' is not a valid department code (use 2A or 2B" in text


# Property-based: whatever the bytes, the answer is a report, never an exception, and the
# original upload stays in the incoming bucket.

csv_cells = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=8)


@st.composite
def csv_files(draw) -> bytes:
    delimiter = draw(st.sampled_from([";", ",", "\t", "|"]))
    header = draw(st.lists(st.sampled_from(
        ["dep", "sexe", "jour", "hosp", "rea", "rad", "dc", "HospConv", "x", ""]), min_size=0, max_size=9))
    rows = draw(st.lists(st.lists(csv_cells, max_size=9), max_size=12))
    text = "\n".join(delimiter.join(r) for r in [header, *rows])
    ending = draw(st.sampled_from(["\n", "\r\n", "\r\r\n", "\r"]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "cp1252", "latin-1", "utf-16"]))
    data = text.replace("\n", ending).encode(encoding, errors="replace")
    return gzip.compress(data) if draw(st.booleans()) else data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_random_bytes__always_a_report(raw):
    v = run(raw)
    report = json.loads(json.dumps(build_report(v, raw, {"key": "k"})))
    assert_report_agrees(report)
    assert report["opendepot"]["status"] in {"accepted", "rejected"}
    assert v.accepted or report["stats"]["errors"] >= 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(csv_files())
def test_random_csv_shapes_and_encodings__report_and_original_kept(raw):
    from datetime import UTC, datetime

    from opendepot.config import Settings
    from opendepot.storage import MemoryQueue, MemoryStore

    p = Pipeline(MemoryStore(), MemoryQueue(), Settings(publish_queue_url="q"),
                 datetime(2026, 1, 1, tzinfo=UTC))
    out = p.drop(f"{HOSP}/spf/random.csv", raw)
    assert out.status in {"accepted", "rejected"} and out.report is not None
    assert_report_agrees(out.report)
    assert p.store.get(p.settings.incoming_bucket, f"{HOSP}/spf/random.csv") == raw
    if out.status == "accepted":
        assert p.publish().created


def test_national_file_without_area_column__series_checked_per_other_dimensions():
    descriptor = {
        "name": "t-national", "title": "t", "organization": {"name": "t", "slug": "t"},
        "producers": ["spf"], "geography": {"field": None, "level": "fra"},
        "measures": {"dc": "cumulative"},
        "schema": {"fields": [{"name": "jour", "type": "date"}, {"name": "cl_age90", "type": "string"},
                              {"name": "dc", "type": "integer"}],
                   "primaryKey": ["jour", "cl_age90"], "missingValues": ["", "NA"]},
    }
    body = "jour;cl_age90;dc\n2020-03-18;09;5\n2020-03-18;19;7\n2020-03-19;09;4\n2020-03-21;19;8\n"
    v = run(body, parse_dataset(descriptor))
    assert v.accepted
    assert [(w.type, w.row_number) for w in v.warnings.items] == [
        ("cumulative-decrease", 4), ("missing-day", 5)]


def test_gzip_bomb__rejected_with_its_size_and_the_configured_limit_nothing_staged():
    from datetime import UTC, datetime

    from opendepot.config import Settings
    from opendepot.storage import MemoryQueue, MemoryStore

    p = Pipeline(MemoryStore(), MemoryQueue(),
                 Settings(publish_queue_url="memory://p.fifo", max_object_bytes=10_000),
                 datetime(2026, 1, 1, tzinfo=UTC))
    body = gzip.compress(HEADER.encode() + b"75;0;2020-03-24;1;1;1;1\n" * 2000)
    out = p.drop(f"{HOSP}/spf/big.csv.gz", body)
    assert out.status == "rejected"
    message = out.report["tasks"][0]["errors"][0]["message"]
    assert f"{len(body)}-byte gzip file" in message and "limit of 10000 bytes" in message
    assert out.report["opendepot"]["size"] == len(body)
    assert p.queue.sent == []
    assert p.store.list(p.settings.internal_bucket, "staging/") == []


def test_integer_past_64_bits__a_type_error_not_a_crash():
    v = run(HEADER + "75;0;2020-03-24;99999999999999999999;1;1;1\n")
    assert [(e.type, e.row_number, e.field_name, e.cell) for e in v.errors.items] == [
        ("type-error", 2, "hosp", "99999999999999999999")]
    assert "at most 18 digits" in v.errors.items[0].message


def test_every_data_row_with_too_few_cells__each_a_missing_cell_error_not_a_crash():
    # before the refactor this crashed the check ("need at least one array to concatenate") and
    # was rejected as "please report this to the operators"
    v = run("dep;sexe;jour;hosp;rea;rad;dc\n01;0;2020\n75;1\n")
    assert not v.accepted and v.rows == 2
    assert [(e.type, e.row_number) for e in v.errors.items] == [("missing-cell", 2),
                                                               ("missing-cell", 3)]
    assert v.errors.items[0].message == "Line 2: the row has 3 cells, fewer than the header's 7"
