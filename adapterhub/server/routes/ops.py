"""Operations: liveness and readiness (``router``, always open: probes carry no token) and the
Prometheus metrics (``scrape``, a read route)."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from adapterhub.server.deps import BatcherDep, MetricsDep, RuntimeDep, Viewer, ViewerDep
from adapterhub.server.schemas import Health

router = APIRouter(tags=["ops"])
scrape = APIRouter(tags=["ops"])

_ADAPTER_LABEL = re.compile(rb'adapter="((?:[^"\\]|\\.)*)"')


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process answers."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
async def readyz(request: Request, batcher: BatcherDep) -> Health | JSONResponse:
    """Ready once the app has started and its batcher runs; 503 ``starting`` before."""
    if request.app.state.ready and batcher.alive:
        return Health(status="ready")
    return JSONResponse({"status": "starting"}, status_code=503)


@scrape.get("/metrics", response_class=Response)
async def prometheus(runtime: RuntimeDep, metrics: MetricsDep, viewer: ViewerDep) -> Response:
    """Prometheus text: queue time, batch size, inference time, loads, evictions, requests (per
    adapter: only those in the namespaces the request may see)."""
    text = visible_samples(metrics.render(runtime), viewer)
    return Response(text, media_type="text/plain; version=0.0.4")


def visible_samples(text: bytes, viewer: Viewer) -> bytes:
    """The exposition without the samples labelled with an adapter ``viewer`` does not see."""
    if viewer.namespaces is None:
        return text
    kept = []
    for line in text.splitlines(keepends=True):
        label = _ADAPTER_LABEL.search(line)
        if label is None or viewer.sees(label.group(1).decode("utf-8", "replace")):
            kept.append(line)
    return b"".join(kept)
