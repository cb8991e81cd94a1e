"""The hub's web pages: browse a registry, read an adapter's card, try adapters, watch the server.

Server-rendered HTML (Jinja2 templates, autoescaped) with a little vanilla JavaScript; every
asset ships in this package (``templates/``, ``static/``), so nothing is fetched from the network.
The router is :mod:`adapterhub.server.routes.web`; it works with a runtime (``adapterhub serve``)
and without one (``adapterhub hub``, :func:`adapterhub.server.web.hub.create_hub_app`).

- ``catalog.py``: what the pages show about a registry, read through the resolver (every store,
  where each entry lives, which version a short id means, metrics per language, the matrix);
- ``card.py``: the model card, checked against the manifest's sha256 and rendered safely;
- ``charts.py``: the inline SVG bar chart and the heatmap table;
- ``live.py``: the numbers of the live view (``GET /v1/stats``);
- ``pages.py``: the template environment and the static assets;
- ``hub.py``: the app of ``adapterhub hub``.
"""
