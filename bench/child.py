"""One measurement in its own process: ``python -m bench.child MODE ... --result OUT.json``.

Modes (each writes one JSON document to ``--result``; the driver reads it):

- ``validate --file F --stage-dir D``: the validate handler on ``F`` with moto in process; the
  staged upload and the publish request are saved to ``D`` for ``publish``;
- ``publish --stage-dir D``: the publish handler on what ``validate`` staged, then, measured
  on its own (its seconds and peak: ``site_seconds``, ``site_peak_rss_mib``; not in the
  publish figures), the site function on the new version's site request, as Lambda would invoke
  it after publish (the home, the dataset's page, its dashboards);
- ``validate``/``publish`` with ``--store file``: the same handler code over a local directory
  (``bench.filestore.FilePipeline``) instead of moto (``--store moto``, the default), so the peak
  is opendepot's own memory, without moto's in-process copies of the objects (moto reads a whole
  object into memory to serve a GET and holds each PUT body); moto is not even imported;
- ``stage --file F --stage-dir D``: stage ``F`` without the validate function (not measured), so
  ``publish`` can be measured on a workload whose validation failed;
- ``floor --file F``: pyarrow alone: read ``F`` with the registry's explicit types, write the
  same Parquet (zstd) and CSV (``;``);
- ``peer --file F --cap S``: Frictionless validates ``F`` with the registry's Table Schema, stopped
  after ``S`` seconds (rows per second from the rows it got through);
- ``duckdb --file F`` / ``polars --file F``: the peers a data engineer would pick (``bench.peers``):
  the same six files as opendepot's publication of ``F`` (DuckDB with the core checks in SQL,
  Polars without), measured as the handlers are (imports and a warm-up first, peak reset), then
  the digests of their rows (``bench.peers.level_digests``); ``publish --store file --digest``
  gives the same digests of opendepot's published files;
- ``server --file F``: validate + publish of ``F`` through the local server stack
  (``infra.stack.LocalStack`` + ``infra.pump.Pump``);
- ``increment --file HISTORY --increment F``: the daily increment on the local server stack;
- ``profile --file F --out P``: cProfile of validate + publish on ``F`` (moto in process).

Memory: ``baseline_rss_mib`` is the resident size after the imports; ``peak_rss_mib`` the peak
(``VmHWM``) while the measured call ran (the peak is reset just before it, see ``bench.memory``;
nothing is subtracted: it includes the interpreter, the libraries and moto);
``process_peak_rss_mib`` the peak over the child's whole life, set-up included. With
``--store file`` the same figures hold, over the directory store.
``--mem-gib`` caps the child's address space (``RLIMIT_AS``) so a workload too large for memory
fails (MemoryError, or SIGSEGV where native code does not check an allocation; a watch thread
keeps the peak so far in ``RESULT.partial`` for that case), reported as ``failed: ...``, instead
of taking the machine down. ``faulthandler`` writes the crash site to the child's log.
"""

from __future__ import annotations

import argparse
import faulthandler
import gc
import importlib.metadata
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench import memory

WARMUP_ROWS = 606  # two days of the real file


def _result(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(json.dumps(doc, indent=1, default=str))


def _failure(exc: BaseException) -> str:
    """One line naming the exception; for Powertools' BatchProcessingError, the record's own."""
    children = getattr(exc, "child_exceptions", None) or []
    if children and children[0] and children[0][1] is not None:
        exc = children[0][1]
        where = traceback.extract_tb(children[0][2])[-1:] if children[0][2] else []
    else:
        where = traceback.extract_tb(exc.__traceback__)[-1:]
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:240]
    for frame in where:
        text += f" (in {Path(frame.filename).name}:{frame.lineno} {frame.name})"
    return text


class PeakWatch:
    """While the measured call runs, write its peak so far to ``PATH.partial`` every 0.2 s: if
    the process dies (SIGSEGV, SIGKILL at the time cap), the driver still knows how far it got."""

    def __init__(self, result: Path) -> None:
        import threading

        self.path = result.with_suffix(".partial")
        self.started = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.path.write_text(json.dumps({"peak_rss_mib": memory.peak(),
                                             "seconds": time.perf_counter() - self.started}))

    def __enter__(self) -> PeakWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _batch_failure(response: Any) -> str | None:
    failed = (response or {}).get("batchItemFailures") or []
    return f"{len(failed)} record(s) failed in the handler" if failed else None


