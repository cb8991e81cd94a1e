"""One replica: a backbone, the runtime (its LRU pool, leases and banks) and the server's own app
with its batcher, exactly as ``adapterhub serve`` runs them in one process. The ingress hands it
buffered HTTP requests; it answers with the app's response, its name and the names it holds
adapters under.

Every replica opens the same registry (a folder every node mounts, or an OCI or S3 remote), and
the runtime resolves each id when it loads it: an adapter published while the replicas run is
servable by all of them without a restart.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ray import serve

from adapterhub.config import RuntimeConfig, ServerConfig
from adapterhub.runtime import Runtime
from adapterhub.server import create_app
from adapterhub.server.scaleout.forwarding import Answer, Forwarded, call_app, lifespan
from adapterhub.server.scaleout.routing import Route


@dataclass(frozen=True)
class ReplicaSpec:
    """What every replica is built from (pickled to each replica's process)."""

    make_runtime: Callable[[RuntimeConfig], Runtime]
    """The runtime from the pool limits: serve's own ``make_runtime`` with its backbone and
    registry bound, so a replica loads exactly what the single-process server would."""
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    on_start: Callable[[Runtime], Any] | None = None
    """Called with the runtime before the replica serves (serve's ``--preload``)."""


class _Held:
    """What Ray's multiplexed loader caches: only the key (the runtime holds the adapters)."""


class Replica:
    """The Ray Serve deployment class (``serve.deployment`` is applied in
    :mod:`adapterhub.server.scaleout.cluster`, which sets replicas, CPUs and the router)."""

    async def __init__(self, spec: ReplicaSpec) -> None:
        self.name = serve.get_replica_context().replica_id.unique_id
        self.runtime = spec.make_runtime(spec.runtime)
        if spec.on_start is not None:
            spec.on_start(self.runtime)
        self.app = create_app(self.runtime, spec.server)
        self._lifespan = lifespan(self.app)
        self._state = await self._lifespan.__aenter__()
        # Ray's multiplexed routing (the ``multiplex`` policy) learns a replica's keys from
        # this loader; its LRU is as large as the runtime's, so both keep the same recent keys

        async def hold(model_id: str) -> _Held:
            return _Held()

        self._multiplexed = serve.multiplexed(
            max_num_models_per_replica=spec.runtime.max_resident or -1
        )(hold)

    async def handle(self, route: Route, request: Forwarded) -> Answer:
        """Answer one request (``route`` is for the router: see its module)."""
        model_id = serve.get_multiplexed_model_id()
        if model_id:
            await self._multiplexed(model_id)
        answer = await call_app(self.app, request, self._state)
        return dataclasses.replace(
            answer, replica=self.name, names=tuple(self.runtime.resident_names())
        )

    async def __del__(self) -> None:
        """Ray's graceful shutdown: after the requests in flight are answered, the batcher
        stops (answering what it still holds)."""
        await self._lifespan.__aexit__(None, None, None)
