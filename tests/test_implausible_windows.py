"""Implausible rises found window by window (``checks.implausible_rise.positive_rises``): the
same warnings whatever the window, on the real hospital file with cumulative jumps planted in
its national-total rows (``sexe`` 0), and the medians of a series' rises as a sort gives them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import HOSP
from opendepot.checks import implausible_rise
from opendepot.registry import load_cog, load_registry
from opendepot.report import issue_dict
from opendepot.validate import validate_file

NEW = "donnees-hospitalieres-covid19-2021-03-17-17h03.csv"


def with_jumps(real_dir: Path, tmp_path: Path) -> Path:
    """The real file with ``dc`` and ``rad`` jumps on a few days of the total rows (a total
    above its parts stays plausible for the totals check)."""
    lines = (real_dir / HOSP / NEW).read_bytes().split(b"\n")
    out = [lines[0]]
    for i, line in enumerate(x for x in lines[1:] if x):
        cells = line.split(b";")
        if cells[1] == b'"0"':
            if i % 997 < 3:
                cells[-1] = str(int(cells[-1]) * 50 + 1000).encode()
            if i % 1499 < 3:
                cells[-2] = str(int(cells[-2]) + 5000).encode()
        out.append(b";".join(cells))
    path = tmp_path / "jumps.csv"
    path.write_bytes(b"\n".join(out) + b"\n")
    return path


def rises(path: Path, tmp_path: Path) -> list[dict]:
    work = tmp_path / f"w{len(list(tmp_path.iterdir()))}"
    work.mkdir()
    v = validate_file(str(path), load_registry().get(HOSP), load_cog(), name="j.csv",
                      workdir=str(work), max_errors=100_000)
    assert v.accepted
    return [issue_dict(w) for w in v.warnings.items if w.type == "implausible-rise"]


def test_windows_of_any_size__the_same_implausible_rises(real_dir, tmp_path, monkeypatch):
    path = with_jumps(real_dir, tmp_path)
    whole = rises(path, tmp_path)
    assert len(whole) == 183
    first = whole[0]
    assert (first["rowNumber"], first["fieldName"]) == (28484, "rad")
    for window in (97, 4096):
        monkeypatch.setattr(implausible_rise, "WINDOW_ROWS", window)
        assert rises(path, tmp_path) == whole, window


@pytest.mark.parametrize("kind", ["counts", "fractions", "wide"])
def test_medians__those_of_a_sort_by_series_then_value(kind):
    """Whole numbers take one integer sort, others NumPy's ``lexsort``: the same medians."""
    rng = np.random.default_rng(17)
    groups = np.sort(rng.integers(0, 40, 5_000))
    values = {"counts": rng.integers(1, 300, 5_000).astype(float),
              "fractions": rng.random(5_000) * 10,
              "wide": rng.integers(1, 2**40, 5_000).astype(float)}[kind]
    got = implausible_rise.medians(groups, values, 41, 7)
    for g in range(41):
        mine = np.sort(values[groups == g])
        want = np.nan if mine.size < 7 else (mine[(mine.size - 1) // 2] + mine[mine.size // 2]) / 2
        assert got[g] == want or (np.isnan(want) and np.isnan(got[g])), g