def _warmup_file(tmp: Path) -> Path:
    from bench.workloads import write_head

    path = tmp / "warmup.csv"
    if not path.exists():
        write_head(path, WARMUP_ROWS)
    return path


def _import_pipeline(store: str = "moto") -> None:
    """Import what a handler's process holds (the Lambda init phase), before the baseline; moto
    only for ``store="moto"``."""
    import boto3  # noqa: F401
    import pandas  # noqa: F401
    import pyarrow  # noqa: F401

    import functions.publish.app  # noqa: F401
    import functions.validate.app  # noqa: F401

    if store == "moto":
        import moto  # noqa: F401


def _pipeline(store: str, tmp: Path) -> Any:
    """A new pipeline (context manager): ``MotoPipeline``, or ``FilePipeline`` in a directory of
    its own under ``tmp`` (removed on exit)."""
    if store == "file":
        from bench.filestore import FilePipeline

        return FilePipeline(parent=tmp)
    from bench.aws import MotoPipeline

    return MotoPipeline()


def _warm_pipeline(tmp: Path, store: str = "moto", *, site: bool = False) -> None:
    """One small validate + publish (and, with ``site``, the site function after it) in a store
    state of its own: first-call costs (lazy imports, client set-up, Arrow kernels, templates)
    are paid here, as a warm Lambda would have paid them."""
    with _pipeline(store, tmp) as p:
        event = p.upload(p.key_for("warmup.csv"), _warmup_file(tmp).read_bytes())
        p.validate(event)
        p.publish(p.publish_messages())
        manifest = p.manifest()
        if site and manifest is not None:
            _run_site(manifest["version"])


def _run_site(version: str) -> tuple[float, Any]:
    """The site function on the request publish sends after ``version`` (the installed
    runtime's store): (seconds, response)."""
    from bench.aws import DATASET, REGION, Context, sqs_event
    from functions.site import app
    from opendepot.contracts import SiteMessage

    body = json.dumps(SiteMessage(DATASET, version).to_json())
    event = sqs_event([body], f"arn:aws:sqs:{REGION}:123456789012:opendepot-site")
    started = time.perf_counter()
    response = app.lambda_handler(event, Context(function_name="opendepot-site"))
    return time.perf_counter() - started, response


def _measure_site(out: dict[str, Any], version: str) -> None:
    """The site function after publish, measured on its own: ``site_seconds``,
    ``site_peak_rss_mib`` (peak reset first), ``site_rss_before_mib``; ``site_failed``."""
    import functions.site.app  # noqa: F401 - its init phase, outside the measure
    import opendepot.site.build  # noqa: F401
    import opendepot.site.dashboards_timeseries  # noqa: F401

    gc.collect()
    out["site_rss_before_mib"] = memory.current()
    memory.reset_peak()
    try:
        seconds, response = _run_site(version)
    except BaseException as exc:  # noqa: BLE001 - a result, as the handlers' failures are
        out.update(site_peak_rss_mib=memory.peak(), site_failed=_failure(exc))
        return
    out.update(site_seconds=seconds, site_peak_rss_mib=memory.peak())
    if problem := _batch_failure(response):
        out["site_failed"] = problem


# ------------------------------------------------------------------------------ opendepot


