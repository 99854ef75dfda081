"""Rendering a level: the CSV and Parquet files of ``render_level`` / ``LevelWriter`` against one
plain Arrow write of the same rows (CSV formatted in slices on several threads must give the
same bytes), on the real hospital file."""

from __future__ import annotations

import hashlib
import io

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from opendepot import render
from opendepot.registry import load_cog, load_registry
from opendepot.validate import validate

HOSP = "donnees-hospitalieres-covid19"
REAL = "donnees-hospitalieres-covid19/donnees-hospitalieres-covid19-2021-03-17-17h03.csv"


@pytest.fixture(scope="module")
def table(real_dir) -> pa.Table:
    """The real stock file of 2021-03-17, typed by validation (110,595 rows)."""
    v = validate((real_dir / REAL).read_bytes(), load_registry().get(HOSP), load_cog(),
                 name="real.csv")
    assert v.accepted and v.table.num_rows == 110_595
    return v.table


def _arrow_csv(table: pa.Table) -> bytes:
    """One ``write_csv`` in the published dialect with Arrow's default batch size (1,024 rows;
    ``render.CSV_OPTIONS`` formats 65,536 at a time: the same bytes)."""
    sink = io.BytesIO()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(delimiter=";", quoting_style="needed"))
    return sink.getvalue()


@pytest.mark.parametrize(("slice_rows", "inline_rows"), [
    (131_072, render.INLINE_ROWS), (1000, 0), (7, 0), (131_072, 10**9)])
def test_render_level__csv_in_slices_equals_one_arrow_write(table, tmp_path, monkeypatch,
                                                           slice_rows, inline_rows):
    """In slices on the formatting threads, or on the calling thread (fewer rows than
    ``INLINE_ROWS``): the same bytes."""
    sample = table if slice_rows > 1000 else table.slice(5000, 20_003)
    monkeypatch.setattr(render, "CSV_SLICE_ROWS", slice_rows)
    monkeypatch.setattr(render, "INLINE_ROWS", inline_rows)
    csv, parquet = render.render_level(HOSP, "dep", sample, tmp_path)
    data = csv.path.read_bytes()
    assert data == _arrow_csv(sample)
    assert data.startswith(b'"dep";"sexe";"jour";"hosp";"rea";')
    assert data.count(b"\n") == sample.num_rows + 1
    assert (csv.rows, csv.size, csv.sha256) == (
        sample.num_rows, len(data), hashlib.sha256(data).hexdigest())
    assert csv.name == f"{HOSP}-dep.csv" and parquet.name == f"{HOSP}-dep.parquet"
    # Parquet: one write_table of the whole table, byte for byte
    sink = io.BytesIO()
    pq.write_table(sample, sink, compression=render.PARQUET_CODEC)
    assert parquet.path.read_bytes() == sink.getvalue()
    assert parquet.sha256 == hashlib.sha256(sink.getvalue()).hexdigest()


def test_render_level__real_values_in_the_csv(table, tmp_path):
    csv, _ = render.render_level(HOSP, "dep", table, tmp_path)
    lines = csv.path.read_bytes().split(b"\n")
    # the source file's first rows (codes quoted, numbers bare, ISO dates), in file order; the
    # schema's columns this file does not have are empty
    assert lines[:3] == [
        b'"dep";"sexe";"jour";"hosp";"rea";"HospConv";"SSR_USLD";"autres";"rad";"dc"',
        b'"01";0;2020-03-18;2;0;;;;1;0', b'"01";1;2020-03-18;1;0;;;;1;0']
    assert lines[-1] == b"" and len(lines) == 110_597


