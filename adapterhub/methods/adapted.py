"""The training side: a backbone with adapters on it, whatever their methods.

:func:`add_adapter` puts a fresh trainable task adapter on a backbone model, :meth:`Adapted.save`
writes it in its method's format (``adapter_config.json`` + ``adapter_model.safetensors``, see
docs/FORMAT.md) and :func:`load_adapter` loads a saved folder back, after the same verification
the registry and the runtime run. Each call dispatches to the method object
(:mod:`adapterhub.methods`), which does the method's own work.

Stacks (MAD-X): :func:`load_adapter` of a language adapter, then :func:`add_adapter` on the
same ``Adapted``, gives a model where the language adapter is frozen and active and only the task
adapter trains. LoRA deltas add; bottleneck adapters apply in order (language first).
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

from safetensors.torch import load_file
from torch import nn

from adapterhub.errors import IntegrityError, UsageError
from adapterhub.methods import METHODS, get_method, method_of
from adapterhub.methods.base import CONFIG_NAME, LANGUAGE_ADAPTER, TASK_ADAPTER, WEIGHTS_NAME


class Adapted(nn.Module):
    """A backbone with adapters: call it like the backbone (``last_hidden_state``).

    ``encoder`` is the backbone model (a ``PeftModel`` when a PEFT adapter is on it);
    ``bottlenecks`` holds the attached bottleneck adapters by role (language, task).
    ``task_method`` names the method of the adapter that trains and is saved.
    """

    def __init__(self, encoder: nn.Module, task_method: str | None) -> None:
        super().__init__()
        self.encoder = encoder
        self.bottlenecks = nn.ModuleDict()
        self.task_method = task_method

    def forward(self, **inputs: Any):
        return self.encoder(**inputs)

    @property
    def is_peft(self) -> bool:
        # without importing peft (~8 s): if nothing imported it, no PeftModel exists
        peft = sys.modules.get("peft")
        return peft is not None and isinstance(self.encoder, peft.PeftModel)

    def base_model(self) -> nn.Module:
        """The plain backbone model underneath PEFT's wrappers."""
        return self.encoder.get_base_model() if self.is_peft else self.encoder

    def save(self, directory: str | Path, base_name: str | None = None) -> Path:
        """Save the task adapter (not a language adapter it sits on) in its method's format."""
        if self.task_method is None:
            raise UsageError("this model has no trainable adapter to save")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        get_method(self.task_method).save(self, directory, base_name)
        return directory


def wrap(model: nn.Module, *, copy_model: bool = True) -> Adapted:
    """Start from a backbone model (deep-copied by default, so the shared backbone stays clean)."""
    return Adapted(copy.deepcopy(model) if copy_model else model, None)


def add_adapter(adapted: Adapted, config: Any, base_name: str | None = None) -> Adapted:
    """Add a fresh, trainable task adapter shaped by ``config`` (a method's config dataclass,
    e.g. from ``get_method(name).config_from_recipe(recipe)``); everything else stays frozen."""
    method = next((m for m in METHODS.values() if isinstance(config, m.config_class)), None)
    if method is None:
        raise UsageError(f"{type(config).__name__} is not the config of any adapter method")
    for parameter in adapted.parameters():
        parameter.requires_grad_(False)
    method.add_adapter(adapted, config, base_name)
    adapted.task_method = method.name
    return adapted


def load_adapter(
    adapted: Adapted, directory: str | Path, *, role: str = TASK_ADAPTER, trainable: bool = False
) -> Adapted:
    """Load a saved adapter folder onto ``adapted`` under ``role`` (task or language), once its
    config and weights pass the method's verification (the one publish and serving run)."""
    directory = Path(directory)
    config_file = directory / CONFIG_NAME
    try:
        data = json.loads(config_file.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{directory} has no readable {CONFIG_NAME} ({exc})") from exc
    if not isinstance(data, dict):
        raise IntegrityError(f"{config_file} is not a JSON object")
    method = method_of(data, str(config_file))
    config = method.validate_config(data, str(config_file))
    weights_file = directory / WEIGHTS_NAME
    if not weights_file.is_file():
        raise UsageError(f"{directory} has no {WEIGHTS_NAME}; is it an adapter folder?")
    weights = load_file(str(weights_file))
    method.check_weights(config, weights, str(weights_file), adapted.base_model())
    method.load_adapter(adapted, directory, config, role=role, trainable=trainable)
    if role == TASK_ADAPTER:
        adapted.task_method = method.name
    return adapted


def count_parameters(adapted: nn.Module, backbone_model: nn.Module | int) -> dict[str, Any]:
    """Trainable parameters and their share of the backbone's parameters.

    Pass the backbone's parameter count (an int) when PEFT has injected layers into the
    backbone model itself, so the adapter is not counted as backbone."""
    trainable = sum(p.numel() for p in adapted.parameters() if p.requires_grad)
    if isinstance(backbone_model, int):
        total = backbone_model
    else:
        total = sum(p.numel() for p in backbone_model.parameters())
    return {
        "trainable": trainable,
        "backbone": total,
        "share": trainable / total if total else 0.0,
    }


__all__ = [
    "LANGUAGE_ADAPTER",
    "TASK_ADAPTER",
    "Adapted",
    "add_adapter",
    "count_parameters",
    "load_adapter",
    "wrap",
]