def run_validate(args: argparse.Namespace) -> dict[str, Any]:
    from bench.breakdown import Timers

    _import_pipeline(args.store)
    out: dict[str, Any] = {"baseline_rss_mib": memory.current(), "store": args.store}
    _warm_pipeline(args.tmp, args.store)
    with _pipeline(args.store, args.tmp) as p:
        key = p.key_for(args.file.name)
        if args.store == "file":  # streamed from disk: nothing of the file held in memory
            event = p.upload(key, args.file)
            out["bytes"] = args.file.stat().st_size
        else:
            body = args.file.read_bytes()
            event = p.upload(key, body)
            out["bytes"] = len(body)
            del body
        gc.collect()
        out["rss_before_mib"] = memory.current()
        out["setup_peak_rss_mib"] = memory.peak()
        out["peak_reset"] = memory.reset_peak()
        try:
            with PeakWatch(args.result), Timers(store_only=True) as store:
                seconds, response = p.validate(event)
        except BaseException as exc:  # noqa: BLE001 - every failure is a result here
            out.update(peak_rss_mib=memory.peak(), failed=_failure(exc))
            return out
        out["peak_rss_mib"] = memory.peak()
        out["seconds"] = seconds
        out["storage_seconds"] = store.total("store")
        report = p.report(key) or {}
        info = report.get("opendepot", {})
        out.update(
            status=info.get("status"),
            rows=(report.get("stats") or {}).get("rows") or info.get("rows"),
            errors=(report.get("stats") or {}).get("errors"),
            warnings=(report.get("stats") or {}).get("warnings"),
            rejection=info.get("rejection"),
        )
        problem = _batch_failure(response)
        if problem or info.get("status") != "accepted":
            out["failed"] = problem or f"not accepted: {info.get('status')} {info.get('rejection')}"
            return out
        messages = p.publish_messages()
        p.save_staging(args.stage_dir, messages)
    return out


def run_publish(args: argparse.Namespace) -> dict[str, Any]:
    from bench.breakdown import Timers

    _import_pipeline(args.store)
    out: dict[str, Any] = {"baseline_rss_mib": memory.current(), "store": args.store}
    _warm_pipeline(args.tmp, args.store, site=True)
    with _pipeline(args.store, args.tmp) as p:
        p.load_staging(args.stage_dir)
        messages = p.publish_messages()
        gc.collect()
        out["rss_before_mib"] = memory.current()
        out["setup_peak_rss_mib"] = memory.peak()
        out["peak_reset"] = memory.reset_peak()
        try:
            with PeakWatch(args.result), Timers(store_only=True) as store:
                seconds, response = p.publish(messages)
        except BaseException as exc:  # noqa: BLE001
            out.update(peak_rss_mib=memory.peak(), failed=_failure(exc))
            return out
        out["peak_rss_mib"] = memory.peak()
        out["seconds"] = seconds
        out["storage_seconds"] = store.total("store")
        manifest = p.manifest()
        problem = _batch_failure(response)
        if problem or manifest is None:
            out["failed"] = problem or "no manifest after publish"
            return out
        out.update(version=manifest["version"], published_rows=manifest["rows"],
                   files=len(manifest["resources"]),
                   published_bytes=sum(r["bytes"] for r in manifest["resources"]))
        if args.digest and args.store == "file":  # after the measurement
            out["digests"] = _published_digests(p, manifest)
        _measure_site(out, manifest["version"])
    return out


def _published_digests(p: Any, manifest: dict[str, Any]) -> dict[str, Any]:
    """``bench.peers.level_digests`` of the published department, region and national files."""
    from bench import peers

    files: dict[str, dict[str, Path]] = {}
    for r in manifest["resources"]:
        level = r["name"].rsplit("-", 1)[-1]
        if level in peers.LEVELS:
            fmt = r["path"].rsplit(".", 1)[-1]
            files.setdefault(level, {})[fmt] = p.store.path(p.settings.published_bucket, r["path"])
    return peers.level_digests(files, peers.Spec.load())


