"""The steps every prediction route shares: check the stated limits, pin the adapters, encode the
texts, queue them for the batched forward and wait. A handler receives one :class:`Inference`
per request (``inference: InferenceDep``) built from the app's shared state.

A request whose client disconnects while it waits is taken off the queue: its rows are never
computed, and nothing is answered (the metrics count it under status 499)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Sequence
from typing import Annotated, TypeVar

from fastapi import Depends, Request

from adapterhub.errors import InputTooLongError
from adapterhub.runtime import Lease, Resident, Row, RowOutput
from adapterhub.server.deps import BatcherDep, ConfigDep, MetricsDep, RuntimeDep, ViewerDep
from adapterhub.server.errors import ApiError

T = TypeVar("T")


class Inference:
    def __init__(
        self,
        request: Request,
        runtime: RuntimeDep,
        batcher: BatcherDep,
        metrics: MetricsDep,
        config: ConfigDep,
        viewer: ViewerDep,
    ) -> None:
        self.request = request
        self.viewer = viewer
        self.runtime = runtime
        self.batcher = batcher
        self.metrics = metrics
        self.config = config

    def check_inputs(self, texts: Sequence[str]) -> None:
        """413 for more inputs per request, or more characters per input, than the limits."""
        if len(texts) > self.config.max_inputs:
            raise ApiError(
                413,
                f"{len(texts)} inputs in one request; the limit is {self.config.max_inputs} "
                "(split the request)",
                "payload_too_large",
            )
        for index, text in enumerate(texts):
            if len(text) > self.config.max_chars:
                raise ApiError(
                    413,
                    f"input {index} has {len(text)} characters; the limit is "
                    f"{self.config.max_chars}",
                    "payload_too_large",
                )

    async def acquire(self, spec: list[str] | None) -> Lease:
        """Pin the adapters of ``spec`` (loading them on a miss); ``None`` is the bare backbone.
        An adapter outside the namespaces the request may see is 404 (one that names its
        namespace before anything is loaded)."""
        for name in spec or ():
            if not self.viewer.sees(name):
                raise self.viewer.refuse(name)
        lease = await asyncio.to_thread(self.runtime.acquire, spec)
        for name, adapter_id in zip(spec or (), lease.ids):
            if not self.viewer.sees(adapter_id):
                lease.release()
                raise self.viewer.refuse(name)
        for adapter_id in lease.ids:
            self.metrics.adapter_requests.labels(adapter_id).inc()
        return lease

    def encode(self, lease: Lease, texts: Sequence[str], mode: str) -> list[Row]:
        """Token ids of each text as the runtime reads it (cut at its max length)."""
        return [self.runtime.encode(text, lease, mode, index) for index, text in enumerate(texts)]

    async def forward(self, rows: list[Row]) -> list[RowOutput]:
        """Queue ``rows`` for the batcher and wait for their outputs (429 when the queue is full).

        A row whose adapter failed in the batched forward carries its error (the other requests
        of that batch are answered): this request gets that error."""
        self.metrics.inputs.inc(len(rows))
        outputs = await self.unless_disconnected(self.batcher.submit(rows))
        for output in outputs:
            if output.error is not None:
                raise output.error
        return outputs

    async def unless_disconnected(self, work: Awaitable[T]) -> T:
        """``work``'s result; if the client disconnects first, ``work`` is cancelled (a queued
        request leaves the queue) and this raises (status 499, which no one reads)."""
        task = asyncio.ensure_future(work)
        gone = asyncio.ensure_future(_disconnect(self.request))
        try:
            await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:  # also when this handler is cancelled
            gone.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if task.cancelled():
            raise ApiError(499, "the client closed the connection first", "client_closed")
        return task.result()

    def refuse_cut(self, rows: Sequence[Row]) -> None:
        """413 for an input its encoding cut at the token limit (TEI's ``truncate: false``)."""
        for index, row in enumerate(rows):
            if row.encoded.truncated:  # then it was cut to exactly the limit
                raise InputTooLongError(
                    f"input {index} has more than {len(row.input_ids)} tokens, the limit; "
                    'shorten it, or send "truncate": true to cut it at the limit'
                )


InferenceDep = Annotated[Inference, Depends()]


async def _disconnect(request: Request) -> None:
    """Returns when the client disconnects. The body has been read by then, so the next ASGI
    message is the disconnect (uvicorn sends it when the connection closes)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def require_head(lease: Lease) -> Resident:
    """The adapter of ``lease`` whose head answers; 422 when none has one."""
    owner = lease.head_owner
    if owner is None:
        raise ApiError(
            422,
            f"{', '.join(lease.ids)} has no task head (a language adapter?); name a task "
            "adapter, a [language, task] stack, or use /embed",
            "validation",
        )
    return owner
