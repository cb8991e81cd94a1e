"""What LoRA and IA3 share: PEFT's file format, its module matching, and PEFT's own model wrap.

Their folders are exactly what ``peft`` writes (``PeftModel.from_pretrained(backbone.model,
folder)`` loads them): tensors ``base_model.model.<module>.<suffix>`` and an
``adapter_config.json`` with PEFT's field names. :class:`PeftTargets` answers "which modules does
this config adapt" the way PEFT does, so the checks refuse a tensor PEFT would silently ignore.
"""

from __future__ import annotations

import re
import warnings
from abc import abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from adapterhub.errors import AdapterHubError, IntegrityError
from adapterhub.methods import patterns, schema
from adapterhub.methods.base import CONFIG_HINT, TASK_ADAPTER, Method

PEFT_NOISE = (
    # we load the backbone from a local folder and record its name ourselves (add_adapter)
    r"The PEFT config's `base_model_name_or_path` was renamed",
    # PEFT asks transformers' deprecated property; nothing for a user to do
    r"`is_gradient_checkpointing` is deprecated",
    # a stack loads a second adapter into the PeftModel on purpose
    r"Already found a `peft_config` attribute in the model",
)


@contextmanager
def quiet_peft():
    """PEFT's and transformers' warnings about what adapterhub does on purpose, kept off the
    user's terminal (every other warning still shows)."""
    with warnings.catch_warnings():
        for message in PEFT_NOISE:
            warnings.filterwarnings("ignore", message=message)
        yield


PEFT_PREFIX = "base_model.model."

COMMON_SCHEMA: dict[str, schema.Check] = {
    "task_type": schema.optional(schema.text),
    "auto_mapping": schema.any_value,
    "peft_version": schema.optional(schema.text),
    "base_model_name_or_path": schema.optional(schema.text),
    "revision": schema.optional(schema.text),
    "inference_mode": schema.boolean,
    "fan_in_fan_out": schema.boolean,  # PEFT resets it for nn.Linear, the only layer served
    "target_modules": schema.names,
    "exclude_modules": schema.optional(schema.names),
    "modules_to_save": schema.off(
        "whole trained modules cannot be hot-swapped; `adapterhub registry import` moves a "
        "trained classifier into head.safetensors"
    ),
}
"""Fields every PEFT config has (PEFT's ``PeftConfig`` and the tuner-independent ones)."""


@dataclass
class PeftTargets:
    """Which modules a PEFT config adapts (PEFT's ``check_target_module_exists``)."""

    target_modules: str | list[str]
    """Module names (a name matches itself and any module ending in ``.name``) or one regex
    matched against the whole module name."""
    exclude_modules: str | list[str] | None = None
    """Modules never adapted, named like ``target_modules``."""
    layers_to_transform: int | list[int] | None = None
    """Only these layer indices (with a list of names in ``target_modules``)."""
    layers_pattern: str | list[str] | None = None
    """The name of the layer list (``layer``) whose index ``layers_to_transform`` reads."""

    def targets(self, module: str) -> bool:
        if self.exclude_modules:
            if isinstance(self.exclude_modules, str):
                if re.fullmatch(self.exclude_modules, module):
                    return False
            elif module in self.exclude_modules or any(
                module.endswith(f".{name}") for name in self.exclude_modules
            ):
                return False
        if isinstance(self.target_modules, str):
            return re.fullmatch(self.target_modules, module) is not None
        if module in self.target_modules:
            return True
        if not module.endswith(self._target_endings):
            return False
        indexes = self.layers_to_transform
        if indexes is None or indexes == []:
            return True
        index = self._layer_index(module)
        if index is None:
            return False
        return index == indexes if isinstance(indexes, int) else index in indexes

    @cached_property
    def _target_endings(self) -> tuple[str, ...]:
        return tuple(f".{name}" for name in self.target_modules)

    def _layer_index(self, module: str) -> int | None:
        # PEFT's rule, word for word: the first numbered segment (after the layers pattern)
        found = None
        if not self.layers_pattern:
            found = re.match(r".*?\.[^.]*\.(?P<idx>\d+)\.", module)
        else:
            names = self.layers_pattern
            for pattern in [names] if isinstance(names, str) else names:
                found = re.match(rf"(?:^|.*?\.){pattern}\.(?P<idx>\d+)\.", module)
                if found is not None:
                    break
        return int(found.group("idx")) if found else None

    def patterns(self) -> Iterator[tuple[str, str, str]]:
        """The regexes PEFT will run: (where they sit, pattern, how they are matched)."""
        if isinstance(self.target_modules, str):
            yield "target_modules pattern", self.target_modules, patterns.FULL
        if isinstance(self.exclude_modules, str):
            yield "exclude_modules pattern", self.exclude_modules, patterns.FULL
        layers = self.layers_pattern or []
        for pattern in [layers] if isinstance(layers, str) else layers:
            yield "layers_pattern", pattern, patterns.LAYERS

    def check_targets(self, where: str, error: type[AdapterHubError]) -> None:
        """PEFT's own refusals when it builds the config, and the pattern bound."""
        if isinstance(self.target_modules, list) and not self.target_modules:
            raise error(f"{where}: target_modules is empty; name the modules the adapter adapts")
        if isinstance(self.target_modules, str) and (
            self.layers_to_transform is not None or self.layers_pattern is not None
        ):
            raise error(
                f"{where}: layers_to_transform and layers_pattern cannot be used with a "
                "target_modules pattern (PEFT refuses this config); list module names instead"
            )
        if self.layers_pattern and self.layers_to_transform is None:
            raise error(
                f"{where}: layers_pattern needs layers_to_transform (PEFT refuses this config)"
            )


