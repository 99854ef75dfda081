"""A local API Gateway (HTTP API, payload format 2.0) in front of a Lambda handler.

``LocalHttpApi`` serves ``handler(event, context)`` on ``http://127.0.0.1:PORT`` with the
standard library's ``ThreadingHTTPServer``, in a background thread. Each request becomes an HTTP
API v2 event (``version`` "2.0", ``routeKey`` "$default", ``rawPath``, ``rawQueryString``,
lower-cased ``headers``, ``queryStringParameters``, ``cookies``, ``requestContext.http``,
``body``, ``isBase64Encoded``); the handler's response (``statusCode``, ``headers``,
``multiValueHeaders``, ``cookies``, ``body``, ``isBase64Encoded``) is written back. As on API
Gateway, a handler that raises gives a 500 ``{"message": "Internal Server Error"}``, and a
response that is not a dict with ``statusCode`` is sent as a 200 JSON body.

    with LocalHttpApi(index_api.lambda_handler, port=8080) as api:
        print(api.url)

Concurrency: the Powertools resolver keeps the request being resolved in class attributes
(``BaseRouter.current_event``, ``lambda_context``) and the app's ``context``, shared by every
resolver app of a process, so two requests never run the handler at once in one process (the
``invoke_lock``, like one warm Lambda instance). With ``workers=N`` the listening socket is
bound here, then N processes are forked that each accept on it and run their own copy of the
handler (one request at a time each, as N Lambda instances): ``worker_init``, when given, runs
first in each worker and returns the handler and site it serves, built with fresh clients (a
boto3 client's pooled sockets must not be shared across processes). ``workers=0`` (the
default) serves from threads of this process, as before.

With ``site=SiteFiles(store, published_bucket)`` it also serves the static site beside the API,
as CloudFront does in production: a GET or HEAD whose path is not under ``/api/`` is read from
the published bucket at ``layout.site_key(path)`` (``/`` -> ``site/index.html``,
``/datasets/x/`` -> ``site/datasets/x/index.html``) with its stored content type; a path
without its trailing ``/`` whose folder has an ``index.html`` is redirected (301) to the ``/``
form; anything else is a French 404 page. Other methods and ``/api/...`` go to the handler.
"""

from __future__ import annotations

import base64
import json
import logging
import multiprocessing
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from infra.pump import LambdaContext
from opendepot import layout
from opendepot.storage import Store

Handler = Callable[[dict[str, Any], Any], Any]

log = logging.getLogger(__name__)

_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript")
API_PREFIX = "/api/"
"""Paths under it go to the handler; the static site serves the others (GET, HEAD)."""
NOT_FOUND_PAGE = (
    '<!doctype html>\n<html lang="fr"><head><meta charset="utf-8"><title>Page introuvable'
    ' · opendepot</title></head><body><main><h1>Page introuvable</h1><p>Cette page n\'existe'
    ' pas. <a href="/">Retour à la liste des jeux de données</a>.</p></main></body></html>\n'
).encode()

Answer = tuple[int, list[tuple[str, str]], bytes]
"""Status, headers, body."""


class SiteFiles:
    """The static site's files in the published bucket (``layout.site_key``), through the
    storage port (two calls per page: ``head`` for the content type, ``get``)."""

    def __init__(self, store: Store, bucket: str) -> None:
        self.store = store
        self.bucket = bucket

    def answer(self, path: str, query: str = "") -> Answer:
        """The response to a GET of ``path`` (decoded, starting with ``/``); ``query`` (raw,
        without ``?``) is kept on a redirect, so a shared view (``?area=dep-75``) survives it.

        Raises: StorageError (answered as a 500 by the server)."""
        segments = path.split("/")
        if any(s in (".", "..") for s in segments) or "\\" in path:
            return self.not_found()
        key = layout.site_key(path)
        info = self.store.head(self.bucket, key)
        if info is None:
            if not path.endswith("/") and self.store.head(
                    self.bucket, layout.site_key(path + "/")) is not None:
                target = quote(path + "/") + (f"?{query}" if query else "")
                return 301, [("location", target), ("content-type", "text/plain")], b""
            return self.not_found()
        body = self.store.get(self.bucket, key)
        return 200, [("content-type", info.content_type or "application/octet-stream"),
                     ("cache-control", "no-cache"), ("etag", f'"{info.etag}"')], body

    @staticmethod
    def not_found() -> Answer:
        return 404, [("content-type", "text/html; charset=utf-8")], NOT_FOUND_PAGE


