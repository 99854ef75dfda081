"""``opendepot demo``: the whole pipeline on this machine, the way a producer and a reuser see it.

1. Start the local stack (moto as S3 and SQS with the buckets and queues of ``template.yaml``)
   and the HTTP index on ``--port``.
2. Find the input files: ``--data``; else every real file of ``../shared/data/real/`` beside
   the checkout, each under the dataset and producer that ``infra/real_sources/*.json`` give it
   (only ``--dataset``'s folder when one is named); else a generated sample (said on screen).
3. Drop each file into ``s3://INCOMING/{dataset}/{producer}/{name}``, oldest publication first,
   and pump the queues into the validate and publish functions after each drop; the site queue
   is held meanwhile (each new version's site request waits there).
4. Print what happened to each file (from its validation report), then the published dataset
   (from its manifest) and ``curl`` lines to try.
5. Pump the site queue into the site function: every request of the run in one batch (up to
   its ``BatchSize``), so the home, every published dataset's page and the dashboards are built
   once, and print its URL: the site is served at ``http://127.0.0.1:PORT/`` beside the API
   (``infra.http_server.SiteFiles``).
6. Keep serving (and pumping new uploads, the site function after them) until Ctrl-C, or exit
   with ``--once``.
"""


from __future__ import annotations

import contextlib
import importlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.http_server import LocalHttpApi, SiteFiles, index_worker
from infra.pump import Binding, Pump, bindings_for
from infra.real_files import (
    InputFile,
    awaiting_real,
    collect_files,
    collect_real,
    default_data_candidates,
    publication_date,
    real_root_candidates,
    real_sources,
    sample_inputs,
    unique_names,
)
from infra.reports import (
    Outcome,
    count_warnings,
    error_lines,
    find_report,
    report_keys,
    report_list,
    status_of,
)
from infra.stack import DEFAULT_TEMPLATE, SITE_QUEUE, LocalStack, TemplateError
from infra.summary import (
    Status,
    human_bytes,
    out,
    print_catalog,
    print_outcomes,
    print_summary,
    say_report,
    short_function,
)

HTTP_WORKERS = 2
"""Worker processes of the demo's HTTP server (``LocalHttpApi(workers=...)``): reusers' requests
are answered side by side (issue 16, item 7)."""

__all__ = [
    "DemoOptions",
    "InputFile",
    "Outcome",
    "awaiting_real",
    "collect_files",
    "collect_real",
    "count_warnings",
    "default_data_candidates",
    "error_lines",
    "find_report",
    "print_catalog",
    "print_outcomes",
    "print_summary",
    "publication_date",
    "real_sources",
    "run_demo",
    "sample_inputs",
    "unique_names",
]


@dataclass(frozen=True)
class DemoOptions:
    """What ``opendepot demo`` was asked."""

    data: Path | None = None
    """A CSV file or a folder; None: the default folder, else the sample."""
    port: int = 8080
    """Port of the HTTP index (0: a free port)."""
    once: bool = False
    """Exit after publishing instead of serving."""
    dataset: str | None = None
    """Dataset slug: first segment of the incoming keys (None: every real dataset)."""
    producer: str = "spf"
    """Producer id: second segment of the incoming keys."""
    moto_port: int = 0
    """Port of the moto server (0: a free port)."""
    verbose: bool = False
    """Show the functions' logs and the HTTP access log."""
    template: Path = DEFAULT_TEMPLATE
    """The SAM template the local stack mirrors."""


