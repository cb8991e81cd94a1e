"""LP-FT (``head_init: probe``): the head starts as the linear probe of the frozen backbone."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from train_helpers import recipe_for

from adapterhub.errors import DataError, RecipeError, UsageError
from adapterhub.recipes import Recipe
from adapterhub.training import Trainer, train
from adapterhub.training.probe import fit_probe, fit_rows, pooled_features


def _set_up(recipe, backbone, output=None) -> Trainer:
    trainer = Trainer(recipe, output_dir=output, backbone=backbone, progress=False)
    trainer.setup()
    return trainer


def _arrays(trainer, rows):
    texts = [r["text"] for r in rows]
    x = pooled_features(trainer.backbone.model, texts, trainer.backbone.tokenizer, 32)
    return x, np.array([int(r["label"]) for r in rows])


def test_the_head_starts_as_the_probe_of_the_frozen_backbone(tiny_backbone, data_for):
    trainer = _set_up(recipe_for("sentiment", "lora", data_for, head_init="probe"), tiny_backbone)
    data, head = trainer.data, trainer.unwrapped.head
    probe = fit_rows(
        tiny_backbone.model,
        tiny_backbone.tokenizer,
        data.train,
        data.validation,
        num_labels=2,
        max_length=32,
    )
    assert trainer.probe is not None and trainer.probe.c == probe.c
    assert torch.allclose(head.weight, torch.tensor(probe.weight, dtype=torch.float32))
    assert torch.allclose(head.bias, torch.tensor(probe.bias, dtype=torch.float32))

    # the model's own probabilities before the first step are scikit-learn's for that C
    x_train, y_train = _arrays(trainer, data.train)
    x_val, _ = _arrays(trainer, data.validation)
    scaler = StandardScaler().fit(x_train)
    reference = LogisticRegression(C=probe.c, max_iter=5000).fit(scaler.transform(x_train), y_train)
    model = trainer.unwrapped.eval()
    batch = model.collate(data.validation, tiny_backbone.tokenizer, 32)
    with torch.no_grad():
        probabilities = torch.softmax(model(batch)[1], -1).numpy()
    expected = reference.predict_proba(scaler.transform(x_val))
    np.testing.assert_allclose(probabilities, expected, atol=1e-4)


def test_the_default_head_is_not_the_probe(tiny_backbone, data_for):
    trainer = _set_up(recipe_for("sentiment", "lora", data_for), tiny_backbone)
    assert trainer.probe is None
    x, y = _arrays(trainer, trainer.data.train)
    probe = fit_probe(x, y, *_arrays(trainer, trainer.data.validation), num_labels=2)
    weight = torch.tensor(probe.weight, dtype=torch.float32)
    assert not torch.allclose(trainer.unwrapped.head.weight, weight, atol=1e-3)


def test_an_lpft_run_records_its_probe_and_trains_on(tiny_backbone, data_for, tmp_path):
    recipe = recipe_for("sentiment", "lora", data_for, head_init="probe", max_steps=4)
    train(recipe, output_dir=tmp_path / "out", backbone=tiny_backbone, progress=False)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["head_init"] == "probe"
    assert set(metrics["probe"]) == {"C", "validation"}
    assert "head_init: probe" in (tmp_path / "out" / "recipe.yaml").read_text()


def test_head_init_is_checked():
    with pytest.raises(RecipeError, match="head_init must be one of random, probe"):
        Recipe(head_init="zeros")


def test_a_probe_head_needs_a_sequence_task(tiny_backbone, data_for):
    recipe = recipe_for("pos", "lora", data_for, head_init="probe")
    with pytest.raises(UsageError, match="sequence classification"):
        _set_up(recipe, tiny_backbone)


def test_a_probe_needs_every_label_in_training():
    x = np.random.default_rng(0).normal(size=(20, 4))
    y = np.array([0, 1] * 10)
    with pytest.raises(DataError, match=r"label id\(s\) \[2\]"):
        fit_probe(x, y, x, y, num_labels=3)