T = TypeVar("T", bound=PeftTargets)


def split_key(key: str, suffixes: tuple[str, ...], where: str) -> tuple[str, str]:
    """``base_model.model.<module>.<suffix>`` -> (module, suffix), for one of ``suffixes``."""
    if not key.startswith(PEFT_PREFIX):
        raise IntegrityError(f"{where}: tensor {key!r} is not a PEFT adapter key")
    rest = key[len(PEFT_PREFIX) :]
    for suffix in suffixes:
        if rest.endswith("." + suffix):
            return rest[: -len(suffix) - 1], suffix
    raise IntegrityError(f"{where}: tensor {key!r} is not a {' / '.join(suffixes)} tensor")


class PeftMethod(Method[T]):
    """A method whose format and training wrap are PEFT's (``PeftModel``)."""

    peft_type: ClassVar[str]
    """``peft_type`` as PEFT writes it (LORA, IA3)."""
    config_schema: ClassVar[dict[str, schema.Check]]
    """Every field of the method's adapter_config.json (with :data:`COMMON_SCHEMA`)."""
    peft_format = True

    def detects(self, config: Mapping[str, Any]) -> bool:
        return str(config.get("peft_type", "")).upper() == self.peft_type

    def validate_config(self, config: Mapping[str, Any], where: str) -> T:
        if config.get("peft_type") != self.peft_type:
            raise IntegrityError(
                f"{where}: peft_type must be {self.peft_type!r} as PEFT writes it, not "
                f"{config.get('peft_type')!r}; {CONFIG_HINT}"
            )
        if config.get("target_modules") is None:
            raise IntegrityError(
                f"{where}: target_modules is missing; name the modules the adapter adapts"
            )
        known = self.config_schema
        schema.check_fields(config, known, where, IntegrityError, CONFIG_HINT)
        schema.refuse_unknown(
            config, {**known, "peft_type": None}, where, IntegrityError, allow_off=True
        )
        parsed = self.parse(config)
        parsed.check_targets(where, IntegrityError)
        patterns.check_patterns(self.patterns(parsed), where, IntegrityError)
        return parsed

    @abstractmethod
    def parse(self, config: Mapping[str, Any]) -> T:
        """The config object of a dict that passed the schema."""

    def patterns(self, config: T) -> Iterator[tuple[str, str, str]]:
        return config.patterns()

    @abstractmethod
    def peft_config(self, config: T, base_name: str | None) -> Any:
        """PEFT's config object for ``config``."""

    def add_adapter(self, adapted: Any, config: T, base_name: str | None) -> None:
        # peft costs ~8 s to import: only building a model pays it, not the registry's checks
        from peft import get_peft_model

        peft_config = self.peft_config(config, base_name)
        with quiet_peft():
            if adapted.is_peft:
                adapted.encoder.add_adapter(TASK_ADAPTER, peft_config)
                activate_all(adapted)
            else:
                adapted.encoder = get_peft_model(adapted.encoder, peft_config)
        if base_name:  # PEFT writes the local folder here; the backbone's name travels better
            adapted.encoder.peft_config[TASK_ADAPTER].base_model_name_or_path = base_name
        for name, parameter in adapted.encoder.named_parameters():
            parameter.requires_grad_(f".{TASK_ADAPTER}." in name or name.endswith(TASK_ADAPTER))

    def load_adapter(
        self, adapted: Any, directory: Path, config: T, *, role: str, trainable: bool
    ) -> None:
        from peft import PeftModel  # ~8 s import, see add_adapter

        with quiet_peft():
            if adapted.is_peft:
                adapted.encoder.load_adapter(
                    str(directory), adapter_name=role, is_trainable=trainable
                )
                activate_all(adapted)
            else:
                adapted.encoder = PeftModel.from_pretrained(
                    adapted.encoder, str(directory), adapter_name=role, is_trainable=trainable
                )
        for name, parameter in adapted.encoder.named_parameters():
            if f".{role}." in name:
                parameter.requires_grad_(trainable)

    def save(self, adapted: Any, directory: Path, base_name: str | None) -> None:
        # save_embedding_layers=False: the embeddings are frozen, and "auto" would look the base
        # model's config up on the hub (a network call) to decide.
        adapted.encoder.save_pretrained(
            str(directory),
            selected_adapters=[TASK_ADAPTER],
            safe_serialization=True,
            save_embedding_layers=False,
        )
        # PEFT writes a generic model card; ours is generated from the manifest at publish time
        readme = directory / "README.md"
        if readme.is_file() and "peft" in readme.read_text(errors="replace")[:2000].lower():
            readme.unlink()


def activate_all(adapted: Any) -> None:
    """Make every loaded PEFT adapter active at once (a stack); PEFT sums their deltas."""
    names = list(adapted.encoder.peft_config)
    adapted.encoder.base_model.set_adapter(names if len(names) > 1 else names[0])


class CompiledPatterns:
    """``{pattern: value}`` (rank_pattern, alpha_pattern) looked up as PEFT's
    ``get_pattern_key`` does: the first key matching the end of the module name wins."""

    def __init__(self, table: Mapping[str, Any]) -> None:
        self.table = [(re.compile(rf"(.*\.)?({key})$"), value) for key, value in table.items()]

    def get(self, module: str, default: Any) -> Any:
        for pattern, value in self.table:
            if pattern.match(module):
                return value
        return default
