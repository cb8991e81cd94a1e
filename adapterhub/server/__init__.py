"""The HTTP server: FastAPI + uvicorn over the runtime (see :func:`create_app`).

from adapterhub.config import ServerConfig
from adapterhub.server import ServerThread, create_app
app = create_app(runtime, ServerConfig(max_batch_tokens=8192, admin_token="s3cret"))
with ServerThread(app) as server:       # or: uvicorn.run(app, host=..., port=...)
    httpx.post(server.url + "/v1/predict", json={"adapter": "sentiment/de", "inputs": ["..."]})

Layout: ``app.py`` (the factory), ``deps.py`` (shared state and admin auth as dependencies),
``errors.py`` (statuses and the one error shape), ``inference.py`` (limits, leases, encode,
queue), ``routes/`` (one router per concern), ``batching.py``, ``metrics.py``, ``schemas.py``.
"""

from adapterhub.config import ServerConfig
from adapterhub.server.app import create_app
from adapterhub.server.routes.tei import ADAPTER_HEADER
from adapterhub.server.runner import ServerThread

__all__ = ["ADAPTER_HEADER", "ServerConfig", "ServerThread", "create_app"]
