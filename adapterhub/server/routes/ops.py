"""Operations: liveness, readiness and the Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from adapterhub.server.deps import BatcherDep, MetricsDep, RuntimeDep
from adapterhub.server.schemas import Health

router = APIRouter(tags=["ops"])


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


@router.get("/metrics", response_class=Response)
async def prometheus(runtime: RuntimeDep, metrics: MetricsDep) -> Response:
    """Prometheus text: queue time, batch size, inference time, loads, evictions, requests."""
    return Response(metrics.render(runtime), media_type="text/plain; version=0.0.4")
