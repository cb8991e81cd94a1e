"""The server's HTTP contract beyond predictions: the OpenAPI security scheme, one error shape for
every status, offline docs, and TEI's ``truncate``. Real server on a loopback port."""

from __future__ import annotations

import re

import httpx
import pytest

from adapterhub.config import ServerConfig
from adapterhub.runtime import Runtime
from adapterhub.server import ServerThread, create_app

TOKEN = "api-token"
ADAPTER = "sentiment/de@team:1.0.0"  # published without a preprocessing record or prefix
MAX_LENGTH = 16


@pytest.fixture(scope="module")
def server(tiny_backbone, zoo):
    runtime = Runtime(tiny_backbone, registry=zoo.registry, max_length=MAX_LENGTH)
    app = create_app(runtime, ServerConfig(admin_token=TOKEN))

    @app.get("/test-only/broken")
    async def broken() -> None:
        raise RuntimeError("a bug")

    with ServerThread(app) as running:
        running.runtime = runtime
        yield running


def _error(response: httpx.Response, status: int, error_type: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "error_type"} and body["error_type"] == error_type
    return body["error"]


# ----------------------------------------------------------------------------- OpenAPI


def test_openapi_shows_the_bearer_scheme_on_admin_routes_only(server):
    spec = httpx.get(f"{server.url}/openapi.json").json()
    scheme = spec["components"]["securitySchemes"]["adminToken"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    assert "--admin-token" in scheme["description"]
    adapter = spec["paths"]["/v1/adapters/{adapter_id}"]
    assert adapter["post"]["security"] == [{"adminToken": []}]
    assert adapter["delete"]["security"] == [{"adminToken": []}]
    for path, method in [("/v1/adapters", "get"), ("/v1/predict", "post"), ("/embed", "post")]:
        assert "security" not in spec["paths"][path][method]
    # the admin routes still answer as before
    url = f"{server.url}/v1/adapters/topic/x3@bulk:1.0.0"
    assert httpx.post(url + ":load", headers={"Authorization": "Basic " + TOKEN}).status_code == 401
    loaded = httpx.post(url + ":load", headers={"Authorization": f"Bearer {TOKEN}"})
    assert loaded.status_code == 200, loaded.text
    unknown = httpx.post(url + ":reload", headers={"Authorization": f"Bearer {TOKEN}"})
    assert "use POST /v1/adapters/{id}:load" in _error(unknown, 404, "not_found")
    assert httpx.delete(url, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


# ----------------------------------------------------------------------------- errors


def test_unknown_route_and_wrong_method_answer_in_the_error_shape(server):
    assert "/docs" in _error(httpx.get(f"{server.url}/v2/nothing"), 404, "not_found")
    wrong = httpx.post(f"{server.url}/healthz")
    assert "GET" in _error(wrong, 405, "method_not_allowed")
    assert wrong.headers["allow"] == "GET"
    _error(httpx.get(f"{server.url}/v1/predict"), 405, "method_not_allowed")
    _error(httpx.get(f"{server.url}/static/docs/nothing.js"), 404, "not_found")


def test_malformed_bodies_and_unexpected_errors_answer_in_the_error_shape(server):
    malformed = httpx.post(
        f"{server.url}/v1/predict",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert "json" in _error(malformed, 422, "validation").lower()
    tei = httpx.post(f"{server.url}/predict/{ADAPTER}", json={"inputs": []})
    assert "empty" in _error(tei, 422, "validation")
    assert "RuntimeError" in _error(httpx.get(f"{server.url}/test-only/broken"), 500, "internal")


# ----------------------------------------------------------------------------- offline docs

LOCAL_URL = re.compile(r"""(?:src|href|spec-url)="([^"]+)"|url: '([^']+)'""")


@pytest.mark.parametrize(
    ("page", "assets"),
    [
        ("/docs", {"swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"}),
        ("/redoc", {"redoc.standalone.js", "favicon.png"}),
    ],
)
def test_docs_pages_load_only_local_assets(server, page, assets):
    html = httpx.get(f"{server.url}{page}")
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert "http://" not in html.text and "https://" not in html.text and "//cdn" not in html.text
    urls = {a or b for a, b in LOCAL_URL.findall(html.text)}
    assert "/openapi.json" in urls
    assert {u.rsplit("/", 1)[1] for u in urls if u.startswith("/static/docs/")} == assets
    for url in urls:
        assert url.startswith("/"), url
        asset = httpx.get(f"{server.url}{url}")
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000, url
        if url.endswith(".js"):
            assert "javascript" in asset.headers["content-type"]
        elif url.endswith(".css"):
            assert asset.headers["content-type"].startswith("text/css")


# ----------------------------------------------------------------------------- TEI truncate


def _words(tokens: int) -> str:
    """A text the tiny tokenizer reads as exactly ``tokens`` ids (one per word, plus two)."""
    return " ".join(["film"] * (tokens - 2))


def test_tei_truncate_false_refuses_what_would_be_cut(server):
    with server.runtime.acquire([ADAPTER]) as lease:
        assert lease.head_owner.preprocessing.max_length == MAX_LENGTH
    fits, too_long = _words(MAX_LENGTH), _words(MAX_LENGTH + 1)
    url = f"{server.url}/predict/{ADAPTER}"
    refused = httpx.post(url, json={"inputs": ["gut", too_long], "truncate": False})
    message = _error(refused, 413, "payload_too_large")
    assert f"input 1 has more than {MAX_LENGTH} tokens" in message and "truncate" in message
    assert httpx.post(url, json={"inputs": fits, "truncate": False}).status_code == 200
    cut = httpx.post(url, json={"inputs": too_long, "truncate": True})
    unset = httpx.post(url, json={"inputs": too_long})
    assert cut.status_code == unset.status_code == 200
    assert cut.json() == unset.json()
    want = server.runtime.predict([ADAPTER], [too_long])[0]
    assert {s["label"]: s["score"] for s in cut.json()} == pytest.approx(want["scores"], abs=1e-6)


def test_embed_truncate_false_refuses_what_would_be_cut(server):
    url = f"{server.url}/embed"
    too_long = _words(server.runtime.max_length + 1)
    refused = httpx.post(url, json={"inputs": too_long, "truncate": False})
    assert f"more than {server.runtime.max_length} tokens" in _error(
        refused, 413, "payload_too_large"
    )
    assert httpx.post(url, json={"inputs": too_long, "truncate": True}).status_code == 200
    fits = _words(server.runtime.max_length)
    assert httpx.post(url, json={"inputs": fits, "truncate": False}).status_code == 200
