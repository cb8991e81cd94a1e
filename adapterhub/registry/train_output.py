"""What a training run left in its output folder, read back for ``registry publish`` (here, not
under training/, which imports the training stack: seconds, for reading two files).

``adapterhub train`` writes ``metrics.json`` (test metrics per language, training languages,
whether the target language was zero-shot, parents) and ``recipe.yaml`` next to the adapter; a
folder published later by hand keeps them, the same record ``train``'s own publish makes
(:mod:`adapterhub.training.publish`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from adapterhub.errors import UsageError

METRICS_FILE = "metrics.json"
RECIPE_FILE = "recipe.yaml"


@dataclass(frozen=True)
class TrainOutput:
    metrics: dict[str, Any] | None = None
    """``{"dataset", "split", metric: value}`` for the run's target language."""
    recipe: dict[str, Any] | None = None
    parents: list[str] = field(default_factory=list)
    description: str = ""


def read_train_output(folder: str | Path) -> TrainOutput:
    """The metrics, recipe and parents a train output folder records (empty for other folders)."""
    folder = Path(folder)
    recipe = _read(folder / RECIPE_FILE, yaml.safe_load)
    summary = _read(folder / METRICS_FILE, json.loads)
    if summary is None:
        return TrainOutput(recipe=recipe)
    lang = str(summary.get("lang", ""))
    per_lang = summary.get("test") or {}
    test = per_lang.get(lang) or next(iter(per_lang.values()), {})
    train_langs = [str(x) for x in summary.get("train_langs") or []]
    zero_shot = bool(summary.get("zero_shot"))
    split = "test" + (f" (zero-shot from {','.join(train_langs)})" if zero_shot else "")
    values = {
        k: float(v)
        for k, v in test.items()
        if k not in ("examples", "loss") and isinstance(v, (int, float))
    }
    description = ""
    if summary.get("task") and train_langs:
        description = (
            f"{summary['task']} adapter for {lang} ({summary.get('method', '?')}) trained on "
            f"{', '.join(train_langs)}" + (f"; evaluated zero-shot on {lang}" if zero_shot else "")
        )
    return TrainOutput(
        metrics={"dataset": str(summary.get("dataset", "")), "split": split, **values},
        recipe=recipe,
        parents=[str(p) for p in summary.get("parents") or []],
        description=description,
    )


def _read(path: Path, parse) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = parse(path.read_text(encoding="utf-8"))
    except (ValueError, yaml.YAMLError) as exc:
        raise UsageError(f"{path} is not valid ({exc}); fix it or give --metrics/--recipe") from exc
    if not isinstance(data, dict):
        raise UsageError(f"{path} does not hold a mapping; fix it or give --metrics/--recipe")
    return data


__all__ = ["TrainOutput", "read_train_output"]
