"""The template environment and the static assets of the hub's pages, both from this package.

Templates are autoescaped (everything a page shows from a manifest is user content) and compiled
once. Static files are read once at import and served under versioned URLs
(``/static/web/hub.css?v=<sha256 prefix>``), so a browser caches them until they change. Pages
carry a Content-Security-Policy that allows only this server's own scripts, styles and
connections: no inline script, no CDN, nothing from the network.
"""

from __future__ import annotations

import hashlib
import importlib.resources
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import jinja2

from adapterhub.server.web.charts import bar_chart, shade

STATIC_URL = "/static/web"
_PACKAGE = "adapterhub.server.web"
_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    version: str


def _assets() -> dict[str, Asset]:
    folder = importlib.resources.files(_PACKAGE) / "static"
    found = {}
    for item in folder.iterdir():
        suffix = "." + item.name.rpartition(".")[2]
        if item.is_file() and suffix in _TYPES:
            body = item.read_bytes()
            found[item.name] = Asset(body, _TYPES[suffix], hashlib.sha256(body).hexdigest()[:12])
    return found


ASSETS = _assets()


def static_url(name: str) -> str:
    """The versioned URL of a packaged asset (a KeyError names a file that is not shipped)."""
    return f"{STATIC_URL}/{name}?v={ASSETS[name].version}"


def adapter_url(adapter_id: str) -> str:
    return "/adapters/" + quote(adapter_id, safe="/@:")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader(_PACKAGE, "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(static_url=static_url, adapter_url=adapter_url, bar_chart=bar_chart)
    env.filters["shade"] = shade
    env.filters["size"] = human_bytes
    return env


def human_bytes(count: int | float | None) -> str:
    """``2.5 MiB``; None (an unset budget) is "no limit"."""
    if count is None:
        return "no limit"
    value, unit = float(count), 0
    while value >= 1024 and unit < 3:
        value, unit = value / 1024, unit + 1
    return f"{value:.0f} B" if unit == 0 else f"{value:.1f} {('KiB', 'MiB', 'GiB')[unit - 1]}"


ENVIRONMENT = _environment()


def render(template: str, **context: Any) -> str:
    return ENVIRONMENT.get_template(template).render(**context)
