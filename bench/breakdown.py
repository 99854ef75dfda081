"""Where validate and publish spend their time, without a profiler's overhead.

cProfile sees a pyarrow.compute call as one opaque wrapper; ``Timers`` instead wraps, for one
run, the domain's steps (``opendepot.cells.cast_field``..., each check's hooks), the storage
port's methods and each pyarrow.compute kernel the domain calls by attribute
(``pc.strptime``...), and sums the wall time of each (inclusive: a step's time includes the
kernels it calls) and how much the process's peak resident memory grew while it ran
(``peak +MiB``: which step set new highs). Only the bench's own process is patched, and only
inside ``with Timers() as t:``.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from bench import memory

KERNELS = (
    "utf8_trim_whitespace", "equal", "match_substring_regex", "strptime", "strftime", "is_in",
    "if_else", "cast", "coalesce", "is_valid", "fill_null", "less", "greater", "unique",
    "binary_join_element_wise", "index_in", "min_max", "utf8_length", "extract_regex",
    "sort_indices",
)
STEPS = {
    "opendepot.validate": ("validate_file", "validate_decoded"),
    "opendepot.decode": ("decode_file", "dialect"),
    "opendepot.reading": ("read_labels",),
    "opendepot.cells": ("cast_field", "fast_cells", "type_column", "constraint_masks",
                        "trimmed", "single_digits", "floats"),
    "opendepot.ingest": ("validate_file", "build_report", "shrink_check"),
    "opendepot.upload_index": ("gather", "fold", "newest", "expire"),
    "opendepot.incremental": ("plan_build", "base_upload"),
    "opendepot.publication": ("read_manifest", "put_immutable"),
    "opendepot.catalog": ("update_catalog", "rebuild_catalog"),
    "opendepot.pending": ("mark", "sweep"),
    "opendepot.partitions": ("read_uploads", "key_counts", "spill", "consolidate_part",
                             "consolidated_parts"),
    "opendepot.rollup": ("rollup", "consolidated_table", "sum_complete"),
    "opendepot.render": ("render_level", "render_parts", "file_digest"),
    "opendepot.feeds": ("resolve",),
    "pyarrow.parquet": ("read_table",),
}
"""Module -> functions timed by name (a call through the module's attribute; a name another
module imported with ``from m import f`` before the run is not seen)."""
CHECK_HOOKS = ("start", "batch", "end", "accepted")
"""Hooks of each validation check (``opendepot.checks.CHECKS``), timed as ``check.Name.hook``."""
STORE_METHODS = ("get", "get_file", "put", "head", "list", "copy", "delete")


class Timers:
    """Context manager: wraps the functions above; ``rows()`` gives (label, calls, seconds)."""

    def __init__(self, *, store_only: bool = False) -> None:
        """``store_only``: wrap the storage port's methods only (the time spent in S3 calls, or
        in ``bench.filestore.DirectoryStore``'s)."""
        self.store_only = store_only
        self.calls: dict[str, int] = defaultdict(int)
        self.seconds: dict[str, float] = defaultdict(float)
        """Seconds per label, summed over calls (concurrent calls each count)."""
        self.peak_growth: dict[str, float] = defaultdict(float)
        """MiB by which the process's peak resident size grew while the step ran (inclusive)."""
        self.outer: dict[str, float] = defaultdict(float)
        """Seconds per group (``store``, ``pc``, ``validate``...) of its outermost calls only."""
        self._depth: dict[str, int] = defaultdict(int)
        self._since: dict[str, float] = {}
        self._lock = threading.Lock()
        self._undo: list[tuple[Any, str, Any]] = []
        self.missing: list[str] = []
        """Steps of ``STEPS`` not found (renamed or moved): the breakdown does not show them."""

    def _wrap(self, owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name, None)
        if original is None or not callable(original):
            self.missing.append(label)
            return

        group = label.split(".", 1)[0]

        def timed(*args: Any, **kwargs: Any) -> Any:
            peak = memory.peak()
            with self._lock:
                self._depth[group] += 1
                started = time.perf_counter()
                if self._depth[group] == 1:
                    self._since[group] = started
            try:
                return original(*args, **kwargs)
            finally:
                with self._lock:
                    ended = time.perf_counter()
                    elapsed = ended - started
                    self._depth[group] -= 1
                    # nested (S3Store.copy calls head) or concurrent calls (a publication's
                    # uploads): the group's wall time is the union of its calls' intervals
                    if self._depth[group] == 0:
                        self.outer[group] += ended - self._since[group]
                    # += on a dict is a read then a write: concurrent calls must not lose one
                    self.calls[label] += 1
                    self.seconds[label] += elapsed
                grown = memory.peak() - peak
                with self._lock:
                    self.peak_growth[label] += grown

        timed.__wrapped__ = original  # type: ignore[attr-defined]
        setattr(owner, name, timed)
        self._undo.append((owner, name, original))

    def __enter__(self) -> Timers:
        import importlib

        import pyarrow.compute as pc

        from bench.filestore import DirectoryStore
        from opendepot.storage import S3Store

        for name in STORE_METHODS:
            self._wrap(S3Store, name, f"store.{name}")
            self._wrap(DirectoryStore, name, f"store.{name}")  # the bench's --store file
        if self.store_only:
            return self
        for module_name, names in STEPS.items():
            module = importlib.import_module(module_name)
            short = module_name.replace("opendepot.", "")
            for name in names:
                self._wrap(module, name, f"{short}.{name}")
        from opendepot.checks import CHECKS

        for check in CHECKS:
            for hook in CHECK_HOOKS:
                if hook in vars(check):  # the check's own hook, not the base class's no-op
                    self._wrap(check, hook, f"check.{check.__name__}.{hook}")
        for name in KERNELS:
            self._wrap(pc, name, f"pc.{name}")
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)
        self._undo.clear()

    def total(self, group: str) -> float:
        """Wall seconds during which at least one of a group's calls ran (``store``: the storage
        port): nested calls counted once, concurrent ones (threads) not added up."""
        return self.outer[group]

    def rows(self) -> list[tuple[str, int, float, float]]:
        return sorted(((k, self.calls[k], self.seconds[k], self.peak_growth[k])
                       for k in self.seconds), key=lambda r: -r[2])


def format_rows(rows: list[tuple[str, int, float, float]], total: float, title: str,
                keep: Callable[[str], bool] = lambda _k: True) -> str:
    lines = [title, f"{'step (inclusive)':40} {'calls':>6} {'seconds':>9} {'share':>7} "
                    f"{'peak +MiB':>10}"]
    for label, calls, seconds, grew in rows:
        if keep(label) and (seconds >= 0.005 or grew >= 1):
            lines.append(f"{label:40} {calls:6d} {seconds:9.3f} {100 * seconds / total:6.1f}% "
                         f"{grew:10.0f}")
    return "\n".join(lines)
