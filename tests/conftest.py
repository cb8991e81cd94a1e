"""Shared fixtures: a tiny random backbone for fast tests, the real embedded one for quality tests.

All tests share one ADAPTERHUB_HOME (``$ADAPTERHUB_TEST_HOME``, default a folder in the temp dir)
so that the real backbone and the real datasets are provisioned once and reused across runs.
Tests that need an isolated home use the ``isolated_home`` fixture.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

TEST_HOME = Path(
    os.environ.get("ADAPTERHUB_TEST_HOME") or Path(tempfile.gettempdir()) / "adapterhub-test-home"
)
os.environ["ADAPTERHUB_HOME"] = str(TEST_HOME)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def test_home() -> Path:
    TEST_HOME.mkdir(parents=True, exist_ok=True)
    return TEST_HOME


@pytest.fixture
def isolated_home(tmp_path, monkeypatch) -> Path:
    """A fresh, empty ADAPTERHUB_HOME for this test only."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("ADAPTERHUB_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def tiny_backbone_path(tmp_path_factory) -> Path:
    from adapterhub.testing import make_tiny_backbone

    return make_tiny_backbone(tmp_path_factory.mktemp("tiny-backbone"))


@pytest.fixture(scope="session")
def tiny_backbone(tiny_backbone_path):
    from adapterhub.backbone import load_backbone

    return load_backbone(str(tiny_backbone_path), device="cpu")


@pytest.fixture(scope="session")
def real_backbone_path(test_home) -> Path:
    from adapterhub.backbone import embedded

    return embedded.provision("multilingual-e5-small")


@pytest.fixture(scope="session")
def real_backbone(real_backbone_path):
    from adapterhub.backbone import load_backbone

    return load_backbone(str(real_backbone_path), device="cpu")
