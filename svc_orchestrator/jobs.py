"""Jobs: stored in the orchestrator's store (SQLite or PostgreSQL), watched through stored events.

Two kinds of job:
- a *local* job is one `async def body(handle) -> str` (its result document) run as an asyncio task on the replica
  that started it (calibration). It reports with `await handle.progress(done, total, message, image)`
  and calls `handle.check_cancelled()` between units, so a cancel takes effect within one unit. A body
  that raises a TatorError fails the job with its message and, when the error names a stage
  (metadata `stage`), `failed_stage`. Its replica renews a lease on it; when that replica restarts, or
  its lease runs out (the replica is gone), the job ends INTERRUPTED: nobody can finish it.
- a *sharded* job (a dataset prepass) is a list of work units in the store; every replica's workers
  (`workers.py`) claim units, so the job survives the replica that started it.

Every change appends an event in the same transaction; WatchJob on any replica reads the events after
the last one it saw (woken at once by changes made here, else polling), so a job started on replica A
is watched on B. CancelJob on any replica: a sharded job is CANCELLED at once (workers stop at their
next image); a local job is flagged and its replica cancels it within one poll.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path

from svc_orchestrator.job_types import TERMINAL, Job, JobKind, JobState
from svc_orchestrator.store import Store
from tator_core import errors
from tator_core.logs import detach
from tator_core.paging import DEFAULT_PAGE_SIZE, decode_token, encode_token

log = logging.getLogger("tator.orchestrator.jobs")
_PAGE_QUERY = {"list": "jobs"}
__all__ = ["TERMINAL", "JobCancelled", "JobHandle", "JobManager", "default_replica_id"]


def default_replica_id() -> str:
    """The host name: unique per pod in a deployment, and the same again when a local orchestrator
    restarts, so it takes its own unfinished work back at once instead of waiting out its lease."""
    return socket.gethostname() or "orchestrator"


class JobCancelled(Exception):
    """Raised by `check_cancelled` inside a body; ends the job CANCELLED."""


class JobHandle:
    def __init__(self, manager: JobManager, job_id: str) -> None:
        self.manager, self.job_id = manager, job_id
        self._started = time.monotonic()

    def cancelled(self) -> bool:
        return self.job_id in self.manager._cancel

    def check_cancelled(self) -> None:
        if self.cancelled():
            raise JobCancelled()

    async def progress(self, done: int, total: int, message: str = "", image: str = "") -> None:
        elapsed = time.monotonic() - self._started
        eta = elapsed / done * (total - done) if done > 0 and total >= done else 0.0
        await self.manager._update(self.job_id, image=image, done=done, total=total, eta_s=eta, message=message)


#: A local job's body; it returns the job's result document (see Job.result_json).
JobBody = Callable[[JobHandle], Awaitable[str]]


class JobManager:
    def __init__(self, store: Store | Path, *, max_concurrent: int = 1, replica_id: str = "",
                 lease_s: float = 15.0, poll_s: float = 0.25, event_keep: int = 32,
                 event_retention_s: float = 86400.0, prune_every_s: float = 60.0) -> None:
        # A path opens (and `close` closes) a SQLite store of its own; a Store is shared.
        self._owned = not isinstance(store, Store)
        if not isinstance(store, Store):
            from svc_orchestrator.store.sqlite import SqliteStore

            store = SqliteStore(Path(store))
        self.store: Store = store
        self.replica_id = replica_id or default_replica_id()
        self.lease_s, self.poll_s = lease_s, poll_s
        # Updates from one replica stay in call order: a late progress report never overtakes a later one.
        self._update_lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(max_concurrent)
        self._tasks: dict[str, asyncio.Task] = {}
        self._cancel: set[str] = set()
        self._changed: dict[str, asyncio.Event] = {}
        self._watching: dict[str, int] = {}
        self._keeper: asyncio.Task | None = None
        # Events of ended jobs are pruned to the last `event_keep` once the job ended
        # `event_retention_s` ago, so job_events does not grow by one row per image forever.
        self.event_keep, self.event_retention_s, self.prune_every_s = event_keep, event_retention_s, prune_every_s
        self._pruner: asyncio.Task | None = None
        # Called with the id of a sharded job this replica cancelled (its workers stop at once).
        self.on_cancel: Callable[[str], None] = lambda _job_id: None
        self.interrupted = self.store.interrupt_orphans(
            self.replica_id, time.time(), "the orchestrator stopped while this job was queued or running")

    # --- storage ------------------------------------------------------------------------------
    def notify(self, job_id: str) -> None:
        """Wake this replica's watchers of a job (another replica's change is seen by polling)."""
        ev = self._changed.get(job_id)
        if ev is not None:
            ev.set()

    async def _end(self, job_id: str, fields: dict) -> None:
        """Record a job's failure, even on a full store volume (Store.record_end uses its reserve)."""
        fields.setdefault("updated_at", time.time())
        async with self._update_lock:
            try:
                await asyncio.to_thread(self.store.record_end, job_id, fields)
            except errors.TatorError as exc:
                log.error("could not record that job %s failed (%s): %s", job_id, fields.get("error"), exc)
        self.notify(job_id)

    async def _update(self, job_id: str, *, image: str = "", **fields: object) -> Job | None:
        async with self._update_lock:
            fields.setdefault("updated_at", time.time())
            job = await asyncio.to_thread(self.store.update_job, job_id, fields, image=image, only_active=True)
        self.notify(job_id)
        return job

    # --- API ------------------------------------------------------------------------------------
    def get(self, job_id: str) -> Job:
        rec = self.store.job(job_id)
        if rec is None:
            raise errors.not_found("JOB_NOT_FOUND", f"no job {job_id!r}", job_id=job_id)
        return rec.job

    def list(self, limit: int = 50) -> builtins.list[Job]:
        return self.page(limit or DEFAULT_PAGE_SIZE, "")[0]

    def page(self, size: int, token: str) -> tuple[builtins.list[Job], str]:
        """Newest first, by a (created_at, id) keyset: jobs started while a client pages through do
        not shift or repeat the later pages."""
        size = size or DEFAULT_PAGE_SIZE
        cursor = decode_token(token, _PAGE_QUERY)
        before = None
        if cursor is not None:
            if not (isinstance(cursor, list) and len(cursor) == 2 and isinstance(cursor[0], (int, float))
                    and isinstance(cursor[1], str)):
                raise errors.invalid_argument("page_token", "page_token is not a token this server issued")
            before = (float(cursor[0]), cursor[1])
        rows = self.store.list_jobs(size + 1, before)
        jobs = rows[:size]
        more = len(rows) > size
        return jobs, encode_token(_PAGE_QUERY, [jobs[-1].created_at, jobs[-1].id]) if more else ""

    def _new(self, kind: JobKind, dataset_id: str, total: int, message: str) -> Job:
        now = (time.time_ns() // 1000) / 1e6  # the store keeps microseconds
        return Job(id=f"job-{uuid.uuid4().hex[:12]}", kind=kind, state=JobState.QUEUED, dataset_id=dataset_id,
                   total=total, message=message, created_at=now, updated_at=now)

    def start(self, kind: JobKind, dataset_id: str, total: int, body: JobBody, *, message: str = "queued") -> Job:
        """A local job: `body` runs here, as an asyncio task."""
        job = self._new(kind, dataset_id, total, message)
        self.store.insert_job(job, owner=self.replica_id, lease_until=time.time() + self.lease_s)
        self._tasks[job.id] = asyncio.create_task(self._run(job.id, body))
        self._ensure_keeper()
        return job

    def start_sharded(self, kind: JobKind, dataset_id: str, units: Sequence[Sequence[str]], spec: bytes, *,
                      message: str = "queued") -> Job:
        """A sharded job: its units wait in the store for any replica's workers."""
        job = self._new(kind, dataset_id, sum(len(u) for u in units), message)
        self.store.insert_job(job, owner=self.replica_id, lease_until=0.0, spec=spec, units=units)
        return job

    async def _run(self, job_id: str, body: JobBody) -> None:
        # Started inside StartCalibration: the job outlives that RPC and its deadline.
        detach(job_id)
        try:
            async with self._slots:
                if job_id in self._cancel:
                    await self._update(job_id, state=JobState.CANCELLED, message="cancelled before it started",
                                       eta_s=0.0)
                    return
                await self._update(job_id, state=JobState.RUNNING, message="running")
                try:
                    result = await body(JobHandle(self, job_id))
                except JobCancelled:
                    await self._update(job_id, state=JobState.CANCELLED, message="cancelled", eta_s=0.0)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # recorded on the job; unexpected ones with a traceback in the log
                    known = errors.from_exception(exc)
                    if known is not None:  # a TatorError, a failed downstream call, a timeout
                        stage = "store" if known.reason == "STORE_FULL" else known.metadata.get("stage", "")
                        await self._end(job_id, {"state": JobState.FAILED, "error": str(errors.public(known)),
                                                 "failed_stage": stage, "eta_s": 0.0,
                                                 "message": f"failed in stage {stage}" if stage else "failed"})
                    else:
                        log.error("job %s failed", job_id, exc_info=exc)
                        await self._update(job_id, state=JobState.FAILED, message="failed", eta_s=0.0,
                                           error=f"internal error ({errors.public_text(exc)}); the orchestrator "
                                           "log has the details")
                else:
                    await self._update(job_id, state=JobState.SUCCEEDED, result_json=result,
                                       message="done",
                                       eta_s=0.0)
        except asyncio.CancelledError:
            await asyncio.to_thread(self.store.update_job, job_id, {
                "state": JobState.INTERRUPTED, "error": "the orchestrator stopped", "eta_s": 0.0,
                "updated_at": time.time()}, only_active=True)
            self.notify(job_id)
            raise
        finally:
            self._tasks.pop(job_id, None)
            self._cancel.discard(job_id)

    def cancel(self, job_id: str) -> Job:
        rec = self.store.job(job_id)
        if rec is None:
            raise errors.not_found("JOB_NOT_FOUND", f"no job {job_id!r}", job_id=job_id)
        if rec.job.state in TERMINAL:
            return rec.job
        if rec.sharded:
            # Nothing to wait for: every worker checks the job's state before and after each image.
            job = self.store.update_job(job_id, {"state": JobState.CANCELLED, "message": "cancelled",
                                                 "eta_s": 0.0, "updated_at": time.time()}, only_active=True)
            self.on_cancel(job_id)
            self.notify(job_id)
            return job if job is not None else self.get(job_id)
        self.store.request_cancel(job_id)
        if job_id in self._tasks:
            self._cancel.add(job_id)
        return replace(rec.job, message="cancelling")

    async def watch(self, job_id: str) -> AsyncIterator[tuple[Job, str]]:
        """The job now, then every change until it ends."""
        ev = self._changed.setdefault(job_id, asyncio.Event())
        self._watching[job_id] = self._watching.get(job_id, 0) + 1
        try:
            rec = await asyncio.to_thread(self.store.job, job_id)
            if rec is None:
                raise errors.not_found("JOB_NOT_FOUND", f"no job {job_id!r}", job_id=job_id)
            job, seq = rec.job, rec.seq  # one row: the job as of its last event
            yield job, ""
            while job.state not in TERMINAL:
                ev.clear()
                events = await asyncio.to_thread(self.store.events_after, job_id, seq)
                for event_seq, job, image in events:
                    seq = event_seq
                    yield job, image
                    if job.state in TERMINAL:
                        return
                if not events:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(ev.wait(), self.poll_s)
        finally:
            self._watching[job_id] -= 1
            if not self._watching[job_id]:
                self._watching.pop(job_id)
                self._changed.pop(job_id, None)

    async def wait(self, job_id: str) -> Job:
        async for job, _ in self.watch(job_id):
            last = job
        return last

    # --- leases ---------------------------------------------------------------------------------
    def _ensure_keeper(self) -> None:
        if self._keeper is None or self._keeper.done():
            self._keeper = asyncio.create_task(self._keep())

    async def _keep(self) -> None:
        """Renew this replica's leases on its local jobs, pick up cancels made on other replicas, and end
        other replicas' local jobs whose lease ran out."""
        while True:
            await asyncio.sleep(min(self.poll_s * 2, self.lease_s / 3))
            local = list(self._tasks)
            try:
                now = time.time()
                await asyncio.to_thread(self.store.heartbeat_jobs, self.replica_id, local, now + self.lease_s)
                self._cancel |= await asyncio.to_thread(self.store.cancel_requested, local)
                await asyncio.to_thread(self.store.interrupt_orphans, "", now,
                                        "the orchestrator running this job stopped renewing its lease")
            except Exception as exc:  # a store outage must not end the loop
                log.warning("job lease upkeep failed: %s", exc)

    def start_upkeep(self) -> None:
        """Start pruning old job events (idempotent); every replica may run it, a job is pruned once."""
        if self._pruner is None or self._pruner.done():
            self._pruner = asyncio.create_task(self._prune())

    async def _prune(self) -> None:
        while True:
            try:
                n = await asyncio.to_thread(self.store.prune_events, time.time() - self.event_retention_s,
                                            self.event_keep)
                if n:
                    log.info("pruned the events of %d ended jobs to their last %d", n, self.event_keep)
            except Exception as exc:  # a store outage must not end the loop
                log.warning("pruning job events failed: %s", exc)
            await asyncio.sleep(self.prune_every_s)

    async def close(self) -> None:
        for upkeep in (self._keeper, self._pruner):
            if upkeep is not None:
                upkeep.cancel()
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, *(t for t in (self._keeper, self._pruner) if t is not None),
                             return_exceptions=True)
        if self._owned:
            self.store.close()
