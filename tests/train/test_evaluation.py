"""Metrics through evaluate against hand-computed values; the matrix files."""

from __future__ import annotations

import json

from adapterhub.evaluation import write_matrix
from adapterhub.tasks import TASK_TYPES
from adapterhub.tasks.metrics import classification_metrics


def test_accuracy_and_macro_f1_by_hand():
    # class 0: tp 2, fp 1, fn 0 -> f1 0.8; class 1: tp 1, fp 0, fn 1 -> f1 2/3
    values = classification_metrics([0, 0, 0, 1], [0, 0, 1, 1])
    assert values["accuracy"] == 0.75
    assert abs(values["macro_f1"] - (0.8 + 2 / 3) / 2) < 1e-9


def test_token_metrics_are_named_for_tokens():
    values = TASK_TYPES["token"].compute_metrics([1, 2, 3], [1, 2, 4])
    assert set(values) == {"token_accuracy", "macro_f1"}
    assert abs(values["token_accuracy"] - 2 / 3) < 1e-9


def test_matrix_files(tmp_path):
    matrix = {"en": {"en": 0.9, "de": 0.8}, "fr": {"en": 0.7, "de": 0.75}}
    paths = write_matrix(matrix, tmp_path, title="sentiment")
    data = json.loads(paths["json"].read_text())
    assert data["matrix"] == matrix and data["metric"] == "accuracy"
    table = paths["markdown"].read_text()
    assert "| train \\ test | de | en |" in table and "| fr | 0.750 | 0.700 |" in table
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"
