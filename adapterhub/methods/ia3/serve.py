"""IA3 in the banks: one vector per Linear, scaling its input (feed-forward modules, hook kind
``ia3_in``) or its output (``ia3_out``), as PEFT's IA3 layers do."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapterhub.methods.base import Part, Parts
from adapterhub.methods.ia3.config import IA3Config
from adapterhub.methods.peft import PEFT_PREFIX

SUFFIX = ".ia3_l"


def serve_parts(config: IA3Config, weights: Mapping[str, Any]) -> Parts:
    result = Parts()
    for key, tensor in sorted(weights.items()):
        module = key[len(PEFT_PREFIX) : -len(SUFFIX)]
        kind = "ia3_in" if config.is_feedforward(module) else "ia3_out"
        result.parts.append(Part(module, kind, {"l": tensor.float().flatten().contiguous()}))
    return result
