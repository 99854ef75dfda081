"""Validation checks as plug-ins: each check is a small class (``Check``) with hooks for the
start of a file, each batch of rows, the end (and the accepted file), declaring the issue types
it emits. ``CHECKS`` is the registry, in running order; ``checklist(dataset, cog)`` builds a
dataset's checks from it; ``opendepot.validate`` drives them.

Adding a check: a new module here with the class, its line in ``CHECKS``, and its issue types
in ``opendepot.issues.CATALOGUE``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opendepot.checks.base import Batch, Check, Keys, Rows, Run
from opendepot.checks.fields import AreaCodes, CellTypes, Labels, PaddedCodes, Unique
from opendepot.checks.formula_cells import FormulaCells
from opendepot.checks.implausible_rise import ImplausibleRise
from opendepot.checks.keys import PrimaryKey
from opendepot.checks.missing_total import MissingTotal
from opendepot.checks.rows import BlankRows, DuplicateRows
from opendepot.checks.series import DailySeries
from opendepot.checks.totals import TotalsBelowParts
from opendepot.issues import CATALOGUE
from opendepot.registry import Cog, Dataset

__all__ = ["CHECKS", "Batch", "Check", "Keys", "Rows", "Run", "checklist", "register",
           "registered", "unregister"]

CHECKS: list[type[Check]] = [
    Labels,
    BlankRows,
    DuplicateRows,
    PaddedCodes,  # before the cells are typed: it rewrites the codes it pads
    CellTypes,
    Unique,
    AreaCodes,
    PrimaryKey,
    DailySeries,
    ImplausibleRise,
    TotalsBelowParts,
    MissingTotal,
    FormulaCells,  # last: it counts the published cells of a batch (every row check done)
]
"""Every check, in the order they run (a batch's issues are then listed field by field)."""


def register(check: type[Check]) -> None:
    """Add ``check`` at the end of ``CHECKS``. ValueError when it emits an issue type the
    catalogue does not list."""
    unknown = [slug for slug in check.emits if slug not in CATALOGUE]
    if unknown:
        raise ValueError(f"{check.__name__} emits {unknown}, not in opendepot.issues.CATALOGUE")
    if check not in CHECKS:
        CHECKS.append(check)


def unregister(check: type[Check]) -> None:
    """Remove ``check`` from ``CHECKS`` (nothing when absent)."""
    if check in CHECKS:
        CHECKS.remove(check)


@contextmanager
def registered(check: type[Check]) -> Iterator[None]:
    """``check`` registered for the duration of a ``with`` block."""
    register(check)
    try:
        yield
    finally:
        unregister(check)


def checklist(dataset: Dataset, cog: Cog) -> list[Check]:
    """Fresh instances of the registered checks that apply to ``dataset``, in order."""
    return [check(dataset, cog) for check in CHECKS if check.applies(dataset)]
