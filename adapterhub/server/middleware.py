"""ASGI guards that run before any route: the request body limit and the path's characters.

:class:`BodyLimit` works on the stream, before any route parses a byte. A declared
``Content-Length`` over the limit is answered 413 at once, before the body is read. A body
without one (chunked transfer) is counted as its chunks arrive; at the first chunk past the
limit the route's read fails with 413 and nothing more is read, so memory holds at most the
limit. Either 413 closes the connection: the rest of the body is never read.

:class:`PathCharacters` refuses a path with a control character (``/predict/sentiment/de%0A``):
Starlette's route patterns end in ``$``, which matches before a final newline, so the route
would see the id without it and serve what was not asked for.
"""

from __future__ import annotations

import re

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapterhub.server.errors import error_response

CLOSE = {"Connection": "close"}
"""The client may still be sending the refused body; closing is the only way not to read it."""


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` at the first chunk past the limit. An HTTPException, so FastAPI's
    body parsing passes it on (any other error there becomes a 400) and the app's handler answers
    it in the one error shape."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            f"the request body is larger than {limit} bytes, the server's limit "
            "(--max-body-bytes); send fewer or shorter inputs per request",
            headers=CLOSE,
        )


class BodyLimit:
    """``app.add_middleware(BodyLimit, max_bytes=N)``: refuse request bodies over N bytes."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(
                scope,
                receive,
                send,
                f"the request body has {declared} bytes; the server's limit is {self.max_bytes} "
                "(--max-body-bytes); send fewer or shorter inputs per request",
            )
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge as exc:  # read outside a route (none answered it)
            if started:
                raise
            await self._refuse(scope, receive, send, exc.detail)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, message: str) -> None:
        response = error_response(413, message, "payload_too_large", CLOSE)
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length")
    return int(value) if value is not None and value.isdigit() else None


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class PathCharacters:
    """``app.add_middleware(PathCharacters)``: 422 for a request path (as decoded from its
    percent-escapes) that holds a control character."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = _CONTROL.search(scope.get("path", "")) if scope["type"] == "http" else None
        if found is None:
            await self.app(scope, receive, send)
            return
        response = error_response(
            422,
            f"the request path holds a control character (U+{ord(found.group()):04X}) at "
            f"position {found.start()}; no adapter id or route has one",
            "validation",
        )
        await response(scope, receive, send)
