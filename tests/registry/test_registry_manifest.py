"""The manifest schema and the model card generated from it."""

from __future__ import annotations

import json

import pytest

from adapterhub.errors import IntegrityError
from adapterhub.registry.manifest import Manifest, read_card_front_matter, render_card

SHA = "ab" * 32


def _fields(**overrides):
    fields = {
        "id": "sentiment/de@adapterhub:1.0.0",
        "kind": "task",
        "task": "sentiment",
        "lang": "de",
        "namespace": "adapterhub",
        "version": "1.0.0",
        "method": "lora",
        "method_config": {"peft_type": "LORA", "r": 8},
        "labels": ["negative", "positive"],
        "task_type": "sequence",
        "backbone": {"name": "multilingual-e5-small", "fingerprint": "sha256:" + "0" * 64},
        "metrics": {"dataset": "sentiment-de", "split": "test", "accuracy": 0.8},
        "recipe": {"epochs": 3},
        "parents": ["lang/de@adapterhub:1.0.0"],
        "files": {"adapter_model.safetensors": {"sha256": SHA, "bytes": 10}},
        "created_at": "2026-01-01T00:00:00Z",
        "created_by": "tester",
    }
    fields.update(overrides)
    return fields


def test_manifest_json_round_trip_excludes_yank_state():
    manifest = Manifest.model_validate(_fields())
    manifest.yanked = True
    text = manifest.to_json()
    assert "yanked" not in json.loads(text)
    again = Manifest.from_json(text)
    assert again.metrics.values == {"accuracy": 0.8}
    assert again.parents == ["lang/de@adapterhub:1.0.0"] and not again.yanked


@pytest.mark.parametrize(
    "overrides",
    [
        {"id": "sentiment/de"},  # no version
        {"task": "pos"},  # disagrees with the id
        {"kind": "adapter"},
        {"files": {"evil.pkl": {"sha256": SHA, "bytes": 1}}},
        {"files": {"adapter_model.safetensors": {"sha256": "xyz", "bytes": 1}}},
        {"metrics": {"dataset": "d", "accuracy": "high"}},
        {"metrics": {"dataset": "d", "accuracy": float("nan")}},
        {"parents": ["lang/de"]},  # parents must be exact
        {"surprise": 1},
    ],
)
def test_invalid_manifests_are_integrity_errors(overrides):
    with pytest.raises(IntegrityError, match="manifest"):
        Manifest.from_json(json.dumps(_fields(**overrides), allow_nan=True))


def test_garbage_manifest_is_an_integrity_error():
    with pytest.raises(IntegrityError, match="not valid JSON"):
        Manifest.from_json(b"\x80not json")
    with pytest.raises(IntegrityError, match="not a JSON object"):
        Manifest.from_json("[1, 2]")


def test_card_has_hub_style_front_matter():
    manifest = Manifest.model_validate(_fields())
    card = render_card(manifest)
    front = read_card_front_matter(card)
    assert front["base_model"] == "intfloat/multilingual-e5-small"  # the hub id it resolves to
    assert front["adapterhub"]["backbone"] == "multilingual-e5-small"  # as adapterhub names it
    assert front["language"] == ["de"]
    assert front["library_name"] == "peft"
    assert front["adapterhub"]["backbone_fingerprint"] == manifest.backbone.fingerprint
    result = front["model-index"][0]["results"][0]
    assert result["dataset"]["name"] == "sentiment-de"
    assert result["metrics"] == [{"type": "accuracy", "value": 0.8}]
    assert "# sentiment/de@adapterhub:1.0.0" in card
    assert "lang/de@adapterhub:1.0.0" in card
