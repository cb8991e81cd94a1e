"""Which replica answers a request: the adapters it names, where they are resident, and the
policy that picks among the replicas. Plain bookkeeping, no Ray: the request router
(:mod:`adapterhub.server.scaleout.router`) ranks replicas with :meth:`Residency.rank` in the
ingress process, and the ingress feeds the same table from every replica's answer.

A replica's answer carries the names it holds adapters under (exact ids and the short ids it
resolved to them), so the table is as fresh as the last answer from that replica; a request
routed to a replica counts as held there until it is answered, so a burst for a new adapter
goes where the first of them went instead of loading it on every replica.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from adapterhub.server import ADAPTER_HEADER

POLICIES = ("affinity", "multiplex", "pow2", "round-robin")
"""``affinity``: the replica holding the request's adapters, else the least loaded one (ties by
rendezvous hash of the adapters, so an adapter keeps coming back to the same replica);
``multiplex``: Ray Serve's own ``serve.multiplexed`` routing (its default router keyed by a
model id); ``pow2``: Ray Serve's default, power of two choices; ``round-robin``: in turn.
The last three are kept to measure affinity against (benchmarks/scaleout.py)."""

SPILL = 16
"""Requests in flight a holder may have above the least loaded replica before a request for
its adapters goes to the least loaded one instead (which then loads them): a hot adapter
ends up resident on several replicas rather than queueing on one."""

TEI_PREDICT = "/predict/"


@dataclass(frozen=True)
class Route:
    """What the router reads from a request (its first argument to the replica)."""

    names: tuple[str, ...] = ()
    """The adapters the request names (one, a stack, or a set), as the client wrote them."""
    policy: str = "affinity"
    replica: str | None = None
    """Exactly this replica (admin broadcast, health, an ``X-Adapterhub-Replica`` header)."""

    @property
    def model_id(self) -> str:
        """The key Ray's multiplexed routing groups requests by."""
        return ",".join(self.names)


def adapter_names(path: str, headers: Mapping[str, str], body: bytes) -> tuple[str, ...]:
    """The adapters a request names, in order, without duplicates: a JSON body's ``adapter``,
    ``stack`` and ``adapters`` fields, the ``X-Adapter-Id`` header and TEI's
    ``/predict/{id}`` path. A body that is not JSON names none (the replica answers 422)."""
    found: list[str] = []
    if path.startswith(TEI_PREDICT):
        found.append(unquote(path[len(TEI_PREDICT) :]))
    header = headers.get(ADAPTER_HEADER.lower())
    if header:
        found.append(header)
    if body[:1] == b"{" or body.lstrip()[:1] == b"{":
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if isinstance(payload, dict):
            for field in ("adapter", "stack", "adapters"):
                value = payload.get(field)
                values = [value] if isinstance(value, str) else value
                if isinstance(values, list):
                    found += [v for v in values if isinstance(v, str)]
    return tuple(dict.fromkeys(found))


def rendezvous(names: Sequence[str], replica: str) -> bytes:
    """Highest-random-weight hash: among equally loaded replicas the largest wins, so the same
    adapters go to the same replica, and only those of a replica that leaves move."""
    return hashlib.blake2b(f"{replica}\0{chr(0).join(names)}".encode(), digest_size=8).digest()


