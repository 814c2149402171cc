"""Micro-batching in front of one device.

Requests that arrive within `max_delay_ms` of the first waiting one are run
as one batch of at most `max_batch` items on the device thread. The queue is
bounded: a full queue answers RESOURCE_EXHAUSTED at once instead of letting
latency grow without limit. `max_delay_ms=0` disables waiting (each batch is
whatever is already queued, usually one item). `close()` drains what is
queued and fails anything left, so no caller waits forever on an unloaded model.

`DeviceCalls` is the same promise for calls that go to the device thread one by one instead of in
batches: `refuse_waiting()` fails at once every call the thread has not started.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from tator_core import errors
from tator_core.metrics import BATCH_SIZE, MODEL_COMPUTE_MS, QUEUE_DEPTH, QUEUE_MS

_STOP = object()  # queued by close(): the worker runs what it holds, then ends

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class BatchStats:
    """What happened to one item: its wait, its batch's compute and size."""

    queue_ms: float
    compute_ms: float
    batch_size: int


#: One waiting item: the input, the future its caller awaits, and when it was queued.
_Queued = tuple[T, "asyncio.Future[tuple[R, BatchStats]]", float]


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
        # The queue gauge exists (at 0) from the model's load on, so the
        # autoscaler's queue metric is there before the first request.
        QUEUE_DEPTH.labels(service)
        self.max_batch, self.max_delay_s, self.max_queue = max_batch, max_delay_ms / 1000.0, max_queue
        self._owns_executor = executor is None
        self.executor = executor or device_executor(service)
        self._queue: asyncio.Queue[_Queued[T, R]] | None = None
        self._worker: asyncio.Task[None] | None = None
        self.batches_run = 0
        self._closed = False
        self._aborted: errors.TatorError | None = None

    def _ensure_worker(self) -> asyncio.Queue[_Queued[T, R]]:
        if self._queue is None:
            self._queue = asyncio.Queue(maxsize=self.max_queue)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._loop())
        return self._queue

    def _gone(self) -> errors.TatorError:
        return errors.failed_precondition(
            "MODEL_REQUIRED", f"{self.service} model {self.model or '(default)'} was unloaded before this call "
            "ran; load it and retry", model_id=self.model)

    async def submit(self, item: T) -> tuple[R, BatchStats]:
        if self._aborted is not None:
            raise self._fresh(self._aborted)
        if self._closed:
            raise self._gone()
        queue = self._ensure_worker()
        fut: asyncio.Future[tuple[R, BatchStats]] = asyncio.get_running_loop().create_future()
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
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            deadline = loop.time() + self.max_delay_s
            while len(batch) < self.max_batch:
                timeout = deadline - loop.time()
                try:
                    nxt = self._queue.get_nowait() if timeout <= 0 else await asyncio.wait_for(
                        self._queue.get(), timeout)
                except (TimeoutError, asyncio.QueueEmpty):
                    break
                if nxt is _STOP:  # run what was gathered, then stop
                    stopping = True
                    break
                batch.append(nxt)
            QUEUE_DEPTH.labels(self.service).set(self._queue.qsize())
            live = [b for b in batch if not b[1].cancelled()]
            if self._aborted is not None:  # gathered, not yet on the device: fails like the rest of the queue
                for _, fut, _ in live:
                    if not fut.done():
                        fut.set_exception(self._fresh(self._aborted))
                return
            if live:
                await self._run(loop, live)

    async def _run(self, loop: asyncio.AbstractEventLoop, live: list[_Queued[T, R]]) -> None:
        started = time.perf_counter()
        try:
            results = await loop.run_in_executor(self.executor, self.fn, [b[0] for b in live])
            if len(results) != len(live):
                raise RuntimeError(f"batch fn returned {len(results)} results for {len(live)} items")
        except BaseException as exc:  # every waiter learns the failure
            cancelled = isinstance(exc, asyncio.CancelledError)
            for _, fut, _ in live:
                if not fut.done():
                    fut.set_exception(self._gone() if cancelled else exc)
            if cancelled:
                raise
            return
        compute_ms = (time.perf_counter() - started) * 1000
        self.batches_run += 1
        BATCH_SIZE.labels(self.service).observe(len(live))
        MODEL_COMPUTE_MS.labels(self.service, self.model).observe(compute_ms)
        for (_, fut, enq), res in zip(live, results):
            queue_ms = (started - enq) * 1000
            QUEUE_MS.labels(self.service).observe(queue_ms)
            if not fut.done():
                fut.set_result((res, BatchStats(queue_ms, compute_ms, len(live))))

    @staticmethod
    def _fresh(error: errors.TatorError) -> errors.TatorError:
        # One exception object per caller: the interceptor stamps each raised error with its request id.
        return errors.TatorError(error.code, error.reason, error.message, dict(error.metadata))

    async def abort(self, error: errors.TatorError) -> None:
        """Stop taking work and fail every queued call now with `error`; a batch already on the
        device finishes (its callers get their results), and this returns after it."""
        self._closed = True
        self._aborted = error
        while self._queue is not None and not self._queue.empty():
            entry = self._queue.get_nowait()
            if entry is not _STOP and not entry[1].done():
                entry[1].set_exception(self._fresh(error))
        if self._queue is not None:
            QUEUE_DEPTH.labels(self.service).set(0)
        if self._worker is not None and not self._worker.done() and self._queue is not None:
            self._queue.put_nowait(_STOP)  # type: ignore[arg-type]  # the stop sentinel shares the queue
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.shield(self._worker)
        if self._owns_executor:
            self.executor.shutdown(wait=False, cancel_futures=True)

    async def close(self, drain_s: float = 30.0) -> None:
        """Stop taking work, let what is queued run for up to `drain_s`, then
        fail whatever is still waiting (FAILED_PRECONDITION): a caller queued on
        a model that goes away gets an answer, never a future left pending."""
        self._closed = True
        if self._worker is not None and not self._worker.done() and self._queue is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.put(_STOP), drain_s)  # type: ignore[arg-type]  # the stop sentinel shares the queue
                await asyncio.wait_for(asyncio.shield(self._worker), drain_s)
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._worker
        while self._queue is not None and not self._queue.empty():
            entry = self._queue.get_nowait()
            if entry is not _STOP and not entry[1].done():
                entry[1].set_exception(self._gone())
        if self._owns_executor:
            self.executor.shutdown(wait=False, cancel_futures=True)


