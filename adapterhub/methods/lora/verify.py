"""LoRA's weight check: PEFT's key names, complete rank-r pairs on targeted Linear layers, ranks
as the config gives them (PEFT could not load others) and shapes that fit the backbone."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapterhub.errors import IntegrityError
from adapterhub.methods.base import linear_features
from adapterhub.methods.lora.config import LoraConfig
from adapterhub.methods.peft import PEFT_PREFIX, split_key

SUFFIXES = ("lora_A.weight", "lora_B.weight")
_ENDINGS = tuple("." + suffix for suffix in SUFFIXES)  # both 14 characters long
_NOT_SERVED = {
    ".lora_embedding_A": "LoRA on an embedding (the runtime adapts Linear layers only)",
    ".lora_embedding_B": "LoRA on an embedding (the runtime adapts Linear layers only)",
    ".lora_magnitude_vector": "a DoRA magnitude vector (DoRA is not served)",
    ".bias": "a trained bias (bias / modules_to_save weights cannot be hot-swapped)",
}


def lora_pairs(weights: Mapping[str, Any], where: str) -> dict[str, dict[str, tuple[str, Any]]]:
    """``{module: {"lora_A.weight": (key, tensor), "lora_B.weight": ...}}``."""
    pairs: dict[str, dict[str, tuple[str, Any]]] = {}
    start = len(PEFT_PREFIX)
    for key, tensor in weights.items():
        # every load runs this over ~150 keys: the common case in two string tests
        if key.startswith(PEFT_PREFIX) and key.endswith(_ENDINGS):
            pairs.setdefault(key[start:-14], {})[key[-13:]] = (key, tensor)
            continue
        rest = key[start:]
        for marker, what in _NOT_SERVED.items():
            if rest.endswith(marker) or f"{marker}." in rest:
                raise IntegrityError(f"{where}: tensor {key!r} is {what}; retrain without it")
        split_key(key, SUFFIXES, where)  # raises, naming the key
    return pairs


def check_weights(
    config: LoraConfig, weights: Mapping[str, Any], where: str, model: Any = None
) -> None:
    pairs = lora_pairs(weights, where)
    if not pairs:
        raise IntegrityError(f"{where}: no LoRA weights found")
    for module, pair in sorted(pairs.items()):
        if len(pair) != 2:
            raise IntegrityError(f"{where}: LoRA A/B pairs incomplete for {module!r}")
        (key_a, a), (key_b, b) = pair["lora_A.weight"], pair["lora_B.weight"]
        a_shape, b_shape = tuple(a.shape), tuple(b.shape)
        if len(a_shape) != 2 or len(b_shape) != 2 or a_shape[0] != b_shape[1]:
            raise IntegrityError(
                f"{where}: {key_a!r} {a_shape} and {key_b!r} {b_shape} are not a rank-r pair"
            )
        if not config.targets(module):
            raise IntegrityError(
                f"{where}: {key_a!r} adapts {module!r}, which target_modules (with "
                "exclude_modules / layers_to_transform) does not select; PEFT would ignore the "
                "tensor. Fix target_modules or drop the tensor"
            )
        rank = config.rank(module)
        if a_shape[0] != rank:
            raise IntegrityError(
                f"{where}: LoRA on {module!r} has rank {a_shape[0]} but r / rank_pattern give "
                f"it {rank}; PEFT cannot load it. Fix r or rank_pattern"
            )
        if model is not None:
            inp, out = linear_features(model, module, where, key_a)
            if a_shape[1] != inp or b_shape[0] != out:
                raise IntegrityError(
                    f"{where}: LoRA on {module!r} has A {a_shape} and B {b_shape} "
                    f"but the backbone module is {inp}->{out} (trained on another backbone?)"
                )
