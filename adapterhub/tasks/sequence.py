"""Sequence classification (sentiment, langid): a linear head on the mean-pooled last hidden state.

Data: rows with ``text`` and a ``label`` class. Served answer: the best ``label`` and the
softmax ``scores`` of every label; ``truncated`` when the text was cut at the adapter's
``max_length`` (as training and evaluation cut it).
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, Field
from torch import nn

from adapterhub.backbone import mean_pool
from adapterhub.data import TEXT_CLASSIFICATION
from adapterhub.tasks.base import (
    Encoded,
    LabelHeadModel,
    TaskModel,
    TaskType,
    encode_text,
    pad_batch,
    pad_id,
    scores,
)
from adapterhub.tasks.metrics import classification_metrics


class SequencePrediction(BaseModel):
    """One input's label and the probability of every label."""

    label: str
    scores: dict[str, float]
    truncated: bool | None = Field(
        None, description="true when the input was cut at the adapter's max_length tokens"
    )


class SequenceClassification(LabelHeadModel):
    def collate(self, examples, tokenizer, max_length, generator=None):
        rows = [encode_text(tokenizer, e["text"], max_length).input_ids for e in examples]
        batch = pad_batch(rows, pad_id(tokenizer))
        if "label" in examples[0]:
            batch["labels"] = torch.tensor([int(e["label"]) for e in examples])
        return batch

    def forward(self, batch: dict):
        hidden = self.encode(batch)
        pooled = mean_pool(hidden.float(), batch["attention_mask"])
        logits = self.head(self.dropout(pooled))
        loss = None
        if "labels" in batch:
            loss = nn.functional.cross_entropy(logits, batch["labels"])
        return loss, logits

    def predictions(self, logits, batch):
        return logits.argmax(-1).tolist(), batch["labels"].tolist()


class SequenceTask(TaskType):
    name = "sequence"
    data_kind = TEXT_CLASSIFICATION
    pipeline_tag = "text-classification"
    metrics = ("accuracy", "macro_f1")
    output_model = SequencePrediction

    def labels(self, features: Any) -> list[str]:
        return list(features["label"].names)

    def model(self, encoder, hidden_size, labels, *, dropout: float = 0.1, **_: Any) -> TaskModel:
        return SequenceClassification(self, encoder, hidden_size, labels, dropout)

    def compute_metrics(self, predictions, references):
        return classification_metrics(predictions, references)

    def head_logits(self, hidden, pooled, head, rows):
        weight, bias = head
        return list(pooled @ weight.T + bias)

    def format(self, labels: list[str], row: Encoded, logits: torch.Tensor) -> dict[str, Any]:
        by_label = scores(labels, logits)
        answer: dict[str, Any] = {"label": labels[int(logits.argmax())], "scores": by_label}
        if row.truncated:
            answer["truncated"] = True
        return answer
