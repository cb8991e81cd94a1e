"""Dynamic batching across concurrent requests, with a queue bounded by the work it holds.

Requests put their rows (already tokenised, adapters already pinned) on one queue. One worker
thread takes the oldest request, then adds the other queued requests, oldest first, that fit in
``max_batch_tokens`` real tokens (one that does not fit waits for a later batch, which takes it
first once it is the oldest), while the oldest has waited less than ``max_wait_ms``. The batch
runs in sub-batches of similar length (:func:`adapterhub.runtime.padding.sub_batches`, shortest
first, each forward padded to at most ``max_batch_tokens``), whatever adapters they use, and
each request is answered as soon as its last row's sub-batch is done: real traffic is ragged,
and a short review neither pays for the padding to a long one nor waits for its forward.

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
from adapterhub.runtime.padding import sub_batches

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
            tokens = first.tokens
            deadline = first.enqueued + self.max_wait
            while True:
                # oldest first; one that does not fit stays queued (it is taken first once it
                # is the oldest), so a later, shorter one may still fill the budget
                left_over: deque[_Work] = deque()
                for work in self._queue:
                    if tokens + work.tokens <= self.max_batch_tokens:
                        taken.append(work)
                        tokens += work.tokens
                    else:
                        left_over.append(work)
                self._queue = left_over
                # wait for more only while nothing queued is left over and there is room
                remaining = deadline - time.perf_counter()
                room = not self._queue and tokens < self.max_batch_tokens
                if remaining > 0 and not self._stop and room:
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
            try:
                self._run_batch(taken)
            finally:
                self._running_tokens = 0

    def _run_batch(self, taken: list[_Work]) -> None:
        """The batch's forwards, shortest rows first; each request is answered when its last
        row is done (a failure goes to every request not answered yet)."""
        rows = [(work, index) for work in taken for index in range(len(work.rows))]
        outputs: dict[int, list[Any]] = {id(work): [None] * len(work.rows) for work in taken}
        left = {id(work): len(work.rows) for work in taken}
        started_work: set[int] = set()
        for forward in self._forwards([w.rows[i] for w, i in rows]):
            batch = [rows[i] for i in forward]
            batch_rows = [work.rows[index] for work, index in batch]
            first_time = []
            for work, _ in batch:
                if id(work) not in started_work:
                    started_work.add(id(work))
                    first_time.append(work)
            started = time.perf_counter()
            try:
                results = self.runtime.forward(batch_rows)
            except BaseException as exc:  # deliver the failure to every waiting request
                log.exception("a forward of %d rows failed", len(batch_rows))
                for work in taken:
                    if left[id(work)]:
                        work.loop.call_soon_threadsafe(_fail, work.future, exc)
                return
            elapsed = time.perf_counter() - started
            tokens = row_tokens(batch_rows)
            self.throughput.add(tokens, elapsed)
            self._running_tokens = max(0, self._running_tokens - tokens)
            if self.metrics:
                self.metrics.observe_batch(first_time, batch_rows, started, elapsed)
            for (work, index), output in zip(batch, results):
                outputs[id(work)][index] = output
                left[id(work)] -= 1
                if not left[id(work)]:
                    work.loop.call_soon_threadsafe(_succeed, work.future, outputs[id(work)])

    def _forwards(self, rows: list[Any]) -> Iterator[list[int]]:
        """Indices of ``rows`` per forward: sub-batches of similar length, shortest first, each
        cut so that rows x longest stays within max_batch_tokens."""
        for group in sub_batches([len(row.input_ids) for row in rows]):
            longest = max(len(rows[i].input_ids) for i in group)
            per_forward = max(1, self.max_batch_tokens // max(1, longest))
            for start in range(0, len(group), per_forward):
                yield group[start : start + per_forward]


def _succeed(future: asyncio.Future, value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _fail(future: asyncio.Future, exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
