"""The bottleneck adapter (Pfeiffer-style) as a torch module, exactly as docs/FORMAT.md specifies.

In encoder layer ``i``, with ``h = output.dense(intermediate)``, the adapter replaces ``h`` by
``h + up(act(down(h)))`` before dropout and the residual LayerNorm. ``up`` starts at zero, so a
fresh adapter is the identity. It is attached with forward hooks on each layer's
``output.dense``: the backbone's modules and state-dict keys stay untouched, several adapters
attached to one model apply in the order they were attached (a MAD-X stack: language first,
then task), and :func:`detach` restores the plain backbone.

Files: ``adapter_config.json`` (:class:`BottleneckConfig`) and ``adapter_model.safetensors``
with ``layers.{i}.down.weight`` [b, H], ``layers.{i}.down.bias`` [b], ``layers.{i}.up.weight``
[H, b], ``layers.{i}.up.bias`` [H]. Never pickled.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from adapterhub.errors import IntegrityError, UsageError
from adapterhub.methods.base import CONFIG_HINT, CONFIG_NAME, WEIGHTS_NAME
from adapterhub.methods.bottleneck.config import ACTIVATIONS, BottleneckConfig, parse_config
from adapterhub.methods.bottleneck.verify import check_weights


def activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The function a ``non_linearity`` name stands for (training and serving alike)."""
    return getattr(nn.functional, ACTIVATIONS[name])


class BottleneckLayer(nn.Module):
    """``h + up(act(down(h)))`` for one encoder layer."""

    def __init__(self, hidden_size: int, bottleneck_size: int, non_linearity: str) -> None:
        super().__init__()
        self.down = nn.Linear(hidden_size, bottleneck_size)
        self.act = activation(non_linearity)
        self.up = nn.Linear(bottleneck_size, hidden_size)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden + self.up(self.act(self.down(hidden)))


class BottleneckAdapter(nn.Module):
    """One :class:`BottleneckLayer` per encoder layer; its state dict is the file's key names."""

    def __init__(self, config: BottleneckConfig) -> None:
        super().__init__()
        self.config = config
        self.layers = nn.ModuleList(
            BottleneckLayer(config.hidden_size, config.bottleneck_size, config.non_linearity)
            for _ in range(config.num_layers)
        )
        self._handles: list[Any] = []

    @classmethod
    def for_backbone(cls, model: nn.Module, **options: Any) -> BottleneckAdapter:
        """A fresh (identity) adapter shaped for ``model``."""
        layers = encoder_layers(model)
        hidden = layers[0].output.dense.out_features
        return cls(BottleneckConfig(hidden_size=hidden, num_layers=len(layers), **options))


def encoder_layers(model: nn.Module) -> nn.ModuleList:
    """The encoder layers of a BERT-like model, whether bare, inside a wrapper or a PeftModel."""
    for name, module in model.named_modules():
        if name.endswith("encoder.layer") and isinstance(module, nn.ModuleList):
            return module
    raise UsageError(
        f"{type(model).__name__} has no BERT-style encoder.layer list; the bottleneck adapter "
        "supports BERT/RoBERTa/XLM-R encoders"
    )


def attach(model: nn.Module, adapter: BottleneckAdapter) -> BottleneckAdapter:
    """Hook ``adapter`` into ``model`` (after each layer's ``output.dense``); returns the adapter."""
    layers = encoder_layers(model)
    if len(layers) != adapter.config.num_layers:
        raise UsageError(
            f"the bottleneck adapter has {adapter.config.num_layers} layers but the backbone "
            f"has {len(layers)}; it was trained on another backbone"
        )
    first = layers[0].output.dense
    if first.out_features != adapter.config.hidden_size:
        raise UsageError(
            f"the bottleneck adapter expects hidden size {adapter.config.hidden_size} but the "
            f"backbone has {first.out_features}; it was trained on another backbone"
        )
    adapter.to(first.weight.device)
    for layer, block in zip(layers, adapter.layers, strict=True):
        handle = layer.output.dense.register_forward_hook(_hook(block))
        adapter._handles.append(handle)
    return adapter


def _hook(block: BottleneckLayer):
    def hook(_module, _inputs, output):
        return block(output.to(block.down.weight.dtype)).to(output.dtype)

    return hook


def detach(adapter: BottleneckAdapter) -> None:
    """Remove ``adapter``'s hooks: the model computes exactly as before :func:`attach`."""
    for handle in adapter._handles:
        handle.remove()
    adapter._handles.clear()


def save(adapter: BottleneckAdapter, directory: str | Path, **extra: Any) -> Path:
    """Write ``adapter_config.json`` and ``adapter_model.safetensors`` into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = adapter.config.to_dict()
    config.update(extra)
    (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in adapter.state_dict().items()}
    save_file(tensors, str(directory / WEIGHTS_NAME), metadata={"format": "pt"})
    return directory


def load(directory: str | Path) -> BottleneckAdapter:
    """Read a bottleneck adapter folder (safetensors only, checked) into a detached module."""
    directory = Path(directory)
    config_file = directory / CONFIG_NAME
    weights_file = directory / WEIGHTS_NAME
    if not config_file.is_file() or not weights_file.is_file():
        raise UsageError(
            f"{directory} is not a bottleneck adapter folder: it needs {CONFIG_NAME} and "
            f"{WEIGHTS_NAME}"
        )
    try:
        data = json.loads(config_file.read_text())
    except ValueError as exc:
        raise IntegrityError(f"{config_file} is not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise IntegrityError(f"{config_file} is not a JSON object")
    config = parse_config(data, str(config_file), IntegrityError, CONFIG_HINT)
    state = load_file(str(weights_file))
    check_weights(config, state, str(weights_file))
    adapter = BottleneckAdapter(config)
    adapter.load_state_dict(state)
    return adapter


def apply(model: nn.Module, directory: str | Path, *, trainable: bool = False) -> BottleneckAdapter:
    """Load the adapter in ``directory`` and attach it to ``model`` (frozen unless ``trainable``)."""
    adapter = load(directory)
    adapter.requires_grad_(trainable)
    adapter.train(trainable)
    return attach(model, adapter)


__all__ = [
    "BottleneckAdapter",
    "BottleneckConfig",
    "BottleneckLayer",
    "activation",
    "apply",
    "attach",
    "detach",
    "encoder_layers",
    "load",
    "save",
]
