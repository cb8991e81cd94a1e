"""One training function on accelerate: recipe in, adapter folder (and registry entry) out.

``train(recipe)`` runs in one process, and unchanged under ``torchrun --nproc_per_node N``
(``accelerate launch`` on GPUs): each process takes its shard of every step's examples,
gradients are averaged by DDP, and every process evaluates the full validation set itself, so
early stopping decides identically everywhere without messages. The main process writes the
output folder:

```
adapter_config.json, adapter_model.safetensors   the adapter (docs/FORMAT.md)
head.safetensors                                 the task head (not for mlm)
recipe.yaml                                      the resolved recipe
metrics.json                                     test metrics per language, parameters, timing
train_log.jsonl                                  one JSON line per logged step and evaluation
loss_curve.png                                   training loss and validation metric
manifest.json, README.md                         when published (the registry entry's own)
```
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapterhub.errors import DataError, TrainingError, UsageError
from adapterhub.recipes import Recipe

log = logging.getLogger(__name__)

LANG_CODE_CHARS = set("abcdefghijklmnopqrstuvwxyz")


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
    model: Any = None  # the trained task module (main process), for callers that go on using it


# --------------------------------------------------------------------------- data


@dataclass
class PreparedData:
    train: list[dict]
    validation: list[dict]
    test: dict[str, list[dict]]
    labels: list[str]
    train_langs: list[str]
    zero_shot: bool
    dataset: str
    message: str = ""


def _check_lang(lang: str) -> str:
    if lang != "multi" and not (2 <= len(lang) <= 3 and set(lang) <= LANG_CODE_CHARS):
        raise UsageError(
            f"language {lang!r} is not an ISO 639-1/639-3 code (e.g. de, en, fr, gsw) or 'multi'"
        )
    return lang


def _subset(rows: list[dict], cap: int | None) -> list[dict]:
    if cap is None or len(rows) <= cap:
        return rows
    import random

    chosen = sorted(random.Random(0).sample(range(len(rows)), cap))  # fixed: not the run seed
    return [rows[i] for i in chosen]


def prepare_data(recipe: Recipe) -> PreparedData:
    """Train/validation/test examples for the recipe, choosing training languages (zero-shot
    when the target language has too little data)."""
    from adapterhub import data as hubdata
    from adapterhub.tasks import get_task

    spec = get_task(recipe.task)
    lang = _check_lang(recipe.lang)
    dataset_name = recipe.data or recipe.dataset or spec.dataset
    if recipe.data:
        dd = hubdata.load_user_data(recipe.data, task=spec.type.data_kind)
    elif spec.task_type == "sequence" and recipe.train_langs and lang == "multi":
        # langid over chosen languages: the label set is exactly those languages
        dd = hubdata.load_dataset(dataset_name, sorted(set(recipe.train_langs)))
    else:
        dd = hubdata.load_dataset(dataset_name)
    splits = {
        name: dd[name].to_list() if name in dd else [] for name in ("train", "validation", "test")
    }
    features = dd["train"].features if "train" in dd else next(iter(dd.values())).features
    labels = spec.type.labels(features)
    for rows in splits.values():
        for row in rows:
            row.setdefault("lang", "und")
            if recipe.prefix and "text" in row:
                row["text"] = recipe.prefix + row["text"]

    def of(split: str, langs: list[str] | None) -> list[dict]:
        rows = splits[split]
        if langs is None:
            return rows
        wanted = set(langs)
        return [r for r in rows if r["lang"] in wanted]

    available = sorted({r["lang"] for rows in splits.values() for r in rows})
    if recipe.data and lang not in available and lang != "multi":
        available_text = ", ".join(available)
        if available == ["und"]:  # the user's file has no lang column: it is the target language
            for rows in splits.values():
                for row in rows:
                    row["lang"] = lang
            available = [lang]
        else:
            raise DataError(f"{dataset_name} has no language {lang!r}; it has: {available_text}")
    if lang != "multi" and lang not in available:
        raise DataError(
            f"dataset {dataset_name!r} has no language {lang!r}; it has: {', '.join(available)}"
        )
    train_counts = {code: len(of("train", [code])) for code in available}
    zero_shot = False
    message = ""
    if recipe.train_langs:
        unknown = [code for code in recipe.train_langs if code not in available]
        if unknown:
            raise DataError(
                f"dataset {dataset_name!r} has no language {', '.join(unknown)}; "
                f"it has: {', '.join(available)}"
            )
        train_langs = list(recipe.train_langs)
        zero_shot = lang != "multi" and lang not in train_langs
    elif lang == "multi":
        train_langs = available
    elif train_counts.get(lang, 0) >= recipe.min_train_examples:
        train_langs = [lang]
    else:
        sources = recipe.source_langs or [
            code
            for code, count in train_counts.items()
            if count >= recipe.min_train_examples and code != lang
        ]
        sources = [code for code in sources if code in available and code != lang]
        if not sources:
            raise DataError(
                f"{lang} has {train_counts.get(lang, 0)} training examples in {dataset_name!r} "
                f"(fewer than {recipe.min_train_examples}) and no other language has enough; "
                "give more data or lower min_train_examples"
            )
        train_langs = sources
        zero_shot = True
        message = (
            f"{lang} has only {train_counts.get(lang, 0)} training examples for {recipe.task} "
            f"(fewer than {recipe.min_train_examples}): training on {', '.join(train_langs)} "
            f"and evaluating zero-shot on {lang}"
        )
    train_rows = [
        row
        for code in train_langs
        for row in _subset(of("train", [code]), recipe.max_train_examples)
    ]
    validation = [
        row
        for code in train_langs
        for row in _subset(of("validation", [code]), recipe.max_validation_examples)
    ]
    if not train_rows:
        raise DataError(
            f"no training examples for {recipe.task} in {', '.join(train_langs)} "
            f"({dataset_name}); check the data and the languages"
        )
    if not validation:  # small user data: judge on a slice of train rather than not at all
        validation = train_rows[: max(1, min(len(train_rows), 64))]
    eval_langs = recipe.eval_langs or ([lang] if lang != "multi" else []) + [
        code for code in train_langs if code != lang
    ]
    if lang == "multi" and not recipe.eval_langs:
        test = {"multi": _subset(splits["test"], (recipe.max_eval_examples or 10**9) * 10)}
    else:
        test = {}
        for code in eval_langs:
            rows = _subset(of("test", [code]), recipe.max_eval_examples)
            if rows:
                test[code] = rows
    return PreparedData(
        train_rows, validation, test, labels, train_langs, zero_shot, dataset_name, message
    )


# --------------------------------------------------------------------------- model


def _language_adapter(recipe: Recipe, backbone) -> tuple[Path, list[str]]:
    """The folder of the stack's language adapter and the parent id to record."""
    candidate = Path(recipe.stack_lang).expanduser()
    if candidate.is_dir():
        parents = []
        manifest = candidate / "manifest.json"
        if manifest.is_file():
            parents = [json.loads(manifest.read_text())["id"]]
        return candidate, parents
    from adapterhub.registry import api

    ident = recipe.stack_lang if "/" in recipe.stack_lang else f"lang/{recipe.stack_lang}"
    path = api.resolve(ident, backbone=backbone)
    manifest = json.loads((Path(path) / "manifest.json").read_text())
    return Path(path), [manifest["id"]]


