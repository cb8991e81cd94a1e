"""From a verified adapter folder to the tensors the banks hold.

LoRA and IA3 folders are PEFT's own files: keys ``base_model.model.<module>.lora_A.weight`` (and
``lora_B``, ``ia3_l``). The LoRA scaling (``alpha / r``, or ``alpha / sqrt(r)`` with rsLoRA, and
PEFT's per-module ``rank_pattern`` / ``alpha_pattern``) is folded into ``B`` as it is copied into
its slot, once, so the hot path is two matrix products. Bottleneck folders are FORMAT.md's
``layers.{i}.down|up``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import torch

from adapterhub.errors import IntegrityError

PEFT_PREFIX = "base_model.model."


@dataclass
class Part:
    """One group of tensors of one adapter destined for one bank slot."""

    module: str  # the hooked Linear's name in the backbone model
    kind: str  # lora | ia3_in | ia3_out | bottleneck
    tensors: dict[str, torch.Tensor]
    activation: str = ""
    scales: dict[str, float] = field(default_factory=dict)  # multiply these tensors in the slot

    @property
    def bank_key(self) -> tuple:
        shapes = tuple(sorted((name, t.shape) for name, t in self.tensors.items()))
        return (self.module, self.kind, shapes, self.activation)


@dataclass
class Parts:
    parts: list[Part] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        """Bytes of the tensors as the fp32 banks hold them."""
        return 4 * sum(t.numel() for p in self.parts for t in p.tensors.values())


def _pattern_value(patterns: dict[str, Any] | None, module: str, default: Any) -> Any:
    # PEFT's get_pattern_key: the first pattern that matches the end of the module name
    for key, value in (patterns or {}).items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


def _matches(targets: Any, module: str) -> bool:
    if targets is None:
        return False
    if isinstance(targets, str):
        return re.fullmatch(targets, module) is not None
    return any(module == t or module.endswith("." + t) for t in targets)


def lora_parts(config: dict[str, Any], weights: dict[str, torch.Tensor], where: str) -> Parts:
    if config.get("use_dora"):
        raise IntegrityError(f"{where}: DoRA adapters are not supported by the serving runtime")
    if config.get("bias", "none") != "none" or config.get("modules_to_save"):
        raise IntegrityError(
            f"{where}: LoRA adapters that train biases or whole modules (bias / modules_to_save) "
            "cannot be hot-swapped; retrain with bias='none' and no modules_to_save"
        )
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in weights.items():
        rest = key[len(PEFT_PREFIX) :] if key.startswith(PEFT_PREFIX) else key
        for part in ("lora_A", "lora_B"):
            suffix = f".{part}.weight"
            if rest.endswith(suffix):
                pairs.setdefault(rest[: -len(suffix)], {})[part] = tensor
                break
        else:
            raise IntegrityError(f"{where}: tensor {key!r} is not a LoRA Linear weight")
    result = Parts()
    for module, pair in sorted(pairs.items()):
        a, b = pair["lora_A"], pair["lora_B"]
        rank = a.shape[0]
        alpha = _pattern_value(config.get("alpha_pattern"), module, config.get("lora_alpha", rank))
        scaling = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
        result.parts.append(Part(module, "lora", {"A": a, "B": b}, scales={"B": float(scaling)}))
    return result


def ia3_parts(config: dict[str, Any], weights: dict[str, torch.Tensor], where: str) -> Parts:
    result = Parts()
    feedforward = config.get("feedforward_modules")
    for key, tensor in sorted(weights.items()):
        rest = key[len(PEFT_PREFIX) :] if key.startswith(PEFT_PREFIX) else key
        if not rest.endswith(".ia3_l"):
            raise IntegrityError(f"{where}: tensor {key!r} is not an IA3 Linear vector")
        module = rest[: -len(".ia3_l")]
        # PEFT stores (1, in) for feed-forward modules (scales the input), (out, 1) otherwise
        is_ff = _matches(feedforward, module) or (tensor.dim() == 2 and tensor.shape[0] == 1)
        kind = "ia3_in" if is_ff else "ia3_out"
        result.parts.append(Part(module, kind, {"l": tensor.float().flatten().contiguous()}))
    return result


def bottleneck_parts(
    config: dict[str, Any], weights: dict[str, torch.Tensor], layer_module: str
) -> Parts:
    """``layer_module`` is the format string of the hooked Linear, e.g.
    ``encoder.layer.{}.output.dense``."""
    layers: dict[int, dict[str, torch.Tensor]] = {}
    for key, tensor in weights.items():
        _, index, part, kind = key.split(".")
        layers.setdefault(int(index), {})[f"{part}_{kind[0]}"] = tensor.float().contiguous()
    activation = str(config.get("non_linearity", "relu"))
    result = Parts()
    for index, tensors in sorted(layers.items()):
        result.parts.append(Part(layer_module.format(index), "bottleneck", tensors, activation))
    return result
