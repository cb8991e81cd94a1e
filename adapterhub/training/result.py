"""What a training run hands back to its caller."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapterhub.recipes import Recipe


@dataclass
class TrainResult:
    """What a run produced. ``metrics`` maps test language -> {metric: value}."""

    output_dir: Path | None
    recipe: Recipe
    labels: list[str]
    train_langs: list[str]
    zero_shot: bool
    metrics: dict[str, dict[str, float]]
    best_validation: float
    steps: int
    parameters: dict[str, Any]
    seconds: float
    dataset: str = ""
    published: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    world_size: int = 1
    """Processes that trained together (``accelerator.num_processes``)."""
    model: Any = None  # the trained task module (main process), for callers that go on using it
