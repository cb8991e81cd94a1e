"""``adapterhub hub``: the hub's web pages over a registry, without loading a backbone."""

from __future__ import annotations

import argparse

from adapterhub.config import ServerConfig

HUB_PORT = ServerConfig.port + 1
"""Next to ``serve``'s port, so the hub and a server run side by side."""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "hub",
        help="browse a registry in a web browser (no backbone loaded)",
        description="Serve the hub's web pages (the registry browser and every adapter's page: "
        "card, metrics, matrix, files, versions) over the local store, the remotes and the "
        "built-in project store, or over one store. No backbone is loaded, so there is no "
        "playground here: `adapterhub serve` serves the same pages with one.",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--store", default=None, metavar="DIR|URL", help="browse only this registry folder or URL"
    )
    where.add_argument(
        "--from",
        dest="source",
        default=None,
        metavar="REMOTE",
        help="browse only this remote (a name from `adapterhub registry remote list`, e.g. "
        "project, or a URL)",
    )
    parser.add_argument(
        "--host",
        default=ServerConfig.host,
        help=f"address to listen on; 0.0.0.0 listens on every interface (default: "
        f"{ServerConfig.host})",
    )
    parser.add_argument(
        "--port", type=int, default=HUB_PORT, help=f"TCP port to listen on (default: {HUB_PORT})"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here, not at the top: the web app pulls in FastAPI and the server package
    # (seconds), while `adapterhub --help` takes 0.08 s without them.
    import uvicorn

    from adapterhub.registry.resolver import Resolver
    from adapterhub.server.web.hub import create_hub_app

    ServerConfig(host=args.host, port=args.port)  # refuses a port that is not one
    location = args.store or args.source
    resolver = Resolver.only(location) if location else Resolver.default()
    app = create_hub_app(resolver)
    stores = ", ".join(s.name for s in resolver.stores())
    print(f"browsing {stores} on http://{args.host}:{args.port}/", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="debug" if args.debug else "warning")
    return 0
