"""Named remotes, kept in ``$ADAPTERHUB_HOME/remotes.json``.

``{"remotes": {"team": {"url": "oci://registry.example:5000/nlp/adapters", "read_only": false}}}``

The project's own ``registry/`` folder (shipped in the package as ``adapterhub._registry``, or
``$ADAPTERHUB_PROJECT_REGISTRY``) is the built-in read-only remote ``project``.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

from adapterhub import settings
from adapterhub.errors import NotFoundError, RegistryError, UsageError
from adapterhub.registry.signing import SignaturePolicy
from adapterhub.registry.stores import LocalStore, Store, open_store

log = logging.getLogger(__name__)

PROJECT_REMOTE = "project"
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def remotes_file() -> Path:
    return settings.home() / "remotes.json"


def project_registry_dir() -> Path | None:
    """The project's published adapters: the folder ``$ADAPTERHUB_PROJECT_REGISTRY`` names (set
    but empty: none), else the store shipped in the package. None when absent, which is logged
    once, in one line."""
    folder, missing = _locate_project_registry()
    if missing:
        _warn_once(missing)
    return folder


def _locate_project_registry() -> tuple[Path | None, str | None]:
    """(folder, None), or (None, why it is absent); (None, None) when switched off."""
    configured = os.environ.get("ADAPTERHUB_PROJECT_REGISTRY")
    if configured == "":
        return None, None
    if configured is not None:
        if Path(configured).is_dir():
            return Path(configured), None
        return None, (
            f"ADAPTERHUB_PROJECT_REGISTRY={configured} is not a folder, so the built-in store "
            f"{PROJECT_REMOTE!r} is absent; point it at a registry folder or unset it"
        )
    try:
        # The top-level registry/ folder: the wheel ships it as this package and an editable
        # install maps the name onto the checkout's folder.
        return Path(str(importlib.resources.files("adapterhub._registry"))), None
    except ModuleNotFoundError:
        return None, (
            f"the built-in store {PROJECT_REMOTE!r} (package adapterhub._registry, the project's "
            "published adapters) is not installed; reinstall adapterhub to get it"
        )


@functools.cache
def _warn_once(message: str) -> None:
    log.warning(message)


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


def add_remote(
    name: str,
    url: str,
    *,
    read_only: bool = False,
    require_signature: bool = False,
    trusted_keys: Sequence[str | Path] = (),
) -> None:
    """Add or replace a remote. ``require_signature``: what is pulled or served from it must be
    signed by one of ``trusted_keys`` (PEM public keys, kept as absolute paths)."""
    if not _NAME_RE.match(name):
        raise UsageError(f"remote name {name!r} is invalid; use lowercase letters, digits, - and _")
    if name == PROJECT_REMOTE:
        raise UsageError(f"{PROJECT_REMOTE!r} is the built-in remote; choose another name")
    open_store(url)  # validates the URL form without contacting it
    entry: dict = {"url": url, "read_only": bool(read_only)}
    if require_signature or trusted_keys:
        keys = [str(Path(k).expanduser().resolve()) for k in trusted_keys]
        SignaturePolicy(bool(require_signature), tuple(keys)).trusted_ids()  # refuse bad keys
        entry.update(require_signature=bool(require_signature), trusted_keys=keys)
    remotes = _load()
    remotes[name] = entry
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
