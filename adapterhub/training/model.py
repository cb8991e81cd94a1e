"""The model a recipe trains: the backbone (copied), the language adapter it stacks on, the
trainable adapter (or the backbone's own weights for method ``none``) and a fresh task head;
and the files a trained model is saved as (read back by :mod:`adapterhub.evaluation.inference`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from adapterhub.errors import UsageError
from adapterhub.evaluation.inference import FINETUNED_FILE
from adapterhub.methods import get_method
from adapterhub.methods.adapted import LANGUAGE_ADAPTER, add_adapter, load_adapter, wrap
from adapterhub.methods.adapted import count_parameters as count_trainable
from adapterhub.recipes import Recipe
from adapterhub.registry import api
from adapterhub.tasks import TaskModel, get_task, save_head


def _language_adapter(recipe: Recipe, backbone) -> tuple[Path, list[str]]:
    """The folder of the stack's language adapter and the parent id to record."""
    candidate = Path(recipe.stack_lang).expanduser()
    if candidate.is_dir():
        parents = []
        manifest = candidate / "manifest.json"
        if manifest.is_file():
            parents = [json.loads(manifest.read_text())["id"]]
        return candidate, parents
    ident = recipe.stack_lang if "/" in recipe.stack_lang else f"lang/{recipe.stack_lang}"
    found = api.resolution(ident).require_servable()  # nothing new is built on a yanked one
    return Path(api.resolve(found, backbone=backbone)), [str(found.id)]


def fine_tunes_backbone(recipe: Recipe) -> bool:
    """Whether the run changes the backbone's own weights (method none, freeze not backbone)."""
    return recipe.method == "none" and recipe.freeze != "backbone"


def build_model(
    recipe: Recipe, backbone, labels: list[str], *, copy_model: bool = True
) -> tuple[TaskModel, list[str]]:
    """(task module, parents): adapter (and stack) on the backbone, plus a fresh head."""
    spec = get_task(recipe.task)
    if recipe.stack_lang and fine_tunes_backbone(recipe):
        raise UsageError(
            "fine-tuning the backbone (method none) on a stacked language adapter would change "
            "both; train a task adapter (a method) on the stack, or drop stack_lang"
        )
    adapted = wrap(backbone.model, copy_model=copy_model)
    parents: list[str] = []
    if recipe.stack_lang:
        folder, parents = _language_adapter(recipe, backbone)
        load_adapter(adapted, folder, role=LANGUAGE_ADAPTER, trainable=False)
    if recipe.method != "none":
        config = get_method(recipe.method).config_from_recipe(recipe)
        add_adapter(adapted, config, base_name=backbone.name)
    else:
        for parameter in adapted.parameters():
            parameter.requires_grad_(fine_tunes_backbone(recipe))
        if recipe.freeze == "embeddings":
            adapted.base_model().get_input_embeddings().weight.requires_grad_(False)
    task = spec.type.model(
        adapted,
        backbone.hidden_size,
        labels,
        dropout=recipe.dropout,
        embeddings=adapted.base_model().get_input_embeddings(),
        mask_token_id=backbone.tokenizer.mask_token_id,
        mlm_probability=recipe.mlm_probability,
        temperature=recipe.temperature,
    )
    return task, parents


def count_parameters(task: TaskModel, backbone_parameters: int) -> dict[str, Any]:
    """Trainable parameters, their share of the backbone's, and the adapter's part alone."""
    parameters = count_trainable(task, backbone_parameters)
    adapter = sum(
        p.numel()
        for n, p in task.named_parameters()
        if p.requires_grad and n.startswith("encoder.")
    )
    parameters["adapter"] = adapter
    parameters["adapter_share"] = adapter / parameters["backbone"]
    return parameters


def save_model(
    task: TaskModel, recipe: Recipe, labels: list[str], backbone, directory: Path
) -> None:
    """Write what a trained folder holds: the adapter (docs/FORMAT.md), or the fine-tuned
    backbone weights for method none, and the head where the task type publishes one."""
    if recipe.method != "none":
        task.encoder.save(directory, base_name=backbone.name)
    elif fine_tunes_backbone(recipe):
        base = task.encoder.base_model()
        changed = {
            name: parameter.detach().cpu().contiguous()
            for name, parameter in base.named_parameters()
            if parameter.requires_grad
        }
        metadata = {"base_model": backbone.name, "fingerprint": backbone.fingerprint}
        save_file(changed, str(directory / FINETUNED_FILE), metadata=metadata)
    if task.task_type.publishes_head:
        save_head(task.head, labels, task.task_type.name, directory)
    task.save_unpublished(directory)
