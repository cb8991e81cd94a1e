"""An HTTP request as the ingress hands it to a replica, and the replica running it through the
server's own ASGI app (:func:`adapterhub.server.create_app`), in memory: no second copy of any
route, limit or error.

A replica's answer travels back with the replica's name and the names it holds adapters under
(what the ingress's routing table learns from)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message

Headers = tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True)
class Forwarded:
    """One buffered HTTP request."""

    method: str
    path: str
    query: bytes = b""
    headers: Headers = ()
    body: bytes = b""
    client: tuple[str, int] | None = None
    scheme: str = "http"


@dataclass(frozen=True)
class Answer:
    """One buffered HTTP response, from ``replica``, which then held adapters under ``names``."""

    status: int
    headers: Headers
    body: bytes
    replica: str = ""
    names: tuple[str, ...] = field(default=(), repr=False)


async def call_app(app: ASGIApp, request: Forwarded, state: dict[str, Any]) -> Answer:
    """Run ``request`` through ``app``. The body is sent whole; after it, ``receive`` waits
    until the response is complete and then reports a disconnect, as a server does. Cancelling
    the caller cancels the app (a queued request leaves the batching queue)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": request.scheme,
        "path": request.path,
        "raw_path": request.path.encode(),
        "root_path": "",
        "query_string": request.query,
        "headers": [list(pair) for pair in request.headers],
        "client": request.client,
        "server": ("adapterhub-replica", 0),
        "state": dict(state),  # each request a shallow copy of the lifespan state, as uvicorn
    }
    sent_body = False
    finished = asyncio.Event()
    start: Message = {}
    chunks: list[bytes] = []

    async def receive() -> Message:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": request.body, "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                finished.set()

    try:
        await app(scope, receive, send)
    except Exception:
        # Starlette answers 500 before it re-raises; anything else never answered at all
        if not start:
            raise
    finally:
        finished.set()
    headers = tuple((bytes(k), bytes(v)) for k, v in start.get("headers", ()))
    return Answer(start["status"], headers, b"".join(chunks))


@contextlib.asynccontextmanager
async def lifespan(app: ASGIApp) -> AsyncIterator[dict[str, Any]]:
    """Run the app's ASGI lifespan (startup now, shutdown on exit), as a server would; yields
    the lifespan state every request's scope gets a copy of."""
    state: dict[str, Any] = {}
    messages: asyncio.Queue[Message] = asyncio.Queue()
    replies: asyncio.Queue[Message] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": state}
    task = asyncio.ensure_future(app(scope, messages.get, replies.put))
    await messages.put({"type": "lifespan.startup"})
    reply = await replies.get()
    if reply["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"the app did not start: {reply.get('message', reply['type'])}")
    try:
        yield state
    finally:
        await messages.put({"type": "lifespan.shutdown"})
        await replies.get()
        await task
