"""Training a retrieval adapter end to end on the tiny backbone: the loss teaches translations to
find each other, the folder has no head, and eval scores it and the bare backbone alike."""

from __future__ import annotations

import itertools
import json
import random

import pytest

from adapterhub.evaluation import evaluate_adapter
from adapterhub.recipes import Recipe
from adapterhub.tasks import HEAD_FILE
from adapterhub.training import train

WORDS = {
    "der": "the",
    "buch": "book",
    "ist": "is",
    "nicht": "not",
    "gut": "good",
    "schlecht": "bad",
    "sehr": "very",
    "und": "and",
    "ein": "a",
    "liebe": "love",
}


@pytest.fixture(scope="module")
def pair_file(tmp_path_factory):
    """German-English word-for-word pairs of three words: 96 to train on, 32 others to test."""
    combos = list(itertools.permutations(WORDS, 3))
    random.Random(0).shuffle(combos)
    folder = tmp_path_factory.mktemp("pairs")
    for name, chosen in (("train", combos[:96]), ("test", combos[96:128])):
        lines = ["text,pair,lang,pair_lang"]
        for words in chosen:
            lines.append(f"{' '.join(words)},{' '.join(WORDS[w] for w in words)},de,en")
        (folder / f"{name}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def test_a_trained_adapter_finds_more_translations_than_the_bare_backbone(
    tiny_backbone, pair_file, tmp_path
):
    recipe = Recipe(
        task="retrieval",
        lang="de",
        data=str(pair_file),
        prefix="query: ",
        min_train_examples=10,
        lora_r=8,
        target_modules=["query", "key", "value", "dense"],
        learning_rate=0.01,
        temperature=0.1,
        batch_size=16,
        max_steps=60,
        eval_every=60,
        patience=0,
        max_length=16,
        backbone=str(tiny_backbone.path),
    )
    result = train(recipe, output_dir=tmp_path / "run", backbone=tiny_backbone, progress=False)
    folder = tmp_path / "run"
    assert not (folder / HEAD_FILE).exists()  # no head: the embedding is the output
    assert (folder / "adapter_model.safetensors").is_file()
    losses = [e["loss"] for e in result.history if e["event"] == "train"]
    assert losses[-1] < losses[0]
    test = json.loads((folder / "metrics.json").read_text())["test"]["de"]
    assert {"p_at_1", "mrr", "p_at_1_text_to_pair", "p_at_1_pair_to_text"} <= set(test)

    def scores(adapter, split):
        return evaluate_adapter(
            adapter,
            ["de"],
            backbone=tiny_backbone,
            task="retrieval",
            data=str(pair_file),
            split=split,
            max_examples=None,
        )["de"]

    for split, examples, gain in (("train", 96, 0.2), ("test", 32, 0.05)):
        bare, trained = scores(None, split), scores(folder, split)
        assert bare["examples"] == trained["examples"] == examples
        assert trained["p_at_1"] > bare["p_at_1"] + gain, (split, bare, trained)
        assert trained["mrr"] > bare["mrr"]
    assert test["p_at_1"] == pytest.approx(trained["p_at_1"])  # eval reads what training did
