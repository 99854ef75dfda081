"""The local stack's command line: ``opendepot demo`` and its own script ``opendepot-demo``.

The ``opendepot`` console script ships in the Lambda layer, which never imports ``infra``: the
demo reaches it as a plug-in, the entry point ``demo = "infra.cli:DEMO"`` of the
``opendepot.subcommands`` group (pyproject.toml), loaded by ``opendepot.cli.load_plugins``.
``opendepot-demo [ARGS]`` (``main``) runs the same subcommand without the layer's CLI.

The local stack itself (moto, the HTTP server, ``infra.demo``) is imported only when the demo
runs, so ``opendepot --help`` stays light.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

from opendepot.cli import Run, Subcommand

DESCRIPTION = (
    "Start moto as S3 and SQS with the buckets and queues of template.yaml, serve the HTTP "
    "index on localhost, drop the input CSV files into the incoming bucket one publication "
    "after the other, run the validate and publish functions on each, print what happened, "
    "then keep serving until Ctrl-C (or exit with --once)."
)


def configure_demo(parser: argparse.ArgumentParser) -> Run:
    """Add the demo's arguments to ``parser``; return the function that runs the demo (exit
    code 0 when every file was handled and the index answered, else non-zero)."""
    parser.description = DESCRIPTION
    parser.add_argument(
        "--data",
        type=Path,
        help="a CSV file or a folder of CSV files (searched recursively); default: "
        "../shared/data/real/{dataset}/ beside the checkout, else a generated sample",
    )
    parser.add_argument("--port", type=int, default=8080, help="port of the HTTP index (8080)")
    parser.add_argument(
        "--once", action="store_true", help="exit after publishing instead of serving"
    )
    parser.add_argument(
        "--dataset",
        default=None,
        help="dataset slug of --data's files, or the one real dataset to drop "
        "(default: every real dataset, mapped by infra/real_sources/*.json)",
    )
    parser.add_argument("--producer", default="spf", help="producer id (%(default)s)")
    parser.add_argument(
        "--moto-port", type=int, default=0, help="port of the moto server (0: a free port)"
    )
    parser.add_argument(
        "--template",
        type=Path,
        help="the SAM template whose buckets and queues the local stack creates "
        "(default: template.yaml of the checkout)",
    )
    parser.add_argument(
        "--verbose", "-v", action="store_true", help="show the functions' logs and HTTP requests"
    )

    def run(args: argparse.Namespace) -> int:
        from infra.demo import DemoOptions, run_demo

        options = DemoOptions(
            data=args.data,
            port=args.port,
            once=args.once,
            dataset=args.dataset,
            producer=args.producer,
            moto_port=args.moto_port,
            verbose=args.verbose,
        )
        if args.template is not None:
            options = dataclasses.replace(options, template=args.template)
        return run_demo(options)

    return run


DEMO = Subcommand(
    "demo",
    "run the whole pipeline locally (moto S3/SQS, queue pump, HTTP index)",
    configure_demo,
)
"""``opendepot demo``: the object the ``opendepot.subcommands`` entry point names."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``opendepot-demo`` console script (the demo's arguments, no
    subcommand word); returns the exit code (130 on Ctrl-C)."""
    parser = argparse.ArgumentParser(prog="opendepot-demo", description=DESCRIPTION)
    run = configure_demo(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
