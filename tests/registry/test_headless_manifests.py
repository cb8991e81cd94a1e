"""Adapters without a head (language adapters, retrieval adapters) record their task type and
preprocessing in the manifest as headed ones do: from the recipe they were trained by."""

from __future__ import annotations

import json

import pytest
from registry_helpers import make_lora_dir

from adapterhub import registry
from adapterhub.preprocessing import Preprocessing


@pytest.mark.parametrize(
    ("adapter_id", "task", "task_type"),
    [
        ("lang/de:1.0.0", "mlm", "mlm"),
        ("retrieval/multi:1.0.0", "retrieval", "retrieval"),
        ("sentiment/de:1.0.0", "sentiment", "sequence"),  # the headed one, for comparison
    ],
)
def test_the_manifest_records_task_type_and_preprocessing(
    backbone, tmp_path, adapter_id, task, task_type
):
    labels = ("negative", "positive") if task_type == "sequence" else ()
    folder = make_lora_dir(backbone, tmp_path / "trained", labels=labels)
    recipe = {"task": task, "lang": "de", "max_length": 96, "prefix": "query: "}
    store = tmp_path / "store"
    manifest = registry.publish(folder, adapter_id, backbone=backbone, recipe=recipe, store=store)
    expected = Preprocessing(prefix="query: ", max_length=96).to_dict()
    assert (manifest.task_type, manifest.preprocessing) == (task_type, expected)
    on_disk = json.loads((store / manifest.adapter_id.relpath / "manifest.json").read_text())
    assert (on_disk["task_type"], on_disk["preprocessing"]) == (task_type, expected)


def test_a_language_adapter_without_a_recipe_still_names_its_task_type(backbone, tmp_path):
    folder = make_lora_dir(backbone, tmp_path / "trained", labels=())
    manifest = registry.publish(
        folder, "lang/fr:1.0.0", backbone=backbone, store=tmp_path / "store"
    )
    assert manifest.task_type == "mlm" and manifest.preprocessing is None
    assert manifest.labels == []
