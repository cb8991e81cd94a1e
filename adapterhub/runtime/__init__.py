"""The serving runtime: one frozen backbone, a pool of resident adapters, mixed-adapter batches.

    from adapterhub.backbone import load_backbone
    from adapterhub.runtime import Runtime

    runtime = Runtime(load_backbone(), max_resident=1000)
    runtime.predict("sentiment/de", ["Das Buch ist wunderbar."])
    runtime.predict(["lang/de", "sentiment/en"], ["..."])     # a MAD-X stack: language, task

Lower level (what the server's batcher uses): :meth:`Runtime.acquire` pins the adapters of a
request and returns a :class:`Lease`; :meth:`Runtime.encode` turns a text into a :class:`Row`;
:meth:`Runtime.forward` runs ONE backbone forward over rows that use different adapters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from adapterhub.lazy import lazy_exports

if TYPE_CHECKING:
    from adapterhub.runtime.runtime import (
        DEFAULT_PREFIX,
        Lease,
        Resident,
        Row,
        RowOutput,
        Runtime,
        format_prediction,
    )

__all__ = [
    "DEFAULT_PREFIX",
    "Lease",
    "Resident",
    "Row",
    "RowOutput",
    "Runtime",
    "format_prediction",
]

# runtime.py imports torch; the server's batcher only needs padding.py, and the hub neither.
__getattr__ = lazy_exports(__name__, dict.fromkeys(__all__, "adapterhub.runtime.runtime"))
