"""The HTTP face of the runtime: FastAPI routes, limits, errors, auth, and a runner.

Routes: ``POST /v1/predict``; TEI-shaped ``POST /predict`` (``/predict/{adapter}`` or the
``X-Adapter-Id`` header) and ``POST /embed``; ``GET /v1/adapters``; admin ``POST
/v1/adapters/{id}:load`` and ``DELETE /v1/adapters/{id}`` (``Authorization: Bearer TOKEN``);
``/healthz``, ``/readyz``, ``/metrics``; OpenAPI at ``/docs``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import torch
from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from adapterhub.errors import (
    AdapterHubError,
    BackboneMismatchError,
    ConflictError,
    IntegrityError,
    NotFoundError,
    OverloadError,
    UsageError,
)
from adapterhub.runtime import Runtime, format_prediction
from adapterhub.runtime.runtime import Lease
from adapterhub.server.batching import Batcher
from adapterhub.server.metrics import Metrics
from adapterhub.server.schemas import (
    AdapterInfo,
    AdaptersResponse,
    ErrorResponse,
    Health,
    PredictRequest,
    PredictResponse,
    TEIEmbedRequest,
    TEIPredictRequest,
    TEIScore,
    UnloadResponse,
)

log = logging.getLogger(__name__)
ADAPTER_HEADER = "X-Adapter-Id"


@dataclass
class ServerConfig:
    """The server's stated limits (as TEI states its own)."""

    max_batch_tokens: int = 8192
    """Padded tokens (rows x longest row) in one batched forward."""
    max_wait_ms: float = 5.0
    """How long the oldest queued request waits for others to share its batch."""
    max_queue: int = 1024
    """Inputs waiting in the queue; more are refused with 429 and Retry-After."""
    max_inputs: int = 64
    """Inputs (texts) per request; more get 413."""
    max_chars: int = 4096
    """Characters per input; longer ones get 413."""
    admin_token: str | None = None
    """Bearer token of the admin routes (load, unload); None disables them."""


