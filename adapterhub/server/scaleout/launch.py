"""``adapterhub serve --ray``: what its flags become, and the serving process's life: join or
start Ray, deploy the replicas, serve the ingress until interrupted, then let the replicas
answer what they accepted and take the application down."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import uvicorn

from adapterhub.config import RuntimeConfig, ServerConfig
from adapterhub.errors import UsageError
from adapterhub.server.scaleout.cluster import DEPLOYMENT, ScaleOut, connect, deploy, stop
from adapterhub.server.scaleout.ingress import Ingress
from adapterhub.server.scaleout.replica import ReplicaSpec
from adapterhub.server.scaleout.routing import residency

FLAGS = {
    "replicas": "replicas",
    "ray_address": "address",
    "max_resident_per_replica": "max_resident_per_replica",
    "cpus_per_replica": "cpus_per_replica",
    "routing": "routing",
}
"""serve's Ray flags (argparse dest) -> the :class:`ScaleOut` field each one sets."""


def scale_out(args: argparse.Namespace, limits: RuntimeConfig) -> ScaleOut:
    """The Ray options given on the command line; the rest keep :class:`ScaleOut`'s defaults."""
    given = {field: getattr(args, dest) for dest, field in FLAGS.items()}
    given = {field: value for field, value in given.items() if value is not None}
    per_replica = given.get("max_resident_per_replica")
    if per_replica is not None and limits.max_resident not in (None, per_replica):
        raise UsageError(
            f"--max-resident {limits.max_resident} and --max-resident-per-replica {per_replica} "
            "disagree; under --ray both mean the pool of each replica: give one"
        )
    if per_replica is None and limits.max_resident is not None:
        given["max_resident_per_replica"] = limits.max_resident
    return ScaleOut(**given)


def run(
    args: argparse.Namespace,
    limits: RuntimeConfig,
    config: ServerConfig,
    *,
    make_runtime: Callable[[RuntimeConfig], Any],
    on_start: Callable[[Any], Any] | None = None,
) -> int:
    """Serve until interrupted. Each replica builds its runtime with ``make_runtime`` and runs
    ``on_start`` on it (serve's preload) before it serves."""
    scale = scale_out(args, limits)
    spec = ReplicaSpec(make_runtime=make_runtime, runtime=limits, server=config, on_start=on_start)
    started = connect(scale)
    where = "a local Ray instance" if started else f"the Ray cluster at {scale.address}"
    print(f"starting {scale.replicas} replicas on {where} ...", flush=True)
    try:
        handle = deploy(spec, scale)
    except BaseException:
        stop(scale, started)
        raise
    app = Ingress(
        handle,
        residency(DEPLOYMENT),
        replicas=scale.replicas,
        policy=scale.routing,
        max_body_bytes=config.max_body_bytes,
        on_shutdown=lambda: stop(scale, started),
    )
    print(
        f"serving {args.backbone} from {scale.replicas} replicas ({scale.routing} routing) on "
        f"http://{config.host}:{config.port} (OpenAPI at /docs)",
        flush=True,
    )
    uvicorn.run(
        app, host=config.host, port=config.port, log_level="debug" if args.debug else "warning"
    )
    return 0
