"""Bounded whatever the shape (issue 13, item 3): line length, column count and report size have
limits (``opendepot.validate.Limits``, settings ``OPENDEPOT_MAX_*``); past them a rejection
names the limit, its setting and the line, in bounded memory, with a small report.

The three shapes of the issue's table, measured before the limits (validate + report + JSON):
a 102,400-column header (200 KB file) took 92 s and 9.1 GB for a 1.16 GB report; a 200 MiB line
without a line end ran out of memory (over 12 GB with delimiters in it); 5,000 columns gave a
94 MB report (675 MiB). The peak memory of each is measured here in a subprocess."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from report_invariant import assert_agrees, assert_report_agrees

from conftest import HOSP
from opendepot.config import ConfigError, Settings
from opendepot.registry import load_cog, load_registry
from opendepot.report import build_report, report_bytes
from opendepot.validate import Limits, validate, validate_file

HEADER = b"dep;sexe;jour;hosp;rea;rad;dc"
ROW = b"01;0;2020-03-18;1;1;1;1"
MiB = 1 << 20
GiB = 1 << 30


def hosp():
    return load_registry().get(HOSP)


def run(body: bytes, **kw):
    return assert_agrees(validate(body, hosp(), load_cog(), name="t.csv", **kw))


def wide_header(path: Path, columns: int) -> None:
    """A header of ``columns`` columns: the schema's 7, then in turn an unknown, a blank and a
    repeated label (1 or 3 bytes each: 238,971 bytes for 102,400 columns), and one row."""
    labels = [b"x", b"", b"dep"]
    path.write_bytes(HEADER + b";" + b";".join(labels[i % 3] for i in range(columns - 7))
                     + b"\n" + ROW + b"\n")


MEASURE = textwrap.dedent("""
    import json, os, sys, time
    from opendepot.registry import load_cog, load_registry
    from opendepot.report import build_report, report_bytes
    from opendepot.validate import Limits, validate_file
    path, limits = sys.argv[1], Limits(**json.loads(sys.argv[2]))
    ds, cog = load_registry().get("donnees-hospitalieres-covid19"), load_cog()
    def hwm():  # this process's peak (kB); ru_maxrss would keep the forking parent's after exec
        with open("/proc/self/status") as f:
            return int(f.read().split("VmHWM:")[1].split()[0])
    before = hwm()
    started = time.perf_counter()
    v = validate_file(path, ds, cog, name="t.csv", workdir=os.path.dirname(path), limits=limits)
    report = build_report(v, None, {"key": "t.csv"}, size=os.path.getsize(path))
    size = report_bytes(report)
    body = json.dumps(report, ensure_ascii=False, indent=1, default=str).encode()
    peak = hwm()
    e = v.errors.items[0]
    print(json.dumps({"seconds": time.perf_counter() - started, "peak": peak * 1024,
                      "growth": (peak - before) * 1024, "bytes": size, "written": len(body),
                      "by_type": v.errors.by_type, "line": e.row_number, "message": e.message}))
