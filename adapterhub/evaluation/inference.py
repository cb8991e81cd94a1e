"""A trained folder on test rows: load it, score it (metrics) or predict with it (per row).

A trained folder is what ``adapterhub train`` writes: an adapter (``adapter_config.json`` +
``adapter_model.safetensors``) or, for a run with method ``none`` that fine-tuned the backbone,
the changed backbone weights (:data:`FINETUNED_FILE`), plus the task head. A registry id
resolves to its entry's folder. Training imports this module (validation and the test report);
it imports nothing from training, so the two never form a cycle.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, TextIO

import torch
import yaml
from safetensors import safe_open
from torch import nn

from adapterhub import data as hubdata
from adapterhub.backbone import load_backbone
from adapterhub.errors import DataError, UsageError
from adapterhub.methods.adapted import LANGUAGE_ADAPTER, load_adapter, wrap
from adapterhub.preprocessing import Preprocessing
from adapterhub.recipes import load_recipe
from adapterhub.registry import api
from adapterhub.tasks import HEAD_FILE, TaskModel, get_task, get_task_type, load_head
from adapterhub.tasks.base import IGNORE

FINETUNED_FILE = "finetuned.safetensors"
"""The backbone weights a method-``none`` run changed, under the backbone model's own
parameter names; metadata ``base_model`` and ``fingerprint`` name the backbone they fit."""


def sample_rows(rows: list[dict], cap: int | None) -> list[dict]:
    """At most ``cap`` of ``rows``, in order: a fixed subset (seeded apart from the run's seed)
    so that training's test report and ``adapterhub eval`` score the same texts."""
    if cap is None or len(rows) <= cap:
        return rows
    chosen = sorted(random.Random(0).sample(range(len(rows)), cap))
    return [rows[i] for i in chosen]


def primary(metrics: dict[str, float], name: str) -> float:
    """The validation metric that picks the best checkpoint (accuracy falls back for token)."""
    if name in metrics:
        return metrics[name]
    return metrics.get("accuracy", metrics.get("token_accuracy", 0.0))


# --------------------------------------------------------------------------- loading


def load_finetuned(model: nn.Module, folder: Path, backbone: Any) -> None:
    """Copy a trained folder's :data:`FINETUNED_FILE` into ``model`` (a copy of the backbone)."""
    path = folder / FINETUNED_FILE
    if backbone.quantization:
        raise UsageError(
            f"{folder} holds fine-tuned backbone weights, which load onto the unquantized "
            "backbone only; evaluate it without --quantize"
        )
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 (not iterable)
    trained_on = metadata.get("fingerprint")
    if trained_on and trained_on != backbone.fingerprint:
        raise UsageError(
            f"{folder} was fine-tuned from backbone {metadata.get('base_model')!r} "
            f"(fingerprint {trained_on[:12]}), not from {backbone.name!r} "
            f"({backbone.fingerprint[:12]}); pass --backbone {metadata.get('base_model')}"
        )
    try:
        outcome = model.load_state_dict(tensors, strict=False)
    except RuntimeError as exc:  # a shape that does not fit
        raise UsageError(f"{path} does not fit backbone {backbone.name!r}: {exc}") from exc
    if outcome.unexpected_keys:
        raise UsageError(
            f"{path} has weights backbone {backbone.name!r} lacks: "
            f"{', '.join(outcome.unexpected_keys[:5])}"
        )


def _trained_method(folder: Path) -> str | None:
    recipe_file = folder / "recipe.yaml"
    if not recipe_file.is_file():
        return None
    return (yaml.safe_load(recipe_file.read_text()) or {}).get("method")


def load_task_model(
    adapter_dir: str | Path,
    backbone: Any,
    *,
    language_adapter: str | Path | None = None,
    task_type: str | None = None,
) -> TaskModel:
    """A trained folder (adapter or fine-tuned weights, plus head) on a copy of ``backbone``,
    in eval mode. A method-``none`` folder without fine-tuned weights is a linear probe: its
    head on the plain backbone. A folder without a head (a type that publishes none, such as
    retrieval) is loaded as ``task_type``."""
    adapter_dir = Path(adapter_dir)
    linear, labels = None, []
    if task_type is None or (adapter_dir / HEAD_FILE).is_file():
        linear, labels, task_type = load_head(adapter_dir)
    adapted = wrap(backbone.model)
    if language_adapter is not None:
        load_adapter(adapted, language_adapter, role=LANGUAGE_ADAPTER)
    if (adapter_dir / FINETUNED_FILE).is_file():
        load_finetuned(adapted.base_model(), adapter_dir, backbone)
    elif _trained_method(adapter_dir) != "none":
        load_adapter(adapted, adapter_dir)
    task = get_task_type(task_type).model(adapted, backbone.hidden_size, labels)
    if linear is not None:
        with torch.no_grad():
            task.head.weight.copy_(linear.weight)
            task.head.bias.copy_(linear.bias)
    task.eval()
    return task


def bare_task_model(backbone: Any, task_type: str) -> TaskModel:
    """The plain backbone as a headless task type's model (retrieval's embeddings), in eval
    mode: the baseline an adapter must beat."""
    kind = get_task_type(task_type)
    if kind.publishes_head:
        raise UsageError(
            f"the bare backbone has no {task_type} head to evaluate; give a trained adapter"
        )
    task = kind.model(wrap(backbone.model), backbone.hidden_size, [])
    task.eval()
    return task


# --------------------------------------------------------------------------- rows


def _batches(task: TaskModel, rows: list[dict], tokenizer, max_length: int, batch_size: int):
    """(rows, batch on the model's device) in order, with the same masks at every call (mlm)."""
    generator = torch.Generator().manual_seed(1234)
    device = next(task.parameters()).device
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        batch = task.collate(chunk, tokenizer, max_length, generator)
        yield chunk, {k: v.to(device) for k, v in batch.items()}


def evaluate_rows(
    task: TaskModel, rows: list[dict], tokenizer, max_length: int, batch_size: int = 64
) -> dict[str, float]:
    """Metrics of ``task`` on ``rows`` (no gradient, its train/eval mode restored afterwards)."""
    was_training = task.training
    task.eval()
    with torch.no_grad():  # a type that ranks all rows against each other scores them itself
        ranked = task.task_type.evaluate(task, rows, tokenizer, max_length, batch_size)
    if ranked is not None:
        task.train(was_training)
        return {**ranked, "examples": len(rows)}
    predictions: list[int] = []
    references: list[int] = []
    losses = []
    with torch.no_grad():
        for _, batch in _batches(task, rows, tokenizer, max_length, batch_size):
            loss, logits = task(batch)
            if loss is not None:
                losses.append(float(loss))
            got, want = task.predictions(logits, batch)
            predictions += got
            references += want
    task.train(was_training)
    metrics = task.task_type.compute_metrics(predictions, references)
    if losses:
        metrics["loss"] = sum(losses) / len(losses)
    metrics["examples"] = len(rows)
    return metrics


def predict_rows(
    task: TaskModel, rows: list[dict], tokenizer, max_length: int, batch_size: int = 64
) -> list[dict[str, Any]]:
    """Each labelled row's reference ``label``, ``prediction`` and ``probabilities`` ({label:
    p}), in order; for a row of pre-split ``tokens``, the same three as lists with one entry per
    word (words past ``max_length`` are not scored)."""
    was_training = task.training
    task.eval()
    out: list[dict[str, Any]] = []
    with torch.no_grad():
        for chunk, batch in _batches(task, rows, tokenizer, max_length, batch_size):
            _, logits = task(batch)
            # the scored positions of each row: the row itself for a text (labels [B]), its
            # words' first tokens for tokens (labels [B, T]); [positions, labels] either way
            scored = batch["labels"] != IGNORE
            for row, row_logits, keep, want in zip(chunk, logits, scored, batch["labels"]):
                probabilities = torch.softmax(row_logits[keep].float(), dim=-1)
                references = want[keep].reshape(-1).tolist()
                answers = [
                    {
                        "label": task.labels[reference],
                        "prediction": task.labels[int(p.argmax())],
                        "probabilities": dict(zip(task.labels, p.tolist())),
                    }
                    for reference, p in zip(references, probabilities)
                ]
                if "tokens" in row:
                    out.append({k: [a[k] for a in answers] for k in answers[0]})
                else:
                    out.append(answers[0])
    task.train(was_training)
    return out


# --------------------------------------------------------------------------- adapters


def adapter_folder(adapter: str | Path, backbone) -> tuple[Path, dict[str, Any]]:
    """(folder, what we know of it: task, lang, train_langs) for a folder or a registry id."""
    folder = Path(adapter).expanduser()
    if not folder.is_dir():
        folder = Path(api.resolve(str(adapter), backbone=backbone))
    info: dict[str, Any] = {"name": str(adapter)}
    manifest = folder / "manifest.json"
    recipe_file = folder / "recipe.yaml"
    if manifest.is_file():
        data = json.loads(manifest.read_text())
        info.update(id=data["id"], task=data["task"], lang=data["lang"])
        recipe = data.get("recipe")
        if isinstance(recipe, dict):
            info["train_langs"] = recipe.get("train_langs") or [data["lang"]]
        record = data.get("preprocessing") or recipe
        info["preprocessing"] = Preprocessing.from_dict(
            record if isinstance(record, dict) else None
        )
    elif recipe_file.is_file():
        recipe = yaml.safe_load(recipe_file.read_text()) or {}
        info.update(task=recipe.get("task"), lang=recipe.get("lang"))
        info["preprocessing"] = Preprocessing.from_dict(recipe)
    metrics_file = folder / "metrics.json"
    if metrics_file.is_file():
        info["train_langs"] = json.loads(metrics_file.read_text()).get("train_langs")
    return folder, info


def evaluate_adapter(
    adapter: str | Path | None,
    langs: list[str],
    *,
    backbone=None,
    task: str | None = None,
    split: str | None = None,
    max_examples: int | None = 1000,
    batch_size: int = 64,
    language_adapter: str | Path | None = None,
    data: str | Path | None = None,
    dataset: str | None = None,
    predictions: TextIO | None = None,
) -> dict[str, dict[str, float]]:
    """``{lang: metrics}`` of a trained adapter (folder or registry id) on the test split of
    the task's built-in dataset (or the built-in ``dataset``), or of ``data`` (the user's file,
    as ``train --data`` takes). ``adapter`` None scores the bare backbone on ``task`` (a type
    without a head, such as retrieval), read as the task's recipe says. With ``predictions``,
    one JSON line per scored row is written to it as well."""
    if backbone is None:
        backbone = load_backbone()
    if adapter is None:
        if task is None:
            raise UsageError("the bare backbone needs a task to be evaluated on; pass --task")
        folder, info = None, {"preprocessing": Preprocessing.from_dict(load_recipe(task).to_dict())}
    else:
        folder, info = adapter_folder(adapter, backbone)
    name = task or info.get("task")
    if name in (None, "lang"):
        raise UsageError(f"{adapter}: cannot tell its task; pass --task")
    spec = get_task(name)
    if spec.task_type == "mlm":
        raise UsageError(f"{adapter} is a language adapter; evaluate the task adapters on it")
    if predictions is not None and spec.type.output_model is None:
        raise UsageError(f"{name} adapters give no per-text predictions to write; drop it")
    if folder is None:
        model = bare_task_model(backbone, spec.task_type)
    else:
        model = load_task_model(
            folder, backbone, language_adapter=language_adapter, task_type=spec.task_type
        )
    source = dataset or spec.dataset
    if data is not None:
        loaded = hubdata.load_user_data(str(data), task=spec.type.data_kind)
    else:
        loaded = hubdata.load_dataset(source, langs)
    if split is None:  # the test split, or a dev set's one split (sentiment-yardstick)
        split = "test" if "test" in loaded or len(loaded) != 1 else next(iter(loaded))
    if split not in loaded:
        raise DataError(f"dataset {source!r} has no split {split!r}")
    dataset_split = loaded[split]
    rows = dataset_split.to_list()
    names = spec.type.labels(dataset_split.features)
    if list(names) != list(model.labels):
        raise UsageError(f"{adapter} predicts {model.labels} but {source} has labels {list(names)}")
    preprocessing = info.get("preprocessing") or Preprocessing()
    results = {}
    for lang in langs:
        originals = sample_rows([r for r in rows if r["lang"] == lang], max_examples)
        if not originals:
            raise DataError(f"{source} has no {split} examples in {lang!r}")
        columns = [c for c in spec.type.text_columns if c in originals[0]]
        chosen = [{**r, **{c: preprocessing.apply(r[c]) for c in columns}} for r in originals]
        results[lang] = evaluate_rows(
            model, chosen, backbone.tokenizer, preprocessing.max_length, batch_size
        )
        if predictions is not None:
            answers = predict_rows(
                model, chosen, backbone.tokenizer, preprocessing.max_length, batch_size
            )
            for row, answer in zip(originals, answers):
                given = {k: row[k] for k in ("text", "tokens") if k in row}
                line = {"adapter": str(adapter), "lang": lang, **given, **answer}
                predictions.write(json.dumps(line, ensure_ascii=False) + "\n")
    return results
