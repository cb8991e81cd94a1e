"""Token classification: a linear head on each token; a word's label sits on its first sub-token."""

from __future__ import annotations

import torch
from torch import nn

from adapterhub.tasks import LabelHeadTask

IGNORE = -100


class TokenClassification(LabelHeadTask):
    task_type = "token"

    def collate(self, examples, tokenizer, max_length, generator=None):
        encoded = tokenizer(
            [list(e["tokens"]) for e in examples],
            is_split_into_words=True,
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        batch = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
        if "tags" in examples[0]:
            labels = torch.full_like(encoded["input_ids"], IGNORE)
            for row, example in enumerate(examples):
                previous = None
                for position, word in enumerate(encoded.word_ids(row)):
                    if word is not None and word != previous:
                        labels[row, position] = int(example["tags"][word])
                    previous = word
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
