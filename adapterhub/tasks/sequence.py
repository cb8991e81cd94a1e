"""Sequence classification: a linear head on the mean-pooled last hidden state."""

from __future__ import annotations

import torch
from torch import nn

from adapterhub.backbone import mean_pool
from adapterhub.tasks import LabelHeadTask


class SequenceClassification(LabelHeadTask):
    task_type = "sequence"

    def collate(self, examples, tokenizer, max_length, generator=None):
        batch = tokenizer(
            [e["text"] for e in examples],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        batch = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
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