""")


def measured(path: Path, **limits: int) -> dict:
    """Validate + report + JSON of ``path`` in a fresh Python: the figures and the first
    error (peak RSS of the whole process, and its growth over the imports, in bytes)."""
    done = subprocess.run([sys.executable, "-c", MEASURE, str(path), json.dumps(limits)],
                          capture_output=True, text=True, timeout=300, check=True)
    return json.loads(done.stdout)


# ------------------------------------------------------------------------------- settings


def test_settings__defaults_are_the_limits_defaults_and_read_from_the_environment():
    assert Limits.of(Settings()) == Limits() == Limits(16 * MiB, 1000, 2 * MiB)
    env = {"OPENDEPOT_MAX_LINE_BYTES": "4096", "OPENDEPOT_MAX_COLUMNS": "50",
           "OPENDEPOT_MAX_REPORT_BYTES": "65536"}
    assert Limits.of(Settings.from_env(env)) == Limits(4096, 50, 65536)
    with pytest.raises(ConfigError, match="OPENDEPOT_MAX_COLUMNS='0' must be positive"):
        Settings.from_env({"OPENDEPOT_MAX_COLUMNS": "0"})


def test_settings__the_ingest_path_uses_them(pipeline):
    pipeline.settings = Settings(publish_queue_url="memory://p.fifo", max_columns=5)
    out = pipeline.drop(f"{HOSP}/spf/wide.csv", HEADER + b"\n" + ROW + b"\n")
    assert out.status == "rejected"
    [error] = out.report["tasks"][0]["errors"]
    assert error["type"] == "too-many-columns" and error["rowNumber"] == 1
    assert "the header has 7 columns, more than the limit of 5 (setting OPENDEPOT_MAX_COLUMNS)" \
        in error["message"]
    assert_report_agrees(out.report)


# ---------------------------------------------------------------- 102,400 columns (200 KB)


def test_102400_columns__rejected_at_line_1_naming_the_limit_small_report_bounded_memory(
        tmp_path):
    path = tmp_path / "wide.csv"
    wide_header(path, 102_400)
    assert path.stat().st_size == 238_971
    got = measured(path)
    assert got["by_type"] == {"too-many-columns": 1} and got["line"] == 1
    assert got["message"].startswith(
        "Line 1: the header has 102400 columns, more than the limit of 1000 (setting "
        "OPENDEPOT_MAX_COLUMNS)")
    assert got["bytes"] == got["written"] < 32 * 1024  # was 1.16 GB
    assert got["peak"] < GiB and got["growth"] < 256 * MiB  # was 9.1 GB


def test_102400_columns_under_a_raised_limit__one_issue_per_type_linear_work(tmp_path):
    path = tmp_path / "wide.csv"
    wide_header(path, 102_400)
    got = measured(path, max_columns=200_000)
    assert got["by_type"] == {"blank-label": 1, "duplicate-label": 1, "extra-label": 1}
    assert got["bytes"] <= 2 * MiB and got["peak"] < GiB
    v = validate_file(str(path), hosp(), load_cog(), name="t.csv", workdir=str(tmp_path),
                      limits=Limits(max_columns=200_000))
    assert [(e.type, e.field_number) for e in v.errors.items] == [
        ("extra-label", 8), ("blank-label", 9), ("duplicate-label", 10)]
    blank = v.errors.items[1].message
    assert blank.startswith("Line 1, column 9: the header label is blank; 34130 more columns "
                            "are blank too (34131 in all): columns 12, 15, 18, ")
    assert blank.endswith(", 69 and 34110 more")
    assert "34130 more columns repeat an earlier column too (34131 in all): columns " \
           "13 'dep' (repeats 1), 16 'dep' (repeats 1)" in v.errors.items[2].message
    assert_agrees(v)


def test_label_problems__one_by_one_up_to_ten_of_a_type_then_grouped():
    ten = run(HEADER + b";" + b";".join(b"x%d" % i for i in range(10)) + b"\n" + ROW + b"\n")
    assert [(e.type, e.field_number) for e in ten.errors.items] == [
        ("extra-label", n) for n in range(8, 18)]
    assert ten.errors.items[0].message == (
        "Line 1, column 8: column 'x0' is not in the schema of donnees-hospitalieres-covid19 "
        "(expected dep, sexe, jour, hosp, rea, HospConv, SSR_USLD, autres, rad, dc)")
    eleven = run(HEADER + b";" + b";".join(b"x%d" % i for i in range(11)) + b"\n" + ROW + b"\n")
    [one] = eleven.errors.items
    assert (one.type, one.field_number, one.cell) == ("extra-label", 8, "x0")
    assert one.message.endswith("; 10 more columns are not in the schema either (11 in all): "
                                "columns 9 'x1', 10 'x2', 11 'x3', 12 'x4', 13 'x5', 14 'x6', "
                                "15 'x7', 16 'x8', 17 'x9', 18 'x10'")


# ----------------------------------------------------------- a 200 MiB line, no line end


def test_200_mib_line_without_line_end__rejected_at_line_1_in_bounded_memory(tmp_path):
    path = tmp_path / "line.csv"
    with open(path, "wb") as f:  # delimiters in it: 100 million empty labels, once
        for _ in range(200):
            f.write(b"1;" * (MiB // 2))
    assert path.stat().st_size == 200 * MiB
    got = measured(path)
    assert got["by_type"] == {"line-too-long": 1} and got["line"] == 1
    assert got["message"].startswith(
        "Line 1: the header line is longer than the limit of 16777216 bytes (setting "
        "OPENDEPOT_MAX_LINE_BYTES)")
    assert got["bytes"] < 4096
    assert got["peak"] < GiB and got["growth"] < 256 * MiB  # was over 12 GB, MemoryError


def test_header_at_the_line_limit__16_mib_of_delimiters_rejected_in_bounded_memory(tmp_path):
    path = tmp_path / "delimiters.csv"
    path.write_bytes(b";" * (16 * MiB - 1) + b"\n" + ROW + b"\n")
    got = measured(path)
    assert got["by_type"] == {"too-many-columns": 1} and got["line"] == 1
    assert got["message"].startswith("Line 1: the header has 16777216 columns, more than the "
                                     "limit of 1000")
    assert got["bytes"] < 32 * 1024 and got["peak"] < GiB and got["growth"] < 512 * MiB


@pytest.mark.parametrize("limit, longest, verdict", [(1000, 1000, "accepted"),
                                                      (1000, 1001, "line-too-long")])
def test_line_limit__exact_on_the_header_line(limit, longest, verdict):
    header = HEADER + b";" + b"x" * (longest - len(HEADER) - 1)  # an unknown label: rejected
    v = run(header + b"\n" + ROW + b";1\n", limits=Limits(max_line_bytes=limit))
    first = v.errors.items[0]
    assert len(header) == longest
    assert first.type == ("extra-label" if verdict == "accepted" else verdict)
    if verdict == "line-too-long":
        assert first.row_number == 1 and "limit of 1000 bytes" in first.message


def test_long_data_line__rejected_naming_its_line(tmp_path):
    body = (HEADER + b"\n" + ROW + b"\n" + ROW[:-1].replace(b"18", b"19") + b"9" * 5000
            + b"\n" + ROW.replace(b"18", b"20") + b"\n")
    v = run(body, limits=Limits(max_line_bytes=4096))
    [e] = v.errors.items
    assert (e.type, e.row_number) == ("line-too-long", 3)
    assert e.message.startswith("Line 3: the line is longer than the limit of 4096 bytes "
                                "(setting OPENDEPOT_MAX_LINE_BYTES)")
    # the same line under the default limit: read, and its value quoted cut to 200 characters
    [cell] = run(body).errors.items
    assert (cell.type, cell.row_number, len(cell.cell)) == ("type-error", 3, 201)
    assert cell.cell.endswith("9\u2026") and len(cell.message) < 400
    assert all(len(c) <= 201 for c in cell.cells)


def test_row_spanning_lines__a_quote_left_open_named_at_its_first_line():
    rows = b"".join(b"01;0;2020-03-%02d;1;1;1;1\n" % d for d in range(1, 29))
    body = HEADER + b"\n" + rows[:100] + b'01;"0;2020\n' + rows * 1500  # 1 MB after the quote
    v = run(body, block_bytes=4096, limits=Limits(max_line_bytes=65536))
    [e] = v.errors.items
    assert (e.type, e.row_number) == ("line-too-long", 6)
    assert e.message.startswith("Line 6: the row starting on this line spans lines (a quoted "
                                "value, maybe a quote left open) and is longer than the limit "
                                "of 65536 bytes")


def test_long_lines_under_the_limit__read_in_bigger_blocks_same_result():
    rows = b"".join(b"01;0;2020-03-%02d;1;1;1;1\n" % d for d in range(1, 29))
    long = b"02;0;2020-03-18;1;1;1;" + b"9" * 20_000 + b"\n"
    small = run(HEADER + b"\n" + rows + long, block_bytes=4096,
                limits=Limits(max_line_bytes=65536))
    whole = run(HEADER + b"\n" + rows + long)
    assert [(e.type, e.row_number) for e in small.errors.items] == [("type-error", 30)]
    assert [(e.type, e.row_number, e.cell) for e in small.errors.items] == [
        (e.type, e.row_number, e.cell) for e in whole.errors.items]


# --------------------------------------------------------------------------- 5,000 columns


def test_5000_columns__rejected_or_one_grouped_issue_small_report(tmp_path):
    path = tmp_path / "five.csv"
    labels = b";".join(b"extra%d" % i for i in range(5000 - 7))
    row = b"01;0;2020-03-18;1;1;1;1" + b";1" * (5000 - 7)
    path.write_bytes(HEADER + b";" + labels + b"\n" + b"\n".join([row] * 28) + b"\n")
    got = measured(path)
    assert got["by_type"] == {"too-many-columns": 1} and got["line"] == 1
    assert "the header has 5000 columns, more than the limit of 1000" in got["message"]
    assert got["bytes"] < 32 * 1024 and got["peak"] < GiB  # was 94 MB and 685 MiB
    raised = measured(path, max_columns=10_000)
    assert raised["by_type"] == {"extra-label": 1} and raised["line"] == 1
    assert "; 4992 more columns are not in the schema either (4993 in all): columns " \
           "9 'extra1', 10 'extra2'" in raised["message"]
    assert raised["message"].endswith(", 28 'extra20' and 4972 more")
    assert raised["bytes"] < 128 * 1024 and raised["peak"] < GiB


# -------------------------------------------------------------------------- report size


def test_report_over_its_limit__shortened_all_counted_invariant_kept():
    body = HEADER + b"\n" + b"".join(
        b"01;0;2020-03-%02d;%s;%s;1;1\n" % (d % 28 + 1, b"x" * 500, b"y" * 300)
        for d in range(3000))
    for limit, listed in ((2 * MiB, 1000), (MiB, 859), (16384, 12)):
        v = run(body, limits=Limits(max_report_bytes=limit))
        report = build_report(v, None, {"key": "t.csv"})
        assert_report_agrees(report)
        assert report_bytes(report) <= limit
        task = report["tasks"][0]
        assert task["stats"]["errors"] == v.errors.total == 5972 + 3000
        assert len(task["errors"]) == report["opendepot"]["error_limit"] == listed
        note = [w for w in task["warnings"] if w.startswith("report shortened")]
        if listed == 1000:
            assert note == []
        else:
            assert note == [
                f"report shortened to fit its limit of {limit} bytes (setting "
                f"OPENDEPOT_MAX_REPORT_BYTES): values cut to 200 characters, lists in issues to "
                f"20 items, labels to the first 20; {8972 - listed} of 8972 errors and 0 of 0 "
                f"warnings are not listed (all are counted in stats)"]
            assert task["warnings"][0] == f"reached error limit: {listed} errors shown of 8972 found"


def test_real_file__same_report_under_default_and_unbounded_limits(real_dir):
    raw = (real_dir / "donnees-hospitalieres-covid19"
           / "donnees-hospitalieres-covid19-2020-11-07-19h00.csv").read_bytes()
    unbounded = Limits(max_line_bytes=GiB, max_columns=10**6, max_report_bytes=GiB)
    reports = []
    for limits in (Limits(), unbounded):
        v = run(raw, limits=limits)
        report = build_report(v, raw, {"key": "f.csv"})
        report["stats"]["seconds"] = report["tasks"][0]["stats"]["seconds"] = 0
        reports.append(report)
    assert reports[0] == reports[1]
    stats = reports[0]["tasks"][0]["stats"]
    assert (stats["errors"], stats["warnings"], stats["rows"]) == (3, 941, 71_208)
    assert not any(w.startswith("report shortened") for w in reports[0]["tasks"][0]["warnings"])
    assert 400_000 < report_bytes(reports[0]) < 2 * MiB


def test_validations_one_after_another__leave_no_open_file_and_no_memory_behind(tmp_path):
    """A warm function validates upload after upload: before, every validation kept its CSV
    reader (and its open file, in a removed work directory: disk never freed) and its errors,
    held by a cycle through Arrow that the garbage collector cannot see."""
    body = HEADER + b"\r\n" + b"".join(b"01;0;2020-03-%02d;1;1;1;1\r\n" % d for d in range(1, 29))
    for name, extra in (("valid", b""), ("short-row", b"01;1\r\n")):
        path = tmp_path / f"{name}.csv"
        path.write_bytes(body + extra)
        open_files = len(os.listdir("/proc/self/fd"))
        for _ in range(20):
            v = validate_file(str(path), hosp(), load_cog(), name="t.csv", workdir=str(tmp_path))
        gc.collect()
        assert len(os.listdir("/proc/self/fd")) == open_files
        assert v.status == ("accepted" if name == "valid" else "rejected")
