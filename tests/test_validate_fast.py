"""validate's fast paths give exactly what its exact paths give: plain columns checked on their
bytes (``cells.trimmed``, ``cells.single_digits``, ``cells.fast_cells``; ``fast=False`` takes the
exact paths everywhere), staging on a background thread (``reading.StagingWriter``), measures
read without Arrow's cast (``cells.read_measure``) and the totals' shortcut for measures without
missing values."""

from __future__ import annotations

import datetime
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from report_invariant import assert_agrees

from conftest import HOSP
from opendepot import cells as C
from opendepot import checks
from opendepot import validate as V
from opendepot.checks import Batch, Check
from opendepot.decode import decode
from opendepot.registry import load_cog, load_descriptor, load_registry, parse_dataset

HEADER = "dep;sexe;jour;hosp;rea;rad;dc\n"
DEPARTMENTS = [f"{d:02d}" for d in range(1, 96) if d != 20] + ["2A", "2B"]
PLAIN_ROWS = "".join(f"{d};{s};2020-03-{day};{i + s};1;2;3\n"
                     for day in (17, 18) for i, d in enumerate(DEPARTMENTS) for s in (1, 2))
"""384 plain rows (no total row): one bad row among them stays within the 0.5% error budget."""
INDICATORS = "indicateurs-suivi-epidemie-covid-france"


def hosp():
    """The hospital dataset with its totals checked as warnings: the rows built here are not
    consistent sums (the shipped error is tested in ``tests/test_checks_statistics.py``)."""
    d = load_descriptor(HOSP)
    d["plausibility"] = {"totalBelowParts": "warning"}
    return parse_dataset(d)


def field(name: str, dataset=None):
    return (dataset or hosp()).field(name)


def run(body: str, dataset=None, **kw) -> V.Validation:
    v = V.validate(body.encode(), dataset or hosp(), load_cog(), name="t.csv", **kw)
    return assert_agrees(v)


def outcome(v: V.Validation) -> tuple[Any, ...]:
    """Everything a validation decides and reports, comparable with ``==``."""
    table = v.table
    return (
        v.accepted, v.rows, v.rows_left_out, v.rows_published, v.rejection, v.areas,
        v.errors.total, v.errors.by_type, v.errors.items,
        v.warnings.total, v.warnings.by_type, v.warnings.items,
        None if table is None else (table.schema, table.to_pydict()),
    )


def both(body: str, dataset=None, **kw) -> V.Validation:
    """The fast validation, checked equal to the exact one."""
    fast = run(body, dataset, **kw)
    exact = run(body, dataset, fast=False, **kw)
    assert outcome(fast) == outcome(exact)
    return fast


def cells(v: V.Validation) -> list[tuple[str, int | None, str | None, str | None]]:
    return [(e.type, e.row_number, e.field_name, e.cell) for e in v.errors.items]


# Tricky cells, end to end: fast and exact agree, on these values.

@pytest.mark.parametrize(
    "cell, value",
    [(" 12", 12), ("12 ", 12), ("+5", 5), ("007", 7), ("-0", 0), ("", None), ("NA", None),
     ("123456789012", 123456789012)],
)
def test_integer_cells_that_are_valid__same_value_both_ways(cell, value):
    v = both(HEADER + f"01;0;2020-03-18;{cell};1;1;1\n" + PLAIN_ROWS)
    assert v.accepted and v.errors.total == 0
    assert v.table.column("hosp")[0].as_py() == value


@pytest.mark.parametrize(
    "cell", ["0x10", "1e3", "١٢", "1.5", "1234567890123456789", "1 2", "12a"]
)
def test_integer_cells_that_are_not__the_same_type_error_both_ways(cell):
    v = both(HEADER + f"01;0;2020-03-18;{cell};1;1;1\n" + PLAIN_ROWS)
    assert cells(v) == [("type-error", 2, "hosp", cell)]
    assert v.accepted and v.rows_left_out == 1 and v.table.num_rows == 384


