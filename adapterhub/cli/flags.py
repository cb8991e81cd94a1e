"""Flags that several commands share, defined once so that they parse and read the same in every
command's ``--help``. Nothing from the library is imported: the parser is built on every start."""

from __future__ import annotations

import argparse

JSON_HELP = "print JSON instead of a table"
BACKBONE_HELP = "the backbone to load: embedded name, local folder or hub id (default: %(default)s)"
QUANTIZE_HELP = (
    "load the backbone's Linear layers in 8 bits through bitsandbytes (default: full precision)"
)
PREFIX_HELP = "e5 input prefix (default 'query: '; use '' for none)"


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help=JSON_HELP)


def add_backbone_flag(parser: argparse.ArgumentParser) -> None:
    """``--backbone`` of the commands that load one to run (not the filters and records of the
    registry, which say what they match)."""
    parser.add_argument("--backbone", default="multilingual-e5-small", help=BACKBONE_HELP)


def add_quantize_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quantize", choices=["8bit"], default=None, help=QUANTIZE_HELP)


def add_prefix_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prefix", default="query: ", help=PREFIX_HELP)
