"""The benchmark's input files: the real hospital file, deterministic ×N scalings, a daily
increment.

The real file (``REAL_FILE``) is Santé publique France's stock file of 2021-03-17: 101
departments × 3 ``sexe`` values × 365 days (2020-03-18 .. 2021-03-17), 110,595 rows, every text
field quoted, ``;``. ``write_scaled(path, factor)`` writes ``factor`` times as many days with the
same departments and ``sexe`` values, in the same dialect and row order (day, then department,
then ``sexe``). Period ``k`` repeats the real date range shifted by ``k`` × 365 days, and its
values are derived from the real series with seeded noise (``numpy.random.default_rng(SEED)``,
so the same factor always gives the same bytes):

- stocks (``hosp``, ``rea``) of ``sexe`` 1 and 2: the real value × a level drawn per period and
  series (lognormal, sigma 0.10) × a daily factor (1 + normal(0, 0.03)), rounded, never negative;
- cumulative counts (``rad``, ``dc``) of ``sexe`` 1 and 2: the real daily increments (negative
  corrections set to 0) scaled the same way, summed from the real starting value across periods,
  so every series is non-decreasing over the whole file;
- ``sexe`` 0 (both sexes): the sum of the two parts plus the real file's own excess of the total
  over its parts (never negative; for cumulative counts its running maximum), so a total is never
  below its parts.

``write_increment(path)`` is the real history plus one new day (2021-03-18), built the same way
from the last real day. Files go to a temp directory, never into the repository.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

ROOT = Path(__file__).resolve().parent.parent
REAL_DIR = ROOT.parent / "shared" / "data" / "real" / "donnees-hospitalieres-covid19"
REAL_FILE = REAL_DIR / "donnees-hospitalieres-covid19-2021-03-17-17h03.csv"
DATASET = "donnees-hospitalieres-covid19"
SEED = 20210317
COLUMNS = ("dep", "sexe", "jour", "hosp", "rea", "rad", "dc")
STOCKS = ("hosp", "rea")
CUMULATIVE = ("rad", "dc")
ARROW_TYPES = {"dep": pa.string(), "sexe": pa.int64(), "jour": pa.date32(), "hosp": pa.int64(),
               "rea": pa.int64(), "rad": pa.int64(), "dc": pa.int64()}


@dataclass(frozen=True)
class Grid:
    """The real file as dense arrays indexed [day, department, sexe]."""

    start: date
    deps: list[str]
    values: dict[str, np.ndarray]
    """Measure -> int64 array of shape (days, departments, 3)."""

    @property
    def days(self) -> int:
        return next(iter(self.values.values())).shape[0]

    @property
    def rows_per_period(self) -> int:
        return self.days * len(self.deps) * 3


def read_grid(path: Path = REAL_FILE) -> Grid:
    """Read the real file into a dense grid (it is complete: every day, department and sexe)."""
    table = pacsv.read_csv(
        path,
        parse_options=pacsv.ParseOptions(delimiter=";"),
        convert_options=pacsv.ConvertOptions(column_types=ARROW_TYPES),
    )
    table = table.sort_by([("jour", "ascending"), ("dep", "ascending"), ("sexe", "ascending")])
    days = pc.min_max(table["jour"])
    start, end = days["min"].as_py(), days["max"].as_py()
    deps = sorted(set(table["dep"].to_pylist()))
    n_days = (end - start).days + 1
    if table.num_rows != n_days * len(deps) * 3:
        raise ValueError(f"{path} is not a complete day x department x sexe grid")
    # the file's own department order (its first day), for identical row order
    first_day = table.filter(pc.equal(table["jour"], pa.scalar(start, pa.date32())))
    deps = list(dict.fromkeys(first_day["dep"].to_pylist()))
    order = {d: i for i, d in enumerate(deps)}
    idx = np.array([order[d] for d in table["dep"].to_pylist()])
    day = (table["jour"].cast(pa.int32()).to_numpy() - (start - date(1970, 1, 1)).days)
    sexe = table["sexe"].to_numpy()
    values = {}
    for m in (*STOCKS, *CUMULATIVE):
        grid = np.zeros((n_days, len(deps), 3), dtype=np.int64)
        grid[day, idx, sexe] = table[m].to_numpy()
        values[m] = grid
    return Grid(start, deps, values)


def _period_table(grid: Grid, day0: int, measures: dict[str, np.ndarray]) -> pa.Table:
    """Rows of a block of days (``day0`` = offset from the real start), in the file's order."""
    n_days = next(iter(measures.values())).shape[0]
    n_dep = len(grid.deps)
    dep = pa.array(np.tile(np.repeat(np.array(grid.deps, dtype=object), 3), n_days), pa.string())
    sexe = pa.array(np.tile(np.array(["0", "1", "2"], dtype=object), n_days * n_dep), pa.string())
    epoch = (grid.start - date(1970, 1, 1)).days + day0
    days = pa.array(np.repeat(np.arange(epoch, epoch + n_days, dtype=np.int32), n_dep * 3),
                    pa.date32()).cast(pa.string())
    cols = {"dep": dep, "sexe": sexe, "jour": days}
    for m in (*STOCKS, *CUMULATIVE):
        cols[m] = pa.array(measures[m].reshape(-1))
    return pa.table(cols)


