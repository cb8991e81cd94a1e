"""The answers the TEI routes send, computed beside the runtime (adapterhub.runtime.outputs)."""

from __future__ import annotations

import pytest
import torch

from adapterhub.runtime import RowOutput
from adapterhub.runtime.outputs import embedding_vectors, tei_scores


def test_tei_scores_are_probabilities_best_first():
    logits = torch.tensor([1.0, 3.0, 2.0])
    scores = tei_scores(["a", "b", "c"], logits, raw=False)
    assert [label for label, _ in scores] == ["b", "c", "a"]
    want = torch.softmax(logits, -1)
    assert dict(scores) == pytest.approx(
        {"a": float(want[0]), "b": float(want[1]), "c": float(want[2])}
    )
    assert sum(score for _, score in scores) == pytest.approx(1.0)


def test_tei_raw_scores_are_the_logits_best_first():
    scores = tei_scores(["a", "b", "c"], torch.tensor([1.0, -3.0, 2.5]), raw=True)
    assert scores == [("c", 2.5), ("a", 1.0), ("b", -3.0)]


def test_embedding_vectors_normalised_or_as_pooled():
    outputs = [
        RowOutput(embedding=torch.tensor([3.0, 4.0])),
        RowOutput(embedding=torch.tensor([0.0, 2.0])),
    ]
    unit = embedding_vectors(outputs, normalize=True)
    assert [pytest.approx(v) for v in ([0.6, 0.8], [0.0, 1.0])] == unit
    assert embedding_vectors(outputs, normalize=False) == [[3.0, 4.0], [0.0, 2.0]]
