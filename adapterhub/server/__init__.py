"""The HTTP server: FastAPI + uvicorn over the runtime (see :func:`create_app`, :func:`serve`).

from adapterhub.server import ServerConfig, create_app, ServerThread
app = create_app(runtime, ServerConfig(max_batch_tokens=8192, admin_token="s3cret"))
with ServerThread(app) as server:       # or: uvicorn.run(app, host=..., port=...)
    httpx.post(server.url + "/v1/predict", json={"adapter": "sentiment/de", "inputs": ["..."]})
"""

from adapterhub.server.app import ADAPTER_HEADER, ServerConfig, ServerThread, create_app

__all__ = ["ADAPTER_HEADER", "ServerConfig", "ServerThread", "create_app"]
