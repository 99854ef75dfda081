"""The house rules, checked on the sources: tests go through public seams (no private name of an
``opendepot`` module imported, read or patched), and no module of the layer is over 700 lines
nor any of its functions over 80."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from conftest import ROOT

LAYER = ROOT / "shared" / "opendepot"
TESTS = ROOT / "tests"
MAX_MODULE_LINES = 700
MAX_FUNCTION_LINES = 80
DOTTED_PRIVATE = re.compile(r"^opendepot(\.[A-Za-z]\w*)*\._[A-Za-z]\w*$")


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _module_aliases(tree: ast.AST) -> set[str]:
    """Names bound to an opendepot module in a test file (``import opendepot.x as X``,
    ``from opendepot import x``, ``import opendepot``)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "opendepot":
                    names.add(alias.asname or "opendepot")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "opendepot":
                continue
            for alias in node.names:
                if (LAYER / alias.name).with_suffix(".py").exists() or (LAYER / alias.name).is_dir():
                    names.add(alias.asname or alias.name)
    return names


def private_uses(path: Path) -> list[str]:
    """Where ``path`` imports, reads or patches a private name of an opendepot module."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    aliases = _module_aliases(tree)
    found = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] == "opendepot":
                found += [f"{line} from {node.module} import {a.name}" for a in node.names
                          if _private(a.name)] + [f"{line} {node.module}" for p in parts
                                                  if _private(p)][:1]
        elif isinstance(node, ast.Attribute) and _private(node.attr):
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id in aliases:
                found.append(f"{line} {ast.unparse(node)}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and (
            node.func.attr in {"setattr", "delattr"} and len(node.args) >= 1
        ):
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                if DOTTED_PRIVATE.match(first.value):
                    found.append(f"{line} {node.func.attr}({first.value!r})")
            elif isinstance(first, ast.Name) and first.id in aliases and len(node.args) >= 2:
                name = node.args[1]
                if isinstance(name, ast.Constant) and _private(str(name.value)):
                    found.append(f"{line} {node.func.attr}({first.id}, {name.value!r})")
    return found


SAMPLE = """\
import opendepot.validate as V
from opendepot import publication
from opendepot.storage import MemoryStore, _Hidden

def test_x(monkeypatch):
    V._fast_cells(1)
    publication.each(2)
    monkeypatch.setattr(publication, "_each", None)
    monkeypatch.setattr("opendepot.validate._check_batch", None)
    MemoryStore()._bucket("b")  # a private method of an object, not a module's name
    V.__name__
"""


def test_private_uses__the_scan_finds_imports_reads_and_patches(tmp_path):
    sample = tmp_path / "test_sample.py"
    sample.write_text(SAMPLE)
    assert sorted(private_uses(sample), key=lambda use: int(use.split()[0])) == [
        "3 from opendepot.storage import _Hidden",
        "6 V._fast_cells",
        "8 setattr(publication, '_each')",
        "9 setattr('opendepot.validate._check_batch')",
    ]


def test_tests__use_no_private_name_of_an_opendepot_module():
    offenders = {p.name: uses for p in sorted(TESTS.glob("*.py")) if (uses := private_uses(p))}
    assert offenders == {}


def test_layer__no_module_over_700_lines_no_function_over_80():
    too_long = []
    for path in sorted(LAYER.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(ROOT)
        if text.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"{rel}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text, str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{rel}:{node.lineno} {node.name}: {length} lines")
    assert too_long == []
