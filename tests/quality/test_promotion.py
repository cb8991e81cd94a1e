"""The promotion gate: a new version becomes what its short id means only if it does not regress
on the yardstick beyond the noise band; otherwise it is published, not promoted, and says why."""

from __future__ import annotations

import copy
import json

import peft
import pytest
import torch
from safetensors.torch import save_file

from adapterhub.cli import main as cli
from adapterhub.evaluation.yardstick import card_results, score_adapter
from adapterhub.registry import api
from adapterhub.registry.promotion import NOISE_BAND
from adapterhub.registry.resolver import Resolver


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("ADAPTERHUB_HOME", str(home))
    monkeypatch.setenv("ADAPTERHUB_PROJECT_REGISTRY", "")
    monkeypatch.delenv("ADAPTERHUB_NAMESPACE", raising=False)
    return home


@pytest.fixture
def adapter_dir(tiny_backbone, tmp_path):
    """A real PEFT LoRA folder with a sentiment head, as train writes it."""
    torch.manual_seed(0)
    model = peft.get_peft_model(
        copy.deepcopy(tiny_backbone.model),
        peft.LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"]),
    )
    folder = tmp_path / "trained"
    model.save_pretrained(folder)
    save_file(
        {"weight": torch.randn(2, tiny_backbone.hidden_size), "bias": torch.zeros(2)},
        str(folder / "head.safetensors"),
        metadata={"labels": json.dumps(["negative", "positive"]), "task_type": "sequence"},
    )
    return folder


def _publish(folder, backbone, version: str, accuracy: float | None, hard: float = 0.7):
    yardstick = None
    if accuracy is not None:
        yardstick = {
            "dataset": "sentiment-yardstick",
            "split": "dev",
            "accuracy": accuracy,
            "hard_accuracy": hard,
        }
    return api.publish(
        folder, f"sentiment/de@team:{version}", backbone=backbone, yardstick=yardstick
    )


def _short(resolver_id: str = "sentiment/de@team") -> str:
    return str(Resolver.default().resolve(resolver_id).id)


