"""The web pages under ``--read-namespaces``: a reader sees the namespaces the server serves and
nothing else (as ``GET /v1/adapters`` lists them); the admin token sees every namespace."""

from __future__ import annotations

import httpx
import pytest

from adapterhub.config import ServerConfig
from adapterhub.runtime import Runtime
from adapterhub.server import ServerThread, create_app

ADMIN = "admin-secret"
HIDDEN = "topic/nl@other:1.0.0"
SHOWN = "sentiment/de@team:1.1.0"


@pytest.fixture(scope="module")
def team_only_url(tiny_backbone, web_zoo):
    """``adapterhub serve --read-namespaces team --admin-token admin-secret`` over the zoo."""
    runtime = Runtime(tiny_backbone, registry=web_zoo.registry, max_resident=4)
    config = ServerConfig(max_wait_ms=2, read_namespaces="team", admin_token=ADMIN)
    with ServerThread(create_app(runtime, config)) as running:
        yield running.url


def test_the_pages_list_only_the_namespaces_served(team_only_url):
    listed = httpx.get(team_only_url + "/v1/adapters", timeout=30).json()
    assert HIDDEN not in str(listed) and SHOWN in str(listed)
    for path in ("/", "/?namespace=other", "/playground"):
        page = httpx.get(team_only_url + path, timeout=30).text
        assert "@other:" not in page, path
        assert ">other<" not in page, path  # not offered as a namespace filter either
    assert f'data-id="{SHOWN}"' in httpx.get(team_only_url + "/", timeout=30).text


def test_a_hidden_entry_page_is_not_found_like_a_missing_one(team_only_url):
    hidden = httpx.get(f"{team_only_url}/adapters/{HIDDEN}", timeout=30)
    missing = httpx.get(f"{team_only_url}/adapters/topic/nl@other:9.9.9", timeout=30)
    assert hidden.status_code == missing.status_code == 404
    assert "bottleneck" not in hidden.text  # nothing of the hidden entry's manifest shows
    shown = httpx.get(f"{team_only_url}/adapters/{SHOWN}", timeout=30)
    assert shown.status_code == 200


def test_the_admin_token_sees_every_namespace(team_only_url):
    headers = {"Authorization": f"Bearer {ADMIN}"}
    page = httpx.get(team_only_url + "/", headers=headers, timeout=30).text
    assert f'data-id="{HIDDEN}"' in page
    entry = httpx.get(f"{team_only_url}/adapters/{HIDDEN}", headers=headers, timeout=30)
    assert entry.status_code == 200