@contextlib.contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        # as the server itself binds: a port left in TIME_WAIT by the last run is free
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _inputs(options: DemoOptions) -> list[InputFile] | None:
    if options.data is not None:
        root = options.data.expanduser().resolve()
        if not root.exists():
            print(f"opendepot demo: --data {options.data}: no such file or folder", file=sys.stderr)
            return None
        files = collect_files(root)
        out(f"Input: {root} ({len(files)} CSV file{'s' if len(files) != 1 else ''})")
        return files
    if options.dataset is not None:
        from opendepot.registry import load_registry  # noqa: PLC0415

        names = sorted(load_registry().datasets)
        if options.dataset not in names:
            print(f"opendepot demo: unknown dataset {options.dataset!r}; one of: "
                  + ", ".join(names), file=sys.stderr)
            return None
    for root in real_root_candidates():
        if root.is_dir():
            files, unmapped = collect_real(root)
            if options.dataset is not None:
                files, unmapped = [f for f in files if f.dataset == options.dataset], []
            if files:
                datasets = sorted({f.dataset for f in files if f.dataset})
                out(
                    f"Input: {root} ({len(files)} real files for {len(datasets)} datasets, "
                    "mapped by infra/real_sources/*.json)"
                )
                for rel in unmapped:
                    out(f"       not dropped (no dataset declared for it): {rel}")
                if options.dataset is None:
                    for why in sorted({why for _, why in awaiting_real(root)}):
                        held = [p for p, w in awaiting_real(root) if w == why]
                        out(f"       not dropped ({len(held)} files awaiting {why.split(';')[0]})")
                return files
    candidates = default_data_candidates(options.dataset or "donnees-hospitalieres-covid19")
    for root in candidates:
        if root.is_dir():
            files = collect_files(root)
            out(
                f"Input: {root} ({len(files)} CSV file{'s' if len(files) != 1 else ''}, real data)"
            )
            return files
    if options.dataset not in (None, "donnees-hospitalieres-covid19"):
        print(f"opendepot demo: no real files for {options.dataset} (looked in {candidates[0]}); "
              "the generated sample is of donnees-hospitalieres-covid19 only", file=sys.stderr)
        return None
    files = sample_inputs()
    out(f"Input: no data folder at {candidates[0]}")
    out(
        f"       so using a GENERATED SAMPLE ({len(files)} files, made-up figures shaped like "
        "SPF's file; see infra/sample.py)"
    )
    return files


