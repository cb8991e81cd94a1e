"""The task-type protocol: everything train, eval, the runtime and the server need of a task type.

A *task type* (sequence classification, token classification, masked LM, ...) is one
:class:`TaskType` subclass in one module of this package. It owns:

- data: the dataset kind it reads (``data_kind``: the columns user files must have) and how
  label names come out of a dataset's features (:meth:`TaskType.labels`);
- training: the module that puts a head on the adapted encoder, with its collate and loss
  (:meth:`TaskType.model`, a :class:`TaskModel`), and whether that head is published;
- evaluation: the metrics it reports and the one that picks the best checkpoint (per-example
  predictions through :meth:`TaskType.compute_metrics`, or the whole held-out set at once
  through :meth:`TaskType.evaluate` where the metric ranks rows against each other);
- serving: how one input text becomes token ids (:meth:`TaskType.encode`), how the head turns
  the batched forward's hidden states into each row's logits (:meth:`TaskType.head_logits`), and
  each row's answer with its pydantic schema (:meth:`TaskType.format`, ``output_model``).

The table of task types is ``adapterhub.tasks.TASK_TYPES``; everything dispatches through it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from pydantic import BaseModel
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from adapterhub.errors import InputError, UsageError
from adapterhub.preprocessing import Preprocessing

HEAD_FILE = "head.safetensors"
IGNORE = -100
"""Label id of positions that take no part in the loss (padding, later sub-tokens)."""


@dataclass
class Encoded:
    """One input as the backbone reads it: token ids, plus each word's first token for token
    tasks. ``truncated`` says the text was longer than ``max_length`` and was cut."""

    input_ids: list[int]
    words: list[str] | None = None
    first_tokens: list[int] | None = None
    truncated: bool = False


def special_tokens(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The ids a tokenizer puts before and after one sequence (``<s>`` / ``</s>`` for XLM-R)."""
    empty = tokenizer("")["input_ids"]
    if len(empty) >= 2:
        return empty[:1], empty[1:]
    return list(empty), []


def encode_text(tokenizer: Any, text: str, max_length: int) -> Encoded:
    """Token ids of one text, cut at ``max_length`` exactly as the tokenizer's own right-side
    truncation cuts (the leading and trailing special tokens are kept)."""
    ids = tokenizer(text)["input_ids"]
    if len(ids) <= max_length:
        return Encoded(ids)
    lead, trail = special_tokens(tokenizer)
    body = ids[len(lead) : len(ids) - len(trail)]
    kept = body[: max_length - len(lead) - len(trail)]
    return Encoded(lead + kept + trail, truncated=True)


def encode_words(tokenizer: Any, words: list[str], max_length: int | None) -> Encoded:
    """Token ids of pre-split words, each word's first token recorded.

    Every word gets at least one token: a word the tokenizer reduces to nothing (a control
    character, say) becomes ``<unk>``, so no word vanishes and no later label shifts. Words whose
    first token falls past ``max_length`` are cut (``truncated``; ``first_tokens`` is shorter
    than ``words``). Per-word tokenisation gives exactly the ids of
    ``tokenizer(words, is_split_into_words=True)`` wherever a word has pieces.
    """
    lead, trail = special_tokens(tokenizer)
    pieces = tokenizer(list(words), add_special_tokens=False)["input_ids"] if words else []
    unk = tokenizer.unk_token_id if tokenizer.unk_token_id is not None else 0
    limit = (max_length or 10**9) - len(lead) - len(trail)
    ids: list[int] = list(lead)
    first: list[int] = []
    truncated = False
    for word_pieces in pieces:
        word_pieces = word_pieces or [unk]
        if len(ids) - len(lead) + 1 > limit:
            truncated = True
            break
        first.append(len(ids))
        room = limit - (len(ids) - len(lead))
        ids.extend(word_pieces[:room])
    return Encoded(ids + trail, list(words), first, truncated)