class ApiError(Exception):
    def __init__(self, status: int, message: str, error_type: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.error_type, self.headers = (
            status,
            message,
            error_type,
            headers,
        )


def _status(exc: AdapterHubError) -> tuple[int, str]:
    if isinstance(exc, NotFoundError):
        return 404, "not_found"
    if isinstance(exc, (BackboneMismatchError, ConflictError)):
        return 409, "backbone_mismatch" if isinstance(exc, BackboneMismatchError) else "conflict"
    if isinstance(exc, OverloadError):
        return 429, "overloaded"
    if isinstance(exc, (UsageError, IntegrityError)):
        return 422, "validation" if isinstance(exc, UsageError) else "integrity"
    return 503, "unavailable"


_ERRORS = {code: {"model": ErrorResponse} for code in (401, 403, 404, 409, 413, 422, 429, 503)}


def create_app(runtime: Runtime, config: ServerConfig | None = None) -> FastAPI:
    """The FastAPI app over ``runtime``; its batcher starts and stops with the app."""
    config = config or ServerConfig()
    if config.max_inputs > config.max_queue:
        raise UsageError(
            f"--max-inputs {config.max_inputs} exceeds --max-queue {config.max_queue}: such a "
            "request could never be queued; raise --max-queue or lower --max-inputs"
        )
    metrics = Metrics()
    metrics.loads.inc(runtime.counters["loads"])  # preloaded before the app existed
    metrics.evictions.inc(runtime.counters["evictions"])
    runtime.listeners.append(metrics.on_runtime_event)
    batcher = Batcher(
        runtime,
        max_batch_tokens=config.max_batch_tokens,
        max_wait_ms=config.max_wait_ms,
        max_queue=config.max_queue,
        metrics=metrics,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        batcher.start()
        _app.state.ready = True
        try:
            yield
        finally:
            _app.state.ready = False
            await asyncio.to_thread(batcher.stop)

    app = FastAPI(
        title="adapterhub",
        summary="One frozen multilingual backbone, thousands of hot-swapped adapters.",
        version="1",
        lifespan=lifespan,
    )
    app.state.runtime, app.state.batcher, app.state.metrics = runtime, batcher, metrics
    app.state.config, app.state.ready = config, False

    # ------------------------------------------------------------------ errors

    def error(status: int, message: str, error_type: str, headers=None) -> JSONResponse:
        return JSONResponse(
            {"error": message, "error_type": error_type}, status_code=status, headers=headers
        )

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError):
        return error(exc.status, exc.message, exc.error_type, exc.headers)

    @app.exception_handler(AdapterHubError)
    async def _hub_error(_request: Request, exc: AdapterHubError):
        status, kind = _status(exc)
        headers = {"Retry-After": str(batcher.retry_after())} if status == 429 else None
        return error(status, str(exc), kind, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError):
        parts = []
        for item in exc.errors():
            where = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
            parts.append(f"{where}: {item.get('msg')}" if where else str(item.get("msg")))
        return error(422, "; ".join(parts) or "invalid request", "validation")

    @app.middleware("http")
    async def _count(request: Request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        endpoint = getattr(route, "path", "unmatched")
        metrics.requests.labels(endpoint, str(response.status_code)).inc()
        if endpoint not in ("/metrics", "/healthz", "/readyz"):
            metrics.request_seconds.observe(time.perf_counter() - started)
        return response

    # ------------------------------------------------------------------ helpers

    def check_inputs(inputs: list[str]) -> None:
        if len(inputs) > config.max_inputs:
            raise ApiError(
                413,
                f"{len(inputs)} inputs in one request; the limit is {config.max_inputs} "
                "(split the request)",
                "payload_too_large",
            )
        for index, text in enumerate(inputs):
            if len(text) > config.max_chars:
                raise ApiError(
                    413,
                    f"input {index} has {len(text)} characters; the limit is {config.max_chars}",
                    "payload_too_large",
                )

    async def acquire(spec: list[str] | None) -> Lease:
        lease = await asyncio.to_thread(runtime.acquire, spec)
        for adapter_id in lease.ids:
            metrics.adapter_requests.labels(adapter_id).inc()
        return lease

    async def run(lease: Lease, texts: list[str], mode: str):
        rows = [runtime.encode(text, lease, mode) for text in texts]
        metrics.inputs.inc(len(rows))
        return rows, await batcher.submit(rows)

    def require_head(lease: Lease) -> None:
        if lease.head_owner is None:
            raise ApiError(
                422,
                f"{', '.join(lease.ids)} has no task head (a language adapter?); name a task "
                "adapter, a [language, task] stack, or use /embed",
                "validation",
            )

    def check_admin(authorization: str | None) -> None:
        if not config.admin_token:
            raise ApiError(
                403,
                "admin routes are disabled; start the server with --admin-token (or "
                "ADAPTERHUB_ADMIN_TOKEN) to enable them",
                "forbidden",
            )
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), config.admin_token.encode()
        ):
            raise ApiError(
                401,
                "missing or wrong admin token; send 'Authorization: Bearer TOKEN'",
                "unauthorized",
                {"WWW-Authenticate": "Bearer"},
            )

    # ------------------------------------------------------------------ routes

    @app.post(
        "/v1/predict",
        response_model=PredictResponse,
        response_model_exclude_none=True,
        responses=_ERRORS,
        tags=["predict"],
    )
    async def predict(body: PredictRequest) -> PredictResponse:
        """Labels and scores per input (per word for token tasks) from one adapter or a stack."""
        check_inputs(body.inputs)
        lease = await acquire(body.spec)
        try:
            require_head(lease)
            rows, outputs = await run(lease, body.inputs, "classify")
            predictions = [format_prediction(lease, r, o) for r, o in zip(rows, outputs)]
            return PredictResponse(
                adapters=lease.ids,
                task_type=lease.head_owner.task_type or "sequence",
                predictions=predictions,
            )
        finally:
            lease.release()

    async def tei_predict(body: TEIPredictRequest, adapter: str | None):
        if not adapter:
            raise ApiError(
                422,
                f"name the adapter in the path (/predict/ADAPTER_ID) or the {ADAPTER_HEADER} header",
                "validation",
            )
        single = isinstance(body.inputs, str)
        texts = [body.inputs] if single else list(body.inputs)
        if not texts:
            raise ApiError(422, "inputs is empty", "validation")
        check_inputs(texts)
        lease = await acquire([adapter])
        try:
            require_head(lease)
            owner = lease.head_owner
            if owner.task_type == "token":
                raise ApiError(
                    422, f"{owner.id} is a token task; use POST /v1/predict", "validation"
                )
            _rows, outputs = await run(lease, texts, "classify")
        finally:
            lease.release()
        answers = []
        for output in outputs:
            values = output.logits if body.raw_scores else torch.softmax(output.logits, -1)
            scores = [
                TEIScore(label=label, score=float(v)) for label, v in zip(owner.labels, values)
            ]
            answers.append(sorted(scores, key=lambda s: -s.score))
        return answers[0] if single else answers

    @app.post(
        "/predict",
        response_model=list[TEIScore] | list[list[TEIScore]],
        responses=_ERRORS,
        tags=["tei"],
    )
    async def predict_tei(
        body: TEIPredictRequest, x_adapter_id: str | None = Header(None, alias=ADAPTER_HEADER)
    ):
        """TEI's ``/predict``; the adapter comes from the ``X-Adapter-Id`` header."""
        return await tei_predict(body, x_adapter_id)

    @app.post(
        "/predict/{adapter_id:path}",
        response_model=list[TEIScore] | list[list[TEIScore]],
        responses=_ERRORS,
        tags=["tei"],
    )
    async def predict_tei_path(adapter_id: str, body: TEIPredictRequest):
        """TEI's ``/predict`` with the adapter in the path: ``/predict/sentiment/de``."""
        return await tei_predict(body, adapter_id)

    @app.post("/embed", response_model=list[list[float]], responses=_ERRORS, tags=["tei"])
    async def embed(
        body: TEIEmbedRequest, x_adapter_id: str | None = Header(None, alias=ADAPTER_HEADER)
    ):
        """Mean-pooled embeddings of the backbone (or of the backbone with an adapter)."""
        texts = [body.inputs] if isinstance(body.inputs, str) else list(body.inputs)
        if not texts:
            raise ApiError(422, "inputs is empty", "validation")
        check_inputs(texts)
        lease = await acquire([x_adapter_id] if x_adapter_id else None)
        try:
            _rows, outputs = await run(lease, texts, "embed")
        finally:
            lease.release()
        vectors = [o.embedding for o in outputs]
        if body.normalize:
            vectors = [torch.nn.functional.normalize(v, dim=-1) for v in vectors]
        return [v.tolist() for v in vectors]

    @app.get("/v1/adapters", response_model=AdaptersResponse, tags=["adapters"])
    async def adapters() -> AdaptersResponse:
        """Resident adapters (with their use) and every adapter the registry offers."""
        available = await asyncio.to_thread(runtime.available)
        resident = [AdapterInfo(**r) for r in runtime.describe_residents()]
        return AdaptersResponse(resident=resident, available=available, stats=runtime.stats())

    @app.post(
        "/v1/adapters/{adapter_id:path}",
        response_model=AdapterInfo,
        responses=_ERRORS,
        tags=["admin"],
    )
    async def load(adapter_id: str, authorization: str | None = Header(None)) -> AdapterInfo:
        """``POST /v1/adapters/{id}:load``: make an adapter resident now (admin)."""
        check_admin(authorization)
        if not adapter_id.endswith(":load"):
            raise ApiError(404, "unknown action; use POST /v1/adapters/{id}:load", "not_found")
        resident = await asyncio.to_thread(runtime.load, adapter_id[: -len(":load")])
        return AdapterInfo(**resident.describe())

    @app.delete(
        "/v1/adapters/{adapter_id:path}",
        response_model=UnloadResponse,
        responses=_ERRORS,
        tags=["admin"],
    )
    async def unload(adapter_id: str, authorization: str | None = Header(None)) -> UnloadResponse:
        """Evict an adapter from the pool (admin); requests using it finish first."""
        check_admin(authorization)
        if not runtime.unload(adapter_id):
            raise ApiError(404, f"{adapter_id} is not resident; see GET /v1/adapters", "not_found")
        return UnloadResponse(id=adapter_id, unloaded=True)

    @app.get("/healthz", response_model=Health, tags=["ops"])
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get("/readyz", response_model=Health, responses={503: {"model": Health}}, tags=["ops"])
    async def readyz():
        if app.state.ready and batcher.alive:
            return Health(status="ready")
        return JSONResponse({"status": "starting"}, status_code=503)

    @app.get("/metrics", tags=["ops"], response_class=Response)
    async def prometheus() -> Response:
        return Response(metrics.render(runtime), media_type="text/plain; version=0.0.4")

    return app


class ServerThread:
    """Run an app under uvicorn in a background thread (tests, benchmarks, notebooks)."""

    def __init__(
        self, app: FastAPI, host: str = "127.0.0.1", port: int = 0, **options: Any
    ) -> None:
        import socket

        import uvicorn

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