def _import(module: str, name: str) -> Callable[..., Any]:
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def run_demo(options: DemoOptions) -> int:
    """Run the demo; returns the exit code (0: the pipeline ran; 1: something crashed; 2: usage)."""
    logging.basicConfig(
        level=logging.INFO if options.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    files = _inputs(options)
    if files is None:
        return 2
    if not files:
        print("opendepot demo: no CSV file to drop", file=sys.stderr)
        return 2
    port = options.port or _free_port()
    if not _port_free(port):
        print(f"opendepot demo: port {port} is taken; choose another with --port", file=sys.stderr)
        return 2
    # the functions log JSON to stdout (rejections at ERROR): keep the demo's screen readable
    # unless --verbose; failures still show (pump log, DLQ warning) with a hint to use -v
    quiet = (
        {}
        if options.verbose
        else {
            "POWERTOOLS_LOG_LEVEL": "CRITICAL",
            "POWERTOOLS_METRICS_DISABLED": "true",
        }
    )
    with _env({"POWERTOOLS_SERVICE_NAME": "opendepot", **quiet}):
        try:
            stack = LocalStack(options.template, port=options.moto_port, api_port=port,
                               site_dashboards=True)
        except TemplateError as exc:
            print(f"opendepot demo: {exc}", file=sys.stderr)
            return 2
        with stack:
            return _run_on_stack(stack, files, port, options)



def _run_on_stack(
    stack: LocalStack, files: list[InputFile], port: int, options: DemoOptions
) -> int:
    """Drop the files, say what happened and what is published, then serve unless ``--once``."""
    functions = _load_functions(stack)
    if functions is None:
        return 1
    bindings, index_handler = functions
    status = Status()
    pump = _watched_pump(stack, bindings, status)
    site = SiteFiles(_store(stack), stack.published_bucket)
    # worker processes answer side by side (one request at a time each, as Lambda instances)
    api = LocalHttpApi(index_handler, port=port, access_log=options.verbose, site=site,
                       workers=HTTP_WORKERS,
                       worker_init=index_worker(stack.env, stack.published_bucket))
    try:
        api.start()
    except OSError as exc:
        print(f"opendepot demo: cannot serve on port {port}: {exc}", file=sys.stderr)
        return 2
    try:
        _say_stack(stack, api.url, options.verbose)
        outcomes = _drop_all(stack, pump, status, files, options)
        crashed = _say_outcomes(stack, outcomes, options.verbose)
        crashed = not _drop_reuses(stack, pump, api.url) or crashed
        crashed = _say_published(stack, api.url, outcomes, options) or crashed
        crashed = not _build_site(stack, pump, api.url) or crashed
        if options.once:
            out("(--once: the local stack stops now, so those links answer only while "
                "'make demo' runs without --once)")
            return 1 if crashed else 0
        _serve(stack, pump, api, options)
        return 1 if crashed else 0
    finally:
        status.end()
        api.stop()


def _store(stack: LocalStack) -> Any:
    """The storage port over the local stack's S3 (moto)."""
    from opendepot.storage import S3Store  # noqa: PLC0415 - after the stack set AWS_* up

    return S3Store(stack.s3)


def _build_site(stack: LocalStack, pump: Any, api_url: str) -> bool:
    """Pump the site requests held while the files were dropped into the site function (the
    home, every published dataset's page, the dashboards: once) and say where the site is;
    False (said) when it failed."""
    if stack.site_queue is None:
        out("WARNING: the template has no site queue: no site was built")
        return False
    started = time.monotonic()
    try:
        stats = pump.run(timeout=1800)
    except Exception as exc:  # noqa: BLE001 - the data is published: say it and serve the API
        out(f"WARNING: the site could not be built: {type(exc).__name__}: {exc}")
        return False
    handled, failed = stats.per_queue.get(SITE_QUEUE, (0, 0))
    if failed or stats.errors:
        out(f"WARNING: the site function failed ({'; '.join(stats.errors) or failed}); "
            "run with --verbose to see its log")
        return False
    keys = [o["Key"] for page in stack.s3.get_paginator("list_objects_v2").paginate(
        Bucket=stack.published_bucket, Prefix="site/") for o in page.get("Contents", [])]
    datasets = sum(1 for k in keys if k.startswith("site/datasets/") and k.endswith("index.html"))
    boards = sorted({k.split("/")[2] for k in keys if k.startswith("site/dashboards/")})
    out(f"Site: {api_url}/ ({len(keys)} files, built by the site function from {handled} site "
        f"request{'s' if handled != 1 else ''} in {time.monotonic() - started:.1f} s: the home, "
        f"{datasets} dataset pages" + (f", dashboards {', '.join(boards)}" if boards else "")
        + ")")
    for board in boards:
        out(f"  {api_url}/dashboards/{board}/")
    out()
    return True


def _load_functions(
    stack: LocalStack,
) -> tuple[list[Binding], Callable[..., Any]] | None:
    """The queue bindings and the index handler of the template; None (said on stderr) when a
    function is missing."""
    # handlers read their settings at import: import them now that the stack is up
    try:
        bindings = bindings_for(stack)
        module, name = stack.handler_of("IndexApiFunction") or (
            "functions.index_api.app",
            "lambda_handler",
        )
        index_handler = _import(module, name)
    except (ImportError, AttributeError) as exc:
        print(
            f"opendepot demo: a function is missing ({exc}); "
            "functions/{validate,publish,site,index_api}/app.py must define lambda_handler",
            file=sys.stderr,
        )
        return None
    return bindings, index_handler


def _watched_pump(stack: LocalStack, bindings: list[Binding], status: Status) -> Pump:
    """A pump over ``bindings`` that tells ``status`` which function runs and each batch."""

    def watched(b: Binding) -> Binding:
        fn = short_function(b.function_name)

        def handler(event: dict[str, Any], context: Any) -> Any:
            status.running(fn)
            return b.handler(event, context)

        return Binding(
            b.queue,
            handler,
            b.function_name,
            b.batch_size,
            b.memory_size,
            b.timeout,
            b.report_batch_item_failures,
            b.batching_window,
        )

    return Pump(
        stack.sqs,
        [watched(b) for b in bindings],
        region=stack.region,
        account_id=stack.account_id,
        on_batch=lambda r: status.batch(
            short_function(r.function_name), r.size, r.failed, r.error
        ),
    )


def _say_stack(stack: LocalStack, api_url: str, verbose: bool) -> None:
    """Where the local stack and the index are, its buckets and queues."""
    out(f"Local stack: S3 and SQS (moto) at {stack.endpoint}, index at {api_url}")
    out(f"  buckets: {', '.join(stack.buckets.values())}")
    out(f"  queues:  {', '.join(q.name for q in stack.queues.values())}")
    if verbose and stack.ignored:
        out(f"  not applied locally: {', '.join(stack.ignored)}")
    out()


def _say_outcomes(stack: LocalStack, outcomes: list[Outcome], verbose: bool) -> bool:
    """Print what happened to each file and the dead letters; True when something crashed (a
    function raised, a message is in a dead-letter queue, or an upload has no report)."""
    crashed = sum(len(o.crashes) for o in outcomes) > 0
    print_outcomes(outcomes, stack.internal_bucket)
    if not verbose and any(o.failed for o in outcomes):
        out(
            "(some messages failed and were retried: "
            "run with --verbose to see the functions' logs)"
        )
        out()
    dead = _dead_letters(stack)
    for name, n in dead.items():
        out(f"WARNING: {n} message(s) in the dead-letter queue {name}")
        crashed = True
    if any(o.report is None for o in outcomes):
        crashed = True
    return crashed


def _say_published(
    stack: LocalStack, api_url: str, outcomes: list[Outcome], options: DemoOptions
) -> bool:
    """Print the published dataset (one) or catalog (several); True when files were accepted
    but nothing was published."""
    datasets = list(dict.fromkeys(
        o.key.split("/", 1)[0] for o in outcomes if status_of(o.report) == "accepted"
    ))
    if len(datasets) > 1:
        published = print_catalog(stack, api_url)
    else:
        only = datasets[0] if datasets else options.dataset or "donnees-hospitalieres-covid19"
        published = print_summary(stack, api_url, only)
    if not published and any(status_of(o.report) == "accepted" for o in outcomes):
        out("WARNING: files were accepted but nothing was published")
        return True
    return False


def _drop_all(
    stack: LocalStack, pump: Any, status: Status, files: list[InputFile], options: DemoOptions
) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for i, f in enumerate(files, 1):
        dataset = f.dataset or options.dataset or "donnees-hospitalieres-covid19"
        producer = f.producer or options.producer
        key = f"{dataset}/{producer}/{f.name}"
        out(
            f"[{i}/{len(files)}] {f.name} ({human_bytes(f.size)}"
            + (f", published {f.date}" if f.date else "")
            + ")"
        )
        out(f"      -> s3://{stack.incoming_bucket}/{key}")
        r = stack.s3.put_object(
            Bucket=stack.incoming_bucket, Key=key, Body=f.read(), ContentType="text/csv"
        )
        outcome = Outcome(f, key, r.get("VersionId"))
        status.begin()
        started = time.monotonic()
        try:
            stats = pump.run(hold=[SITE_QUEUE])  # the site is built once, after the files
        finally:
            status.end()
        outcome.seconds = time.monotonic() - started
        outcome.crashes = list(stats.errors)
        outcome.failed = stats.failed
        outcome.report = find_report(
            report_list(stack, dataset, producer), key, outcome.version_id
        )
        counts = ", ".join(
            f"{q.removesuffix('Queue').lower()} {h}" + (f" ({fl} failed)" if fl else "")
            for q, (h, fl) in stats.per_queue.items()
        )
        out(
            f"      {status_of(outcome.report)} in {outcome.seconds:.1f} s "
            f"({counts or 'no message'})"
        )
        outcomes.append(outcome)
    out()
    return outcomes


REUSE_SEEDS = Path(__file__).resolve().parent / "reuses"
"""Real reuses of 2020 (``infra/reuses/{reuser}/{file}``, sources in its SOURCES.md)."""


def _drop_reuses(stack: LocalStack, pump: Any, api_url: str) -> bool:
    """Register the seed reuses: each file dropped at ``reuses/{reuser}/{file}``, validated by
    the validate function like any registration; False when one was not accepted."""
    seeds = sorted(p for p in REUSE_SEEDS.glob("*/*") if p.suffix in (".json", ".yaml", ".yml"))
    out(f"Registering {len(seeds)} reuses (infra/reuses/, real reuses of 2020):")
    ok = True
    for path in seeds:
        key = f"reuses/{path.parent.name}/{path.name}"
        r = stack.s3.put_object(Bucket=stack.incoming_bucket, Key=key, Body=path.read_bytes())
        pump.run(hold=[SITE_QUEUE])
        report = find_report(report_list(stack, "reuses", path.parent.name), key,
                             r.get("VersionId"))
        ok = ok and status_of(report) == "accepted"
        out(f"  {key}: {status_of(report)}")
    out(f"  curl {api_url}/api/1/reuses/")
    out()
    return ok


def _dead_letters(stack: LocalStack) -> dict[str, int]:
    dead = {}
    for q in stack.dead_letter_queues():
        visible, in_flight, delayed = stack.queue_depth(q.url)
        if visible + in_flight + delayed:
            dead[q.name] = visible + in_flight + delayed
    return dead


def _serve(stack: LocalStack, pump: Any, api: Any, options: DemoOptions) -> None:
    out(f"Serving the index on {api.url} and S3/SQS on {stack.endpoint}; Ctrl-C to stop.")
    out("New uploads are processed as they arrive, e.g.:")
    out(
        f"  aws --endpoint-url {stack.endpoint} s3 cp FILE.csv "
        f"s3://{stack.incoming_bucket}/{options.dataset or 'donnees-hospitalieres-covid19'}/"
        f"{options.producer}/FILE.csv"
    )

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # `kill` stops the demo as cleanly as Ctrl-C

    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, interrupt) if main else None
    seen = set(report_keys(stack))
    try:
        while True:
            stats = pump.run()
            if stats.handled:
                out(
                    f"processed {stats.handled} message(s)"
                    + (f", {stats.failed} returned to the queue" if stats.failed else "")
                )
                for key in report_keys(stack):
                    if key not in seen:  # a new upload's report: say what happened to it
                        seen.add(key)
                        say_report(stack, key)
            time.sleep(0.5)
    except KeyboardInterrupt:
        out("\nStopping.")
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
