"""``adapterhub serve``: the HTTP server over one backbone and a pool of hot-swapped adapters."""

from __future__ import annotations

import argparse
import fnmatch
import logging
import os

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
    capacity = parser.add_mutually_exclusive_group()
    capacity.add_argument(
        "--max-resident",
        type=int,
        default=None,
        metavar="N",
        help="resident adapters before LRU eviction",
    )
    capacity.add_argument(
        "--memory-budget",
        type=float,
        default=None,
        metavar="MB",
        help="adapter memory before LRU eviction",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--quantize", choices=["8bit"], default=None, help="8-bit backbone (bitsandbytes)"
    )
    parser.add_argument(
        "--max-batch-tokens", type=int, default=8192, help="padded tokens per batched forward"
    )
    parser.add_argument(
        "--max-wait-ms", type=float, default=5.0, help="how long a request waits to share a batch"
    )
    parser.add_argument(
        "--max-queue", type=int, default=1024, help="queued inputs before answering 429"
    )
    parser.add_argument("--max-inputs", type=int, default=64, help="inputs per request (more: 413)")
    parser.add_argument(
        "--max-chars", type=int, default=4096, help="characters per input (more: 413)"
    )
    parser.add_argument(
        "--prefix",
        default="",
        help="text before each sequence-task input for adapters whose manifest names no recipe prefix",
    )
    parser.add_argument(
        "--admin-token",
        default=None,
        help="bearer token of the admin routes (default: $ADAPTERHUB_ADMIN_TOKEN; unset disables them)",
    )
    parser.set_defaults(func=run)


def preload(runtime, patterns: list[str]) -> list[str]:
    """Load the newest version of every adapter matching one of ``patterns`` (a pattern with a
    version, ``topic/*:1.0.0``, loads exactly the matching versions)."""
    from adapterhub.registry import AdapterId

    wildcard = any(ch in p for p in patterns for ch in "*?[")
    available = runtime.available() if wildcard else []
    wanted: list[str] = []
    for pattern in patterns:
        if not any(ch in pattern for ch in "*?["):
            wanted.append(pattern)
            continue
        bases = {a: str(AdapterId.parse(a).base) for a in available}
        matches = [
            a
            for a in available
            if fnmatch.fnmatchcase(a, pattern) or fnmatch.fnmatchcase(bases[a], pattern)
        ]
        if not matches:
            raise UsageError(f"--preload {pattern!r} matches no adapter in the registry")
        wanted += [a if ":" in pattern else bases[a] for a in matches]
    return list(dict.fromkeys(runtime.load(adapter).id for adapter in dict.fromkeys(wanted)))


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from adapterhub.backbone import load_backbone
    from adapterhub.runtime import Runtime
    from adapterhub.server import ServerConfig, create_app

    if args.port < 0 or args.port > 65535:
        raise UsageError(f"--port {args.port} is not a TCP port")
    backbone = load_backbone(args.backbone, quantize=args.quantize)
    runtime = Runtime(
        backbone,
        registry=args.registry,
        max_resident=args.max_resident,
        memory_budget_mb=args.memory_budget,
        prefix=args.prefix,
    )
    loaded = preload(runtime, args.preload)
    if loaded:
        print(
            f"preloaded {len(loaded)} adapters: {', '.join(loaded[:10])}{' ...' if len(loaded) > 10 else ''}",
            flush=True,
        )
    config = ServerConfig(
        max_batch_tokens=args.max_batch_tokens,
        max_wait_ms=args.max_wait_ms,
        max_queue=args.max_queue,
        max_inputs=args.max_inputs,
        max_chars=args.max_chars,
        admin_token=args.admin_token or os.environ.get("ADAPTERHUB_ADMIN_TOKEN") or None,
    )
    app = create_app(runtime, config)
    print(
        f"serving {backbone.name} on http://{args.host}:{args.port} (OpenAPI at /docs)", flush=True
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="debug" if args.debug else "warning")
    return 0
