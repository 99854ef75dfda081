"""Benchmark of the HTTP index: requests per second and p50/p99 latency on localhost.

    python -m bench.index_bench [--seconds 3] [--threads 4] [--datasets 20] [--versions 50]
                                [--no-catalog] [--no-tabular]

The index function (``functions.index_api.app.lambda_handler``) runs behind the local API
Gateway of ``infra/http_server.py`` on 127.0.0.1, over an in-memory store holding a synthetic
catalog (``--datasets`` datasets of ``--versions`` versions each: ``catalog.json``, manifests,
``datapackage.json``). The handler is called one request at a time, as one warm Lambda instance
serves them (the Powertools resolver keeps the current event on the app object). The load
comes from a second process (``python -c`` running ``CLIENT`` below: ``http.client`` on kept-alive
connections, a few threads, bounded in time and count). Prints a table and writes
``bench/index_results.json``. TCP_NODELAY is set on the server's sockets (see ``main``).

The row-level API (``/api/resources/{rid}/data/``, ``opendepot.tabular``) is measured on the
real hospital stock file and on its ×10 copy (``bench.workloads.write_scaled``), each validated
and published in memory first: the Done-when query (``TABULAR_QUERIES``) and a sort over every
row, one client thread (latency, not throughput), after one cold request (caches emptied: the
Parquet object read and its columns decoded). The row groups each query reads (predicate
pushdown) are counted in process. A third, what-if workload is ×10 with its Parquet rewritten in
row groups of ``WHAT_IF_ROW_GROUP_ROWS`` rows (the publisher writes up to 1,048,576 a group: the
real file is one group, ×10 two), to show what pushdown gains with smaller groups. These figures
also go to ``bench/results.json`` under ``index_bench.tabular`` (the file ``bench.run`` writes;
created when absent).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pyarrow as pa
import pyarrow.parquet as pq

from opendepot import tabular
from opendepot.config import Settings
from opendepot.contracts import UploadRecord
from opendepot.ingest import ObjectEvent, ingest
from opendepot.publication import publish_dataset
from opendepot.registry import load_cog, load_registry
from opendepot.storage import MemoryQueue, MemoryStore

HOST = "127.0.0.1"
BUCKET = "opendepot-published-123456789012"
FILES = "https://files.opendepot.example.fr"
RESULTS = Path(__file__).with_name("index_results.json")
BENCH_RESULTS = Path(__file__).with_name("results.json")
"""``bench.run``'s results: the row-level API's figures are merged in (``index_bench.tabular``)."""
MAX_SECONDS = 10.0
MAX_THREADS = 16
MAX_REQUESTS = 50_000
LEVELS = ("dep", "reg", "fra")
FORMATS = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}

# --- the synthetic catalog ------------------------------------------------------------------------


def _version(day: int, n: int) -> tuple[str, str]:
    """Version id and timestamp of the n-th daily publication."""
    t = time.gmtime(1_780_000_000 + day * 86_400 + n * 60)
    return time.strftime("%Y-%m-%d-%Hh%Mm%Ss", t), time.strftime("%Y-%m-%dT%H:%M:%SZ", t)


def _schema(level: str) -> dict[str, Any]:
    return {
        "fields": [
            {"name": level, "type": "string", "title": "Zone"},
            {"name": "sexe", "type": "integer"},
            {"name": "jour", "type": "date"},
            *({"name": m, "type": "integer"} for m in ("hosp", "rea", "rad", "dc")),
        ],
        "missingValues": [""],
        "primaryKey": [level, "sexe", "jour"],
    }


def _upload(slug: str, upload_id: str, rows: int) -> dict[str, Any]:
    """The upload record (as ``ingest`` writes it) of a synthetic version's one upload."""
    key = f"{slug}/spf/{upload_id}.csv"
    return UploadRecord(
        key=key, bucket="opendepot-incoming-123456789012", version_id=None,
        etag=uuid.uuid5(uuid.NAMESPACE_URL, key).hex, sequencer="",
        received_at=f"{upload_id[:4]}-{upload_id[4:6]}-{upload_id[6:8]}T00:00:00.000Z",
        size=rows * 40, upload_id=upload_id, dataset=slug, producer="spf", rows=rows,
        rows_left_out=0, areas=101, sha256=uuid.uuid5(uuid.NAMESPACE_URL, key).hex * 2,
        bytes=rows * 40, report_key=f"reports/{slug}/spf/{upload_id}.json",
        staged_key=f"staging/{slug}/spf/{upload_id}.parquet",
    ).to_json()  # fmt: skip


