"""The app of ``adapterhub hub``: the web pages over a registry, with no backbone and no runtime.

Only the web routers (pages, assets) are mounted: there is nothing to predict with, so the
playground and the live view say so, and the prediction routes do not exist here. Errors keep the
server's one shape.
"""

from __future__ import annotations

from fastapi import FastAPI

from adapterhub.registry.resolver import Resolver
from adapterhub.server import errors
from adapterhub.server.routes import web
from adapterhub.server.web.catalog import Catalog


def create_hub_app(resolver: Resolver) -> FastAPI:
    """Browse the stores of ``resolver`` (e.g. ``Resolver.default()`` or
    ``Resolver.only("project")``)."""
    app = FastAPI(
        title="adapterhub hub",
        summary="Browse an adapter registry (no backbone loaded).",
        version="1",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # the hub has no API of its own beyond the pages
    )
    app.state.catalog = Catalog(resolver)
    errors.install(app)
    app.include_router(web.router)
    app.include_router(web.assets)
    return app