@pytest.mark.parametrize(
    "cell, errors, day",
    [
        ("2020-03-01", [], datetime.date(2020, 3, 1)),
        ("18/03/2020", [], datetime.date(2020, 3, 18)),  # the second format, exact path
        (" 2020-03-18", [], datetime.date(2020, 3, 18)),
        ("2020-3-1", [("type-error", 2, "jour", "2020-3-1")], None),
        ("2020-02-30", [("type-error", 2, "jour", "2020-02-30")], None),
        ("2020-13-01", [("type-error", 2, "jour", "2020-13-01")], None),
        ("20200318", [("type-error", 2, "jour", "20200318")], None),
        ("", [("constraint-error", 2, "jour", "")], None),  # jour is required
        ("NA", [("constraint-error", 2, "jour", "NA")], None),
    ],
)
def test_date_cells__same_value_or_error_both_ways(cell, errors, day):
    v = both(HEADER + f"01;0;{cell};1;1;1;1\n" + PLAIN_ROWS)
    assert cells(v) == errors
    if day is not None:
        assert v.table.column("jour")[0].as_py() == day


def test_department_codes__padded_missing_and_unknown_the_same_both_ways():
    body = HEADER + "1;1;2020-03-19;1;1;1;1\n 2;1;2020-03-19;1;1;1;1\nNA;1;2020-03-19;1;1;1;1\n" + (
        "20;1;2020-03-19;1;1;1;1\n;2;2020-03-19;1;1;1;1\n"
        + PLAIN_ROWS + PLAIN_ROWS.replace("03-1", "03-0"))
    v = both(body)
    assert cells(v) == [("constraint-error", 4, "dep", "NA"), ("constraint-error", 6, "dep", ""),
                        ("foreign-key", 5, "dep", "20")]
    assert [(w.type, w.cell, w.note) for w in v.warnings.items if w.type == "padded-code"] == [
        ("padded-code", "1", "01"), ("padded-code", "2", "02")]
    assert v.table.column("dep").to_pylist()[:2] == ["01", "02"]


def test_blank_rows__the_batch_takes_the_exact_path_with_the_same_result():
    v = both(HEADER + "01;0;2020-03-18;1;1;1;1\n;;;;;;\n\n" + PLAIN_ROWS)
    assert cells(v)[:2] == [("blank-row", 3, None, None), ("blank-row", 4, None, None)]


def test_numbers__plain_decimals_fast_others_exact_the_same_both_ways():
    indicators = load_registry().get(INDICATORS)
    head = "extract_date;tx_incid;R;taux_occupation_sae;tx_pos\n"
    plain = "".join(f"2020-04-{d:02d};{d}.5;1.{d};{d};.5\n" for d in range(1, 29))
    v = both(head + plain, indicators)
    assert v.accepted and v.table.column("tx_incid").to_pylist()[:2] == [1.5, 2.5]
    assert v.table.column("tx_pos")[0].as_py() == 0.5
    for cell in ["1.", ".", "1..2", "1/2", "-1", "1e3", "NA", "", "nan", " 3.25"]:
        body = head + f"2020-03-31;{cell};1;1;1\n" + plain
        both(body, indicators)  # equal, whatever each decides
    assert cells(both(head + "2020-03-31;1..2;1;1;1\n" + plain, indicators)) == [
        ("type-error", 2, "tx_incid", "1..2")]
    one = both(head + "2020-03-31;1.;1;1;1\n" + plain, indicators)
    assert one.table.column("tx_incid")[0].as_py() == 1.0


# The fast cell check itself, against the exact one on one column.

def exact_cells(f, col: pa.ChunkedArray, missing_values=("", "NA")):
    missing = C.mask(pc.is_in(col, value_set=pa.array(list(missing_values), pa.string())))
    value, bad, _ = C.cast_field(f, col, missing)
    return missing, value, bad


