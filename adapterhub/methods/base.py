"""The shape every adapter method fills in, as PEFT's tuners do: a config, a training wrap, ONE
verification and the parts the serving banks hold.

A method is a :class:`Method` subclass in its own package (``methods/<name>/``), registered once
in :mod:`adapterhub.methods`. Publish, import, pull, training-time loads and the runtime all call
the same :meth:`Method.validate_config` and :meth:`Method.check_weights`, so an adapter that
passes them is one the runtime can serve and PEFT (for PEFT formats) can load.

This module and the verification halves of the methods import no torch: the registry detects and
checks adapters without it (``adapterhub registry list`` stays a fraction of a second). Tensors
arrive as arguments; only ``.shape``, ``.dim()`` and conversions are used on them.
"""

from __future__ import annotations

import weakref
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from adapterhub.errors import IntegrityError

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
TASK_ADAPTER = "default"  # PEFT saves the "default" adapter at the folder's top level
LANGUAGE_ADAPTER = "language"
CONFIG_HINT = "fix adapter_config.json (or retrain) and publish again"

C = TypeVar("C")


@dataclass
class Part:
    """One group of tensors of one adapter destined for one bank slot."""

    module: str
    """The hooked Linear's name in the backbone model."""
    kind: str
    """Which hook math applies it: a field of :class:`adapterhub.runtime.batched.ModulePlan`
    (lora, ia3_in, ia3_out, bottleneck)."""
    tensors: dict[str, Any]
    activation: str = ""
    """Bottleneck parts: the non-linearity's name (:data:`bottleneck.config.ACTIVATIONS`)."""
    scales: dict[str, float] = field(default_factory=dict)
    """Multiply these tensors once, as they are copied into the slot (LoRA's alpha / r)."""

    @property
    def bank_key(self) -> tuple:
        shapes = tuple(sorted((name, tuple(t.shape)) for name, t in self.tensors.items()))
        return (self.module, self.kind, shapes, self.activation)


@dataclass
class Parts:
    parts: list[Part] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        """Bytes of the tensors as the fp32 banks hold them."""
        return 4 * sum(t.numel() for p in self.parts for t in p.tensors.values())


class Method(ABC, Generic[C]):
    """One adapter method: fill in every abstract method (see :mod:`adapterhub.methods`).

    ``C`` is the method's config dataclass: its fields carry their docs, a fresh adapter is
    built from one, and :meth:`validate_config` turns a saved ``adapter_config.json`` into one.
    """

    name: ClassVar[str]
    """What recipes, the CLI's ``--method`` and manifests call it."""
    config_class: ClassVar[type]
    kinds: ClassVar[tuple[str, ...]]
    """The hook math its serving parts use (fields of ``runtime.batched.ModulePlan``)."""
    peft_format: ClassVar[bool] = False
    """Its folders are PEFT's own: ``PeftModel.from_pretrained`` loads them."""

    # ---------------------------------------------------------------- configs

    @abstractmethod
    def detects(self, config: Mapping[str, Any]) -> bool:
        """Whether an ``adapter_config.json`` (as a dict) says it is this method's."""

    @abstractmethod
    def config_from_recipe(self, recipe: Any) -> C:
        """The config a training recipe asks for (checked by the method's schema)."""

    @abstractmethod
    def validate_config(self, config: Mapping[str, Any], where: str) -> C:
        """THE schema check of a saved config: every field's type, range and finiteness,
        allowed keys and values, bounded patterns. Raises :class:`IntegrityError` naming the
        field; returns the parsed config."""

    # ---------------------------------------------------------------- weights

    @abstractmethod
    def check_weights(
        self, config: C, weights: Mapping[str, Any], where: str, model: Any = None
    ) -> None:
        """Key names, complete and consistent shapes, and (with ``model``, the backbone) shapes
        that fit its modules. Raises :class:`IntegrityError` naming the tensor."""

    @abstractmethod
    def serve_parts(
        self, config: C, weights: Mapping[str, Any], modules: Mapping[str, int]
    ) -> Parts:
        """The tensors the banks hold, per hooked Linear (``modules``: the backbone's Linear
        names, as the runtime hooked them). Only called on checked configs and weights."""

    # ---------------------------------------------------------------- training

    @abstractmethod
    def add_adapter(self, adapted: Any, config: C, base_name: str | None) -> None:
        """Put a fresh trainable adapter on ``adapted`` (an ``Adapted``) as the task adapter."""

    @abstractmethod
    def load_adapter(
        self, adapted: Any, directory: Path, config: C, *, role: str, trainable: bool
    ) -> None:
        """Load a checked folder onto ``adapted`` under ``role`` (task or language)."""

    @abstractmethod
    def save(self, adapted: Any, directory: Path, base_name: str | None) -> None:
        """Write the task adapter of ``adapted`` in the method's format into ``directory``."""


_MODULES_BY_MODEL: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def modules_of(model: Any) -> dict[str, Any]:
    """``{name: module}`` of a backbone model, built once per model: a load checks ~100 keys
    against the same backbone."""
    modules = _MODULES_BY_MODEL.get(model)
    if modules is None:
        modules = _MODULES_BY_MODEL[model] = dict(model.named_modules())
    return modules


def linear_features(model: Any, name: str, where: str, key: str) -> tuple[int, int]:
    """(in, out) features of the Linear ``name`` of ``model``, which an adapter tensor ``key``
    targets; refuses a module the model lacks or one the runtime cannot hook."""
    module = modules_of(model).get(name)
    if module is None:
        raise IntegrityError(
            f"{where}: tensor {key!r} targets module {name!r}, which the backbone does not have "
            "(wrong backbone or a foreign adapter)"
        )
    if not (hasattr(module, "in_features") and hasattr(module, "out_features")):
        raise IntegrityError(
            f"{where}: tensor {key!r} adapts {name!r}, a {type(module).__name__}; adapters are "
            "served on Linear layers only (retrain without it in target_modules)"
        )
    return int(module.in_features), int(module.out_features)
