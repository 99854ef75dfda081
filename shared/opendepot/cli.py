"""The ``opendepot`` console script.

Subcommands register themselves in ``SUBCOMMANDS`` with ``@subcommand(name, help)`` on a
function that adds the subcommand's arguments and returns the function that runs it::

    @subcommand("validate", "validate a file against a dataset's schema, print the report")
    def _validate(parser: argparse.ArgumentParser) -> Run:
        parser.add_argument("file", type=Path)
        def run(args: argparse.Namespace) -> int:
            ...
            return 0
        return run

Each ``run`` returns the process exit code. Heavy imports (boto3, the validator) happen inside
``run``, so this module stays light and importable from the Lambda layer.

Subcommands that live outside the layer are plug-ins: an installed package declares an entry
point in the ``opendepot.subcommands`` group (``PLUGIN_GROUP``) naming a ``Subcommand``, and
``build_parser`` registers it (``load_plugins``). The local stack's ``opendepot demo`` comes
this way from ``infra.cli``: this module, and the whole layer, never imports ``infra``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from opendepot import __version__

Run = Callable[[argparse.Namespace], int]
"""Runs a parsed subcommand; returns the exit code."""
Configure = Callable[[argparse.ArgumentParser], Run]
"""Adds a subcommand's arguments to its parser; returns its ``Run``."""


@dataclass(frozen=True)
class Subcommand:
    """One ``opendepot <name>`` subcommand."""

    name: str
    """Word typed after ``opendepot``."""
    help: str
    """One line shown by ``opendepot --help``."""
    configure: Configure
    """Adds the arguments and returns the function that runs the subcommand."""


SUBCOMMANDS: dict[str, Subcommand] = {}
"""Registered subcommands, in registration order (the order of ``--help``)."""


def subcommand(name: str, help: str) -> Callable[[Configure], Configure]:
    """Register a subcommand (decorator on its ``Configure`` function)."""

    def register(configure: Configure) -> Configure:
        if name in SUBCOMMANDS:
            raise ValueError(f"subcommand {name!r} is registered twice")
        SUBCOMMANDS[name] = Subcommand(name, help, configure)
        return configure

    return register


PLUGIN_GROUP = "opendepot.subcommands"
"""Entry point group of the subcommands other packages add (each names a ``Subcommand``)."""


def _unavailable(name: str, why: str) -> Subcommand:
    """A plug-in that could not be loaded: its subcommand says why (exit 2) instead of
    vanishing from ``--help``."""

    def configure(parser: argparse.ArgumentParser) -> Run:
        parser.set_defaults(any_arguments=True)  # whatever the missing plug-in would take

        def run(args: argparse.Namespace) -> int:
            print(f"opendepot {name}: not available here ({why})", file=sys.stderr)
            return 2

        return run

    return Subcommand(name, f"(not available: {why})", configure)


def _load(entry: EntryPoint) -> Subcommand:
    try:
        loaded = entry.load()
    except ImportError as exc:  # e.g. the layer alone, without the local stack
        return _unavailable(entry.name, f"{type(exc).__name__}: {exc}")
    if not isinstance(loaded, Subcommand) or loaded.name != entry.name:
        raise TypeError(
            f"entry point {entry.name} = {entry.value} in {PLUGIN_GROUP} must name a "
            f"Subcommand called {entry.name!r}, not {loaded!r}"
        )
    return loaded


def load_plugins() -> list[str]:
    """Register the subcommands that installed packages declare in ``PLUGIN_GROUP`` and
    return their names, in entry point order. A plug-in whose module cannot be imported is
    registered as a subcommand that prints why and exits 2; a name already registered is
    kept as it is (built-ins win). Raises ``TypeError`` when an entry point names anything
    but a ``Subcommand`` of the same name."""
    added: list[str] = []
    for entry in entry_points(group=PLUGIN_GROUP):
        if entry.name in SUBCOMMANDS:
            continue
        SUBCOMMANDS[entry.name] = _load(entry)
        added.append(entry.name)
    return added


