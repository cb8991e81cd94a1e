"""IA3 (Liu et al.), trained and saved by PEFT: config, verification and serving parts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapterhub.errors import IntegrityError
from adapterhub.methods.base import Parts
from adapterhub.methods.ia3 import serve, verify
from adapterhub.methods.ia3.config import SCHEMA, IA3Config, check_subset, parse
from adapterhub.methods.peft import PeftMethod


class IA3(PeftMethod[IA3Config]):
    name = "ia3"
    config_class = IA3Config
    kinds = ("ia3_in", "ia3_out")
    peft_type = "IA3"
    config_schema = SCHEMA

    def config_from_recipe(self, recipe: Any) -> IA3Config:
        return IA3Config()  # recipes choose no IA3 fields: the paper's modules

    def validate_config(self, config: Mapping[str, Any], where: str) -> IA3Config:
        if config.get("feedforward_modules") is None:
            raise IntegrityError(
                f"{where}: feedforward_modules is missing; name the modules whose input IA3 "
                "scales (PEFT guesses them per model type, adapterhub does not)"
            )
        parsed = super().validate_config(config, where)
        check_subset(parsed, where, IntegrityError)
        return parsed

    def parse(self, config: Mapping[str, Any]) -> IA3Config:
        return parse(config)

    def peft_config(self, config: IA3Config, base_name: str | None) -> Any:
        from peft import IA3Config as PeftIA3Config  # ~8 s import: model building only

        return PeftIA3Config(
            target_modules=config.target_modules,
            feedforward_modules=config.feedforward_modules,
            exclude_modules=config.exclude_modules,
            base_model_name_or_path=base_name,
        )

    def check_weights(
        self, config: IA3Config, weights: Mapping[str, Any], where: str, model: Any = None
    ) -> None:
        verify.check_weights(config, weights, where, model)

    def serve_parts(
        self, config: IA3Config, weights: Mapping[str, Any], modules: Mapping[str, int]
    ) -> Parts:
        return serve.serve_parts(config, weights)


__all__ = ["IA3", "IA3Config"]
