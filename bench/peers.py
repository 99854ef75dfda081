"""The peers a data engineer would pick instead of opendepot: DuckDB and Polars, making the same
outputs from the hospital file, and the check that the three make the same rows.

Both read the file with the dataset's types, then write what opendepot publishes: the
department level as given (every declared field, an absent optional one as a null column),
sorted by the primary key (``dep``, ``sexe``, ``jour``), and its roll-ups to regions (INSEE COG,
``shared/opendepot/reference/cog2020.json``) and to the nation (``FR``), summed within
(``sexe``, ``jour``), a sum null unless every member area has a value (the members of a region:
its departments present anywhere in the file; of the nation: every department present; 975,
977 and 978, which have no region, count in the nation only), sorted by key; each level as
Parquet (zstd) and ``;`` CSV. Declarations are read from the dataset's JSON file and the COG
file, not through opendepot (``Spec``), before the timed part.

- ``duckdb_publish``: DuckDB (in memory), WITH the core checks in SQL before it writes:
  typed read (a cell of the wrong type fails the read), key columns present and ``sexe`` in
  its enum, primary key unique, area codes known (COG departments and the declared extra
  codes), counts non-negative, cumulative series (``rad``, ``dc``) non-decreasing per
  (``dep``, ``sexe``) by day. Errors (everything but a decrease, a warning as in opendepot)
  refuse the file: nothing is written. Not done: opendepot's other checks (totals below parts,
  missing days and totals, implausible rises, formula cells, code padding, an error budget).
- ``polars_publish``: Polars, WITHOUT checks.

``level_digests`` reads a tool's six files back (Parquet, and CSV parsed with the dataset's
types) and hashes every row of each level in file order: equal digests mean the same rows in the
same order, whatever the files' bytes (the tools quote CSV and encode Parquet differently).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "shared" / "opendepot"
DATASET = "donnees-hospitalieres-covid19"
NATIONAL_CODE = "FR"
"""The code of the national level's single area (``opendepot.registry.NATIONAL_CODE``)."""
LEVELS = ("dep", "reg", "fra")
FORMATS = ("parquet", "csv")
ADDITIVE = {"stock", "cumulative", "incidence"}


@dataclass(frozen=True)
class Spec:
    """What the peers need of the dataset's declaration and of the COG."""

    fields: dict[str, str]
    """Declared field -> Table Schema type, in the declared order."""
    key: list[str]
    measures: list[str]
    """Rolled-up measures (additive kinds), in the declaration's ``measures`` order."""
    cumulative: list[str]
    enums: dict[str, list[Any]]
    region_of: dict[str, str]
    """COG department -> region."""
    known: list[str]
    """Area codes that are not errors: COG departments and the declared extra codes."""

    @classmethod
    def load(cls, dataset: str = DATASET) -> Spec:
        doc = json.loads((PACKAGE / "datasets" / f"{dataset}.json").read_text())
        cog = json.loads((PACKAGE / "reference" / "cog2020.json").read_text())
        fields = {f["name"]: f["type"] for f in doc["schema"]["fields"]}
        measures = [m for m, kind in doc["measures"].items() if kind in ADDITIVE and m in fields]
        enums = {f["name"]: f["constraints"]["enum"] for f in doc["schema"]["fields"]
                 if "enum" in f.get("constraints", {})}
        region_of = {d: v["reg"] for d, v in cog["departments"].items()}
        extra = list(doc["geography"].get("extraCodes", {}))
        return cls(fields, list(doc["schema"]["primaryKey"]), measures,
                   [m for m in measures if doc["measures"][m] == "cumulative"], enums,
                   region_of, sorted({*region_of, *extra}))

    @property
    def dims(self) -> list[str]:
        """The key but the area: what roll-ups group by with the area."""
        return [k for k in self.key if k != "dep"]

    def level_columns(self, level: str) -> list[str]:
        """Columns of a published level, in order (roll-ups: area, dims, rolled-up measures)."""
        if level == "dep":
            return list(self.fields)
        return [level, *self.dims, *self.measures]

    def arrow_schema(self, level: str) -> Any:
        import pyarrow as pa

        types = {"string": pa.string(), "integer": pa.int64(), "date": pa.date32(),
                 "number": pa.float64()}
        return pa.schema([(c, pa.string() if c in ("reg", "fra") else types[self.fields[c]])
                          for c in self.level_columns(level)])


def file_columns(path: Path) -> list[str]:
    """The CSV file's header names (``;``, quotes dropped)."""
    with path.open(encoding="utf-8") as f:
        return f.readline().replace('"', "").strip().split(";")


def output_files(directory: Path) -> dict[str, dict[str, Path]]:
    """Level -> format -> the file a peer writes in ``directory``."""
    return {lv: {fmt: directory / f"{DATASET}-{lv}.{fmt}" for fmt in FORMATS} for lv in LEVELS}