def test_level_writer__parts_equal_one_write(table, tmp_path, monkeypatch):
    monkeypatch.setattr(render, "CSV_SLICE_ROWS", 10_000)
    (tmp_path / "one").mkdir()
    (tmp_path / "parts").mkdir()
    whole, _ = render.render_level(HOSP, "dep", table, tmp_path / "one")
    cuts = [0, 1, 33_333, 33_333, 110_594, 110_595]  # an empty part and a one-row part included
    parts = [table.slice(a, b - a) for a, b in zip(cuts, cuts[1:], strict=False)]
    files, schema = render.render_parts(HOSP, "dep", parts, tmp_path / "parts")
    assert schema == table.schema
    assert files[0].path.read_bytes() == whole.path.read_bytes()
    assert files[0].sha256 == whole.sha256 and files[0].rows == 110_595
    assert pq.read_table(files[1].path).equals(table)


def test_render_level__no_rows_gives_the_header_only(table, tmp_path):
    csv, parquet = render.render_level(HOSP, "reg", table.schema.empty_table(), tmp_path)
    assert csv.path.read_bytes() == _arrow_csv(table.schema.empty_table())
    assert csv.path.read_bytes().count(b"\n") == 1 and csv.rows == 0
    assert pq.read_table(parquet.path).num_rows == 0
    assert pq.read_table(parquet.path).schema.names == table.schema.names


def test_level_writer__a_failing_slice_raises_once_no_slice_is_running(table, tmp_path,
                                                                       monkeypatch):
    """A slice that fails (disk full, a column Arrow cannot format): ``write`` raises only once
    every other slice and the Parquet write have ended, so nothing still reads the table or
    writes to a file being closed."""
    import threading
    import time

    lock = threading.Lock()
    running: list[int] = []

    def broken(piece: pa.Table, header: bool) -> pa.Buffer:
        with lock:
            running.append(1)
        try:
            if header:
                raise OSError("disk full")
            time.sleep(0.2)  # the later slices are still formatting when the first fails
            return pa.py_buffer(b"x")
        finally:
            with lock:
                running.pop()

    monkeypatch.setattr(render, "CSV_SLICE_ROWS", 1000)
    monkeypatch.setattr(render, "INLINE_ROWS", 0)  # 5,000 rows: in slices all the same
    monkeypatch.setattr(render, "csv_bytes", broken)
    writer = render.LevelWriter(HOSP, "dep", table.schema, tmp_path)
    with pytest.raises(OSError, match="disk full"):
        writer.write(table.slice(0, 5000))
    time.sleep(0.05)  # had write not waited, the later slices would be in their 0.2 s now
    assert running == []  # checked before any close: write itself waited
    assert not writer.closed
    writer.__exit__(None, None, None)
    assert writer.closed


@pytest.mark.parametrize("slice_rows", [131_072, 7])
def test_render_level__formula_cells_escaped_in_every_slice_parquet_as_sent(
        table, tmp_path, monkeypatch, slice_rows):
    """A real table whose department codes were replaced in a few rows by formula-like text:
    the CSV written in slices is one write of the escaped table; the Parquet file keeps them."""
    sample = table.slice(0, 20_003)
    planted = {3: "=1+2", 4_000: "@SUM(A1)", 20_002: "-7"}
    dep = sample["dep"].to_pylist()
    for row, value in planted.items():
        dep[row] = value
    sample = sample.set_column(0, "dep", pa.array(dep, pa.string()))
    monkeypatch.setattr(render, "CSV_SLICE_ROWS", slice_rows)
    monkeypatch.setattr(render, "INLINE_ROWS", 0 if slice_rows < 1000 else render.INLINE_ROWS)
    csv, parquet = render.render_level(HOSP, "dep", sample, tmp_path)
    data = csv.path.read_bytes()
    escaped = sample.set_column(0, "dep", pa.array(
        ["'" + d if i in planted else d for i, d in enumerate(dep)], pa.string()))
    assert data == _arrow_csv(escaped)
    lines = data.split(b"\n")
    assert lines[4].startswith(b"\"'=1+2\";0;") and lines[20_003].startswith(b"\"'-7\";")
    assert pq.read_table(parquet.path).equals(sample)
