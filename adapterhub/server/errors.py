"""Every error the server answers, with its HTTP status, in one JSON shape.

``{"error": "what went wrong and what to do", "error_type": "not_found"}`` for every status:
the server's own refusals (:class:`ApiError`), the library's errors (:data:`HUB_ERRORS` maps
each :class:`~adapterhub.errors.AdapterHubError` subclass to a status), request validation,
FastAPI/Starlette's own 404/405 and anything unexpected (500). 429 carries ``Retry-After``.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

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
    code: {"model": ErrorResponse} for code in (401, 403, 404, 409, 413, 422, 429, 503)
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


def error_response(
    status: int, message: str, error_type: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body = ErrorResponse(error=message, error_type=error_type).model_dump()
    return JSONResponse(body, status_code=status, headers=dict(headers) if headers else None)


async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc.status, exc.message, exc.error_type, exc.headers)


async def _hub_error(request: Request, exc: AdapterHubError) -> JSONResponse:
    status, error_type = hub_status(exc)
    headers = None
    if status == 429:
        headers = {"Retry-After": str(request.app.state.batcher.retry_after())}
    return error_response(status, str(exc), error_type, headers)


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    parts = []
    for item in exc.errors():
        where = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
        parts.append(f"{where}: {item.get('msg')}" if where else str(item.get("msg")))
    return error_response(422, "; ".join(parts) or "invalid request", "validation")


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    """Starlette's own errors (an unknown route, a method the route lacks, a missing asset)."""
    status = exc.status_code
    message = str(exc.detail)
    if message == HTTPStatus(status).phrase:  # Starlette's bare default: say what to do instead
        where = f"{request.method} {request.url.path}"
        if status == 404:
            message = f"no route {where}; the API is listed at /docs"
        elif status == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            message = f"{where} is not allowed; this path answers {allowed or 'other methods'}"
    error_type = ERROR_TYPES.get(status) or HTTPStatus(status).phrase.lower().replace(" ", "_")
    return error_response(status, message, error_type, exc.headers)


async def _unexpected_error(_request: Request, exc: Exception) -> JSONResponse:
    # Starlette re-raises the exception after this answer, so the server logs its traceback.
    return error_response(
        500, f"internal error ({type(exc).__name__}); see the server's log", "internal"
    )


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` in the one JSON shape."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(AdapterHubError, _hub_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
