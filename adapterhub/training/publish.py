"""A trained folder into the registry, with the run's test metrics and its recipe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adapterhub.evaluation.yardstick import card_results
from adapterhub.registry import api
from adapterhub.training.result import TrainResult


def publish_adapter(
    output: Path,
    backbone,
    result: TrainResult,
    *,
    adapter_id: str | None = None,
    store: Any = None,
    parents: list[str] | None = None,
    version: str = "1.0.0",
) -> str:
    """Publish a trained folder through the registry; returns the exact id. A task with a
    yardstick (sentiment) is scored on it first: the card reports it and the promotion gate
    judges it."""
    recipe = result.recipe
    task_name = "lang" if recipe.task == "mlm" else recipe.task
    ident = adapter_id or f"{task_name}/{recipe.lang}:{version}"
    if ":" not in ident.split("@")[-1]:
        ident = f"{ident}:{version}"
    test = result.metrics.get(recipe.lang) or next(iter(result.metrics.values()), {})
    values = {k: float(v) for k, v in test.items() if k not in ("examples", "loss")}
    split = "test" + (
        " (zero-shot from " + ",".join(result.train_langs) + ")" if result.zero_shot else ""
    )
    description = (
        f"{recipe.task} adapter for {recipe.lang} ({recipe.method}) trained on "
        f"{', '.join(result.train_langs)}"
        + (f"; evaluated zero-shot on {recipe.lang}" if result.zero_shot else "")
    )
    manifest = api.publish(
        output,
        ident,
        backbone=backbone,
        metrics={"dataset": result.dataset, "split": split, **values},
        recipe=recipe.to_dict(),
        parents=parents or [],
        description=description,
        store=store,
        yardstick=card_results(output, recipe.task, backbone=backbone),
    )
    return manifest.id
