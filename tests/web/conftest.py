"""Fixtures of the web page tests: a registry of real tiny-backbone adapters with metrics,
versions, a yank, a prerelease and a hostile card; the real server over it on loopback (with a
runtime, and as the hub without one); headless Debian chromium driven by Selenium."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from adapterhub.config import ServerConfig
from adapterhub.registry import publish, yank
from adapterhub.registry.resolver import Resolver
from adapterhub.runtime import Runtime
from adapterhub.server import ServerThread, create_app
from adapterhub.server.web.hub import create_hub_app

# The adapter makers of the serving tests (real PEFT/bottleneck weights, real heads).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))

from serving_helpers import make_adapter  # noqa: E402
from web_helpers import CHROMEDRIVER, CHROMIUM, ENTRIES, YANKED  # noqa: E402


@dataclass
class WebZoo:
    registry: Path
    backbone_name: str
    fingerprint: str


@pytest.fixture(scope="session")
def web_zoo(tiny_backbone, tmp_path_factory) -> WebZoo:

    root = tmp_path_factory.mktemp("web-zoo")
    registry = root / "registry"
    for seed, (adapter_id, spec) in enumerate(ENTRIES.items()):
        method, labels, task_type, metrics, parents, description = spec
        folder = make_adapter(
            tiny_backbone, root / "src" / str(seed), method, seed, labels, task_type or "sequence"
        )
        publish(
            folder,
            adapter_id,
            backbone=tiny_backbone,
            store=registry,
            metrics=metrics,
            parents=parents,
            description=description,
            recipe={"task": adapter_id.split("/")[0], "max_length": 64},
        )
    for adapter_id, reason in YANKED.items():
        yank(adapter_id, reason, store=registry)
    return WebZoo(registry, tiny_backbone.name, tiny_backbone.fingerprint)


@pytest.fixture(scope="session")
def serve_url(tiny_backbone, web_zoo):
    """``adapterhub serve``'s app over the zoo, on a loopback port."""

    runtime = Runtime(tiny_backbone, registry=web_zoo.registry, max_resident=4)
    app = create_app(runtime, ServerConfig(max_wait_ms=2))
    with ServerThread(app) as running:
        yield running.url


@pytest.fixture(scope="session")
def hub_url(web_zoo):
    """``adapterhub hub --store ZOO``'s app: the pages with no runtime."""

    with ServerThread(create_hub_app(Resolver.only(web_zoo.registry))) as running:
        yield running.url


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots go: $ADAPTERHUB_TEST_ARTIFACTS/web, else tests/artifacts/web."""
    base = os.environ.get("ADAPTERHUB_TEST_ARTIFACTS")
    folder = (Path(base) if base else Path(__file__).resolve().parents[1] / "artifacts") / "web"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def browser():
    """Headless Debian chromium through the system chromedriver; Selenium Manager never runs
    (both paths are given), so nothing is downloaded."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).is_file()]
    if missing:
        pytest.skip(
            f"{' and '.join(missing)} not installed: apt-get install -y chromium chromium-driver"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root in a container
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        "--lang=en-US",
    ):
        options.add_argument(flag)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SE_OFFLINE", "true")  # were Selenium Manager ever to run, it must not fetch
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture
def copied_zoo(web_zoo, tmp_path) -> Path:
    """A copy of the zoo's registry this test may damage."""
    target = tmp_path / "registry"
    shutil.copytree(web_zoo.registry, target)
    return target