def run_stage(args: argparse.Namespace) -> dict[str, Any]:
    """Stage ``--file`` as the validate function would (typed Parquet in the schema's field order,
    file order, and its upload record), without the validate function: so the publish function
    can still be measured on a workload whose validation failed. Not a measurement."""
    import hashlib
    from datetime import UTC, datetime

    import pyarrow as pa
    import pyarrow.csv as pacsv

    from bench.aws import DATASET, PRODUCER
    from opendepot import layout
    from opendepot.config import Settings
    from opendepot.contracts import PublishMessage, UploadRecord
    from opendepot.registry import load_registry
    from opendepot.render import to_parquet

    ds = load_registry().get(DATASET)
    assert ds is not None
    types = floor_types()
    columns = args.file.open(encoding="utf-8").readline().replace('"', "").strip().split(";")
    table = pacsv.read_csv(
        args.file,
        parse_options=pacsv.ParseOptions(delimiter=";"),
        convert_options=pacsv.ConvertOptions(
            column_types={c: types[c] for c in columns}, null_values=list(ds.missing_values),
            strings_can_be_null=False),
    )
    table = pa.table({f.name: (table[f.name] if f.name in columns
                               else pa.nulls(table.num_rows, types[f.name])) for f in ds.fields})
    sha = hashlib.sha256()
    with args.file.open("rb") as f:
        while chunk := f.read(1 << 24):
            sha.update(chunk)
    now = datetime.now(UTC)
    key = f"{DATASET}/{PRODUCER}/{args.file.name}"
    uid = layout.upload_id(now, key, "bench", "bench", "0000000000000001")
    size = args.file.stat().st_size
    record = UploadRecord(
        key=key, bucket=Settings().incoming_bucket, version_id="bench", etag="bench",
        sequencer="0000000000000001",
        received_at=now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        size=size, upload_id=uid, dataset=DATASET, producer=PRODUCER, rows=table.num_rows,
        rows_left_out=0, areas=len(set(table["dep"].unique().to_pylist())),
        sha256=sha.hexdigest(), bytes=size,
        report_key=layout.report_key(DATASET, PRODUCER, uid),
        staged_key=layout.staged_parquet_key(DATASET, PRODUCER, uid),
    )
    d = args.stage_dir
    d.mkdir(parents=True, exist_ok=True)
    (d / "0000.bin").write_bytes(to_parquet(table))
    (d / "0001.bin").write_text(json.dumps(record.to_json(), indent=1))
    record_key = layout.staged_record_key(DATASET, PRODUCER, uid)
    (d / "staging.json").write_text(json.dumps({
        "objects": [{"key": record.staged_key, "file": "0000.bin"},
                    {"key": record_key, "file": "0001.bin"}],
        "messages": [json.dumps(PublishMessage(DATASET, uid).to_json())]}, indent=1))
    return {"rows": table.num_rows, "staged_by": "bench"}


# ------------------------------------------------------------------------------ floor


def floor_types() -> dict[str, Any]:
    """Column -> Arrow type, from the registry's Table Schema (the types opendepot publishes)."""
    import pyarrow as pa

    from opendepot.registry import load_registry

    arrow = {"string": pa.string(), "integer": pa.int64(), "number": pa.float64(),
             "date": pa.date32(), "boolean": pa.bool_(), "year": pa.int64(), "week": pa.string()}
    ds = load_registry().get("donnees-hospitalieres-covid19")
    assert ds is not None
    return {f.name: arrow.get(f.type, pa.string()) for f in ds.fields}


def _floor_once(path: Path, types: dict[str, Any], threads: bool) -> dict[str, float]:
    import io

    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    table = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(use_threads=threads),
        parse_options=pacsv.ParseOptions(delimiter=";"),
        convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=False),
    )
    t1 = time.perf_counter()
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    parquet_bytes = sink.tell()
    t2 = time.perf_counter()
    sink = io.BytesIO()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(delimiter=";", quoting_style="needed"))
    csv_bytes = sink.tell()
    t3 = time.perf_counter()
    rows = table.num_rows
    del table, sink
    return {"seconds": t3 - t0, "read_seconds": t1 - t0, "parquet_seconds": t2 - t1,
            "csv_seconds": t3 - t2, "rows": rows, "parquet_bytes": parquet_bytes,
            "csv_bytes": csv_bytes}