def _writer(path: Path, schema: pa.Schema) -> pacsv.CSVWriter:
    # Arrow quotes text and the header, and leaves numbers bare: the real file's own dialect
    return pacsv.CSVWriter(str(path), schema,
                           write_options=pacsv.WriteOptions(delimiter=";", quoting_style="needed"))


def write_scaled(path: Path, factor: int, grid: Grid | None = None) -> int:
    """Write the real file scaled to ``factor`` periods (see module docstring); return rows."""
    grid = grid or read_grid()
    rng = np.random.default_rng(SEED + factor)
    real = grid.values
    shape = real["hosp"].shape
    # what the real total holds beyond the sum of its parts (unknown sex, late corrections)
    excess = {m: np.maximum(real[m][:, :, 0] - real[m][:, :, 1] - real[m][:, :, 2], 0)
              for m in real}
    for m in CUMULATIVE:
        excess[m] = np.maximum.accumulate(excess[m], axis=0)
    # real daily increments of the cumulative parts; the first day repeats the second's
    increments = {}
    for m in CUMULATIVE:
        inc = np.diff(real[m][:, :, 1:], axis=0, prepend=real[m][:1, :, 1:])
        inc[0] = inc[1]
        increments[m] = np.maximum(inc, 0)
    running = {m: real[m][0, :, 1:].astype(np.int64) - increments[m][0] for m in CUMULATIVE}
    running = {m: np.maximum(v, 0) for m, v in running.items()}
    excess_floor = {m: np.zeros(shape[1], dtype=np.int64) for m in CUMULATIVE}
    rows = 0
    writer = None
    try:
        for k in range(factor):
            level = rng.lognormal(0.0, 0.10, size=(1, shape[1], 2))
            out: dict[str, np.ndarray] = {}
            for m in STOCKS:
                daily = 1.0 + rng.normal(0.0, 0.03, size=(shape[0], shape[1], 2))
                parts = np.maximum(np.rint(real[m][:, :, 1:] * level * daily), 0).astype(np.int64)
                out[m] = _with_total(parts, excess[m])
            for m in CUMULATIVE:
                daily = 1.0 + rng.normal(0.0, 0.03, size=(shape[0], shape[1], 2))
                inc = np.maximum(np.rint(increments[m] * level * daily), 0).astype(np.int64)
                parts = running[m][None, :, :] + np.cumsum(inc, axis=0)
                running[m] = parts[-1]
                ex = np.maximum(excess[m], excess_floor[m][None, :])
                excess_floor[m] = ex[-1]
                out[m] = _with_total(parts, ex)
            table = _period_table(grid, k * grid.days, out)
            if writer is None:
                writer = _writer(path, table.schema)
            writer.write_table(table)
            rows += table.num_rows
    finally:
        if writer is not None:
            writer.close()
    return rows


def _with_total(parts: np.ndarray, excess: np.ndarray) -> np.ndarray:
    """(days, deps, 2) parts -> (days, deps, 3) with sexe 0 = parts + excess."""
    total = parts.sum(axis=2) + excess
    return np.concatenate([total[:, :, None], parts], axis=2)


def write_increment(path: Path, grid: Grid | None = None) -> tuple[int, str]:
    """The real file's bytes plus one new day; return (rows, the new day as ISO text)."""
    grid = grid or read_grid()
    rng = np.random.default_rng(SEED)
    real = grid.values
    last = {m: v[-1] for m, v in real.items()}  # (deps, 3)
    out = {}
    for m in STOCKS:
        noise = 1 + rng.normal(0, 0.03, last[m][:, 1:].shape)
        parts = np.maximum(np.rint(last[m][:, 1:] * noise), 0)
        excess = np.maximum(last[m][:, 0] - last[m][:, 1] - last[m][:, 2], 0)
        out[m] = _with_total(parts.astype(np.int64)[None], excess[None])
    for m in CUMULATIVE:
        step = np.maximum(real[m][-1, :, 1:] - real[m][-2, :, 1:], 0)
        noise = 1 + rng.normal(0, 0.03, step.shape)
        parts = last[m][:, 1:] + np.rint(step * noise).astype(np.int64)
        parts = np.maximum(parts, last[m][:, 1:])
        excess = np.maximum(last[m][:, 0] - last[m][:, 1] - last[m][:, 2], 0)
        out[m] = _with_total(parts[None], excess[None])
    table = _period_table(grid, grid.days, out)
    body = REAL_FILE.read_bytes()
    import io

    sink = io.BytesIO()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(delimiter=";", include_header=False,
                                                    quoting_style="needed"))
    if not body.endswith(b"\n"):
        body += b"\n"
    path.write_bytes(body + sink.getvalue())
    new_day = grid.start + timedelta(days=grid.days)
    return grid.rows_per_period + table.num_rows, new_day.isoformat()


def write_head(path: Path, rows: int, source: Path = REAL_FILE) -> int:
    """The header and the first ``rows`` rows of ``source`` (warm-up and peer samples)."""
    with source.open("rb") as f, path.open("wb") as out:
        n = -1
        for line in f:
            out.write(line)
            n += 1
            if n >= rows:
                break
    return n


def count_rows(path: Path) -> int:
    """Data rows of a CSV file (lines minus the header)."""
    n = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 24):
            n += chunk.count(b"\n")
    return n - 1