def build_event(
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    *,
    source_ip: str = "127.0.0.1",
    protocol: str = "HTTP/1.1",
    stage: str = "$default",
    api_id: str = "local",
) -> dict[str, Any]:
    """The HTTP API payload v2 event for one request."""
    split = urlsplit(target)
    raw_path = split.path or "/"
    raw_query = split.query
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        name = name.lower()
        if name == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        merged[name] = f"{merged[name]},{value}" if name in merged else value
    params: dict[str, str] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        params[name] = f"{params[name]},{value}" if name in params else value
    content_type = merged.get("content-type", "")
    body_text: str | None = None
    if content_type.startswith(_TEXT_TYPES) or "charset" in content_type:
        try:
            body_text = body.decode("utf-8")
        except UnicodeDecodeError:
            body_text = None
    is_text = not body or body_text is not None
    now = datetime.now(UTC)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": merged,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": api_id,
            "domainName": merged.get("host", "127.0.0.1"),
            "domainPrefix": merged.get("host", "127.0.0.1").split(".")[0],
            "http": {
                "method": method.upper(),
                "path": unquote(raw_path),
                "protocol": protocol,
                "sourceIp": source_ip,
                "userAgent": merged.get("user-agent", ""),
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": "$default",
            "stage": stage,
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": not is_text,
    }
    if cookies:
        event["cookies"] = cookies
    if params:
        event["queryStringParameters"] = params
    if body:
        event["body"] = (
            body_text if body_text is not None else base64.b64encode(body).decode("ascii")
        )
    return event


def _response_parts(response: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body bytes from a handler's return value (payload v2 rules)."""
    if not isinstance(response, dict) or "statusCode" not in response:
        text = response if isinstance(response, str) else json.dumps(response)
        return 200, [("content-type", "application/json")], text.encode("utf-8")
    headers: list[tuple[str, str]] = []
    for name, value in (response.get("headers") or {}).items():
        headers.append((name, str(value)))
    for name, values in (response.get("multiValueHeaders") or {}).items():
        headers.extend((name, str(v)) for v in values)
    for cookie in response.get("cookies") or []:
        headers.append(("set-cookie", cookie))
    raw = response.get("body")
    if raw is None:
        body = b""
    elif response.get("isBase64Encoded"):
        body = base64.b64decode(raw)
    else:
        body = str(raw).encode("utf-8")
    return int(response["statusCode"]), headers, body


class _RequestHandler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in two writes: don't wait 40 ms

    def _site(self) -> bool:
        """Answer from the static site when this request is for it; True when answered."""
        site = self.server.site
        path = unquote(urlsplit(self.path).path) or "/"
        if site is None or self.command not in ("GET", "HEAD") or path.startswith(API_PREFIX):
            return False
        try:
            status, headers, payload = site.answer(path, urlsplit(self.path).query)
        except Exception:
            log.exception("site file unreadable: %s", path)
            status, headers, payload = 500, [("content-type", "text/plain")], b"error\n"
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD" and payload:
            self.wfile.write(payload)
        return True

    def _handle(self) -> None:
        if self._site():
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        event = build_event(
            self.command,
            self.path,
            list(self.headers.items()),
            body,
            source_ip=self.client_address[0],
            protocol=self.request_version,
        )
        context = LambdaContext(
            function_name=self.server.function_name,
            invoked_function_arn=(
                f"arn:aws:lambda:eu-west-3:123456789012:function:{self.server.function_name}"
            ),
            log_group_name=f"/aws/lambda/{self.server.function_name}",
            timeout_s=29,
        )
        started = time.monotonic()
        try:
            with self.server.invoke_lock:  # one invocation at a time, like one Lambda instance:
                answer = self.server.handler(event, context)  # the resolver is not reentrant
            status, headers, payload = _response_parts(answer)
        except Exception:
            log.exception("%s raised on %s %s", self.server.function_name, self.command, self.path)
            status = 500
            headers = [("content-type", "application/json")]
            payload = b'{"message":"Internal Server Error"}'
        if status in (204, 304):
            payload = b""
        self.send_response(status)
        names = {n.lower() for n, _ in headers}
        for name, value in headers:
            if name.lower() not in {"content-length", "connection", "transfer-encoding"}:
                self.send_header(name, value)
        if "content-type" not in names and payload:
            self.send_header("content-type", "application/json")
        self.send_header("apigw-requestid", event["requestContext"]["requestId"])
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD" and payload:
            self.wfile.write(payload)
        if self.server.access_log:
            ms = (time.monotonic() - started) * 1000
            log.info("%s %s -> %s (%.0f ms)", self.command, self.path, status, ms)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _handle

    def __getattr__(self, name: str) -> Any:
        # any other method (TRACE, PROPFIND...) reaches the handler too, as on API Gateway's
        # $default route: the index answers its JSON 405 (known path) or 404, never http.server's
        # 501 HTML page
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """A request the server cannot parse (400, 414, 431, 505...) answers the index's JSON
        envelope ``{"status", "message"}`` and closes the connection, not an HTML page."""
        text = message or self.responses.get(code, ("Error",))[0]
        self.log_error("code %d, message %s", code, text)
        payload = json.dumps({"status": code, "message": text}).encode("utf-8")
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("connection", "close")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        if getattr(self, "command", None) != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.access_log:
            super().log_message(format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], handler: Handler, function_name: str, access_log: bool,
        site: SiteFiles | None = None,
    ) -> None:
        super().__init__(address, _RequestHandler)
        self.handler = handler
        self.site = site
        self.function_name = function_name
        self.access_log = access_log
        self.invoke_lock = threading.Lock()


