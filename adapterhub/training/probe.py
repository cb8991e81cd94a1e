"""The linear probe: logistic regression on the frozen encoder's mean-pooled states.

One fit serves two uses: the baseline a task adapter must beat (benchmarks/probe.py scores it
on the yardstick; benchmarks/sentiment_quality.py on the test splits), and LP-FT (Kumar et
al. 2022), the recipe's ``head_init: probe``, where it is the classification head's starting
point before LoRA and head train together. The features are exactly what the sequence head
reads: the unnormalised mean of the last hidden states over the tokens
(:class:`~adapterhub.tasks.sequence.SequenceClassification` with a fresh adapter, which is the
identity), tokenised and cut as training cuts. They are standardised for the fit, C is chosen on
the validation rows, and the scaler is folded back into the weights, so the probe is one
``Linear`` on the raw pooled state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from torch import nn

from adapterhub.backbone import mean_pool
from adapterhub.errors import DataError, UsageError
from adapterhub.tasks.base import encode_text, pad_batch, pad_id
from adapterhub.tasks.sequence import SequenceClassification

C_GRID = (0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
"""Inverse L2 strengths tried; the best on validation is kept (ties: the stronger penalty)."""


@dataclass
class LinearProbe:
    """A fitted probe as one linear map on raw pooled states: ``logits = x @ weight.T + bias``
    with one row per label (softmax over them gives the logistic regression's probabilities)."""

    weight: np.ndarray
    bias: np.ndarray
    c: float
    validation_accuracy: float

    def logits(self, features: np.ndarray) -> np.ndarray:
        return features @ self.weight.T + self.bias

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.logits(features).argmax(-1)


def pooled_features(
    encoder: nn.Module,
    texts: list[str],
    tokenizer: Any,
    max_length: int,
    batch_size: int = 64,
) -> np.ndarray:
    """The mean-pooled last hidden state of each text, [len(texts), hidden], in the given order.
    ``encoder`` is a backbone model or a task model's adapted encoder; it runs in eval mode on
    its own device, and its train/eval mode is given back afterwards."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # less padding
    device = next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    chunks = []
    try:
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                ids = [
                    encode_text(tokenizer, texts[i], max_length).input_ids
                    for i in order[start : start + batch_size]
                ]
                batch = {k: v.to(device) for k, v in pad_batch(ids, pad_id(tokenizer)).items()}
                hidden = encoder(**batch).last_hidden_state
                chunks.append(mean_pool(hidden.float(), batch["attention_mask"]).cpu().numpy())
    finally:
        encoder.train(was_training)
    out = np.empty((len(texts), chunks[0].shape[1] if chunks else 0), dtype=np.float64)
    if chunks:
        out[order] = np.concatenate(chunks)
    return out


def fit_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    validation_x: np.ndarray,
    validation_y: np.ndarray,
    *,
    num_labels: int,
    grid: tuple[float, ...] = C_GRID,
) -> LinearProbe:
    """Logistic regression on standardised features, C chosen on validation accuracy. Labels
    are ids ``0 .. num_labels - 1``; the training rows must show every one (the probe has a row
    per label)."""
    missing = sorted(set(range(num_labels)) - set(np.unique(train_y).tolist()))
    if missing:
        raise DataError(
            f"the linear probe's training rows have no example of label id(s) {missing}; "
            "give training data with every label, or train without head_init: probe"
        )
    scaler = StandardScaler().fit(train_x)
    x_train, x_val = scaler.transform(train_x), scaler.transform(validation_x)
    best = None
    for c in grid:
        model = LogisticRegression(C=c, max_iter=5000).fit(x_train, train_y)
        score = float((model.predict(x_val) == validation_y).mean())
        if best is None or score > best[0]:
            best = (score, c, model)
    score, c, model = best
    coef, intercept = model.coef_, model.intercept_
    if coef.shape[0] == 1:  # binary: one logit difference, split evenly over the two labels
        coef = np.concatenate([-coef / 2, coef / 2])
        intercept = np.concatenate([-intercept / 2, intercept / 2])
    weight = coef / scaler.scale_  # the scaler folded in: one map on the raw pooled state
    return LinearProbe(weight, intercept - weight @ scaler.mean_, c, score)


def fit_rows(
    encoder: nn.Module,
    tokenizer: Any,
    train: list[dict],
    validation: list[dict],
    *,
    num_labels: int,
    max_length: int,
    batch_size: int = 64,
) -> LinearProbe:
    """The probe of labelled rows (``text``, ``label``) through ``encoder``."""

    def arrays(rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        texts = [r["text"] for r in rows]
        x = pooled_features(encoder, texts, tokenizer, max_length, batch_size)
        return x, np.array([int(r["label"]) for r in rows])

    return fit_probe(*arrays(train), *arrays(validation), num_labels=num_labels)


def init_head_from_probe(
    task: nn.Module,
    tokenizer: Any,
    train: list[dict],
    validation: list[dict],
    *,
    max_length: int,
    batch_size: int = 64,
) -> LinearProbe:
    """LP-FT's first stage: fit the probe on ``task``'s own pooled states (its adapter is still
    the identity) and copy it into the task's head. Every process of a distributed run fits the
    same probe on the same rows (lbfgs is deterministic), so the heads start equal."""
    if not isinstance(task, SequenceClassification):
        raise UsageError(
            "head_init: probe needs a sequence classification task (sentiment, langid), whose "
            "head reads the mean-pooled state; use head_init: random for this task"
        )
    probe = fit_rows(
        task.encoder,
        tokenizer,
        train,
        validation,
        num_labels=len(task.labels),
        max_length=max_length,
        batch_size=batch_size,
    )
    with torch.no_grad():
        task.head.weight.copy_(torch.as_tensor(probe.weight, dtype=task.head.weight.dtype))
        task.head.bias.copy_(torch.as_tensor(probe.bias, dtype=task.head.bias.dtype))
    return probe
