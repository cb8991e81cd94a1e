"""Masked language modelling for language adapters.

The e5 backbone has no MLM head, so a small one is trained alongside the adapter: a dense
layer, GELU and LayerNorm, then logits against the frozen word embeddings (tied) plus a bias.
It is a training aid only: it is not saved with the adapter and never published. Logits are
computed at the masked positions only (the vocabulary has 250k entries).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from adapterhub.data import MASKED_LM
from adapterhub.errors import UsageError
from adapterhub.tasks.base import IGNORE, TaskModel, TaskType
from adapterhub.tasks.metrics import classification_metrics


class MaskedLanguageModel(TaskModel):
    def __init__(
        self,
        task_type: TaskType,
        encoder: nn.Module,
        hidden_size: int,
        embeddings: nn.Embedding,
        mask_token_id: int,
        mlm_probability: float = 0.15,
    ):
        super().__init__(task_type, encoder, hidden_size)
        self.mask_token_id = mask_token_id
        self.mlm_probability = mlm_probability
        self.transform = nn.Sequential(
            nn.Linear(hidden_size, hidden_size), nn.GELU(), nn.LayerNorm(hidden_size)
        )
        # tied to the frozen word embeddings: a plain attribute, not a parameter of this module
        self._embeddings = [embeddings]
        self.bias = nn.Parameter(torch.zeros(embeddings.weight.shape[0]))

    def collate(self, examples, tokenizer, max_length, generator=None):
        encoded = tokenizer(
            [e["text"] for e in examples],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
            return_special_tokens_mask=True,
        )
        input_ids = encoded["input_ids"].clone()
        labels = input_ids.clone()
        special = encoded["special_tokens_mask"].bool() | (encoded["attention_mask"] == 0)
        chance = torch.rand(input_ids.shape, generator=generator)
        masked = (chance < self.mlm_probability) & ~special
        # every row scores at least one token, so no batch has an empty loss
        for row in range(input_ids.shape[0]):
            candidates = (~special[row]).nonzero().flatten()
            if not masked[row].any() and len(candidates):
                pick = torch.randint(len(candidates), (1,), generator=generator)
                masked[row, candidates[pick]] = True
        labels[~masked] = IGNORE
        roll = torch.rand(input_ids.shape, generator=generator)
        input_ids[masked & (roll < 0.8)] = self.mask_token_id
        random_ids = torch.randint(len(tokenizer), input_ids.shape, generator=generator)
        swap = masked & (roll >= 0.8) & (roll < 0.9)
        input_ids[swap] = random_ids[swap]
        return {
            "input_ids": input_ids,
            "attention_mask": encoded["attention_mask"],
            "labels": labels,
        }

    def forward(self, batch: dict):
        hidden = self.encode(batch).float()
        keep = batch["labels"] != IGNORE
        states = self.transform(hidden[keep])
        weight = self._embeddings[0].weight.detach().float()
        logits = states @ weight.T + self.bias
        loss = nn.functional.cross_entropy(logits, batch["labels"][keep])
        return loss, logits

    def predictions(self, logits, batch):
        keep = batch["labels"] != IGNORE
        return logits.argmax(-1).tolist(), batch["labels"][keep].tolist()


class MaskedLanguageTask(TaskType):
    name = "mlm"
    data_kind = MASKED_LM
    pipeline_tag = "fill-mask"
    metrics = ("mlm_accuracy",)
    publishes_head = False

    def model(
        self,
        encoder,
        hidden_size,
        labels,
        *,
        embeddings: nn.Embedding | None = None,
        mask_token_id: int | None = None,
        mlm_probability: float = 0.15,
        **_: Any,
    ) -> TaskModel:
        if embeddings is None or mask_token_id is None:
            raise UsageError(
                "masked language modelling needs the word embeddings and a <mask> token"
            )
        return MaskedLanguageModel(
            self, encoder, hidden_size, embeddings, mask_token_id, mlm_probability
        )

    def compute_metrics(self, predictions, references):
        return {"mlm_accuracy": classification_metrics(predictions, references)["accuracy"]}
