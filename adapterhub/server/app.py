"""The app factory: shared state on ``app.state``, the error handlers, the routers.

Routes live in :mod:`adapterhub.server.routes` (one router per concern) and reach the runtime,
batcher, metrics and config through :mod:`adapterhub.server.deps`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI, Security

from adapterhub.config import ServerConfig
from adapterhub.runtime import Runtime
from adapterhub.server import errors
from adapterhub.server.batching import Batcher
from adapterhub.server.deps import require_reader
from adapterhub.server.metrics import Metrics, count_requests
from adapterhub.server.middleware import BodyLimit, PathCharacters
from adapterhub.server.routes import admin, docs, embed, ops, predict, tei, web


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The batcher's worker runs while the app does; readiness follows it."""
    batcher: Batcher = app.state.batcher
    batcher.start()
    app.state.ready = True
    try:
        yield
    finally:
        app.state.ready = False
        await asyncio.to_thread(batcher.stop)


def create_app(runtime: Runtime, config: ServerConfig | None = None) -> FastAPI:
    """The FastAPI app over ``runtime``; its batcher starts and stops with the app."""
    config = config or ServerConfig()
    metrics = Metrics()
    metrics.watch(runtime)
    app = FastAPI(
        title="adapterhub",
        summary="One frozen multilingual backbone, thousands of hot-swapped adapters.",
        version="1",
        lifespan=_lifespan,
        docs_url=None,  # routes/docs.py serves /docs and /redoc from packaged assets
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.state.batcher = Batcher(runtime, config, metrics=metrics)
    app.state.metrics = metrics
    app.state.config = config
    app.state.ready = False
    errors.install(app, runtime.registry)
    # the body limit sits inside the request count, so refused bodies are counted too
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)
    app.add_middleware(PathCharacters)
    app.middleware("http")(count_requests)
    app.mount(docs.ASSETS_URL, docs.assets(), name="docs-assets")
    # One router per concern; a new one (a web page at GET /, say) is a module in routes/ and
    # one line here.
    # the read routes need --read-token when the server has one (then OpenAPI shows it)
    readers = [Security(require_reader)] if config.read_token else []
    app.include_router(predict.router, dependencies=readers)
    app.include_router(tei.router, dependencies=readers)
    app.include_router(embed.router, dependencies=readers)
    app.include_router(admin.listing, dependencies=readers)
    app.include_router(admin.router)
    app.include_router(ops.scrape, dependencies=readers)
    app.include_router(ops.router)
    app.include_router(docs.router)
    app.include_router(web.router, dependencies=readers)  # the pages show the registry
    app.include_router(web.assets)
    return app
