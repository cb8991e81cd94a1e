"""The project's own registry/ folder: a valid read-only store whose every entry verifies."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapterhub import registry
from adapterhub.registry.manifest import read_card_front_matter
from adapterhub.registry.stores import LocalStore

PROJECT_REGISTRY = Path(__file__).resolve().parents[2] / "registry"


def test_the_project_registry_is_a_read_only_store_of_valid_entries():
    assert (PROJECT_REGISTRY / "README.md").is_file()
    store = LocalStore(PROJECT_REGISTRY, read_only=True)
    ids = store.ids()
    if not ids:
        pytest.skip("the project registry has no entries yet")
    for aid in ids:
        entry = store.entry_path(aid)
        checked = registry.verify_adapter_dir(entry, require_manifest=True)
        manifest = checked.manifest
        assert manifest.namespace == "adapterhub", aid
        assert manifest.metrics.values, f"{aid} has no metrics"
        front = read_card_front_matter((entry / "README.md").read_text())
        assert front["adapterhub"]["id"] == str(aid)
        assert (entry / "adapter_model.safetensors").stat().st_size < 4 << 20, "keep entries small"
    # bare ids resolve through the project upstream without copying
    first = ids[0]
    assert str(registry.find(str(first.base), store=PROJECT_REGISTRY, sources=[])).startswith(
        str(first.base)
    )
