"""``select_on``: the kept checkpoint is chosen by validation, by the yardstick, or by their mean."""

from __future__ import annotations

import json

import pytest
from train_helpers import recipe_for

from adapterhub.errors import RecipeError, UsageError
from adapterhub.evaluation.yardstick import score_adapter
from adapterhub.recipes import Recipe
from adapterhub.training import train


def _evals(result) -> list[dict]:
    return [e for e in result.history if e["event"] == "eval"]


def _run(tmp_path, tiny_backbone, data_for, select_on):
    recipe = recipe_for("sentiment", "lora", data_for, select_on=select_on, eval_every=6)
    output = tmp_path / "out"
    result = train(recipe, output_dir=output, backbone=tiny_backbone, progress=False)
    return result, output, json.loads((output / "metrics.json").read_text())


def test_validation_and_yardstick_choose_by_their_mean(tmp_path, tiny_backbone, data_for):
    result, output, metrics = _run(tmp_path, tiny_backbone, data_for, ["validation", "yardstick"])
    evals = _evals(result)
    assert len(evals) == 4
    for entry in evals:
        mean = (entry["validation_accuracy"] + entry["yardstick_accuracy"]) / 2
        assert entry["value"] == pytest.approx(mean)
        assert 0 <= entry["yardstick_worst_accuracy"] <= entry["yardstick_accuracy"]
    best = max(evals, key=lambda e: e["value"])  # the first of equals, as the loop keeps it
    assert metrics["best_step"] == best["step"]
    assert metrics["select_on"] == ["validation", "yardstick"]
    assert metrics["best_validation"] == pytest.approx(best["validation_accuracy"])
    assert metrics["selected"]["yardstick_accuracy"] == best["yardstick_accuracy"]

    # the kept weights are the chosen step's: scored afresh from the output folder as every
    # published adapter is, they give the accuracy logged at that step, text for text
    again = score_adapter(output, backbone=tiny_backbone)
    assert again.accuracy() == pytest.approx(best["yardstick_accuracy"])
    assert again.accuracy(hard=True) == pytest.approx(best["yardstick_hard_accuracy"])


def test_the_yardstick_alone_chooses_its_best_step(tmp_path, tiny_backbone, data_for):
    result, _, metrics = _run(tmp_path, tiny_backbone, data_for, ["yardstick"])
    evals = _evals(result)
    assert [e["value"] for e in evals] == [e["yardstick_accuracy"] for e in evals]
    assert metrics["best_step"] == max(evals, key=lambda e: e["yardstick_accuracy"])["step"]


def test_validation_alone_is_the_default_and_scores_no_yardstick(tmp_path, tiny_backbone, data_for):
    assert Recipe().select_on == ["validation"]
    result, _, metrics = _run(tmp_path, tiny_backbone, data_for, ["validation"])
    assert not any(k.startswith("yardstick") for e in _evals(result) for k in e)
    assert "selected" not in metrics


@pytest.mark.parametrize("bad", [[], ["test"], ["yardstick", "yardstick"], "validation,dev"])
def test_select_on_is_checked(bad):
    with pytest.raises(RecipeError, match="select_on must be one or both of validation, yardstick"):
        Recipe(select_on=bad)


def test_select_on_takes_a_comma_separated_string():
    assert Recipe(select_on="validation, yardstick").select_on == ["validation", "yardstick"]


def test_a_task_without_a_yardstick_cannot_select_on_one(tmp_path, tiny_backbone, data_for):
    recipe = recipe_for("pos", "lora", data_for, select_on=["yardstick"])
    with pytest.raises(UsageError, match="select_on: yardstick needs a task with a yardstick"):
        train(recipe, output_dir=tmp_path / "out", backbone=tiny_backbone, progress=False)


def test_other_labels_fall_back_to_validation(tmp_path, tiny_backbone, sentiment_csv, caplog):
    three = tmp_path / "stars.csv"
    lines = sentiment_csv.read_text().splitlines()
    rows = [lines[0]] + [
        line.replace(",negative,", ",one star,").replace(",positive,", ",five stars,")
        for line in lines[1:]
    ]
    rows += [f"so-so film number {i},three stars,en" for i in range(40)]
    three.write_text("\n".join(rows) + "\n")
    recipe = recipe_for(
        "sentiment", "lora", {"sentiment": three}, select_on=["validation", "yardstick"]
    )
    output = tmp_path / "out"
    with caplog.at_level("WARNING"):
        result = train(recipe, output_dir=output, backbone=tiny_backbone, progress=False)
    assert "selecting on validation" in caplog.text
    assert not any(k.startswith("yardstick") for e in _evals(result) for k in e)
    assert "- validation" in (output / "recipe.yaml").read_text()
    assert json.loads((output / "metrics.json").read_text())["select_on"] == ["validation"]
