"""Training on the tiny backbone: every method x task learns, saves, reloads and repeats."""

from __future__ import annotations

import json

import pytest
import torch
from train_helpers import recipe_for, train_losses

from adapterhub.errors import DataError, RecipeError, UsageError
from adapterhub.evaluation import load_task_model
from adapterhub.recipes import Recipe, recipe_from_dict
from adapterhub.training import train


@pytest.mark.parametrize("task", ["sentiment", "pos", "mlm"])
@pytest.mark.parametrize("method", ["lora", "ia3", "bottleneck"])
def test_loss_falls_and_save_then_load_gives_identical_logits(
    task, method, tiny_backbone, data_for, tmp_path
):
    recipe = recipe_for(task, method, data_for)
    result = train(
        recipe, output_dir=tmp_path / "out", backbone=tiny_backbone, progress=False, keep_model=True
    )
    losses = train_losses(result)
    assert len(losses) == recipe.max_steps
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    factor = 0.95 if task == "mlm" else 0.9  # random masks make the MLM loss noisier
    assert last < first * factor, f"{method}/{task}: loss went {first:.3f} -> {last:.3f}"
    assert 0 < result.parameters["trainable"] < result.parameters["backbone"]
    assert result.parameters["backbone"] == sum(p.numel() for p in tiny_backbone.model.parameters())

    out = tmp_path / "out"
    for name in ("adapter_config.json", "adapter_model.safetensors", "recipe.yaml", "metrics.json"):
        assert (out / name).is_file(), name
    assert (out / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    lines = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert {"train", "eval"} <= {line["event"] for line in lines}
    assert all("examples_per_s" in line for line in lines if line["event"] == "train")
    if task == "mlm":  # the tied MLM head is a training aid: never written
        assert not (out / "head.safetensors").exists()
        return
    trained = result.model
    loaded = load_task_model(out, tiny_backbone)
    rows = [{"text": "the movie was good"}, {"text": "das buch ist schlecht"}]
    if task == "pos":
        rows = [{"tokens": ["the", "film", "is", "great"]}, {"tokens": ["a", "book"]}]
    batch = loaded.collate(rows, tiny_backbone.tokenizer, 32)
    with torch.no_grad():
        assert torch.equal(trained(batch)[1], loaded(batch)[1])
    assert loaded.labels == result.labels


def test_adapter_learns_the_task(tiny_backbone, data_for, tmp_path):
    # tags follow the words, so an adapter that learns gets them all right on unseen sentences
    recipe = recipe_for("pos", "lora", data_for, max_steps=60, eval_every=20)
    result = train(recipe, output_dir=tmp_path / "out", backbone=tiny_backbone, progress=False)
    assert result.metrics["en"]["token_accuracy"] >= 0.95, result.metrics
    assert result.best_validation >= 0.95


def test_identical_seeds_give_identical_results(tiny_backbone, data_for, tmp_path):
    def run(seed: int, where: str):
        recipe = recipe_for("sentiment", "lora", data_for, max_steps=8, seed=seed, dropout=0.1)
        recipe.lora_dropout = 0.1
        result = train(recipe, output_dir=tmp_path / where, backbone=tiny_backbone, progress=False)
        return train_losses(result), (tmp_path / where / "adapter_model.safetensors").read_bytes()

    first, second, other = run(5, "a"), run(5, "b"), run(6, "c")
    assert first == second
    assert first[0] != other[0]


def test_tiny_backbone_is_left_untouched(tiny_backbone, data_for, tmp_path):
    before = {k: v.clone() for k, v in tiny_backbone.model.state_dict().items()}
    recipe = recipe_for("sentiment", "none", data_for, freeze="none", max_steps=3)
    train(recipe, output_dir=tmp_path / "full", backbone=tiny_backbone, progress=False)
    after = tiny_backbone.model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(p.requires_grad for p in tiny_backbone.model.parameters())


def test_zero_shot_when_the_language_has_too_little_data(tiny_backbone, data_for, tmp_path):
    recipe = recipe_for("sentiment", "lora", data_for, lang="de", min_train_examples=30)
    result = train(recipe, output_dir=tmp_path / "out", backbone=tiny_backbone, progress=False)
    assert result.zero_shot
    assert "de" not in result.train_langs and set(result.train_langs) == {"en", "fr"}
    assert "de" in result.metrics


def test_probe_trains_only_the_head(tiny_backbone, data_for, tmp_path):
    recipe = recipe_for("sentiment", "none", data_for, max_steps=3)
    result = train(recipe, output_dir=tmp_path / "out", backbone=tiny_backbone, progress=False)
    assert result.parameters["trainable"] == tiny_backbone.hidden_size * 2 + 2
    assert not (tmp_path / "out" / "adapter_model.safetensors").exists()


@pytest.mark.parametrize(
    ("changes", "error", "words"),
    [
        ({"task": "summarise"}, UsageError, "unknown task 'summarise'"),
        ({"lang": "klingon"}, UsageError, "klingon"),
        ({"lang": "xx"}, DataError, "no language 'xx'"),
        ({"train_langs": ["en", "qq"]}, DataError, "qq"),
    ],
)
def test_bad_input_gets_a_clear_error(changes, error, words, tiny_backbone, data_for, tmp_path):
    task = changes.pop("task", "sentiment")
    recipe = recipe_for("sentiment", "lora", data_for, **changes)
    recipe.task = task
    with pytest.raises(error, match=words):
        train(recipe, output_dir=tmp_path / "out", backbone=tiny_backbone, progress=False)


def test_unknown_method_and_recipe_key_are_named(data_for):
    with pytest.raises(RecipeError, match="unknown method 'prefix-tuning'"):
        recipe_for("sentiment", "prefix-tuning", data_for)
    with pytest.raises(RecipeError, match="'learning_rat'.*did you mean 'learning_rate'"):
        recipe_from_dict({"task": "sentiment", "learning_rat": 0.1})


def test_empty_data_is_refused(tiny_backbone, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("text,label\n")
    recipe = Recipe(task="sentiment", lang="en", data=str(empty), max_steps=2)
    with pytest.raises(DataError):
        train(recipe, output_dir=tmp_path / "out", backbone=tiny_backbone, progress=False)


@pytest.mark.parametrize("method", ["lora", "bottleneck"])
def test_task_adapter_on_a_language_adapter(method, tiny_backbone, data_for, tmp_path):
    language = recipe_for("mlm", method, data_for, max_steps=4)
    train(language, output_dir=tmp_path / "lang", backbone=tiny_backbone, progress=False)
    task = recipe_for("sentiment", method, data_for, max_steps=6, stack_lang=str(tmp_path / "lang"))
    result = train(
        task, output_dir=tmp_path / "task", backbone=tiny_backbone, progress=False, keep_model=True
    )
    language_weights = (tmp_path / "lang" / "adapter_model.safetensors").read_bytes()
    assert (tmp_path / "task" / "adapter_model.safetensors").read_bytes() != language_weights
    stacked = load_task_model(tmp_path / "task", tiny_backbone, language_adapter=tmp_path / "lang")
    alone = load_task_model(tmp_path / "task", tiny_backbone)
    batch = stacked.collate([{"text": "the film was great"}], tiny_backbone.tokenizer, 32)
    with torch.no_grad():
        assert torch.equal(stacked(batch)[1], result.model(batch)[1])
        assert not torch.equal(alone(batch)[1], stacked(batch)[1])
    # the language adapter stayed frozen during task training
    names = [n for n, p in result.model.named_parameters() if p.requires_grad]
    assert names and not any("language" in n for n in names)