WorkerInit = Callable[[], tuple[Handler, SiteFiles | None]]
"""Run in each worker process after the fork: the handler and site that worker serves."""


def _serve_worker(server: _Server, init: WorkerInit | None) -> None:
    """A worker process: accept on the inherited listening socket until terminated."""
    if init is not None:
        server.handler, server.site = init()
    server.serve_forever(0.1)


class LocalHttpApi:
    """Serves a Lambda HTTP handler on localhost from a background thread (context manager)."""

    def __init__(
        self,
        handler: Handler,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        function_name: str = "opendepot-IndexApiFunction",
        access_log: bool = False,
        site: SiteFiles | None = None,
        workers: int = 0,
        worker_init: WorkerInit | None = None,
    ) -> None:
        """``port`` 0 picks a free port; ``access_log`` prints one line per request; ``site``:
        serve the static site beside the API; ``workers``: forked worker processes serving
        requests side by side (0: threads of this process), ``worker_init`` building each one's
        handler and site (see the module docstring)."""
        self.handler = handler
        self.workers = max(0, workers)
        self.worker_init = worker_init
        self._processes: list[Any] = []
        self.site = site
        self.host = host
        self.port = port
        self.function_name = function_name
        self.access_log = access_log
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        """Bind and serve in a daemon thread. Raises OSError when the port is taken."""
        self._server = _Server(
            (self.host, self.port), self.handler, self.function_name, self.access_log,
            self.site,
        )
        self.port = self._server.server_address[1]
        if self.workers:
            fork = multiprocessing.get_context("fork")
            self._processes = [
                fork.Process(target=_serve_worker, args=(self._server, self.worker_init),
                             name=f"local-http-api-{i}", daemon=True)
                for i in range(self.workers)
            ]
            for process in self._processes:
                process.start()
            return
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.1,), name="local-http-api", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        for process in self._processes:
            process.terminate()
            process.join(timeout=5)
        if self._server is not None and self._processes:
            self._server.server_close()
            self._server = None
        self._processes = []
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def index_worker(
    stack_env: Mapping[str, str], site_bucket: str | None = None
) -> WorkerInit:
    """A ``worker_init`` for ``LocalHttpApi(workers=N)``: in each worker, the index function
    (``functions.index_api.app``) over a fresh S3 client of the local stack whose environment
    is ``stack_env`` (``LocalStack.env``), and the static site of ``site_bucket`` (None: no
    site)."""
    env = dict(stack_env)

    def init() -> tuple[Handler, SiteFiles | None]:
        import boto3

        from functions.index_api import app as index_app
        from opendepot.config import Settings
        from opendepot.storage import S3Store

        os.environ.update(env)
        store = S3Store(boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"]))
        index_app.configure(store, Settings.from_env())
        site = SiteFiles(store, site_bucket) if site_bucket else None
        return index_app.lambda_handler, site

    return init
