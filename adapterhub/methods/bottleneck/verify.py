"""The bottleneck adapter's weight check: exactly ``layers.{i}.down|up.weight|bias`` for every
layer the config names, shaped by its hidden and bottleneck sizes, and (with the backbone) as
many layers of that width as the backbone has."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from adapterhub.errors import IntegrityError
from adapterhub.methods.base import linear_features, modules_of
from adapterhub.methods.bottleneck.config import BottleneckConfig

LAYER_KEY = re.compile(r"^layers\.(\d+)\.(down|up)\.(weight|bias)$")
_HOOKED = re.compile(r"^(?:.*\.)?layer\.(\d+)\.output\.dense$")


def layer_modules(names: Iterable[str]) -> dict[int, str]:
    """Each encoder layer's ``output.dense`` (the Linear the adapter follows), by layer index."""
    found = {}
    for name in names:
        match = _HOOKED.match(name)
        if match:
            found.setdefault(int(match[1]), name)
    return found


def expected_shapes(config: BottleneckConfig) -> dict[str, tuple[int, ...]]:
    h, b = config.hidden_size, config.bottleneck_size
    shapes = {"down.weight": (b, h), "down.bias": (b,), "up.weight": (h, b), "up.bias": (h,)}
    return {
        f"layers.{i}.{name}": shape
        for i in range(config.num_layers or 0)
        for name, shape in shapes.items()
    }


def check_weights(
    config: BottleneckConfig, weights: Mapping[str, Any], where: str, model: Any = None
) -> None:
    layers = layer_modules(modules_of(model)) if model is not None else None
    expected = expected_shapes(config)
    for key, tensor in weights.items():
        match = LAYER_KEY.match(key)
        if not match:
            raise IntegrityError(f"{where}: {key!r} is not a bottleneck adapter key")
        index = int(match[1])
        if layers is not None and index not in layers:
            raise IntegrityError(
                f"{where}: {key!r} names layer {index}; the backbone has {len(layers)}"
            )
        if key not in expected:
            raise IntegrityError(
                f"{where}: {key!r} names layer {index}; the config has {config.num_layers}"
            )
        if tuple(tensor.shape) != expected[key]:
            raise IntegrityError(
                f"{where}: {key!r} has shape {tuple(tensor.shape)}, expected {expected[key]} "
                "(hidden size or bottleneck size differ)"
            )
    missing = sorted(set(expected) - set(weights))
    if missing:
        raise IntegrityError(f"{where}: the weights lack {missing[:3]} (of {len(missing)})")
    if layers is not None:
        if config.num_layers != len(layers):
            raise IntegrityError(
                f"{where}: the bottleneck adapter has {config.num_layers} layers but the "
                f"backbone has {len(layers)}; it was trained on another backbone"
            )
        _, hidden = linear_features(model, layers[0], where, "layers.0.down.weight")
        if config.hidden_size != hidden:
            raise IntegrityError(
                f"{where}: bottleneck built for hidden size {config.hidden_size}, the backbone "
                f"has {hidden}; it was trained on another backbone"
            )
