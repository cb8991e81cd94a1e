"""LoRA (Hu et al.), trained and saved by PEFT: config, verification and serving parts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from adapterhub.errors import RecipeError
from adapterhub.methods import patterns, schema
from adapterhub.methods.base import Parts
from adapterhub.methods.lora import serve, verify
from adapterhub.methods.lora.config import SCHEMA, LoraConfig, parse
from adapterhub.methods.peft import PeftMethod


class Lora(PeftMethod[LoraConfig]):
    name = "lora"
    config_class = LoraConfig
    kinds = ("lora",)
    peft_type = "LORA"
    config_schema = SCHEMA

    def config_from_recipe(self, recipe: Any) -> LoraConfig:
        config = LoraConfig(
            r=recipe.lora_r,
            lora_alpha=recipe.lora_alpha,
            lora_dropout=recipe.lora_dropout,
            target_modules=list(recipe.target_modules),
        )
        schema.check_fields(asdict(config), SCHEMA, "recipe", RecipeError, "fix the recipe")
        config.check_targets("recipe", RecipeError)
        patterns.check_patterns(config.patterns(), "recipe", RecipeError)
        return config

    def parse(self, config: Mapping[str, Any]) -> LoraConfig:
        return parse(config)

    def peft_config(self, config: LoraConfig, base_name: str | None) -> Any:
        from peft import LoraConfig as PeftLoraConfig  # ~8 s import: model building only

        return PeftLoraConfig(
            r=config.r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=config.target_modules,
            exclude_modules=config.exclude_modules,
            layers_to_transform=config.layers_to_transform,
            layers_pattern=config.layers_pattern,
            use_rslora=config.use_rslora,
            rank_pattern=dict(config.rank_pattern),
            alpha_pattern=dict(config.alpha_pattern),
            bias="none",
            base_model_name_or_path=base_name,
        )

    def check_weights(
        self, config: LoraConfig, weights: Mapping[str, Any], where: str, model: Any = None
    ) -> None:
        verify.check_weights(config, weights, where, model)

    def serve_parts(
        self, config: LoraConfig, weights: Mapping[str, Any], modules: Mapping[str, int]
    ) -> Parts:
        return serve.serve_parts(config, weights)


__all__ = ["Lora", "LoraConfig"]