@dataclass(eq=False)
class _DeviceCall:
    """One call handed to the device thread. `started` (set there) and `refused` (set on the event
    loop) exclude each other under the lock: a call either runs or is refused, never both."""

    work: asyncio.Future[Any] | None = None
    tags: frozenset[str] = frozenset()  # the models it uses, where one DeviceCalls serves several
    lock: threading.Lock = field(default_factory=threading.Lock)
    started: bool = False
    refused: errors.TatorError | None = None


class DeviceCalls:
    """The calls that wait for (or run on) the device thread: of one model, or tagged with the models
    each uses."""

    def __init__(self) -> None:
        self._calls: set[_DeviceCall] = set()

    async def run(self, executor: concurrent.futures.Executor, fn: Callable[[], T],
                  tags: frozenset[str] = frozenset()) -> T:
        """fn() on the executor's thread; refuse_waiting() before the thread starts it fails this call
        with that error at once and fn never runs. The caller's own cancellation stays a cancellation."""
        call = _DeviceCall(tags=tags)

        def on_thread() -> T:
            with call.lock:
                if call.refused is not None:  # its caller has had the answer already
                    raise call.refused
                call.started = True
            return fn()

        work: asyncio.Future[T] = asyncio.get_running_loop().run_in_executor(executor, on_thread)
        call.work = work
        self._calls.add(call)
        try:
            return await work
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if call.refused is not None and not (task is not None and task.cancelling()):
                raise call.refused from None  # refuse_waiting() cancelled the work, not the caller
            raise
        finally:
            self._calls.discard(call)

    def refuse_waiting(self, error: Callable[[], errors.TatorError], tag: str | None = None) -> int:
        """Fail every call the thread has not started (with `tag`: those tagged with it), each with its
        own error() (the interceptor stamps each caller's request id on it); returns how many. A call
        already running finishes."""
        refused = 0
        for call in list(self._calls):
            if tag is not None and tag not in call.tags:
                continue
            with call.lock:
                if call.started:
                    continue
                call.refused = error()
            if call.work is not None:
                call.work.cancel()  # the thread skips it; its caller wakes now with the refusal
            refused += 1
        return refused
