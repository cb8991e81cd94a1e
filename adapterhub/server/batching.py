"""Dynamic batching across concurrent requests, with a bounded queue.

Requests put their rows (already tokenised, adapters already pinned) on one queue. One worker
thread takes the oldest request, then keeps adding whole requests while the padded batch stays
within ``max_batch_tokens`` and the oldest has waited less than ``max_wait_ms``, and runs ONE
forward for all of them, whatever adapters they use. A full queue refuses new work at once
(:class:`OverloadError`, HTTP 429) instead of growing memory.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from adapterhub.config import ServerConfig
from adapterhub.errors import OverloadError, ServingError

log = logging.getLogger(__name__)


@dataclass
class _Work:
    rows: list[Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)

    @property
    def longest(self) -> int:
        return max(len(r.input_ids) for r in self.rows)


class Batcher:
    """One queue and one worker thread that runs the forwards; limits from :class:`ServerConfig`
    (``max_batch_tokens``, ``max_wait_ms``, ``max_queue``)."""

    def __init__(
        self, runtime: Any, config: ServerConfig | None = None, *, metrics: Any = None
    ) -> None:
        config = config or ServerConfig()
        self.runtime = runtime
        self.max_batch_tokens = config.max_batch_tokens
        self.max_wait = config.max_wait_ms / 1000
        self.max_queue = config.max_queue
        self.metrics = metrics
        self._queue: deque[_Work] = deque()
        self._queued_rows = 0
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="adapterhub-batcher", daemon=True)
        self.seconds_per_row = 0.01  # running estimate, for Retry-After

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=10)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def retry_after(self) -> int:
        return max(1, round(self._queued_rows * self.seconds_per_row))

    async def submit(self, rows: list[Any]) -> list[Any]:
        """Queue rows and wait for their outputs (in order)."""
        loop = asyncio.get_running_loop()
        work = _Work(rows, loop, loop.create_future())
        with self._cond:
            if self._stop:
                raise ServingError("the server is shutting down; retry on another replica")
            if self._queued_rows + len(rows) > self.max_queue:
                raise OverloadError(
                    f"the queue is full ({self._queued_rows} inputs waiting, limit "
                    f"{self.max_queue}); retry after {self.retry_after()} s"
                )
            self._queue.append(work)
            self._queued_rows += len(rows)
            if self.metrics:
                self.metrics.queue_inputs.set(self._queued_rows)
            self._cond.notify()
        return await work.future

    # ------------------------------------------------------------------ worker

    def _take(self) -> list[_Work] | None:
        with self._cond:
            while not self._queue and not self._stop:
                self._cond.wait()
            if self._stop and not self._queue:
                return None
            first = self._queue.popleft()
            taken = [first]
            rows, longest = len(first.rows), first.longest
            deadline = first.enqueued + self.max_wait
            while True:
                while self._queue:
                    nxt = self._queue[0]
                    width = max(longest, nxt.longest)
                    if (rows + len(nxt.rows)) * width > self.max_batch_tokens:
                        break
                    self._queue.popleft()
                    taken.append(nxt)
                    rows, longest = rows + len(nxt.rows), width
                else:
                    remaining = deadline - time.perf_counter()
                    if remaining > 0 and not self._stop and rows * longest < self.max_batch_tokens:
                        self._cond.wait(remaining)
                        continue
                break
            self._queued_rows -= sum(len(w.rows) for w in taken)
            if self.metrics:
                self.metrics.queue_inputs.set(self._queued_rows)
            return taken

    def _run(self) -> None:
        while True:
            taken = self._take()
            if taken is None:
                return
            started = time.perf_counter()
            rows = [row for work in taken for row in work.rows]
            try:
                outputs = []
                for chunk in self._chunks(rows):
                    outputs += self.runtime.forward(chunk)
            except BaseException as exc:  # deliver the failure to every waiting request
                log.exception("batch of %d rows failed", len(rows))
                for work in taken:
                    work.loop.call_soon_threadsafe(_fail, work.future, exc)
                continue
            elapsed = time.perf_counter() - started
            self.seconds_per_row = 0.8 * self.seconds_per_row + 0.2 * elapsed / max(1, len(rows))
            if self.metrics:
                self.metrics.observe_batch(taken, rows, started, elapsed)
            position = 0
            for work in taken:
                mine = outputs[position : position + len(work.rows)]
                position += len(work.rows)
                work.loop.call_soon_threadsafe(_succeed, work.future, mine)

    def _chunks(self, rows: list[Any]):
        """One request larger than max_batch_tokens runs in several forwards."""
        chunk: list[Any] = []
        longest = 0
        for row in rows:
            width = max(longest, len(row.input_ids))
            if chunk and (len(chunk) + 1) * width > self.max_batch_tokens:
                yield chunk
                chunk, width = [], len(row.input_ids)
            chunk.append(row)
            longest = width
        if chunk:
            yield chunk


def _succeed(future: asyncio.Future, value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _fail(future: asyncio.Future, exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
