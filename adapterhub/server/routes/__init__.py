"""The server's routes, one :class:`fastapi.APIRouter` per concern, each in its own module.

``predict`` (``POST /v1/predict``), ``tei`` (Text Embeddings Inference's ``/predict`` and
``/embed``), ``embed`` (``POST /v1/embed`` and TEI's ``/similarity`` and ``/rerank``),
``admin`` (the adapter pool: list, load, unload), ``ops`` (health, readiness, Prometheus) and
``docs`` (the OpenAPI UI from packaged assets).

To add routes (a web page at ``GET /``, say): write ``web.py`` here with ``router = APIRouter()``
and its handlers, taking shared state through :mod:`adapterhub.server.deps`, then add one
``app.include_router(web.router)`` line in :func:`adapterhub.server.app.create_app`.
"""