# ------------------------------------------------------------------------------ validate


@subcommand("validate", "validate a local file against a dataset's schema, offline")
def _validate(parser: argparse.ArgumentParser) -> Run:
    parser.description = (
        "Check a file before dropping it: the same decoding and Table Schema checks as the "
        "validate function, offline. Prints the report (file, line, column, value, what is "
        "expected); with --html, also writes it as a page for people (errors by type, the "
        "file's lines around each); exits 0 when the file would be published, 1 when it "
        "would be rejected (with --strict: when it has any error), 2 on a usage error."
    )
    parser.add_argument("file", type=Path, help="the file (CSV, gzip, Excel)")
    parser.add_argument(
        "--dataset", help="dataset name (default: the registered name the file name starts with)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the Frictionless-shaped JSON report"
    )
    parser.add_argument("--max-errors", type=int, default=1000, help="errors kept (%(default)s)")
    parser.add_argument("--max-lines", type=int, default=20, help="issues printed (%(default)s)")
    parser.add_argument("--strict", action="store_true", help="exit 1 on any error, even left out")
    parser.add_argument(
        "--html", type=Path, metavar="PAGE",
        help="also write the report as a standalone HTML page (errors by type, lines around each)"
    )

    def run(args: argparse.Namespace) -> int:
        import hashlib  # noqa: PLC0415
        import json  # noqa: PLC0415
        import tempfile  # noqa: PLC0415

        from opendepot.registry import load_cog, load_registry  # noqa: PLC0415
        from opendepot.report import build_report, format_human  # noqa: PLC0415
        from opendepot.site.report_page import report_html, source_context  # noqa: PLC0415
        from opendepot.validate import validate_file  # noqa: PLC0415

        registry = load_registry()
        names = [d.name for d in registry]
        name = args.dataset or next(
            (n for n in sorted(names, key=len, reverse=True) if args.file.name.startswith(n)), None
        )
        dataset = registry.get(name or "")
        if dataset is None:
            why = (f"unknown dataset {name!r}" if name
                   else f"cannot tell the dataset from the file name {args.file.name!r}")
            print(f"opendepot validate: {why}; use --dataset, one of: " + ", ".join(names),
                  file=sys.stderr)
            return 2
        try:  # read in chunks: memory stays bounded whatever the file's size
            with args.file.open("rb") as f:
                digest = hashlib.file_digest(f, "sha256").hexdigest()
        except OSError as exc:
            print(f"opendepot validate: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
            return 2
        with tempfile.TemporaryDirectory(prefix="opendepot-") as workdir:
            v = validate_file(str(args.file), dataset, load_cog(), name=args.file.name,
                              workdir=workdir, max_errors=args.max_errors)
            report = build_report(v, None, {"key": str(args.file), "dataset": dataset.name},
                                  size=args.file.stat().st_size, sha256=digest)
            # the lines around each issue, read while the decoded text is still in workdir
            context = source_context(report, v.decoded) if args.html else {}
        if args.html:
            try:
                args.html.write_bytes(report_html(report, context))
            except OSError as exc:
                print(f"opendepot validate: cannot write {args.html}: {exc.strerror}",
                      file=sys.stderr)
                return 2
            print(f"opendepot validate: HTML report written to {args.html}", file=sys.stderr)
        if args.json:
            print(json.dumps(report, ensure_ascii=False, indent=1, default=str))
        else:
            print(format_human(report, max_lines=args.max_lines))
        return 0 if v.accepted and not (args.strict and v.errors.total) else 1

    return run


# ------------------------------------------------------------------------------ redrive


@subcommand("redrive", "move dead letters back to their queues, once their cause is fixed")
def _redrive(parser: argparse.ArgumentParser) -> Run:
    parser.description = (
        "Move every message of a dead-letter queue back to its source queue (validate: S3 "
        "notifications; publish: publish requests, with their FIFO group), deleting each from "
        "the dead-letter queue only once it is sent. Queues are found by the stack's name "
        "prefix and their redrive policies; AWS credentials, region and endpoint come from "
        "the environment (AWS_ENDPOINT_URL for the local stack). Exits 0 when every message "
        "was moved, 1 when some could not be (they stay), 2 when the queues are not found."
    )
    parser.add_argument(
        "--queue",
        choices=("validate", "publish", "all"),
        default="all",
        help="which source queue gets its dead letters back (%(default)s)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="list the dead letters, move nothing"
    )
    parser.add_argument(
        "--stack", default="opendepot", help="stack name, the queues' name prefix (%(default)s)"
    )

    def run(args: argparse.Namespace) -> int:
        import boto3  # noqa: PLC0415

        from opendepot.redrive import RedriveError, find_queue_pairs, redrive  # noqa: PLC0415

        sqs = boto3.client("sqs")
        try:
            pairs = find_queue_pairs(sqs, args.stack)
        except RedriveError as exc:
            print(f"opendepot redrive: {exc}", file=sys.stderr)
            return 2
        names = sorted(pairs) if args.queue == "all" else [args.queue]
        missing = [n for n in names if n not in pairs]
        if missing:
            print(
                f"opendepot redrive: no dead-letter queue for {', '.join(missing)} in stack "
                f"{args.stack!r} (found: {', '.join(pairs)})",
                file=sys.stderr,
            )
            return 2
        failed = 0
        for name in names:
            pair = pairs[name]
            result = redrive(sqs, pair, dry_run=args.dry_run)
            dlq, source = pair.dlq_url.rsplit("/", 1)[-1], pair.source_url.rsplit("/", 1)[-1]
            verb = "would move" if args.dry_run else "moved"
            print(
                f"{name}: {verb} {len(result.moved)} message(s) from {dlq} to {source}"
                + (f", {len(result.failed)} left in {dlq}" if result.failed else "")
            )
            failed += len(result.failed)
        return 1 if failed else 0

    return run


@subcommand("site", "regenerate the static site in the published bucket")
def _site(parser: argparse.ArgumentParser) -> Run:
    parser.description = (
        "Regenerate the static site (home, dataset pages, dashboards) in the published bucket "
        "from catalog.json and the manifests, as the site function does after publications "
        "(opendepot.site.build). "
        "Buckets come from the OPENDEPOT_* settings, AWS credentials from the environment."
    )
    parser.add_argument("action", choices=("build",), help="build: write every page")
    parser.add_argument("--dataset", action="append", metavar="SLUG",
                        help="only this dataset's page and dashboards (repeatable; default: all)")

    def run(args: argparse.Namespace) -> int:
        from opendepot import runtime  # noqa: PLC0415
        from opendepot.site import build  # noqa: PLC0415

        rt = runtime.current()
        out = build.refresh(rt.store, rt.settings, rt.registry, datasets=args.dataset,
                            now=rt.clock())
        print(f"opendepot site: {len(out.paths)} files under "
              f"s3://{rt.settings.published_bucket}/site/ ({out.written} written, "
              f"{out.unchanged} unchanged)")
        return 0

    return run


# ---------------------------------------------------------------------------------- main


def build_parser(*, plugins: bool = True) -> argparse.ArgumentParser:
    """The ``opendepot`` parser with every registered subcommand (with ``plugins``, those of
    ``PLUGIN_GROUP`` too, see ``load_plugins``)."""
    if plugins:
        load_plugins()
    parser = argparse.ArgumentParser(
        prog="opendepot",
        description="opendepot: validate, consolidate and publish open data files.",
    )
    parser.add_argument("--version", action="version", version=f"opendepot {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for cmd in SUBCOMMANDS.values():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        p.set_defaults(run=cmd.configure(p))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``opendepot`` console script; returns the exit code."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "any_arguments", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # ``python -m opendepot.cli``: run the module plug-ins import
    from opendepot.cli import main as module_main

    sys.exit(module_main())
