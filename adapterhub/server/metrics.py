"""Prometheus metrics that explain latency (as TEI reports them): queue time, batch size,
inference time; plus adapter loads, evictions and requests per adapter."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "adapterhub_requests",
            "HTTP requests by endpoint and status",
            ["endpoint", "status"],
            registry=r,
        )
        self.adapter_requests = Counter(
            "adapterhub_adapter_requests", "requests per adapter id", ["adapter"], registry=r
        )
        self.inputs = Counter("adapterhub_inputs", "inputs (texts) served", registry=r)
        self.queue_seconds = Histogram(
            "adapterhub_queue_seconds",
            "time a request waited in the batching queue",
            buckets=_LATENCY,
            registry=r,
        )
        self.inference_seconds = Histogram(
            "adapterhub_inference_seconds",
            "time of one batched forward",
            buckets=_LATENCY,
            registry=r,
        )
        self.request_seconds = Histogram(
            "adapterhub_request_seconds",
            "end-to-end request time in the server",
            buckets=_LATENCY,
            registry=r,
        )
        self.batch_size = Histogram(
            "adapterhub_batch_size", "inputs per batched forward", buckets=_SIZES, registry=r
        )
        self.batch_tokens = Histogram(
            "adapterhub_batch_tokens",
            "padded tokens per batched forward",
            buckets=(64, 256, 1024, 2048, 4096, 8192, 16384, 32768),
            registry=r,
        )
        self.batch_adapters = Histogram(
            "adapterhub_batch_distinct_adapters",
            "distinct adapters per batched forward",
            buckets=_SIZES,
            registry=r,
        )
        self.loads = Counter(
            "adapterhub_adapter_loads", "adapters loaded into the pool", registry=r
        )
        self.load_seconds = Histogram(
            "adapterhub_adapter_load_seconds",
            "load-to-servable time of an adapter",
            buckets=_LATENCY,
            registry=r,
        )
        self.evictions = Counter(
            "adapterhub_adapter_evictions", "adapters evicted (LRU)", registry=r
        )
        self.unloads = Counter(
            "adapterhub_adapter_unloads", "adapters unloaded by an admin", registry=r
        )
        self.resident = Gauge(
            "adapterhub_resident_adapters", "adapters resident in the pool", registry=r
        )
        self.resident_bytes = Gauge(
            "adapterhub_resident_adapter_bytes",
            "bytes of resident adapter slots and heads",
            registry=r,
        )
        self.queue_inputs = Gauge(
            "adapterhub_queue_inputs", "inputs waiting in the queue", registry=r
        )
        self.queue_tokens = Gauge(
            "adapterhub_queue_tokens", "token ids waiting in the queue", registry=r
        )
        self.dropped = Counter(
            "adapterhub_dropped_requests",
            "requests dropped before their forward: the client went away while they waited",
            registry=r,
        )

    def watch(self, runtime: Any) -> None:
        """Count what ``runtime`` did before the app existed (preloads), then follow its events."""
        self.loads.inc(runtime.counters["loads"])
        self.evictions.inc(runtime.counters["evictions"])
        runtime.listeners.append(self.on_runtime_event)

    def on_runtime_event(self, event: str, adapter: str, seconds: float) -> None:
        if event == "load":
            self.loads.inc()
            self.load_seconds.observe(seconds)
        elif event == "eviction":
            self.evictions.inc()
        elif event == "unload":
            self.unloads.inc()

    def observe_batch(
        self, taken: list[Any], rows: list[Any], started: float, elapsed: float
    ) -> None:
        for work in taken:
            self.queue_seconds.observe(max(0.0, started - work.enqueued))
        self.inference_seconds.observe(elapsed)
        self.batch_size.observe(len(rows))
        self.batch_tokens.observe(len(rows) * max(len(r.input_ids) for r in rows))
        self.batch_adapters.observe(len({tuple(r.lease.ids) for r in rows}))

    def render(self, runtime: Any) -> bytes:
        stats = runtime.stats()
        self.resident.set(stats["resident"])
        self.resident_bytes.set(stats["resident_bytes"])
        return generate_latest(self.registry)


_UNTIMED = ("/metrics", "/healthz", "/readyz", "/v1/stats")
"""Probes and scrapes (the live view polls /v1/stats): counted, but kept out of the request-time
histogram."""


async def count_requests(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """HTTP middleware: every request by route and status, and the time of those that do work."""
    started = time.perf_counter()
    response = await call_next(request)
    metrics: Metrics = request.app.state.metrics
    endpoint = getattr(request.scope.get("route"), "path", "unmatched")
    metrics.requests.labels(endpoint, str(response.status_code)).inc()
    if endpoint not in _UNTIMED:
        metrics.request_seconds.observe(time.perf_counter() - started)
    return response
