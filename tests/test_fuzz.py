"""Property-based fuzzing of decode + validate + report (issue 13, item 3): random bytes, random
dialects (delimiter, quotes, line ends, BOM, UTF-16, single-byte encodings, gzip) and random
shapes (0 to thousands of columns, ragged rows, huge cells) under random limits and reader
blocks always give a ``Validation`` whose report agrees with itself and fits its size limit;
never an exception, never an unforeseen failure of a check.

``OPENDEPOT_FUZZ_EXAMPLES`` sets the examples per property (200 by default: CI); the search is
derandomized, so a run is reproducible. Strategies list their most useful choice first:
Hypothesis draws the first ones most."""

from __future__ import annotations

import gzip
import json
import os
from datetime import date, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from report_invariant import assert_report_agrees

from opendepot.registry import Dataset, Field, load_cog, load_registry
from opendepot.report import build_report, report_bytes
from opendepot.validate import Limits, Validation, validate

EXAMPLES = int(os.environ.get("OPENDEPOT_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

REGISTRY = load_registry()
COG = load_cog()
DATASETS = ("donnees-hospitalieres-covid19", "chiffres-cles", "covid-hospit-incid-reg",
            "sp-pos-quot-fra", "production-masques")
"""Area codes of departments, regions, France or none; a declared encoding (cp1252);
aliases; dates and ISO weeks; 4 to 20 fields."""

VALUES = ["01", "2A", "20", "75", "971", "FR", "11", "0", "1", "2", "9", "2020-03-18",
          "18/03/2020", "2020-02-30", "2020-S12", "1.5", "-1", "NA", "", " ", "x", "=1+1",
          "99999999999999999999", "Île-de-France", "https://example.org/a;b", 'a"b', "a\nb"]
"""Cells that are wrong somewhere: bad codes, dates, numbers, formulas, quotes, line ends."""
CODES = {"dep": ["01", "2A", "75", "971", "976"], "reg": ["11", "84", "94"], "fra": ["FR"]}

limits_st = st.builds(
    Limits,
    max_line_bytes=st.sampled_from([16 << 20] * 5 + [4096, 300, 16]),
    max_columns=st.sampled_from([1000] * 5 + [50, 8, 1]),
    max_report_bytes=st.sampled_from([2 << 20, 2 << 20, 16 << 10, 64 << 10]),
)
"""Mostly the defaults, else smaller limits (a report limit under 16 KiB may not hold its
frame)."""


@st.composite
def cells(draw, field: Field | None = None, dataset: Dataset | None = None,
          noisy: bool = True, row: int = 0) -> str:
    """A plausible value of ``field`` (of ``dataset``; None: any column) on data row ``row``
    (its day or week: keys differ from row to row); if ``noisy``, 1 in 4 is one of ``VALUES``
    or random text, and 1 in 20 a huge cell (300 bytes to 64 KiB)."""
    kind = draw(st.integers(0, 19)) if noisy else 19
    if kind == 1:
        return draw(st.sampled_from(["x", "9", "é", '"', ";", "\n"])) * draw(
            st.integers(300, 65536))
    if kind == 2:  # no NUL: a file with one is refused before anything else (random bytes)
        return draw(st.text(st.characters(blacklist_characters="\x00"), max_size=12))
    if kind < 6 or field is None or dataset is None:
        return draw(st.sampled_from(VALUES))
    if field.name == dataset.geography.field:
        return draw(st.sampled_from(CODES[dataset.geography.level or "fra"]))
    if "enum" in field.constraints:
        return str(draw(st.sampled_from(field.constraints["enum"])))
    if field.type == "date":
        return (date(2020, 3, 1) + timedelta(days=row)).isoformat()
    if field.type == "week":
        return f"{2020 + row // 52}-S{row % 52 + 1:02d}"
    if field.type in ("integer", "number"):
        return str(draw(st.integers(0, 500)))
    return draw(st.sampled_from(["a", "DEP-01", "FRA", "https://example.org/x"]))


@st.composite
def headers(draw, dataset: Dataset) -> list[str]:
    """The schema's columns in any order (optional ones maybe left out), else random labels;
    1 in 8 with a run of unknown, blank or repeated labels (up to 3,000 columns)."""
    if draw(st.integers(0, 3)):
        header = draw(st.permutations([f.name for f in dataset.fields
                                       if not f.optional_column or draw(st.booleans())]))
    else:
        names = [*dataset.field_names, *dataset.aliases, "", "x", "DEP", "dep"]
        header = draw(st.lists(st.sampled_from(names), min_size=1, max_size=12))
    if not draw(st.integers(0, 7)):
        header += [draw(st.sampled_from(["x", "", "dep"]))] * draw(
            st.sampled_from([11, 40, 999, 3000, 1]))
    return header


@st.composite
def csv_bodies(draw) -> tuple[bytes, str]:
    """(a CSV file's bytes, the dataset it is for)."""
    dataset = REGISTRY.get(draw(st.sampled_from(DATASETS)))
    header = draw(headers(dataset))
    fields = [dataset.field(n) if n in dataset.field_names else None for n in header]
    noisy = draw(st.booleans())
    rows = [[draw(cells(f, dataset, noisy, i)) for f in fields]
            for i in range(draw(st.sampled_from([30, 5, 300, 1, 0])))]
    if not draw(st.integers(0, 3)):  # ragged rows
        rows = [row[: len(row) - draw(st.integers(0, 2))]
                + [draw(cells()) for _ in range(draw(st.integers(0, 2)))] for row in rows]
    delimiter = draw(st.sampled_from([";", ";", ",", "\t", "|"]))
    quote = draw(st.sampled_from(["needed", "needed", "none", "all", "broken"]))

    def written(cell: str) -> str:
        if quote == "all" or (quote == "needed" and any(c in cell for c in f'{delimiter}"\n')):
            return '"' + cell.replace('"', '""') + '"'
        return '"' + cell if quote == "broken" and not draw(st.integers(0, 20)) else cell

    lines = [delimiter.join(written(c) for c in row) for row in [header, *rows]]
    end = draw(st.sampled_from(["\n", "\r\n", "\r", "\r\r\n", "mixed"]))
    text = "".join(line + (draw(st.sampled_from(["\n", "\r\n", "\r"])) if end == "mixed"
                           else end) for line in lines)
    if draw(st.integers(0, 3)) == 0:
        text = text.rstrip("\r\n")  # no line end after the last line
    encoding = draw(st.sampled_from(["utf-8"] * 4 + ["utf-8-sig", "utf-16", "utf-16-le",
                                                     "cp1252", "latin-1"]))
    raw = text.encode(encoding, errors="replace")
    if not draw(st.integers(0, 4)):
        raw = gzip.compress(raw, mtime=0)
        if not draw(st.integers(0, 3)):
            raw = raw[: draw(st.integers(0, len(raw)))]  # cut short
    return raw, dataset.name


def check(raw: bytes, dataset: str, limits: Limits, max_errors: int = 1000,
          block_bytes: int = 16 << 20) -> Validation:
    """The property: a Validation, its report agreeing with itself and within its limit
    (``block_bytes`` small makes the reader's blocks small too: long rows then take the paths
    of rows longer than a block)."""
    v = validate(raw, REGISTRY.get(dataset), COG, name="fuzz.csv", limits=limits,
                 max_errors=max_errors, max_bytes=4 << 20, block_bytes=block_bytes)
    assert isinstance(v, Validation)
    report = build_report(v, raw, {"key": f"{dataset}/spf/fuzz.csv"})
    assert report_bytes(report) <= limits.max_report_bytes
    report = json.loads(json.dumps(report, ensure_ascii=False, default=str))
    assert_report_agrees(report)
    assert report["opendepot"]["status"] in {"accepted", "rejected"}
    assert v.accepted or report["stats"]["errors"] >= 1
    unforeseen = [e.message for e in v.errors.items if "report this to the operators" in e.message]
    assert unforeseen == []  # an unforeseen failure of a check is a bug
    return v


@FUZZ
@given(body=csv_bodies(), limits=limits_st, max_errors=st.sampled_from([1000, 5, 1]),
       block_bytes=st.sampled_from([16 << 20, 4096, 1024]))
def test_random_csv_dialects_and_shapes__always_a_report_within_its_limits(
        body, limits, max_errors, block_bytes):
    check(*body, limits, max_errors, block_bytes)


@FUZZ
@given(raw=st.binary(max_size=2000), dataset=st.sampled_from(DATASETS), limits=limits_st)
def test_random_bytes__always_a_report_within_its_limits(raw, dataset, limits):
    check(raw, dataset, limits)


def test_validating_again_and_again__memory_stays_flat(tmp_path):
    """A warm function validates upload after upload: the shapes the properties draw (a wide
    header, long lines, huge cells, a quote left open, gzip, short rows), each validated 15
    times, leave the process's memory where the first rounds put it. (The properties' own
    peak is mostly Hypothesis' bookkeeping, which grows with the examples.)"""
    rows = b"".join(b"01;0;2020-03-%02d;1;1;1;1\n" % d for d in range(1, 29))
    header = b"dep;sexe;jour;hosp;rea;rad;dc\n"
    shapes = [header + rows, header + rows + b"01;1\n", header[:-1] + b";x" * 3000 + b"\n",
              header + rows + b"01;0;2020-04-01;" + b"9" * 300_000 + b";1;1;1\n",
              header + rows[:90] + b'01;"0;2020\n' + rows * 100,
              gzip.compress(header + rows * 3, mtime=0),
              header + b"".join(b"%02d;0;2020-03-%02d;x%s;%s;1;1\n" % (
                  n % 90 + 1, n % 28 + 1, b"y" * 300, b"z" * 300) for n in range(1500))]
    limits = Limits(max_line_bytes=100_000, max_report_bytes=16 << 10)

    def rss() -> int:
        with open("/proc/self/status") as f:
            return int(f.read().split("VmRSS:")[1].split()[0]) << 10

    for round_ in range(15):
        for raw in shapes:
            check(raw, DATASETS[0], limits, block_bytes=4096)
        if round_ == 4:
            settled = rss()
    assert rss() - settled < 16 << 20  # the process's peak is other tests' too: not asserted