# ------------------------------------------------------------------------------ DuckDB


DUCK_TYPES = {"string": "VARCHAR", "integer": "BIGINT", "date": "DATE", "number": "DOUBLE"}


def duckdb_connect(spec: Spec) -> Any:
    """An in-memory DuckDB with the reference tables: ``cog`` (dep, reg), ``codes`` (code)."""
    import duckdb

    con = duckdb.connect()
    deps = list(spec.region_of)
    con.execute("CREATE TABLE cog AS SELECT unnest(?::VARCHAR[]) AS dep, "
                "unnest(?::VARCHAR[]) AS reg", [deps, [spec.region_of[d] for d in deps]])
    con.execute("CREATE TABLE codes AS SELECT unnest(?::VARCHAR[]) AS code", [spec.known])
    return con


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def duckdb_checks(con: Any, spec: Spec, present: list[str]) -> dict[str, int]:
    """The core checks on table ``t``: counts of each problem (``decrease_*`` are warnings)."""
    measures = [c for c in present if c in spec.measures]
    key_missing = " + ".join(f"count_if({_q(k)} IS NULL)" for k in spec.key)
    scan = [f"{key_missing} AS missing_key",
            "count_if(t.dep IS NOT NULL AND k.code IS NULL) AS unknown_area",
            *(f"count_if({_q(c)} NOT IN ({', '.join(map(str, v))})) AS enum_{c}"
              for c, v in spec.enums.items() if c in present),
            *(f"count_if({_q(m)} < 0) AS negative_{m}" for m in measures)]
    row = con.execute(f"SELECT {', '.join(scan)} FROM t LEFT JOIN codes k ON t.dep = k.code")
    out = dict(zip([d[0] for d in row.description], row.fetchone(), strict=True))
    key = ", ".join(map(_q, spec.key))
    out["duplicate_keys"] = con.execute(
        f"SELECT count(*) FROM (SELECT {key} FROM t GROUP BY ALL HAVING count(*) > 1)"
    ).fetchone()[0]
    cumulative = [m for m in spec.cumulative if m in present]
    if cumulative:
        series = ", ".join(_q(k) for k in spec.key if k != "jour")
        lags = ", ".join(f"{_q(m)}, lag({_q(m)}) OVER w AS prev_{m}" for m in cumulative)
        counts = ", ".join(f"count_if({_q(m)} < prev_{m}) AS decrease_{m}" for m in cumulative)
        row = con.execute(f"SELECT {counts} FROM (SELECT {lags} FROM t "
                          f"WINDOW w AS (PARTITION BY {series} ORDER BY jour))")
        out.update(zip([d[0] for d in row.description], row.fetchone(), strict=True))
    return {k: int(v or 0) for k, v in out.items()}


def _duck_rollup(spec: Spec, level: str) -> str:
    dims = ", ".join(map(_q, spec.dims))
    sums = ", ".join(f"CASE WHEN count({_q(m)}) = any_value(n) THEN sum({_q(m)})::BIGINT END "
                     f"AS {_q(m)}" for m in spec.measures)
    if level == "reg":
        return (f"WITH j AS (SELECT c.reg, d.* FROM d JOIN cog c USING (dep)), "
                f"m AS (SELECT reg, count(DISTINCT dep) AS n FROM j GROUP BY reg) "
                f"SELECT reg, {dims}, {sums} FROM j JOIN m USING (reg) "
                f"GROUP BY reg, {dims} ORDER BY reg, {dims}")
    return (f"SELECT '{NATIONAL_CODE}' AS fra, {dims}, {sums} FROM d, "
            f"(SELECT count(DISTINCT dep) AS n FROM d) GROUP BY {dims} ORDER BY {dims}")