def test_a_regressing_version_is_published_but_not_promoted(
    home, adapter_dir, tiny_backbone, capsys
):
    first = _publish(adapter_dir, tiny_backbone, "1.1.0", 0.879, 0.761)
    assert first.promoted and "first version" in first.promotion.reason
    worse = _publish(adapter_dir, tiny_backbone, "1.2.0", 0.848, 0.657)
    assert not worse.promoted
    assert worse.promotion.baseline == "sentiment/de@team:1.1.0"
    assert worse.promotion.band == NOISE_BAND
    for number in ("0.848", "0.879", "-3.1 points", "0.657", "0.761", "1.5-point"):
        assert number in worse.promotion.reason, number
    # short ids keep meaning 1.1.0; the exact id still reaches 1.2.0
    assert _short() == "sentiment/de@team:1.1.0"
    assert str(Resolver.default().resolve("sentiment/de@team:1.2.0").id).endswith("1.2.0")
    assert api.find("sentiment/de@team") == first.adapter_id
    # the decision is in the manifest, the card and registry show
    stored = api.show("sentiment/de@team:1.2.0")
    assert stored.promotion == worse.promotion
    assert "Not promoted" in (api.resolve("sentiment/de@team:1.2.0") / "README.md").read_text()
    assert cli(["registry", "show", "sentiment/de@team:1.2.0"]) == 0
    captured = capsys.readouterr()
    assert "not promoted: regresses" in captured.err
    assert json.loads(captured.out)["promotion"]["promoted"] is False
    # the short id shows 1.1.0 and says why it is not the newer 1.2.0
    assert cli(["registry", "show", "sentiment/de@team"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["id"] == "sentiment/de@team:1.1.0"
    assert "sentiment/de@team:1.2.0 is newer but not promoted: regresses" in captured.err


def test_a_version_within_the_band_or_better_is_promoted(home, adapter_dir, tiny_backbone):
    _publish(adapter_dir, tiny_backbone, "1.0.0", 0.879)
    close = _publish(adapter_dir, tiny_backbone, "1.1.0", 0.879 - NOISE_BAND + 0.001)
    assert close.promoted and close.promotion.baseline == "sentiment/de@team:1.0.0"
    assert _short() == "sentiment/de@team:1.1.0"
    # judged against what the short id means now (1.1.0), not against the best ever
    better = _publish(adapter_dir, tiny_backbone, "1.2.0", 0.90)
    assert better.promoted and better.promotion.baseline == "sentiment/de@team:1.1.0"
    assert "+3.5 points" in better.promotion.reason
    assert _short() == "sentiment/de@team:1.2.0"


def test_after_an_unpromoted_version_the_next_is_judged_against_the_promoted_one(
    home, adapter_dir, tiny_backbone
):
    _publish(adapter_dir, tiny_backbone, "1.0.0", 0.88)
    assert not _publish(adapter_dir, tiny_backbone, "1.1.0", 0.80).promoted
    fixed = _publish(adapter_dir, tiny_backbone, "1.2.0", 0.875)
    assert fixed.promoted and fixed.promotion.baseline == "sentiment/de@team:1.0.0"
    assert _short() == "sentiment/de@team:1.2.0"


def test_versions_without_yardstick_results_are_not_judged(home, adapter_dir, tiny_backbone):
    plain = _publish(adapter_dir, tiny_backbone, "1.0.0", None)
    assert plain.promotion is None and plain.promoted
    judged = _publish(adapter_dir, tiny_backbone, "1.1.0", 0.5)
    assert judged.promoted and "no yardstick results" in judged.promotion.reason
    assert _short() == "sentiment/de@team:1.1.0"


def test_registry_publish_scores_the_yardstick_itself(
    home, adapter_dir, tiny_backbone, tiny_backbone_path, capsys
):
    _publish(adapter_dir, tiny_backbone, "1.0.0", 0.99)  # far above what random weights score
    argv = ["registry", "publish", str(adapter_dir), "--id", "sentiment/de@team:1.1.0"]
    assert cli([*argv, "--backbone", str(tiny_backbone_path), "--no-sign"]) == 0
    assert "not promoted: regresses beyond the 1.5-point noise band" in capsys.readouterr().out
    published = Resolver.default().resolve("sentiment/de@team:1.1.0").manifest
    expected = score_adapter(adapter_dir, backbone=tiny_backbone).accuracy()
    assert published.yardstick.values["accuracy"] == pytest.approx(expected)
    assert _short() == "sentiment/de@team:1.0.0"


def test_yanking_the_promoted_version_falls_back_past_the_unpromoted_one(
    home, adapter_dir, tiny_backbone
):
    _publish(adapter_dir, tiny_backbone, "1.0.0", 0.85)
    _publish(adapter_dir, tiny_backbone, "1.1.0", 0.88)
    assert not _publish(adapter_dir, tiny_backbone, "1.2.0", 0.80).promoted
    api.yank("sentiment/de@team:1.1.0", reason="broken")
    assert _short() == "sentiment/de@team:1.0.0"
    api.yank("sentiment/de@team:1.0.0", reason="broken")
    # only the unpromoted version is left: short ids mean it rather than nothing
    assert _short() == "sentiment/de@team:1.2.0"


def test_training_publish_scores_sentiment_on_the_yardstick(home, adapter_dir, tiny_backbone):
    results = card_results(adapter_dir, "sentiment", backbone=tiny_backbone)
    score = score_adapter(adapter_dir, backbone=tiny_backbone)
    assert results["dataset"] == "sentiment-yardstick" and results["split"] == "dev"
    assert results["accuracy"] == score.accuracy()
    assert results["hard_accuracy"] == score.accuracy(hard=True)
    assert results["accuracy_sw"] == score.accuracy("sw") and results["examples"] == 728
    assert card_results(adapter_dir, "pos", backbone=tiny_backbone) is None
