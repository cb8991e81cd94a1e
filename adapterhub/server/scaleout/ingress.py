"""The ingress: an ASGI app in the ``adapterhub serve --ray`` process that hands each HTTP request,
buffered, to a replica through the deployment's handle, and answers with the replica's response
plus an ``X-Adapterhub-Replica`` header naming the replica.

It implements no route of its own but these, which must speak for every replica:

- ``GET /healthz``, ``GET /readyz``: asked of every replica; healthy while one is, ready
  (``ready``) when all are, ``degraded`` (still 200) while some are, 503 while none is. The
  body adds ``replicas``: each replica's own status.
- ``GET /metrics``: every replica's page under a ``replica`` label, and the ingress's series.
- ``POST /v1/adapters/{id}:load`` and ``DELETE /v1/adapters/{id}`` (admin): sent to every
  replica (the header names them all); a load answers the first failure if any replica failed,
  an unload succeeds if any replica held the adapter.

A request carrying ``X-Adapterhub-Replica: NAME`` goes to that replica only (404 when no
replica has that name), admin routes included.

A request whose replica dies (or cannot be reached) is answered 503 with ``Retry-After``: no
answer is ever taken from another replica's work. A client that disconnects cancels its
request on the replica (it leaves the batching queue there).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from ray.exceptions import RayActorError
from ray.serve.exceptions import (
    BackPressureError,
    DeploymentUnavailableError,
    ReplicaUnavailableError,
    RequestCancelledError,
)
from ray.serve.handle import DeploymentHandle
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send

from adapterhub.server.errors import error_response
from adapterhub.server.routes.admin import LOAD_ACTION
from adapterhub.server.scaleout.forwarding import Answer, Forwarded
from adapterhub.server.scaleout.metrics import IngressMetrics
from adapterhub.server.scaleout.routing import POLICIES, Residency, Route, adapter_names

log = logging.getLogger(__name__)

REPLICA_HEADER = "X-Adapterhub-Replica"
RETRY_AFTER_S = 1
"""Ray starts a replacement for a dead replica at once, and the survivors take new requests."""
PROBE_TIMEOUT_S = 10.0
"""How long /healthz, /readyz and /metrics wait for a replica."""
ADMIN_TIMEOUT_S = 120.0
"""How long a broadcast load or unload waits for a replica (a remote pull may be slow)."""
RETRYABLE = (
    RayActorError,
    ReplicaUnavailableError,
    DeploymentUnavailableError,
    BackPressureError,
    TimeoutError,
)
_HOP_BY_HOP = {b"content-length", b"transfer-encoding"}
ADAPTERS_PATH = "/v1/adapters/"


class Unreachable(Exception):
    """A replica did not answer (it died, or the probe timed out)."""


class Ingress:
    """``uvicorn.run(Ingress(handle, table, replicas=2))``. ``handle`` is the replicas'
    deployment handle; ``table`` the routing table its router uses in this process."""

    def __init__(
        self,
        handle: DeploymentHandle,
        table: Residency,
        *,
        replicas: int,
        policy: str = "affinity",
        max_body_bytes: int = 2 * 2**20,
        on_shutdown: Callable[[], Any] | None = None,
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown routing policy {policy!r}; use one of {POLICIES}")
        self.handle = handle.options(method_name="handle")
        self.table = table
        self.replicas = replicas
        self.policy = policy
        self.max_body_bytes = max_body_bytes
        self.on_shutdown = on_shutdown
        self.metrics = IngressMetrics()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        response = await self._answer(scope, receive)
        if response is not None:
            await response(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                # uvicorn has answered every request it accepted by now
                if self.on_shutdown is not None:
                    await asyncio.to_thread(self.on_shutdown)
                await send({"type": "lifespan.shutdown.complete"})
                return

    # ------------------------------------------------------------------ dispatch

    async def _answer(self, scope: Scope, receive: Receive) -> Response | None:
        method, path = scope["method"], scope["path"]
        headers = Headers(scope=scope)
        target = headers.get(REPLICA_HEADER)
        if method == "GET" and not target and path in ("/healthz", "/readyz"):
            return await self._health(path)
        if method == "GET" and not target and path == "/metrics":
            return await self._metrics()
        body = await self._body(headers, receive)
        request = Forwarded(
            method=method,
            path=path,
            query=scope.get("query_string", b""),
            headers=tuple((bytes(k), bytes(v)) for k, v in scope["headers"]),
            body=body,
            client=tuple(scope["client"]) if scope.get("client") else None,
            scheme=scope.get("scheme", "http"),
        )
        if target:
            if target not in self.table.replicas:
                return error_response(
                    404,
                    f"no replica is named {target!r}; the replicas are "
                    f"{', '.join(self.table.replicas) or 'not known yet'} (GET /readyz)",
                    "not_found",
                )
            return await self._one(Route(replica=target), request, receive)
        if path.startswith(ADAPTERS_PATH) and (
            method == "DELETE" or (method == "POST" and path.endswith(LOAD_ACTION))
        ):
            return await self._admin(request)
        names = adapter_names(path, headers, body) if method == "POST" else ()
        return await self._one(Route(names, self.policy), request, receive)

    async def _body(self, headers: Headers, receive: Receive) -> bytes:
        """The body, read up to one byte past the limit: the replica's own body limit refuses
        an oversized one in the server's words (a declared length over it is not read)."""
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            return b""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            if size > self.max_body_bytes or not message.get("more_body", False):
                break
        return b"".join(chunks)

    # ------------------------------------------------------------------ one replica

    def _send(self, route: Route, request: Forwarded) -> Any:
        handle = self.handle
        if route.policy == "multiplex" and route.names and route.replica is None:
            handle = handle.options(multiplexed_model_id=route.model_id)
        return handle.remote(route, request)

    async def _one(self, route: Route, request: Forwarded, receive: Receive) -> Response | None:
        """The answer of the replica the router picks; None when the client left first."""
        pending = self._send(route, request)
        answer_task = asyncio.ensure_future(_result(pending))
        gone = asyncio.ensure_future(_disconnect(receive))
        try:
            await asyncio.wait({answer_task, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not answer_task.done():
            pending.cancel()  # Ray cancels the request on its replica
            answer_task.cancel()
            return None
        try:
            answer = answer_task.result()
        except RETRYABLE as exc:
            return self._unavailable(exc)
        except (RequestCancelledError, asyncio.CancelledError):
            return None
        return self._response(answer)

    def _response(self, answer: Answer, names: Sequence[str] | None = None) -> Response:
        self.table.observe(answer.replica, answer.names)
        self.metrics.requests.labels(answer.replica, str(answer.status)).inc()
        response = Response(answer.body, status_code=answer.status)
        raw = [(k, v) for k, v in answer.headers if k.lower() not in _HOP_BY_HOP]
        response.raw_headers = [*raw, *response.raw_headers]
        response.headers[REPLICA_HEADER] = ", ".join(names or [answer.replica])
        return response

    def _unavailable(self, exc: BaseException, replica: str = "") -> Response:
        self.metrics.unavailable.inc()
        log.warning("replica %s unavailable: %s", replica or "?", exc)
        where = f"replica {replica}" if replica else "the replica serving this request"
        return error_response(
            503,
            f"{where} went away before answering (it is being replaced); retry after "
            f"{RETRY_AFTER_S} s",
            "unavailable",
            {"Retry-After": str(RETRY_AFTER_S)},
        )

    # ------------------------------------------------------------------ every replica

    async def _replica_names(self) -> list[str]:
        """The replicas the router knows; before any request, one probe makes it look."""
        names = self.table.replicas
        if not names:
            try:
                await asyncio.wait_for(
                    _result(self._send(Route(), Forwarded("GET", "/healthz"))), PROBE_TIMEOUT_S
                )
            except (*RETRYABLE, asyncio.TimeoutError):
                pass
            names = self.table.replicas
        return names

    async def _each(self, request: Forwarded, timeout: float) -> dict[str, Answer | Unreachable]:
        """``request`` sent to every replica at once: each one's answer, or Unreachable."""
        names = await self._replica_names()

        async def ask(name: str) -> Answer | Unreachable:
            pending = self._send(Route(replica=name), request)
            try:
                answer = await asyncio.wait_for(_result(pending), timeout)
            except (*RETRYABLE, asyncio.TimeoutError) as exc:
                pending.cancel()
                return Unreachable(f"{type(exc).__name__}: {exc}")
            self.table.observe(answer.replica, answer.names)
            return answer

        answers = await asyncio.gather(*(ask(n) for n in names))
        return dict(zip(names, answers))

    async def _health(self, path: str) -> Response:
        answers = await self._each(Forwarded("GET", path), PROBE_TIMEOUT_S)
        states = {
            name: _status(a) if isinstance(a, Answer) else "unreachable"
            for name, a in answers.items()
        }
        if path == "/healthz":
            up = sum(s == "ok" for s in states.values())
            status, code = ("ok", 200) if up else ("unavailable", 503)
        else:
            up = sum(s == "ready" for s in states.values())
            if up >= self.replicas and up == len(states):
                status, code = "ready", 200
            else:
                status, code = ("degraded", 200) if up else ("starting", 503)
        response = JSONResponse({"status": status, "replicas": states}, status_code=code)
        response.headers[REPLICA_HEADER] = ", ".join(answers)
        return response

    async def _metrics(self) -> Response:
        answers = await self._each(Forwarded("GET", "/metrics"), PROBE_TIMEOUT_S)
        scrapes = {
            name: a.body.decode()
            for name, a in answers.items()
            if isinstance(a, Answer) and a.status == 200
        }
        self.metrics.replicas.set(len(self.table.replicas))
        for outcome in ("resident", "load"):
            self.metrics.routed.labels(outcome).set(self.table.routed[outcome])
        response = Response(self.metrics.render(scrapes), media_type="text/plain; version=0.0.4")
        response.headers[REPLICA_HEADER] = ", ".join(scrapes)
        return response

    async def _admin(self, request: Forwarded) -> Response:
        answers = await self._each(request, ADMIN_TIMEOUT_S)
        names = list(answers)
        if not names:
            return self._unavailable(Unreachable("no replica is running"))
        replied = [(n, a) for n, a in answers.items() if isinstance(a, Answer)]
        lost = [n for n, a in answers.items() if not isinstance(a, Answer)]
        ok = [a for _, a in replied if 200 <= a.status < 300]
        failed = [a for _, a in replied if not 200 <= a.status < 300]
        if request.method == "DELETE" and ok:
            chosen = ok[0]  # unloaded wherever it was resident
        elif failed and (request.method == "POST" or not lost):
            chosen = failed[0]
        elif lost:
            return self._unavailable(Unreachable(lost[0]), replica=lost[0])
        else:
            chosen = ok[0]
        return self._response(chosen, names)


async def _result(pending: Any) -> Answer:
    return await pending


async def _disconnect(receive: Receive) -> None:
    """Returns when the client disconnects (the body has been read by then)."""
    message: Message = {}
    while message.get("type") != "http.disconnect":
        message = await receive()


def _status(answer: Answer) -> str:
    try:
        return str(json.loads(answer.body)["status"])
    except (ValueError, KeyError, TypeError):
        return f"http {answer.status}"
