"""Fixtures of the retrieval tests: a real registry of real adapters (retrieval_helpers)."""

from __future__ import annotations

import pytest
from retrieval_helpers import CLASSIFIERS, LABELS, LANGUAGE, RETRIEVAL, Zoo, make_lora, write_head


@pytest.fixture(scope="session")
def retrieval_zoo(tiny_backbone, tmp_path_factory) -> Zoo:
    from adapterhub.registry import publish

    root = tmp_path_factory.mktemp("retrieval-zoo")
    folders = {}
    for seed, adapter in enumerate([*RETRIEVAL, *CLASSIFIERS, LANGUAGE]):
        folder = make_lora(tiny_backbone, root / str(seed), seed)
        if adapter in LABELS:
            write_head(folder, tiny_backbone.hidden_size, LABELS[adapter], seed + 100)
        recipe = (
            {"task": adapter.split("/")[0], "prefix": "query: "} if adapter in RETRIEVAL else None
        )
        publish(folder, adapter, backbone=tiny_backbone, store=root / "registry", recipe=recipe)
        folders[adapter] = folder
    return Zoo(root / "registry", folders)