def duckdb_publish(con: Any, spec: Spec, path: Path, out: Path) -> dict[str, Any]:
    """Read ``path``, check it, write the three levels to ``out``; seconds of each step, the
    checks' counts, and ``refused`` (the checks found errors: nothing written)."""
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    present = file_columns(path)
    columns = ", ".join(f"'{c}': '{DUCK_TYPES[spec.fields.get(c, 'string')]}'" for c in present)
    con.execute(f"CREATE OR REPLACE TABLE t AS SELECT * FROM read_csv(?, delim=';', quote='\"', "
                f"header=true, auto_detect=false, nullstr=['', 'NA'], columns={{{columns}}})",
                [str(path)])
    t1 = time.perf_counter()
    checks = duckdb_checks(con, spec, present)
    t2 = time.perf_counter()
    errors = sum(v for k, v in checks.items() if not k.startswith("decrease_"))
    doc: dict[str, Any] = {"read_seconds": t1 - t0, "checks_seconds": t2 - t1, "checks": checks,
                           "errors": errors, "refused": errors > 0}
    if errors:
        return doc
    select = ", ".join(_q(c) if c in present else f"NULL::{DUCK_TYPES[kind]} AS {_q(c)}"
                       for c, kind in spec.fields.items())
    key = ", ".join(map(_q, spec.key))
    con.execute(f"CREATE OR REPLACE TABLE d AS SELECT {select} FROM t ORDER BY {key}")
    con.execute("DROP TABLE t")
    con.execute(f"CREATE OR REPLACE TABLE reg AS {_duck_rollup(spec, 'reg')}")
    con.execute(f"CREATE OR REPLACE TABLE fra AS {_duck_rollup(spec, 'fra')}")
    t3 = time.perf_counter()
    files = output_files(out)
    for level, table in (("dep", "d"), ("reg", "reg"), ("fra", "fra")):
        con.execute(f"COPY {table} TO '{files[level]['parquet']}' "
                    "(FORMAT parquet, COMPRESSION zstd)")
        con.execute(f"COPY {table} TO '{files[level]['csv']}' "
                    f"(FORMAT csv, DELIMITER ';', HEADER, FORCE_QUOTE ({_q(level)}))")
    for table in ("d", "reg", "fra"):
        con.execute(f"DROP TABLE {table}")
    t4 = time.perf_counter()
    doc.update(rollup_seconds=t3 - t2, write_seconds=t4 - t3)
    return doc


# ------------------------------------------------------------------------------ Polars


def polars_publish(spec: Spec, path: Path, out: Path) -> dict[str, Any]:
    """Read ``path`` with the dataset's types and write the three levels to ``out``, no check;
    seconds of each step."""
    import polars as pl

    kinds = {"string": pl.String, "integer": pl.Int64, "date": pl.Date, "number": pl.Float64}
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    present = file_columns(path)
    df = pl.read_csv(path, separator=";", quote_char='"', null_values=["", "NA"],
                     schema_overrides={c: kinds[spec.fields.get(c, "string")] for c in present})
    t1 = time.perf_counter()
    dep = df.select([pl.col(c) if c in present else pl.lit(None, kinds[k]).alias(c)
                     for c, k in spec.fields.items()]).sort(spec.key)
    del df
    cog = pl.DataFrame({"dep": list(spec.region_of), "reg": list(spec.region_of.values())})
    levels = {"dep": dep, "reg": _polars_rollup(spec, dep.join(cog, on="dep"), "reg"),
              "fra": _polars_rollup(spec, dep.with_columns(pl.lit(NATIONAL_CODE).alias("fra")),
                                    "fra")}
    t2 = time.perf_counter()
    files = output_files(out)
    for level, frame in levels.items():
        frame.write_parquet(files[level]["parquet"], compression="zstd")
        frame.write_csv(files[level]["csv"], separator=";")
    t3 = time.perf_counter()
    return {"read_seconds": t1 - t0, "rollup_seconds": t2 - t1, "write_seconds": t3 - t2}


def _polars_rollup(spec: Spec, rows: Any, area: str) -> Any:
    """Sums by (area, dims), each null unless every member area has a value."""
    import polars as pl

    members = rows.group_by(area).agg(pl.col("dep").n_unique().alias("__n"))
    grouped = rows.group_by([area, *spec.dims]).agg(
        [pl.col(m).sum().alias(f"{m}__sum") for m in spec.measures]
        + [pl.col(m).count().alias(f"{m}__count") for m in spec.measures])
    grouped = grouped.join(members, on=area)
    return grouped.select(
        [pl.col(area), *map(pl.col, spec.dims),
         *(pl.when(pl.col(f"{m}__count") == pl.col("__n")).then(pl.col(f"{m}__sum"))
           .otherwise(None).cast(pl.Int64).alias(m) for m in spec.measures)]
    ).sort([area, *spec.dims])


# ------------------------------------------------------------------------------ same rows


DIGEST_BATCH = 1 << 16


