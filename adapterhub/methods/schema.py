"""Field checks for adapter configs: each method's schema is a table ``{field: check}``.

A check takes a value and returns ``None`` when it is fine, else what the value must be (a few
words that complete "lora_alpha must be ..."). :func:`check_fields` turns the first problem into
one error that names the field, shows the value and says what to do next. The same tables check
an ``adapter_config.json`` (publish, import, pull, load) and a recipe's method fields (training).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from adapterhub.errors import AdapterHubError

Check = Callable[[Any], "str | None"]

MAX_SCALE = 1e4
"""Bound on LoRA alphas (the delta is scaled by alpha / r): far above any trained value, far
below what overflows fp32 activations once multiplied into a forward."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def integer(minimum: int = 1) -> Check:
    def check(value: Any) -> str | None:
        return None if _is_int(value) and value >= minimum else f"an integer >= {minimum}"

    return check


def number(low: float, high: float, *, include_low: bool = False) -> Check:
    """A finite number (never a bool, never a string) in ``(low, high]`` or ``[low, high]``."""
    bracket = "[" if include_low else "("

    def check(value: Any) -> str | None:
        ok = (
            _is_number(value)
            and math.isfinite(value)
            and (value >= low if include_low else value > low)
            and value <= high
        )
        return None if ok else f"a finite number in {bracket}{low:g}, {high:g}]"

    return check


def fraction(value: Any) -> str | None:
    """A probability such as a dropout rate: a number in [0, 1)."""
    ok = _is_number(value) and math.isfinite(value) and 0 <= value < 1
    return None if ok else "a number in [0, 1)"


def boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "true or false"


def text(value: Any) -> str | None:
    return None if isinstance(value, str) else "a string"


def optional(check: Check) -> Check:
    def optional_check(value: Any) -> str | None:
        problem = None if value is None else check(value)
        return None if problem is None else f"null or {problem}"

    return optional_check


def one_of(*allowed: Any, why: str = "") -> Check:
    def check(value: Any) -> str | None:
        # equality alone would let True pass for 1 and 1.0 for True
        if any(value == a and type(value) is type(a) for a in allowed):
            return None
        shown = ", ".join(_literal(a) for a in allowed)
        shown = shown if len(allowed) == 1 else f"one of {shown}"
        return f"{shown}{f' ({why})' if why else ''}"

    return check


def is_off(value: Any) -> bool:
    """An option that is not switched on: null, false, or empty."""
    return value is None or value is False or value in ("", [], {})


def off(why: str) -> Check:
    """A feature the serving runtime does not implement: only its "off" values pass."""

    def check(value: Any) -> str | None:
        return None if is_off(value) else f"null, false or empty ({why})"

    return check


def strings(value: Any) -> str | None:
    ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    return None if ok else "a list of strings"


def names(value: Any) -> str | None:
    """PEFT's module selectors: one regex (a string) or a list of module names."""
    ok = isinstance(value, str) or strings(value) is None
    return None if ok else "a pattern (a string) or a list of module names"


def integers(value: Any) -> str | None:
    ok = _is_int(value) or (isinstance(value, list) and all(_is_int(v) for v in value))
    return None if ok else "an integer or a list of integers"


def mapping(value_check: Check) -> Check:
    """A JSON object from strings to values that pass ``value_check``."""

    def check(value: Any) -> str | None:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            return "an object mapping module patterns to values"
        for key, item in value.items():
            problem = value_check(item)
            if problem is not None:
                return f"an object whose values are {problem} ({key!r} maps to {_show(item)})"
        return None

    return check


def any_value(_value: Any) -> str | None:
    """Informational fields (versions, names, init-time settings) that change no forward."""
    return None


def _literal(value: Any) -> str:
    """A value as JSON spells it (null, true, 16, 'relu')."""
    if value is None or isinstance(value, bool):
        return "null" if value is None else str(value).lower()
    return repr(value)


def _show(value: Any) -> str:
    """A value as JSON spells it, cut short; a string says it is one ("16" is not 16)."""
    shown = _literal(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"the string {shown}" if isinstance(value, str) else shown


def check_fields(
    values: Mapping[str, Any],
    schema: Mapping[str, Check],
    where: str,
    error: type[AdapterHubError],
    hint: str,
) -> None:
    """Run ``schema``'s check on every field ``values`` has; the first problem is raised."""
    for name, check in schema.items():
        if name in values:
            problem = check(values[name])
            if problem is not None:
                raise error(f"{where}: {name} must be {problem}, not {_show(values[name])}; {hint}")


def refuse_unknown(
    values: Mapping[str, Any],
    known: Mapping[str, Any],
    where: str,
    error: type[AdapterHubError],
    *,
    allow_off: bool,
) -> None:
    """Fields no schema names. With ``allow_off`` (PEFT's configs, which grow a field with every
    release) one is accepted while it is off: an unknown switch that is on may change the math."""
    for name in values:
        if name in known or (allow_off and is_off(values[name])):
            continue
        raise error(
            f"{where}: {name} = {_show(values[name])} is not a field adapterhub knows; it "
            "serves only options it implements (remove the field, or set it to null if it is a "
            "switch that is off)"
        )
