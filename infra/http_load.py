"""Requests per second of the local HTTP index under concurrent clients, on a real catalog.

    python -m infra.http_load [--datasets 6] [--clients 20] [--seconds 5] [--workers 0 2 4]
                              [--store s3 memory]

Starts the local stack (moto server, ``infra.stack.LocalStack``), drops the newest real file of
``--datasets`` datasets (``infra.real_files``) and lets the queue pump validate and publish
them, then serves the index function with ``infra.http_server.LocalHttpApi`` once per
``--workers`` value (0: threads of this process, one request at a time; N: N forked worker
processes, each with its own store client) and loads it from a separate process: ``--clients``
threads on kept-alive connections, each taking the paths in turn (the dataset list, each
dataset's detail and versions) for ``--seconds``. Prints one JSON line per run: requests,
requests per second, p50/p99 latency (ms) and the statuses seen. ``--store s3`` serves from
the moto server (every request's freshness HEADs go to it: it runs in this process, so it is
shared by all workers); ``--store memory`` from an in-memory copy of the published bucket
(each forked worker has its own copy), which measures the server and the index alone. No test
uses it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any

CLIENT = r"""
import http.client, json, sys, threading, time
c = json.load(sys.stdin)
lock, latencies, statuses = threading.Lock(), [], {}
deadline = time.monotonic() + c["seconds"]

def run(n):
    conn, i, mine, seen = None, n, [], {}
    while time.monotonic() < deadline:
        path = c["paths"][i % len(c["paths"])]
        i += 1
        try:
            conn = conn or http.client.HTTPConnection(c["host"], c["port"], timeout=30)
            t = time.perf_counter()
            conn.request("GET", path, headers={"Accept-Encoding": "identity"})
            r = conn.getresponse()
            r.read()
            mine.append(time.perf_counter() - t)
            seen[r.status] = seen.get(r.status, 0) + 1
        except OSError as e:
            seen[type(e).__name__] = seen.get(type(e).__name__, 0) + 1
            conn = None
    with lock:
        latencies.extend(mine)
        for k, v in seen.items():
            statuses[str(k)] = statuses.get(str(k), 0) + v

started = time.monotonic()
threads = [threading.Thread(target=run, args=(n,)) for n in range(c["clients"])]
for t in threads: t.start()
for t in threads: t.join()
elapsed = time.monotonic() - started
latencies.sort()
q = lambda p: round(1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))], 1)
print(json.dumps({"requests": len(latencies), "seconds": round(elapsed, 2),
                  "rps": round(len(latencies) / elapsed, 1), "p50_ms": q(0.5),
                  "p99_ms": q(0.99), "statuses": statuses}))
"""


def load(host: str, port: int, paths: list[str], clients: int, seconds: float) -> dict[str, Any]:
    """Run the load generator process against ``host:port``; its JSON summary.

    Raises: RuntimeError (the client process failed)."""
    config = {"host": host, "port": port, "paths": paths, "clients": clients, "seconds": seconds}
    done = subprocess.run([sys.executable, "-c", CLIENT], input=json.dumps(config), text=True,
                          capture_output=True, timeout=seconds + 60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"load client failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def publish_real(stack: Any, datasets: int) -> list[str]:
    """Drop the newest real file of the first ``datasets`` datasets (registry order) into the
    stack and pump until published; the slugs published."""
    from infra.pump import Pump, bindings_for
    from infra.real_files import collect_real, real_root_candidates

    root = next(p for p in real_root_candidates() if p.is_dir())
    newest: dict[str, Any] = {}
    for f in collect_real(root)[0]:
        if f.dataset is not None:
            newest[f.dataset] = f  # collect_real orders each dataset's files oldest first
    chosen = sorted(newest)[:datasets]
    for name in chosen:
        f = newest[name]
        stack.s3.put_object(Bucket=stack.incoming_bucket, Key=f"{name}/{f.producer}/{f.name}",
                            Body=f.read())
    Pump(stack.sqs, bindings_for(stack)).run(timeout=600)
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", type=int, default=6)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2, 4])
    parser.add_argument("--store", nargs="+", choices=["s3", "memory"], default=["s3", "memory"])
    args = parser.parse_args(argv)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "CRITICAL")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")

    from functions.index_api import app as index_app
    from infra.http_server import LocalHttpApi, index_worker
    from infra.stack import LocalStack
    from opendepot import runtime
    from opendepot.config import Settings
    from opendepot.storage import MemoryStore, S3Store

    with LocalStack() as stack:
        runtime.use(None)
        slugs = publish_real(stack, args.datasets)
        env = {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "OPENDEPOT_"))}
        paths = ["/api/1/datasets/", *(f"/api/1/datasets/{s}/" for s in slugs),
                 *(f"/api/1/datasets/{s}/versions/" for s in slugs)]
        print(json.dumps({"datasets": slugs, "paths": len(paths), "cpus": os.cpu_count()}))
        memory = MemoryStore()
        for o in stack.s3.list_objects_v2(Bucket=stack.published_bucket).get("Contents", []):
            body = stack.s3.get_object(Bucket=stack.published_bucket, Key=o["Key"])
            memory.put(stack.published_bucket, o["Key"], body["Body"].read(),
                       body.get("ContentType") or "application/octet-stream")
        for store in args.store:
            for workers in args.workers:
                index_app.configure(S3Store(stack.s3) if store == "s3" else memory,
                                    Settings.from_env())
                init = index_worker(env) if workers and store == "s3" else None
                api = LocalHttpApi(index_app.lambda_handler, workers=workers, worker_init=init)
                with api:
                    load(api.host, api.port, paths, 2, 1.0)  # warm every worker's reads
                    result = load(api.host, api.port, paths, args.clients, args.seconds)
                print(json.dumps({"store": store, "workers": workers, "clients": args.clients,
                                  **result}))
                sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

