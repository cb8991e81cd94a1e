"""Fixtures of the serving tests: a real registry of real adapters (see serving_helpers)."""

from __future__ import annotations

import pytest
from serving_helpers import PREFIXES, SENTIMENT, ZOO, Zoo, make_adapter


@pytest.fixture(scope="session")
def zoo(tiny_backbone, tmp_path_factory) -> Zoo:
    from adapterhub.backbone import load_backbone
    from adapterhub.registry import publish
    from adapterhub.testing import make_tiny_backbone

    root = tmp_path_factory.mktemp("serving-zoo")
    registry = root / "registry"
    folders, methods = {}, {}
    for seed, (adapter_id, (method, options, labels, task_type)) in enumerate(ZOO.items()):
        folder = make_adapter(
            tiny_backbone,
            root / "src" / str(seed),
            method,
            seed,
            labels,
            task_type or "sequence",
            **options,
        )
        parents = ["lang/de@team:1.0.0"] if adapter_id.startswith("sentiment/de") else []
        recipe = {"prefix": PREFIXES[adapter_id]} if adapter_id in PREFIXES else None
        publish(
            folder,
            adapter_id,
            backbone=tiny_backbone,
            store=registry,
            parents=parents,
            recipe=recipe,
        )
        folders[adapter_id] = folder
        methods[adapter_id] = method
    other = load_backbone(str(make_tiny_backbone(root / "other-backbone", seed=7)), device="cpu")
    foreign_folder = make_adapter(
        other, root / "src" / "foreign", "lora", 99, SENTIMENT, "sequence"
    )
    publish(foreign_folder, "sentiment/it@other:1.0.0", backbone=other, store=registry)
    return Zoo(registry, folders, methods, "sentiment/it@other:1.0.0")
