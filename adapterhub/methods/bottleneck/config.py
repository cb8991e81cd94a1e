"""The bottleneck adapter's config: its ``adapter_config.json`` (docs/FORMAT.md) and its schema.

Our own format, so the schema is closed: every field is known and nothing else is accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from adapterhub.errors import AdapterHubError
from adapterhub.methods import schema

METHOD_NAME = "bottleneck"

ACTIVATIONS = {"relu": "relu", "gelu": "gelu", "tanh": "tanh", "silu": "silu", "swish": "silu"}
"""``non_linearity`` -> the ``torch.nn.functional`` function computing it: the one table that
training (:mod:`.layer`) and serving (``runtime.batched``) both read."""


@dataclass
class BottleneckConfig:
    """What ``adapter_config.json`` of a bottleneck adapter holds.

    For training, a config from a recipe leaves ``hidden_size`` and ``num_layers`` empty: they
    are the backbone's, filled in when the fresh adapter is shaped for it."""

    hidden_size: int | None = None
    """Width of the backbone's hidden states (H)."""
    num_layers: int | None = None
    """Number of encoder layers; one adapter per layer."""
    reduction_factor: int = 16
    """H divided by the bottleneck width."""
    bottleneck_size: int | None = None
    """Width b of the bottleneck; derived as ``hidden_size // reduction_factor`` when None."""
    non_linearity: str = "relu"
    """One of relu, gelu, tanh, silu (swish)."""
    base_model_name_or_path: str | None = None
    """The backbone the adapter was trained on (informational; the manifest holds the fingerprint)."""
    adapter_method: str = METHOD_NAME

    def __post_init__(self) -> None:
        rf = self.reduction_factor
        derivable = isinstance(self.hidden_size, int) and isinstance(rf, int) and rf >= 1
        if self.bottleneck_size is None and derivable:
            self.bottleneck_size = max(1, self.hidden_size // rf)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        # the documented key order: method first, as in FORMAT.md
        return {"adapter_method": data.pop("adapter_method"), **data}


SCHEMA: dict[str, schema.Check] = {
    "adapter_method": schema.one_of(METHOD_NAME),
    "hidden_size": schema.integer(1),
    "num_layers": schema.integer(1),
    "reduction_factor": schema.integer(1),
    "bottleneck_size": schema.optional(schema.integer(1)),
    "non_linearity": schema.one_of(*ACTIVATIONS),
    "base_model_name_or_path": schema.optional(schema.text),
}
REQUIRED = ("adapter_method", "hidden_size", "num_layers")


def parse_config(
    data: Mapping[str, Any], where: str, error: type[AdapterHubError], hint: str
) -> BottleneckConfig:
    """The schema check: every field known, typed and in range; the required ones present."""
    for name in REQUIRED:
        if name not in data:
            raise error(f"{where}: {name} is missing; {hint}")
    schema.check_fields(data, SCHEMA, where, error, hint)
    schema.refuse_unknown(data, SCHEMA, where, error, allow_off=False)
    known = {f.name for f in fields(BottleneckConfig)}
    return BottleneckConfig(**{k: v for k, v in data.items() if k in known})
