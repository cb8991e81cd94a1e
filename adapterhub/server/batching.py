"""Dynamic batching across concurrent requests, with a queue bounded by the work it holds.

Requests put their rows (already tokenised, adapters already pinned) on one queue. One worker
thread takes the oldest request, then keeps adding whole requests while the padded batch stays
within ``max_batch_tokens`` and the oldest has waited less than ``max_wait_ms``, and runs ONE
forward for all of them, whatever adapters they use.

The queue holds at most ``max_queue_tokens`` token ids (and ``max_queue`` inputs): a request
that would pass either is refused at once (:class:`OverloadError`, HTTP 429) instead of growing
memory, with a Retry-After of the work ahead over the tokens per second that recent batches ran
at. A request cancelled while it waits (its client went away) leaves the queue at once, also
while the worker holds it in a batch it is still gathering; only a batch already in its forward
runs whole.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from adapterhub.config import ServerConfig
from adapterhub.errors import InputTooLongError, OverloadError, ServingError

log = logging.getLogger(__name__)

THROUGHPUT_WINDOW = 32
"""Batches the measured throughput averages over: recent enough to follow a change of load."""


@dataclass(eq=False)  # compared by identity: the queue removes exactly this request
class _Work:
    rows: list[Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    tokens: int
    enqueued: float = field(default_factory=time.perf_counter)
    state: str = "queued"
    """queued (counted in the queue: waiting, or in a batch still gathering), running, dropped"""

    @property
    def longest(self) -> int:
        return max(len(r.input_ids) for r in self.rows)


class Throughput:
    """Token ids per second of forward time over the last ``window`` batches."""

    def __init__(self, window: int = THROUGHPUT_WINDOW) -> None:
        self._batches: deque[tuple[int, float]] = deque(maxlen=window)

    def add(self, tokens: int, seconds: float) -> None:
        self._batches.append((tokens, seconds))

    @property
    def tokens_per_second(self) -> float | None:
        """None until a batch has run."""
        seconds = sum(s for _, s in self._batches)
        return sum(t for t, _ in self._batches) / seconds if seconds > 0 else None


def row_tokens(rows: list[Any]) -> int:
    return sum(len(r.input_ids) for r in rows)


class Batcher:
    """One queue and one worker thread that runs the forwards; limits from :class:`ServerConfig`
    (``max_batch_tokens``, ``max_wait_ms``, ``max_queue``, ``max_queue_tokens``)."""

    def __init__(
        self, runtime: Any, config: ServerConfig | None = None, *, metrics: Any = None
    ) -> None:
        config = config or ServerConfig()
        self.runtime = runtime
        self.max_batch_tokens = config.max_batch_tokens
        self.max_wait = config.max_wait_ms / 1000
        self.max_queue = config.max_queue
        self.max_queue_tokens = config.max_queue_tokens
        self.metrics = metrics
        self.throughput = Throughput()
        self.dropped = 0
        """Requests whose rows never reached a forward because they were cancelled first."""
        self._queue: deque[_Work] = deque()
        self._queued_rows = 0
        self._queued_tokens = 0
        self._running_tokens = 0  # of the batch in the forward now
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="adapterhub-batcher", daemon=True)

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

    @property
    def queued_tokens(self) -> int:
        return self._queued_tokens

    def retry_after(self) -> int:
        """Seconds until the work ahead (queued and in the forward) has run at the measured
        throughput; 1 until a batch has been measured."""
        rate = self.throughput.tokens_per_second
        if rate is None:
            return 1
        return max(1, math.ceil((self._queued_tokens + self._running_tokens) / rate))

    async def submit(self, rows: list[Any]) -> list[Any]:
        """Queue rows and wait for their outputs (in order). Cancelling the caller takes the
        rows off the queue: they are never computed."""
        tokens = row_tokens(rows)
        if tokens > self.max_queue_tokens:
            raise InputTooLongError(
                f"the request holds {tokens} tokens, more than the whole queue takes "
                f"({self.max_queue_tokens}, --max-queue-tokens); split it into smaller requests"
            )
        loop = asyncio.get_running_loop()
        work = _Work(rows, loop, loop.create_future(), tokens)
        with self._cond:
            if self._stop:
                raise ServingError("the server is shutting down; retry on another replica")
            if (
                self._queued_tokens + tokens > self.max_queue_tokens
                or self._queued_rows + len(rows) > self.max_queue
            ):
                raise OverloadError(
                    f"the queue is full ({self._queued_tokens} tokens in {self._queued_rows} "
                    f"inputs waiting; limits {self.max_queue_tokens} tokens, {self.max_queue} "
                    f"inputs); retry after {self.retry_after()} s"
                )
            self._queue.append(work)
            self._queued_rows += len(rows)
            self._queued_tokens += tokens
            self._gauges()
            self._cond.notify()
        try:
            return await work.future
        except asyncio.CancelledError:
            self._cancel(work)
            raise

    def _cancel(self, work: _Work) -> None:
        with self._cond:
            if work.state != "queued":
                return  # in its forward already
            work.state = "dropped"
            if work in self._queue:  # else the worker's gathering batch skips it
                self._queue.remove(work)
            self._queued_rows -= len(work.rows)
            self._queued_tokens -= work.tokens
            self.dropped += 1
            if self.metrics:
                self.metrics.dropped.inc()
            self._gauges()

    def _gauges(self) -> None:
        if self.metrics:
            self.metrics.queue_inputs.set(self._queued_rows)
            self.metrics.queue_tokens.set(self._queued_tokens)

    # ------------------------------------------------------------------ worker

    def _take(self) -> list[_Work] | None:
        """The next batch's requests, less those cancelled meanwhile (may be none)."""
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
            live = [w for w in taken if w.state == "queued"]
            for work in live:
                work.state = "running"
            self._queued_rows -= sum(len(w.rows) for w in live)
            self._queued_tokens -= sum(w.tokens for w in live)
            self._running_tokens = sum(w.tokens for w in live)
            self._gauges()
            return live

    def _run(self) -> None:
        while True:
            taken = self._take()
            if taken is None:
                return
            if not taken:
                continue
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
            finally:
                self._running_tokens = 0
            elapsed = time.perf_counter() - started
            self.throughput.add(row_tokens(rows), elapsed)
            if self.metrics:
                self.metrics.observe_batch(taken, rows, started, elapsed)
            position = 0
            for work in taken:
                mine = outputs[position : position + len(work.rows)]
                position += len(work.rows)
                work.loop.call_soon_threadsafe(_succeed, work.future, mine)

    def _chunks(self, rows: list[Any]) -> Iterator[list[Any]]:
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
