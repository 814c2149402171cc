"""Micro-batching in front of one device.

Requests that arrive within `max_delay_ms` of the first waiting one are run
as one batch of at most `max_batch` items on the device thread. The queue is
bounded: a full queue answers RESOURCE_EXHAUSTED at once instead of letting
latency grow without limit. `max_delay_ms=0` disables waiting (each batch is
whatever is already queued, usually one item).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from tator_core import errors
from tator_core.metrics import BATCH_SIZE, MODEL_COMPUTE_MS, QUEUE_DEPTH, QUEUE_MS

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class BatchStats:
    """What happened to one item: its wait, its batch's compute and size."""

    queue_ms: float
    compute_ms: float
    batch_size: int


def device_executor(name: str) -> concurrent.futures.ThreadPoolExecutor:
    """One thread per device: model calls never run concurrently on it."""
    return concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{name}-device")


class MicroBatcher(Generic[T, R]):
    def __init__(self, fn: Callable[[Sequence[T]], Sequence[R]], *, service: str, model: str = "",
                 max_batch: int = 8, max_delay_ms: float = 5.0, max_queue: int = 64,
                 executor: concurrent.futures.Executor | None = None) -> None:
        """`executor` may be shared by several batchers on one device; a batcher
        only shuts down an executor it created itself."""
        if max_batch < 1 or max_queue < 1 or max_delay_ms < 0:
            raise ValueError("max_batch and max_queue must be >= 1, max_delay_ms >= 0")
        self.fn = fn
        self.service, self.model = service, model
        self.max_batch, self.max_delay_s, self.max_queue = max_batch, max_delay_ms / 1000.0, max_queue
        self._owns_executor = executor is None
        self.executor = executor or device_executor(service)
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None
        self.batches_run = 0

    def _ensure_worker(self) -> asyncio.Queue:
        if self._queue is None:
            self._queue = asyncio.Queue(maxsize=self.max_queue)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._loop())
        return self._queue

    async def submit(self, item: T) -> tuple[R, BatchStats]:
        queue = self._ensure_worker()
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        try:
            queue.put_nowait((item, fut, time.perf_counter()))
        except asyncio.QueueFull:
            raise errors.resource_exhausted(
                f"{self.service} queue is full ({self.max_queue} waiting); retry later",
                queue=self.max_queue) from None
        QUEUE_DEPTH.labels(self.service).set(queue.qsize())
        return await fut

    async def _loop(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            first = await self._queue.get()
            batch = [first]
            deadline = loop.time() + self.max_delay_s
            while len(batch) < self.max_batch:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    while len(batch) < self.max_batch and not self._queue.empty():
                        batch.append(self._queue.get_nowait())
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), timeout))
                except TimeoutError:
                    break
            QUEUE_DEPTH.labels(self.service).set(self._queue.qsize())
            live = [b for b in batch if not b[1].cancelled()]
            if not live:
                continue
            started = time.perf_counter()
            try:
                results = await loop.run_in_executor(self.executor, self.fn, [b[0] for b in live])
                if len(results) != len(live):
                    raise RuntimeError(f"batch fn returned {len(results)} results for {len(live)} items")
            except BaseException as exc:  # every waiter learns the failure
                for _, fut, _ in live:
                    if not fut.done():
                        fut.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            compute_ms = (time.perf_counter() - started) * 1000
            self.batches_run += 1
            BATCH_SIZE.labels(self.service).observe(len(live))
            MODEL_COMPUTE_MS.labels(self.service, self.model).observe(compute_ms)
            for (_, fut, enq), res in zip(live, results):
                queue_ms = (started - enq) * 1000
                QUEUE_MS.labels(self.service).observe(queue_ms)
                if not fut.done():
                    fut.set_result((res, BatchStats(queue_ms, compute_ms, len(live))))

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._worker
        if self._owns_executor:
            self.executor.shutdown(wait=False, cancel_futures=True)
