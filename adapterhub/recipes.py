"""Recipes: one YAML per task (``recipes/<task>.yaml``) holding data, method and hyperparameters.

A recipe is the :class:`Recipe` dataclass; its fields document themselves. Loading a YAML file
with a key the dataclass does not have is a :class:`~adapterhub.errors.RecipeError` naming the
key. Command-line flags override recipe values (:func:`resolve_recipe`); the resolved recipe is
stored with the adapter (``recipe.yaml`` in the output folder, ``recipe`` in the manifest).
"""

from __future__ import annotations

import dataclasses
import importlib.resources
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapterhub.errors import RecipeError
from adapterhub.methods import METHOD_NAMES

FREEZE_CHOICES = ("backbone", "embeddings", "none")
METHOD_CHOICES = (*METHOD_NAMES, "none")
"""The registered adapter methods, or none (only the head, or the whole backbone, trains)."""
REPORT_TO_CHOICES = ("tensorboard", "mlflow", "wandb")
HEAD_INIT_CHOICES = ("random", "probe")
SELECT_ON_CHOICES = ("validation", "yardstick")


@dataclass
class Recipe:
    """Everything one training run needs. Flags override; unknown keys are errors."""

    # --- what to train
    task: str = "sentiment"
    """sentiment, langid, pos or mlm (a language adapter from unlabelled text)."""
    lang: str = "en"
    """Target language (ISO 639-1, else 639-3); ``multi`` for a multilingual task (langid)."""
    dataset: str | None = None
    """Built-in dataset (adapterhub.data); default: the task's own."""
    data: str | None = None
    """The user's own data instead: a CSV/TSV/JSONL/Parquet file or folder, or a hub name."""
    train_langs: list[str] | None = None
    """Train on exactly these languages (default: ``lang``, or ``source_langs`` if it has too
    little data)."""
    source_langs: list[str] | None = None
    """Languages to train on when ``lang`` has fewer than ``min_train_examples`` (zero-shot)."""
    eval_langs: list[str] | None = None
    """Test languages reported after training (default: ``lang`` plus the training languages)."""
    min_train_examples: int = 200
    """Below this many training examples, ``lang`` is evaluated zero-shot instead."""
    max_train_examples: int | None = None
    """Cap on training examples per language (a deterministic subset); None for all."""
    max_eval_examples: int | None = 1000
    """Cap on validation and test examples per language."""
    max_validation_examples: int | None = 300
    """Cap on validation examples per language (validation runs several times per run)."""
    group_by_length: bool = True
    """Batch texts of similar length together (less padding; batches still drawn at random)."""
    prefix: str = ""
    """Text put before every input (e5 models were trained with ``query: ``)."""

    # --- backbone and method
    backbone: str = "multilingual-e5-small"
    """Embedded name, local folder or hub id."""
    quantize: str | None = None
    """None (fp32) or ``8bit`` (bitsandbytes)."""
    method: str = "lora"
    """lora, ia3, bottleneck, or none (only the head trains, or everything with freeze: none)."""
    freeze: str = "backbone"
    """Freezing strategy: ``backbone`` (only adapter and head train), ``embeddings`` (fine-tune
    every encoder layer, keep the 250k-row word-embedding table frozen) or ``none`` (fine-tune
    everything). The last two need method none."""
    lora_r: int = 8
    """LoRA rank."""
    lora_alpha: int = 16
    """LoRA alpha (the delta is scaled by alpha / r)."""
    lora_dropout: float = 0.05
    """Dropout on LoRA's input."""
    target_modules: list[str] = field(default_factory=lambda: ["query", "key", "value", "dense"])
    """Modules LoRA adapts."""
    reduction_factor: int = 16
    """Bottleneck: hidden size / bottleneck width."""
    non_linearity: str = "relu"
    """Bottleneck non-linearity."""
    stack_lang: str | None = None
    """Train on top of this frozen language adapter (MAD-X): a registry id such as
    ``lang/de`` or a language code (meaning ``lang/<code>``), or an adapter folder."""

    # --- optimisation
    learning_rate: float = 5e-4
    """Peak learning rate of the adapter (or of the backbone for full fine-tuning)."""
    head_learning_rate: float | None = None
    """Learning rate of the head; default: ``learning_rate``."""
    batch_size: int = 32
    """Examples per step on each process."""
    eval_batch_size: int = 64
    """Examples per evaluation forward."""
    epochs: float = 3
    """Passes over the training data (ignored when ``max_steps`` is set)."""
    max_steps: int | None = None
    """Optimizer steps; overrides ``epochs``."""
    warmup_ratio: float = 0.06
    """Share of the steps with a linear warm-up."""
    weight_decay: float = 0.01
    """AdamW weight decay (not on biases and LayerNorms)."""
    dropout: float = 0.1
    """Dropout before the head."""
    head_init: str = "random"
    """How the task head starts: ``random`` (PyTorch's default init) or ``probe`` (LP-FT: the
    linear probe fitted on the frozen backbone's pooled states of the training rows, C chosen on
    validation; sequence tasks only)."""
    grad_clip: float = 1.0
    """Maximum gradient norm; 0 disables clipping."""
    patience: int = 3
    """Stop after this many evaluations without a better selection score; 0 disables."""
    select_on: list[str] = field(default_factory=lambda: ["validation"])
    """What picks the kept checkpoint (and early stopping): ``validation`` (the training
    languages' validation metric) and/or ``yardstick`` (accuracy on the task's multilingual dev
    set, most of whose languages have no training data: sentiment only); with both, their mean."""
    eval_every: int | None = None
    """Evaluate every N steps (default: once per epoch, at least every 200 steps)."""
    max_length: int = 128
    """Inputs are cut at this many tokens."""
    mlm_probability: float = 0.15
    """mlm: share of tokens masked."""
    temperature: float = 0.05
    """retrieval: the InfoNCE temperature (similarities are divided by it before the softmax)."""
    seed: int = 42
    """Seeds data order, initialisation, dropout and masking: equal seeds, equal results."""
    log_every: int = 10
    """Write a metrics line every N steps."""
    report_to: str | None = None
    """Also log to this experiment tracker through accelerate: tensorboard, mlflow or wandb
    (its package must be installed; the logs go under the output folder's ``logs/``)."""
    checkpoint_every: int | None = None
    """Save a resumable checkpoint (``accelerator.save_state``) every N steps under the output
    folder's ``checkpoints/``; None for none. ``--resume`` continues from the newest."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> Recipe:
        if self.method not in METHOD_CHOICES:
            raise RecipeError(
                f"unknown method {self.method!r}; use one of: {', '.join(METHOD_CHOICES)}"
            )
        if self.freeze not in FREEZE_CHOICES:
            raise RecipeError(f"freeze must be one of {', '.join(FREEZE_CHOICES)}")
        if self.freeze != "backbone" and self.method != "none":
            raise RecipeError(
                f"freeze: {self.freeze} (fine-tuning the backbone) needs method: none"
            )
        if self.head_init not in HEAD_INIT_CHOICES:
            raise RecipeError(
                f"head_init must be one of {', '.join(HEAD_INIT_CHOICES)}, not {self.head_init!r}"
            )
        if isinstance(self.select_on, str):
            self.select_on = [v.strip() for v in self.select_on.split(",") if v.strip()]
        unknown = [v for v in self.select_on or [] if v not in SELECT_ON_CHOICES]
        if unknown or not self.select_on or len(set(self.select_on)) != len(self.select_on):
            raise RecipeError(
                f"select_on must be one or both of {', '.join(SELECT_ON_CHOICES)}, "
                f"not {self.select_on!r}"
            )
        if self.quantize not in (None, "8bit"):
            raise RecipeError(f"quantize must be 8bit or empty, not {self.quantize!r}")
        positive = ("batch_size", "eval_batch_size", "max_length", "lora_r", "log_every")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise RecipeError(f"{name} must be >= 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise RecipeError("max_steps must be >= 1")
        if self.checkpoint_every is not None and self.checkpoint_every < 1:
            raise RecipeError("checkpoint_every must be >= 1 (or empty for no checkpoints)")
        if self.report_to not in (None, *REPORT_TO_CHOICES):
            raise RecipeError(
                f"report_to must be one of {', '.join(REPORT_TO_CHOICES)} (or empty), "
                f"not {self.report_to!r}"
            )
        if self.max_steps is None and self.epochs <= 0:
            raise RecipeError("epochs must be > 0 (or set max_steps)")
        if not 0 < self.learning_rate < 1:
            raise RecipeError("learning_rate must be between 0 and 1")
        if not self.temperature > 0:
            raise RecipeError("temperature must be > 0")
        for name in ("train_langs", "source_langs", "eval_langs", "target_modules"):
            value = getattr(self, name)
            if isinstance(value, str):
                setattr(self, name, [v.strip() for v in value.split(",") if v.strip()])
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)


RECIPE_KEYS = tuple(f.name for f in dataclasses.fields(Recipe))


def recipe_from_dict(data: dict[str, Any], where: str = "recipe") -> Recipe:
    """A :class:`Recipe` from a mapping; an unknown key is a :class:`RecipeError` naming it."""
    if not isinstance(data, dict):
        raise RecipeError(f"{where} must be a mapping of keys to values")
    unknown = [key for key in data if key not in RECIPE_KEYS]
    if unknown:
        import difflib

        hints = [difflib.get_close_matches(k, RECIPE_KEYS, n=1) for k in unknown]
        detail = ", ".join(
            f"{k!r}" + (f" (did you mean {h[0]!r}?)" if h else "")
            for k, h in zip(unknown, hints, strict=True)
        )
        raise RecipeError(f"{where}: unknown key {detail}; known keys: {', '.join(RECIPE_KEYS)}")
    try:
        return Recipe(**data)
    except TypeError as exc:
        raise RecipeError(f"{where}: {exc}") from exc


def recipes_dir() -> Path:
    """The packaged recipes: the top-level ``recipes/`` folder, which the wheel ships as the
    package ``adapterhub._recipes`` and an editable install maps onto the checkout's folder."""
    try:
        return Path(str(importlib.resources.files("adapterhub._recipes")))
    except ModuleNotFoundError as exc:
        raise RecipeError(
            "adapterhub's packaged recipes (adapterhub._recipes) are not installed; reinstall "
            "adapterhub (in a checkout: pip install -e .)"
        ) from exc