def _hash_batches(batches: Any, schema: Any) -> tuple[str, int]:
    """sha256 of the column names, then of every row as headerless ``;`` CSV in ``schema``'s
    types (batch boundaries do not change it); and the rows."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    sha = hashlib.sha256(";".join(schema.names).encode())
    options = pacsv.WriteOptions(include_header=False, delimiter=";", quoting_style="needed")
    rows = 0
    for batch in batches:
        if batch.schema.names != schema.names:
            sha.update(b"names:" + ";".join(batch.schema.names).encode())
        table = pa.Table.from_batches([batch]).rename_columns(schema.names).cast(schema)
        sink = pa.BufferOutputStream()
        pacsv.write_csv(table, sink, options)
        sha.update(sink.getvalue())
        rows += batch.num_rows
    return sha.hexdigest(), rows


def level_digests(files: dict[str, dict[str, Path]], spec: Spec) -> dict[str, Any]:
    """Level -> format -> ``{"sha256", "rows", "bytes"}`` of the rows read back (see module
    docstring); a file that is missing or unreadable gives ``{"failed": reason}``."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    out: dict[str, Any] = {}
    for level, by_format in files.items():
        schema = spec.arrow_schema(level)
        out[level] = {}
        for fmt, path in by_format.items():
            try:
                if fmt == "parquet":
                    batches = pq.ParquetFile(path).iter_batches(batch_size=DIGEST_BATCH)
                else:
                    batches = pacsv.open_csv(
                        path, parse_options=pacsv.ParseOptions(delimiter=";"),
                        convert_options=pacsv.ConvertOptions(
                            column_types=schema, null_values=[""], strings_can_be_null=True))
                digest, rows = _hash_batches(batches, schema)
                out[level][fmt] = {"sha256": digest, "rows": rows, "bytes": path.stat().st_size}
            except Exception as exc:  # noqa: BLE001 - a broken output is a result, not a crash
                out[level][fmt] = {"failed": f"{type(exc).__name__}: {exc}"[:300]}
    return out


def compare(digests: dict[str, dict[str, Any] | None]) -> dict[str, Any]:
    """Tool -> ``level_digests`` (None: not measured) -> whether they all hold the same rows.

    ``equal``: True when every tool measured has, for each level, the same digest in both
    formats as the first tool's Parquet; False on any difference (``mismatches`` says where);
    None when fewer than two tools could be compared."""
    have = {tool: d for tool, d in digests.items() if d}
    out: dict[str, Any] = {"tools": sorted(have), "missing": sorted(set(digests) - set(have))}
    if len(have) < 2:
        out["equal"] = None
        return out
    mismatches = []
    rows: dict[str, dict[str, Any]] = {}
    first = next(iter(have))
    for level in LEVELS:
        ref = (have[first].get(level) or {}).get("parquet") or {}
        rows[level] = {}
        for tool, d in have.items():
            for fmt in FORMATS:
                got = (d.get(level) or {}).get(fmt) or {"failed": "absent"}
                if fmt == "parquet":
                    rows[level][tool] = got.get("rows", got.get("failed"))
                if "failed" in got or got.get("sha256") != ref.get("sha256"):
                    mismatches.append(f"{tool} {level}.{fmt}: "
                                      + (got.get("failed") or f"{got['rows']:,} rows, sha256 "
                                         f"{got['sha256'][:12]} != {first}'s "
                                         f"{str(ref.get('sha256'))[:12]}"))
    out.update(equal=not mismatches, rows=rows, mismatches=mismatches)
    return out


# ------------------------------------------------------------------------------ child process


def run_tool(tool: str, path: Path, tmp: Path, warmup: Path, watch: Any,
             digest: bool = True) -> dict[str, Any]:
    """One peer's measurement in the current (child) process, as ``bench.child`` measures
    opendepot's handlers: imports and a warm-up run on ``warmup`` first, then the peak is reset
    and ``path`` goes from CSV to the six files in a directory of ``tmp``; ``seconds`` around
    that, ``peak_rss_mib`` while it ran (``watch``: a context manager keeping the peak so far).
    With ``digest``, the files' ``level_digests`` (after the measurement). Outputs removed."""
    import gc
    import os
    import shutil

    from bench import memory

    spec = Spec.load()
    if tool == "duckdb":
        import duckdb

        con = duckdb_connect(spec)
        version = duckdb.__version__

        def publish(src: Path, out: Path) -> dict[str, Any]:
            return duckdb_publish(con, spec, src, out)
    else:
        import polars

        version = polars.__version__

        def publish(src: Path, out: Path) -> dict[str, Any]:
            return polars_publish(spec, src, out)
    doc: dict[str, Any] = {"baseline_rss_mib": memory.current(), "tool": tool,
                           "version": version}
    warm, out = (tmp / f"{tool}-{what}-{os.getpid()}" for what in ("warm", "out"))
    try:
        for d in (warm, out):
            d.mkdir(parents=True)
        publish(warmup, warm)
        gc.collect()
        doc["rss_before_mib"] = memory.current()
        doc["peak_reset"] = memory.reset_peak()
        with watch:
            started = time.perf_counter()
            steps = publish(path, out)
            doc["seconds"] = time.perf_counter() - started
        doc["peak_rss_mib"] = memory.peak()
        doc.update(steps)
        if steps.get("refused"):
            problems = {k: v for k, v in steps["checks"].items()
                        if v and not k.startswith("decrease_")}
            doc["failed"] = f"refused by its checks: {problems}"
        elif digest:
            doc["digests"] = level_digests(output_files(out), spec)
    finally:
        for d in (warm, out):
            shutil.rmtree(d, ignore_errors=True)
    return doc
