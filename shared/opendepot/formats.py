"""Input formats other than CSV, turned into CSV text before validation.

``convert(raw, name, dataset)`` is called on the (decompressed) bytes of every upload:

- Excel workbooks (``.xlsx``, recognised by name or by their ZIP signature): the sheet the
  dataset declares (``"excel": {"sheet": "..."}``) or the first one, read with openpyxl through
  pandas, every cell as text (never inferred: ``01`` stays ``01``), written as ``;`` CSV;
- anything else: None, the CSV rules apply.

Returns CSV bytes, a ``DecodeProblem`` naming what is wrong, or None.
"""

from __future__ import annotations

import io
import zipfile
from typing import Any

from opendepot.decode import DecodeProblem

ZIP_MAGIC = b"PK\x03\x04"
EXCEL_SUFFIXES = (".xlsx", ".xlsm")


def _excel_to_csv(raw: bytes, dataset: Any) -> bytes | DecodeProblem:
    import pandas as pd  # noqa: PLC0415 - only for Excel uploads

    sheet = (getattr(dataset, "descriptor", {}) or {}).get("excel", {}).get("sheet", 0)
    try:
        frame = pd.read_excel(
            io.BytesIO(raw), sheet_name=sheet, dtype=str, keep_default_na=False, engine="openpyxl"
        )
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        return DecodeProblem("format-error", f"the Excel workbook cannot be read: {exc}")
    frame.columns = [str(c) for c in frame.columns]
    return frame.to_csv(sep=";", index=False, lineterminator="\n").encode("utf-8")


def convert(raw: bytes, name: str, dataset: Any) -> bytes | DecodeProblem | None:
    """CSV bytes for a non-CSV upload (see module docstring), else None."""
    lower = name.lower().removesuffix(".gz")
    if lower.endswith(EXCEL_SUFFIXES) or (raw.startswith(ZIP_MAGIC) and not lower.endswith(".csv")):
        return _excel_to_csv(raw, dataset)
    return None
