"""The HTTP server: FastAPI + uvicorn over the runtime (see :func:`create_app`).

from adapterhub.config import ServerConfig
from adapterhub.server import ServerThread, create_app
app = create_app(runtime, ServerConfig(max_batch_tokens=8192, admin_token="s3cret"))
with ServerThread(app) as server:       # or: uvicorn.run(app, host=..., port=...)
    httpx.post(server.url + "/v1/predict", json={"adapter": "sentiment/de", "inputs": ["..."]})

Layout: ``app.py`` (the factory), ``deps.py`` (shared state and admin auth as dependencies),
``errors.py`` (statuses and the one error shape), ``inference.py`` (limits, leases, encode,
queue), ``routes/`` (one router per concern), ``batching.py``, ``metrics.py``, ``schemas.py``
(the payloads) and ``answers.py`` (the predictions' answers, which import torch with the task
types).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from adapterhub.lazy import lazy_exports

if TYPE_CHECKING:
    from adapterhub.config import ServerConfig
    from adapterhub.server.app import create_app
    from adapterhub.server.routes.tei import ADAPTER_HEADER
    from adapterhub.server.runner import ServerThread

__all__ = ["ADAPTER_HEADER", "ServerConfig", "ServerThread", "create_app"]

# The app pulls in the runtime and torch, which ``adapterhub hub`` (the pages) never needs.
__getattr__ = lazy_exports(
    __name__,
    {
        "ADAPTER_HEADER": "adapterhub.server.routes.tei",
        "ServerConfig": "adapterhub.config",
        "ServerThread": "adapterhub.server.runner",
        "create_app": "adapterhub.server.app",
    },
)