def pad_batch(rows: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """``input_ids`` and ``attention_mask`` of rows padded on the right to the longest."""
    length = max((len(r) for r in rows), default=0)
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return {"input_ids": ids, "attention_mask": mask}


def pad_id(tokenizer: Any) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


class TaskModel(nn.Module):
    """A head on top of an adapted encoder, for training and evaluation.

    ``forward(batch)`` returns ``(loss, logits)``; ``collate`` builds a batch from dataset rows;
    ``predictions`` gives the (predicted, reference) label ids of the scored positions.
    """

    def __init__(self, task_type: TaskType, encoder: nn.Module, hidden_size: int) -> None:
        super().__init__()
        self.task_type = task_type
        self.encoder = encoder
        self.hidden_size = hidden_size
        self.labels: list[str] = []

    def initialise(self, rows: list[dict], tokenizer: Any, max_length: int) -> None:
        """Initialisation from the training rows before the first step (the MLM head starts
        its bias at their unigram distribution); nothing by default."""

    def save_unpublished(self, directory: str | Path) -> None:
        """Write what a trained folder keeps but no registry entry carries (the MLM head);
        nothing by default."""

    def collate(
        self, examples: list[dict], tokenizer: Any, max_length: int, generator=None
    ) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def predictions(self, logits: torch.Tensor, batch: dict) -> tuple[list[int], list[int]]:
        raise NotImplementedError

    def encode(self, batch: dict) -> torch.Tensor:
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask") if k in batch}
        return self.encoder(**inputs).last_hidden_state


class LabelHeadModel(TaskModel):
    """A task model whose head is one dropout + Linear onto named labels."""

    def __init__(
        self,
        task_type: TaskType,
        encoder: nn.Module,
        hidden_size: int,
        labels: list[str],
        dropout: float,
    ) -> None:
        super().__init__(task_type, encoder, hidden_size)
        self.labels = list(labels)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, len(labels))


class TaskType:
    """One kind of task. Subclasses fill in the class attributes and the methods they need."""

    name: ClassVar[str]
    """The type's name, as manifests and ``head.safetensors`` record it."""
    data_kind: ClassVar[str]
    """The dataset kind it reads (``adapterhub.data``: which columns rows have)."""
    pipeline_tag: ClassVar[str] = "other"
    """The Hugging Face hub's pipeline tag, for model cards."""
    metrics: ClassVar[tuple[str, ...]]
    """The metric names it reports, the first one being its default checkpoint metric."""
    publishes_head: ClassVar[bool] = True
    """Whether the trained head is saved and published with the adapter."""
    output_model: ClassVar[type[BaseModel] | None] = None
    """The pydantic schema of one row's answer in ``/v1/predict`` (None: no predictions)."""
    text_columns: ClassVar[tuple[str, ...]] = ("text",)
    """The columns of its rows that hold input text: a recipe's prefix goes before each."""

    # ---------------------------------------------------------------- data and training

    def labels(self, features: Any) -> list[str]:
        """The label names of a dataset with this type's columns ([] when it has none)."""
        return []

    def model(
        self, encoder: nn.Module, hidden_size: int, labels: list[str], **options: Any
    ) -> TaskModel:
        raise NotImplementedError

    def compute_metrics(self, predictions: list[int], references: list[int]) -> dict[str, float]:
        raise NotImplementedError

    def evaluate(
        self, model: TaskModel, rows: list[dict], tokenizer: Any, max_length: int, batch_size: int
    ) -> dict[str, float] | None:
        """Metrics of ``model`` (in eval mode, without gradients) on all of ``rows`` at once,
        for a type whose metric is not one prediction per example (retrieval ranks every
        held-out pair against the others). None, the default: evaluation scores each batch's
        :meth:`TaskModel.predictions` with :meth:`compute_metrics`."""
        return None

    # ---------------------------------------------------------------- serving

    def encode(
        self, tokenizer: Any, text: str, preprocessing: Preprocessing, index: int = 0
    ) -> Encoded:
        """Request input number ``index`` as token ids, truncated as ``preprocessing`` says."""
        return encode_text(tokenizer, preprocessing.apply(text), preprocessing.max_length)

    def head_logits(
        self,
        hidden: torch.Tensor,
        pooled: torch.Tensor,
        head: tuple[torch.Tensor, torch.Tensor],
        rows: list[Encoded],
    ) -> list[torch.Tensor]:
        """Each row's logits from the batch's hidden states [n, T, H] and pooled states [n, H]."""
        raise UsageError(f"{self.name} adapters have no head to predict with; use /embed")

    def format(self, labels: list[str], row: Encoded, logits: torch.Tensor) -> dict[str, Any]:
        """One row's answer, shaped as ``output_model``."""
        raise NotImplementedError


def scores(labels: list[str], logits: torch.Tensor) -> dict[str, float]:
    """Softmax probabilities by label name (label names are unique: heads are checked)."""
    probs = torch.softmax(logits.float(), dim=-1)
    return {label: float(value) for label, value in zip(labels, probs)}


def check_words(text: str, index: int) -> list[str]:
    """The words of a token-task input (split on whitespace); none is an error."""
    words = text.split()
    if not words:
        raise InputError(f"input {index} has no words; token tasks label whitespace-split words")
    return words


# --------------------------------------------------------------------------- head files


def save_head(linear: nn.Linear, labels: list[str], task_type: str, directory: str | Path) -> Path:
    """Write ``head.safetensors`` exactly as docs/FORMAT.md says."""
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
