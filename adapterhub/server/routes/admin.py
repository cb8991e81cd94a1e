"""The adapter pool: ``GET /v1/adapters`` (``listing``) for any reader; loading and unloading
(``router``) need the admin token (``Authorization: Bearer TOKEN``, shown in OpenAPI as the
``adminToken`` scheme)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Security

from adapterhub.registry.resolver import Resolver
from adapterhub.server.deps import RuntimeDep, ViewerDep, require_admin
from adapterhub.server.errors import ERROR_RESPONSES, ApiError
from adapterhub.server.schemas import AdapterInfo, AdaptersResponse, UnloadResponse

router = APIRouter()
listing = APIRouter()  # a read route: create_app adds the read token's check when there is one
LOAD_ACTION = ":load"


@listing.get("/v1/adapters", response_model=AdaptersResponse, tags=["adapters"])
async def adapters(runtime: RuntimeDep, viewer: ViewerDep) -> AdaptersResponse:
    """Resident adapters (with their use), every adapter the registry offers, and the yanked
    versions it holds (never loaded); only those in the namespaces the request may see."""
    available = [a for a in await asyncio.to_thread(runtime.available) if viewer.sees(a)]
    yanked = await asyncio.to_thread(_yanked, runtime.registry)
    yanked = {a: why for a, why in yanked.items() if viewer.sees(a)}
    resident = [AdapterInfo(**r) for r in runtime.describe_residents() if viewer.sees(r["id"])]
    return AdaptersResponse(
        resident=resident, available=available, yanked=yanked, stats=runtime.stats()
    )


def _yanked(registry) -> dict[str, str]:
    """``{id: reason}`` of the yanked versions in the stores ``available`` lists."""
    listed = Resolver.default(registry).entries(local_only=True)
    return {e.manifest.id: e.manifest.yanked_reason for e in listed if e.manifest.yanked}


@router.post(
    "/v1/adapters/{adapter_id:path}",
    response_model=AdapterInfo,
    responses=ERROR_RESPONSES,
    tags=["admin"],
    dependencies=[Security(require_admin)],
)
async def load(adapter_id: str, runtime: RuntimeDep) -> AdapterInfo:
    """``POST /v1/adapters/{id}:load``: make an adapter resident now (admin)."""
    if not adapter_id.endswith(LOAD_ACTION):
        raise ApiError(404, "unknown action; use POST /v1/adapters/{id}:load", "not_found")
    resident = await asyncio.to_thread(runtime.load, adapter_id[: -len(LOAD_ACTION)])
    return AdapterInfo(**resident.describe())


@router.delete(
    "/v1/adapters/{adapter_id:path}",
    response_model=UnloadResponse,
    responses=ERROR_RESPONSES,
    tags=["admin"],
    dependencies=[Security(require_admin)],
)
async def unload(adapter_id: str, runtime: RuntimeDep) -> UnloadResponse:
    """Evict an adapter from the pool (admin); requests using it finish first."""
    if not runtime.unload(adapter_id):
        raise ApiError(404, f"{adapter_id} is not resident; see GET /v1/adapters", "not_found")
    return UnloadResponse(id=adapter_id, unloaded=True)
