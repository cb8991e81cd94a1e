"""Package exports that load on first use (PEP 562), for packages whose modules pull in torch.

    __getattr__ = lazy_exports(__name__, {"Runtime": "adapterhub.runtime.runtime"})

``from adapterhub.runtime import Runtime`` still works and loads the module then; importing a
light submodule (``adapterhub.runtime.padding``) no longer runs the heavy ones. Keep the names in
``__all__`` and under ``if TYPE_CHECKING:`` for type checkers and readers.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_exports(package: str, homes: Mapping[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` that imports each name of ``homes`` from its module on first use."""

    def __getattr__(name: str) -> object:
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(homes[name]), name)

    return __getattr__
