"""LoRA's config: what a LoRA adapter is, and the schema of its ``adapter_config.json``.

The field names and defaults are PEFT's (``peft.LoraConfig``), so a field missing from a saved
config means what it means to PEFT. The schema knows every field PEFT 0.21 writes and says for
each whether the runtime serves it (rsLoRA, rank_pattern, alpha_pattern), ignores it safely
(init-time and bookkeeping fields), or refuses it (DoRA, trained biases, modules_to_save, ...:
switches that change the forward and that the runtime does not implement). Fields from newer
PEFT releases pass only while they are off.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from adapterhub.methods import patterns, schema
from adapterhub.methods.peft import COMMON_SCHEMA, CompiledPatterns, PeftTargets

DEFAULT_TARGETS = ("query", "key", "value", "dense")


@dataclass
class LoraConfig(PeftTargets):
    """A LoRA adapter: ``y = W x + s * B A x`` on each targeted Linear, ``s = alpha / r``."""

    target_modules: str | list[str] = field(default_factory=lambda: list(DEFAULT_TARGETS))
    """Modules LoRA adapts (BERT: query, key, value, dense)."""
    r: int = 8
    """Rank: A is [r, in], B is [out, r]."""
    lora_alpha: float = 8
    """Scaling numerator: the delta is scaled by alpha / r (alpha / sqrt(r) with rsLoRA)."""
    lora_dropout: float = 0.0
    """Dropout on the adapter's input while training (no effect when serving)."""
    use_rslora: bool = False
    """Rank-stabilised LoRA: scale by alpha / sqrt(r)."""
    rank_pattern: dict[str, int] = field(default_factory=dict)
    """Per-module ranks: {module pattern: r}, matched against the end of the module name."""
    alpha_pattern: dict[str, float] = field(default_factory=dict)
    """Per-module alphas, matched like ``rank_pattern``."""

    @cached_property
    def _ranks(self) -> CompiledPatterns:
        return CompiledPatterns(self.rank_pattern)

    @cached_property
    def _alphas(self) -> CompiledPatterns:
        return CompiledPatterns(self.alpha_pattern)

    def rank(self, module: str) -> int:
        return int(self._ranks.get(module, self.r))

    def scaling(self, module: str) -> float:
        """What PEFT multiplies the delta of ``module`` by."""
        alpha = float(self._alphas.get(module, self.lora_alpha))
        rank = self.rank(module)
        return alpha / math.sqrt(rank) if self.use_rslora else alpha / rank

    def patterns(self) -> Iterator[tuple[str, str, str]]:
        yield from super().patterns()
        for key in self.rank_pattern:
            yield "rank_pattern key", key, patterns.KEY
        for key in self.alpha_pattern:
            yield "alpha_pattern key", key, patterns.KEY


INIT_CHOICES = (True, False, "gaussian", "eva", "orthogonal", "mica")
"""Initialisations that leave the base weights alone; pissa, olora, corda, loftq and lora_ga
rewrite them, so their adapters only work on a backbone that no longer matches ours."""

SCHEMA: dict[str, schema.Check] = {
    **COMMON_SCHEMA,
    # served
    "r": schema.integer(1),
    "lora_alpha": schema.number(0, schema.MAX_SCALE),
    "use_rslora": schema.boolean,
    "rank_pattern": schema.mapping(schema.integer(1)),
    "alpha_pattern": schema.mapping(schema.number(0, schema.MAX_SCALE)),
    "layers_to_transform": schema.optional(schema.integers),
    "layers_pattern": schema.optional(schema.names),
    # training-time only
    "lora_dropout": schema.fraction,
    "init_lora_weights": schema.one_of(
        *INIT_CHOICES,
        why="the other initialisations rewrite the base weights; save the adapter with "
        "path_initial_model_for_weight_conversion so PEFT turns it into a plain LoRA",
    ),
    "loftq_config": schema.any_value,
    "eva_config": schema.any_value,
    "corda_config": schema.any_value,
    "lora_ga_config": schema.any_value,
    "qalora_group_size": schema.any_value,
    "megatron_core": schema.optional(schema.text),
    "ensure_weight_tying": schema.boolean,
    # forward-changing switches the runtime does not implement
    "bias": schema.one_of("none", why="trained biases are not served; retrain with bias='none'"),
    "use_dora": schema.off("DoRA's magnitude vectors are not served; retrain without use_dora"),
    "lora_bias": schema.off("a bias on lora_B is not served"),
    "trainable_token_indices": schema.off("trained embedding rows are not served"),
    "layer_replication": schema.off("replicated layers change the backbone"),
    "target_parameters": schema.off("LoRA on bare parameters is not served"),
    "use_qalora": schema.off("QA-LoRA is not served"),
    "alora_invocation_tokens": schema.off("activated LoRA is not served"),
    "megatron_config": schema.off("Megatron layers are not served"),
    "arrow_config": schema.off("Arrow routing is not served"),
    "kasa_config": schema.off("KaSA is not served"),
    "velora_config": schema.off("VeLoRA is not served"),
    "monteclora_config": schema.off("MonteCLoRA is not served"),
    "use_bdlora": schema.off("block-diagonal LoRA is not served"),
}

FIELDS = (
    "target_modules",
    "exclude_modules",
    "layers_to_transform",
    "layers_pattern",
    "r",
    "lora_alpha",
    "lora_dropout",
    "use_rslora",
    "rank_pattern",
    "alpha_pattern",
)
"""The schema's fields that :class:`LoraConfig` keeps (the others change nothing served)."""


def parse(config: Mapping[str, Any]) -> LoraConfig:
    """A :class:`LoraConfig` from a dict that passed :data:`SCHEMA` (lists and dicts copied)."""
    values = {name: config[name] for name in FIELDS if name in config}
    for name, value in values.items():
        if isinstance(value, list | dict):
            values[name] = type(value)(value)
    return LoraConfig(**values)
