"""The bench's history workload (``bench.history``): its daily uploads are what its docstring
says they are, and its figures, with a tiny history (N = 2, then 3), are sane: storage calls
counted, and the published tables hold the rows uploaded, counted here from the real files."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from bench.history import (
    APPEND,
    APPEND_SOURCE,
    KINDS,
    SNAPSHOT_SOURCE,
    append_series,
    run,
    snapshot_series,
)
from conftest import need


@pytest.fixture(scope="module")
def producer_days() -> pd.Series:
    """Rows per day of the append producer in the real file, in date order (pandas, not the
    bench's csv reading)."""
    df = pd.read_csv(need(APPEND_SOURCE), dtype=str, keep_default_na=False)
    return df[df["source_type"] == APPEND[1]].groupby("date").size().sort_index()


def test_append_uploads_are_the_producers_days_then_shifted_cycles(producer_days):
    series = append_series()
    first, last = date.fromisoformat(producer_days.index[0]), producer_days.index[-1]
    span = (date.fromisoformat(last) - first).days + 1
    assert (len(producer_days), first, span) == (268, date(2020, 1, 24), 281)
    for k in (0, 1, 100, 267):
        up = series.upload(k)
        day = producer_days.index[k]
        assert up.key == f"chiffres-cles/ministere-sante/{day}.csv"
        assert up.rows == producer_days.iloc[k]
        assert up.body.count(b"\r\n") == up.rows + 1  # header, rows, the real file's CRLF
    again = series.upload(268 + 5)  # the 6th day again, one cycle later
    shifted = (date.fromisoformat(producer_days.index[5]) + timedelta(days=span)).isoformat()
    assert again.key.endswith(f"/{shifted}.csv")
    assert again.body.replace(shifted.encode(), producer_days.index[5].encode()) == \
        series.upload(5).body


def test_snapshot_uploads_differ_by_one_revised_figure_a_day():
    real = pd.read_csv(need(SNAPSHOT_SOURCE), sep=";", dtype=str)
    series = snapshot_series()
    for k in (0, 1, 215, 216, 400):
        before, after = series.upload(k - 1) if k else None, series.upload(k)
        assert after.rows == len(real) == 216
        rows = [line.split(b";") for line in after.body.splitlines()[1:]]
        hosp = [int(r[1]) for r in rows]
        assert sum(hosp) == real["hosp"].astype(int).sum() + k + 1  # k + 1 revisions so far
        if before is not None:
            old, new = before.body.splitlines(), after.body.splitlines()
            changed = [i for i, (a, b) in enumerate(zip(old, new, strict=True)) if a != b]
            assert changed == [k % 216 + 1]  # one data row (line 0 is the header)
            assert int(new[changed[0]].split(b";")[1]) == int(old[changed[0]].split(b";")[1]) + 1


def test_history_figures_with_a_tiny_history(tmp_path, producer_days):
    seen: list[list[int]] = []
    doc = run((2, 3), reps=2, tmp=tmp_path,
              progress=lambda d: seen.append(d["modes"]["snapshot"]["points"]["3"]
                                             ["uploads_measured"]))
    assert seen == [[4], [4, 5]]  # written after each round, every checkpoint in
    assert doc["checkpoints"] == [2, 3]
    assert list(tmp_path.iterdir()) == []  # the stores (and the checkpoints' copies) are removed
    real_rows = len(pd.read_csv(need(SNAPSHOT_SOURCE), sep=";"))
    for mode in ("append", "snapshot"):
        m = doc["modes"][mode]
        assert m["uploads"] == 5  # built to 3, then two measured (2's copy measured 3 and 4)
        for n, uploads in (("2", [3, 4]), ("3", [4, 5])):
            p = m["points"][n]
            assert p["uploads_measured"] == uploads and p["upload"] in uploads
            assert len(p["publish_seconds_each"]) == 2
            assert p["all_created"] is True
            calls = p["calls"]
            assert calls["total"] == sum(calls[k] for k in KINDS) > 0
            assert calls["put"] > 0 and calls["get"] > 0 and calls["bytes_read"] > 0
            assert p["validate_calls"]["total"] > 0 and p["validate_calls"]["put"] > 0
            assert p["publish_seconds"] > 0 and p["validate_seconds"] > 0
            assert p["manifest_bytes"] > 1000
            assert 0 < p["index_bytes"] < 2000  # small whatever the history
            if mode == "append":  # every day uploaded so far, one producer: one row per key
                expected = int(producer_days.iloc[:p["upload"]].sum())
                assert p["rows"] == {"sources": expected, "consolide": expected}
            else:
                assert p["rows"] == {"fra": real_rows}
    each = doc["ratios_3_to_2_by_mode"]
    assert set(each) == {"append", "snapshot"}
    for mode, r in each.items():
        pts = doc["modes"][mode]["points"]
        assert r["calls"] == round(pts["3"]["calls"]["total"] / pts["2"]["calls"]["total"], 2)
    assert doc["publish_ratio_3_to_2"] == max(r["publish"] for r in each.values())
    assert doc["calls_ratio_3_to_2"] == max(r["calls"] for r in each.values())
    assert doc["publish_ratio_1000_to_10"] is None  # not measured: never a made-up figure
