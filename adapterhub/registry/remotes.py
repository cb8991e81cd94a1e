"""Named remotes, kept in ``$ADAPTERHUB_HOME/remotes.json``.

``{"remotes": {"team": {"url": "oci://registry.example:5000/nlp/adapters", "read_only": false}}}``

The project's own ``registry/`` folder (next to the package in a source checkout, or
``$ADAPTERHUB_PROJECT_REGISTRY``) is the built-in read-only remote ``project``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from adapterhub import settings
from adapterhub.errors import NotFoundError, RegistryError, UsageError
from adapterhub.registry.stores import LocalStore, Store, open_store

PROJECT_REMOTE = "project"
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def remotes_file() -> Path:
    return settings.home() / "remotes.json"


def project_registry_dir() -> Path | None:
    """The project's published adapters: ``$ADAPTERHUB_PROJECT_REGISTRY`` or the source tree's
    top-level ``registry/``; None when neither exists."""
    configured = os.environ.get("ADAPTERHUB_PROJECT_REGISTRY")
    if configured is not None:
        return Path(configured) if configured and Path(configured).is_dir() else None
    candidate = Path(__file__).resolve().parents[2] / "registry"
    return candidate if candidate.is_dir() else None


def _load() -> dict[str, dict]:
    path = remotes_file()
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        return dict(data.get("remotes", {}))
    except (ValueError, AttributeError) as exc:
        raise RegistryError(f"{path} is not valid JSON ({exc}); fix or delete it") from exc


def _save(remotes: dict[str, dict]) -> None:
    path = remotes_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(json.dumps({"remotes": remotes}, indent=2, sort_keys=True) + "\n")
    temp.replace(path)


def add_remote(name: str, url: str, *, read_only: bool = False) -> None:
    if not _NAME_RE.match(name):
        raise UsageError(f"remote name {name!r} is invalid; use lowercase letters, digits, - and _")
    if name == PROJECT_REMOTE:
        raise UsageError(f"{PROJECT_REMOTE!r} is the built-in remote; choose another name")
    open_store(url)  # validates the URL form without contacting it
    remotes = _load()
    remotes[name] = {"url": url, "read_only": bool(read_only)}
    _save(remotes)


def remove_remote(name: str) -> None:
    remotes = _load()
    if name not in remotes:
        raise NotFoundError(f"no remote named {name!r}; see `adapterhub registry remote list`")
    del remotes[name]
    _save(remotes)


def list_remotes() -> dict[str, dict]:
    """Configured remotes in order, then ``project`` when the project registry exists."""
    remotes = _load()
    project = project_registry_dir()
    if project is not None:
        remotes[PROJECT_REMOTE] = {"url": str(project), "read_only": True}
    return remotes


def _open_remote(info: dict) -> Store:
    return open_store(info["url"], read_only=bool(info.get("read_only")))


def remote_store(name_or_url: str) -> Store:
    """A remote by name, or a store from a URL/path given directly."""
    remotes = list_remotes()
    if name_or_url in remotes:
        return _open_remote(remotes[name_or_url])
    if "://" in name_or_url or "/" in name_or_url or name_or_url.startswith("."):
        return open_store(name_or_url)
    raise NotFoundError(
        f"no remote named {name_or_url!r}; add it with `adapterhub registry remote add "
        f"{name_or_url} URL` or pass a URL"
    )


def upstream_stores() -> list[Store]:
    """Every remote, in the order :func:`adapterhub.registry.resolve` consults them."""
    # One read of remotes.json per resolve (this sits on the serving runtime's load path).
    return [_open_remote(info) for info in list_remotes().values()]


__all__ = [
    "LocalStore",
    "add_remote",
    "list_remotes",
    "project_registry_dir",
    "remote_store",
    "remove_remote",
    "upstream_stores",
]