def build_model(recipe: Recipe, backbone, labels: list[str], *, copy_model: bool = True):
    """(task module, parents): adapter (and stack) on the backbone, plus a fresh head."""
    from adapterhub import methods
    from adapterhub.tasks import get_task

    spec = get_task(recipe.task)
    adapted = methods.wrap(backbone.model, copy_model=copy_model)
    parents: list[str] = []
    if recipe.stack_lang:
        folder, parents = _language_adapter(recipe, backbone)
        methods.load_adapter(adapted, folder, role=methods.LANGUAGE_ADAPTER, trainable=False)
    if recipe.method != "none":
        config = methods.MethodConfig(
            method=recipe.method,
            r=recipe.lora_r,
            alpha=recipe.lora_alpha,
            dropout=recipe.lora_dropout,
            target_modules=list(recipe.target_modules),
            reduction_factor=recipe.reduction_factor,
            non_linearity=recipe.non_linearity,
        )
        methods.add_adapter(adapted, config, base_name=backbone.name)
    else:
        for parameter in adapted.parameters():
            parameter.requires_grad_(recipe.freeze != "backbone")
        if recipe.freeze == "embeddings":
            adapted.base_model().get_input_embeddings().weight.requires_grad_(False)
    embeddings = adapted.base_model().get_input_embeddings()
    task = spec.type.model(
        adapted,
        backbone.hidden_size,
        labels,
        dropout=recipe.dropout,
        embeddings=embeddings,
        mask_token_id=backbone.tokenizer.mask_token_id,
        mlm_probability=recipe.mlm_probability,
    )
    return task, parents


