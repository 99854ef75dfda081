"""Header and cell checks: labels, padded codes, types and constraints, unique values, area
codes (Table Schema's foreign key to the INSEE COG)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from opendepot import cells
from opendepot.checks.base import Batch, Check, Rows, Run
from opendepot.issues import Issue, issue
from opendepot.reading import read_labels
from opendepot.registry import NATIONAL_CODE, Cog, Dataset


class Labels(Check):
    """The header against the schema (``blank-label``, ``duplicate-label``, ``extra-label``,
    ``missing-label``); a header of one column that cannot be split is a ``format-error``
    first. Any of them rejects the file before its rows are read."""

    emits = ("format-error", "blank-label", "duplicate-label", "extra-label", "missing-label")

    def start(self, run: Run) -> None:
        header = run.decoded.header
        _, problems = read_labels(header, self.dataset)
        if problems and len(header) == 1 and len(self.dataset.fields) > 1:
            missing = ", ".join(f.name for f in self.dataset.fields if not f.optional_column)
            detail = (f"Line 1: the header cannot be split into the schema's columns (no ';', "
                      f"',' or tab in it); the file has a single column {header[0]!r}. Missing "
                      f"required columns: {missing}")
            run.issues.add(issue("format-error", line=1, cell=header[0][:200], detail=detail))
        run.issues.errors.extend(problems)


class PaddedCodes(Check):
    """A field declaring ``padSingleDigit`` reads ``1``..``9`` as ``01``..``09``: one
    ``padded-code`` warning per distinct code, on an accepted file (a spreadsheet drops every
    leading zero of a column: 2,970 identical warnings would hide everything else)."""

    emits = ("padded-code",)

    @classmethod
    def applies(cls, dataset: Dataset) -> bool:
        return any(f.pad_single_digit for f in dataset.fields)

    def start(self, run: Run) -> None:
        self.padded: dict[str, dict[str, list[int]]] = {}
        """Field -> padded code -> [first line, rows]."""
        self.positions = run.positions

    def batch(self, batch: Batch) -> None:
        for f in self.dataset.fields:
            pos = self.positions.get(f.name)
            if not f.pad_single_digit or pos is None:
                continue
            col, text = batch.text(pos)
            short = cells.single_digits(col, text, fast=batch.run.fast) & ~batch.blank
            if not short.any():
                continue
            idx = np.flatnonzero(short)
            codes = np.asarray(col.take(pa.array(idx, pa.int64())).to_pylist(), dtype=object)
            seen = self.padded.setdefault(f.name, {})
            for code in set(codes):
                where = idx[codes == code]
                entry = seen.setdefault(code, [int(batch.lines[where[0]]), 0])
                entry[1] += int(where.size)
            batch.replace_text(pos, pc.if_else(pa.array(short),
                                               pc.binary_join_element_wise("0", col, ""), col))

    def accepted(self, rows: Rows) -> None:
        for f in self.dataset.fields:
            for code, (line, n_rows) in sorted(self.padded.get(f.name, {}).items()):
                more = f" ({n_rows} rows, first at line {line})" if n_rows > 1 else ""
                rows.run.issues.add(issue("padded-code", line=line, field=f.name,
                                          number=self.positions[f.name] + 1, cell=code, more=more))


class CellTypes(Check):
    """Each cell against its field's type (``type-error``) and constraints (required, minimum,
    maximum, enum, pattern, minLength, maxLength: ``constraint-error``)."""

    emits = ("type-error", "constraint-error")

    def batch(self, batch: Batch) -> None:
        for f in self.dataset.fields:
            pos = batch.run.positions.get(f.name)
            if pos is None:
                continue
            typed = batch.typed(f)
            raw = batch.table.column(pos)
            if typed.bad.any():
                def bad_type(line: int, cell: Any, _i: int, f: Any = f, pos: int = pos,
                             expected: str = typed.expected) -> Issue:
                    return issue("type-error", line=line, field=f.name, number=pos + 1, cell=cell,
                                 expected=expected, type=f.type)

                batch.report(typed.bad, raw, bad_type, field_name=f.name)
                batch.bad |= typed.bad
            for fail, constraint, wanted in cells.constraint_masks(f, typed.value, typed.missing):
                fail = fail & ~batch.blank & ~typed.bad
                if not fail.any():
                    continue

                def broken(line: int, cell: Any, _i: int, f: Any = f, pos: int = pos,
                           constraint: str = constraint, wanted: str = wanted) -> Issue:
                    return issue("constraint-error", line=line, field=f.name, number=pos + 1,
                                 cell=cell, constraint=constraint, wanted=wanted)

                batch.report(fail, raw, broken, field_name=f.name)
                batch.bad |= fail


class Unique(Check):
    """A field with the ``unique`` constraint: a value already in an earlier row, in any batch,
    is a ``unique-error``."""

    emits = ("unique-error",)

    @classmethod
    def applies(cls, dataset: Dataset) -> bool:
        return any(f.constraints.get("unique") for f in dataset.fields)

    def start(self, run: Run) -> None:
        self.seen: dict[str, set[Any]] = {}

    def batch(self, batch: Batch) -> None:
        for f in self.dataset.fields:
            pos = batch.run.positions.get(f.name)
            if not f.constraints.get("unique") or pos is None:
                continue
            typed = batch.typed(f)
            value = typed.value
            seen = self.seen.setdefault(f.name, set())
            series = pd.Series(value.to_pandas())
            earlier = series.isin(seen).to_numpy() | series.duplicated(keep="first").to_numpy()
            valid = cells.mask(pc.is_valid(value))
            repeated = valid & earlier & ~typed.bad
            seen.update(series[valid].tolist())
            if repeated.any():
                def again(line: int, cell: Any, _i: int, f: Any = f, pos: int = pos) -> Issue:
                    return issue("unique-error", line=line, field=f.name, number=pos + 1, cell=cell)

                batch.report(repeated, batch.table.column(pos), again, field_name=f.name)
                batch.bad |= repeated


def area_codes(dataset: Dataset, cog: Cog) -> dict[str, str]:
    """Valid codes of the dataset's geographic level -> what they are."""
    level = dataset.geography.level
    if level == "dep":
        codes = {k: v["name"] for k, v in cog.departments.items()}
    elif level == "reg":
        codes = {k: v["name"] for k, v in cog.regions.items()}
    else:
        codes = {NATIONAL_CODE: "France"}
    codes.update({k: v.get("name", k) for k, v in dataset.geography.extra_codes.items()})
    return codes