def _history(slug: str, i: int, versions: int) -> list[dict[str, Any]]:
    """The ``versions`` entries of dataset ``i``'s manifest, newest first."""
    history: list[dict[str, Any]] = []
    for n in range(versions):
        version, at = _version(n, i)
        upload_id = f"{version.replace('-', '')}-{i:012x}"
        rows = {"dep": 1000 + n * 101, "reg": 200 + n * 18, "fra": 10 + n}
        files = [
            {
                "name": f"{slug}-{level}",
                "format": fmt,
                "path": f"{slug}/{version}/{slug}-{level}.{fmt}",
                "sha256": uuid.uuid5(uuid.NAMESPACE_URL, f"{slug}{version}{level}{fmt}").hex * 2,
                "bytes": rows[level] * (30 if fmt == "csv" else 6),
                "rows": rows[level],
            }
            for level in LEVELS
            for fmt in FORMATS
        ]
        history.insert(
            0,
            {
                "version": version,
                "published_at": at,
                "upload_ids": [upload_id],
                "uploads": [{"upload_id": upload_id, "producer": "spf"}],
                "rows": rows,
                "resources": files,
            },
        )
    return history


def _manifest(slug: str, i: int, versions: int) -> dict[str, Any]:
    """Dataset ``i``'s manifest: ``versions`` versions, the newest current."""
    schemas = {level: _schema(level) for level in LEVELS}
    history = _history(slug, i, versions)
    current = history[0]
    resources = [
        {
            **f,
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"opendepot:{slug}:{level}:{f['format']}")),
            "title": f"Jeu {i:02d}, {level} ({f['format'].upper()})",
            "level": level,
            "mime": FORMATS[f["format"]],
            "latest_path": f"{slug}/latest/{f['name']}.{f['format']}",
            "last_modified": current["published_at"],
        }
        for f in current["resources"]
        for level in [f["name"].rsplit("-", 1)[1]]
    ]
    return {
        "dataset": slug,
        "version": current["version"],
        "published_at": current["published_at"],
        "created_at": history[-1]["published_at"],
        "uploads": [_upload(slug, current["upload_ids"][0], current["rows"]["dep"])],
        "rows": current["rows"],
        "rows_left_out": 0,
        "temporal_coverage": {"start": "2020-03-18", "end": "2023-03-31"},
        "resources": resources,
        "datapackage_path": f"{slug}/{current['version']}/datapackage.json",
        "schema": schemas["dep"],
        "schemas": schemas,
        "versions": history,
    }


def synthetic_store(datasets: int, versions: int) -> tuple[MemoryStore, list[str]]:
    """A published bucket with ``datasets`` datasets of ``versions`` versions each, every
    document complete as the publish stage writes it (each parses with its contract)."""
    store = MemoryStore()
    entries, slugs = [], []
    for i in range(datasets):
        slug = f"jeu-de-donnees-{i:02d}"
        slugs.append(slug)
        manifest = _manifest(slug, i, versions)
        schemas = manifest["schemas"]
        package = {
            "name": slug,
            "version": manifest["version"],
            "resources": [
                {"name": f"{r['name']}-{r['format']}", "path": r["path"].rsplit("/", 1)[1],
                 "bytes": r["bytes"], "hash": f"sha256:{r['sha256']}",
                 "schema": schemas[r["level"]]}
                for r in manifest["resources"]
            ],
        }  # fmt: skip
        _put(store, f"{slug}/manifest.json", manifest)
        _put(store, manifest["datapackage_path"], package)
        entries.append(
            {
                "name": slug,
                "title": f"Jeu de données {i:02d} : hospitalisations par département",
                "description": "Nombre de personnes hospitalisées, en réanimation, retournées à "
                "domicile et décédées, par département, sexe et jour. " * 2,
                "organization": {"name": "Santé publique France", "slug": "sante-publique-france"},
                "license": "lov2",
                "frequency": "daily",
                "tags": ["covid19", "hopital", f"lot-{i % 4}"],
                **{k: manifest[k] for k in ("version", "published_at", "created_at", "rows",
                                            "rows_left_out", "temporal_coverage", "resources",
                                            "schemas")},
                "levels": list(LEVELS),
                "manifest_path": f"{slug}/manifest.json",
            }
        )  # fmt: skip
    _put(store, "catalog.json", {"generated_at": "2026-11-29T07:30:13Z", "datasets": entries})
    return store, slugs