def recipe_names() -> list[str]:
    """The names (tasks) of the packaged recipes, sorted."""
    return sorted(
        entry.name.removesuffix(".yaml")
        for entry in recipes_dir().iterdir()
        if entry.name.endswith(".yaml")
    )


def load_recipe(path_or_task: str | Path) -> Recipe:
    """A recipe file, or the packaged ``recipes/<task>.yaml`` for a task name. A name without a
    packaged recipe is a :class:`RecipeError` naming the packaged ones."""
    import yaml

    path = Path(path_or_task)
    if not path.is_file():
        packaged = recipes_dir() / f"{path_or_task}.yaml"
        if packaged.is_file():
            path = packaged
        elif str(path_or_task).endswith((".yaml", ".yml")) or "/" in str(path_or_task):
            raise RecipeError(f"recipe file {path_or_task} does not exist")
        else:
            raise RecipeError(
                f"no recipe for task {str(path_or_task)!r}; the packaged recipes are "
                f"{', '.join(recipe_names())} (or pass a recipe file)"
            )
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path} is not valid YAML ({exc})") from exc
    return recipe_from_dict(data, where=str(path))


def resolve_recipe(
    recipe: str | Path | Recipe | None = None,
    *,
    task: str | None = None,
    **overrides: Any,
) -> Recipe:
    """The recipe (a file, a task's packaged recipe, or an object) with non-None flags applied."""
    if isinstance(recipe, Recipe):
        base = recipe
    elif recipe is not None:
        base = load_recipe(recipe)
    else:
        base = load_recipe(task or "sentiment")
    data = base.to_dict()
    if task is not None:
        data["task"] = task
    for key, value in overrides.items():
        if value is not None:
            data[key] = value
    return recipe_from_dict(data, where="flags")
