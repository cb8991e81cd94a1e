"""The ``adapterhub`` command. Every command is thin: parse, call one library function, print.

Each area registers its subcommands from its own module in this package (``backbone``, ``data``,
``train``, ``registry``, ``serve``) so that the parser stays one tree while the code stays small.
Heavy imports (torch, transformers) happen inside the command functions, never at parse time.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from adapterhub import __version__
from adapterhub.errors import AdapterHubError

COMMAND_MODULES = (
    "backbone",
    "embed",
    "similarity",
    "data",
    "recipe",
    "train",
    "registry",
    "serve",
    "hub",
    "config",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="adapterhub",
        description="Parameter-efficient adapters on one frozen multilingual backbone.",
    )
    parser.add_argument("--version", action="version", version=f"adapterhub {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"adapterhub.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.debug:
        # bitsandbytes warns at import about optional 4-bit CPU kernels adapterhub never uses.
        logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except AdapterHubError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
