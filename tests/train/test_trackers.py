"""--report-to through accelerate's own trackers: TensorBoard gets the run's numbers; a tracker
whose package is missing is one clear line."""

from __future__ import annotations

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from train_helpers import recipe_for, train_losses

from adapterhub.cli import main
from adapterhub.errors import UsageError
from adapterhub.training import train
from adapterhub.training.tracking import TRACKERS


def test_tensorboard_receives_the_logged_losses_and_metrics(tiny_backbone, data_for, tmp_path):
    recipe = recipe_for("sentiment", "lora", data_for, max_steps=6, report_to="tensorboard")
    result = train(recipe, output_dir=tmp_path / "out", backbone=tiny_backbone, progress=False)
    [run] = (tmp_path / "out" / "logs").iterdir()
    assert run.name == "sentiment-en"
    events = EventAccumulator(str(run))
    events.Reload()
    losses = [(e.step, e.value) for e in events.Scalars("train/loss")]
    assert [step for step, _ in losses] == list(range(1, 7))
    assert [value for _, value in losses] == pytest.approx(train_losses(result))
    validation = events.Scalars("validation/accuracy")
    assert [e.step for e in validation] == [6]
    test = events.Scalars("test/en/accuracy")
    assert test[-1].value == pytest.approx(result.metrics["en"]["accuracy"])


def test_a_missing_tracker_package_names_what_to_install(
    tiny_backbone_path, sentiment_csv, tmp_path, capsys
):
    missing = [name for name, (_, available) in TRACKERS.items() if not available()]
    if not missing:
        pytest.skip("every tracker's package is installed here")
    name = missing[0]
    with pytest.raises(UsageError, match=f"pip install {TRACKERS[name][0]}"):
        train(recipe_for("sentiment", "lora", {"sentiment": sentiment_csv}, report_to=name))
    code = main(
        ["train", "--task", "sentiment", "--lang", "en", "--data", str(sentiment_csv),
         "--backbone", str(tiny_backbone_path), "--no-publish", "--output", str(tmp_path / "o"),
         "--report-to", name]
    )  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and f"--report-to {name} needs" in err[0]