def _put(store: MemoryStore, key: str, doc: Any) -> None:
    store.put(BUCKET, key, json.dumps(doc, ensure_ascii=False).encode("utf-8"), "application/json")


# --- the load generator (runs in a second process) ------------------------------------------------

CLIENT = r"""
import http.client, json, sys, threading, time
cfg = json.load(sys.stdin)
assert cfg["host"] == "127.0.0.1"
def run(scenario):
    paths, headers = scenario["paths"], scenario["headers"]
    deadline = time.perf_counter() + cfg["seconds"]
    lock = threading.Lock()
    latencies, statuses, sizes = [], {}, []
    budget = [cfg["max_requests"]]
    def worker(k):
        conn = http.client.HTTPConnection(cfg["host"], cfg["port"], timeout=10)
        i = k
        while time.perf_counter() < deadline:
            with lock:
                if budget[0] <= 0:
                    break
                budget[0] -= 1
            path = paths[i % len(paths)]
            i += cfg["threads"]
            t0 = time.perf_counter()
            conn.request("GET", path, headers=headers)
            r = conn.getresponse()
            data = r.read()
            dt = time.perf_counter() - t0
            with lock:
                latencies.append(dt)
                statuses[r.status] = statuses.get(r.status, 0) + 1
                sizes.append(len(data))
        conn.close()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(cfg["threads"])]
    t0 = time.perf_counter()
    for t in threads: t.start()
    for t in threads: t.join()
    elapsed = time.perf_counter() - t0
    latencies.sort()
    q = lambda p: latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000
    return {"name": scenario["name"], "requests": len(latencies), "seconds": round(elapsed, 3),
            "rps": round(len(latencies) / elapsed, 1), "p50_ms": round(q(0.50), 2),
            "p99_ms": round(q(0.99), 2), "max_ms": round(latencies[-1] * 1000, 2),
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "mean_bytes": round(sum(sizes) / len(sizes))}
print(json.dumps([run(s) for s in cfg["scenarios"]]))
"""


def scenarios(slugs: list[str], etags: dict[str, str]) -> list[dict[str, Any]]:
    """What the client requests: (name, paths taken in turn, request headers)."""
    plain = {"Accept-Encoding": "identity"}
    detail = [f"/api/1/datasets/{s}/" for s in slugs]
    cases: list[tuple[str, list[str], dict[str, str]]] = [
        ("dataset detail", detail, plain),
        ("dataset detail, gzip", detail, {"Accept-Encoding": "gzip"}),
        ("dataset list (20/page)", ["/api/1/datasets/?page_size=20"], plain),
        (
            "dataset list, q + sort",
            ["/api/1/datasets/?q=hospitalisations&tag=lot-1&sort=-last_update"],
            plain,
        ),
        (
            "versions (50/page)",
            [f"/api/1/datasets/{s}/versions/?page_size=50" for s in slugs],
            plain,
        ),
        ("detail poll, 304", [detail[0]], {**plain, "If-None-Match": etags[detail[0]]}),
    ]
    return [{"name": n, "paths": p, "headers": h} for n, p, h in cases]


def _client(config: dict[str, Any], seconds: float) -> subprocess.CompletedProcess[str]:
    """Run the load generator process (``CLIENT``) with ``config``."""
    return subprocess.run(
        [sys.executable, "-c", CLIENT],
        input=json.dumps(config),
        capture_output=True,
        text=True,
        timeout=len(config["scenarios"]) * (seconds + 15),
        check=False,
    )


def _serialised(index_api: Any) -> Any:
    lock = threading.Lock()

    def handler(event: dict[str, Any], context: Any) -> Any:
        with lock:  # one request at a time, as one Lambda instance
            return index_api.lambda_handler(event, context)

    return handler


