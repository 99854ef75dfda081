"""Input formats other than CSV, turned into CSV text before validation.

``convert(raw, name, dataset)`` is called on the (decompressed) bytes of every upload:

- Excel workbooks (``.xlsx``, recognised by name or by their ZIP signature): the sheet the
  dataset declares (``"excel": {"sheet": "..."}``) or the first one, read with openpyxl through
  pandas, every cell as text (never inferred: ``01`` stays ``01``), written as ``;`` CSV;
- YAML bulletins (``.yaml``, ``.yml``), for a dataset that declares how to read them
  (``"yaml": {...}``, see ``yaml_to_csv``): one CSV row per area block of the bulletin;
- anything else: None, the CSV rules apply.

Returns CSV bytes, a ``DecodeProblem`` naming what is wrong, or None.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

from opendepot.decode import BOM, DecodeProblem
from opendepot.registry import Dataset, YamlSpec

ZIP_MAGIC = b"PK\x03\x04"
EXCEL_SUFFIXES = (".xlsx", ".xlsm")
YAML_SUFFIXES = (".yaml", ".yml")


def _excel_to_csv(raw: bytes, dataset: Dataset) -> bytes | DecodeProblem:
    import pandas as pd  # noqa: PLC0415 - only for Excel uploads

    sheet = dataset.excel_sheet
    try:
        frame = pd.read_excel(
            io.BytesIO(raw), sheet_name=sheet, dtype=str, keep_default_na=False, engine="openpyxl"
        )
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        return DecodeProblem("format-error", f"the Excel workbook cannot be read: {exc}")
    frame.columns = [str(c) for c in frame.columns]
    text: str = frame.to_csv(sep=";", index=False, lineterminator="\n")
    return text.encode("utf-8")


# ------------------------------------------------------------------------------------ YAML


class _Bad(Exception):
    """A structural problem in a bulletin (internal: becomes a DecodeProblem)."""


def _where(node: Any) -> str:
    return f"line {node.start_mark.line + 1}"


def _text(raw: bytes) -> str:
    """The bulletin as text: UTF-8 (BOM removed) else Windows-1252, decided once per file."""
    body = raw.removeprefix(BOM)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("cp1252", errors="replace")


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


def yaml_to_csv(raw: bytes, name: str, spec: YamlSpec) -> bytes | DecodeProblem:
    """One ``;`` CSV row per area of a YAML bulletin, in the order of the file.

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
    text = _text(raw)
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


def convert(raw: bytes, name: str, dataset: Dataset) -> bytes | DecodeProblem | None:
    """CSV bytes for a non-CSV upload (see module docstring), else None."""
    kind = _kind(raw, name)
    if kind == "yaml":
        spec = dataset.yaml
        if spec is None:
            return DecodeProblem(
                "format-error",
                f"the file is YAML ({name.rsplit('/', 1)[-1]!r}) but dataset "
                f"{dataset.name!r} takes no YAML bulletins (CSV or Excel only)",
            )
        return yaml_to_csv(raw, name, spec)
    if kind == "excel":
        return _excel_to_csv(raw, dataset)
    return None