@pytest.mark.parametrize(
    "name, values, typed",
    [
        ("hosp", ["12", "", "007", "123456789012345678"], [12, None, 7, 123456789012345678]),
        ("jour", ["2020-03-18", "", "2021-12-31"],
         [datetime.date(2020, 3, 18), None, datetime.date(2021, 12, 31)]),
        ("dep", ["01", "", "2A", "971"], ["01", None, "2A", "971"]),
    ],
)
def test_fast_cells__plain_columns_typed_as_the_exact_path_types_them(name, values, typed):
    col = pa.chunked_array([values[:2], values[2:]], pa.string())
    fast = C.fast_cells(field(name), col, ("", "NA"))
    assert fast is not None
    missing, value = fast
    exact_missing, exact_value, exact_bad = exact_cells(field(name), col)
    assert not exact_bad.any()
    assert missing.tolist() == exact_missing.tolist() == [v == "" for v in values]
    assert value.to_pylist() == exact_value.to_pylist() == typed
    assert value.type == exact_value.type


@pytest.mark.parametrize(
    "name, cell",
    [("hosp", " 12"), ("hosp", "+5"), ("hosp", "0x10"), ("hosp", "1e3"), ("hosp", "١٢"),
     ("hosp", "NA"), ("hosp", "1234567890123456789"), ("hosp", "-1"),
     ("jour", "2020-3-1"), ("jour", "2020-02-30"), ("jour", "18/03/2020"), ("jour", "NA"),
     ("dep", "NA")],
)
def test_fast_cells__a_cell_that_is_not_plain_leaves_the_column_to_the_exact_path(name, cell):
    plain = {"hosp": "12", "jour": "2020-03-18", "dep": "01"}[name]
    col = pa.chunked_array([[plain, cell]])
    assert C.fast_cells(field(name), col, ("", "NA")) is None


def test_fast_cells__an_empty_cell_that_is_not_a_missing_value_is_left_to_the_exact_path():
    col = pa.chunked_array([["12", ""]])
    assert C.fast_cells(field("hosp"), col, ("NA",)) is None
    missing, value = C.fast_cells(field("dep"), pa.chunked_array([["01", ""]]), ("NA",))
    assert missing.tolist() == [False, False] and value.to_pylist() == ["01", ""]


def test_fast_cells__a_missing_value_made_of_digits_is_left_to_the_exact_path():
    assert C.fast_cells(field("hosp"), pa.chunked_array([["12", "3"]]), ("", "-1")) is not None
    assert C.fast_cells(field("hosp"), pa.chunked_array([["12", "3"]]), ("", "99")) is None


def test_text__slices_read_at_their_offset():
    whole = pa.array(["x y", "12", "7", "", "345", " z"])
    col = pa.chunked_array([whole.slice(1, 2), whole.slice(3, 2)])
    text = C.Text.of(col)
    assert text.lengths.tolist() == [2, 1, 0, 3]
    assert (chr(text.low), chr(text.high)) == ("1", "7")  # the spaces of the cut cells unseen
    assert C.trimmed(col)[0] is col
    assert C.single_digits(col).tolist() == [False, True, False, False]
    assert C.fast_cells(field("hosp"), col, ("",))[1].to_pylist() == [12, 7, None, 345]
    assert text.count(ord("4")).tolist() == [0, 0, 0, 1]


def test_trimmed__trims_only_when_a_byte_could_be_whitespace():
    col = pa.chunked_array([["01", "2A"], ["971"]])
    assert C.trimmed(col)[0] is col
    for spaced in (" 01", "01\t", "01\u00a0", "0\u20021", "é"):
        trimmed, text = C.trimmed(pa.chunked_array([["01", spaced]]))
        assert text is None
        assert trimmed.to_pylist() == ["01", spaced.strip()]


# Property: on any cells drawn from tricky and plain ones, fast and exact validations are equal.

