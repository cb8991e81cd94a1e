"""Ray itself: join a cluster or start a local instance, deploy the replicas as a Ray Serve
application, and take it down again.

    started = connect(ScaleOut(replicas=2))
    handle = deploy(ReplicaSpec(backbone="multilingual-e5-small"), ScaleOut(replicas=2))
    app = Ingress(handle, residency(DEPLOYMENT), replicas=2)   # then uvicorn.run(app, ...)
    stop(scale, started)
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass

import ray
from ray import serve
from ray.serve.config import ProxyLocation, RequestRouterConfig
from ray.serve.handle import DeploymentHandle

from adapterhub.errors import UsageError
from adapterhub.server.scaleout.replica import Replica, ReplicaSpec
from adapterhub.server.scaleout.router import AdapterRouter
from adapterhub.server.scaleout.routing import POLICIES

DEPLOYMENT = "Replica"
FORWARDED_ENV = ("ADAPTERHUB_HOME", "HF_HUB_OFFLINE", "OMP_NUM_THREADS")
"""Settings a replica reads from its environment: passed on from the serving process, so a
replica on another node sees what ``adapterhub serve`` saw."""
_QUIET = {"enable_access_log": False, "log_level": "WARNING"}


@dataclass(frozen=True)
class ScaleOut:
    """The ``--ray`` options of ``adapterhub serve``."""

    replicas: int = 2
    address: str | None = None
    """A running cluster to join (``ray start --head`` prints it); None starts a local one."""
    max_resident_per_replica: int | None = None
    cpus_per_replica: float = 1.0
    routing: str = "affinity"
    app_name: str = "adapterhub"

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise UsageError(f"--replicas {self.replicas}: run at least one replica")
        if self.max_resident_per_replica is not None and self.max_resident_per_replica < 1:
            raise UsageError("--max-resident-per-replica must be at least 1")
        if self.cpus_per_replica <= 0:
            raise UsageError("--cpus-per-replica must be a positive number of CPUs")
        if self.routing not in POLICIES:
            raise UsageError(f"--routing {self.routing!r}: use one of {', '.join(POLICIES)}")


def connect(scale: ScaleOut) -> bool:
    """Join ``scale.address`` or start a local Ray instance; True when this started one."""
    if ray.is_initialized():
        return False
    local = scale.address is None
    ray.init(
        address="local" if local else scale.address,  # "local": never a stray RAY_ADDRESS
        include_dashboard=False,
        logging_level=logging.WARNING,
    )
    return local


def deploy(spec: ReplicaSpec, scale: ScaleOut) -> DeploymentHandle:
    """Run ``scale.replicas`` replicas of ``spec`` (returns once every one is healthy)."""
    if scale.max_resident_per_replica is not None:
        spec = dataclasses.replace(
            spec,
            runtime=dataclasses.replace(spec.runtime, max_resident=scale.max_resident_per_replica),
        )
    env = {name: os.environ[name] for name in FORWARDED_ENV if os.environ.get(name)}
    deployment = serve.deployment(Replica).options(
        name=DEPLOYMENT,
        num_replicas=scale.replicas,
        # the replica's batcher bounds its own queue (429 past --max-queue): let it see them all
        max_ongoing_requests=spec.server.max_queue,
        ray_actor_options={"num_cpus": scale.cpus_per_replica, "runtime_env": {"env_vars": env}},
        request_router_config=RequestRouterConfig(request_router_class=AdapterRouter),
        health_check_period_s=2,
        graceful_shutdown_wait_loop_s=0.5,
        graceful_shutdown_timeout_s=60,
    )
    serve.start(proxy_location=ProxyLocation.Disabled, logging_config=_QUIET)
    return serve.run(
        deployment.bind(spec), name=scale.app_name, route_prefix=None, logging_config=_QUIET
    )


def stop(scale: ScaleOut, started: bool) -> None:
    """Delete the application (its replicas finish what they accepted first); a local
    instance this process started goes down with it."""
    try:
        serve.delete(scale.app_name)
    finally:
        if started:
            serve.shutdown()
            ray.shutdown()
