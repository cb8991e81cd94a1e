"""Recipes for the tiny backbone's training tests: small, fast, deterministic, learnable."""

from __future__ import annotations

from adapterhub.recipes import Recipe

TASK_LANG = {"sentiment": "en", "pos": "en", "mlm": "de"}


def recipe_for(task: str, method: str, data, **changes) -> Recipe:
    options = dict(
        task=task,
        lang=TASK_LANG[task],
        data=str(data[task]),
        method=method,
        min_train_examples=10,
        max_steps=24,
        batch_size=8,
        eval_every=12,
        patience=0,
        learning_rate=3e-2 if method != "lora" else 1e-2,
        head_learning_rate=3e-2,
        max_length=32,
        warmup_ratio=0.0,
        dropout=0.0,
        lora_dropout=0.0,
        log_every=1,
        seed=3,
    )
    options.update(changes)
    return Recipe(**options)


def train_losses(result) -> list[float]:
    return [entry["loss"] for entry in result.history if entry["event"] == "train"]
