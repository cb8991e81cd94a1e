"""``adapterhub serve``: the HTTP server over one backbone and a pool of hot-swapped adapters."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import os
import time
import types
import typing
from typing import Any

from adapterhub.config import RuntimeConfig, ServerConfig
from adapterhub.errors import UsageError

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve adapters over HTTP (mixed adapters per batch, hot-swapped per request)",
        description="Serve every adapter of the registry over HTTP: POST /v1/predict, TEI-shaped "
        "/predict and /embed, GET /v1/adapters, /metrics, OpenAPI at /docs.",
    )
    parser.add_argument(
        "--backbone", default="multilingual-e5-small", help="backbone name or folder"
    )
    parser.add_argument(
        "--registry",
        default=None,
        help="registry folder (default: the local registry in $ADAPTERHUB_HOME)",
    )
    parser.add_argument(
        "--preload",
        action="append",
        default=[],
        metavar="PATTERN",
        help="load matching adapters at startup, e.g. 'sentiment/*' (repeatable)",
    )
    add_config_flags(parser, RuntimeConfig)
    add_config_flags(parser, ServerConfig)
    add_ray_flags(parser)
    parser.set_defaults(func=run)


RAY_FLAGS = ("replicas", "ray_address", "max_resident_per_replica", "cpus_per_replica", "routing")
"""Flags that only apply with --ray (their defaults live in adapterhub.server.scaleout)."""


def add_ray_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "scale-out", "several replicas under Ray Serve (install the ray extra)"
    )
    group.add_argument(
        "--ray",
        action="store_true",
        help="serve the same API from Ray Serve replicas, each request routed to a replica that "
        "holds its adapters; starts a local Ray instance unless --ray-address is given",
    )
    group.add_argument("--replicas", type=int, metavar="N", help="replicas (default: 2)")
    group.add_argument(
        "--ray-address", metavar="ADDR", help="join this Ray cluster, e.g. 10.0.0.5:6379"
    )
    group.add_argument(
        "--max-resident-per-replica",
        type=int,
        metavar="M",
        help="resident adapters per replica before its least recently used is evicted",
    )
    group.add_argument(
        "--cpus-per-replica", type=float, metavar="CPUS", help="Ray CPUs per replica (default: 1)"
    )
    group.add_argument(
        "--routing",
        metavar="POLICY",
        help="affinity (default), or for comparison: multiplex, pow2, round-robin",
    )


def add_config_flags(parser: argparse.ArgumentParser, config_class: type) -> None:
    """One flag per field of a config dataclass (:mod:`adapterhub.config`): its name, type,
    default and help all come from the field."""
    hints = typing.get_type_hints(config_class)
    groups: dict[str, Any] = {}
    for item in dataclasses.fields(config_class):
        meta = item.metadata
        text = meta["help"]
        if meta.get("env"):
            text += f" (default: ${meta['env']})"
        elif item.default not in (None, "", ()) and not isinstance(item.default, bool):
            text += f" (default: {item.default})"
        target = parser
        if meta.get("group"):
            if meta["group"] not in groups:
                groups[meta["group"]] = parser.add_mutually_exclusive_group()
            target = groups[meta["group"]]
        flag = meta.get("flag", "--" + item.name.replace("_", "-"))
        if hints[item.name] is bool:  # a switch: off unless given
            target.add_argument(
                flag, dest=item.name, action="store_true", help=text.replace("%", "%%")
            )
            continue
        repeated = hints[item.name] == tuple[str, ...]  # one value per use of the flag
        target.add_argument(
            flag,
            dest=item.name,
            type=str if repeated else _scalar(hints[item.name], item.name),
            action="append" if repeated else "store",
            default=None if repeated else item.default,
            metavar=meta.get("metavar"),
            help=text.replace("%", "%%"),
        )


def config_from_args(config_class: type, args: argparse.Namespace) -> Any:
    """The config dataclass from parsed flags; a field with an ``env`` falls back to it."""
    values = {}
    for item in dataclasses.fields(config_class):
        value = getattr(args, item.name)
        if value is None and item.metadata.get("env"):
            value = os.environ.get(item.metadata["env"]) or None
        if isinstance(item.default, tuple):  # a repeatable flag: what was given, in order
            value = tuple(value or item.default)
        values[item.name] = value
    return config_class(**values)


def _scalar(annotation: Any, name: str) -> type:
    """``int`` of ``int | None``: the type argparse converts the flag's text with."""
    options = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else ()
    kinds = [a for a in options if a is not type(None)] or [annotation]
    if len(kinds) != 1 or kinds[0] not in (int, float, str):
        raise TypeError(f"config field {name}: flags support int, float and str, not {annotation}")
    return kinds[0]