def load_task_model(
    adapter_dir: str | Path, backbone, *, language_adapter: str | Path | None = None
):
    """A trained adapter folder (adapter + head) on ``backbone``, ready for inference."""
    import torch

    from adapterhub import methods
    from adapterhub.tasks import get_task_type, load_head

    adapter_dir = Path(adapter_dir)
    linear, labels, task_type = load_head(adapter_dir)
    adapted = methods.wrap(backbone.model)
    if language_adapter is not None:
        methods.load_adapter(adapted, language_adapter, role=methods.LANGUAGE_ADAPTER)
    methods.load_adapter(adapted, adapter_dir)
    task = get_task_type(task_type).model(adapted, backbone.hidden_size, labels)
    with torch.no_grad():
        task.head.weight.copy_(linear.weight)
        task.head.bias.copy_(linear.bias)
    task.eval()
    return task


# --------------------------------------------------------------------------- evaluation


def evaluate_rows(task, rows: list[dict], tokenizer, recipe_or_max_length, batch_size: int = 64):
    """Metrics of ``task`` on ``rows`` (no gradient, eval mode restored afterwards)."""
    import torch

    max_length = getattr(recipe_or_max_length, "max_length", recipe_or_max_length)
    was_training = task.training
    task.eval()
    predictions: list[int] = []
    references: list[int] = []
    generator = torch.Generator().manual_seed(1234)  # mlm: the same masks at every evaluation
    losses = []
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            batch = task.collate(rows[start : start + batch_size], tokenizer, max_length, generator)
            device = next(task.parameters()).device
            batch = {k: v.to(device) for k, v in batch.items()}
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


# --------------------------------------------------------------------------- the loop


