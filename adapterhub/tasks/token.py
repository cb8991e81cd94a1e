"""Token classification (pos): a linear head on each token; a word's label sits on its first token.

Data: rows with ``tokens`` (words) and ``tags`` (one class per word). Serving splits a text on
whitespace into words and answers one label per word. Words and tokens line up by construction
(:func:`~adapterhub.tasks.base.encode_words`): a word the tokenizer reduces to nothing still gets
a token, so no word vanishes and no later label shifts. An input whose words do not fit in the
adapter's ``max_length`` is refused (413) rather than answered with words left unlabelled.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel
from torch import nn

from adapterhub.data import TOKEN_CLASSIFICATION
from adapterhub.errors import InputTooLongError
from adapterhub.tasks.base import (
    IGNORE,
    Encoded,
    LabelHeadModel,
    Preprocessing,
    TaskModel,
    TaskType,
    check_words,
    encode_words,
    pad_batch,
    pad_id,
    scores,
)
from adapterhub.tasks.metrics import classification_metrics


class WordPrediction(BaseModel):
    word: str
    label: str
    scores: dict[str, float]


class TokenPredictions(BaseModel):
    """One label per whitespace-separated word of the input, in order."""

    tokens: list[WordPrediction]


class TokenClassification(LabelHeadModel):
    def collate(self, examples, tokenizer, max_length, generator=None):
        encoded = [encode_words(tokenizer, list(e["tokens"]), max_length) for e in examples]
        batch = pad_batch([e.input_ids for e in encoded], pad_id(tokenizer))
        if "tags" in examples[0]:
            labels = torch.full_like(batch["input_ids"], IGNORE)
            for row, (example, enc) in enumerate(zip(examples, encoded)):
                for word, position in enumerate(enc.first_tokens or []):
                    labels[row, position] = int(example["tags"][word])
            batch["labels"] = labels
        return batch

    def forward(self, batch: dict):
        hidden = self.encode(batch).float()
        logits = self.head(self.dropout(hidden))
        loss = None
        if "labels" in batch:
            loss = nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]),
                batch["labels"].reshape(-1),
                ignore_index=IGNORE,
            )
        return loss, logits

    def predictions(self, logits, batch):
        keep = batch["labels"] != IGNORE
        return logits.argmax(-1)[keep].tolist(), batch["labels"][keep].tolist()


class TokenTask(TaskType):
    name = "token"
    data_kind = TOKEN_CLASSIFICATION
    pipeline_tag = "token-classification"
    metrics = ("macro_f1", "token_accuracy")
    output_model = TokenPredictions

    def labels(self, features: Any) -> list[str]:
        return list(features["tags"].feature.names)

    def model(self, encoder, hidden_size, labels, *, dropout: float = 0.1, **_: Any) -> TaskModel:
        return TokenClassification(self, encoder, hidden_size, labels, dropout)

    def compute_metrics(self, predictions, references):
        values = classification_metrics(predictions, references)
        return {"token_accuracy": values["accuracy"], "macro_f1": values["macro_f1"]}

    def encode(self, tokenizer, text: str, preprocessing: Preprocessing, index: int = 0) -> Encoded:
        words = check_words(preprocessing.normalise(text), index)  # no prefix: words only
        encoded = encode_words(tokenizer, words, preprocessing.max_length)
        if encoded.truncated:
            raise InputTooLongError(
                f"input {index} has {len(words)} words; only the first "
                f"{len(encoded.first_tokens or [])} fit in the adapter's "
                f"{preprocessing.max_length} tokens: split the text"
            )
        return encoded

    def head_logits(self, hidden, pooled, head, rows):
        weight, bias = head
        logits = hidden @ weight.T + bias  # [n, T, labels]
        return [logits[j, row.first_tokens or []] for j, row in enumerate(rows)]

    def format(self, labels: list[str], row: Encoded, logits: torch.Tensor) -> dict[str, Any]:
        words = row.words or []
        tokens = []
        for word, word_logits in zip(words, logits):
            tokens.append(
                {
                    "word": word,
                    "label": labels[int(word_logits.argmax())],
                    "scores": scores(labels, word_logits),
                }
            )
        return {"tokens": tokens}