class Residency:
    """Where adapters are resident and what is in flight, per replica (one table per
    deployment in the ingress process; the router thread and the ingress both use it)."""

    def __init__(self, spill: int = SPILL) -> None:
        self.spill = spill
        self._lock = threading.Lock()
        self._replicas: list[str] = []
        self._held: dict[str, frozenset[str]] = {}
        self._pending: dict[str, Counter[str]] = {}
        self._load: Counter[str] = Counter()
        self._requests: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._turn = itertools.count()
        self.routed = Counter()
        """``resident``: requests sent to a replica that held (or was loading) all their
        adapters; ``load``: requests whose replica had to load one."""

    # ---------------------------------------------------------------- what Ray tells us

    def set_replicas(self, replicas: Iterable[str]) -> None:
        with self._lock:
            self._replicas = sorted(replicas)
            for gone in set(self._held) - set(self._replicas):
                self._forget(gone)

    def drop(self, replica: str) -> None:
        """The replica died: nothing is resident there any more."""
        with self._lock:
            if replica in self._replicas:
                self._replicas.remove(replica)
            self._forget(replica)

    def _forget(self, replica: str) -> None:
        self._held.pop(replica, None)
        self._pending.pop(replica, None)
        self._load.pop(replica, None)

    @property
    def replicas(self) -> list[str]:
        with self._lock:
            return list(self._replicas)

    # ---------------------------------------------------------------- requests

    def sent(self, request_id: str, replica: str, names: tuple[str, ...]) -> None:
        """A request left for ``replica``: its adapters count as held there until it ends."""
        with self._lock:
            held = self._held.get(replica, frozenset())
            pending = self._pending.setdefault(replica, Counter())
            hit = all(n in held or pending[n] for n in names)
            self.routed["resident" if hit else "load"] += 1
            pending.update(names)
            self._load[replica] += 1
            self._requests[request_id] = (replica, names)

    def done(self, request_id: str) -> None:
        with self._lock:
            replica, names = self._requests.pop(request_id, (None, ()))
            if replica is None:
                return
            pending = self._pending.get(replica)
            if pending is not None:
                pending.subtract(names)
                for name in names:
                    if pending[name] <= 0:
                        del pending[name]
            if self._load.get(replica, 0) > 0:
                self._load[replica] -= 1

    def observe(self, replica: str, names: Iterable[str]) -> None:
        """A replica's answer: the names it holds adapters under now."""
        with self._lock:
            if replica in self._replicas:
                self._held[replica] = frozenset(names)

    def held(self, replica: str) -> frozenset[str]:
        with self._lock:
            return self._held.get(replica, frozenset())

    def in_flight(self, replica: str) -> int:
        with self._lock:
            return self._load.get(replica, 0)

    # ---------------------------------------------------------------- policies

    def rank(self, route: Route, candidates: Sequence[str]) -> list[list[str]]:
        """Candidates in order of preference (ranks of one replica each) for ``affinity`` and
        ``round-robin``; the router hands the other policies to Ray's own code."""
        if not candidates:
            return []
        with self._lock:
            if route.policy == "round-robin":
                ordered = sorted(candidates)
                start = next(self._turn) % len(ordered)
                return [[r] for r in ordered[start:] + ordered[:start]]
            return [[r] for r in self._by_affinity(route.names, candidates)]

    def _by_affinity(self, names: tuple[str, ...], candidates: Sequence[str]) -> list[str]:
        """Replicas within ``spill`` of the least loaded count as equally loaded; among them
        the one holding the most of ``names`` (then the less loaded), else, for a miss, the
        one holding fewer adapters (an empty or new replica fills first), then the highest
        rendezvous hash. Overloaded replicas come last, least loaded first."""
        least = min(self._load.get(r, 0) for r in candidates)

        def key(replica: str) -> tuple:
            load = self._load.get(replica, 0)
            if load - least > self.spill:
                return (1, load)
            have = self._held.get(replica, frozenset())
            pending = self._pending.get(replica, Counter())
            holds = sum(1 for n in names if n in have or pending[n])
            if holds:
                return (0, -holds, load)
            return (0, 0, len(have.union(pending)), _reverse(rendezvous(names, replica)))

        return sorted(candidates, key=key)


def _reverse(digest: bytes) -> bytes:
    """Sorts the largest hash first."""
    return bytes(255 - b for b in digest)


_TABLES: dict[str, Residency] = {}
_TABLES_LOCK = threading.Lock()


def residency(deployment: str) -> Residency:
    """The table of ``deployment`` in this process (created on first use)."""
    with _TABLES_LOCK:
        return _TABLES.setdefault(deployment, Residency())
