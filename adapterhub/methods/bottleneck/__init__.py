"""The bottleneck adapter (Pfeiffer-style): our own format, config, verification, serving parts
and the torch module (:mod:`.layer`) that trains it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from adapterhub.errors import IntegrityError, RecipeError
from adapterhub.methods import schema
from adapterhub.methods.base import CONFIG_HINT, TASK_ADAPTER, Method, Parts
from adapterhub.methods.bottleneck import serve, verify
from adapterhub.methods.bottleneck.config import (
    ACTIVATIONS,
    METHOD_NAME,
    SCHEMA,
    BottleneckConfig,
    parse_config,
)


class Bottleneck(Method[BottleneckConfig]):
    name = METHOD_NAME
    config_class = BottleneckConfig
    kinds = ("bottleneck",)

    def detects(self, config: Mapping[str, Any]) -> bool:
        return config.get("adapter_method") == METHOD_NAME

    def config_from_recipe(self, recipe: Any) -> BottleneckConfig:
        config = BottleneckConfig(
            reduction_factor=recipe.reduction_factor, non_linearity=recipe.non_linearity
        )
        chosen = {k: v for k, v in asdict(config).items() if v is not None}
        schema.check_fields(chosen, SCHEMA, "recipe", RecipeError, "fix the recipe")
        return config

    def validate_config(self, config: Mapping[str, Any], where: str) -> BottleneckConfig:
        return parse_config(config, where, IntegrityError, CONFIG_HINT)

    def check_weights(
        self, config: BottleneckConfig, weights: Mapping[str, Any], where: str, model: Any = None
    ) -> None:
        verify.check_weights(config, weights, where, model)

    def serve_parts(
        self, config: BottleneckConfig, weights: Mapping[str, Any], modules: Mapping[str, int]
    ) -> Parts:
        return serve.serve_parts(config, weights, modules)

    # the torch module (torch: ~2-5 s to import) is imported by model building only, so the
    # registry's checks stay torch-free

    def add_adapter(self, adapted: Any, config: BottleneckConfig, base_name: str | None) -> None:
        from adapterhub.methods.bottleneck import layer

        fresh = layer.BottleneckAdapter.for_backbone(
            adapted.encoder,
            reduction_factor=config.reduction_factor,
            bottleneck_size=config.bottleneck_size,
            non_linearity=config.non_linearity,
            base_model_name_or_path=base_name,
        )
        layer.attach(adapted.encoder, fresh)
        adapted.bottlenecks[TASK_ADAPTER] = fresh
        fresh.requires_grad_(True)

    def load_adapter(
        self,
        adapted: Any,
        directory: Path,
        config: BottleneckConfig,
        *,
        role: str,
        trainable: bool,
    ) -> None:
        from adapterhub.methods.bottleneck import layer

        adapted.bottlenecks[role] = layer.apply(adapted.encoder, directory, trainable=trainable)

    def save(self, adapted: Any, directory: Path, base_name: str | None) -> None:
        from adapterhub.methods.bottleneck import layer

        extra = {"base_model_name_or_path": base_name} if base_name else {}
        layer.save(adapted.bottlenecks[TASK_ADAPTER], directory, **extra)


__all__ = ["ACTIVATIONS", "Bottleneck", "BottleneckConfig"]
