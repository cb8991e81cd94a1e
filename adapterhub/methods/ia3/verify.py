"""IA3's weight check: one vector per targeted Linear, shaped as PEFT makes it: (1, in) on a
feed-forward module (its input is scaled), (out, 1) elsewhere (its output is)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapterhub.errors import IntegrityError
from adapterhub.methods.base import linear_features
from adapterhub.methods.ia3.config import IA3Config
from adapterhub.methods.peft import split_key

SUFFIX = "ia3_l"


def check_weights(
    config: IA3Config, weights: Mapping[str, Any], where: str, model: Any = None
) -> None:
    if not weights:
        raise IntegrityError(f"{where}: no IA3 weights found")
    for key, tensor in sorted(weights.items()):
        module, _ = split_key(key, (SUFFIX,), where)
        if not config.targets(module):
            raise IntegrityError(
                f"{where}: {key!r} scales {module!r}, which target_modules does not select; "
                "PEFT would ignore the tensor. Fix target_modules or drop the tensor"
            )
        shape = tuple(tensor.shape)
        feedforward = config.is_feedforward(module)
        if model is not None:
            inp, out = linear_features(model, module, where, key)
            expected = (1, inp) if feedforward else (out, 1)
            ok = shape == expected
        else:
            expected = (1, "in") if feedforward else ("out", 1)
            ok = len(shape) == 2 and shape[0 if feedforward else 1] == 1
        if not ok:
            role = "a feed-forward module (its input is scaled)" if feedforward else "a module"
            raise IntegrityError(
                f"{where}: {key!r} has shape {shape}; {module!r} is {role} so it must be "
                f"{expected} (feedforward_modules and the weights disagree?)"
            )
