"""Where adapterhub keeps its files: ``$ADAPTERHUB_HOME`` (default ``~/.cache/adapterhub``)."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The root of everything adapterhub caches: backbones, data, carriers, the local registry."""
    return Path(os.environ.get("ADAPTERHUB_HOME") or Path.home() / ".cache" / "adapterhub")


def backbones_dir() -> Path:
    return home() / "backbones"


def data_dir() -> Path:
    return home() / "data"


def downloads_dir() -> Path:
    """Package archives (wheels, sdists, npm tarballs, debs) fetched on demand."""
    return home() / "downloads"


def registry_dir() -> Path:
    return home() / "registry"
