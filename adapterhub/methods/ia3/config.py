"""IA3's config: which modules get a learned vector, and which of them scale their input.

Field names and defaults are PEFT's (``peft.IA3Config``); the schema knows every field PEFT 0.21
writes for IA3.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from adapterhub.methods import patterns, schema
from adapterhub.methods.peft import COMMON_SCHEMA, PeftTargets

# IA3 scales keys, values and the input of the second feed-forward Linear (the IA3 paper).
IA3_TARGETS = r".*layer\.\d+\.(attention\.self\.(key|value)|output\.dense)$"
IA3_FEEDFORWARD = r".*layer\.\d+\.output\.dense$"


@dataclass
class IA3Config(PeftTargets):
    """An IA3 adapter: ``y = (W x) * l`` on attention modules, ``y = W (x * l)`` on the
    feed-forward modules."""

    target_modules: str | list[str] = IA3_TARGETS
    """Modules that get a learned vector ``l``."""
    feedforward_modules: str | list[str] = IA3_FEEDFORWARD
    """Those of them whose input (not output) is scaled; a subset of ``target_modules``."""

    def is_feedforward(self, module: str) -> bool:
        # PEFT's rule, with its quirk: a listed name matches any module ending in it (no dot)
        if isinstance(self.feedforward_modules, str):
            return re.fullmatch(self.feedforward_modules, module) is not None
        return any(module.endswith(name) for name in self.feedforward_modules)

    def patterns(self) -> Iterator[tuple[str, str, str]]:
        yield from super().patterns()
        if isinstance(self.feedforward_modules, str):
            yield "feedforward_modules pattern", self.feedforward_modules, patterns.FULL


SCHEMA: dict[str, schema.Check] = {
    **COMMON_SCHEMA,
    "feedforward_modules": schema.names,
    "init_ia3_weights": schema.boolean,
}

FIELDS = ("target_modules", "exclude_modules", "feedforward_modules")


def parse(config: Mapping[str, Any]) -> IA3Config:
    """An :class:`IA3Config` from a dict that passed :data:`SCHEMA` (lists copied)."""
    values = {name: config[name] for name in FIELDS if name in config}
    for name, value in values.items():
        if isinstance(value, list):
            values[name] = list(value)
    return IA3Config(**values)


def check_subset(config: IA3Config, where: str, error: type) -> None:
    """PEFT refuses feed-forward modules outside the targets (both given as lists)."""
    ff, targets = config.feedforward_modules, config.target_modules
    if isinstance(ff, list) and isinstance(targets, list) and not set(ff) <= set(targets):
        raise error(
            f"{where}: feedforward_modules {sorted(set(ff) - set(targets))} are not in "
            "target_modules (PEFT refuses this config); add them to target_modules"
        )
