"""Run an app under uvicorn in a background thread (tests, benchmarks, notebooks)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn
from fastapi import FastAPI


class ServerThread:
    """``with ServerThread(app) as server: httpx.get(server.url + "/healthz")``; port 0 picks a
    free port."""

    def __init__(
        self, app: FastAPI, host: str = "127.0.0.1", port: int = 0, **options: Any
    ) -> None:
        if port == 0:
            with socket.socket() as probe:
                probe.bind((host, 0))
                port = probe.getsockname()[1]
        self.host, self.port = host, port
        self.server = uvicorn.Server(
            uvicorn.Config(
                app, host=host, port=port, log_level=options.pop("log_level", "warning"), **options
            )
        )
        self.thread = threading.Thread(
            target=self.server.run, name="adapterhub-uvicorn", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"uvicorn did not start on {self.url}")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
