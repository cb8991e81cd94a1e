"""The live view's numbers (``GET /v1/stats``): the pool as the runtime reports it and the
counters and histograms that ``/metrics`` exports, read from the same Prometheus registry."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from adapterhub.server.metrics import Metrics
from adapterhub.server.schemas import AdapterInfo

if TYPE_CHECKING:  # the runtime imports torch; the hub's pages run without it
    from adapterhub.runtime import Runtime


class Bucket(BaseModel):
    le: str = Field(..., description="upper bound of the bucket (Prometheus' le)")
    count: int = Field(..., description="observations in this bucket alone (not cumulative)")


class Distribution(BaseModel):
    count: int
    mean: float | None
    buckets: list[Bucket]


class Stats(BaseModel):
    """What the server holds and has done: resident adapters, bank memory, the queue, batch
    sizes, loads and evictions."""

    resident: list[AdapterInfo] = Field(..., description="least recently used first")
    pool: dict[str, Any] = Field(..., description="the runtime's pool and bank numbers")
    queue_inputs: int = Field(..., description="inputs waiting in the batching queue now")
    max_queue: int
    batch_size: Distribution = Field(..., description="inputs per batched forward")
    queue_ms: Distribution = Field(..., description="milliseconds requests waited in the queue")
    inference_ms: Distribution = Field(..., description="milliseconds per batched forward")
    loads: int
    evictions: int
    unloads: int
    requests: int = Field(..., description="HTTP requests answered")
    inputs: int = Field(..., description="texts served")
    adapter_requests: dict[str, int] = Field(..., description="requests per adapter id")


def _by_name(metrics: Metrics) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            found.setdefault(sample.name, []).append(sample)
    return found


def _total(samples: dict[str, list[Any]], name: str) -> int:
    return int(sum(s.value for s in samples.get(f"{name}_total", [])))


def _distribution(samples: dict[str, list[Any]], name: str, scale: float = 1.0) -> Distribution:
    count = int(sum(s.value for s in samples.get(f"{name}_count", [])))
    total = sum(s.value for s in samples.get(f"{name}_sum", []))
    buckets, below = [], 0
    for sample in samples.get(f"{name}_bucket", []):
        cumulative = int(sample.value)
        bound = float(sample.labels["le"])
        label = "+Inf" if math.isinf(bound) else f"{bound * scale:g}"
        buckets.append(Bucket(le=label, count=cumulative - below))
        below = cumulative
    return Distribution(count=count, mean=total * scale / count if count else None, buckets=buckets)


def snapshot(runtime: Runtime, metrics: Metrics, max_queue: int) -> Stats:
    samples = _by_name(metrics)
    queued = samples.get("adapterhub_queue_inputs", [])
    return Stats(
        resident=[AdapterInfo(**r) for r in runtime.describe_residents()],
        pool=runtime.stats(),
        queue_inputs=int(queued[0].value) if queued else 0,
        max_queue=max_queue,
        batch_size=_distribution(samples, "adapterhub_batch_size"),
        queue_ms=_distribution(samples, "adapterhub_queue_seconds", 1000.0),
        inference_ms=_distribution(samples, "adapterhub_inference_seconds", 1000.0),
        loads=_total(samples, "adapterhub_adapter_loads"),
        evictions=_total(samples, "adapterhub_adapter_evictions"),
        unloads=_total(samples, "adapterhub_adapter_unloads"),
        requests=_total(samples, "adapterhub_requests"),
        inputs=_total(samples, "adapterhub_inputs"),
        adapter_requests={
            s.labels["adapter"]: int(s.value)
            for s in samples.get("adapterhub_adapter_requests_total", [])
        },
    )