def _same_outputs_once(path: Path, types: dict[str, Any]) -> float:
    """Seconds for pyarrow alone to make what opendepot publishes from ``path``, with no check:
    read with the explicit types, stage (Parquet, snappy) and read back, sort by the primary
    key, roll departments up to regions (INSEE COG) and the nation (sums), and write the three
    levels as CSV and Parquet (zstd). A reference for the cost of the outputs themselves."""
    import io

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from bench.aws import DATASET
    from opendepot.registry import load_cog, load_registry

    ds = load_registry().get(DATASET)
    cog = load_cog()
    assert ds is not None
    pk = list(ds.primary_key)
    measures = [c for c in types if c not in pk]
    t0 = time.perf_counter()
    table = pacsv.read_csv(
        path, parse_options=pacsv.ParseOptions(delimiter=";"),
        convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=False))
    staged = io.BytesIO()
    pq.write_table(table, staged, compression="snappy")
    table = pq.read_table(io.BytesIO(staged.getvalue())).sort_by([(k, "ascending") for k in pk])
    codes = pa.array(list(cog.departments), pa.string())
    regions = pa.array([d["reg"] for d in cog.departments.values()], pa.string())
    with_reg = table.append_column("reg", regions.take(pc.index_in(table["dep"], value_set=codes)))
    dims = [k for k in pk if k != "dep"]
    levels = {
        "dep": table,
        "reg": with_reg.group_by(["reg", *dims], use_threads=False)
        .aggregate([(m, "sum") for m in measures]).sort_by([("reg", "ascending")]),
        "fra": table.group_by(dims, use_threads=False).aggregate([(m, "sum") for m in measures]),
    }
    for level in levels.values():
        pq.write_table(level, io.BytesIO(), compression="zstd")
        options = pacsv.WriteOptions(delimiter=";", quoting_style="needed")
        pacsv.write_csv(level, io.BytesIO(), options)
    return time.perf_counter() - t0


def run_floor(args: argparse.Namespace) -> dict[str, Any]:
    import pyarrow.csv  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    types = floor_types()  # (imports opendepot's registry: a few kB)
    present = set(args.file.open(encoding="utf-8").readline().replace('"', "").strip().split(";"))
    types = {k: v for k, v in types.items() if k in present}
    out: dict[str, Any] = {
        "baseline_rss_mib": memory.current(), "types": {k: str(v) for k, v in types.items()}}
    _floor_once(_warmup_file(args.tmp), types, True)
    gc.collect()
    out["peak_reset"] = memory.reset_peak()
    try:
        out.update(_floor_once(args.file, types, threads=True))
        out["peak_rss_mib"] = memory.peak()
        gc.collect()
        single = _floor_once(args.file, types, threads=False)
        out["single_thread_seconds"] = single["seconds"]
        gc.collect()
        out["same_outputs_seconds"] = _same_outputs_once(args.file, types)
    except BaseException as exc:  # noqa: BLE001
        out.update(peak_rss_mib=memory.peak(), failed=_failure(exc))
    return out


# ------------------------------------------------------------------------------ peer


class _Cap(Exception):
    """Raised from Frictionless's row callback when the time cap is reached."""


def frictionless_schema_descriptor(columns: list[str]) -> dict[str, Any]:
    """The registry's Table Schema without opendepot's extension keys, restricted to the file's
    columns (as ``tests/test_frictionless_parity.py`` builds it)."""
    from opendepot.registry import load_registry

    ds = load_registry().get("donnees-hospitalieres-covid19")
    assert ds is not None
    declared = ds.schema
    fields = [{k: v for k, v in f.items() if k not in {"dateFormats", "optional"}}
              for f in declared["fields"] if f["name"] in columns]
    return {"fields": fields, "missingValues": declared["missingValues"],
            "primaryKey": declared["primaryKey"]}


def run_peer(args: argparse.Namespace) -> dict[str, Any]:
    import frictionless

    columns = args.file.open(encoding="utf-8").readline().replace('"', "").strip().split(";")
    schema = frictionless.Schema.from_descriptor(frictionless_schema_descriptor(columns))
    resource = frictionless.Resource(
        path=args.file.name,
        basepath=str(args.file.parent),
        schema=schema,
        dialect=frictionless.Dialect.from_descriptor({"csv": {"delimiter": ";"}}),
    )
    out: dict[str, Any] = {"baseline_rss_mib": memory.current(), "cap_seconds": args.cap,
                           "frictionless": importlib.metadata.version("frictionless")}
    rows = 0
    started = time.perf_counter()
    deadline = started + args.cap

    def on_row(_row: Any) -> None:
        nonlocal rows
        rows += 1
        if rows % 1000 == 0 and time.perf_counter() > deadline:
            raise _Cap()

    memory.reset_peak()
    try:
        report = resource.validate(on_row=on_row, limit_errors=1000)  # type: ignore[arg-type]
        out.update(capped=False, valid=report.valid, errors=report.stats.get("errors"))
    except _Cap:
        out["capped"] = True
    except BaseException as exc:  # noqa: BLE001
        if isinstance(exc.__cause__, _Cap) or "_Cap" in repr(exc):
            out["capped"] = True
        else:
            out["failed"] = _failure(exc)
    seconds = time.perf_counter() - started
    out.update(rows=rows, seconds=seconds, rows_per_second=rows / seconds if seconds else None,
               peak_rss_mib=memory.peak())
    return out


