"""What handlers receive through FastAPI dependencies: the app's shared state, auth, and what a
request may see.

``create_app`` puts the runtime, batcher, metrics and config on ``app.state``; a handler asks
for one by type, e.g. ``runtime: RuntimeDep``. Admin routes declare
``dependencies=[Security(require_admin)]``, which the OpenAPI document shows as a bearer scheme;
``create_app`` puts :func:`require_reader` on the read routes when the server has a read token.
A handler that lists or serves adapters asks for ``viewer: ViewerDep``: the namespaces it may
show (``--read-namespaces``; every one for the admin token).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from adapterhub.config import ServerConfig
from adapterhub.errors import UsageError
from adapterhub.registry.ids import AdapterId
from adapterhub.server.batching import Batcher
from adapterhub.server.errors import ApiError
from adapterhub.server.metrics import Metrics

if TYPE_CHECKING:  # the runtime imports torch; the hub's pages run without it
    from adapterhub.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def get_batcher(request: Request) -> Batcher:
    return request.app.state.batcher


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


def get_config(request: Request) -> ServerConfig:
    return request.app.state.config


RuntimeDep = Annotated["Runtime", Depends(get_runtime)]
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


read_bearer = HTTPBearer(
    auto_error=False,  # require_reader answers 401 in the server's own error shape
    scheme_name="readToken",
    description="the server's --read-token (or $ADAPTERHUB_READ_TOKEN); the admin token passes too",
)


def _same(token: str, expected: str | None) -> bool:
    return bool(expected) and hmac.compare_digest(token.encode(), expected.encode())


def require_reader(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(read_bearer)],
    config: ConfigDep,
) -> None:
    """401 unless the request bears the read token or the admin token (compared in constant
    time); nothing to check when the server has no read token."""
    if not config.read_token:
        return
    token = credentials.credentials if credentials else ""
    if not (_same(token, config.read_token) | _same(token, config.admin_token)):
        raise ApiError(
            401,
            "missing or wrong read token; send 'Authorization: Bearer TOKEN' with the server's "
            "--read-token",
            "unauthorized",
            {"WWW-Authenticate": "Bearer"},
        )


@dataclass(frozen=True)
class Viewer:
    """The namespaces a request may list and use; ``None``: every namespace."""

    namespaces: frozenset[str] | None = None

    def sees(self, adapter_id: str) -> bool:
        """Whether ``adapter_id`` (or a reference that names its namespace) is visible; a
        reference without a namespace is judged once it resolves."""
        if self.namespaces is None:
            return True
        try:
            namespace = AdapterId.parse(adapter_id).namespace
        except UsageError:
            return True  # not an id: the runtime refuses it with its own message
        return namespace is None or namespace in self.namespaces

    def refuse(self, name: str) -> ApiError:
        shown = ", ".join(sorted(self.namespaces or ()))
        return ApiError(
            404,
            f"{name} is in no namespace this server serves you ({shown}); see GET /v1/adapters",
            "not_found",
        )


def get_viewer(request: Request, config: ConfigDep) -> Viewer:
    """``--read-namespaces`` (every namespace when unset), or every namespace for a request
    that bears the admin token."""
    if config.visible_namespaces is None:
        return Viewer()
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and _same(token.strip(), config.admin_token):
        return Viewer()
    return Viewer(config.visible_namespaces)


ViewerDep = Annotated[Viewer, Depends(get_viewer)]
