"""Validation in batches: a file read a few blocks at a time gives the same report, line numbers
and staged rows as the whole file at once, whatever falls on a batch boundary (cross-batch
repeats, padded codes, skipped rows); the cross-row checks give the same answers on their
counting-sort and sort paths."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from report_invariant import assert_agrees

from conftest import HOSP
from opendepot import keysort
from opendepot.registry import load_cog, load_registry
from opendepot.report import issue_dict
from opendepot.validate import validate, validate_file

SMALL = 16384  # bytes of text per batch: the real hospital file becomes ~240 batches


def hospital_file(real_dir):
    return real_dir / HOSP / "donnees-hospitalieres-covid19-2021-03-17-17h03.csv"


def both(raw: bytes, tmp_path, dataset: str = HOSP, block: int = SMALL):
    """(whole-file validation, batched validation of the same bytes from disk)."""
    ds, cog = load_registry().get(dataset), load_cog()
    source = tmp_path / "upload.csv"
    source.write_bytes(raw)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    whole = validate(raw, ds, cog, name="t.csv")
    batched = validate_file(str(source), ds, cog, name="t.csv", workdir=str(work), block_bytes=block)
    return assert_agrees(whole), assert_agrees(batched)


def issues(v) -> tuple[list[dict], list[dict]]:
    return [issue_dict(e) for e in v.errors.items], [issue_dict(w) for w in v.warnings.items]


def test_real_hospital_file_in_a_thousand_batches__same_rows_and_warnings(real_dir, tmp_path):
    raw = hospital_file(real_dir).read_bytes()
    whole, batched = both(raw, tmp_path)
    assert batched.accepted and whole.accepted
    assert batched.rows == whole.rows == 110595
    assert batched.rows_published == 110595 and batched.areas == 101
    assert batched.warnings.by_type == whole.warnings.by_type
    assert batched.warnings.total == whole.warnings.total == 1271
    assert issues(batched) == issues(whole)
    assert batched.table.equals(whole.table)
    # staged on disk, in the workdir, as Parquet with one row group per batch
    staged = pq.ParquetFile(batched.staged)
    assert staged.metadata.num_rows == 110595 and staged.num_row_groups > 200


def test_defects_on_batch_boundaries__same_lines_as_the_whole_file(real_dir, tmp_path):
    lines = hospital_file(real_dir).read_bytes().split(b"\n")
    header, body = lines[0], [x for x in lines[1:] if x]
    # a repeat of line 2 near the end (another batch), a skipped short row early, a type
    # error in the middle, a single-digit code padded in two far-apart batches
    first = body[0]
    rows = list(body)
    rows.insert(5, b'"01";"1"')  # 2 cells: skipped row, line 7
    rows[40000] = rows[40000].replace(b'"2020', b'"20x0', 1)
    padded = [i for i, r in enumerate(rows) if r.startswith(b'"01";')][:2] + [
        i for i, r in enumerate(rows) if r.startswith(b'"01";')][-1:]
    for i in padded:
        rows[i] = b'"1";' + rows[i][5:]
    raw = b"\n".join([header, *rows]) + b"\n"
    whole, batched = both(raw, tmp_path)  # accepted: two rows left out, within the budget
    assert issues(batched) == issues(whole)
    assert batched.accepted and batched.rows_left_out == 2
    code = [w for w in batched.warnings.items if w.type == "padded-code"]
    assert len(code) == 1 and f"(3 rows, first at line {padded[0] + 2})" in code[0].message
    assert batched.warnings.by_type == whole.warnings.by_type

    rows.append(first)  # and a repeat of line 2 as the last line: rejected
    raw = b"\n".join([header, *rows]) + b"\n"
    whole, batched = both(raw, tmp_path)
    assert issues(batched) == issues(whole)
    assert batched.errors.by_type == whole.errors.by_type == {
        "missing-cell": 1, "type-error": 1, "primary-key": 1}
    pk = [e for e in batched.errors.items if e.type == "primary-key"][0]
    assert pk.row_number == len(rows) + 1  # the appended row: the last line
    assert pk.note == "first at line 2"
    assert [e.row_number for e in batched.errors.items if e.type == "missing-cell"] == [7]
    typed = [e for e in batched.errors.items if e.type == "type-error"][0]
    assert typed.row_number == 40002 and typed.field_name == "jour"


def test_exact_duplicate_rows_in_other_batches__left_out_as_in_the_whole_file(real_dir, tmp_path):
    real = (real_dir / "opencovid19-fr" / "dist" / "2020-04-14_98091d6" / "chiffres-cles.csv"
            ).read_bytes()
    # the real file repeats 5 rows on the next line (same batch, mostly); its first 5 data rows
    # appended again at its end are repeats dozens of batches after their first occurrence
    raw = real.rstrip(b"\n") + b"\n" + b"".join(real.splitlines(keepends=True)[1:6])
    whole, batched = both(raw, tmp_path, dataset="chiffres-cles", block=32 << 10)
    assert batched.errors.by_type == whole.errors.by_type
    assert batched.errors.by_type["duplicate-row"] == 10
    assert [e.note for e in batched.errors.items if e.type == "duplicate-row"][-5:] == [
        f"first at line {line}" for line in range(2, 7)]
    # the same issues; a batch reports its own in check order, so compare them in line order
    def by_line(v):
        return sorted(issues(v)[0], key=lambda e: (e["rowNumber"], e["type"]))
    assert by_line(batched) == by_line(whole)
    assert issues(batched)[1] == issues(whole)[1]
    assert batched.rows_published == whole.rows_published == 6515


def test_sort_path_and_counting_sort_path__same_answers(real_dir, tmp_path, monkeypatch):
    """Keys spread over a grid too large for a counting sort take NumPy's sort instead."""
    real = hospital_file(real_dir).read_bytes()
    lines = [x for x in real.split(b"\n") if x]
    repeated = b"\n".join([*lines, lines[1], lines[2]])  # two repeats: both reported
    dense = [both(raw, tmp_path)[1] for raw in (real, repeated)]
    monkeypatch.setattr(keysort, "dense", lambda space, n: False)
    sorted_ = [both(raw, tmp_path)[1] for raw in (real, repeated)]
    assert [issues(v) for v in dense] == [issues(v) for v in sorted_]
    assert dense[0].warnings.total == sorted_[0].warnings.total == 1271
    assert dense[1].errors.by_type == sorted_[1].errors.by_type == {"primary-key": 2}
    assert [e.note for e in dense[1].errors.items] == ["first at line 2", "first at line 3"]


