"""The web pages behind ``--read-token``: with a read token, every page and the live view's JSON
need it as the read API does (a request without it gets the one error shape's 401); the
packaged assets, which hold no registry data, stay open; and the playground works in a real
browser that sends the token with every request (as a proxy or a header extension does)."""

from __future__ import annotations

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from adapterhub.config import ServerConfig
from adapterhub.registry.resolver import Resolver
from adapterhub.runtime import Runtime
from adapterhub.server import ServerThread, create_app
from adapterhub.server.web.hub import create_hub_app
from adapterhub.server.web.pages import ASSETS

READER = "reader-secret"
ADMIN = "admin-secret"
ADAPTER = "sentiment/de@team:1.1.0"
PAGES = ["/", f"/adapters/{ADAPTER}", "/playground", "/live", "/v1/stats"]


@pytest.fixture(scope="module")
def guarded_url(tiny_backbone, web_zoo):
    """``adapterhub serve --read-token reader-secret --admin-token admin-secret`` over the zoo."""
    runtime = Runtime(tiny_backbone, registry=web_zoo.registry, max_resident=4)
    config = ServerConfig(max_wait_ms=2, read_token=READER, admin_token=ADMIN)
    with ServerThread(create_app(runtime, config)) as running:
        yield running.url


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("path", PAGES)
def test_every_page_needs_the_read_token(guarded_url, path):
    for headers in ({}, bearer("wrong"), bearer(READER.upper())):
        refused = httpx.get(guarded_url + path, headers=headers, timeout=30)
        assert refused.status_code == 401, (path, refused.text[:200])
        assert refused.headers["content-type"] == "application/json"
        assert refused.headers["www-authenticate"] == "Bearer"
        body = refused.json()
        assert set(body) == {"error", "error_type"} and body["error_type"] == "unauthorized"
        assert "--read-token" in body["error"] and "Authorization: Bearer" in body["error"]
    for token in (READER, ADMIN):
        answered = httpx.get(guarded_url + path, headers=bearer(token), timeout=30)
        assert answered.status_code == 200, (path, answered.text[:200])
        kind = "application/json" if path.startswith("/v1/") else "text/html"
        assert answered.headers["content-type"].startswith(kind), path


def test_the_page_names_what_it_shows_only_to_a_reader(guarded_url):
    page = httpx.get(guarded_url + "/", headers=bearer(READER), timeout=30).text
    assert f'data-id="{ADAPTER}"' in page
    refused = httpx.get(guarded_url + "/", timeout=30).text
    assert ADAPTER not in refused and "sentiment/de" not in refused


def test_assets_stay_open_and_the_hub_keeps_working(guarded_url, web_zoo):
    for name, asset in ASSETS.items():
        response = httpx.get(f"{guarded_url}/static/web/{name}", timeout=30)
        assert response.status_code == 200 and response.content == asset.body, name
    # adapterhub hub has no read token: its pages and assets are served as before
    with ServerThread(create_hub_app(Resolver.only(web_zoo.registry))) as hub:
        page = httpx.get(hub.url + "/", timeout=30)
        assert page.status_code == 200 and f'data-id="{ADAPTER}"' in page.text
        for name in ASSETS:
            assert httpx.get(f"{hub.url}/static/web/{name}", timeout=30).status_code == 200


def test_the_playground_works_in_a_browser_that_sends_the_token(browser, guarded_url):
    want = httpx.post(
        guarded_url + "/v1/predict",
        json={"adapter": ADAPTER, "inputs": ["das buch ist wunderbar"]},
        headers=bearer(READER),
        timeout=60,
    )
    assert want.status_code == 200, want.text
    label = want.json()["predictions"][0]["label"]
    # what a reverse proxy or a header extension does: the token on every request the page
    # makes, its own fetch of /v1/predict included
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": bearer(READER)})
    try:
        browser.get(guarded_url + "/playground")
        box = browser.find_element(By.CSS_SELECTOR, "[data-testid=playground-adapter]")
        box.clear()
        box.send_keys(ADAPTER)
        inputs = browser.find_element(By.CSS_SELECTOR, "[data-testid=playground-input]")
        inputs.clear()
        inputs.send_keys("das buch ist wunderbar")
        browser.find_element(By.CSS_SELECTOR, "[data-testid=playground-submit]").click()
        result = browser.find_element(By.CSS_SELECTOR, "[data-testid=playground-result]")
        WebDriverWait(browser, 30).until(
            lambda d: (
                result.get_attribute("aria-busy") is None
                and result.find_elements(By.CSS_SELECTOR, ".prediction .label, .error")
            )
        )
        assert not result.find_elements(By.CSS_SELECTOR, ".error"), result.text
        shown = [e.text for e in result.find_elements(By.CSS_SELECTOR, ".prediction .label")]
        assert shown == [label]
        # the copyable curl command works against this server: it carries the header, never
        # the token itself
        curl = browser.find_element(By.ID, "pg-curl").text
        assert "Authorization: Bearer $ADAPTERHUB_READ_TOKEN" in curl and READER not in curl
    finally:  # the session's browser is shared: later tests send no token
        browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})


def test_the_entry_pages_commands_carry_the_read_token_header(guarded_url, web_zoo):
    page = httpx.get(f"{guarded_url}/adapters/{ADAPTER}", headers=bearer(READER), timeout=30)
    assert page.status_code == 200
    assert "Authorization: Bearer $ADAPTERHUB_READ_TOKEN" in page.text
    assert READER not in page.text
    with ServerThread(create_hub_app(Resolver.only(web_zoo.registry))) as hub:  # no token there
        assert "ADAPTERHUB_READ_TOKEN" not in httpx.get(f"{hub.url}/adapters/{ADAPTER}").text
