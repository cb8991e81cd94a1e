"""Fixtures for the registry tests: the tiny backbone, small real PEFT LoRA adapters, isolated
homes, and real OCI registry servers (Debian's docker-registry) on loopback ports."""

from __future__ import annotations

from pathlib import Path

import pytest
from registry_helpers import RegistryServer, make_lora_dir

REGISTRY_TEST_DIR = Path(__file__).parent


@pytest.fixture(scope="session")
def backbone(tiny_backbone):
    """The shared tiny random backbone (``.name``, ``.fingerprint``, ``.model``, ``.hidden_size``)."""
    return tiny_backbone


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Every test gets its own $ADAPTERHUB_HOME, no remotes, no project upstream, and the
    default user namespace (``local``)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("ADAPTERHUB_HOME", str(home))
    monkeypatch.setenv("ADAPTERHUB_PROJECT_REGISTRY", "")
    monkeypatch.delenv("ADAPTERHUB_NAMESPACE", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    for name in ("ADAPTERHUB_OCI_USERNAME", "ADAPTERHUB_OCI_PASSWORD", "ADAPTERHUB_OCI_INSECURE"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def lora_dir(backbone, tmp_path):
    return make_lora_dir(backbone, tmp_path / "trained")


@pytest.fixture
def store_dir(tmp_path):
    return tmp_path / "store"


# --------------------------------------------------------------------------- a real OCI registry


def _need_registry_binary() -> None:
    import shutil

    if not (shutil.which("docker-registry") or Path("/usr/bin/docker-registry").exists()):
        pytest.skip(
            "docker-registry is not installed (apt-get install docker-registry apache2-utils); "
            "the OCI round trips need a real registry"
        )


@pytest.fixture(scope="session")
def oci_registry(tmp_path_factory):
    """An open registry (no auth)."""
    _need_registry_binary()
    server = RegistryServer(tmp_path_factory.mktemp("oci-open"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def oci_registry_auth(tmp_path_factory):
    """A registry that needs user ``alice`` with password ``wonderland``."""
    _need_registry_binary()
    server = RegistryServer(
        tmp_path_factory.mktemp("oci-auth"), user="alice", password="wonderland"
    )
    yield server
    server.stop()
