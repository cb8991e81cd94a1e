"""The replicas' request router: Ray Serve's custom-router API (``RequestRouterConfig``), built
from Ray's own locality and multiplex mixins as Ray's prefix-cache affinity router is.

It runs inside the process that holds the deployment handle (the ingress), where it ranks
replicas with the ingress's :class:`~adapterhub.server.scaleout.routing.Residency` table and
tells that table which requests went where. The policy travels with each request (its
:class:`~adapterhub.server.scaleout.routing.Route`), so one deployment can be driven by
``affinity`` and, for comparison, by Ray's default (``pow2``, ``multiplex``) or round robin.
"""

from __future__ import annotations

from ray.serve._private.request_router.pow_2_router import PowerOfTwoChoicesRequestRouter
from ray.serve.request_router import (
    LocalityMixin,
    MultiplexMixin,
    PendingRequest,
    ReplicaID,
    RequestRouter,
    RunningReplica,
)

from adapterhub.server.scaleout.routing import Route, residency


class AdapterRouter(LocalityMixin, MultiplexMixin, RequestRouter):
    """No FIFO mixin on purpose: a replica chosen for one request's adapters is never handed to
    another pending request."""

    def initialize_state(self) -> None:
        self.table = residency(self._deployment_id.name)

    async def choose_replicas(
        self,
        candidate_replicas: list[RunningReplica],
        pending_request: PendingRequest | None = None,
    ) -> list[list[RunningReplica]]:
        route = _route(pending_request)
        by_id = {r.replica_id.unique_id: r for r in candidate_replicas}
        if route.replica is not None:
            # a broadcast or a named replica: that one or none (the caller's timeout answers)
            return [[by_id[route.replica]]] if route.replica in by_id else []
        if route.policy in ("pow2", "multiplex"):
            # Ray's default procedure itself; multiplex routing applies when the request
            # carries a multiplexed model id (the ingress sets one for ``multiplex`` only)
            return await PowerOfTwoChoicesRequestRouter.choose_replicas(
                self, candidate_replicas, pending_request
            )
        ranks = self.table.rank(route, list(by_id))
        return [[by_id[r] for r in rank] for rank in ranks]

    def on_request_routed(
        self, pending_request: PendingRequest, replica_id: ReplicaID, result: object
    ) -> None:
        route = _route(pending_request)
        self.table.sent(
            pending_request.metadata.internal_request_id, replica_id.unique_id, route.names
        )

    def on_request_completed(self, replica_id: ReplicaID, internal_request_id: str) -> None:
        self.table.done(internal_request_id)

    def update_replicas(self, replicas: list[RunningReplica]) -> None:
        super().update_replicas(replicas)
        self.table.set_replicas(r.replica_id.unique_id for r in replicas)

    def on_replica_actor_died(self, replica_id: ReplicaID) -> None:
        super().on_replica_actor_died(replica_id)
        self.table.drop(replica_id.unique_id)


def _route(pending_request: PendingRequest | None) -> Route:
    args = pending_request.args if pending_request is not None else ()
    return args[0] if args and isinstance(args[0], Route) else Route()
