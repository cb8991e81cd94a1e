"""Bottleneck adapters in the banks: per encoder layer, the down and up projections that the
hook after that layer's ``output.dense`` applies as ``h + up(act(down(h)))``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapterhub.errors import IntegrityError
from adapterhub.methods.base import Part, Parts
from adapterhub.methods.bottleneck.config import BottleneckConfig
from adapterhub.methods.bottleneck.verify import LAYER_KEY, layer_modules


def serve_parts(
    config: BottleneckConfig, weights: Mapping[str, Any], modules: Mapping[str, int]
) -> Parts:
    hooked = layer_modules(modules)
    layers: dict[int, dict[str, Any]] = {}
    for key, tensor in weights.items():
        index, part, kind = LAYER_KEY.match(key).groups()
        layers.setdefault(int(index), {})[f"{part}_{kind[0]}"] = tensor.float().contiguous()
    result = Parts()
    for index, tensors in sorted(layers.items()):
        if index not in hooked:
            raise IntegrityError(
                f"the bottleneck adapter has layer {index}; this backbone has no BERT-style "
                f"layer {index} (it has {len(hooked)})"
            )
        result.parts.append(Part(hooked[index], "bottleneck", tensors, config.non_linearity))
    return result
