"""The bottleneck adapter (Pfeiffer-style), exactly as docs/FORMAT.md specifies.

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
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from adapterhub.errors import UsageError

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
METHOD_NAME = "bottleneck"

NON_LINEARITIES = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
}


@dataclass
class BottleneckConfig:
    """What ``adapter_config.json`` of a bottleneck adapter holds."""

    hidden_size: int
    """Width of the backbone's hidden states (H)."""
    num_layers: int
    """Number of encoder layers; one adapter per layer."""
    reduction_factor: int = 16
    """H divided by the bottleneck width."""
    bottleneck_size: int | None = None
    """Width b of the bottleneck; derived as ``hidden_size // reduction_factor`` when None."""
    non_linearity: str = "relu"
    """One of relu, gelu, tanh, silu (swish)."""
    base_model_name_or_path: str | None = None
    """The backbone the adapter was trained on (informational; the manifest holds the fingerprint)."""
    adapter_method: str = METHOD_NAME

    def __post_init__(self) -> None:
        if self.non_linearity not in NON_LINEARITIES:
            raise UsageError(
                f"unknown non_linearity {self.non_linearity!r}; use one of: "
                + ", ".join(NON_LINEARITIES)
            )
        if self.reduction_factor < 1:
            raise UsageError("reduction_factor must be >= 1")
        if self.bottleneck_size is None:
            self.bottleneck_size = max(1, self.hidden_size // self.reduction_factor)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        # the documented key order: method first, as in FORMAT.md
        return {"adapter_method": data.pop("adapter_method"), **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BottleneckConfig:
        if data.get("adapter_method") != METHOD_NAME:
            raise UsageError(
                f"adapter_config.json says adapter_method={data.get('adapter_method')!r}, "
                f"not {METHOD_NAME!r}"
            )
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class BottleneckLayer(nn.Module):
    """``h + up(act(down(h)))`` for one encoder layer."""

    def __init__(self, hidden_size: int, bottleneck_size: int, non_linearity: str) -> None:
        super().__init__()
        self.down = nn.Linear(hidden_size, bottleneck_size)
        self.act = NON_LINEARITIES[non_linearity]()
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

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


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
    device = first.weight.device
    adapter.to(device)
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
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = adapter.config.to_dict()
    config.update(extra)
    (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in adapter.state_dict().items()}
    save_file(tensors, str(directory / WEIGHTS_NAME), metadata={"format": "pt"})
    return directory


def load(directory: str | Path) -> BottleneckAdapter:
    """Read a bottleneck adapter folder (safetensors only) into a detached module."""
    from safetensors.torch import load_file

    directory = Path(directory)
    config_file = directory / CONFIG_NAME
    weights_file = directory / WEIGHTS_NAME
    if not config_file.is_file() or not weights_file.is_file():
        raise UsageError(
            f"{directory} is not a bottleneck adapter folder: it needs {CONFIG_NAME} and "
            f"{WEIGHTS_NAME}"
        )
    config = BottleneckConfig.from_dict(json.loads(config_file.read_text()))
    adapter = BottleneckAdapter(config)
    state = load_file(str(weights_file))
    expected = adapter.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise UsageError(
            f"{weights_file} does not match its config: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}"
        )
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise UsageError(
                f"{weights_file}: {key} has shape {tuple(tensor.shape)}, expected "
                f"{tuple(expected[key].shape)}"
            )
    adapter.load_state_dict(state)
    return adapter


def apply(model: nn.Module, directory: str | Path, *, trainable: bool = False) -> BottleneckAdapter:
    """Load the adapter in ``directory`` and attach it to ``model`` (frozen unless ``trainable``)."""
    adapter = load(directory)
    adapter.requires_grad_(trainable)
    adapter.train(trainable)
    return attach(model, adapter)