def run_duckdb(args: argparse.Namespace) -> dict[str, Any]:
    from bench.peers import run_tool

    return run_tool("duckdb", args.file, args.tmp, _warmup_file(args.tmp), PeakWatch(args.result),
                    digest=args.digest)


def run_polars(args: argparse.Namespace) -> dict[str, Any]:
    from bench.peers import run_tool

    return run_tool("polars", args.file, args.tmp, _warmup_file(args.tmp), PeakWatch(args.result),
                    digest=args.digest)


# ------------------------------------------------------------------------------ server stack


class _Collector:
    def __init__(self) -> None:
        self.batches: list[Any] = []

    def __call__(self, result: Any) -> None:
        self.batches.append(result)

    def seconds(self, queue: str) -> float:
        return sum(b.seconds for b in self.batches if b.queue == queue)

    def first(self, queue: str) -> float:
        """The first invocation on ``queue`` (publish: the uploaded dataset's own publication;
        later ones are the datasets it feeds, asked to publish again)."""
        return next((b.seconds for b in self.batches if b.queue == queue), 0.0)

    def errors(self) -> list[str]:
        return [b.error for b in self.batches if b.error] + [
            f"{b.function_name}: {b.failed} failed"
            for b in self.batches if b.failed and not b.error]


def _start_stack() -> Any:
    from infra.stack import LocalStack
    from opendepot import runtime

    stack = LocalStack(api_port=None)
    stack.start()
    runtime.use(None)  # the handlers rebuild their clients from this stack's environment
    runtime.current()  # ... now, as in the Lambda init phase, not inside the first invocation
    return stack


def _manifest(stack: Any) -> dict[str, Any] | None:
    from bench.aws import DATASET
    from opendepot import layout

    try:
        body = stack.s3.get_object(Bucket=stack.published_bucket,
                                   Key=layout.manifest_key(DATASET))["Body"].read()
    except stack.s3.exceptions.NoSuchKey:
        return None
    return json.loads(body)


def _drop(stack: Any, body: bytes, name: str) -> None:
    from bench.aws import DATASET, PRODUCER

    stack.s3.put_object(Bucket=stack.incoming_bucket, Key=f"{DATASET}/{PRODUCER}/{name}", Body=body)


def run_server(args: argparse.Namespace) -> dict[str, Any]:
    from infra.pump import Pump, bindings_for
    from infra.stack import PUBLISH_QUEUE, VALIDATE_QUEUE
    from opendepot import runtime

    _import_pipeline()
    out: dict[str, Any] = {"baseline_rss_mib": memory.current(), "runs": []}
    body = args.file.read_bytes()
    warm = _warmup_file(args.tmp).read_bytes()
    for i in range(args.reps + 1):  # the first run (a small file) warms the process up
        stack = _start_stack()
        try:
            collect = _Collector()
            pump = Pump(stack.sqs, bindings_for(stack), on_batch=collect)
            pump.run(timeout=60)  # the s3:TestEvent
            collect.batches.clear()
            started = time.perf_counter()
            _drop(stack, warm if i == 0 else body, args.file.name)
            pump.run(timeout=args.timeout)
            e2e = time.perf_counter() - started
            manifest = _manifest(stack)
            if i == 0:
                continue
            run: dict[str, Any] = {"e2e_seconds": e2e,
                   "validate_seconds": collect.seconds(VALIDATE_QUEUE),
                   "publish_seconds": collect.first(PUBLISH_QUEUE),
                   "dependent_publish_seconds": collect.seconds(PUBLISH_QUEUE)
                   - collect.first(PUBLISH_QUEUE),
                   "rows": (manifest or {}).get("rows")}
            run["seconds"] = run["validate_seconds"] + run["publish_seconds"]
            if collect.errors() or manifest is None:
                run["failed"] = "; ".join(collect.errors()) or "no manifest"
            out["runs"].append(run)
        finally:
            stack.stop()
            runtime.use(None)
    return out


