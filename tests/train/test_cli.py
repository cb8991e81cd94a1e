"""``adapterhub train`` and ``adapterhub eval`` end to end on the tiny backbone and real files."""

from __future__ import annotations

import json

import pytest
from train_helpers import recipe_for

from adapterhub.cli import main
from adapterhub.training import train

RECIPE = """\
task: sentiment
min_train_examples: 10
max_steps: 6
batch_size: 8
eval_every: 3
max_length: 32
learning_rate: 0.01
seed: 7
"""


@pytest.fixture
def recipe_file(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE)
    return path


def run(*argv: str) -> int:
    return main([str(a) for a in argv])


def test_train_publishes_and_eval_writes_the_matrix(
    tiny_backbone_path, sentiment_csv, recipe_file, tmp_path, capsys
):
    store = tmp_path / "store"
    common = [
        "--recipe", recipe_file, "--data", sentiment_csv, "--backbone", tiny_backbone_path,
        "--store", store, "--no-progress", "--max-steps", "4",
    ]  # fmt: skip
    code = run(
        "train", "--task", "sentiment", "--lang", "en", "--method", "bottleneck",
        "--output", tmp_path / "en", "--id", "sentiment/en@test:0.1.0", *common,
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "published sentiment/en@test:0.1.0" in printed and "test en:" in printed
    entry = store / "test" / "sentiment" / "en" / "0.1.0"
    manifest = json.loads((entry / "manifest.json").read_text())
    assert manifest["method"] == "bottleneck"
    assert manifest["recipe"]["max_steps"] == 4  # the flag overrode the recipe file
    assert manifest["recipe"]["seed"] == 7
    assert manifest["labels"] == ["negative", "positive"]
    assert "accuracy" in manifest["metrics"]
    assert (tmp_path / "en" / "recipe.yaml").read_text().count("max_steps: 4") == 1

    code = run(
        "train", "--task", "sentiment", "--lang", "fr", "--output", tmp_path / "fr",
        "--no-publish", *common,
    )  # fmt: skip
    assert code == 0
    assert not (tmp_path / "fr" / "manifest.json").exists()
    capsys.readouterr()

    code = run(
        "eval", tmp_path / "en", tmp_path / "fr", "--matrix", "--langs", "en,fr",
        "--data", sentiment_csv, "--backbone", tiny_backbone_path, "--output", tmp_path / "m",
    )  # fmt: skip
    assert code == 0
    matrix = json.loads((tmp_path / "m" / "matrix.json").read_text())
    assert set(matrix["matrix"]) == {"en", "fr"}
    assert set(matrix["matrix"]["en"]) == {"en", "fr"}
    assert all(0.0 <= v <= 1.0 for row in matrix["matrix"].values() for v in row.values())
    assert (tmp_path / "m" / "matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert "| en |" in (tmp_path / "m" / "matrix.md").read_text()


def test_eval_on_the_8bit_backbone_agrees_with_fp32(
    tiny_backbone_path, sentiment_csv, recipe_file, tmp_path, capsys
):
    code = run(
        "train", "--task", "sentiment", "--lang", "en", "--recipe", recipe_file,
        "--data", sentiment_csv, "--backbone", tiny_backbone_path, "--no-progress",
        "--no-publish", "--output", tmp_path / "en",
    )  # fmt: skip
    assert code == 0
    scores = {}
    for quantize in ([], ["--quantize", "8bit"]):
        capsys.readouterr()
        code = run(
            "eval", tmp_path / "en", "--langs", "en", "--data", sentiment_csv,
            "--backbone", tiny_backbone_path, "--output", tmp_path / "e", *quantize,
        )  # fmt: skip
        assert code == 0
        line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("{"))
        scores[bool(quantize)] = json.loads(line)["results"]["en"]
    assert scores[True]["examples"] == scores[False]["examples"] > 0
    assert abs(scores[True]["loss"] - scores[False]["loss"]) < 0.05
    assert scores[True]["loss"] != scores[False]["loss"]  # the 8-bit weights did run


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--task", "summarise", "--lang", "en"], "no recipe for task 'summarise'"),
        (["--task", "sentiment", "--lang", "english"], "'english' is not an ISO"),
        (
            ["--task", "sentiment", "--lang", "en", "--select-on", "test"],
            "select_on must be one or both of validation, yardstick",
        ),
    ],
)
def test_bad_flags_print_one_line(argv, words, tiny_backbone_path, sentiment_csv, tmp_path, capsys):
    code = run(
        "train", *argv, "--data", sentiment_csv, "--backbone", tiny_backbone_path,
        "--no-publish", "--output", tmp_path / "out",
    )  # fmt: skip
    assert code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0]


