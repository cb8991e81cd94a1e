"""The hub's web pages and the live view's JSON.

``GET /`` (the registry browser), ``GET /adapters/{id}`` (an adapter's page), ``GET
/playground``, ``GET /live`` and their assets under ``/static/web``; ``GET /v1/stats`` is the
JSON the live view refreshes from. They work with a runtime (``adapterhub serve``) and without
one (``adapterhub hub``, whose app puts a :class:`Catalog` on ``app.state.catalog``): then the
playground and the live view say that no backbone is loaded, and ``/v1/stats`` answers 503.

With ``--read-token`` the pages and ``/v1/stats`` need it like the read API (``Authorization:
Bearer TOKEN``; without it, the one error shape's 401): a browser gets it from a reverse proxy
or a header extension that adds it to every request, the playground's own calls included.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from adapterhub.config import ServerConfig
from adapterhub.errors import ConflictError, NotFoundError, UsageError
from adapterhub.registry.resolver import Resolver
from adapterhub.server.deps import get_viewer
from adapterhub.server.errors import ERROR_RESPONSES, ApiError
from adapterhub.server.web import live
from adapterhub.server.web.card import read_card
from adapterhub.server.web.catalog import EXAMPLES, FACETS, Catalog, Filters
from adapterhub.server.web.pages import ASSETS, SECURITY_HEADERS, STATIC_URL, render

if TYPE_CHECKING:  # the runtime imports torch; the hub's pages run without it
    from adapterhub.runtime import Runtime

router = APIRouter()
"""The pages and ``/v1/stats``: read routes (``create_app`` puts the read token on them)."""
assets = APIRouter()
"""The packaged assets: code and styles, no registry data, so open whatever the token."""

FACET_LABELS = {
    "task": "Task",
    "lang": "Language",
    "method": "Method",
    "backbone": "Backbone",
    "namespace": "Namespace",
    "kind": "Kind",
}
PLAYGROUND_TEXTS = (
    EXAMPLES["de"],
    "Der Film war langweilig und viel zu lang.",
    EXAMPLES["ja"],
    "この映画は退屈で、時間の無駄だった。",
)
"""What the playground starts with: German and Japanese, positive then negative."""


def get_runtime(request: Request) -> Runtime | None:
    """The runtime, or None in hub mode."""
    return getattr(request.app.state, "runtime", None)


def get_catalog(request: Request) -> Catalog:
    """The hub's catalog; under ``serve``, one over the runtime's registry, made on first use
    and kept on the app (its resolver caches manifests) with the stores the runtime's loads
    resolve through; under ``--read-namespaces``, only the namespaces the request may read
    (every one for the admin token), as ``GET /v1/adapters`` lists them."""
    state = request.app.state
    catalog = getattr(state, "catalog", None)
    if catalog is None:
        catalog = state.catalog = Catalog(Resolver.default(state.runtime.registry))
    config = getattr(state, "config", None)  # the hub has none: it shows every namespace
    if config is not None:
        viewer = get_viewer(request, config)
        if viewer.namespaces is not None:
            return catalog.seen_by(viewer.sees)
    return catalog


MaybeRuntime = Annotated["Runtime | None", Depends(get_runtime)]
CatalogDep = Annotated[Catalog, Depends(get_catalog)]


def _server_url(request: Request, runtime: Runtime | None) -> str:
    """Where the commands on a page send requests: this server, or ``serve``'s default address
    when this is the hub (which serves no predictions)."""
    if runtime is not None:
        return str(request.base_url).rstrip("/")
    return f"http://{ServerConfig.host}:{ServerConfig.port}"


def _wants_read_token(request: Request) -> bool:
    config = getattr(request.app.state, "config", None)  # the hub has none
    return bool(config is not None and config.read_token)


def _page(
    template: str, runtime: Runtime | None, *, status: int = 200, **context: object
) -> HTMLResponse:
    html = render(
        template,
        hub_mode=runtime is None,
        backbone=runtime.backbone.name if runtime is not None else None,
        **context,
    )
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def browse(
    filters: Annotated[Filters, Query()], catalog: CatalogDep, runtime: MaybeRuntime
) -> HTMLResponse:
    """The registry browser: every entry of every store, filtered and sorted."""
    return _page(
        "browse.html",
        runtime,
        page="browse",
        title="Registry",
        filters=filters,
        listing=catalog.browse(filters),
        facets=[(name, FACET_LABELS[name]) for name in FACETS],
    )


@router.get("/adapters/{adapter_id:path}", response_class=HTMLResponse, include_in_schema=False)
def adapter_page(
    adapter_id: str, request: Request, catalog: CatalogDep, runtime: MaybeRuntime
) -> HTMLResponse:
    """An adapter's page: card, metrics, matrix, recipe, files, versions and commands."""
    try:
        view = catalog.entry(adapter_id)
    except (NotFoundError, UsageError, ConflictError) as exc:
        status = 409 if isinstance(exc, ConflictError) else 404
        # the JSON errors' path scrubber (errors.install): no page names a folder of this machine
        scrub = getattr(request.app.state, "scrub_paths", None)
        message = scrub(str(exc)) if scrub else str(exc)
        title = "Two stores disagree" if status == 409 else "Not found"
        return _page("error.html", runtime, status=status, page="", title=title, message=message)
    card, card_note = read_card(view.resolution)
    return _page(
        "adapter.html",
        runtime,
        page="",
        title=view.manifest.id,
        view=view,
        card=card,
        card_note=card_note,
        commands=view.commands(_server_url(request, runtime), _wants_read_token(request)),
    )


