"""The cross-lingual matrix: every adapter (rows, named by its training languages) on every test
language (columns), written as JSON, a Markdown table and a heatmap PNG."""

from __future__ import annotations

import json
from pathlib import Path

from adapterhub.backbone import load_backbone
from adapterhub.evaluation.inference import adapter_folder, evaluate_adapter
from adapterhub.evaluation.plots import heatmap
from adapterhub.evaluation.stacks import Stack, evaluate_stack


def write_matrix(
    matrix: dict[str, dict[str, float]],
    directory: str | Path,
    *,
    metric: str = "accuracy",
    title: str = "cross-lingual transfer",
    name: str = "matrix",
) -> dict[str, Path]:
    """Write ``{train_lang: {test_lang: value}}`` as JSON, Markdown and a heatmap PNG."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rows = list(matrix)
    columns = sorted({c for values in matrix.values() for c in values})
    json_path = directory / f"{name}.json"
    json_path.write_text(
        json.dumps({"metric": metric, "title": title, "matrix": matrix}, indent=2) + "\n"
    )
    md_path = directory / f"{name}.md"
    md_path.write_text(markdown_matrix(matrix, metric=metric, title=title))
    png_path = directory / f"{name}.png"
    heatmap(matrix, png_path, metric=metric, title=title, rows=rows, columns=columns)
    return {"json": json_path, "markdown": md_path, "png": png_path}


def markdown_matrix(
    matrix: dict[str, dict[str, float]], *, metric: str = "accuracy", title: str = ""
) -> str:
    """The matrix as a Markdown table, three decimals, empty cells where a value is missing."""
    columns = sorted({c for values in matrix.values() for c in values})
    lines = [f"### {title}", ""] if title else []
    lines.append(f"{metric}, rows: trained on, columns: tested on")
    lines.append("")
    lines.append("| train \\ test | " + " | ".join(columns) + " |")
    lines.append("|---|" + "---:|" * len(columns))
    for row, values in matrix.items():
        cells = [f"{values[c]:.3f}" if c in values else "" for c in columns]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def evaluate_matrix(
    adapters: list[str | Path | Stack],
    langs: list[str],
    *,
    backbone=None,
    metric: str = "accuracy",
    max_examples: int | None = 1000,
    data: str | Path | None = None,
) -> dict[str, dict[str, float]]:
    """``{row: {test_lang: metric}}``; a row is an adapter named by its training languages,
    or a stack named ``[language, task]`` (with ``lang/{lang}``, each column's own language
    adapter; columns without one stay empty)."""
    if backbone is None:
        backbone = load_backbone()
    matrix: dict[str, dict[str, float]] = {}
    for adapter in adapters:
        if isinstance(adapter, Stack):
            results = evaluate_stack(
                adapter, langs, backbone=backbone, max_examples=max_examples, data=data
            )
            matrix[str(adapter)] = {lang: v.get(metric, 0.0) for lang, v in results.items()}
            continue
        _, info = adapter_folder(adapter, backbone)
        row = "+".join(info.get("train_langs") or [info.get("lang") or str(adapter)])
        results = evaluate_adapter(
            adapter, langs, backbone=backbone, max_examples=max_examples, data=data
        )
        matrix[row] = {lang: values.get(metric, 0.0) for lang, values in results.items()}
    return matrix
