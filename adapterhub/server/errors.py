"""Every error the server answers, with its HTTP status, in one JSON shape.

``{"error": "what went wrong and what to do", "error_type": "not_found"}`` for every status:
the server's own refusals (:class:`ApiError`), the library's errors (:data:`HUB_ERRORS` maps
each :class:`~adapterhub.errors.AdapterHubError` subclass to a status), request validation,
FastAPI/Starlette's own 404/405 and anything unexpected (500). 429 carries ``Retry-After``.

No answer names a server path: :class:`PathScrubber` makes paths under the registry and
``$ADAPTERHUB_HOME`` relative and cuts other absolute paths of this machine to their file name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from adapterhub import settings
from adapterhub.errors import (
    AdapterHubError,
    BackboneMismatchError,
    ConflictError,
    InputTooLongError,
    IntegrityError,
    NotFoundError,
    OverloadError,
    UsageError,
    YankedError,
)
from adapterhub.server.schemas import ErrorResponse

HUB_ERRORS: tuple[tuple[type[AdapterHubError], int, str], ...] = (
    (NotFoundError, 404, "not_found"),
    (YankedError, 410, "yanked"),  # withdrawn by its publisher: never served
    (BackboneMismatchError, 409, "backbone_mismatch"),  # before IntegrityError: it is one
    (ConflictError, 409, "conflict"),
    (OverloadError, 429, "overloaded"),
    (InputTooLongError, 413, "payload_too_large"),  # before UsageError: it is one
    (UsageError, 422, "validation"),
    (IntegrityError, 422, "integrity"),
)
"""(error class, HTTP status, error_type); the first class the error is an instance of wins.
Any other AdapterHubError is 503 ``unavailable``."""

ERROR_TYPES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "validation",
    429: "overloaded",
    500: "internal",
    503: "unavailable",
}
"""The error_type of a bare HTTP status (Starlette's own errors carry only a status)."""

ERROR_RESPONSES = {
    code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 409, 413, 422, 429, 503)
}
"""What the OpenAPI document lists for the routes that can refuse a request."""


class ApiError(Exception):
    """A refusal the server decides itself (a limit, a missing head, auth), with its status."""

    def __init__(
        self,
        status: int,
        message: str,
        error_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.headers = dict(headers) if headers else None


def hub_status(exc: AdapterHubError) -> tuple[int, str]:
    """The HTTP status and error_type of a library error."""
    for kind, status, error_type in HUB_ERRORS:
        if isinstance(exc, kind):
            return status, error_type
    return 503, "unavailable"


_ABSOLUTE_PATH = re.compile(r"(?<![\w.~/:@-])/[^\s'\"`,;:()\[\]{}<>]+")
"""A POSIX path that starts a word: not a URL's path (after its host) nor a relative path."""


class PathScrubber:
    """Takes server paths out of a message: under a ``roots`` folder a path becomes relative to
    it (a registry file reads ``team/sentiment/de/1.0.0/adapter_model.safetensors``); any other
    absolute path that starts at a top-level folder of this machine is cut to its name. The
    server's own routes (``/v1/adapters``) are no folders and stay."""

    def __init__(self, roots: Iterable[tuple[str | Path, str]]) -> None:
        found: dict[str, str] = {}
        for root, prefix in roots:
            for variant in (Path(root).absolute(), Path(root).resolve()):  # /tmp -> /private/tmp
                if len(variant.parts) > 1:
                    found.setdefault(str(variant), prefix)
        self.roots = sorted(found.items(), key=lambda item: len(item[0]), reverse=True)
        try:
            self.top = {e.name for e in os.scandir("/") if e.is_dir()}
        except OSError:
            self.top = set()

    def __call__(self, text: str, routes: Iterable[str] = ()) -> str:
        keep = {route.split("/")[1] for route in routes if route.startswith("/")}

        def scrub(match: re.Match[str]) -> str:
            path = match.group(0)
            for root, prefix in self.roots:
                if path == root or path.startswith(root + "/"):
                    return prefix + (path[len(root) + 1 :] or ".")
            head = path.split("/")[1]
            return path.rsplit("/", 1)[-1] if head in self.top and head not in keep else path

        return _ABSOLUTE_PATH.sub(scrub, text)


def server_paths(registry: object) -> PathScrubber:
    """The scrubber of a server over ``registry`` (a folder, a URL or None: the local one)."""
    roots: list[tuple[str | Path, str]] = [
        (settings.home(), "$ADAPTERHUB_HOME/"),
        (Path.home(), "~/"),
    ]
    if registry is None:
        roots.append((settings.registry_dir(), ""))
    elif "://" not in str(registry):
        roots.append((str(registry), ""))
    return PathScrubber(roots)


def error_response(
    status: int, message: str, error_type: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    # a lone surrogate (from the request's text) cannot be written as UTF-8: escape it
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    body = ErrorResponse(error=message, error_type=error_type).model_dump()
    return JSONResponse(body, status_code=status, headers=dict(headers) if headers else None)


def _answer(
    request: Request,
    status: int,
    message: str,
    error_type: str,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The error response of ``request`` with the server's paths taken out of ``message``."""
    scrub: PathScrubber | None = getattr(request.app.state, "scrub_paths", None)
    if scrub is not None:
        message = scrub(message, (getattr(r, "path", "") for r in request.app.routes))
    return error_response(status, message, error_type, headers)


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return _answer(request, exc.status, exc.message, exc.error_type, exc.headers)


async def _hub_error(request: Request, exc: AdapterHubError) -> JSONResponse:
    status, error_type = hub_status(exc)
    headers = None
    if status == 429:
        headers = {"Retry-After": str(request.app.state.batcher.retry_after())}
    return _answer(request, status, str(exc), error_type, headers)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    parts = []
    for item in exc.errors():
        where = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
        parts.append(f"{where}: {item.get('msg')}" if where else str(item.get("msg")))
    return _answer(request, 422, "; ".join(parts) or "invalid request", "validation")


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    """Starlette's own errors (an unknown route, a method the route lacks, a missing asset)."""
    status = exc.status_code
    message = str(exc.detail)
    cause = exc.__cause__
    if status == 400 and isinstance(cause, UnicodeDecodeError):  # FastAPI's "error parsing"
        byte = cause.object[cause.start : cause.start + 1].hex()
        return _answer(
            request,
            422,
            f"the request body is not {cause.encoding.upper()} text: byte 0x{byte} at offset "
            f"{cause.start} cannot be decoded ({cause.reason}); send JSON encoded as UTF-8",
            "validation",
        )
    if message == HTTPStatus(status).phrase:  # Starlette's bare default: say what to do instead
        where = f"{request.method} {request.url.path}"
        if status == 404:
            message = f"no route {where}; the API is listed at /docs"
        elif status == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            message = f"{where} is not allowed; this path answers {allowed or 'other methods'}"
    error_type = ERROR_TYPES.get(status) or HTTPStatus(status).phrase.lower().replace(" ", "_")
    return _answer(request, status, message, error_type, exc.headers)


async def _unexpected_error(_request: Request, exc: Exception) -> JSONResponse:
    # Starlette re-raises the exception after this answer, so the server logs its traceback.
    return error_response(
        500, f"internal error ({type(exc).__name__}); see the server's log", "internal"
    )


def install(app: FastAPI, registry: object = None) -> None:
    """Answer every error of ``app`` in the one JSON shape, without the paths of ``registry``
    or of this machine."""
    app.state.scrub_paths = server_paths(registry)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(AdapterHubError, _hub_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
