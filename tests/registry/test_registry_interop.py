"""Interop with plain PEFT: entries load with PeftModel.from_pretrained, PEFT folders import."""

from __future__ import annotations

import copy
import json

import peft
import pytest
import torch
from registry_helpers import make_lora_dir
from safetensors.torch import load_file

from adapterhub import registry


def _inputs(backbone, seed=0):
    generator = torch.Generator().manual_seed(seed)
    vocab = backbone.model.config.vocab_size
    ids = torch.randint(5, vocab, (3, 11), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def _plain_peft_output(backbone, entry, inputs):
    model = peft.PeftModel.from_pretrained(copy.deepcopy(backbone.model), str(entry)).eval()
    with torch.no_grad():
        return model(**inputs).last_hidden_state


def test_a_published_lora_entry_loads_in_plain_peft_with_identical_outputs(
    backbone, tmp_path, store_dir
):
    trained = make_lora_dir(
        backbone, tmp_path / "trained", seed=5, targets=("query", "value", "dense")
    )
    original = peft.PeftModel.from_pretrained(copy.deepcopy(backbone.model), str(trained)).eval()
    inputs = _inputs(backbone)
    with torch.no_grad():
        expected = original(**inputs).last_hidden_state
        base = backbone.model(**inputs).last_hidden_state
    assert not torch.allclose(expected, base)  # the adapter really changes the output

    registry.publish(trained, "sentiment/de:1.0.0", backbone=backbone, store=store_dir)
    entry = registry.resolve("sentiment/de", store=store_dir, sources=[], backbone=backbone)
    assert torch.equal(_plain_peft_output(backbone, entry, inputs), expected)


def test_an_ia3_entry_loads_in_plain_peft(backbone, tmp_path, store_dir):
    torch.manual_seed(3)
    model = peft.get_peft_model(
        copy.deepcopy(backbone.model),
        peft.IA3Config(
            target_modules=["key", "value", "output.dense"],
            feedforward_modules=["output.dense"],
            init_ia3_weights=False,
        ),
    )
    model.save_pretrained(tmp_path / "ia3")
    inputs = _inputs(backbone, 1)
    with torch.no_grad():
        expected = model.eval()(**inputs).last_hidden_state
    manifest = registry.publish(
        tmp_path / "ia3", "lang/de:1.0.0", backbone=backbone, store=store_dir
    )
    assert manifest.kind == "language" and manifest.method == "ia3" and manifest.labels == []
    entry = registry.resolve("lang/de", store=store_dir, sources=[], backbone=backbone)
    assert torch.equal(_plain_peft_output(backbone, entry, inputs), expected)


def test_import_a_peft_folder_with_modules_to_save_classifier(
    backbone, tiny_backbone_path, tmp_path, store_dir
):
    from transformers import BertForSequenceClassification

    torch.manual_seed(9)
    classifier = BertForSequenceClassification.from_pretrained(
        str(tiny_backbone_path), num_labels=3
    ).eval()
    model = peft.get_peft_model(
        classifier,
        peft.LoraConfig(
            r=4, target_modules=["query", "value"], task_type="SEQ_CLS", init_lora_weights=False
        ),
    )
    with torch.no_grad():  # make the saved classifier differ from its initialisation
        model.base_model.model.classifier.modules_to_save["default"].weight.add_(0.5)
    model.save_pretrained(tmp_path / "peft-seqcls")
    saved = load_file(tmp_path / "peft-seqcls" / "adapter_model.safetensors")
    assert any(k.startswith("base_model.model.bert.") for k in saved)
    assert "base_model.model.classifier.weight" in saved

    inputs = _inputs(backbone, 2)
    with torch.no_grad():
        expected = model.base_model.model.bert(**inputs).last_hidden_state

    manifest = registry.import_adapter(
        tmp_path / "peft-seqcls",
        "sentiment/en@imported:0.1.0",
        backbone=backbone,
        labels=["negative", "neutral", "positive"],
        store=store_dir,
    )
    assert manifest.labels == ["negative", "neutral", "positive"]
    assert manifest.task_type == "sequence"
    entry = store_dir / "imported/sentiment/en/0.1.0"
    config = json.loads((entry / "adapter_config.json").read_text())
    assert config["modules_to_save"] is None and config["task_type"] is None
    head = load_file(entry / "head.safetensors")
    assert torch.equal(head["weight"], saved["base_model.model.classifier.weight"])
    assert torch.equal(head["bias"], saved["base_model.model.classifier.bias"])
    assert torch.equal(_plain_peft_output(backbone, entry, inputs), expected)


def test_import_a_peft_folder_with_a_head_file_via_cli(
    backbone, tiny_backbone_path, tmp_path, store_dir, capsys
):
    from adapterhub.cli import main

    folder = make_lora_dir(backbone, tmp_path / "peft", seed=12, labels=("a", "b", "c"))
    inputs = _inputs(backbone, 3)
    original = peft.PeftModel.from_pretrained(copy.deepcopy(backbone.model), str(folder)).eval()
    with torch.no_grad():
        expected = original(**inputs).last_hidden_state
    code = main(
        ["registry", "import", str(folder), "--id", "topic/fr:1.0.0"]
        + ["--backbone", str(tiny_backbone_path), "--store", str(store_dir)]
    )
    assert code == 0, capsys.readouterr().err
    entry = store_dir / "local/topic/fr/1.0.0"
    assert registry.verify_adapter_dir(entry, backbone).labels == ["a", "b", "c"]
    assert torch.equal(_plain_peft_output(backbone, entry, inputs), expected)
    # a PEFT folder without --id: a one-line usage error
    assert main(["registry", "import", str(folder), "--store", str(store_dir)]) == 2
    assert "--id" in capsys.readouterr().err


def test_export_import_round_trip_and_reidentify(backbone, lora_dir, tmp_path, store_dir):
    registry.publish(lora_dir, "sentiment/de:1.0.0", backbone=backbone, store=store_dir)
    bundle = registry.export_bundle("sentiment/de", tmp_path / "out" / "de.tar", store=store_dir)
    other = tmp_path / "other"
    assert registry.import_adapter(bundle, store=other).id == "sentiment/de@local:1.0.0"
    assert registry.import_adapter(bundle, store=other).id == "sentiment/de@local:1.0.0"
    renamed = registry.import_adapter(bundle, "sentiment/de@mine:2.0.0", store=other)
    assert renamed.backbone.fingerprint == backbone.fingerprint
    assert sorted(str(a) for a in registry.LocalStore(other).ids()) == [
        "sentiment/de@local:1.0.0",
        "sentiment/de@mine:2.0.0",
    ]
    gz = registry.export_bundle("sentiment/de", tmp_path / "de.tar.gz", store=store_dir)
    assert registry.import_adapter(gz, store=tmp_path / "third").id == "sentiment/de@local:1.0.0"


@pytest.mark.parametrize("bad_labels", [["only-one"]])
def test_import_refuses_a_label_count_mismatch(backbone, tmp_path, store_dir, bad_labels):
    from adapterhub.errors import UsageError

    folder = make_lora_dir(backbone, tmp_path / "peft", labels=None)
    from safetensors.torch import save_file

    save_file(
        {"weight": torch.zeros(2, backbone.hidden_size), "bias": torch.zeros(2)},
        str(folder / "head.safetensors"),
    )
    with pytest.raises(UsageError, match="labels"):
        registry.import_adapter(
            folder, "x/de:1.0.0", backbone=backbone, labels=bad_labels, store=store_dir
        )