@pytest.mark.parametrize("values, expected", [
    (["75", "2A", "01", None, "75"], ([2, 1, 0, 3, 2], ["01", "2A", "75", None])),
    ([3, 0, 0, 1], ([2, 0, 0, 1], [0, 1, 3, None])),
])
def test_codes__follow_value_order_with_missing_last(values, expected):
    import pyarrow as pa

    codes = keysort.Codes()
    codes.add(pa.array(values[:2]))
    codes.add(pa.array(values[2:]))
    ranked, by_code = codes.finish()
    assert (ranked.tolist(), by_code) == expected


# ------------------------------------------------------------------------------ from a tester


HEADER = b"dep;sexe;jour;hosp;rea;rad;dc\n"
ROWS = [f'"{d:02d}";{s};2020-03-{day};{d};0;1;0\n'.encode()
        for day in (16, 17, 18) for d in range(1, 96) if d != 20 for s in (1, 2)]  # 564 rows


@pytest.mark.parametrize("block", [64, 1000, 16 << 20])
def test_integer_forms__same_verdict_whatever_the_rest_of_the_batch(block, tmp_path):
    """Arrow's cast alone takes '0x10' as 16; '+5' is an integer (INTEGER_RE) Arrow refuses."""
    raw = HEADER + b'"01";0;2020-03-19;1;+5;1;0\n"02";0;2020-03-19;0x10;0;1;0\n' + b"".join(ROWS)
    whole, batched = both(raw, tmp_path, block=block)
    for v in (whole, batched):  # '0x10' alone in its column: Arrow's cast would take it
        assert v.errors.by_type == {"type-error": 1}
        assert [(e.row_number, e.field_name, e.cell) for e in v.errors.items] == [(3, "hosp", "0x10")]
        assert v.accepted and v.table.column("rea")[0].as_py() == 5


def test_quoted_newline_on_a_block_boundary__one_row_as_in_the_whole_file(tmp_path):
    offsets = set()
    for before in range(3):
        for pad in range(0, 18, 2):  # the embedded line end falls on most offsets in a block
            first = b'"01";0;2020-03-19;' + b"0" * pad + b"1;0;1;0\n"
            head = HEADER + b"".join(ROWS[:before]) + first
            offsets.add((len(head) + 2) % 64)
            raw = head + b'"0\n6";0;2020-03-19;5;0;1;0\n' + b"".join(ROWS[before : before + 40])
            whole, batched = both(raw, tmp_path, block=64)
            assert issues(batched) == issues(whole)
            assert [(e.type, e.cell) for e in batched.errors.items] == [("foreign-key", "0\n6")]
    assert len(offsets) > 20


def test_row_longer_than_the_reader_block__read_again_in_larger_blocks(tmp_path):
    long = b'"01";0;2020-03-19;' + b"0" * ((2 << 20) + 10) + b"1;0;1;0\n"  # a 2 MiB cell
    raw = HEADER + b"".join(ROWS) + long
    whole, batched = both(raw, tmp_path, block=1000)
    assert issues(batched) == issues(whole)
    assert batched.errors.by_type == {"type-error": 1} and batched.rows_published == 564


def test_header_without_line_end__no_data_rows(tmp_path):
    whole, batched = both(HEADER.rstrip(b"\n"), tmp_path)
    assert batched.rejection == whole.rejection == "no data rows"


def test_blank_lines_at_the_end__left_out_not_primary_key_repeats(tmp_path):
    raw = HEADER + b"".join(ROWS) + b"\n;;;;;;\n"
    whole, batched = both(raw, tmp_path)
    assert issues(batched) == issues(whole)
    assert batched.errors.by_type == {"blank-row": 2}
    assert batched.accepted and batched.rows_left_out == 2 and batched.rows_published == 564


def test_many_short_rows_across_batches__counted_past_the_limit_lines_kept(tmp_path):
    """Every other row lacks a cell: the skipped rows' lines are kept compactly, and only the
    first issues up to the error limit are built."""
    body = [b'"01";%d;2020-03-18;1;0;1;0\n' % (i % 3) if i % 2 else b'"01";0;2020-03-18;1;0;1\n'
            for i in range(30000)]
    whole, batched = both(HEADER + b"".join(body), tmp_path, block=8192)
    assert batched.errors.by_type == whole.errors.by_type == {
        "missing-cell": 15000, "primary-key": 14997}
    assert len(batched.errors.items) == 1000
    assert [e.row_number for e in batched.errors.items[:3]] == [2, 4, 6]
    pk = [e for e in batched.errors.items if e.type == "primary-key"]
    assert issues(batched)[0][:5] == issues(whole)[0][:5]
    assert not pk  # past the limit: counted, not built (the skipped rows came first)
