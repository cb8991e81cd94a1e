"""Task types and named tasks: the one table train, eval, the runtime and the server dispatch on.

A *task type* owns everything about one kind of task (:mod:`adapterhub.tasks.base` says what):

- :mod:`~adapterhub.tasks.sequence`: sequence classification (sentiment, langid), a linear head
  on the mean-pooled (not normalised) last hidden state;
- :mod:`~adapterhub.tasks.token`: token classification (pos), a word's label read at its first
  token;
- :mod:`~adapterhub.tasks.mlm`: masked language modelling for language adapters, with a small
  MLM head tied to the frozen word embeddings, a training aid that is never published;
- :mod:`~adapterhub.tasks.retrieval`: cross-lingual retrieval, an adapter trained with a
  symmetric InfoNCE loss on aligned pairs, no head: its output is the embedding.

A *named task* (:class:`TaskSpec`: ``sentiment``, ``pos``, ...) is a task type plus its default
dataset, checkpoint metric and adapter kind.

Adding a task type: write ``tasks/<type>.py`` with a :class:`~adapterhub.tasks.base.TaskType`
subclass (data kind and labels, the training module with collate and loss, metrics, serving
encode / head / format and the answer's pydantic model), add an instance to ``TASK_TYPES``
below, a :class:`TaskSpec` to ``TASKS``, its data loader under ``adapterhub/data/``, a recipe
``recipes/<task>.yaml`` and tests. Nothing else dispatches on the type's name.

Heads are saved as ``head.safetensors`` (``weight`` [num_labels, hidden], ``bias`` [num_labels],
metadata ``labels`` = JSON list, ``task_type``), see docs/FORMAT.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapterhub.errors import UsageError
from adapterhub.tasks.base import (
    HEAD_FILE,
    Encoded,
    Preprocessing,
    TaskModel,
    TaskType,
    load_head,
    save_head,
)
from adapterhub.tasks.mlm import MaskedLanguageTask
from adapterhub.tasks.retrieval import RetrievalTask
from adapterhub.tasks.sequence import SequenceTask
from adapterhub.tasks.token import TokenTask

TASK_TYPES: dict[str, TaskType] = {
    t.name: t for t in (SequenceTask(), TokenTask(), MaskedLanguageTask(), RetrievalTask())
}
"""Every task type by name."""

HEAD_TASK_TYPES = tuple(name for name, t in TASK_TYPES.items() if t.publishes_head)
"""Task types whose adapters carry a published ``head.safetensors``."""


@dataclass(frozen=True)
class TaskSpec:
    """A named task: its type, the built-in dataset it trains on by default, the validation
    metric that picks the best checkpoint, and the kind of adapter it makes."""

    name: str
    task_type: str
    dataset: str
    metric: str
    kind: str  # the manifest's adapter kind: task or language

    @property
    def type(self) -> TaskType:
        return TASK_TYPES[self.task_type]


TASKS: dict[str, TaskSpec] = {
    "sentiment": TaskSpec("sentiment", "sequence", "sentiment", "accuracy", "task"),
    "langid": TaskSpec("langid", "sequence", "langid", "macro_f1", "task"),
    "pos": TaskSpec("pos", "token", "pos", "macro_f1", "task"),
    "mlm": TaskSpec("mlm", "mlm", "text", "mlm_accuracy", "language"),
    "retrieval": TaskSpec("retrieval", "retrieval", "parallel", "p_at_1", "task"),
}


def get_task(name: str) -> TaskSpec:
    """The named task; an unknown name is a UsageError listing the known ones."""
    if name not in TASKS:
        raise UsageError(f"unknown task {name!r}; use one of: {', '.join(TASKS)}")
    return TASKS[name]


def get_task_type(name: str) -> TaskType:
    """The task type by name (``sequence``, ``token``, ``mlm``, ``retrieval``)."""
    if name not in TASK_TYPES:
        raise UsageError(f"unknown task type {name!r}; use one of: {', '.join(TASK_TYPES)}")
    return TASK_TYPES[name]


__all__ = [
    "HEAD_FILE",
    "HEAD_TASK_TYPES",
    "TASKS",
    "TASK_TYPES",
    "Encoded",
    "Preprocessing",
    "TaskModel",
    "TaskSpec",
    "TaskType",
    "get_task",
    "get_task_type",
    "load_head",
    "save_head",
]
