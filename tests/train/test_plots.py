"""The evaluation plots: written whole, with no matplotlib warning on the user's terminal."""

from __future__ import annotations

import warnings

import pytest
from PIL import Image

from adapterhub.evaluation.plots import heatmap, loss_curve


@pytest.mark.parametrize("languages", [["de"], ["de", "en", "fr", "nl", "zh", "es", "ja"]])
def test_a_matrix_of_any_size_plots_without_warnings(languages, tmp_path):
    # rows named as eval --matrix names them: long ids and stacks beside a narrow matrix
    rows = [
        "sentiment/de@local:1.0.0 (en,fr,nl,zh)",
        "[lang/de@team:0.1.0, sentiment/en@team:1.0.0]",
    ]
    matrix = {row: {column: 0.8 for column in languages} for row in rows}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a one-language matrix made tight_layout warn
        path = heatmap(
            matrix, tmp_path / "m.png", metric="accuracy", title="sentiment/de@adapterhub:1.1.0"
        )
        curve = loss_curve(
            [
                {"event": "train", "step": 1, "loss": 0.7},
                {"event": "eval", "step": 1, "value": 0.8},
            ],
            tmp_path / "loss.png",
        )
    for written in (path, curve):
        with Image.open(written) as image:
            assert image.width > 100 and image.height > 100
