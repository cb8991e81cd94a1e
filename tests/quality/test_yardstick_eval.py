"""Scoring adapters and stacks on the yardstick (tiny backbone): per language, hard, overall."""

from __future__ import annotations

import json

import pytest
import torch

from adapterhub.cli import main as cli
from adapterhub.data import yardstick
from adapterhub.evaluation import load_task_model, predict_rows
from adapterhub.evaluation.matrix import evaluate_matrix
from adapterhub.evaluation.stacks import Stack, evaluate_stack
from adapterhub.evaluation.yardstick import paired_bootstrap, score_adapter
from adapterhub.recipes import Recipe
from adapterhub.training import train

LANGS = ["en", "de", "ja"]


def _recipe(task: str, data, **changes) -> Recipe:
    options = dict(
        task=task,
        lang="en" if task == "sentiment" else "de",
        data=str(data),
        method="lora",
        min_train_examples=10,
        max_steps=6,
        batch_size=8,
        eval_every=6,
        patience=0,
        learning_rate=1e-2,
        head_learning_rate=3e-2,
        max_length=32,
        warmup_ratio=0.0,
        dropout=0.0,
        lora_dropout=0.0,
        seed=3,
    )
    options.update(changes)
    return Recipe(**options)


@pytest.fixture(scope="module")
def trained(tiny_backbone, sentiment_texts, plain_texts, tmp_path_factory):
    """A sentiment adapter and two language adapters (de, ja) trained on the tiny backbone."""
    root = tmp_path_factory.mktemp("adapters")
    train(_recipe("sentiment", sentiment_texts), output_dir=root / "task", backbone=tiny_backbone)
    for lang in ("de", "ja"):
        recipe = _recipe("mlm", plain_texts, lang=lang, seed=4 if lang == "de" else 5)
        train(recipe, output_dir=root / f"lang-{lang}", backbone=tiny_backbone)
    return root


def test_cli_scores_languages_hard_subset_and_overall(
    trained, tiny_backbone_path, tmp_path, capsys
):
    out = tmp_path / "eval"
    rows_file = tmp_path / "rows.jsonl"
    argv = ["eval", str(trained / "task"), "--dataset", "sentiment-yardstick", "--langs"]
    argv += [",".join(LANGS), "--backbone", str(tiny_backbone_path), "--output", str(out)]
    assert cli([*argv, "--predictions", str(rows_file)]) == 0
    printed = capsys.readouterr().out
    assert "| **hard subset** |" in printed and "| **overall** |" in printed
    report = json.loads((out / "yardstick.json").read_text())
    (table,) = [a["table"] for a in report["adapters"].values()]
    assert set(table) == {*LANGS, "hard", "overall"}
    rows = [json.loads(line) for line in rows_file.read_text().splitlines()]
    assert len(rows) == 26 * len(LANGS)
    # every number is the share of its rows the adapter got right
    for lang in LANGS:
        mine = [r["correct"] for r in rows if r["lang"] == lang]
        assert table[lang] == pytest.approx(sum(mine) / len(mine))
    hard = [r["correct"] for r in rows if r["hard"]]
    assert table["hard"] == pytest.approx(sum(hard) / len(hard)) and len(hard) == 10 * len(LANGS)
    assert table["overall"] == pytest.approx(sum(r["correct"] for r in rows) / len(rows))
    assert all(r["correct"] == (r["label"] == r["prediction"]) for r in rows)


def test_rows_are_scored_as_predict_rows_scores_them(trained, tiny_backbone):
    score = score_adapter(trained / "task", backbone=tiny_backbone, langs=["de"])
    model = load_task_model(trained / "task", tiny_backbone)
    rows = yardstick.load(["de"])["dev"].to_list()
    answers = predict_rows(model, rows, tiny_backbone.tokenizer, 32)
    assert [r["prediction"] for r in score.rows] == [a["prediction"] for a in answers]


def test_a_stack_is_its_language_adapter_under_the_task_adapter(trained, tiny_backbone):
    stack = Stack(str(trained / "lang-de"), str(trained / "task"))
    score = score_adapter(stack, backbone=tiny_backbone, langs=["de"])
    direct = load_task_model(trained / "task", tiny_backbone, language_adapter=trained / "lang-de")
    plain = load_task_model(trained / "task", tiny_backbone)
    rows = yardstick.load(["de"])["dev"].to_list()
    batch = direct.collate(rows, tiny_backbone.tokenizer, 32)
    with torch.no_grad():
        stacked_logits, plain_logits = direct(batch)[1], plain(batch)[1]
    assert not torch.allclose(stacked_logits, plain_logits)  # the language adapter acts
    answers = predict_rows(direct, rows, tiny_backbone.tokenizer, 32)
    assert [r["prediction"] for r in score.rows] == [a["prediction"] for a in answers]


def test_each_language_gets_its_own_language_adapter(trained, tiny_backbone):
    template = Stack(str(trained / "lang-{lang}"), str(trained / "task"))
    score = score_adapter(template, backbone=tiny_backbone, langs=["de", "ja", "en"])
    assert score.skipped == ["en"] and score.languages == ["de", "ja"]
    for lang in ("de", "ja"):
        alone = score_adapter(
            Stack(str(trained / f"lang-{lang}"), str(trained / "task")),
            backbone=tiny_backbone,
            langs=[lang],
        )
        assert [r["prediction"] for r in alone.rows] == [
            r["prediction"] for r in score.rows if r["lang"] == lang
        ]


def test_test_splits_and_the_matrix_score_stacks(trained, tiny_backbone, sentiment_texts):
    template = Stack(str(trained / "lang-{lang}"), str(trained / "task"))
    options = dict(data=sentiment_texts, max_examples=None)
    results = evaluate_stack(template, ["de", "en"], backbone=tiny_backbone, **options)
    assert list(results) == ["de"]  # en has no language adapter here
    matrix = evaluate_matrix([template], ["de", "en"], backbone=tiny_backbone, **options)
    assert matrix == {str(template): {"de": results["de"]["accuracy"]}}


def test_paired_bootstrap_interval(trained, tiny_backbone):
    score = score_adapter(trained / "task", backbone=tiny_backbone, langs=LANGS)
    same = paired_bootstrap(score, score)
    assert same == (0.0, 0.0, 0.0)
    flipped = score_adapter(trained / "task", backbone=tiny_backbone, langs=LANGS)
    for row in flipped.rows[:20]:
        row["correct"] = not row["correct"]
    delta, low, high = paired_bootstrap(flipped, score)
    assert low <= delta <= high and delta == pytest.approx(
        sum(int(not r["correct"]) - int(r["correct"]) for r in score.rows[:20]) / len(score.rows)
    )


def test_cli_eval_scores_a_stack_on_a_test_split(
    trained, tiny_backbone_path, sentiment_texts, tmp_path, capsys
):
    stack = f"{trained / 'lang-de'},{trained / 'task'}"
    argv = ["eval", "--stack", stack, "--data", str(sentiment_texts), "--langs", "de"]
    argv += ["--backbone", str(tiny_backbone_path), "--output", str(tmp_path / "eval")]
    assert cli(argv) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "{" in line]
    (record,) = [line for line in lines if "stack" in line]
    assert record["stack"] == str(Stack.parse(stack)) and "accuracy" in record["results"]["de"]
    assert cli(["eval", "--stack", "lang/de"]) == 2  # not LANGUAGE,TASK: a usage error
