"""Masked language modelling for language adapters.

The e5 backbone was trained contrastively and ships no MLM head, so a small one is trained
alongside the adapter: a dense layer and a LayerNorm, then logits against the frozen word
embeddings (tied) plus a per-token bias. It is a training aid only: never published with the
adapter (a trained folder keeps it as :data:`MLM_HEAD_FILE`, which no registry entry carries).
Logits are computed at the masked positions only (the vocabulary has 250k entries).

What makes the objective learn (the first version scored below always predicting "."):

- the bias starts at the log unigram distribution of the training texts
  (:meth:`MaskedLanguageModel.initialise`): a zero bias over 250k tokens needs thousands of
  steps before frequent tokens win, which a short run never reaches;
- the dense layer starts as the identity, so the first steps read the encoder's own states
  (on the frozen e5 they score like the best linear map fitted to them) instead of a random
  projection of them, and the head needs its own, higher learning rate (the recipe's
  ``head_learning_rate``);
- the logits are taken against the embeddings rescaled to unit mean norm, times a learnt
  scale: tied embeddings of small norm (a randomly initialised table's are 0.1) otherwise
  leave every logit near zero, and the head cannot become confident;
- evaluation masks the same positions at every call (a fixed generator), so validation
  numbers of two checkpoints compare the same tokens.

Evaluation reports ``mlm_accuracy`` and ``perplexity`` over the masked tokens, and beside them
the unigram baseline on the same tokens (``unigram_mlm_accuracy``, ``unigram_perplexity``).
:func:`fit_head` trains a head alone on a frozen encoder: the head-only baseline, and the
probe that scores a published language adapter, whose head is not published.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from adapterhub.data import MASKED_LM
from adapterhub.errors import UsageError
from adapterhub.tasks.base import IGNORE, TaskModel, TaskType, special_tokens

MLM_HEAD_FILE = "mlm_head.safetensors"
"""The MLM head in a trained folder (kept for training and evaluation, never published)."""
SMOOTHING = 0.01
"""Add-k smoothing of the unigram counts: unseen tokens keep a finite log-probability."""


def unigram_log_probs(rows: list[dict], tokenizer: Any, max_length: int, vocab: int):
    """Smoothed log-probabilities of every token id among the maskable tokens of ``rows`` (the
    texts cut at ``max_length`` as :meth:`MaskedLanguageModel.collate` cuts them)."""
    counts = torch.zeros(vocab, dtype=torch.float64)
    lead, trail = special_tokens(tokenizer)
    room = max_length - len(lead) - len(trail)
    for start in range(0, len(rows), 256):
        texts = [r["text"] for r in rows[start : start + 256]]
        for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
            ids = torch.tensor(ids[:room], dtype=torch.long)
            counts.index_add_(0, ids, torch.ones(len(ids), dtype=torch.float64))
    smoothed = counts + SMOOTHING
    return (smoothed / smoothed.sum()).log().float()


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
            nn.Linear(hidden_size, hidden_size), nn.LayerNorm(hidden_size)
        )
        with torch.no_grad():
            self.transform[0].weight.copy_(torch.eye(hidden_size))
            self.transform[0].bias.zero_()
        # tied to the frozen word embeddings: a plain attribute, not a parameter of this module
        self._embeddings = [embeddings]
        vocab = embeddings.weight.shape[0]
        # logits against embeddings of unit mean norm (e5's have 1.6, a random init's 0.1),
        # the scale learnt from there: the head can sharpen without growing its dense layer
        mean_norm = float(embeddings.weight.detach().float().norm(dim=1).mean())
        self.log_scale = nn.Parameter(torch.tensor(-math.log(max(mean_norm, 1e-6))))
        self.bias = nn.Parameter(torch.zeros(vocab))
        self.register_buffer("unigram", torch.full((vocab,), -math.log(vocab)), persistent=False)
        self.initialised = False

    def initialise(self, rows: list[dict], tokenizer: Any, max_length: int) -> None:
        """Start the bias at the training texts' unigram log-probabilities (kept as the
        unigram baseline too)."""
        log_probs = unigram_log_probs(rows, tokenizer, max_length, self.bias.shape[0])
        with torch.no_grad():
            self.unigram.copy_(log_probs)
            self.bias.copy_(log_probs)
        self.initialised = True

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

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits of hidden states [n, H] at masked positions."""
        weight = self._embeddings[0].weight.detach().float()
        return self.log_scale.exp() * (self.transform(hidden.float()) @ weight.T) + self.bias

    def forward(self, batch: dict):
        keep = batch["labels"] != IGNORE
        logits = self.logits(self.encode(batch)[keep])
        loss = nn.functional.cross_entropy(logits, batch["labels"][keep])
        return loss, logits

    def predictions(self, logits, batch):
        keep = batch["labels"] != IGNORE
        return logits.argmax(-1).tolist(), batch["labels"][keep].tolist()

    def head_state(self) -> dict[str, torch.Tensor]:
        return {
            "dense.weight": self.transform[0].weight,
            "dense.bias": self.transform[0].bias,
            "norm.weight": self.transform[1].weight,
            "norm.bias": self.transform[1].bias,
            "log_scale": self.log_scale,
            "bias": self.bias,
            "unigram": self.unigram,
        }

    def save_unpublished(self, directory: str | Path) -> None:
        """Write the head beside the adapter as :data:`MLM_HEAD_FILE` (never published)."""
        tensors = {k: v.detach().float().cpu().contiguous() for k, v in self.head_state().items()}
        save_file(tensors, str(Path(directory) / MLM_HEAD_FILE), metadata={"task_type": "mlm"})

    def load_head(self, directory: str | Path) -> None:
        tensors = load_file(str(Path(directory) / MLM_HEAD_FILE))
        with torch.no_grad():
            for name, target in self.head_state().items():
                if tensors[name].shape != target.shape:
                    raise UsageError(
                        f"{directory}/{MLM_HEAD_FILE}: {name} has shape "
                        f"{tuple(tensors[name].shape)}, not {tuple(target.shape)} as this "
                        "backbone's; it was trained on another backbone"
                    )
                target.copy_(tensors[name])
        self.initialised = True