def _serve_and_load(
    index_api: Any,
    http_server: Any,
    store: MemoryStore,
    slugs: list[str],
    seconds: float,
    threads: int,
) -> subprocess.CompletedProcess[str]:
    """Serve the index on 127.0.0.1 and run the load generator process against it."""
    with http_server.LocalHttpApi(_serialised(index_api), host=HOST) as api:
        index_api.configure(
            store, Settings(published_bucket=BUCKET, public_base_url=FILES, api_base_url=api.url)
        )
        etags = {}
        conn = http.client.HTTPConnection(HOST, api.port, timeout=10)
        for path in [f"/api/1/datasets/{s}/" for s in slugs]:  # warm: catalog and documents
            conn.request("GET", path, headers={"Accept-Encoding": "identity"})
            r = conn.getresponse()
            r.read()
            etags[path] = r.getheader("ETag") or ""
        conn.close()
        config = {
            "host": HOST,
            "port": api.port,
            "seconds": seconds,
            "threads": threads,
            "max_requests": MAX_REQUESTS,
            "scenarios": scenarios(slugs, etags),
        }
        return _client(config, seconds)


# --- the row-level API on the real hospital file and its x10 copy ---------------------------------

TABULAR_QUERIES = {
    "done-when": "dep__exact=2A&sexe__exact=0&jour__exact=2021-03-16",
    "sort": "rea__sort=desc&page_size=50",
}
"""The Done-when query of issue 16, and a sort over every row (one page of 50)."""
HOSP = "donnees-hospitalieres-covid19"


def published_hospital(csv: Path) -> tuple[MemoryStore, Settings, str, str]:
    """``csv`` validated and published in memory as the hospital dataset: (store, settings,
    the department level's CSV resource id, the key of its Parquet file)."""
    store, queue = MemoryStore(), MemoryQueue()
    settings = Settings(publish_queue_url="memory://publish.fifo", public_base_url=FILES)
    registry, cog = load_registry(), load_cog()
    body = csv.read_bytes()
    key = f"{HOSP}/spf/{csv.name}"
    etag = store.put(settings.incoming_bucket, key, body, "text/csv")
    now = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
    event = ObjectEvent(bucket=settings.incoming_bucket, key=key, size=len(body), etag=etag,
                        version_id="v1", sequencer="0000000000000001", event_time=now)
    outcome = ingest(store, queue, settings, registry, cog, event)
    if outcome.status != "accepted":
        raise RuntimeError(f"{csv.name}: {outcome.status}")
    dataset = registry.get(HOSP)
    assert dataset is not None
    publish_dataset(store, settings, registry, cog, dataset, now + timedelta(minutes=1))
    manifest = json.loads(store.get(settings.published_bucket, f"{HOSP}/manifest.json"))
    dep = {r["format"]: r for r in manifest["resources"] if r["level"] == "dep"}
    return store, settings, dep["csv"]["id"], dep["parquet"]["path"]


def pushdown(store: MemoryStore, settings: Settings, key: str) -> dict[str, Any]:
    """Row groups each query reads, of the file's, counted in process (``tabular.Result``)."""
    body = store.get(settings.published_bucket, key)
    source = tabular.ParquetSource(store, settings.published_bucket, key, len(body),
                                   hashlib.sha256(body).hexdigest())
    schema = source.fragment().physical_schema
    out: dict[str, Any] = {"parquet_bytes": len(body)}
    for name, query in TABULAR_QUERIES.items():
        plan = tabular.parse_query(parse_qsl(query, keep_blank_values=True), schema)
        result = tabular.query(source, plan)
        out[name] = {"total": result.total, "row_groups_read": result.row_groups_read,
                     "row_groups": result.row_groups_total}
    return out


def _cold_ms(port: int, path: str) -> float:
    """One request after every cache of ``opendepot.tabular`` is emptied, in milliseconds."""
    tabular.forget_cache()
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    t0 = time.perf_counter()
    conn.request("GET", path, headers={"Accept-Encoding": "identity"})
    r = conn.getresponse()
    r.read()
    conn.close()
    if r.status != 200:
        raise RuntimeError(f"{path}: {r.status}")
    return round((time.perf_counter() - t0) * 1000, 2)