def preload(runtime, patterns: list[str]) -> list[str]:
    """Load what each of ``patterns`` resolves to, by the registry's rules: an id as every command
    resolves it, a pattern (``sentiment/*``, ``topic/*@team``, ``topic/*:1.0.0``) as each id it
    matches would; never a yanked version. Returns ``ID from STORE`` for each one loaded."""
    # here for a fast `adapterhub --help` (see run)
    from adapterhub.registry.resolver import Resolver

    resolver = Resolver.default(runtime.registry)
    wanted = []
    for pattern in patterns:
        if not any(ch in pattern for ch in "*?["):
            wanted.append(resolver.resolve(pattern).require_servable())
            continue
        matches = resolver.match(pattern)
        if not matches:
            raise UsageError(f"--preload {pattern!r} matches no adapter that is not yanked")
        wanted += matches
    loaded = {}
    for found in wanted:
        loaded.setdefault(runtime.load(str(found.id)).id, found.describe())
    return list(loaded.values())


def make_runtime(backbone_name: str, registry: str | None, limits: RuntimeConfig) -> Any:
    """The backbone and runtime ``serve`` runs: in this process, or in each ``--ray`` replica
    (which calls this with its own limits)."""
    # here for a fast `adapterhub --help` (see run)
    from adapterhub.backbone import load_backbone
    from adapterhub.runtime import Runtime

    started = _phase()
    backbone = load_backbone(
        backbone_name, quantize=limits.quantize, dtype=limits.dtype or "auto", engine="native"
    )
    started = _phase("backbone", started)
    runtime = Runtime(
        backbone,
        registry=registry,
        max_resident=limits.max_resident,
        memory_budget_mb=limits.memory_budget_mb,
        max_length=limits.max_length,
        prefix=limits.prefix,
        bank_chunk=limits.bank_chunk,
        room_wait_s=limits.room_wait_s,
        dtype=limits.dtype,
        quantize=limits.quantize,
        require_signature=limits.require_signature,
        trusted_keys=limits.trusted_keys,
    )
    _phase("runtime", started)
    return runtime


def _phase(name: str = "", since: float = 0.0) -> float:
    """Log how long a phase of the start took, from ``since`` (``--debug``: ``start: backbone
    2.470 s``; benchmarks/coldstart.py reads these lines); returns now, for the next one."""
    now = time.perf_counter()
    if name:
        log.debug("start: %s %.3f s", name, now - since)
    return now


def run(args: argparse.Namespace) -> int:
    # Imported here, not at the top: the server pulls in torch and FastAPI (seconds) and the
    # registry about 0.3 s, while `adapterhub --help` takes 0.08 s without them.
    started = _phase()
    if not args.ray:  # each Ray replica loads its own backbone, in its own process
        from adapterhub.backbone.load import prefetch_tokenizer

        prefetch_tokenizer(args.backbone)
    import uvicorn

    from adapterhub.server import create_app

    _phase("server imports", started)

    limits = config_from_args(RuntimeConfig, args)
    config = config_from_args(ServerConfig, args)  # refuses a bad port or limits before loading
    if args.ray:
        # here: Ray is imported only when asked for (and is an optional extra)
        from adapterhub.server.scaleout.launch import run as run_replicas

        return run_replicas(
            args,
            limits,
            config,
            make_runtime=functools.partial(make_runtime, args.backbone, args.registry),
            on_start=functools.partial(preload, patterns=args.preload),
        )
    given = [f"--{name.replace('_', '-')}" for name in RAY_FLAGS if getattr(args, name) is not None]
    if given:
        raise UsageError(f"{', '.join(given)} only apply with --ray; add --ray or drop them")
    runtime = make_runtime(args.backbone, args.registry, limits)
    started = _phase()
    loaded = preload(runtime, args.preload)
    _phase("preload", started)
    if loaded:
        more = " ..." if len(loaded) > 10 else ""
        print(f"preloaded {len(loaded)} adapters: {', '.join(loaded[:10])}{more}", flush=True)
    app = create_app(runtime, config)
    print(
        f"serving {runtime.backbone.name} on http://{config.host}:{config.port} (OpenAPI at /docs)",
        flush=True,
    )
    uvicorn.run(
        app, host=config.host, port=config.port, log_level="debug" if args.debug else "warning"
    )
    return 0
