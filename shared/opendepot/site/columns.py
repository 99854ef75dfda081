"""Text columns for the dashboards' tables, CSV files and charts, built with Arrow.

A chart of a daily series has one table row and one CSV line per day; with a long history
(the bench's ×100 file holds 36,500 days) a loop in Python per cell is most of the site's time.
Here a column of numbers (a NumPy ``float64`` array, NaN for a missing value) becomes a column of
text in Arrow's kernels, columns are joined row by row (``join``), and a column of rows becomes
one string (``concat``), with no Python object per cell.

The cells are those of ``dashboards_data.cell`` (``fixed``: integers bare, else ``digits``
decimals) and ``dashboards_timeseries.raw`` (``raw``: integers without ``.0``, other values as
Python's ``repr``), missing values ``""``, the same to the character: ``fixed`` rounds
``value × 10**digits`` to the nearest integer, and the few values near a half (``2.675``, whose
binary value is below the half) are rounded by Python's own formatting.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

EPOCH = date(1970, 1, 1)
EXACT = 2.0**53
"""Floats below this are integers exactly (``raw``'s fast path)."""
TIE = 1e-6
"""How near a half ``value × 10**digits`` is rounded by Python itself (``fixed``)."""


def _text(values: np.ndarray) -> pa.Array:
    """Integers (int64) as decimal text."""
    return pc.cast(pa.array(values, pa.int64()), pa.string())


def _blank(text: pa.Array, missing: np.ndarray) -> pa.Array:
    """``text`` with ``""`` where ``missing``."""
    if not missing.any():
        return text
    return pc.if_else(pa.array(missing), pa.scalar(""), text)


def fixed(values: np.ndarray, digits: int = 0) -> pa.Array:
    """Each value with ``digits`` decimals (``dashboards_data.cell``); ``""`` when NaN."""
    values = np.asarray(values, dtype=np.float64)
    missing = np.isnan(values)
    clean = np.where(missing, 0.0, values)
    product = clean * 10**digits
    scaled = np.rint(product).astype(np.int64)
    near = (np.abs(np.abs(product - np.floor(product)) - 0.5) < TIE) & ~missing
    if digits and near.any():  # as Python rounds them: the exact binary value
        scaled[near] = [int(f"{v:.{digits}f}".replace(".", "")) for v in clean[near]]
    if digits == 0:
        return _blank(_text(scaled), missing)
    whole, part = np.divmod(np.abs(scaled), 10**digits)
    fraction = pc.utf8_lpad(_text(part), width=digits, padding="0")
    text = pc.binary_join_element_wise(_text(whole), fraction, ".")
    negative = np.signbit(clean) & ~missing  # as Python: -0.04 -> "-0.0"
    if negative.any():
        text = pc.if_else(pa.array(negative), join(["-", text]), text)
    return _blank(text, missing)


def raw(values: np.ndarray) -> pa.Array:
    """Each value as published (``dashboards_timeseries.raw``): an integer without ``.0``,
    another value as Python's ``repr``; ``""`` when NaN."""
    values = np.asarray(values, dtype=np.float64)
    missing = np.isnan(values)
    clean = np.where(missing, 0.0, values)
    whole = (np.floor(clean) == clean) & (np.abs(clean) < EXACT)
    text = _text(np.where(whole, clean, 0.0).astype(np.int64))
    if not whole.all():  # rare: non-integer figures (a rate, a share)
        odd = ~whole & ~missing
        cells = np.asarray(text.to_pylist(), dtype=object)
        cells[odd] = [repr(float(v)) for v in values[odd]]
        text = pa.array(cells.tolist(), pa.string())
    return _blank(text, missing)


def days(start: date, count: int) -> pa.Array:
    """``count`` consecutive ISO dates from ``start``."""
    first = (start - EPOCH).days
    return pc.cast(pa.array(np.arange(first, first + count, dtype=np.int32), pa.date32()),
                   pa.string())


def pa_strings(values: np.ndarray) -> pa.Array:
    """A NumPy array of texts as an Arrow string column."""
    return pa.array(values.astype(str), pa.string())


def join(columns: Sequence[pa.Array | str], sep: str = "") -> pa.Array:
    """Row by row, the cells of ``columns`` (arrays of one length, or constant strings)
    separated by ``sep``."""
    args = [c if isinstance(c, pa.Array) else pa.scalar(c) for c in columns]
    if not any(isinstance(a, pa.Array) for a in args):
        raise ValueError("join needs at least one column")
    return pc.binary_join_element_wise(*args, sep)


def concat(column: pa.Array, sep: str = "") -> str:
    """Every string of ``column``, one after the other (``sep`` between)."""
    if len(column) == 0:
        return ""
    whole = pa.ListArray.from_arrays(pa.array([0, len(column)], pa.int32()), column)
    text: str = pc.binary_join(whole, sep)[0].as_py()
    return text


def csv(header: Sequence[str], columns: Sequence[pa.Array]) -> bytes:
    """A ``;``-separated UTF-8 CSV (``dashboards_data.csv_text``) of text columns."""
    lines = ";".join(header) + "\n"
    if columns and len(columns[0]):
        lines += concat(join([join(columns, ";"), "\n"]))
    return lines.encode("utf-8")


def html_rows(columns: Sequence[pa.Array]) -> str:
    """``<tr><td>{first}</td><td class="num">{cell}</td>...</tr>`` for every row (cells are
    dates and numbers: nothing to escape)."""
    if not columns or len(columns[0]) == 0:
        return ""
    cells = join(columns, '</td><td class="num">')
    return concat(join(["<tr><td>", cells, "</td></tr>"]))
