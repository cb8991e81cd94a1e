"""Fixtures for the quality tests: the built-in corpora (built once in the shared test home) and
the tiny random backbone of ``tests/conftest.py``."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def built_corpora(test_home) -> Path:
    """The shared test home with the corpora the project trains on fetched and built."""
    from adapterhub.data import fetch

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ADAPTERHUB_HOME", str(test_home))
        for name in ("sentiment", "text", "langid"):
            fetch(name)
    return test_home


@pytest.fixture
def builtin_home(built_corpora, monkeypatch) -> Path:
    monkeypatch.setenv("ADAPTERHUB_HOME", str(built_corpora))
    return built_corpora
