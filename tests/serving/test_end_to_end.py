"""What is served is what was evaluated (issue 12.5), end to end as a user runs it: ``adapterhub
train`` a short run on the tiny backbone (which publishes it), ``adapterhub eval --predictions``
on texts longer than the recipe's ``max_length``, then the published entry served over real HTTP:
the server's labels and scores equal eval's for every text, so it cut the texts where training
and evaluation did. A second entry of the same weights whose record says another max length is
served differently, so the comparison would catch a server that ignored the record."""

from __future__ import annotations

import csv
import json
import random

import httpx
import pytest

from adapterhub.cli import main
from adapterhub.runtime import Runtime
from adapterhub.server import ServerThread, create_app

MAX_LENGTH = 16
"""The recipe's max length; the tiny backbone reads up to 128 tokens, the server 512 by default."""
GOOD = ["gut", "toll", "wunderbar", "super", "schön"]
BAD = ["schlecht", "langweilig", "furchtbar", "öde", "schwach"]
FILLER = ["das", "buch", "ist", "der", "film", "war", "sehr", "und", "aber", "die", "story"]


def _text(rng: random.Random, word: str, words: int) -> str:
    filler = [rng.choice(FILLER) for _ in range(words)]
    filler.insert(rng.randrange(len(filler) + 1), word)
    return " ".join(filler)


@pytest.fixture
def data(tmp_path):
    """A folder as a user gives it: train.csv of short texts, test.csv of texts several times
    the recipe's max length (the sentiment word anywhere in them)."""
    rng = random.Random(0)
    folder = tmp_path / "data"
    folder.mkdir()
    for split, count, words in (("train", 80, 4), ("validation", 10, 4), ("test", 12, 40)):
        with (folder / f"{split}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label", "lang"])
            for i in range(count):
                label = ("negative", "positive")[i % 2]
                word = rng.choice(GOOD if label == "positive" else BAD)
                writer.writerow([_text(rng, word, words), label, "de"])
    return folder


def _cli(*argv) -> None:
    assert main([str(a) for a in argv]) == 0, argv


def _served(runtime: Runtime, adapter: str, texts: list[str]) -> list[dict]:
    with ServerThread(create_app(runtime)) as running:
        response = httpx.post(
            running.url + "/v1/predict", json={"adapter": adapter, "inputs": texts}, timeout=60
        )
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


def test_served_scores_equal_evals_on_inputs_longer_than_max_length(
    isolated_home, monkeypatch, tiny_backbone, tiny_backbone_path, data, tmp_path
):
    monkeypatch.setenv("ADAPTERHUB_PROJECT_REGISTRY", "")  # only what this test publishes
    monkeypatch.delenv("ADAPTERHUB_NAMESPACE", raising=False)  # published as local
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"task: sentiment\nmin_train_examples: 10\nmax_length: {MAX_LENGTH}\nbatch_size: 16\n"
    )
    _cli(
        "train", "--task", "sentiment", "--lang", "de", "--recipe", recipe, "--data", data,
        "--backbone", tiny_backbone_path, "--max-steps", "30", "--learning-rate", "0.01",
        "--no-progress", "--output", tmp_path / "run",
    )  # fmt: skip
    adapter = "sentiment/de@local:1.0.0"
    entry = isolated_home / "registry/local/sentiment/de/1.0.0"
    manifest = json.loads((entry / "manifest.json").read_text())
    assert manifest["preprocessing"]["max_length"] == MAX_LENGTH

    predictions = tmp_path / "predictions.jsonl"
    _cli(
        "eval", adapter, "--data", data, "--langs", "de", "--backbone", tiny_backbone_path,
        "--predictions", predictions, "--output", tmp_path / "eval",
    )  # fmt: skip
    evaluated = [json.loads(line) for line in predictions.read_text().splitlines()]
    texts = [row["text"] for row in evaluated]
    assert len(texts) == 12
    lengths = [len(tiny_backbone.tokenizer(text)["input_ids"]) for text in texts]
    assert min(lengths) > 2 * MAX_LENGTH and max(lengths) <= 128, lengths

    runtime = Runtime(tiny_backbone, registry=isolated_home / "registry")
    served = _served(runtime, adapter, texts)
    for row, answer in zip(evaluated, served):
        assert answer["label"] == row["prediction"], row["text"]
        assert answer["scores"] == pytest.approx(row["probabilities"], abs=1e-5), row["text"]

    # the same weights recorded with the backbone's whole length are served otherwise: a
    # server that read past the recipe's max length would fail the comparison above
    _cli(
        "registry", "publish", tmp_path / "run", "--id", "sentiment/de:1.0.1",
        "--backbone", tiny_backbone_path, "--recipe",
        json.dumps({**manifest["recipe"], "max_length": 128}),
    )  # fmt: skip
    untruncated = _served(runtime, "sentiment/de@local:1.0.1", texts)
    differ = [
        row["text"]
        for row, answer in zip(evaluated, untruncated)
        if answer["scores"] != pytest.approx(row["probabilities"], abs=1e-5)
    ]
    assert len(differ) == len(texts)