def run_increment(args: argparse.Namespace) -> dict[str, Any]:
    """Publish the full history, then measure upload -> new manifest readable for history + 1 day,
    ``--reps`` times (each time the history is uploaded again first, untimed).

    Each upload has its own name, as Santé publique France's daily files do (the name carries the
    day): on moto the S3 notification has no ``versionId`` and no ``sequencer``, so two writes of
    one key in the same second would be ordered by the upload id's hash, not by arrival."""
    import threading

    from infra.pump import Pump, bindings_for
    from infra.stack import PUBLISH_QUEUE, VALIDATE_QUEUE
    from opendepot import runtime

    history = args.file.read_bytes()
    increment = args.increment.read_bytes()
    new_day = args.new_day
    stem = args.file.name.removesuffix(".csv")
    out: dict[str, Any] = {"runs": [], "new_day": new_day}
    stack = _start_stack()
    try:
        collect = _Collector()
        pump = Pump(stack.sqs, bindings_for(stack), on_batch=collect)
        pump.run(timeout=60)
        for rep in range(args.reps):
            suffix = f"-{rep}" if rep else ""
            _drop(stack, history, f"{stem}{suffix}.csv")  # the full history, published (untimed)
            pump.run(timeout=args.timeout)
            before = _manifest(stack)
            if before is None or before["temporal_coverage"]["end"] == new_day:
                raise RuntimeError("the history was not published")
            collect.batches.clear()
            errors: list[BaseException] = []
            done = threading.Event()

            def drain(errors: list[BaseException], done: threading.Event) -> None:
                try:
                    pump.run(timeout=args.timeout)
                except BaseException as exc:  # noqa: BLE001
                    errors.append(exc)
                finally:
                    done.set()

            started = time.perf_counter()
            # S3 notifies the validate queue inside put_object
            _drop(stack, increment, f"{stem.replace('2021-03-17', new_day)}{suffix}.csv")
            thread = threading.Thread(target=drain, args=(errors, done), daemon=True)
            thread.start()
            seen = None
            while time.perf_counter() - started < args.timeout:
                m = _manifest(stack)
                if m is not None and m["version"] != before["version"]:
                    seen = time.perf_counter() - started
                    ok = m["temporal_coverage"]["end"] == new_day
                    break
                if done.is_set() and errors:
                    break
                time.sleep(0.01)
            thread.join(args.timeout)
            idle = time.perf_counter() - started
            run: dict[str, Any] = {"seconds": seen, "pump_idle_seconds": idle,
                                   "validate_seconds": collect.seconds(VALIDATE_QUEUE),
                                   "publish_seconds": collect.first(PUBLISH_QUEUE),
                                   "dependent_publish_seconds": collect.seconds(PUBLISH_QUEUE)
                                   - collect.first(PUBLISH_QUEUE)}
            if seen is None or not ok or errors or collect.errors():
                run["failed"] = "; ".join([*map(_failure, errors), *collect.errors()]) or (
                    "no new manifest" if seen is None else "new manifest lacks the new day")
            out["runs"].append(run)
    finally:
        stack.stop()
        runtime.use(None)
    return out


# ------------------------------------------------------------------------------ profile


