"""The MLM objective of language adapters learns: on a tiny synthetic corpus whose masked words
are given by their neighbours, the adapter beats the head-only and the unigram baselines."""

from __future__ import annotations

import csv
import json
import math
import random

import pytest
import torch

from adapterhub.cli import main as cli
from adapterhub.evaluation.language import evaluate_language_adapter, mlm_model
from adapterhub.recipes import Recipe
from adapterhub.registry.manifest import PAYLOAD_FILES
from adapterhub.tasks.mlm import MLM_HEAD_FILE, unigram_log_probs
from adapterhub.training import train

# Words come in fixed pairs: a masked word is given by its partner, never by its frequency.
PAIRS = [
    ("the", "movie"), ("very", "good"), ("der", "film"), ("le", "livre"), ("het", "boek"),
    ("el", "libro"), ("not", "boring"), ("sehr", "gut"), ("très", "bon"), ("非常", "好"),
    ("love", "story"), ("hate", "plot"),
]  # fmt: skip


@pytest.fixture(scope="module")
def paired_text(tmp_path_factory):
    rng = random.Random(7)
    path = tmp_path_factory.mktemp("mlm") / "pairs.csv"
    seen: set[str] = set()
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "lang"])
        while len(seen) < 1200:
            text = " ".join(w for pair in rng.choices(PAIRS, k=rng.randint(2, 4)) for w in pair)
            if text not in seen:
                seen.add(text)
                writer.writerow([text, "de"])
    return path


@pytest.fixture(scope="module")
def language_adapter(tiny_backbone, paired_text, tmp_path_factory):
    recipe = Recipe(
        task="mlm",
        lang="de",
        data=str(paired_text),
        method="lora",
        lora_r=8,
        lora_alpha=16,
        target_modules=["query", "key", "value", "dense"],
        min_train_examples=10,
        max_steps=300,
        batch_size=16,
        eval_every=50,
        patience=0,
        learning_rate=1e-2,
        head_learning_rate=2e-2,
        max_length=32,
        warmup_ratio=0.0,
        lora_dropout=0.0,
        seed=5,
    )
    out = tmp_path_factory.mktemp("mlm") / "lang-de"
    result = train(recipe, output_dir=out, backbone=tiny_backbone, progress=False)
    return out, result


def test_the_adapter_beats_the_head_only_and_unigram_baselines(
    language_adapter, tiny_backbone, paired_text
):
    folder, _ = language_adapter
    report = evaluate_language_adapter(
        folder, backbone=tiny_backbone, steps=200, data=paired_text, batch_size=16
    )
    adapter, head_only, unigram = report["adapter"], report["head_only"], report["unigram"]
    assert adapter["mlm_accuracy"] >= 2 * head_only["mlm_accuracy"], report
    assert adapter["mlm_accuracy"] > unigram["mlm_accuracy"] + 0.2, report
    assert adapter["perplexity"] < head_only["perplexity"] < unigram["perplexity"], report
    assert report["beats_baselines"] and report["accuracy_ratio_to_head_only"] >= 2
    # the head it trained with, kept in the folder, scores like the fresh probe head
    assert report["adapter_trained_head"]["mlm_accuracy"] > 2 * head_only["mlm_accuracy"]


def test_training_reports_perplexity_and_the_unigram_baseline(language_adapter):
    _, result = language_adapter
    test = result.metrics["de"]
    assert test["mlm_accuracy"] > test["unigram_mlm_accuracy"] + 0.2
    assert test["perplexity"] < test["unigram_perplexity"] / 2
    # the unigram baseline: on 24 equally frequent words, about 1/24 right
    assert test["unigram_mlm_accuracy"] < 0.15
    assert 12 < test["unigram_perplexity"] < 40


def test_the_mlm_head_is_kept_but_never_published(language_adapter):
    folder, _ = language_adapter
    assert (folder / MLM_HEAD_FILE).is_file()
    assert MLM_HEAD_FILE not in PAYLOAD_FILES
    assert not (folder / "head.safetensors").exists()


def test_the_head_starts_at_the_unigram_distribution(tiny_backbone):
    rows = [{"text": "good good good bad"}, {"text": "good film"}]
    tokenizer = tiny_backbone.tokenizer
    vocab = tiny_backbone.model.get_input_embeddings().weight.shape[0]
    log_probs = unigram_log_probs(rows, tokenizer, 32, vocab)
    good = tokenizer("good", add_special_tokens=False)["input_ids"]
    assert len(good) == 1 and int(log_probs.argmax()) == good[0]
    assert math.isclose(float(log_probs.exp().sum()), 1.0, rel_tol=1e-4)
    counted = sum(len(tokenizer(r["text"], add_special_tokens=False)["input_ids"]) for r in rows)
    expected = (4 + 0.01) / (counted + 0.01 * vocab)
    assert math.isclose(float(log_probs[good[0]].exp()), expected, rel_tol=1e-4)
    model = mlm_model(tiny_backbone, None, 0.15)
    model.initialise(rows, tokenizer, 32)
    assert torch.equal(model.bias.detach(), log_probs) and torch.equal(model.unigram, log_probs)
    dense = model.transform[0]
    assert torch.equal(dense.weight, torch.eye(dense.weight.shape[0]))


def test_evaluation_masks_the_same_tokens_every_time(tiny_backbone, paired_text):
    from adapterhub.data import load_user_data

    rows = load_user_data(str(paired_text), task="text")["test"].to_list()
    model = mlm_model(tiny_backbone, None, 0.15)
    model.initialise(rows, tiny_backbone.tokenizer, 32)
    model.eval()
    with torch.no_grad():
        first = model.task_type.evaluate(model, rows, tiny_backbone.tokenizer, 32, 16)
        second = model.task_type.evaluate(model, rows, tiny_backbone.tokenizer, 32, 16)
    assert first == second and first["masked_tokens"] > 50


def test_cli_eval_of_a_language_adapter(
    language_adapter, tiny_backbone_path, paired_text, tmp_path, capsys
):
    folder, _ = language_adapter
    argv = ["eval", str(folder), "--data", str(paired_text), "--probe-steps", "20"]
    argv += ["--backbone", str(tiny_backbone_path), "--output", str(tmp_path / "eval")]
    assert cli(argv) == 0
    out = capsys.readouterr().out
    assert "| head only (frozen backbone + fresh MLM head) |" in out and "| unigram" in out
    (report,) = json.loads((tmp_path / "eval" / "language.json").read_text())
    assert report["probe_steps"] == 20 and report["lang"] == "de"