@router.get("/playground", response_class=HTMLResponse, include_in_schema=False)
def playground(
    request: Request, catalog: CatalogDep, runtime: MaybeRuntime, adapter: str = ""
) -> HTMLResponse:
    """Try one adapter, a [language, task] stack or several adapters on texts."""
    if runtime is None:
        return _page("playground.html", runtime, page="playground", title="Playground")
    everything = catalog.servable()
    rows = [
        r for r in everything if r.manifest.backbone.fingerprint == runtime.backbone.fingerprint
    ]
    adapters = [
        {
            "id": r.id,
            "base": r.base,
            "kind": r.manifest.kind,
            "task_type": r.manifest.task_type,
            "labels": r.manifest.labels,
            "has_head": r.has_head,
        }
        for r in rows
    ]
    with_head = [a for a in adapters if a["has_head"]]
    chosen = adapter or next(
        (a["id"] for a in with_head if a["base"].startswith("sentiment/de@")),
        with_head[0]["id"] if with_head else "",
    )
    return _page(
        "playground.html",
        runtime,
        page="playground",
        title="Playground",
        adapters=adapters,
        languages=[a for a in adapters if a["kind"] == "language"],
        chosen=chosen,
        texts="\n".join(PLAYGROUND_TEXTS),
        others=len(everything) - len(rows),
        read_token=_wants_read_token(request),
    )


def _stats(request: Request, runtime: Runtime | None) -> live.Stats:
    if runtime is None:
        raise ApiError(
            503,
            "adapterhub hub browses a registry without a backbone, so it has no runtime to "
            "report on; start `adapterhub serve` for these numbers",
            "unavailable",
        )
    state = request.app.state
    return live.snapshot(runtime, state.metrics, state.config.max_queue)


@router.get("/live", response_class=HTMLResponse, include_in_schema=False)
def live_view(request: Request, runtime: MaybeRuntime) -> HTMLResponse:
    """Resident adapters, bank memory, the queue, batch sizes, loads and evictions (refreshed
    every 2 s from ``/v1/stats``)."""
    stats = _stats(request, runtime) if runtime is not None else None
    return _page("live.html", runtime, page="live", title="Live", stats=stats)


@router.get(
    "/v1/stats",
    response_model=live.Stats,
    responses={503: ERROR_RESPONSES[503]},
    tags=["ops"],
)
def stats(request: Request, runtime: MaybeRuntime) -> live.Stats:
    """The live view's numbers: the pool, the queue, batch sizes, loads and evictions (the
    counters and histograms ``/metrics`` exports, as JSON)."""
    return _stats(request, runtime)


@assets.get(STATIC_URL + "/{name}", include_in_schema=False)
def asset(name: str) -> Response:
    """A packaged asset; a versioned URL never changes, so it is cached for a day."""
    found = ASSETS.get(name)
    if found is None:
        raise ApiError(404, f"no asset {name}; the pages name every asset they use", "not_found")
    headers = {"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"}
    return Response(found.body, media_type=found.media_type, headers=headers)