def _batches(model: MaskedLanguageModel, rows, tokenizer, max_length, batch_size, generator):
    device = model.bias.device
    for start in range(0, len(rows), batch_size):
        batch = model.collate(rows[start : start + batch_size], tokenizer, max_length, generator)
        yield {k: v.to(device) for k, v in batch.items()}


def fit_head(
    model: MaskedLanguageModel,
    rows: list[dict],
    tokenizer: Any,
    max_length: int,
    *,
    steps: int,
    batch_size: int = 16,
    learning_rate: float = 0.005,
    seed: int = 0,
) -> list[float]:
    """Train the head alone for ``steps`` on ``rows``, the encoder frozen (its states are
    computed without gradients): the head-only baseline on the bare backbone, and the probe of
    a language adapter whose head was not published. Returns the loss of each step."""
    if not model.initialised:
        model.initialise(rows, tokenizer, max_length)
    generator = torch.Generator().manual_seed(seed)
    head = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
    optimizer = torch.optim.AdamW(head, lr=learning_rate, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1 - s / max(1, steps))
    was_training = model.training
    model.eval()  # no dropout in the encoder: the head sees the states evaluation sees
    losses: list[float] = []
    while len(losses) < steps:
        order = torch.randperm(len(rows), generator=generator).tolist()
        shuffled = [rows[i] for i in order]
        for batch in _batches(model, shuffled, tokenizer, max_length, batch_size, generator):
            keep = batch["labels"] != IGNORE
            with torch.no_grad():
                hidden = model.encode(batch)[keep]
            loss = nn.functional.cross_entropy(model.logits(hidden), batch["labels"][keep])
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            losses.append(float(loss.detach()))
            if len(losses) >= steps:
                break
    model.train(was_training)
    return losses


class MaskedLanguageTask(TaskType):
    name = "mlm"
    data_kind = MASKED_LM
    pipeline_tag = "fill-mask"
    metrics = ("mlm_accuracy", "perplexity")
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
        hits = sum(int(p == r) for p, r in zip(predictions, references, strict=True))
        return {"mlm_accuracy": hits / len(references) if references else 0.0}

    def evaluate(self, model, rows, tokenizer, max_length, batch_size):
        """Accuracy and perplexity over every masked token of ``rows`` (the same positions at
        every call), and the unigram baseline's on the same tokens."""
        generator = torch.Generator().manual_seed(1234)
        hits = unigram_hits = tokens = 0
        nll = unigram_nll = 0.0
        best_unigram = int(model.unigram.argmax())
        for batch in _batches(model, rows, tokenizer, max_length, batch_size, generator):
            keep = batch["labels"] != IGNORE
            targets = batch["labels"][keep]
            logits = model.logits(model.encode(batch)[keep])
            nll += float(nn.functional.cross_entropy(logits, targets, reduction="sum"))
            hits += int((logits.argmax(-1) == targets).sum())
            unigram_nll -= float(model.unigram[targets].sum())
            unigram_hits += int((targets == best_unigram).sum())
            tokens += len(targets)
        tokens = max(tokens, 1)
        return {
            "mlm_accuracy": hits / tokens,
            "perplexity": math.exp(nll / tokens),
            "unigram_mlm_accuracy": unigram_hits / tokens,
            "unigram_perplexity": math.exp(unigram_nll / tokens),
            "masked_tokens": float(tokens),
        }
