"""The local API Gateway (``infra.http_server``): every method reaches the handler or answers the
index's JSON envelope (issue 16, item 4), and worker processes answer clients side by side
(item 7)."""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import os
import socket
import time
from typing import Any

from functions.index_api import app as index_api
from infra.http_server import LocalHttpApi
from opendepot.config import Settings
from opendepot.storage import MemoryStore


def call(api: LocalHttpApi, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(api.host, api.port, timeout=10)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def test_trace_and_unknown_methods__the_index_405_or_404_json_never_a_501_page() -> None:
    index_api.configure(MemoryStore(), Settings(published_bucket="published"))
    try:
        with LocalHttpApi(index_api.lambda_handler) as api:
            answers = {(m, p): call(api, m, p) for m in ("TRACE", "PROPFIND", "POST")
                       for p in ("/api/1/datasets/", "/api/1/nowhere/")}
    finally:
        index_api.configure(None, Settings())

    for (method, path), (status, headers, body) in answers.items():
        assert headers["content-type"].startswith("application/json"), (method, path)
        if path == "/api/1/datasets/":
            assert (status, headers["allow"]) == (405, "GET, HEAD, OPTIONS")
            assert json.loads(body) == {
                "status": 405, "message": f"{method} is not allowed on /api/1/datasets/"}
        else:
            assert status == 404 and json.loads(body)["status"] == 404


def test_a_request_the_server_cannot_parse__json_envelope_and_the_connection_closed() -> None:
    with LocalHttpApi(lambda event, context: {"statusCode": 200, "body": "{}"}) as api:
        with socket.create_connection((api.host, api.port), timeout=10) as s:
            s.sendall(b"GET /api/1/ HTTP/1.1\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n")
            raw = b""
            while chunk := s.recv(4096):
                raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 ")  # a header line past http.server's 64 KiB
    assert b"content-type: application/json" in head.lower()
    assert b"connection: close" in head.lower()
    assert json.loads(body) == {"status": 431, "message": "Line too long"}


def slow_pid(event: dict[str, Any], context: Any) -> dict[str, Any]:
    time.sleep(0.4)
    return {"statusCode": 200, "body": json.dumps(
        {"pid": os.getpid(), "path": event["rawPath"]})}


def test_workers__requests_answered_side_by_side_each_by_one_process() -> None:
    """Four 0.4 s requests: one after the other in one process (1.6 s at least), two at a time
    with two workers (0.8 s), each answer its own request's."""
    paths = [f"/api/1/datasets/d{i}/" for i in range(4)]
    timings = {}
    for workers in (0, 2):
        with LocalHttpApi(slow_pid, workers=workers) as api:
            started = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                answers = list(pool.map(lambda p: call(api, "GET", p), paths))
            timings[workers] = time.monotonic() - started
        bodies = [json.loads(body) for _, _, body in answers]
        assert [b["path"] for b in bodies] == paths
        pids = {b["pid"] for b in bodies}
        assert pids == {os.getpid()} if workers == 0 else (len(pids) == 2 and os.getpid() not in pids)

    assert timings[0] >= 1.6 and timings[2] < 1.3, timings
