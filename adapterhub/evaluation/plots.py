"""Figures as PNG files (matplotlib, Agg backend: no display needed): the training loss curve
and the heatmap of a cross-lingual matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: files only, on machines without a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def heatmap(
    matrix: dict[str, dict[str, float]],
    path: str | Path,
    *,
    metric: str = "accuracy",
    title: str = "",
    rows: list[str] | None = None,
    columns: list[str] | None = None,
    row_label: str = "train language",
    column_label: str = "test language",
) -> Path:
    """``{row: {column: value}}`` as an annotated heatmap (rows: train, columns: test)."""
    rows = rows or list(matrix)
    columns = columns or sorted({c for values in matrix.values() for c in values})
    values = np.array([[matrix[r].get(c, np.nan) for c in columns] for r in rows], dtype=float)
    figure, axes = plt.subplots(figsize=(1.2 + 0.8 * len(columns), 1.0 + 0.6 * len(rows)))
    image = axes.imshow(values, cmap="viridis", vmin=np.nanmin(values), vmax=np.nanmax(values))
    axes.set_xticks(range(len(columns)), columns)
    axes.set_yticks(range(len(rows)), rows)
    axes.set_xlabel(column_label)
    axes.set_ylabel(row_label)
    for i in range(len(rows)):
        for j in range(len(columns)):
            if not np.isnan(values[i, j]):
                axes.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", color="w")
    axes.set_title(f"{title} ({metric})" if title else metric)
    figure.colorbar(image, ax=axes)
    # the saved canvas grows to hold every label: tight_layout warns and clips instead when a
    # one-language matrix leaves too narrow a figure for the title and the colour bar
    figure.savefig(str(path), dpi=100, bbox_inches="tight")
    plt.close(figure)
    return Path(path)


def loss_curve(log_lines: list[dict[str, Any]], path: str | Path) -> Path:
    """Training loss (and validation metric where logged) over steps, as a PNG."""
    train = [(r["step"], r["loss"]) for r in log_lines if r.get("event") == "train"]
    evals = [(r["step"], r["value"]) for r in log_lines if r.get("event") == "eval"]
    figure, axes = plt.subplots(figsize=(6, 3.5))
    if train:
        axes.plot(*zip(*train, strict=True), label="train loss", color="tab:blue")
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    if evals:
        other = axes.twinx()
        other.plot(*zip(*evals, strict=True), "o-", color="tab:orange", label="validation")
        other.set_ylabel("validation metric")
    axes.set_title("training")
    # the saved canvas grows to hold every label: tight_layout warns and clips instead when a
    # one-language matrix leaves too narrow a figure for the title and the colour bar
    figure.savefig(str(path), dpi=100, bbox_inches="tight")
    plt.close(figure)
    return Path(path)
