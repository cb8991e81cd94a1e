"""The user's settings, kept in ``$ADAPTERHUB_HOME/config.json`` (``adapterhub config``).

``{"namespace": "alice"}``. Each setting may also come from an environment variable, which wins
over the file (so a CI job or one shell can differ without editing it). Settings are checked when
set and again when read, so a hand-edited file gives a clear error rather than a strange id.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from adapterhub import settings
from adapterhub.errors import UsageError


@dataclass(frozen=True)
class Setting:
    name: str
    help: str
    env: str
    default: str
    check: Callable[[str, str], str]
    """``check(value, where)`` returns the value or raises :class:`UsageError` naming ``where``."""


_SETTINGS: dict[str, Setting] = {}


def define(setting: Setting) -> Setting:
    """Make a setting known (the module that owns its meaning defines it)."""
    _SETTINGS[setting.name] = setting
    return setting


def known() -> dict[str, Setting]:
    return dict(_SETTINGS)


def config_file() -> Path:
    return settings.home() / "config.json"


def _setting(name: str) -> Setting:
    if name not in _SETTINGS:
        raise UsageError(f"unknown setting {name!r}; known: {', '.join(sorted(_SETTINGS))}")
    return _SETTINGS[name]


def load() -> dict[str, str]:
    """What the file holds (no environment, no defaults)."""
    path = config_file()
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise UsageError(f"{path} is not valid JSON ({exc}); fix or delete it") from exc
    if not isinstance(data, dict):
        raise UsageError(f"{path} must hold a JSON object; fix or delete it")
    return {str(k): str(v) for k, v in data.items()}


def get(name: str) -> tuple[str, str]:
    """``(value, where it came from)``: the environment variable, the file, or the default."""
    setting = _setting(name)
    if os.environ.get(setting.env):
        where = f"${setting.env}"
        return setting.check(os.environ[setting.env], where), where
    stored = load()
    if name in stored:
        where = str(config_file())
        return setting.check(stored[name], where), where
    return setting.default, "default"


def _save(values: dict[str, str]) -> None:
    path = config_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")
    temp.replace(path)


def set_value(name: str, value: str) -> str:
    setting = _setting(name)
    checked = setting.check(value, f"`adapterhub config set {name}`")
    _save({**load(), name: checked})
    return checked


def unset(name: str) -> None:
    _setting(name)
    values = load()
    values.pop(name, None)
    _save(values)