TRICKY = ["", " ", "NA", "na", "0", "1", "9", "01", "12", " 12", "12 ", "+5", "-1", "-0", "0x10",
          "1e3", "1.5", "1.", ".", ".5", "١٢", "1234567890123456789", "123456789012345678", "2A",
          "20", "971", "2020-03-18", "2020-3-1", "2020-02-30", "18/03/2020", "2020-03-18 ",
          "\u00a012", "0000-01-01", "01/01/0000",
          "x", '"1"']


PLAIN = ["01", "2A", "971", "0", "1", "2", "12", "345", "2020-03-18", "2020-04-01", "3.5", ""]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(st.one_of(st.sampled_from(PLAIN), st.sampled_from(TRICKY)), min_size=7,
                         max_size=7), min_size=1, max_size=8),
       st.sampled_from([HOSP, INDICATORS]))
def test_any_tricky_cells__fast_and_exact_validations_equal(rows, name):
    dataset = load_registry().get(name)
    width = 7 if name == HOSP else 5
    head = HEADER if name == HOSP else "extract_date;tx_incid;R;taux_occupation_sae;tx_pos\n"
    body = head + "".join(";".join(r[:width]) + "\n" for r in rows)
    both(body, dataset)


# The real hospital files take the fast paths: the exact ones are never called.

def test_real_hospital_files__checked_on_the_fast_paths_only(real_dir: Path, monkeypatch):
    def slow(*args, **kwargs):
        raise AssertionError("exact path taken")

    monkeypatch.setattr(C, "cast_field", slow)
    monkeypatch.setattr(pc, "utf8_trim_whitespace", slow)
    monkeypatch.setattr(pc, "match_substring_regex", slow)
    monkeypatch.setattr(C, "floats", slow)
    folder = real_dir / HOSP
    found = {}
    for name in ("donnees-hospitalieres-covid19-2020-11-07-19h00.csv",
                 "donnees-hospitalieres-covid19-2021-03-17-17h03.csv"):
        with tempfile.TemporaryDirectory() as work:
            v = V.validate_file(str(folder / name), hosp(), load_cog(), name=name, workdir=work)
            found[name] = (v.accepted, v.rows, v.rows_left_out, v.errors.by_type,
                           v.warnings.by_type)
    assert found == {
        "donnees-hospitalieres-covid19-2020-11-07-19h00.csv":
            (True, 71208, 3, {"constraint-error": 3}, {"cumulative-decrease": 941}),
        "donnees-hospitalieres-covid19-2021-03-17-17h03.csv":
            (True, 110595, 0, {}, {"cumulative-decrease": 1271}),
    }


def test_real_hospital_file__same_outcome_fast_or_exact_in_small_batches(real_dir: Path):
    path = str(real_dir / HOSP / "donnees-hospitalieres-covid19-2020-11-07-19h00.csv")

    def check(block_bytes: int, fast: bool = True) -> tuple[Any, ...]:
        with tempfile.TemporaryDirectory() as work:
            v = V.validate_file(path, hosp(), load_cog(), name="h.csv", workdir=work,
                                block_bytes=block_bytes, fast=fast)
            return outcome(assert_agrees(v))

    fast = check(65536)
    assert check(65536, fast=False) == fast
    whole = check(V.BLOCK_BYTES)  # one batch: the same, but for the order of the issues
    assert whole[:8] == fast[:8] and whole[9:11] == fast[9:11] and whole[-1] == fast[-1]
    assert sorted(map(repr, whole[8])) == sorted(map(repr, fast[8]))


# Staging on a background thread: errors come through, the file is always closed.

def staging_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("opendepot-staging")]


class RecordingWriter(pq.ParquetWriter):
    closed: list[RecordingWriter] = []
    fail_writes = False

    def write_table(self, table, row_group_size=None):
        if RecordingWriter.fail_writes:
            raise OSError("No space left on device")
        super().write_table(table, row_group_size)

    def close(self):
        super().close()
        RecordingWriter.closed.append(self)