def test_unknown_recipe_key_is_named(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: sentiment\nbatchsize: 8\n")
    code = run("train", "--task", "sentiment", "--lang", "en", "--recipe", bad, "--no-publish")
    assert code != 0
    assert "unknown key 'batchsize' (did you mean 'batch_size'?)" in capsys.readouterr().err


@pytest.mark.parametrize("task", ["sentiment", "pos"])
def test_eval_writes_every_texts_prediction(
    task, tiny_backbone, tiny_backbone_path, data_for, tmp_path, capsys
):
    recipe = recipe_for(task, "lora", data_for, max_steps=8)
    train(recipe, output_dir=tmp_path / "a", backbone=tiny_backbone, progress=False)
    capsys.readouterr()
    predictions = tmp_path / "p" / "predictions.jsonl"
    code = run(
        "eval", tmp_path / "a", "--langs", "en", "--data", data_for[task],
        "--backbone", tiny_backbone_path, "--output", tmp_path / "e",
        "--predictions", predictions,
    )  # fmt: skip
    assert code == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("{"))
    scored = json.loads(line)["results"]["en"]
    rows = [json.loads(x) for x in predictions.read_text().splitlines()]
    assert len(rows) == scored["examples"] > 0
    assert all(r["adapter"] == str(tmp_path / "a") and r["lang"] == "en" for r in rows)
    if task == "pos":  # one label, prediction and distribution per word
        assert all(len(r["tokens"]) == len(r["label"]) == len(r["prediction"]) for r in rows)
        pairs = [(p, g) for r in rows for p, g in zip(r["prediction"], r["label"], strict=True)]
        distributions = [d for r in rows for d in r["probabilities"]]
        accuracy = scored["token_accuracy"]
    else:
        assert all(
            isinstance(r["text"], str) and r["label"] in ("negative", "positive") for r in rows
        )
        pairs = [(r["prediction"], r["label"]) for r in rows]
        distributions = [r["probabilities"] for r in rows]
        accuracy = scored["accuracy"]
    assert sum(p == g for p, g in pairs) / len(pairs) == pytest.approx(accuracy)
    for distribution in distributions:
        assert sum(distribution.values()) == pytest.approx(1.0, abs=1e-5)
    assert all(max(d, key=d.get) == p for d, (p, _) in zip(distributions, pairs, strict=True))


def test_trained_metrics_record_the_world_size(tiny_backbone, data_for, tmp_path):
    recipe = recipe_for("sentiment", "lora", data_for, max_steps=2)
    result = train(recipe, output_dir=tmp_path / "a", backbone=tiny_backbone, progress=False)
    assert result.world_size == 1
    assert json.loads((tmp_path / "a" / "metrics.json").read_text())["world_size"] == 1


def test_select_on_flag_reaches_the_run(tiny_backbone_path, sentiment_csv, recipe_file, tmp_path):
    code = run(
        "train", "--task", "sentiment", "--lang", "en", "--recipe", recipe_file,
        "--data", sentiment_csv, "--backbone", tiny_backbone_path, "--no-publish",
        "--no-progress", "--output", tmp_path / "out", "--select-on", "validation,yardstick",
    )  # fmt: skip
    assert code == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["select_on"] == ["validation", "yardstick"]
    assert 0 <= metrics["selected"]["yardstick_accuracy"] <= 1
    log = (tmp_path / "out" / "train_log.jsonl").read_text().splitlines()
    evals = [json.loads(line) for line in log if '"event": "eval"' in line]
    assert evals and all("yardstick_worst_lang" in e for e in evals)
