"""Gather concurrent requests into batches for one model session, with a bounded queue.

    batcher = MicroBatcher(session.grade_batch, max_batch=16, max_wait_ms=5, lanes=2)
    await batcher.start()
    result = await batcher.submit(prepared)    # raises Overloaded when the queue is full

One worker task takes up to `max_batch` waiting items, at most `max_wait_ms` after the oldest
arrived, and runs the batch in a thread so the event loop keeps accepting requests; up to `lanes`
batches run at once, one per core (two single-threaded runs of the grader side by side give 104
photos/s here, one run on two threads 55 to 95, and the service with photos prepared beside them
answered 40/s with two lanes against 35 with one). A full queue answers at once with
`Overloaded` (the service's 503 with Retry-After) instead of growing.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Overloaded(RuntimeError):
    """The queue is full; `retry_after_s` estimates when it will have room again."""

    def __init__(self, queue_depth: int, retry_after_s: float) -> None:
        super().__init__(f"{queue_depth} requests already wait for the model; "
                         f"retry in {retry_after_s:.1f} s")
        self.retry_after_s = retry_after_s


class BatcherStopped(RuntimeError):
    """The batcher is not running: not started, stopped, or stopped before this item ran."""


@dataclass(frozen=True)
class _Waiting(Generic[T, R]):
    item: T
    future: asyncio.Future[R]
    arrived: float


class MicroBatcher(Generic[T, R]):
    """Runs `run_batch` on batches of submitted items; `run_batch` returns one result per item,
    in order, where an Exception instance fails that item alone."""

    def __init__(self, run_batch: Callable[[list[T]], list[R]], max_batch: int = 16,
                 max_wait_ms: float = 5.0, max_queue: int = 64, lanes: int = 1) -> None:
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0 or lanes < 1:
            raise ValueError(f"MicroBatcher needs max_batch >= 1, max_queue >= 1, "
                             f"max_wait_ms >= 0 and lanes >= 1, got {max_batch}, {max_queue}, "
                             f"{max_wait_ms}, {lanes}")
        self._run_batch = run_batch
        self._lanes = lanes
        self._max_batch = max_batch
        self._max_wait_s = max_wait_ms / 1000
        self._max_queue = max_queue
        self._pending: deque[_Waiting[T, R]] = deque()
        self._arrived: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._closed = False
        self._batches = 0
        self._items = 0
        self._busy_s = 0.0

    @property
    def queue_depth(self) -> int:
        """Items waiting for a batch (not counting the batches running now)."""
        return len(self._pending)

    @property
    def batches_run(self) -> int:
        return self._batches

    @property
    def mean_batch_size(self) -> float:
        """Items per batch run so far; 0.0 before the first batch."""
        return self._items / self._batches if self._batches else 0.0

    async def start(self) -> None:
        """Start the worker task on the running event loop; a second call does nothing."""
        if self._worker is not None:
            return
        self._closed = False
        self._arrived = asyncio.Event()
        self._worker = asyncio.create_task(self._work(), name="micro-batcher")

    async def stop(self) -> None:
        """Refuse new items, run every item already queued, then end the worker."""
        if self._worker is None or self._arrived is None:
            return
        self._closed = True
        self._arrived.set()
        await self._worker
        self._worker = None

    async def submit(self, item: T) -> R:
        """The result of `item` once its batch has run; raises `Overloaded` at once when
        `max_queue` items already wait, and the item's own exception when it failed."""
        if self._worker is None or self._arrived is None or self._closed:
            raise BatcherStopped("MicroBatcher is not running: call start() before submit(), "
                                 "and do not submit after stop()")
        if len(self._pending) >= self._max_queue:
            raise Overloaded(len(self._pending), self._retry_after_s())
        loop = asyncio.get_running_loop()
        waiting = _Waiting(item, loop.create_future(), loop.time())
        self._pending.append(waiting)
        self._arrived.set()
        return await waiting.future

    def _retry_after_s(self) -> float:
        """Time to work through the queue and the batches running now, at least one second."""
        mean_batch_s = self._busy_s / self._batches if self._batches else 0.0
        batches_ahead = len(self._pending) / self._max_batch + 1
        return max(1.0, batches_ahead * mean_batch_s / self._lanes)

    async def _work(self) -> None:
        assert self._arrived is not None
        running: set[asyncio.Task[None]] = set()
        try:
            while self._pending or not self._closed:
                if not self._pending:
                    self._arrived.clear()
                    await self._arrived.wait()
                    continue
                if len(running) >= self._lanes:  # items keep arriving: the next batch grows
                    await asyncio.wait(set(running), return_when=asyncio.FIRST_COMPLETED)
                    continue
                await self._wait_for_more()
                count = min(self._max_batch, len(self._pending))
                batch = asyncio.create_task(self._run([self._pending.popleft()
                                                       for _ in range(count)]))
                running.add(batch)
                batch.add_done_callback(running.discard)
            await asyncio.gather(*running)
        finally:
            while self._pending:
                _settle(self._pending.popleft().future,
                        BatcherStopped("MicroBatcher stopped before this item ran"))

    async def _wait_for_more(self) -> None:
        """Let the batch fill until `max_wait_ms` after its oldest item arrived."""
        assert self._arrived is not None
        loop = asyncio.get_running_loop()
        while len(self._pending) < self._max_batch and not self._closed:
            remaining = self._pending[0].arrived + self._max_wait_s - loop.time()
            if remaining <= 0:
                return
            self._arrived.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._arrived.wait()
            except TimeoutError:
                return

    async def _run(self, batch: list[_Waiting[T, R]]) -> None:
        live = [waiting for waiting in batch if not waiting.future.done()]  # callers that left
        if not live:
            return
        started = time.perf_counter()
        try:
            results = await asyncio.to_thread(self._run_batch, [w.item for w in live])
            if len(results) != len(live):
                raise RuntimeError(f"run_batch returned {len(results)} results for "
                                   f"{len(live)} items")
        except asyncio.CancelledError:
            for waiting in live:
                _settle(waiting.future, BatcherStopped("MicroBatcher was cancelled while this "
                                                       "item's batch ran"))
            raise
        except Exception as error:
            for waiting in live:
                _settle(waiting.future, error)
        else:
            for waiting, result in zip(live, results, strict=True):
                _settle(waiting.future, result)
        finally:
            self._busy_s += time.perf_counter() - started
            self._batches += 1
            self._items += len(live)


def _settle(future: asyncio.Future, outcome: object) -> None:
    """Resolve `future` with `outcome`, raised when it is an exception; skip a caller that left."""
    if future.done():
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
