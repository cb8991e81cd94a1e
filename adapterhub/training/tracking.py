"""Experiment trackers through accelerate's own (``Accelerator(log_with=...)``): which are
installed, and the recipe as the flat hyperparameters every tracker accepts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from accelerate.utils import is_mlflow_available, is_tensorboard_available, is_wandb_available

from adapterhub.errors import UsageError
from adapterhub.recipes import Recipe

TRACKERS: dict[str, tuple[str, Callable[[], bool]]] = {
    "tensorboard": ("tensorboard", is_tensorboard_available),
    "mlflow": ("mlflow", is_mlflow_available),
    "wandb": ("wandb", is_wandb_available),
}
"""``report_to`` name -> (the package to install, accelerate's check that it is)."""


def check_tracker(name: str | None) -> str | None:
    """``name`` if its package is installed (accelerate would silently log nowhere without)."""
    if name is None:
        return None
    package, available = TRACKERS[name]
    if not available():
        raise UsageError(
            f"--report-to {name} needs the {package} package, which is not installed: "
            f"pip install {package}"
        )
    return name


def tracker_config(recipe: Recipe) -> dict[str, bool | int | float | str]:
    """The recipe with lists joined by commas and None as "none": TensorBoard's hparams take
    only scalars and text."""
    flat: dict[str, bool | int | float | str] = {}
    for key, value in recipe.to_dict().items():
        if value is None:
            flat[key] = "none"
        elif isinstance(value, list | tuple):
            flat[key] = ",".join(str(v) for v in value)
        else:
            flat[key] = value
    return flat


def scalars(entry: dict[str, Any], prefix: str) -> dict[str, float]:
    """The numbers of a log entry under ``prefix/`` (what a tracker plots)."""
    return {
        f"{prefix}/{key}": float(value)
        for key, value in entry.items()
        if isinstance(value, int | float) and not isinstance(value, bool) and key != "step"
    }