WHAT_IF_ROW_GROUP_ROWS = 65_536
"""Row group size of the what-if workload (the publisher's own: up to 1,048,576 rows)."""


def regroup(store: MemoryStore, settings: Settings, key: str, rows: int) -> None:
    """What if: the published Parquet rewritten in row groups of ``rows`` rows, in place, its
    manifest entry's ``bytes`` and ``sha256`` made to match (same rows, same order)."""
    bucket = settings.published_bucket
    sink = pa.BufferOutputStream()
    pq.write_table(pq.read_table(pa.BufferReader(store.get(bucket, key))), sink,
                   row_group_size=rows, compression="zstd")
    body = sink.getvalue().to_pybytes()
    store.put(bucket, key, body, "application/vnd.apache.parquet")
    manifest_key = f"{HOSP}/manifest.json"
    manifest = json.loads(store.get(bucket, manifest_key))
    for r in manifest["resources"]:
        if r["path"] == key:
            r["bytes"], r["sha256"] = len(body), hashlib.sha256(body).hexdigest()
    _put_in(store, bucket, manifest_key, manifest)


def _put_in(store: MemoryStore, bucket: str, key: str, doc: Any) -> None:
    store.put(bucket, key, json.dumps(doc).encode("utf-8"), "application/json")


def tabular_bench(index_api: Any, http_server: Any, workload: str,
                  published: tuple[MemoryStore, Settings, str, str], seconds: float,
                  publish_seconds: float) -> dict[str, Any]:
    """The row-level API's latency on one published file (see module docstring)."""
    store, settings, rid, key = published
    doc: dict[str, Any] = {"workload": workload, "rows": None, "publish_seconds": publish_seconds,
                           **pushdown(store, settings, key)}
    with http_server.LocalHttpApi(_serialised(index_api), host=HOST) as api:
        index_api.configure(store, replace(settings, api_base_url=api.url))
        paths = {n: f"/api/resources/{rid}/data/?{q}" for n, q in TABULAR_QUERIES.items()}
        cold = {n: _cold_ms(api.port, path) for n, path in paths.items()}
        config = {"host": HOST, "port": api.port, "seconds": seconds, "threads": 1,
                  "max_requests": MAX_REQUESTS,
                  "scenarios": [{"name": f"tabular {n}, {workload}", "paths": [path],
                                 "headers": {"Accept-Encoding": "identity"}}
                                for n, path in paths.items()]}
        proc = _client(config, seconds)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip()[-300:])
    doc["rows"] = doc["sort"]["total"]
    for name, measured in zip(TABULAR_QUERIES, json.loads(proc.stdout), strict=True):
        doc[name].update(query=TABULAR_QUERIES[name], cold_ms=cold[name], **measured)
    return doc


def run_tabular(index_api: Any, http_server: Any, seconds: float) -> dict[str, Any]:
    """The row-level API on the real stock file and on x10 (written to a temporary folder)."""
    from bench import workloads

    out: dict[str, Any] = {"queries": TABULAR_QUERIES, "client_threads": 1}
    with tempfile.TemporaryDirectory(prefix="opendepot-tabular-") as tmp:
        x10 = Path(tmp) / f"{HOSP}-x10.csv"
        workloads.write_scaled(x10, 10)
        for workload, csv in (("real", workloads.REAL_FILE), ("x10", x10)):
            started = time.perf_counter()
            published = published_hospital(csv)
            took = round(time.perf_counter() - started, 1)
            out[workload] = tabular_bench(index_api, http_server, workload, published, seconds,
                                          took)
        store, settings, _, key = published  # x10's, rewritten in smaller row groups
        regroup(store, settings, key, WHAT_IF_ROW_GROUP_ROWS)
        what_if = f"x10, row groups of {WHAT_IF_ROW_GROUP_ROWS:,} rows (what if)"
        out["x10_regrouped"] = tabular_bench(index_api, http_server, what_if, published,
                                             seconds, took)
    return out


def merge_into_bench_results(doc: dict[str, Any], path: Path = BENCH_RESULTS) -> None:
    """Put ``doc`` at ``index_bench.tabular`` of ``bench.run``'s results (created if absent)."""
    results: dict[str, Any] = json.loads(path.read_text("utf-8")) if path.exists() else {}
    results.setdefault("index_bench", {})["tabular"] = doc
    path.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n", "utf-8")


