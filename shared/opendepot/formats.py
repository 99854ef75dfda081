"""Input formats other than CSV, turned into CSV text before validation.

``convert(raw, name, dataset)`` is called on the (decompressed) bytes of every upload:

- Excel workbooks (``.xlsx``, recognised by name or by their ZIP signature), checked to the
  end (every ZIP member's CRC and length): the sheet the dataset declares
  (``"excel": {"sheet": "..."}``), else the first sheet with the schema's column names; the
  header found among its first ``HEADER_SEARCH_ROWS`` rows; the values as the spreadsheet saved
  them (read with openpyxl in read-only mode, twice: values and formulas), each cell as its text
  (``01`` stays ``01``), written as ``;`` CSV. A formula cell without a saved value is a
  ``formula-without-value`` rejection; the sheet read, its header row, other sheets with data
  and cached formula results are warnings (``Conversion.warnings``, carried to the report by
  ``Converter``);
- YAML bulletins (``.yaml``, ``.yml``), for a dataset that declares how to read them
  (``"yaml": {...}``, see ``yaml_to_csv``): one CSV row per area block of the bulletin;
- anything else: None, the CSV rules apply.

``convert_upload`` returns a ``Conversion`` (CSV bytes and warnings), a ``DecodeProblem``
naming what is wrong, or None; ``convert`` the same with the CSV bytes only.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from opendepot.decode import BOM, DecodeProblem
from opendepot.decode_problems import decode_text
from opendepot.issues import Issue, IssueList, issue
from opendepot.registry import Dataset, YamlSpec

ZIP_MAGIC = b"PK\x03\x04"
EXCEL_SUFFIXES = (".xlsx", ".xlsm")
YAML_SUFFIXES = (".yaml", ".yml")


# ----------------------------------------------------------------------------------- Excel

HEADER_SEARCH_ROWS = 20
"""How many first rows of a sheet are searched for the header (the row with the schema's
column names or aliases)."""
SHOWN_CELLS = 5
MAX_WORKBOOK_BYTES = 512 * 1024 * 1024
"""Largest workbook read, all its parts decompressed (a 1,048,576-row sheet, Excel's most, of
the hospital files' 7 columns is about 290 MB): past it, a rejection naming the limit."""
"""How many cells a report names when many have the same problem."""


@dataclass(frozen=True)
class Conversion:
    """CSV text made from an upload, with the warnings saying how it was read."""

    data: bytes
    """UTF-8 ``;`` CSV text, the header on line 1."""
    warnings: tuple[Issue, ...] = ()
    """Warnings for the report (sheet read, other sheets, cached formula results...)."""


def unreadable(why: str) -> DecodeProblem:
    """The rejection of a workbook that cannot be read (a damaged, cut or foreign file)."""
    return DecodeProblem("format-error", f"the Excel workbook cannot be read: {why}")


def _check_zip(raw: bytes) -> DecodeProblem | None:
    """A rejection unless ``raw`` is a complete ZIP archive holding a workbook, every member
    matching its CRC-32 and length (each is decompressed once, in blocks)."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            if "xl/workbook.xml" not in archive.namelist():
                return unreadable("it is a ZIP archive without xl/workbook.xml, not an Excel "
                                  "workbook (.xlsx)")
            expanded = sum(info.file_size for info in archive.infolist())
            if expanded > MAX_WORKBOOK_BYTES:
                return unreadable(f"it expands to {expanded} bytes, past the limit of "
                                  f"{MAX_WORKBOOK_BYTES} bytes for a workbook; it was not read "
                                  "(split it, or upload it as gzipped CSV)")
            bad = archive.testzip()  # also holds each part to its declared size
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        return unreadable(f"it is not a complete ZIP archive ({exc}); the upload may have been "
                          "cut short: upload the whole file again")
    if bad is not None:
        return unreadable(f"part {bad} of the archive fails its CRC check (the file is damaged "
                          "or cut short): upload the whole file again")
    return None


FORMULA_TAG = re.compile(rb"<(?:\w+:)?f[\s>/]")
"""A formula element (``<f>``, ``<f t="shared" ...>``, ``<x:f>``) in a sheet's XML."""


def _has_formulas(raw: bytes) -> bool:
    """Whether a worksheet of the (checked) workbook ``raw`` has a formula element: read in
    1 MiB blocks, each with the end of the one before (a tag cut in two is still found)."""
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        for info in archive.infolist():
            if not info.filename.startswith("xl/worksheets/"):
                continue
            with archive.open(info) as member:
                tail = b""
                while block := member.read(1 << 20):
                    if FORMULA_TAG.search(tail + block):
                        return True
                    tail = block[-16:]
    return False


def _excel_cell(value: Any) -> str:
    """A cell as CSV text: dates as ISO (midnight dropped), whole numbers without ``.0``, the
    shortest text of other numbers, booleans as ``true``/``false``, text as written."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def _trimmed(row: Iterable[Any]) -> list[str]:
    """The cells of a row as text, trailing empty cells dropped."""
    cells = [_excel_cell(v) for v in row]
    while cells and not cells[-1].strip():
        cells.pop()
    return cells


def _header_row(sheet: Any, dataset: Dataset) -> tuple[int | None, int | None]:
    """(1-based row with the most cells naming schema fields among the first
    ``HEADER_SEARCH_ROWS``, or None; the first non-blank row, or None for an empty sheet)."""
    names = {f.name.lower() for f in dataset.fields} | set(dataset.aliases)
    best, best_count, first = None, 0, None
    for number, row in enumerate(sheet.iter_rows(max_row=HEADER_SEARCH_ROWS, values_only=True),
                                 start=1):
        cells = _trimmed(row)
        if cells and first is None:
            first = number
        count = sum(1 for c in cells if c.strip().lower() in names)
        if count > best_count:
            best, best_count = number, count
    return best, first


@dataclass
class _Formulas:
    """Formula cells met while reading a sheet: those with and without a saved value."""

    cached: int = 0
    cached_example: str = ""
    missing: list[str] = field(default_factory=list)
    missing_count: int = 0

    def see(self, coordinate: str, formula: Any, saved: bool) -> None:
        text = f"{coordinate}: formula ={str(getattr(formula, 'text', formula)).lstrip('=')}"
        if not saved:
            self.missing_count += 1
            if len(self.missing) < SHOWN_CELLS:
                self.missing.append(text)
        else:
            self.cached += 1
            self.cached_example = self.cached_example or text


def _rows(values: Any, formulas: Any, start: int, found: _Formulas) -> Iterator[list[str]]:
    """The rows of a sheet from row ``start`` on (values, with each formula cell seen by
    ``found``), blank rows kept as ``[]`` except after the last non-blank row."""
    from openpyxl.utils import get_column_letter  # type: ignore[import-untyped]  # noqa: PLC0415

    blanks = 0
    if formulas is None:  # no formula in the workbook: the values only, the fast way
        plain = values.iter_rows(min_row=start, values_only=True)
        rows: Iterator[tuple[Any, Any]] = ((row, ()) for row in plain)
    else:
        rows = zip(values.iter_rows(min_row=start), formulas.iter_rows(min_row=start),
                   strict=False)
    for number, (saved, cells) in enumerate(rows, start=start):
        row = list(saved) if formulas is None else [cell.value for cell in saved]
        for column, cell in enumerate(cells, start=1):
            if getattr(cell, "data_type", None) == "f":
                # a saved value, or an empty text result (``t="str"``, no value: ``=IF(..;"")``)
                value = saved[column - 1] if column <= len(saved) else None
                found.see(f"{get_column_letter(column)}{number}", cell.value,
                          value is not None and (value.value is not None
                                                 or value.data_type == "str"))
        text = _trimmed(row)
        if not text:
            blanks += 1
            continue
        yield from ([] for _ in range(blanks))
        blanks = 0
        yield text


def _choose_sheet(book: Any, dataset: Dataset) -> tuple[str, int | None, int | None, list[str],
                                                        list[str]] | DecodeProblem:
    """(the sheet to read, its header row, its first non-blank row, the other sheets with this
    dataset's columns, the other non-empty sheets), or a rejection for a declared sheet the
    workbook lacks. Sheet: the dataset's ``excel.sheet`` (a name, or a 0-based position other
    than 0), else the first sheet with the schema's column names, else the first non-empty."""
    sheets = [ws.title for ws in book.worksheets]
    scans = {ws.title: _header_row(ws, dataset) for ws in book.worksheets}
    declared = dataset.excel_sheet
    if isinstance(declared, str) or declared != 0:
        if isinstance(declared, str) and declared not in sheets:
            return DecodeProblem("format-error", f"the workbook has no sheet {declared!r}, the "
                                 f"one dataset {dataset.name!r} reads (it has "
                                 f"{', '.join(map(repr, sheets))})")
        if isinstance(declared, int) and not 0 <= declared < len(sheets):
            return DecodeProblem("format-error", f"the workbook has {len(sheets)} sheet(s); "
                                 f"dataset {dataset.name!r} reads sheet number {declared + 1}")
        chosen = declared if isinstance(declared, str) else sheets[declared]
    else:
        with_header = [s for s in sheets if scans[s][0] is not None]
        non_empty = [s for s in sheets if scans[s][1] is not None]
        chosen = (with_header or non_empty or sheets)[0]
    others = [s for s in sheets if s != chosen and scans[s][0] is not None]
    notes = [s for s in sheets if s != chosen and scans[s][0] is None and scans[s][1] is not None]
    header, first = scans[chosen]
    return chosen, header, first, others, notes


def _quoted(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names)


def _read_book(values: Any, formulas: Any, dataset: Dataset) -> Conversion | DecodeProblem:
    """The chosen sheet of a workbook opened twice (saved values; formulas) as CSV text."""
    chosen = _choose_sheet(values, dataset)
    if isinstance(chosen, DecodeProblem):
        return chosen
    sheet, header, first, others, notes = chosen
    if first is None:
        return DecodeProblem("format-error", f"sheet {sheet!r} of the workbook has no rows in its "
                             f"first {HEADER_SEARCH_ROWS} (an empty sheet?)")
    start = header or first
    found = _Formulas()
    sink = io.StringIO()
    writer = csv.writer(sink, delimiter=";", lineterminator="\n")
    width = 0
    for row in _rows(values[sheet], None if formulas is None else formulas[sheet], start, found):
        width = width or len(row)
        writer.writerow(row + [""] * (width - len(row)) if row else row)
    if found.missing_count:
        more = found.missing_count - 1
        cells = [c.split(":")[0] for c in found.missing[1:]]
        if more > len(cells):
            cells.append("...")
        return DecodeProblem("formula-without-value", (
            f"sheet {sheet!r}, cell {found.missing[0]} has no saved value"
            + (f", nor do {more} more formula cells ({', '.join(cells)})" if more else "")
            + "; the workbook was written by a program that does not calculate formulas: open "
            "and save it in Excel or LibreOffice (or paste the values) and upload it again"))
    return Conversion(sink.getvalue().encode("utf-8"),
                      _book_warnings(sheet, header, start, others, notes, found, dataset))


def _book_warnings(sheet: str, header: int | None, start: int, others: list[str],
                   notes: list[str], found: _Formulas, dataset: Dataset) -> tuple[Issue, ...]:
    offset = (f"line numbers in this report are the sheet's row numbers minus {start - 1}"
              if start > 1 else "line numbers in this report are the sheet's row numbers")
    read = f"rows read from sheet {sheet!r}, header on row {start}; {offset}"
    if notes:
        read += f"; not read: {_quoted(notes)} (no row with this dataset's column names)"
    out = [issue("excel-sheet", detail=read)]
    if header is None:
        out.append(issue("excel-header", detail=(
            f"no row among the first {HEADER_SEARCH_ROWS} of sheet {sheet!r} has this "
            f"dataset's column names ({', '.join(dataset.field_names)}); row {start}, the first "
            "non-blank one, was read as the header")))
    if others:
        out.append(issue("excel-other-sheets", detail=(
            f"sheet(s) {_quoted(others)} also have this dataset's column names but were not "
            f"read (only {sheet!r} is); put every row in one sheet, or upload each sheet as "
            "its own file")))
    if found.cached:
        out.append(issue("excel-cached-formulas", detail=(
            f"sheet {sheet!r}: {found.cached} value(s) are formula results as the spreadsheet "
            f"last saved them (first {found.cached_example}); they are published as saved, "
            "never recalculated: check the workbook was recalculated before it was saved")))
    return tuple(out)


def _excel_to_csv(raw: bytes, dataset: Dataset) -> Conversion | DecodeProblem:
    """A workbook's sheet (see ``_choose_sheet``) as CSV text, read as the producer sees it:
    the saved values (formula cells without one are a ``formula-without-value`` rejection),
    the header found among the first rows, trailing empty cells and rows dropped.
    A damaged, truncated or foreign ZIP archive is a ``format-error``."""
    problem = _check_zip(raw)
    if problem is not None:
        return problem
    import openpyxl  # type: ignore[import-untyped]  # noqa: PLC0415 - Excel only

    try:
        values = openpyxl.load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
        formulas = (openpyxl.load_workbook(io.BytesIO(raw), read_only=True, data_only=False)
                    if _has_formulas(raw) else None)
        try:
            return _read_book(values, formulas, dataset)
        finally:
            values.close()
            if formulas is not None:
                formulas.close()
    except MemoryError:
        raise
    except Exception as exc:  # a damaged workbook fails anywhere in openpyxl, in many ways
        return unreadable(f"{type(exc).__name__}: {str(exc)[:200]}")


# ------------------------------------------------------------------------------------ YAML


class _Bad(Exception):
    """A structural problem in a bulletin (internal: becomes a DecodeProblem)."""


def _where(node: Any) -> str:
    return f"line {node.start_mark.line + 1}"


def _cell(value: Any) -> str:
    """A scalar as CSV text: dates as ISO, null as empty, the rest as written."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _producer(name: str) -> str | None:
    parts = name.split("/")
    return parts[1] if len(parts) >= 3 else None


def _by_producer(mapping: dict[str, str], producer: str | None) -> str:
    if producer is None:
        return ""
    if producer in mapping:
        return mapping[producer]
    for pattern, value in mapping.items():
        if pattern.endswith("*") and producer.startswith(pattern[:-1]):
            return value
    return ""


class _Reader:
    """Walks the composed YAML nodes (which keep their line numbers) of one bulletin."""

    def __init__(self, spec: YamlSpec) -> None:
        import yaml  # noqa: PLC0415 - only for YAML uploads

        self.spec = spec
        self.yaml = yaml
        self.constructor = yaml.constructor.SafeConstructor()

    def scalar(self, node: Any, what: str) -> Any:
        if not isinstance(node, self.yaml.ScalarNode):
            kind = "a list" if isinstance(node, self.yaml.SequenceNode) else "a mapping"
            raise _Bad(f"{_where(node)}: {what} is {kind}, expected a single value")
        return self.constructor.construct_object(node)

    def items(self, node: Any, where: str) -> Iterator[tuple[str, Any, Any]]:
        """(key, key node, value node) of a mapping node; a repeated key is an error."""
        if not isinstance(node, self.yaml.MappingNode):
            raise _Bad(f"{_where(node)}: {where} is not a mapping of keys and values")
        seen: dict[str, int] = {}
        for knode, vnode in node.value:
            key = _cell(self.scalar(knode, "a key")).strip()
            if key.lower() in seen:
                raise _Bad(f"{_where(knode)}: key {key!r} in {where} repeats the one on line "
                           f"{seen[key.lower()]}; YAML would silently keep only the last value")
            seen[key.lower()] = knode.start_mark.line + 1
            yield key, knode, vnode

    def area(self, block: str, node: Any, base: dict[str, str]) -> dict[str, str]:
        spec = self.spec
        row = dict(base)
        row.update(self.spec.blocks[block])
        area_keys = {k.lower(): c for k, c in spec.area.items()}
        for key, knode, vnode in self.items(node, f"an area of {block}"):
            low = key.lower()
            if low in spec.ignored:
                continue
            column = area_keys.get(low) or spec.measures.get(low)
            if column is None:
                if isinstance(vnode, self.yaml.ScalarNode) and self.scalar(vnode, key) is None:
                    continue  # an unknown key without a value carries no figure
                known = sorted({k for k in spec.measures} | set(area_keys))
                raise _Bad(
                    f"{_where(knode)}: key {key!r} in {block} is not a figure this dataset "
                    f"knows (known keys: {', '.join(known)}; ignored: "
                    f"{', '.join(sorted(spec.ignored))})"
                )
            row[column] = _cell(self.scalar(vnode, f"the value of {key!r}")).strip()
        code = row.get(spec.code_column, "")
        if not code:
            raise _Bad(f"{_where(node)}: an area of {block} has no code "
                       f"({', '.join(k for k, c in spec.area.items() if c == spec.code_column)})")
        if spec.kind_column and not row.get(spec.kind_column):
            row[spec.kind_column] = spec.kinds.get(code.split("-", 1)[0], "")
        return row

    def rows(self, text: str, producer: str | None) -> list[dict[str, str]]:
        yaml, spec = self.yaml, self.spec
        loader = yaml.SafeLoader(text)
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
        if root is None:
            raise _Bad("the file is empty")
        if not isinstance(root, yaml.MappingNode):
            kind = "a list" if isinstance(root, yaml.SequenceNode) else "plain text"
            raise _Bad(f"the file is YAML but not a bulletin: its top level is {kind}, not a "
                       f"mapping with date, source and {', '.join(spec.blocks)}")
        base: dict[str, str] = {c: _by_producer(m, producer) for c, m in spec.by_producer.items()}
        blocks: list[tuple[str, Any]] = []
        blocks_lower = {b.lower(): b for b in spec.blocks}
        unknown = []
        has_date = False
        for key, knode, vnode in self.items(root, "the bulletin"):
            low = key.lower()
            if low == "date":
                base[spec.date] = _cell(self.scalar(vnode, "the date")).strip()
                has_date = True
            elif low == "source":
                if isinstance(vnode, yaml.ScalarNode):
                    nom = self.scalar(vnode, "the source")
                    if nom is not None and "nom" in spec.source:
                        base[spec.source["nom"]] = _cell(nom).strip()
                    continue
                for skey, _, svalue in self.items(vnode, "source"):
                    column = spec.source.get(skey) or spec.source.get(skey.lower())
                    if column is not None:
                        base[column] = _cell(self.scalar(svalue, f"source {skey}")).strip()
            elif low in blocks_lower:
                blocks.append((blocks_lower[low], vnode))
            elif low not in spec.ignored_top:
                unknown.append(f"{key!r} ({_where(knode)})")
        if unknown:
            raise _Bad(f"the bulletin has top-level keys this dataset does not know: "
                       f"{', '.join(unknown)} (expected date, source, {', '.join(spec.blocks)})")
        if not has_date:
            raise _Bad("the bulletin has no top-level 'date'")
        out: list[dict[str, str]] = []
        for block, node in blocks:
            if isinstance(node, yaml.ScalarNode) and self.scalar(node, block) is None:
                continue  # an empty block
            if isinstance(node, yaml.SequenceNode):
                out.extend(self.area(block, item, base) for item in node.value)
            else:
                out.append(self.area(block, node, base))
        if not out:
            raise _Bad(f"the bulletin has no figures (none of {', '.join(spec.blocks)})")
        return out


def yaml_to_csv(
    raw: bytes, name: str, spec: YamlSpec, encoding: str | None = None
) -> bytes | DecodeProblem:
    """One ``;`` CSV row per area of a YAML bulletin, in the order of the file.

    Its text is UTF-8, else the dataset's declared single-byte ``encoding`` as
    ``opendepot.decode`` decides it (``decode_problems.decode_text``): an ``encoding-error``
    names the line and byte offset of the first byte that is not UTF-8.
    Rejected (``format-error``): a binary file named ``.yaml``, text that is not valid YAML
    (the report names the line and column the parser stopped at), YAML that is not a bulletin
    (not a mapping; no date; no block of figures; unknown top-level keys), a block key that is
    not declared, a repeated key, an area without a code, a list where a value is expected.
    Values are written as given (``12 personnes`` stays text): typing is validation's job.
    """
    import yaml  # noqa: PLC0415 - only for YAML uploads

    what = None
    if raw.startswith(ZIP_MAGIC):
        what = "a ZIP archive (an Excel workbook?)"
    elif b"\x00" in raw[:65536]:
        what = "binary"
    elif raw.removeprefix(BOM).lstrip().startswith(b"{\\rtf"):
        what = "an RTF document"
    if what is not None:
        return DecodeProblem("format-error", f"the file is named {name.rsplit('/', 1)[-1]!r} "
                                             f"but is {what}, not YAML text")
    text = decode_text(raw, encoding)
    if isinstance(text, DecodeProblem):
        return text
    try:
        rows = _Reader(spec).rows(text, _producer(name))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        if mark is None:
            return DecodeProblem("format-error", f"the file is not valid YAML: {problem}")
        lines = text.splitlines()
        shown = lines[mark.line] if mark.line < len(lines) else ""
        return DecodeProblem(
            "format-error",
            f"the file is not valid YAML: line {mark.line + 1}, column {mark.column + 1}: "
            f"{problem} (line {mark.line + 1} is {shown!r})",
        )
    except _Bad as exc:
        return DecodeProblem("format-error", f"YAML bulletin: {exc}")
    sink = io.StringIO()
    writer = csv.writer(sink, delimiter=";", lineterminator="\n")
    writer.writerow(spec.columns)
    for row in rows:
        writer.writerow([row.get(c, "") for c in spec.columns])
    return sink.getvalue().encode("utf-8")


def _kind(head: bytes, name: str) -> str | None:
    """``yaml``, ``excel`` or None (CSV): the one decision of which uploads ``convert`` takes."""
    lower = name.lower().removesuffix(".gz")
    if lower.endswith(YAML_SUFFIXES):
        return "yaml"
    zipped = head.startswith(ZIP_MAGIC) and not lower.endswith(".csv")
    if lower.endswith(EXCEL_SUFFIXES) or zipped:
        return "excel"
    return None


def convertible(name: str) -> Callable[[bytes, int], bool]:
    """For ``decode.decode_file``: whether ``convert`` must see the upload ``name``, given the
    first bytes of its decompressed content and its size (the size is not needed here)."""
    return lambda head, size: _kind(head, name) is not None


def convert_upload(raw: bytes, name: str, dataset: Dataset) -> Conversion | DecodeProblem | None:
    """The CSV text of a non-CSV upload with the warnings saying how it was read (see module
    docstring), a ``DecodeProblem``, or None for a CSV upload."""
    kind = _kind(raw, name)
    if kind == "yaml":
        spec = dataset.yaml
        if spec is None:
            return DecodeProblem(
                "format-error",
                f"the file is YAML ({name.rsplit('/', 1)[-1]!r}) but dataset "
                f"{dataset.name!r} takes no YAML bulletins (CSV or Excel only)",
            )
        made = yaml_to_csv(raw, name, spec, dataset.encoding)
        return made if isinstance(made, DecodeProblem) else Conversion(made)
    if kind == "excel":
        return _excel_to_csv(raw, dataset)
    return None


def convert(raw: bytes, name: str, dataset: Dataset) -> bytes | DecodeProblem | None:
    """CSV bytes for a non-CSV upload (``convert_upload`` without its warnings), else None."""
    made = convert_upload(raw, name, dataset)
    return made.data if isinstance(made, Conversion) else made


class Converter:
    """``decode.decode_file``'s converter for the upload ``name``: it keeps the warnings of
    the conversion (``warnings``) for the report, which ``prepend_to`` puts first."""

    def __init__(self, name: str, dataset: Dataset) -> None:
        self.name = name
        self.dataset = dataset
        self.warnings: tuple[Issue, ...] = ()

    def __call__(self, raw: bytes) -> bytes | DecodeProblem | None:
        made = convert_upload(raw, self.name, self.dataset)
        if isinstance(made, Conversion):
            self.warnings = made.warnings
            return made.data
        return made

    def prepend_to(self, warnings: IssueList) -> IssueList:
        """``warnings`` with the conversion's warnings first (totals and cap kept in step)."""
        for one in reversed(self.warnings):
            warnings = warnings.prepended(one)
        return warnings
