"""Answers computed from a batched forward's outputs, for the server's TEI-shaped routes.

The math lives here, beside the forward that produced the tensors, so HTTP handlers only
validate, call and shape responses.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from adapterhub.runtime.runtime import RowOutput


def tei_scores(labels: Sequence[str], logits: torch.Tensor, raw: bool) -> list[tuple[str, float]]:
    """``(label, score)`` for every label, best first: probabilities (softmax over the labels),
    or the logits themselves when ``raw`` (TEI's ``raw_scores``)."""
    values = logits.float() if raw else torch.softmax(logits.float(), dim=-1)
    pairs = [(label, float(value)) for label, value in zip(labels, values)]
    return sorted(pairs, key=lambda pair: -pair[1])


def embedding_vectors(outputs: Sequence[RowOutput], normalize: bool) -> list[list[float]]:
    """Each row's mean-pooled embedding as a list, scaled to unit length when ``normalize``."""
    vectors = [output.embedding for output in outputs]
    if normalize:
        vectors = [torch.nn.functional.normalize(vector, dim=-1) for vector in vectors]
    return [vector.tolist() for vector in vectors]
