"""`adapterhub serve` builds its flags from adapterhub.config: names, types, defaults and help all
come from the dataclass fields, so each default lives in one place."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
import re
import subprocess
import sys
import typing

import pytest

from adapterhub.cli import build_parser
from adapterhub.cli.serve import add_config_flags, config_from_args
from adapterhub.config import RuntimeConfig, ServerConfig
from adapterhub.errors import UsageError
from adapterhub.runtime import Runtime

CONFIGS = (RuntimeConfig, ServerConfig)


def _flag(item: dataclasses.Field) -> str:
    return item.metadata.get("flag", "--" + item.name.replace("_", "-"))


def _serve(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(["serve", *argv])


def test_serve_help_lists_every_field_with_its_doc():
    env = {**os.environ, "COLUMNS": "1000"}  # one line per flag: no wrapping inside a doc
    result = subprocess.run(
        [sys.executable, "-m", "adapterhub", "serve", "--help"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    for config in CONFIGS:
        hints = typing.get_type_hints(config)
        for item in dataclasses.fields(config):
            invocation = f"{_flag(item)} {item.metadata.get('metavar', item.name.upper())}"
            if hints[item.name] is bool:  # a switch takes no value
                invocation = _flag(item)
            entry = re.escape(invocation) + r"\s+" + re.escape(item.metadata["help"])
            assert re.search(entry, result.stdout), f"{invocation} and its doc not in --help"


def test_parser_defaults_are_the_dataclass_defaults():
    args = _serve([])
    for config in CONFIGS:
        assert config_from_args(config, args) == config()


def test_flags_reach_the_configs_with_the_fields_types():
    args = _serve(
        ["--max-queue", "9", "--max-inputs", "9", "--max-wait-ms", "2.5", "--memory-budget", "12"]
        + ["--bank-chunk", "4", "--max-length", "64", "--port", "0", "--prefix", "query: "]
    )
    server, runtime = config_from_args(ServerConfig, args), config_from_args(RuntimeConfig, args)
    assert (server.max_queue, server.max_inputs, server.max_wait_ms, server.port) == (9, 9, 2.5, 0)
    assert isinstance(server.max_wait_ms, float) and isinstance(server.max_queue, int)
    assert runtime == RuntimeConfig(
        memory_budget_mb=12.0, bank_chunk=4, max_length=64, prefix="query: "
    )
    with pytest.raises(SystemExit):  # the capacity group stays exclusive
        _serve(["--max-resident", "2", "--memory-budget", "10"])


def test_a_default_changed_in_the_dataclass_shows_up_in_the_parser():
    original = {f.name: f for f in dataclasses.fields(ServerConfig)}["max_queue"]
    changed = dataclasses.make_dataclass(
        "Changed",
        [("max_queue", int, dataclasses.field(default=77, metadata=original.metadata))],
        bases=(ServerConfig,),
        frozen=True,
    )
    parser = argparse.ArgumentParser()
    add_config_flags(parser, changed)
    args = parser.parse_args([])
    assert args.max_queue == 77 and config_from_args(changed, args).max_queue == 77
    assert "(default: 77)" in " ".join(parser.format_help().split())
    assert parser.parse_args(["--max-queue", "80"]).max_queue == 80


def test_admin_token_falls_back_to_the_environment(monkeypatch):
    monkeypatch.setenv("ADAPTERHUB_ADMIN_TOKEN", "from-env")
    assert config_from_args(ServerConfig, _serve([])).admin_token == "from-env"
    flagged = _serve(["--admin-token", "from-flag"])
    assert config_from_args(ServerConfig, flagged).admin_token == "from-flag"
    monkeypatch.setenv("ADAPTERHUB_ADMIN_TOKEN", "")
    assert config_from_args(ServerConfig, _serve([])).admin_token is None


def test_runtime_config_is_every_runtime_option_with_its_default():
    parameters = inspect.signature(Runtime).parameters
    options = {n for n, p in parameters.items() if p.kind is p.KEYWORD_ONLY} - {"registry"}
    assert {item.name for item in dataclasses.fields(RuntimeConfig)} == options
    for item in dataclasses.fields(RuntimeConfig):
        assert parameters[item.name].default == item.default, item.name


def test_limits_that_cannot_work_are_refused_before_the_backbone_loads():
    with pytest.raises(UsageError, match="TCP port"):
        ServerConfig(port=70000)
    result = subprocess.run(
        [sys.executable, "-m", "adapterhub", "serve", "--backbone", "/nonexistent"]
        + ["--max-inputs", "20", "--max-queue", "10"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "--max-inputs 20 exceeds --max-queue 10" in result.stderr
