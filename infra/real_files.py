"""The demo's input files: real files found and mapped to a dataset and producer, or a sample.

``collect_real`` maps every file of ``../shared/data/real/`` to the dataset and producer that
``infra/real_sources/*.json`` give it (``awaiting_real`` lists those kept out on purpose);
``collect_files`` takes every CSV of a folder; ``sample_inputs`` is the generated sample. Each
returns ``InputFile`` records, oldest publication first.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from infra.template import REPO_ROOT

DATE = re.compile(r"(\d{4}-\d{2}-\d{2})")


@dataclass(frozen=True)
class InputFile:
    """One file to drop."""

    path: Path | None
    """Where it is read from (None for a generated sample)."""
    name: str
    """File name in the incoming key (unique in this run)."""
    date: str | None
    """Publication date found in its name or folders (``YYYY-MM-DD``)."""
    body: bytes | None = None
    """Content of a generated file."""
    dataset: str | None = None
    """Dataset it goes to (None: the one given by --dataset)."""
    producer: str | None = None
    """Producer that drops it (None: --producer)."""

    def read(self) -> bytes:
        if self.body is not None:
            return self.body
        assert self.path is not None
        return self.path.read_bytes()

    @property
    def size(self) -> int:
        return (
            len(self.body)
            if self.body is not None
            else (self.path.stat().st_size if self.path else 0)
        )


def default_data_candidates(dataset: str) -> list[Path]:
    """Where the real files may be: beside the checkout (from this package), then from the CWD."""
    rel = Path("shared") / "data" / "real" / dataset
    cwd = Path.cwd()
    out: list[Path] = []
    for base in (REPO_ROOT.parent, cwd.parent, cwd, cwd.parent.parent):
        p = (base / rel).resolve()
        if p not in out:
            out.append(p)
    return out


def publication_date(path: Path) -> str | None:
    """The first ``YYYY-MM-DD`` in the file name, else in the nearest parent folder that has one."""
    for part in (path.name, *(p.name for p in path.parents)):
        m = DATE.search(part)
        if m:
            return m.group(1)
    return None


def unique_names(paths: list[Path]) -> dict[Path, str]:
    """A file name per path; names shared by several files get their parent folders as prefix
    (``2020-03-24_2c1018e-covid_hospit.csv``), as many as needed to tell them apart."""
    names = {p: p.name for p in paths}
    depth = 1
    while True:
        counts: dict[str, int] = {}
        for n in names.values():
            counts[n] = counts.get(n, 0) + 1
        clashes = [p for p, n in names.items() if counts[n] > 1]
        if not clashes:
            return names
        for p in clashes:
            parents = [q.name for q in p.parents][:depth][::-1]
            if len(parents) < depth:  # no more folders to tell them apart: use the whole path
                parents = [str(p.parent).strip("/").replace("/", "-")]
            names[p] = "-".join([*parents, p.name])
        depth += 1
        if depth > 64:
            raise ValueError("cannot make file names unique")


def collect_files(root: Path) -> list[InputFile]:
    """Every ``*.csv`` under ``root`` (or ``root`` itself), oldest publication first."""
    paths = (
        [root]
        if root.is_file()
        else [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() == ".csv"]
    )
    dates = {
        p: publication_date(p.relative_to(root) if root.is_dir() else Path(p.name)) for p in paths
    }
    ordered = sorted(paths, key=lambda p: (dates[p] is None, dates[p] or "", str(p)))
    names = unique_names(ordered)
    return [InputFile(p, names[p], dates[p]) for p in ordered]


SOURCES_DIR = Path(__file__).resolve().parent / "real_sources"
NOT_INPUTS = ("SOURCES.md", "cog-insee/", "metadonnees-spf/")
"""Files under ../shared/data/real that are references or documentation, not producer uploads."""


def real_sources() -> list[dict[str, str]]:
    """The glob -> (dataset, producer) entries of ``infra/real_sources/*.json``, in file order."""
    out: list[dict[str, str]] = []
    for f in sorted(SOURCES_DIR.glob("*.json")):
        out.extend(json.loads(f.read_text("utf-8")))
    return out


def real_root_candidates() -> list[Path]:
    """Where ``shared/data/real`` may be: beside the checkout, then from the CWD."""
    return [p.parent for p in default_data_candidates("x")]


def awaiting_real(root: Path) -> list[tuple[Path, str]]:
    """Real files kept out of the demo on purpose, each with why: the entries of
    ``infra/real_sources/*.json`` whose ``dataset`` is null (data whose dataset is not declared
    yet; its ``awaiting`` text says which and where it is tracked)."""
    out: list[tuple[Path, str]] = []
    for entry in real_sources():
        if entry.get("dataset") is None:
            paths = sorted(root.glob(entry["glob"]))
            out.extend((p, entry["awaiting"]) for p in paths if p.is_file())
    return out


def collect_real(root: Path) -> tuple[list[InputFile], list[str]]:
    """Every real file mapped to a dataset and producer, oldest publication first; and the
    relative paths of the files no mapping covers (references excluded)."""
    assigned: dict[Path, tuple[str, str]] = {}
    waiting = {p for p, _ in awaiting_real(root)}
    for entry in real_sources():
        if entry.get("dataset") is None:
            continue  # awaiting a dataset: see ``awaiting_real``
        for p in sorted(root.glob(entry["glob"])):
            if p.is_file():
                assigned.setdefault(p, (entry["dataset"], entry["producer"]))
    unmapped = sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file()
        and p not in assigned
        and p not in waiting
        and not str(p.relative_to(root)).startswith(NOT_INPUTS)
    )
    dates = {p: publication_date(p.relative_to(root)) for p in assigned}
    ordered = sorted(assigned, key=lambda p: (dates[p] is None, dates[p] or "", str(p)))
    names = unique_names(ordered)
    files = [
        InputFile(p, names[p], dates[p], dataset=assigned[p][0], producer=assigned[p][1])
        for p in ordered
    ]
    return files, unmapped


def sample_inputs() -> list[InputFile]:
    from infra.sample import sample_files

    return [
        InputFile(None, name, publication_date(Path(name)), body) for name, body in sample_files()
    ]