@pytest.fixture
def recording(monkeypatch):
    RecordingWriter.closed, RecordingWriter.fail_writes = [], False
    monkeypatch.setattr(pq, "ParquetWriter", RecordingWriter)
    return RecordingWriter


def test_staging_write_failure__raised_for_a_retry_and_the_file_closed(recording, tmp_path):
    """A full /tmp is the infrastructure's failure, not the file's: it goes up to the queue."""
    recording.fail_writes = True
    path = tmp_path / "h.csv"
    path.write_text(HEADER + PLAIN_ROWS * 20)
    with pytest.raises(OSError, match="No space left on device"):
        V.validate_file(str(path), hosp(), load_cog(), name="h.csv", workdir=str(tmp_path),
                        block_bytes=4096)
    assert len(recording.closed) == 1 and staging_threads() == []


class FailsOnThirdBatch(Check):
    """Runs out of memory on the third batch of a file (test only)."""

    def start(self, run) -> None:
        self.batches = 0

    def batch(self, batch: Batch) -> None:
        self.batches += 1
        if self.batches == 3:
            raise MemoryError("simulated")


def test_check_failure_mid_file__the_write_in_flight_finished_and_the_file_closed(
    recording, tmp_path
):
    path = tmp_path / "h.csv"
    path.write_text(HEADER + PLAIN_ROWS * 20)
    with checks.registered(FailsOnThirdBatch), pytest.raises(MemoryError, match="simulated"):
        V.validate_file(str(path), hosp(), load_cog(), name="h.csv", workdir=str(tmp_path),
                        block_bytes=4096)
    assert len(recording.closed) == 1 and staging_threads() == []
    assert pq.ParquetFile(tmp_path / "staged.parquet").metadata.num_rows > 0  # batches 1 and 2


def test_reader_failing_to_open__the_staged_file_closed_before_the_error_leaves(
    recording, tmp_path, monkeypatch
):
    """An error from opening the CSV reader (Arrow's "straddling object" makes
    ``validate_decoded`` retry on the same ``out``) closes the staged file on its way up, not
    only when the garbage collector drops the writer (the traceback kept here holds it)."""

    def broken(*args, **kwargs):
        raise pa.ArrowInvalid("CSV parse error: simulated")

    monkeypatch.setattr(pacsv, "open_csv", broken)
    decoded = decode((HEADER + PLAIN_ROWS).encode(), max_bytes=2**20)
    with pytest.raises(pa.ArrowInvalid, match="simulated") as raised:
        V.validate_decoded(decoded, hosp(), load_cog(), name="h.csv",
                           out=str(tmp_path / "staged.parquet"))
    assert raised.traceback and len(recording.closed) == 1 and staging_threads() == []


def test_many_batches__the_staged_table_is_the_one_batch_table(tmp_path):
    path = tmp_path / "h.csv"
    months = (PLAIN_ROWS.replace("-03-1", f"-{m:02d}-1") for m in range(1, 11))
    path.write_text(HEADER + "".join(months))
    tables = []
    for block in (1024, V.BLOCK_BYTES):
        work = tmp_path / str(block)
        work.mkdir()
        v = V.validate_file(str(path), hosp(), load_cog(), name="h.csv", workdir=str(work),
                            block_bytes=block)
        assert v.accepted and v.rows_published == 3840
        tables.append(v.table)
    assert tables[0].equals(tables[1])
    assert pq.ParquetFile(tmp_path / "1024" / "staged.parquet").num_row_groups > 10


# Measures: read without Arrow's cast where it changes nothing; the totals' shortcuts.

