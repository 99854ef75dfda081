"""What a version changed against the one before (issue 14, item 3): ``opendepot.changes`` on
small tables built here, then real files published through the pipeline and checked against
an independent pandas computation from the source CSV files."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import HOSP, REAL, Pipeline, need
from opendepot import changes, index
from opendepot.changes import Spec, compare, compare_files
from opendepot.publication import publish_dataset
from opendepot.registry import load_cog, load_registry

D = date(2020, 3, 18)
SPEC = Spec(key=("dep", "jour"), measures=("hosp", "rea"), time_field="jour")


def day(n: int) -> date:
    return D + timedelta(days=n)


def table(rows: list[tuple[Any, ...]], names: tuple[str, ...] = ("dep", "jour", "hosp", "rea"),
          types: tuple[pa.DataType, ...] = (pa.string(), pa.date32(), pa.int64(), pa.int64()),
          ) -> pa.Table:
    cols = list(zip(*rows, strict=True)) if rows else [[] for _ in names]
    return pa.table({n: pa.array(list(c), t) for n, c, t in zip(names, cols, types, strict=True)})


# --- small tables -------------------------------------------------------------------------------


def test_rows_added_removed_changed_and_cells_per_column() -> None:
    old = table([("01", day(0), 1, 0), ("01", day(1), 2, 0), ("02", day(0), 3, 1),
                 ("02", day(1), 4, 1)])
    new = table([("01", day(1), 2, 5), ("02", day(0), 9, 1), ("02", day(1), 4, 1),
                 ("03", day(1), 7, 7), ("03", day(2), 8, 8)])
    c = compare(old, new, SPEC)
    assert (c.rows_before, c.rows_after) == (4, 5)
    assert (c.rows_added, c.rows_removed, c.rows_changed, c.rows_unchanged) == (2, 1, 2, 1)
    assert [(col.name, col.changed) for col in c.columns] == [("hosp", 1), ("rea", 1)]
    assert c.cells_changed == 2 and c.csv_rows is None
    doc = c.to_json()
    assert doc["rows"] == {"before": 4, "after": 5, "added": 2, "removed": 1, "changed": 2,
                           "unchanged": 1}
    assert doc["cells"] == {"changed": 2, "csv_rows": None, "csv_truncated": False}
    assert doc["columns"][0]["largest"] == [
        {"key": {"dep": "02", "jour": "2020-03-18"}, "old": 3, "new": 9, "delta": 6}]
    dep = next(v for v in c.key_values if v.column == "dep")
    assert (dep.before, dep.after, dep.added, dep.missing) == (2, 3, 1, 0)
    assert json.loads(json.dumps(doc)) == doc  # plain JSON


def test_null_against_a_value_is_a_change__two_nulls_and_two_nans_are_not() -> None:
    names = ("dep", "jour", "hosp", "x")
    types = (pa.string(), pa.date32(), pa.int64(), pa.float64())
    old = table([("01", day(0), None, float("nan")), ("01", day(1), None, None),
                 ("01", day(2), 5, 1.5), ("01", day(3), 5, None)], names, types)
    new = table([("01", day(0), None, float("nan")), ("01", day(1), 4, None),
                 ("01", day(2), None, 1.5), ("01", day(3), 5, 2.0)], names, types)
    c = compare(old, new, Spec(("dep", "jour"), ("hosp", "x"), "jour"))
    assert {col.name: col.changed for col in c.columns} == {"hosp": 2, "x": 1}
    assert c.rows_changed == 3
    # a cell null on one side has no delta: never among the largest changes
    assert all(not col.largest for col in c.columns)


def test_largest_changes__ten_by_absolute_delta_ties_in_key_order() -> None:
    deltas = [5, -9, 3, 9, 1, 7, -7, 2, 8, 4, 6, 9]
    old = table([("01", day(i), 100, 0) for i in range(len(deltas))])
    new = table([("01", day(i), 100 + d, 0) for i, d in enumerate(deltas)])
    (hosp, rea) = compare(old, new, SPEC).columns
    assert [(c.key[1], c.delta) for c in hosp.largest] == [
        (day(1), -9), (day(3), 9), (day(11), 9), (day(8), 8), (day(5), 7), (day(6), -7),
        (day(10), 6), (day(0), 5), (day(9), 4), (day(2), 3)]
    assert (hosp.largest[0].old, hosp.largest[0].new) == (100, 91)
    assert (hosp.changed, rea.changed, rea.largest) == (12, 0, ())


def test_dates_published_before_and_missing_now__history_shrunk_and_warned() -> None:
    old = table([(d, day(i), 1, 1) for i in range(6) for d in ("01", "02")])
    new = table([(d, day(i), 1, 1) for i in (1, 2, 4) for d in ("01", "02")])
    c = compare(old, new, SPEC)
    jour = next(v for v in c.key_values if v.column == "jour")
    assert (jour.before, jour.after, jour.missing, jour.added) == (6, 3, 3, 0)
    assert jour.missing_values == (day(0), day(3), day(5))
    assert c.history is not None and c.history.shrunk
    assert c.history.before == (day(0), day(5)) and c.history.after == (day(1), day(4))
    assert c.drops_published and c.rows_removed == 6
    assert c.warnings == (
        "3 value(s) of jour published before are missing: 2020-03-18, 2020-03-21, 2020-03-23",
        "history of jour shrank: 2020-03-18..2020-03-23 -> 2020-03-19..2020-03-22",
    )
    # a hole that keeps both ends drops published dates without shrinking the history
    holed = compare(old, table([(d, day(i), 1, 1) for i in (0, 1, 5) for d in ("01", "02")]),
                    SPEC)
    assert holed.drops_published and holed.history is not None and not holed.history.shrunk


def test_schema_changes__added_only_is_additive__removed_or_retyped_is_not() -> None:
    old = table([("01", day(0), 1, 0), ("01", day(1), 2, 0)])
    added = old.append_column("HospConv", pa.array([None, 3], pa.int64()))
    c = compare(old, added, SPEC)
    assert c.schema.added == (("HospConv", "int64"),) and c.schema.additive
    assert c.warnings == ("columns added (additive): HospConv",) and not c.drops_published
    assert c.cells_changed == 0  # a new column is a schema change, not changed cells

    removed = compare(added, old, SPEC)
    assert removed.schema.removed == (("HospConv", "int64"),) and not removed.schema.additive
    assert removed.warnings == ("columns removed: HospConv",)

    # int64 -> double: compared as numbers (1 == 1.0), the type change reported
    retyped = old.set_column(2, "hosp", pa.array([1.0, 2.5], pa.float64()))
    r = compare(old, retyped, SPEC)
    assert r.schema.retyped == (("hosp", "int64", "double"),) and not r.schema.additive
    assert [(c.name, c.changed) for c in r.columns] == [("hosp", 1), ("rea", 0)]
    assert r.columns[0].largest[0].delta == 0.5
    # a key retyped (date -> text) is compared as text
    text_days = old.set_column(1, "jour", pa.array(["2020-03-18", "2020-03-19"]))
    t = compare(old, text_days, SPEC)
    assert (t.rows_added, t.rows_removed, t.rows_changed) == (0, 0, 0)


def test_ignored_columns_are_not_compared() -> None:
    names = ("dep", "jour", "hosp", "upload_id")
    types = (pa.string(), pa.date32(), pa.int64(), pa.string())
    old = table([("01", day(0), 1, "a")], names, types)
    new = table([("01", day(0), 1, "b")], names, types)
    assert compare(old, new, dataclasses.replace(SPEC, ignore=("upload_id",))).cells_changed == 0
    assert compare(old, new, SPEC).cells_changed == 1


def test_key_column_new_in_this_version__rows_not_matched_schema_still_reported(
    tmp_path: Path,
) -> None:
    """The reviewer's case: ``provenance`` turned on adds ``producer`` to the published key; the
    previous table has no such column. No row can be matched: all removed, all added."""
    names, types = ("dep", "jour", "n"), (pa.string(), pa.date32(), pa.int64())
    old = table([("01", day(0), 1), ("02", day(0), 2)], names, types)
    new = table([("01", day(0), "spf", 1), ("02", day(0), "spf", 3), ("02", day(1), "ars", 4)],
                ("dep", "jour", "producer", "n"), (*types[:2], pa.string(), pa.int64()))
    spec = Spec(key=("dep", "jour", "producer"), measures=("n",), time_field="jour")
    note = "key changed: rows not matched (key columns not in both versions: producer)"
    c = compare(old, new, spec)
    assert (c.rows_before, c.rows_after, c.rows_added, c.rows_removed, c.rows_changed,
            c.rows_unchanged) == (2, 3, 3, 2, 0, 0)
    assert (c.note, c.columns, c.cells_changed, c.csv_rows) == (note, (), 0, None)
    assert c.schema.added == (("producer", "string"),)
    assert c.warnings == (note, "columns added (additive): producer")
    assert [(v.column, v.before, v.after, v.added) for v in c.key_values] == [
        ("dep", 2, 2, 0), ("jour", 1, 2, 1)]
    assert c.history is not None and (c.history.before, c.history.after) == (
        (day(0), day(0)), (day(0), day(1)))
    doc = changes.document(c, dataset="d", level="dep", version="v2", previous="v1",
                           csv=None)
    assert (doc["note"], doc["key"], doc["rows"]["added"]) == (note, list(spec.key), 3)
    # and back: the key column removed; compare_files, in ranges, says the same
    pq.write_table(old, tmp_path / "old.parquet")
    pq.write_table(new, tmp_path / "new.parquet")
    for a, b, n in (("old", "new", note), ("new", "old", note)):
        got = compare_files(tmp_path / f"{a}.parquet", tmp_path / f"{b}.parquet", spec,
                            tmp_path / "c.csv", range_rows=1)
        want = compare(pq.read_table(tmp_path / f"{a}.parquet"),
                       pq.read_table(tmp_path / f"{b}.parquet"), spec)
        assert dataclasses.replace(got, csv_rows=None) == want and got.note == n
        assert (tmp_path / "c.csv").read_text() == '"dep";"jour";"column";"old";"new"\n'
    back = compare(new, old, spec)
    assert (back.rows_added, back.rows_removed, back.schema.removed) == (
        2, 3, (("producer", "string"),))
    assert back.warnings == (  # the dates dropped are still found
        note, "1 value(s) of jour published before are missing: 2020-03-19",
        "history of jour shrank: 2020-03-18..2020-03-19 -> 2020-03-18..2020-03-18",
        "columns removed: producer")


def grid(shift: int) -> pa.Table:
    """30 areas x 20 days; values revised on some days, so cells change in every range."""
    rows = [(f"{a:02d}", day(i + shift), (a * 7 + i * (3 if i % 4 == shift % 4 else 1)) % 50,
             None if (a + i) % 9 == shift else a)
            for a in range(1, 31) for i in range(20)]
    return table(rows)


def test_compare_files__ranges_give_the_summary_and_csv_of_one_range(tmp_path: Path) -> None:
    old, new = grid(0), grid(1)
    pq.write_table(old, tmp_path / "old.parquet", row_group_size=97)
    pq.write_table(new, tmp_path / "new.parquet", row_group_size=97)
    whole = compare(old, new, SPEC)
    out = {}
    for rows in (10**9, 100, 41):
        csv_path = tmp_path / f"changes-{rows}.csv"
        out[rows] = compare_files(tmp_path / "old.parquet", tmp_path / "new.parquet", SPEC,
                                  csv_path, range_rows=rows)
        assert dataclasses.replace(out[rows], csv_rows=None) == whole
        assert out[rows].csv_rows == whole.cells_changed > 100
        assert csv_path.read_bytes() == (tmp_path / f"changes-{10**9}.csv").read_bytes()
    lines = list(csv.reader(io.StringIO((tmp_path / "changes-41.csv").read_text()), delimiter=";"))
    assert lines[0] == ["dep", "jour", "column", "old", "new"]
    cells = [(r[0], r[1], ["hosp", "rea"].index(r[2])) for r in lines[1:]]
    assert cells == sorted(cells) and len(cells) == len(set(cells))  # key then column order
    by_column = {n: sum(1 for r in lines[1:] if r[2] == n) for n in ("hosp", "rea")}
    assert by_column == {c.name: c.changed for c in whole.columns}
    # each CSV cell is the pair of values the tables hold
    olds = {(r["dep"], r["jour"].isoformat()): r for r in old.to_pylist()}
    news = {(r["dep"], r["jour"].isoformat()): r for r in new.to_pylist()}
    for dep, jour, column, before, after in lines[1:]:
        assert before == ("" if olds[dep, jour][column] is None else str(olds[dep, jour][column]))
        assert after == ("" if news[dep, jour][column] is None else str(news[dep, jour][column]))


def test_csv_cap__first_cells_in_key_order_kept_every_cell_counted(tmp_path: Path) -> None:
    pq.write_table(grid(0), tmp_path / "old.parquet")
    pq.write_table(grid(1), tmp_path / "new.parquet")
    full = compare_files(tmp_path / "old.parquet", tmp_path / "new.parquet", SPEC,
                         tmp_path / "full.csv")
    capped = compare_files(tmp_path / "old.parquet", tmp_path / "new.parquet", SPEC,
                           tmp_path / "capped.csv", range_rows=150, csv_max_rows=25)
    assert capped.cells_changed == full.cells_changed > 25 and capped.csv_rows == 25
    assert capped.to_json()["cells"] == {"changed": full.cells_changed, "csv_rows": 25,
                                         "csv_truncated": True}
    assert (tmp_path / "capped.csv").read_text().splitlines() == (
        tmp_path / "full.csv").read_text().splitlines()[:26]


def test_csv__header_only_without_changes__formula_cells_neutralised(tmp_path: Path) -> None:
    names = ("dep", "jour", "libelle")
    types = (pa.string(), pa.date32(), pa.string())
    old = table([("01", day(0), "Ain")], names, types)
    new = table([("01", day(0), "=1+2")], names, types)
    spec = Spec(("dep", "jour"))
    pq.write_table(old, tmp_path / "a.parquet")
    pq.write_table(new, tmp_path / "b.parquet")
    same = compare_files(tmp_path / "a.parquet", tmp_path / "a.parquet", spec, tmp_path / "0.csv")
    assert (same.cells_changed, same.csv_rows) == (0, 0)
    assert (tmp_path / "0.csv").read_text() == '"dep";"jour";"column";"old";"new"\n'
    compare_files(tmp_path / "a.parquet", tmp_path / "b.parquet", spec, tmp_path / "1.csv")
    assert (tmp_path / "1.csv").read_text().splitlines()[1] == \
        '"01";2020-03-18;"libelle";"Ain";"\'=1+2"'


def test_document__first_version_null_summary__keys_as_the_index_serves() -> None:
    doc = changes.document(None, dataset="d", level="dep", version="v1", previous=None,
                           csv=None, note=changes.NO_PREVIOUS)
    assert doc == {"dataset": "d", "level": "dep", "version": "v1", "previous": None,
                   "note": "no previous version", "csv": None,
                   **dict.fromkeys(changes.SUMMARY_KEYS)}
    assert changes.SUMMARY_KEYS == index.CHANGES_SUMMARY_KEYS
    c = compare(table([("01", day(0), 1, 0)]), table([("01", day(0), 2, 0)]), SPEC)
    assert tuple(c.to_json()) == changes.SUMMARY_KEYS


# --- real files through the pipeline, against pandas ------------------------------------------

HOSP_NOV = REAL / HOSP / "donnees-hospitalieres-covid19-2020-11-07-19h00.csv"
HOSP_MAR = REAL / HOSP / "donnees-hospitalieres-covid19-2021-03-17-17h03.csv"
HOSP_KEY = ["dep", "sexe", "jour"]
HOSP_COLUMNS = ["hosp", "rea", "HospConv", "SSR_USLD", "autres", "rad", "dc"]
FRA = "sp-pos-quot-fra"
FRA_DIR = REAL / FRA / "paugier-mirror"
FRA_KEY = ["fra", "jour", "cl_age90"]
FRA_COLUMNS = ["P_f", "P_h", "P", "T_f", "T_h", "T", "pop"]


def hospital_source(path: Path) -> pd.DataFrame:
    """A hospital file as pandas reads it: rows without a department (left out within the
    error budget) dropped; the optional columns a file lacks are empty."""
    df = pd.read_csv(path, sep=";", dtype={"dep": str, "jour": str})
    df = df[df["dep"].notna()]
    for c in HOSP_COLUMNS:
        df[c] = df[c] if c in df else float("nan")
    return df


def fra_source(folder: str) -> pd.DataFrame:
    df = pd.read_csv(FRA_DIR / folder / "sp-pos-quot-france.csv", sep=";",
                     dtype={"fra": str, "jour": str, "cl_age90": str})
    df["pop"] = df["pop"] if "pop" in df else float("nan")
    return df


def pandas_changes(old: pd.DataFrame, new: pd.DataFrame, key: list[str],
                   columns: list[str]) -> dict[str, Any]:
    """The same counts, computed with pandas alone: an outer merge on the key."""
    m = old[key + columns].merge(new[key + columns], on=key, how="outer",
                                 suffixes=("_o", "_n"), indicator=True)
    both = m[m["_merge"] == "both"].sort_values(key)
    diff = {c: ~((both[f"{c}_o"] == both[f"{c}_n"])
                 | (both[f"{c}_o"].isna() & both[f"{c}_n"].isna())) for c in columns}
    any_diff = pd.concat(diff.values(), axis=1).any(axis=1)
    before, after = set(old["jour"]), set(new["jour"])
    return {
        "rows": {"before": len(old), "after": len(new),
                 "added": int((m["_merge"] == "right_only").sum()),
                 "removed": int((m["_merge"] == "left_only").sum()),
                 "changed": int(any_diff.sum()), "unchanged": int((~any_diff).sum())},
        "cells": {c: int(d.sum()) for c, d in diff.items()},
        "missing_days": sorted(before - after), "added_days": len(after - before),
        "history": ({"start": min(before), "end": max(before)},
                    {"start": min(after), "end": max(after)}),
        "both": both, "diff": diff,
    }


def publish(p: Pipeline, dataset: str, files: list[Path]) -> list[Any]:
    outcomes = []
    for path in files:
        assert p.drop(f"{dataset}/spf/{path.parent.name}-{path.name}",
                      path.read_bytes()).status == "accepted"
        outcomes.append(p.publish(dataset))
        assert outcomes[-1].created
    return outcomes


def stored(p: Pipeline, dataset: str, version: str) -> tuple[dict[str, Any], bytes | None]:
    doc = json.loads(p.published(f"{dataset}/{version}/changes.json"))
    body = p.published(f"{dataset}/{version}/changes.csv") if doc["csv"] else None
    return doc, body


def assert_counts(doc: dict[str, Any], expected: dict[str, Any]) -> None:
    assert doc["rows"] == expected["rows"]
    assert {c["name"]: c["changed"] for c in doc["columns"]} == expected["cells"]
    assert doc["cells"]["changed"] == sum(expected["cells"].values())
    jour = next(v for v in doc["key_values"] if v["column"] == "jour")
    assert jour["missing"] == len(expected["missing_days"])
    assert jour["missing_values"] == expected["missing_days"][:changes.VALUES_LISTED]
    assert jour["added"] == expected["added_days"]
    assert (doc["history"]["before"], doc["history"]["after"]) == expected["history"]


def test_real_hospital_2020_11_07_then_2021_03_17__counts_as_pandas_finds(
    pipeline: Pipeline,
) -> None:
    first, second = publish(pipeline, HOSP, [HOSP_NOV, HOSP_MAR])
    expected = pandas_changes(hospital_source(HOSP_NOV), hospital_source(HOSP_MAR), HOSP_KEY,
                              HOSP_COLUMNS)
    doc, body = stored(pipeline, HOSP, second.version)
    assert (doc["version"], doc["previous"], doc["key"]) == (second.version, first.version,
                                                             HOSP_KEY)
    assert_counts(doc, expected)
    # SPF's stock history of 2020-03-18..2020-11-07 was not revised by March 2021
    assert expected["rows"] == {"before": 71205, "after": 110595, "added": 39390, "removed": 0,
                                "changed": 0, "unchanged": 71205}
    assert expected["added_days"] == 130 and not expected["missing_days"]
    assert (doc["drops_published"], doc["warnings"], doc["schema"]["additive"]) == (
        False, [], False)
    assert body == b'"dep";"sexe";"jour";"column";"old";"new"\n'
    assert second.changes == {"rows": expected["rows"], "cells_changed": 0,
                              "drops_published": False, "schema_additive": False,
                              "warnings": []}
    manifest = json.loads(pipeline.published(f"{HOSP}/manifest.json"))
    assert [v["changes"] for v in manifest["versions"]] == [
        {"path": f"{HOSP}/{second.version}/changes.json",
         "csv_path": f"{HOSP}/{second.version}/changes.csv", "previous": first.version},
        {"path": f"{HOSP}/{first.version}/changes.json", "csv_path": None, "previous": None}]
    first_doc, _ = stored(pipeline, HOSP, first.version)
    assert (first_doc["note"], first_doc["rows"], first.changes) == ("no previous version",
                                                                     None, None)
    # nothing dropped: the reports say nothing of the versions
    assert [("publication" in r["opendepot"]) for r in reports(pipeline, HOSP)] == [False] * 2


def test_real_hospital_in_reverse__dropped_dates_and_shrunk_history_as_pandas_finds(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture,
) -> None:
    """The March 2021 file, then the November 2020 one (a vintage that drops 130 published
    days: within the shrink guard's 50 % row loss, so it is published), logged as a warning."""
    with caplog.at_level(logging.INFO, logger="opendepot.publication"):
        first, second = publish(pipeline, HOSP, [HOSP_MAR, HOSP_NOV])
    expected = pandas_changes(hospital_source(HOSP_MAR), hospital_source(HOSP_NOV), HOSP_KEY,
                              HOSP_COLUMNS)
    doc, _ = stored(pipeline, HOSP, second.version)
    assert_counts(doc, expected)
    assert len(expected["missing_days"]) == 130 and expected["rows"]["removed"] == 39390
    assert expected["missing_days"][:2] == ["2020-11-08", "2020-11-09"]
    assert doc["history"]["shrunk"] and doc["drops_published"]
    assert doc["warnings"] == [
        "130 value(s) of jour published before are missing: 2020-11-08, 2020-11-09, "
        "2020-11-10, 2020-11-11, 2020-11-12, ...",
        "history of jour shrank: 2020-03-18..2021-03-17 -> 2020-03-18..2020-11-07"]
    assert second.changes is not None and second.changes["drops_published"]
    (record,) = [r for r in caplog.records if r.name == "opendepot.publication"
                 and r.getMessage().startswith("version changes")]
    assert (record.levelname, record.getMessage()) == (
        "WARNING", "version changes: published values dropped")
    assert record.__dict__["changes"] == second.changes
    assert record.__dict__["previous"] == first.version
    # the producer reads it in the report of the upload that dropped them
    march, november = reports(pipeline, HOSP)
    assert "publication" not in march["opendepot"]
    note = november["opendepot"]["publication"]
    assert (note["version"], note["previous"], note["changes"]) == (
        second.version, first.version, f"{HOSP}/{second.version}/changes.json")
    assert (note["rows"], note["drops_published"], note["warnings"]) == (
        doc["rows"], True, doc["warnings"])
    assert note["rows"]["removed"] == 39390


def reports(p: Pipeline, dataset: str) -> list[dict[str, Any]]:
    """The dataset's upload reports, oldest upload first."""
    keys = [o.key for o in p.store.list(p.settings.internal_bucket, f"reports/{dataset}/")
            if o.key.endswith(".json")]  # each report's page (.html) is beside it
    return [json.loads(p.store.get(p.settings.internal_bucket, k)) for k in sorted(keys)]


def test_previous_file_removed_by_hand__published_with_nothing_to_compare(
    pipeline: Pipeline,
) -> None:
    (first,) = publish(pipeline, HOSP, [HOSP_NOV])
    pipeline.store.delete(pipeline.settings.published_bucket,
                          f"{HOSP}/{first.version}/{HOSP}-dep.parquet")
    (second,) = publish(pipeline, HOSP, [HOSP_MAR])
    doc, body = stored(pipeline, HOSP, second.version)
    assert (doc["previous"], doc["note"], doc["csv"], doc["rows"], body) == (
        first.version, "the previous version has no dep Parquet file to compare with", None,
        None, None)
    assert second.changes is None


def test_real_tests_france_revised__changed_cells_csv_and_largest_as_pandas_finds(
    pipeline: Pipeline,
) -> None:
    """SPF revised its national test counts between September and December 2020, and added
    ``pop``: every revised cell is in the CSV, the largest changes are pandas' largest."""
    files = [FRA_DIR / f / "sp-pos-quot-france.csv"
             for f in ("2020-09-07_5c325db", "2020-12-08_ed0df79")]
    _, second = publish(pipeline, FRA, files)
    old, new = fra_source("2020-09-07_5c325db"), fra_source("2020-12-08_ed0df79")
    expected = pandas_changes(old, new, FRA_KEY, FRA_COLUMNS)
    doc, body = stored(pipeline, FRA, second.version)
    assert_counts(doc, expected)
    assert expected["cells"]["T"] == 1254 and expected["cells"]["P"] == 713
    assert expected["cells"]["pop"] == 1254  # empty before: null against a value
    both, diff = expected["both"], expected["diff"]
    # the CSV: every changed cell, key then column order, old and new values
    assert body is not None
    got = pd.read_csv(io.BytesIO(body), sep=";", dtype={"fra": str, "jour": str,
                                                         "cl_age90": str, "column": str})
    want = pd.concat([
        pd.DataFrame({**{k: both.loc[d, k] for k in FRA_KEY}, "column": c,
                      "order": FRA_COLUMNS.index(c), "old": both.loc[d, f"{c}_o"],
                      "new": both.loc[d, f"{c}_n"]})
        for c, d in ((c, diff[c][diff[c]].index) for c in FRA_COLUMNS)])
    want = want.sort_values([*FRA_KEY, "order"]).reset_index(drop=True)
    assert len(got) == doc["cells"]["csv_rows"] == sum(expected["cells"].values())
    assert got[[*FRA_KEY, "column"]].equals(want[[*FRA_KEY, "column"]])
    for side in ("old", "new"):
        assert ((got[side] == want[side].astype(float)) | (got[side].isna() & want[side].isna())
                ).all()
    # the ten largest |new - old| of T, ties in key order
    t = both[diff["T"]].assign(delta=lambda f: f["T_n"] - f["T_o"])
    t = t.assign(size=t["delta"].abs()).sort_values(["size", *FRA_KEY],
                                                    ascending=[False, True, True, True])
    largest = next(c for c in doc["columns"] if c["name"] == "T")["largest"]
    assert [(c["key"], c["old"], c["new"], c["delta"]) for c in largest] == [
        ({k: r[k] for k in FRA_KEY}, int(r["T_o"]), int(r["T_n"]), int(r["delta"]))
        for _, r in t.head(10).iterrows()]


def test_republishing_the_same_uploads__no_new_version_no_changes(pipeline: Pipeline) -> None:
    path = REAL / HOSP / "opencovid19-fr-mirror" / "2020-03-23_3f62f18" / "covid_hospit.csv"
    (first,) = publish(pipeline, HOSP, [path])
    again = pipeline.publish()
    assert (again.created, again.version, again.changes) == (False, first.version, None)


MIRROR_23 = REAL / HOSP / "opencovid19-fr-mirror" / "2020-03-23_3f62f18" / "covid_hospit.csv"
MIRROR_24 = REAL / HOSP / "opencovid19-fr-mirror" / "2020-03-24_2c1018e" / "covid_hospit.csv"


def publish_as(p: Pipeline, ds: Any, path: Path) -> Any:
    """Drop ``path`` and publish ``ds`` (a registry dataset, maybe changed)."""
    assert p.drop(f"{HOSP}/spf/{path.parent.name}-{path.name}", path.read_bytes()).status == \
        "accepted"
    p.now += timedelta(seconds=5)
    out = publish_dataset(p.store, p.settings, load_registry(), load_cog(), ds, p.now)
    assert out.created
    return out


def test_provenance_turned_on__producer_joins_the_key__the_version_is_published(
    pipeline: Pipeline,
) -> None:
    """The published key gains ``producer`` between two versions: publication does not fail
    (it used to raise KeyError on every retry); changes.json says rows were not matched."""
    ds = load_registry().get(HOSP)
    assert ds is not None and not ds.provenance
    first = publish_as(pipeline, ds, MIRROR_23)
    second = publish_as(pipeline, dataclasses.replace(ds, provenance=True), MIRROR_24)
    m = json.loads(pipeline.published(f"{HOSP}/manifest.json"))
    assert m["version"] == second.version and m["schema"]["primaryKey"] == [*HOSP_KEY, "producer"]
    doc, body = stored(pipeline, HOSP, second.version)
    before, after = hospital_source(MIRROR_23), hospital_source(MIRROR_24)
    assert (doc["note"], doc["previous"], doc["key"]) == (
        "key changed: rows not matched (key columns not in both versions: producer)",
        first.version, [*HOSP_KEY, "producer"])
    assert doc["rows"] == {"before": len(before), "after": len(after), "added": len(after),
                           "removed": len(before), "changed": 0, "unchanged": 0}
    assert (len(before), len(after)) == (first.rows["dep"], second.rows["dep"]) == (1515, 1818)
    assert [n["name"] for n in doc["schema"]["added"]] == ["producer", "upload_id"]
    jour = next(v for v in doc["key_values"] if v["column"] == "jour")
    assert (jour["before"], jour["after"]) == (before["jour"].nunique(), after["jour"].nunique())
    assert doc["warnings"][0] == doc["note"] and body == \
        b'"dep";"sexe";"jour";"column";"old";"new"\n'
    assert second.changes is not None and second.changes["warnings"][0] == doc["note"]


def test_a_comparison_that_raises__logged__the_version_published_with_a_note(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    ds = load_registry().get(HOSP)
    assert ds is not None
    first = publish_as(pipeline, ds, MIRROR_23)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("producer")

    monkeypatch.setattr(changes, "compare_files", broken)
    second = publish_as(pipeline, ds, MIRROR_24)
    assert json.loads(pipeline.published(f"{HOSP}/manifest.json"))["version"] == second.version
    doc, body = stored(pipeline, HOSP, second.version)
    assert (doc["note"], doc["previous"], doc["rows"], doc["csv"], body, second.changes) == (
        "the comparison with the previous version failed (KeyError)", first.version, None,
        None, None, None)
    (failure,) = [r for r in caplog.records if r.getMessage() == "versions not compared"]
    assert (failure.levelname, failure.error) == ("ERROR", "KeyError: 'producer'")
    assert failure.exc_info is not None

    # an infrastructure failure is not swallowed: the queue retries the message
    def full(*args: Any, **kwargs: Any) -> Any:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(changes, "compare_files", full)
    with pytest.raises(OSError, match="No space left"):
        publish_as(pipeline, ds, MIRROR_23.parent.parent / "2020-04-30_318ba9f" /
                   "covid_hospit.csv")
    assert json.loads(pipeline.published(f"{HOSP}/manifest.json"))["version"] == second.version


@pytest.mark.parametrize("order", ["published", "by_day"])
def test_rows_matched_by_codes_or_by_join__real_hospital_counts_as_pandas_finds(
    order: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The November then March hospital files compared as tables, March in key order (its
    new days interleaved with November's rows) or by day; rows matched by int64 codes, then by
    Arrow's join (``MATCH_CODES`` 1): both as pandas counts; a null key matches nothing."""
    old_df, new_df = hospital_source(need(HOSP_NOV)), hospital_source(need(HOSP_MAR))
    new_df = new_df.sort_values(["jour", "dep", "sexe"] if order == "by_day" else HOSP_KEY)
    new_df.loc[new_df["jour"] == "2020-10-01", "rea"] += 2  # a day revised
    spec = Spec(tuple(HOSP_KEY), tuple(HOSP_COLUMNS), "jour")
    old, new = (pa.Table.from_pandas(df[HOSP_KEY + HOSP_COLUMNS], preserve_index=False)
                for df in (old_df, new_df))
    expected = pandas_changes(old_df, new_df, HOSP_KEY, HOSP_COLUMNS)
    by_codes = compare(old, new, spec).to_json()
    assert_counts(by_codes, expected)
    assert by_codes["rows"]["added"] == 39_390
    assert by_codes["rows"]["changed"] == expected["cells"]["rea"] == 303  # 101 deps x 3 sexes
    monkeypatch.setattr(changes, "MATCH_CODES", 1)
    assert compare(old, new, spec).to_json() == by_codes
    nulls = pa.table({"dep": [None], "sexe": [0], "jour": ["2020-03-18"],
                      **{c: pa.array([1.0]) for c in HOSP_COLUMNS}}).cast(old.schema)
    with_nulls = compare(pa.concat_tables([old, nulls]), pa.concat_tables([new, nulls]), spec)
    assert (with_nulls.rows_added, with_nulls.rows_removed) == (39_391, 1)  # never matched
    monkeypatch.setattr(changes, "MATCH_CODES", 2**62)
    again = compare(pa.concat_tables([old, nulls]), pa.concat_tables([new, nulls]), spec)
    assert again.to_json() == with_nulls.to_json()


def test_new_rows_after_the_old_ones__matched_in_place_as_pandas_finds() -> None:
    """An ``append`` day: the new table is the old one then rows of later days (real hospital
    rows), some old cells revised: the position-for-position path, the same counts as pandas."""
    df = hospital_source(need(HOSP_NOV)).sort_values(HOSP_KEY)
    old_df = df[df["jour"] < "2020-11-01"]
    new_df = pd.concat([old_df, df[df["jour"] >= "2020-11-01"]])
    new_df.loc[new_df.index[:5], "hosp"] += 1  # five revisions of the first rows
    spec = Spec(tuple(HOSP_KEY), tuple(HOSP_COLUMNS), "jour")
    old, new = (pa.Table.from_pandas(d[HOSP_KEY + HOSP_COLUMNS], preserve_index=False)
                for d in (old_df, new_df))
    doc = compare(old, new, spec).to_json()
    assert_counts(doc, pandas_changes(old_df, new_df, HOSP_KEY, HOSP_COLUMNS))
    assert doc["rows"]["changed"] == 5 and doc["rows"]["removed"] == 0
    hosp = next(c for c in doc["columns"] if c["name"] == "hosp")
    assert [c["delta"] for c in hosp["largest"]] == [1] * 5
