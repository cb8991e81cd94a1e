"""The preprocessing record: how a text becomes model input, written once and read everywhere.

Training writes it into the manifest (``preprocessing``), evaluation and the runtime read it back,
so what is served is exactly what was evaluated. It has no dependencies so that the registry can
validate it without importing the task modules.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from adapterhub.errors import UsageError


@dataclass(frozen=True)
class Preprocessing:
    """How a text becomes model input: the one record train, eval and the runtime all read.

    Published in the manifest (``preprocessing``), so what is served is what was evaluated.
    """

    prefix: str = ""
    """Put before every input text (e5 models were trained with ``query: ``)."""
    max_length: int = 128
    """Inputs are cut at this many tokens, special tokens included."""
    truncation_side: str = "right"
    """Which end of a too-long input is cut (only ``right`` is supported)."""
    lowercase: bool = False
    """Lower-case texts before tokenising."""

    def __post_init__(self) -> None:
        if not isinstance(self.prefix, str) or len(self.prefix) > 256:
            raise UsageError("preprocessing prefix must be text of at most 256 characters")
        if isinstance(self.max_length, bool) or not isinstance(self.max_length, int):
            raise UsageError(
                f"preprocessing max_length must be an integer, not {self.max_length!r}"
            )
        if not 3 <= self.max_length <= 1_000_000:
            raise UsageError(f"preprocessing max_length must be at least 3, not {self.max_length}")
        if self.truncation_side != "right":
            raise UsageError(f"truncation_side {self.truncation_side!r}: only 'right' is supported")
        if not isinstance(self.lowercase, bool):
            raise UsageError(
                f"preprocessing lowercase must be true or false, not {self.lowercase!r}"
            )

    def normalise(self, text: str) -> str:
        """The text with the record's normalisation (lower-casing), without the prefix."""
        return text.lower() if self.lowercase else text

    def apply(self, text: str) -> str:
        """The text as the model reads it: normalised, behind the prefix."""
        return self.prefix + self.normalise(text)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, **defaults: Any) -> Preprocessing:
        """From a manifest's ``preprocessing`` (or a recipe dict); unknown keys are ignored."""
        values = dict(defaults)
        for key in ("prefix", "max_length", "truncation_side", "lowercase"):
            if isinstance(data, dict) and data.get(key) is not None:
                values[key] = data[key]
        return cls(**values)