def test_read_measure__the_values_of_arrows_cast_and_none_when_all_missing(tmp_path):
    table = pa.table({
        "plain": pa.array([1, 2, 3, 4], pa.int64()),
        "some": pa.array([1, None, 3, None], pa.int64()),
        "none": pa.array([None] * 4, pa.int64()),
        "decimal": pa.array([0.5, 1.5, None, 2.0], pa.float64()),
        "big": pa.array([1, 2, 3, 2**53], pa.int64()),
    })
    pq.write_table(table, tmp_path / "s.parquet", row_group_size=3)
    staged = pq.ParquetFile(tmp_path / "s.parquet")
    assert C.read_measure(staged, "none", 4) is None
    for name, missing in (("plain", 0), ("some", 2), ("decimal", 1), ("big", 0)):
        values, n_missing = C.read_measure(staged, name, 4)
        expected = C.floats(table.column(name))
        assert n_missing == missing and np.array_equal(values, expected, equal_nan=True)
    assert C.read_measure(staged, "some", 4)[0].tolist()[0] == 1.0


def test_floats_into__integers_past_2_53_rounded_not_refused():
    for value in (2**53 + 1, -(2**53) - 1, 123456789012345678):
        chunk = pa.array([1, value], pa.int64())
        out = np.empty(2)
        C.floats_into(out, chunk)
        assert out.tolist() == [1.0, float(value)] == C.floats(chunk).tolist()
    with_missing = pa.array([None, 2**60 + 1], pa.int64())
    assert C.floats(with_missing)[1] == 2.0**60 and np.isnan(C.floats(with_missing)[0])


def test_counts_past_2_53__accepted_and_staged_exactly(tmp_path):
    """A count of 123456789012345678 used to reject the file ("not in range" from the float
    cast of the cross-row checks): it is a valid integer, staged as written."""
    big = 123456789012345678
    body = ('"dep";"sexe";"jour";"hosp";"rea";"rad";"dc"\n'
            f'"01";"0";"2020-03-18";{big};0;1;0\n"01";"1";"2020-03-18";{big - 10};0;1;0\n'
            '"01";"2";"2020-03-18";10;0;0;0\n"01";"0";"2020-03-19";5;0;1;0\n')
    path = tmp_path / "big.csv"
    path.write_text(body)
    v = V.validate_file(str(path), hosp(), load_cog(), name="big.csv", workdir=str(tmp_path))
    assert v.accepted and v.errors.total == 0 and v.rows == 4
    staged = pq.read_table(v.staged)
    assert staged["hosp"].to_pylist() == [big, big - 10, 10, 5]
    # the total equals its parts there: no warning; the cumulative rad goes on from 1 to 1
    assert "total-below-parts" not in v.warnings.by_type
    assert "cumulative-decrease" not in v.warnings.by_type


def test_totals__the_same_warnings_whether_or_not_missing_values_are_known_absent(monkeypatch):
    body = HEADER + (
        "75;0;2020-03-18;10;5;1;1\n75;1;2020-03-18;7;3;1;1\n75;2;2020-03-18;5;NA;0;0\n"
        "75;0;2020-03-19;10;2;2;1\n75;1;2020-03-19;6;1;1;1\n75;2;2020-03-19;6;2;1;1\n"
        "13;0;2020-03-18;3;1;1;1\n13;1;2020-03-18;2;1;1;1\n13;2;2020-03-18;1;1;1;1\n"
    )
    shortcut = run(body)
    read = C.read_measure

    def no_shortcut(staged, name, rows):  # every measure read, every count taken as "some missing"
        got = read(staged, name, rows)
        return (np.full(rows, np.nan), rows) if got is None else (got[0], max(got[1], 1))

    monkeypatch.setattr(C, "read_measure", no_shortcut)
    assert outcome(run(body)) == outcome(shortcut)
    assert [(w.row_number, w.field_name, w.cell) for w in shortcut.warnings.items
            if w.type == "total-below-parts"] == [  # not rea at line 2: a part is missing
        (2, "hosp", "10"), (5, "hosp", "10"), (5, "rea", "2"), (8, "rea", "1"), (8, "rad", "1"),
        (5, "dc", "1"), (8, "dc", "1")]
