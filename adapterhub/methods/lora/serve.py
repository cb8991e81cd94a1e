"""LoRA in the banks: ``A`` and ``B`` per adapted Linear, with PEFT's scaling (alpha / r,
alpha / sqrt(r) with rsLoRA, per-module rank_pattern / alpha_pattern) folded into ``B`` once as
it is copied into its slot, so the hot path is two matrix products."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapterhub.methods.base import Part, Parts
from adapterhub.methods.lora.config import LoraConfig
from adapterhub.methods.lora.verify import lora_pairs


def serve_parts(config: LoraConfig, weights: Mapping[str, Any]) -> Parts:
    result = Parts()
    for module, pair in sorted(lora_pairs(weights, "checked LoRA weights").items()):
        a, b = pair["lora_A.weight"][1], pair["lora_B.weight"][1]
        result.parts.append(
            Part(module, "lora", {"A": a, "B": b}, scales={"B": config.scaling(module)})
        )
    return result