def fk_message(level: str | None, code: str) -> str:
    """Why ``code`` is not an area code of ``level``."""
    what = {"dep": "department", "reg": "region"}.get(level or "", "area")
    if level == "dep" and code == "20":
        return (f"'20' is not a valid {what} code (use 2A or 2B: Corsica is two departments "
                f"since 1976)")
    return f"{code!r} is not a valid {what} code (INSEE COG 2020, or a code the dataset declares)"


class AreaCodes(Check):
    """The area column's codes: INSEE COG 2020 codes of the dataset's level, or codes the
    dataset declares (``foreign-key``)."""

    emits = ("foreign-key",)

    @classmethod
    def applies(cls, dataset: Dataset) -> bool:
        return dataset.geography.field is not None

    def start(self, run: Run) -> None:
        self.codes = pa.array(list(area_codes(self.dataset, self.cog)))

    def batch(self, batch: Batch) -> None:
        geo = self.dataset.geography
        pos = batch.run.positions.get(geo.field or "")
        if geo.field is None or pos is None:
            return
        f = self.dataset.field(geo.field)
        typed = batch.typed(f)
        unknown = ~cells.mask(pc.is_in(typed.value, value_set=self.codes))
        unknown &= ~typed.missing & ~batch.blank
        if unknown.any():
            def make(line: int, code: Any, _i: int) -> Issue:
                return issue("foreign-key", line=line, field=f.name, number=pos + 1, cell=code,
                             reason=fk_message(geo.level, code), level=geo.level)

            batch.report(unknown, typed.value, make, field_name=f.name)
            batch.bad |= unknown
