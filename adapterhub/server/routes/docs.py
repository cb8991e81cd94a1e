"""The OpenAPI UI at ``/docs`` (Swagger UI) and ``/redoc``, from assets shipped in a Python package.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so they are blank offline. The
``fastapi-offline`` package ships both bundles (Swagger UI 5, which reads the OpenAPI 3.1 that
FastAPI writes); ``create_app`` mounts them at :data:`ASSETS_URL` and these pages name only
those local files.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/static/docs"
ASSETS_PACKAGE = ("fastapi_offline", "static")
"""(package, folder) that holds swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js."""

router = APIRouter(include_in_schema=False)


def assets() -> StaticFiles:
    """The static files app to mount at :data:`ASSETS_URL`."""
    return StaticFiles(packages=[ASSETS_PACKAGE])


def _urls(request: Request) -> tuple[str, str]:
    root = request.scope.get("root_path", "")
    return f"{root}{request.app.openapi_url}", f"{root}{ASSETS_URL}"


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    openapi, static = _urls(request)
    return get_swagger_ui_html(
        openapi_url=openapi,
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=f"{static}/swagger-ui-bundle.js",
        swagger_css_url=f"{static}/swagger-ui.css",
        swagger_favicon_url=f"{static}/favicon.png",
        oauth2_redirect_url=None,  # the admin scheme is a bearer token, not an OAuth2 flow
    )


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    openapi, static = _urls(request)
    return get_redoc_html(
        openapi_url=openapi,
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{static}/redoc.standalone.js",
        redoc_favicon_url=f"{static}/favicon.png",
        with_google_fonts=False,
    )