def _print(results: list[dict[str, Any]]) -> None:
    header = (
        f"{'scenario':<26} {'requests':>8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'bytes':>8}  statuses"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r['name']:<26} {r['requests']:>8} {r['rps']:>8.1f} {r['p50_ms']:>8.2f} "
            f"{r['p99_ms']:>8.2f} {r['mean_bytes']:>8}  {r['statuses']}"
        )


def _print_tabular(doc: dict[str, Any]) -> None:
    print("\nrow-level API (/api/resources/{rid}/data/), one client thread")
    print(f"{'workload':<13} {'query':<10} {'rows':>9} {'groups':>7} {'cold ms':>8} "
          f"{'p50 ms':>8} {'p99 ms':>8} {'req/s':>7}")
    for workload in ("real", "x10", "x10_regrouped"):
        w = doc[workload]
        for name in TABULAR_QUERIES:
            q = w[name]
            print(f"{workload[:13]:<13} {name:<10} {w['rows']:>9} "
                  f"{q['row_groups_read']:>3}/{q['row_groups']:<3} {q['cold_ms']:>8.1f} "
                  f"{q['p50_ms']:>8.2f} {q['p99_ms']:>8.2f} {q['rps']:>7.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per scenario (0.2 to 10)")
    parser.add_argument("--threads", type=int, default=4, help="client threads (max 16)")
    parser.add_argument("--datasets", type=int, default=20)
    parser.add_argument("--versions", type=int, default=50)
    parser.add_argument("--out", type=Path, default=RESULTS, help="results JSON file")
    parser.add_argument("--no-catalog", action="store_true", help="skip the catalog scenarios")
    parser.add_argument("--no-tabular", action="store_true", help="skip the row-level API")
    parser.add_argument("--bench-results", type=Path, default=BENCH_RESULTS,
                        help="bench.run's results file the row-level figures are merged into")
    args = parser.parse_args(argv)
    seconds = min(max(args.seconds, 0.2), MAX_SECONDS)
    threads = min(max(args.threads, 1), MAX_THREADS)

    from functions.index_api import app as index_api
    from infra import http_server

    # The local server writes headers and body in two sends; without TCP_NODELAY, Nagle and
    # delayed ACKs add ~40 ms to every small answer, which would measure the socket, not the
    # index. StreamRequestHandler's own switch turns it off; everything is put back after.
    saved = (
        http_server._RequestHandler.disable_nagle_algorithm,
        index_api.logger.log_level,
    )
    http_server._RequestHandler.disable_nagle_algorithm = True
    index_api.logger.setLevel("WARNING")
    started = time.perf_counter()
    report: dict[str, Any] = {}
    try:
        if not args.no_catalog:
            store, slugs = synthetic_store(args.datasets, args.versions)
            proc = _serve_and_load(index_api, http_server, store, slugs, seconds, threads)
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                return 1
            report["setup"] = {
                "datasets": args.datasets,
                "versions_per_dataset": args.versions,
                "client_threads": threads,
                "seconds_per_scenario": seconds,
                "server": "infra/http_server.py LocalHttpApi, handler serialised (one Lambda "
                          "instance)",
                "python": platform.python_version(),
                "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
                "catalog_bytes": len(store.get(BUCKET, "catalog.json")),
                "manifest_bytes": len(store.get(BUCKET, f"{slugs[0]}/manifest.json")),
            }
            report["results"] = json.loads(proc.stdout)
        if not args.no_tabular:
            report["tabular"] = run_tabular(index_api, http_server, seconds)
    finally:
        http_server._RequestHandler.disable_nagle_algorithm = saved[0]
        index_api.logger.setLevel(saved[1])
        index_api.configure(None)  # back to the runtime's store
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    args.out.write_text(json.dumps(report, indent=1) + "\n", "utf-8")
    if "results" in report:
        print(
            f"opendepot index on {HOST}: {args.datasets} datasets x {args.versions} versions, "
            f"{threads} client threads, {seconds:g} s per scenario"
        )
        _print(report["results"])
    if "tabular" in report:
        merge_into_bench_results(report["tabular"], args.bench_results)
        _print_tabular(report["tabular"])
        print(f"row-level figures merged into {args.bench_results}")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