def run_profile(args: argparse.Namespace) -> dict[str, Any]:
    """Step timings first (no profiler, fresh process: the memory column means something), then
    cProfile of the same validate + publish; both written to ``--out``."""
    import cProfile
    import io
    import pstats

    from bench.aws import MotoPipeline
    from bench.breakdown import Timers, format_rows
    from bench.workloads import count_rows

    _warm_pipeline(args.tmp)
    with MotoPipeline() as p:
        event = p.upload(p.key_for(args.file.name), args.file.read_bytes())
        gc.collect()
        memory.reset_peak()
        rss_v = memory.current()
        with Timers() as timers:
            v_seconds, _ = p.validate(event)
            validate_rows = timers.rows()
        messages = p.publish_messages()
        gc.collect()
        memory.reset_peak()
        rss_p = memory.current()
        with Timers() as timers:
            p_seconds, _ = p.publish(messages)
            publish_rows = timers.rows()

    profiler = cProfile.Profile()
    with MotoPipeline() as p:
        event = p.upload(p.key_for(args.file.name), args.file.read_bytes())
        profiler.enable()
        started = time.perf_counter()
        p.validate(event)
        validated = time.perf_counter()
        p.publish(p.publish_messages())
        finished = time.perf_counter()
        profiler.disable()

    stream = io.StringIO()
    stream.write(f"validate + publish handlers (moto in process) on {args.file.name} in "
                 f"{args.file.parent.name}/ ({count_rows(args.file):,} rows)\n\n")
    stream.write(f"== validate, step by step (no profiler; handler {v_seconds:.2f} s; resident "
                 f"{rss_v:.0f} MiB before it) ==\n")
    stream.write(format_rows(validate_rows, v_seconds, ""))
    stream.write(f"\n\n== publish, step by step (no profiler; handler {p_seconds:.2f} s; resident "
                 f"{rss_p:.0f} MiB before it, after validate freed its memory) ==\n")
    stream.write(format_rows(publish_rows, p_seconds, ""))
    stream.write(f"\n\n== cProfile: validate {validated - started:.2f} s, publish "
                 f"{finished - validated:.2f} s under the profiler; top 25 by cumulative time ==\n")
    stats = pstats.Stats(profiler, stream=stream)
    stats.sort_stats("cumulative").print_stats(25)
    stream.write("\n== cProfile: top 25 by own time ==\n")
    stats.sort_stats("tottime").print_stats(25)
    if timers.missing:
        stream.write(f"\n(steps not found, not timed: {', '.join(timers.missing)})\n")
    text = stream.getvalue().replace(str(Path(__file__).resolve().parent.parent) + "/", "")
    text = text.replace(sys.prefix + "/", "")
    args.out.write_text(text)
    return {"validate_seconds": v_seconds, "publish_seconds": p_seconds,
            "profiled_validate_seconds": validated - started,
            "profiled_publish_seconds": finished - validated, "profile": str(args.out)}


MODES = {"validate": run_validate, "publish": run_publish, "stage": run_stage,
         "floor": run_floor, "peer": run_peer, "duckdb": run_duckdb, "polars": run_polars,
         "server": run_server, "increment": run_increment, "profile": run_profile}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.child", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=sorted(MODES))
    ap.add_argument("--file", type=Path)
    ap.add_argument("--increment", type=Path)
    ap.add_argument("--new-day", default="")
    ap.add_argument("--stage-dir", type=Path)
    ap.add_argument("--store", choices=("moto", "file"), default="moto",
                    help="validate/publish: moto in process (default), or a local directory")
    ap.add_argument("--tmp", type=Path, required=True, help="scratch directory")
    ap.add_argument("--result", type=Path, required=True)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--cap", type=float, default=120.0)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--digest", action="store_true",
                    help="publish (file store), duckdb, polars: digests of the published rows")
    ap.add_argument("--mem-gib", type=float, default=0.0, help="RLIMIT_AS cap (0: none)")
    args = ap.parse_args(argv)
    faulthandler.enable()  # a native crash still leaves a Python traceback in the log
    if args.mem_gib:
        memory.limit_address_space(args.mem_gib)
    started = time.perf_counter()
    try:
        doc = MODES[args.mode](args)
    except BaseException as exc:  # noqa: BLE001 - reported, the driver goes on
        traceback.print_exc()
        doc = {"failed": _failure(exc)}
    peak = max(memory.peak(), doc.get("setup_peak_rss_mib", 0))
    doc.update(mode=args.mode, process_peak_rss_mib=peak,
               child_seconds=time.perf_counter() - started, pid=os.getpid())
    _result(args.result, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
