"""Runs with method none keep what they trained: the fine-tuned backbone weights (or the probe's
head alone), which `adapterhub eval OUTPUT` scores exactly as training's own test report did."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from train_helpers import recipe_for

from adapterhub.cli import main
from adapterhub.errors import UsageError
from adapterhub.evaluation import FINETUNED_FILE, load_task_model
from adapterhub.training import train


@pytest.mark.parametrize("freeze", ["none", "embeddings", "backbone"])
def test_fine_tuned_weights_are_kept_and_eval_scores_them(
    freeze, tiny_backbone, tiny_backbone_path, data_for, sentiment_csv, tmp_path, capsys
):
    out = tmp_path / "full"
    recipe = recipe_for(
        "sentiment", "none", data_for, freeze=freeze, max_steps=6, learning_rate=1e-3
    )
    result = train(recipe, output_dir=out, backbone=tiny_backbone, progress=False, keep_model=True)
    base = result.model.encoder.base_model()
    trained = {n for n, p in base.named_parameters() if p.requires_grad}
    if freeze == "backbone":  # a linear probe: only the head trained, only the head is saved
        assert not trained and not (out / FINETUNED_FILE).exists()
    else:
        with safe_open(str(out / FINETUNED_FILE), framework="pt") as handle:
            saved = set(handle.keys())  # noqa: SIM118 (safe_open handles are not iterable)
            assert handle.metadata()["fingerprint"] == tiny_backbone.fingerprint
        assert saved == trained
        embeddings = "embeddings.word_embeddings.weight"
        assert (embeddings in saved) == (freeze == "none")
    assert not (out / "adapter_model.safetensors").exists()

    loaded = load_task_model(out, tiny_backbone)
    batch = loaded.collate([{"text": "the movie was great"}], tiny_backbone.tokenizer, 32)
    with torch.no_grad():
        assert torch.equal(loaded(batch)[1], result.model(batch)[1])

    capsys.readouterr()
    code = main(
        ["eval", str(out), "--langs", "en", "--data", str(sentiment_csv),
         "--backbone", str(tiny_backbone_path), "--output", str(tmp_path / "e")]
    )  # fmt: skip
    assert code == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("{"))
    scored = json.loads(line)["results"]["en"]
    assert scored["examples"] == result.metrics["en"]["examples"]
    assert scored["accuracy"] == result.metrics["en"]["accuracy"]
    assert abs(scored["loss"] - result.metrics["en"]["loss"]) < 1e-5


def test_fine_tuned_weights_refuse_another_backbone(tiny_backbone, data_for, tmp_path):
    out = tmp_path / "full"
    recipe = recipe_for("sentiment", "none", data_for, freeze="none", max_steps=2)
    train(recipe, output_dir=out, backbone=tiny_backbone, progress=False)
    with safe_open(str(out / FINETUNED_FILE), framework="pt") as handle:
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    save_file(tensors, str(out / FINETUNED_FILE), metadata={"fingerprint": "0" * 64})
    with pytest.raises(UsageError, match="pass --backbone"):
        load_task_model(out, tiny_backbone)


def test_publishing_a_run_without_a_method_is_refused_before_training(data_for, tmp_path):
    recipe = recipe_for("sentiment", "none", data_for, freeze="none")
    with pytest.raises(UsageError, match="--no-publish"):
        train(recipe, output_dir=tmp_path / "out", publish=True)
    assert not (tmp_path / "out").exists()
