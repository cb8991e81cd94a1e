"""What handlers receive through FastAPI dependencies: the app's shared state and admin auth.

``create_app`` puts the runtime, batcher, metrics and config on ``app.state``; a handler asks
for one by type, e.g. ``runtime: RuntimeDep``. Admin routes declare
``dependencies=[Security(require_admin)]``, which the OpenAPI document shows as a bearer scheme.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from adapterhub.config import ServerConfig
from adapterhub.runtime import Runtime
from adapterhub.server.batching import Batcher
from adapterhub.server.errors import ApiError
from adapterhub.server.metrics import Metrics


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def get_batcher(request: Request) -> Batcher:
    return request.app.state.batcher


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


def get_config(request: Request) -> ServerConfig:
    return request.app.state.config


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
BatcherDep = Annotated[Batcher, Depends(get_batcher)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
ConfigDep = Annotated[ServerConfig, Depends(get_config)]

admin_bearer = HTTPBearer(
    auto_error=False,  # require_admin answers 403/401 in the server's own error shape
    scheme_name="adminToken",
    description="the server's --admin-token (or $ADAPTERHUB_ADMIN_TOKEN)",
)


def require_admin(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(admin_bearer)],
    config: ConfigDep,
) -> None:
    """403 when the server has no admin token; 401 unless the request bears exactly that token
    (compared in constant time)."""
    if not config.admin_token:
        raise ApiError(
            403,
            "admin routes are disabled; start the server with --admin-token (or "
            "ADAPTERHUB_ADMIN_TOKEN) to enable them",
            "forbidden",
        )
    token = credentials.credentials if credentials else ""
    if not hmac.compare_digest(token.encode(), config.admin_token.encode()):
        raise ApiError(
            401,
            "missing or wrong admin token; send 'Authorization: Bearer TOKEN'",
            "unauthorized",
            {"WWW-Authenticate": "Bearer"},
        )
