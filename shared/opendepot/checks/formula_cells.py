"""Formula cells: text cells a spreadsheet would run as a formula (OWASP's CSV injection rule)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow.compute as pc

from opendepot import cells
from opendepot.checks.base import Batch, Check, Rows, Run
from opendepot.issues import issue
from opendepot.registry import Dataset
from opendepot.render import formula_cells


@dataclass
class Found:
    """Formula-like cells of one column: how many, and the first one."""

    count: int
    line: int
    cell: str


class FormulaCells(Check):
    """A text (``string``) column whose published cells start with ``=``, ``+``, ``-``, ``@``,
    tab or carriage return (``opendepot.render.FORMULA_START``): one ``formula-cell`` warning
    per column, with the count and the first line and cell, never one per cell. The published
    CSV writes those cells with a leading ``'`` (``opendepot.render.neutralised``); numeric and
    date columns are never looked at (a formula there is a ``type-error``)."""

    emits = ("formula-cell",)

    @classmethod
    def applies(cls, dataset: Dataset) -> bool:
        return any(f.type == "string" for f in dataset.fields)

    def start(self, run: Run) -> None:
        self.found: dict[str, Found] = {}
        self.names = [f.name for f in self.dataset.fields
                      if f.type == "string" and f.name in run.positions]

    def batch(self, batch: Batch) -> None:
        published = ~batch.bad & ~batch.blank
        for name in self.names:
            value = batch.typed(self.dataset.field(name)).value
            hit = formula_cells(value)
            if not pc.any(hit).as_py():
                continue
            rows = cells.mask(hit) & published
            idx = np.flatnonzero(rows)
            if idx.size == 0:
                continue
            seen = self.found.get(name)
            if seen is None:
                first = int(idx[0])
                cell = str(value[first].as_py())
                self.found[name] = Found(int(idx.size), int(batch.lines[first]), cell)
            else:
                seen.count += int(idx.size)

    def end(self, rows: Rows) -> None:
        for name in self.names:  # in schema order
            seen = self.found.get(name)
            if seen is not None:
                rows.run.issues.warnings.add(issue(
                    "formula-cell", line=seen.line, field=name, cell=seen.cell[:200],
                    count=seen.count))
