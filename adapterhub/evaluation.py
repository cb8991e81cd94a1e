"""Evaluation: metrics through ``evaluate``, per-language test reports, the cross-lingual matrix.

The metrics are ``evaluate.Metric`` modules defined here (``evaluate.load`` fetches metric
scripts from the hub, which these machines cannot reach): accuracy and macro-F1 for
classification, token accuracy and macro-F1 over words for pos. The matrix (train language x
test language) is written as JSON, a Markdown table and a heatmap PNG (matplotlib, Agg).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adapterhub.preprocessing import Preprocessing


def primary(metrics: dict[str, float], name: str) -> float:
    """The validation metric that picks the best checkpoint (accuracy falls back for token)."""
    if name in metrics:
        return metrics[name]
    return metrics.get("accuracy", metrics.get("token_accuracy", 0.0))


# --------------------------------------------------------------------------- the matrix


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


def heatmap(
    matrix: dict[str, dict[str, float]],
    path: str | Path,
    *,
    metric: str = "accuracy",
    title: str = "",
    rows: list[str] | None = None,
    columns: list[str] | None = None,
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = rows or list(matrix)
    columns = columns or sorted({c for values in matrix.values() for c in values})
    values = np.array([[matrix[r].get(c, np.nan) for c in columns] for r in rows], dtype=float)
    figure, axes = plt.subplots(figsize=(1.2 + 0.8 * len(columns), 1.0 + 0.6 * len(rows)))
    image = axes.imshow(values, cmap="viridis", vmin=np.nanmin(values), vmax=np.nanmax(values))
    axes.set_xticks(range(len(columns)), columns)
    axes.set_yticks(range(len(rows)), rows)
    axes.set_xlabel("test language")
    axes.set_ylabel("train language")
    for i in range(len(rows)):
        for j in range(len(columns)):
            if not np.isnan(values[i, j]):
                axes.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", color="w")
    axes.set_title(f"{title} ({metric})" if title else metric)
    figure.colorbar(image, ax=axes)
    figure.tight_layout()
    figure.savefig(str(path), dpi=100)
    plt.close(figure)
    return Path(path)


def loss_curve(log_lines: list[dict[str, Any]], path: str | Path) -> Path:
    """Training loss (and validation metric where logged) over steps, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    figure.tight_layout()
    figure.savefig(str(path), dpi=100)
    plt.close(figure)
    return Path(path)


# --------------------------------------------------------------------------- adapters on test sets


def _adapter_folder(adapter: str | Path, backbone) -> tuple[Path, dict[str, Any]]:
    """(folder, what we know of it: task, lang, train_langs) for a folder or a registry id."""
    folder = Path(adapter).expanduser()
    if not folder.is_dir():
        from adapterhub.registry import api

        folder = Path(api.resolve(str(adapter), backbone=backbone))
    info: dict[str, Any] = {"name": str(adapter)}
    manifest = folder / "manifest.json"
    recipe_file = folder / "recipe.yaml"
    if manifest.is_file():
        data = json.loads(manifest.read_text())
        info.update(task=data["task"], lang=data["lang"])
        recipe = data.get("recipe")
        if isinstance(recipe, dict):
            info["train_langs"] = recipe.get("train_langs") or [data["lang"]]
        record = data.get("preprocessing") or recipe
        info["preprocessing"] = Preprocessing.from_dict(
            record if isinstance(record, dict) else None
        )
    elif recipe_file.is_file():
        import yaml

        recipe = yaml.safe_load(recipe_file.read_text()) or {}
        info.update(task=recipe.get("task"), lang=recipe.get("lang"))
        info["preprocessing"] = Preprocessing.from_dict(recipe)
    metrics_file = folder / "metrics.json"
    if metrics_file.is_file():
        info["train_langs"] = json.loads(metrics_file.read_text()).get("train_langs")
    return folder, info


def evaluate_adapter(
    adapter: str | Path,
    langs: list[str],
    *,
    backbone=None,
    task: str | None = None,
    split: str = "test",
    max_examples: int | None = 1000,
    batch_size: int = 64,
    language_adapter: str | Path | None = None,
    data: str | Path | None = None,
) -> dict[str, dict[str, float]]:
    """``{lang: metrics}`` of a trained adapter (folder or registry id) on the test split of
    the task's built-in dataset, or of ``data`` (the user's file, as ``train --data`` takes)."""
    from adapterhub import data as hubdata
    from adapterhub.errors import DataError, UsageError
    from adapterhub.tasks import get_task
    from adapterhub.train import _subset, load_task_model

    if backbone is None:
        from adapterhub.backbone import load_backbone

        backbone = load_backbone()
    folder, info = _adapter_folder(adapter, backbone)
    name = task or info.get("task")
    if name in (None, "lang"):
        raise UsageError(f"{adapter}: cannot tell its task; pass --task")
    spec = get_task(name)
    if spec.task_type == "mlm":
        raise UsageError(f"{adapter} is a language adapter; evaluate the task adapters on it")
    model = load_task_model(folder, backbone, language_adapter=language_adapter)
    if data is not None:
        dataset = hubdata.load_user_data(str(data), task=spec.type.data_kind)
    else:
        dataset = hubdata.load_dataset(spec.dataset, langs)
    if split not in dataset:
        raise DataError(f"dataset {spec.dataset!r} has no split {split!r}")
    rows = dataset[split].to_list()
    names = spec.type.labels(dataset[split].features)
    if list(names) != list(model.labels):
        raise UsageError(
            f"{adapter} predicts {model.labels} but {spec.dataset} has labels {list(names)}"
        )
    preprocessing = info.get("preprocessing") or Preprocessing()
    results = {}
    for lang in langs:
        chosen = _subset([r for r in rows if r["lang"] == lang], max_examples)
        chosen = [
            {**r, "text": preprocessing.apply(r["text"])} if "text" in r else r for r in chosen
        ]
        if not chosen:
            raise DataError(f"{spec.dataset} has no {split} examples in {lang!r}")
        from adapterhub.train import evaluate_rows

        results[lang] = evaluate_rows(
            model, chosen, backbone.tokenizer, preprocessing.max_length, batch_size
        )
    return results


def evaluate_matrix(
    adapters: list[str | Path],
    langs: list[str],
    *,
    backbone=None,
    metric: str = "accuracy",
    max_examples: int | None = 1000,
    data: str | Path | None = None,
) -> dict[str, dict[str, float]]:
    """``{row: {test_lang: metric}}``; a row is an adapter named by its training languages."""
    if backbone is None:
        from adapterhub.backbone import load_backbone

        backbone = load_backbone()
    matrix: dict[str, dict[str, float]] = {}
    for adapter in adapters:
        _, info = _adapter_folder(adapter, backbone)
        row = "+".join(info.get("train_langs") or [info.get("lang") or str(adapter)])
        results = evaluate_adapter(
            adapter, langs, backbone=backbone, max_examples=max_examples, data=data
        )
        matrix[row] = {lang: values.get(metric, 0.0) for lang, values in results.items()}
    return matrix
