"""Tasks: what a head looks like, how a batch is built, the loss and what the metrics compare.

One module per task type, all of the same shape (a :class:`Task` subclass):

- :mod:`~adapterhub.tasks.sequence`: sequence classification (sentiment, langid) with a linear
  head on the mean-pooled (not normalised) last hidden state.
- :mod:`~adapterhub.tasks.token`: token classification (pos), a word's label read at its first
  sub-token.
- :mod:`~adapterhub.tasks.mlm`: masked language modelling for language adapters, with a small
  MLM head tied to the frozen word embeddings (the e5 backbone ships no MLM head). That head is
  a training aid and is never published.

Heads are saved as ``head.safetensors`` (``weight`` [num_labels, hidden], ``bias`` [num_labels],
metadata ``labels`` = JSON list, ``task_type`` = ``sequence`` or ``token``), see docs/FORMAT.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from adapterhub.errors import UsageError

HEAD_FILE = "head.safetensors"


@dataclass(frozen=True)
class TaskSpec:
    """A named task: its type and the built-in dataset it trains on by default."""

    name: str
    task_type: str  # sequence | token | mlm
    dataset: str
    metric: str  # the validation metric that picks the best checkpoint
    kind: str  # the manifest's adapter kind: task or language


TASKS: dict[str, TaskSpec] = {
    "sentiment": TaskSpec("sentiment", "sequence", "sentiment", "accuracy", "task"),
    "langid": TaskSpec("langid", "sequence", "langid", "macro_f1", "task"),
    "pos": TaskSpec("pos", "token", "pos", "macro_f1", "task"),
    "mlm": TaskSpec("mlm", "mlm", "text", "mlm_accuracy", "language"),
}


def get_task(name: str) -> TaskSpec:
    if name not in TASKS:
        raise UsageError(f"unknown task {name!r}; use one of: {', '.join(TASKS)}")
    return TASKS[name]


class Task(nn.Module):
    """A head on top of an adapted encoder. ``forward(batch)`` returns (loss, logits)."""

    task_type: str = ""

    def __init__(self, encoder: nn.Module, hidden_size: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.hidden_size = hidden_size

    def collate(self, examples: list[dict], tokenizer, max_length: int, generator=None) -> dict:
        raise NotImplementedError

    def predictions(self, logits: torch.Tensor, batch: dict) -> tuple[list[int], list[int]]:
        """(predicted, reference) label ids of the scored positions, flattened."""
        raise NotImplementedError

    def encode(self, batch: dict) -> torch.Tensor:
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask") if k in batch}
        return self.encoder(**inputs).last_hidden_state


class LabelHeadTask(Task):
    """A task whose head is one dropout + Linear onto named labels (sequence and token)."""

    def __init__(self, encoder: nn.Module, hidden_size: int, labels: list[str], dropout: float):
        super().__init__(encoder, hidden_size)
        self.labels = list(labels)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, len(labels))


def save_head(linear: nn.Linear, labels: list[str], task_type: str, directory: str | Path) -> Path:
    """Write ``head.safetensors`` exactly as docs/FORMAT.md says."""
    from safetensors.torch import save_file

    path = Path(directory) / HEAD_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {
        "weight": linear.weight.detach().float().cpu().contiguous(),
        "bias": linear.bias.detach().float().cpu().contiguous(),
    }
    metadata = {"labels": json.dumps(list(labels), ensure_ascii=False), "task_type": task_type}
    save_file(tensors, str(path), metadata=metadata)
    return path


def load_head(directory: str | Path) -> tuple[nn.Linear, list[str], str]:
    """(linear head, label names, task_type) from ``head.safetensors`` (safetensors only)."""
    from safetensors import safe_open

    path = Path(directory) / HEAD_FILE
    if not path.is_file():
        raise UsageError(f"{directory} has no {HEAD_FILE}; it is not a task adapter folder")
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        weight = handle.get_tensor("weight")
        bias = handle.get_tensor("bias")
    try:
        labels = json.loads(metadata["labels"])
        task_type = metadata["task_type"]
    except (KeyError, ValueError) as exc:
        raise UsageError(f"{path} lacks the `labels`/`task_type` metadata ({exc})") from exc
    if weight.shape[0] != len(labels) or bias.shape != (len(labels),):
        raise UsageError(
            f"{path}: weight {tuple(weight.shape)} / bias {tuple(bias.shape)} do not match "
            f"{len(labels)} labels"
        )
    linear = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        linear.weight.copy_(weight)
        linear.bias.copy_(bias)
    return linear, labels, task_type


def build_task(
    spec: TaskSpec,
    encoder: nn.Module,
    hidden_size: int,
    labels: list[str],
    *,
    dropout: float = 0.1,
    embeddings: nn.Embedding | None = None,
    mask_token_id: int | None = None,
    mlm_probability: float = 0.15,
) -> Task:
    """The task module for ``spec`` on ``encoder``."""
    if spec.task_type == "sequence":
        from adapterhub.tasks.sequence import SequenceClassification

        return SequenceClassification(encoder, hidden_size, labels, dropout)
    if spec.task_type == "token":
        from adapterhub.tasks.token import TokenClassification

        return TokenClassification(encoder, hidden_size, labels, dropout)
    from adapterhub.tasks.mlm import MaskedLanguageModel

    if embeddings is None or mask_token_id is None:
        raise UsageError("masked language modelling needs the word embeddings and a <mask> token")
    return MaskedLanguageModel(encoder, hidden_size, embeddings, mask_token_id, mlm_probability)