def _optimizer(task, recipe: Recipe):
    import torch

    head_lr = recipe.head_learning_rate or recipe.learning_rate
    groups: dict[tuple[float, float], list] = {}
    for name, parameter in task.named_parameters():
        if not parameter.requires_grad:
            continue
        is_head = not name.startswith("encoder.")
        lr = head_lr if is_head else recipe.learning_rate
        no_decay = parameter.ndim < 2 or "LayerNorm" in name or name.endswith("bias")
        decay = 0.0 if no_decay else recipe.weight_decay
        groups.setdefault((lr, decay), []).append(parameter)
    if not groups:
        raise TrainingError("nothing to train: every parameter is frozen")
    return torch.optim.AdamW(
        [{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()]
    )


def _length(row: dict) -> int:
    return len(row["text"]) if "text" in row else sum(len(t) + 1 for t in row["tokens"])


def _batches(
    lengths: list[int] | int, batch: int, rank: int, world: int, seed: int, epoch: int
) -> list[list[int]]:
    """This process's batches of one epoch: a seeded permutation cut into world-sized steps.

    Given ``lengths``, each run of 16 steps is sorted by length before it is cut (less
    padding), and the steps are shuffled again, so batches stay random in order and content.
    """
    import torch

    n = lengths if isinstance(lengths, int) else len(lengths)
    generator = torch.Generator().manual_seed(seed * 1000 + epoch)
    order = torch.randperm(n, generator=generator).tolist()
    step = batch * world
    steps = max(1, math.ceil(n / step))
    order = (order * math.ceil(steps * step / n))[: steps * step]  # wrap so every step is full
    if not isinstance(lengths, int):
        chunk = step * 16
        order = [
            i
            for start in range(0, len(order), chunk)
            for i in sorted(order[start : start + chunk], key=lambda i: lengths[i])
        ]
    cut = [order[s * step : (s + 1) * step] for s in range(steps)]
    if not isinstance(lengths, int):
        cut = [cut[i] for i in torch.randperm(len(cut), generator=generator).tolist()]
    return [c[rank * batch : (rank + 1) * batch] for c in cut]


def train(
    recipe: Recipe,
    *,
    output_dir: str | Path | None = None,
    backbone=None,
    publish: bool = False,
    adapter_id: str | None = None,
    store: Any = None,
    progress: bool = True,
    save: bool = True,
    keep_model: bool = False,
) -> TrainResult:
    """Train an adapter as ``recipe`` says; evaluate on test; save (and publish) it.

    ``backbone`` is a loaded :class:`~adapterhub.backbone.Backbone` to reuse (its model is
    copied, never changed); by default the recipe's backbone is loaded.
    """
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers import get_linear_schedule_with_warmup

    from adapterhub import methods
    from adapterhub.evaluation import loss_curve, primary
    from adapterhub.tasks import get_task

    started = time.perf_counter()
    recipe.validate()
    spec = get_task(recipe.task)
    if recipe.method != "none":
        methods.check_method(recipe.method)
    data = prepare_data(recipe)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    main = accelerator.is_main_process
    if data.message and main:
        log.warning(data.message)
    copy_model = backbone is not None
    if backbone is None:
        from adapterhub.backbone import load_backbone

        backbone = load_backbone(recipe.backbone, quantize=recipe.quantize)
    elif recipe.quantize and backbone.quantization != recipe.quantize:
        raise UsageError("the given backbone is not quantized as the recipe asks")

    set_seed(recipe.seed)
    backbone_parameters = sum(p.numel() for p in backbone.model.parameters())
    task, parents = build_model(recipe, backbone, data.labels, copy_model=copy_model)
    parameters = methods.count_parameters(task, backbone_parameters)
    adapter_only = sum(
        p.numel()
        for n, p in task.named_parameters()
        if p.requires_grad and n.startswith("encoder.")
    )
    parameters["adapter"] = adapter_only
    parameters["adapter_share"] = adapter_only / parameters["backbone"]
    if main and progress:
        print(
            f"trainable parameters: {parameters['trainable']:,} "
            f"({100 * parameters['share']:.3f}% of the backbone's {parameters['backbone']:,}; "
            f"adapter alone {100 * parameters['adapter_share']:.3f}%)"
        )

    world, rank = accelerator.num_processes, accelerator.process_index
    steps_per_epoch = max(1, math.ceil(len(data.train) / (recipe.batch_size * world)))
    total_steps = recipe.max_steps or max(1, math.ceil(recipe.epochs * steps_per_epoch))
    eval_every = recipe.eval_every or min(steps_per_epoch, 200)
    optimizer = _optimizer(task, recipe)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(recipe.warmup_ratio * total_steps), total_steps
    )
    task.train()
    model, optimizer, scheduler = accelerator.prepare(task, optimizer, scheduler)
    unwrapped = accelerator.unwrap_model(model)
    tokenizer = backbone.tokenizer
    mask_generator = torch.Generator().manual_seed(recipe.seed * 7919 + rank)

    output = Path(output_dir) if output_dir else None
    log_file = None
    if output is not None and main:
        output.mkdir(parents=True, exist_ok=True)
        log_file = (output / "train_log.jsonl").open("w")
    history: list[dict[str, Any]] = []

    def record(entry: dict[str, Any]) -> None:
        if main:
            history.append(entry)
            if log_file is not None:
                log_file.write(json.dumps(entry) + "\n")
                log_file.flush()

    bar = None
    if main and progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_steps, desc=f"train {recipe.task}/{recipe.lang}", unit="step")

    def trainable_state() -> dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in unwrapped.named_parameters() if p.requires_grad}

    best_value, best_state, best_step = -math.inf, trainable_state(), 0
    bad_evals, step, epoch, seen, window_loss, window_n = 0, 0, 0, 0, 0.0, 0
    window_start = time.perf_counter()
    stop = False
    lengths = [_length(r) for r in data.train] if recipe.group_by_length else len(data.train)
    try:
        while not stop:
            for indices in _batches(lengths, recipe.batch_size, rank, world, recipe.seed, epoch):
                rows = [data.train[i] for i in indices]
                batch = unwrapped.collate(rows, tokenizer, recipe.max_length, mask_generator)
                batch = {k: v.to(accelerator.device) for k, v in batch.items()}
                loss, _ = model(batch)
                if not torch.isfinite(loss):
                    raise TrainingError(
                        f"the loss became {float(loss)} at step {step + 1}; lower learning_rate"
                    )
                accelerator.backward(loss)
                if recipe.grad_clip:
                    accelerator.clip_grad_norm_(model.parameters(), recipe.grad_clip)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
                step += 1
                seen += len(rows) * world
                window_loss += loss.detach().item()
                window_n += 1
                if bar is not None:
                    elapsed = time.perf_counter() - window_start
                    bar.set_postfix(
                        loss=f"{window_loss / window_n:.4f}",
                        ex_s=f"{window_n * len(rows) * world / max(elapsed, 1e-9):.1f}",
                    )
                    bar.update(1)
                if step % recipe.log_every == 0 or step == total_steps:
                    elapsed = time.perf_counter() - window_start
                    record(
                        {
                            "event": "train",
                            "step": step,
                            "epoch": round(step / steps_per_epoch, 3),
                            "loss": window_loss / window_n,
                            "lr": scheduler.get_last_lr()[0],
                            "examples_per_s": window_n * len(rows) * world / max(elapsed, 1e-9),
                            "examples_seen": seen,
                            "elapsed_s": round(time.perf_counter() - started, 2),
                        }
                    )
                    window_loss, window_n, window_start = 0.0, 0, time.perf_counter()
                if step % eval_every == 0 or step == total_steps:
                    values = evaluate_rows(
                        unwrapped, data.validation, tokenizer, recipe, recipe.eval_batch_size
                    )
                    value = primary(values, spec.metric)
                    improved = value > best_value
                    if improved:
                        best_value, best_state, best_step, bad_evals = (
                            value,
                            trainable_state(),
                            step,
                            0,
                        )
                    else:
                        bad_evals += 1
                    record(
                        {
                            "event": "eval",
                            "step": step,
                            "metric": spec.metric,
                            "value": value,
                            "best": best_value,
                            **{f"validation_{k}": v for k, v in values.items()},
                        }
                    )
                    if recipe.patience and bad_evals >= recipe.patience:
                        stop = True
                if step >= total_steps or stop:
                    stop = True
                    break
            epoch += 1
    finally:
        if bar is not None:
            bar.close()
        if log_file is not None:
            log_file.close()

    with torch.no_grad():  # the best checkpoint by validation metric
        for name, parameter in unwrapped.named_parameters():
            if name in best_state:
                parameter.copy_(best_state[name])
    unwrapped.eval()
    accelerator.wait_for_everyone()

    result = TrainResult(
        output_dir=output,
        recipe=recipe,
        labels=data.labels,
        train_langs=data.train_langs,
        zero_shot=data.zero_shot,
        metrics={},
        best_validation=best_value,
        steps=step,
        parameters=parameters,
        seconds=0.0,
        history=history,
        dataset=data.dataset,
    )
    if main:
        for code, rows in data.test.items():
            result.metrics[code] = evaluate_rows(
                unwrapped, rows, tokenizer, recipe, recipe.eval_batch_size
            )
        result.seconds = round(time.perf_counter() - started, 2)
        if output is not None and save:
            _write_outputs(result, unwrapped, backbone, output, data, best_step, parents)
            loss_curve(history, output / "loss_curve.png")
        if publish:
            if output is None or recipe.method == "none":
                raise UsageError("publishing needs an adapter method and an output folder")
            result.published = publish_adapter(
                output, backbone, result, adapter_id=adapter_id, store=store, parents=parents
            )
    if keep_model:
        result.model = unwrapped
    accelerator.wait_for_everyone()
    return result


def _write_outputs(result, task, backbone, output: Path, data: PreparedData, best_step, parents):
    from adapterhub.tasks import save_head

    recipe = result.recipe
    if recipe.method != "none":
        task.encoder.save(output, base_name=backbone.name)
    if task.task_type.publishes_head:
        save_head(task.head, data.labels, task.task_type.name, output)
    (output / "recipe.yaml").write_text(recipe.to_yaml())
    summary = {
        "task": recipe.task,
        "lang": recipe.lang,
        "method": recipe.method,
        "dataset": data.dataset,
        "train_langs": data.train_langs,
        "zero_shot": data.zero_shot,
        "train_examples": len(data.train),
        "validation_examples": len(data.validation),
        "steps": result.steps,
        "best_step": best_step,
        "best_validation": result.best_validation,
        "parameters": result.parameters,
        "seconds": result.seconds,
        "backbone": {"name": backbone.name, "fingerprint": backbone.fingerprint},
        "parents": parents,
        "test": result.metrics,
    }
    (output / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")


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
    """Publish a trained folder through the registry; returns the exact id."""
    from adapterhub.registry import api

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
    )
    return manifest.id
