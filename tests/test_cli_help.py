"""Every argument of every ``adapterhub`` command says what it does in ``--help`` (the house rule
"help text on every flag"), and every command's ``--help`` renders."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from adapterhub.cli import build_parser


def parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ("adapterhub",)
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """``("adapterhub registry remote add", parser)`` for the top parser and every nested
    subcommand."""
    yield " ".join(path), parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from parsers(sub, (*path, name))


def test_every_argument_has_help():
    missing = [
        f"{command}: {'/'.join(action.option_strings) or action.dest}"
        for command, parser in parsers(build_parser())
        for action in parser._actions
        if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))
        and not (action.help or "").strip()
    ]
    assert not missing, f"{len(missing)} arguments without help text:\n" + "\n".join(missing)


def test_every_subcommand_has_help():
    missing = [
        f"{command} {choice.dest}"
        for command, parser in parsers(build_parser())
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for choice in action._choices_actions
        if not (choice.help or "").strip()
    ]
    assert not missing, "subcommands without help text:\n" + "\n".join(missing)


def test_every_help_renders():
    # a help string with a bare % (or a bad %(name)s) only fails when --help formats it
    for command, parser in parsers(build_parser()):
        assert parser.format_help().startswith("usage: "), command
