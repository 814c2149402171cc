"""This replica's workers for sharded jobs: claim a work unit from the store, run it, report each
image, finish it; the replica that finishes a job's last unit writes the job's result.

A claimed unit is held under a lease that a heartbeat renews every lease/3 seconds. A replica that
dies (or loses its network) stops renewing; once the lease runs out any other replica claims the
unit again and runs it from its first image: images the dead replica already prepassed are cache
hits, so nothing is computed twice. A replica that finds it lost a lease (its heartbeat was refused,
or the store refuses its progress report) stops that unit at the next image. A unit whose replicas
died on it `max_attempts` times fails the job (a poison unit, see store/units.py). A unit that fails
with an error fails the job at once, as a local job would: a model service that is down is a failed
stage (retries and failover over a service's replicas happen below, in the gRPC clients).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from svc_orchestrator.job_types import JobState
from svc_orchestrator.store import JobRecord, Store, WorkUnit
from tator_core import errors
from tator_core.logs import detach

log = logging.getLogger("tator.orchestrator.workers")


class UnitStopped(Exception):
    """The job ended (cancelled, failed elsewhere) or this replica lost the unit's lease."""


class UnitProgress:
    def __init__(self, workers: UnitWorkers, unit: WorkUnit) -> None:
        self.workers, self.unit = workers, unit

    def check(self) -> None:
        if (self.unit.job_id, self.unit.unit) in self.workers.lost:
            raise UnitStopped()

    async def advance(self, done: int, message: str = "", image: str = "") -> None:
        """`done` images of this unit are finished; raises UnitStopped when the work is no longer ours."""
        w = self.workers
        job = await asyncio.to_thread(w.store.advance_unit, w.replica_id, self.unit.job_id, self.unit.unit, done,
                                      time.time(), message=message, image=image)
        w.notify(self.unit.job_id)
        if job is None:
            raise UnitStopped()


Execute = Callable[[JobRecord, WorkUnit, UnitProgress], Awaitable[str]]
Finalize = Callable[[JobRecord, Sequence[str]], str]


class UnitWorkers:
    def __init__(self, store: Store, replica_id: str, *, execute: Execute, finalize: Finalize,
                 notify: Callable[[str], None], slots: int = 1, lease_s: float = 15.0, poll_s: float = 0.5,
                 max_attempts: int = 0) -> None:
        self.store, self.replica_id = store, replica_id
        self.execute, self.finalize, self.notify = execute, finalize, notify
        self.slots, self.lease_s, self.poll_s = slots, lease_s, poll_s
        self.max_attempts = max_attempts  # 0: a unit is claimed again however often its replica died
        self.held: set[tuple[str, int]] = set()
        self.lost: set[tuple[str, int]] = set()
        self._tasks: list[asyncio.Task] = []
        self._running: dict[tuple[str, int], asyncio.Task] = {}
        self._wake = asyncio.Event()
        self.units_done = 0

    def start(self) -> None:
        """Start the workers (idempotent); units this replica held before a restart are given back first."""
        if self._tasks:
            return
        released = self.store.release_units(self.replica_id)
        if released:
            log.info("gave back %d work units held before a restart", released)
        self._tasks = [asyncio.create_task(self._work(i)) for i in range(self.slots)]
        self._tasks.append(asyncio.create_task(self._heartbeat()))

    def wake(self) -> None:
        self._wake.set()

    def stop(self, units: set[tuple[str, int]] | None = None, *, job_id: str = "") -> None:
        """Abort the work on these units (or every unit of `job_id`) here: the job ended, or the lease
        is gone. The image in flight is abandoned: its downstream calls are cancelled."""
        for key, task in list(self._running.items()):
            if (units is not None and key in units) or key[0] == job_id:
                self.lost.add(key)
                task.cancel()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            held = list(self.held)
            if not held:
                continue
            try:
                lost = await asyncio.to_thread(self.store.heartbeat_units, self.replica_id, held,
                                               time.time() + self.lease_s)
            except Exception as exc:  # a store outage must not end the loop; the lease just runs out
                log.warning("work unit heartbeat failed: %s", exc)
                continue
            if lost:
                log.info("stopping %d work units: their job ended or their lease was lost", len(lost))
                self.stop(lost)

    async def _work(self, slot: int) -> None:
        while True:
            try:
                now = time.time()
                unit = await asyncio.to_thread(self.store.claim_unit, self.replica_id, now, now + self.lease_s,
                                               self.max_attempts)
            except errors.TatorError as exc:
                if exc.reason == "STORE_FULL":  # the claim itself cannot be written: fail the job it was for
                    await self._claim_full(exc)
                else:
                    log.warning("claiming a work unit failed: %s", exc)
                unit = None
            except Exception as exc:  # store unreachable: try again after a pause
                log.warning("claiming a work unit failed: %s", exc)
                unit = None
            if unit is None:
                await asyncio.to_thread(self.store.restore_reserve)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_s)
                continue
            try:
                await self._run(unit)
            except Exception as exc:  # a worker outlives any one unit; the unit's lease runs out
                log.error("work unit %s/%d: %s", unit.job_id, unit.unit, exc, exc_info=exc)

    async def _claim_full(self, exc: errors.TatorError) -> None:
        """A job whose next unit cannot be claimed because the store's volume is full ends FAILED with
        STORE_FULL (it would otherwise wait QUEUED, with no word, until space returns); rerun it once
        there is room: every image it finished is in the cache."""
        try:
            job_id = await asyncio.to_thread(self.store.claimable_job, time.time())
        except Exception as read_exc:  # the store cannot even be read
            log.warning("store full, and reading it failed too: %s", read_exc)
            return
        if job_id is not None:
            log.error("store full: failing job %s, whose next work unit cannot be claimed", job_id)
            await self._fail(job_id, str(errors.public(exc)), "store")

    async def _run(self, unit: WorkUnit) -> None:
        # Workers may start inside StartPrepassJob: units outlive that RPC and its deadline.
        detach(unit.job_id)
        key = (unit.job_id, unit.unit)
        self.held.add(key)
        self.lost.discard(key)
        try:
            rec = await asyncio.to_thread(self.store.job, unit.job_id)
            if rec is None:
                return
            task = asyncio.ensure_future(self.execute(rec, unit, UnitProgress(self, unit)))
            self._running[key] = task
            try:
                summary = await task
            except asyncio.CancelledError:
                me = asyncio.current_task()
                if key in self.lost and not (me is not None and me.cancelling()):
                    raise UnitStopped() from None
                raise
            summaries = await asyncio.to_thread(self.store.finish_unit, self.replica_id, unit.job_id, unit.unit,
                                                summary)
            self.units_done += 1
            if summaries is not None:
                result = self.finalize(rec, summaries)
                await asyncio.to_thread(self.store.update_job, unit.job_id, {
                    "state": JobState.SUCCEEDED, "result_json": result, "message": "done", "eta_s": 0.0,
                    "updated_at": time.time()}, only_active=True)
        except UnitStopped:
            pass
        except Exception as exc:  # recorded on the job; unexpected ones with a traceback in the log
            known = errors.from_exception(exc)  # a TatorError, a failed downstream call, a timeout
            if known is not None:
                stage = "store" if known.reason == "STORE_FULL" else known.metadata.get("stage", "")
                await self._fail(unit.job_id, str(errors.public(known)), stage)
            else:
                log.error("unit %s/%d failed", unit.job_id, unit.unit, exc_info=exc)
                await self._fail(unit.job_id, f"internal error ({errors.public_text(exc)}); the orchestrator log "
                                 "has the details", "")
        finally:
            self._running.pop(key, None)
            self.held.discard(key)
            self.lost.discard(key)
            self.notify(unit.job_id)

    async def _fail(self, job_id: str, error: str, stage: str) -> None:
        try:
            await asyncio.to_thread(self.store.record_end, job_id, {
                "state": JobState.FAILED, "error": error, "failed_stage": stage, "eta_s": 0.0,
                "message": f"failed in stage {stage}" if stage else "failed", "updated_at": time.time()})
        except errors.TatorError as exc:  # even the reserve did not help: the job's lease runs out instead
            log.error("could not record that job %s failed (%s): %s", job_id, error, exc)
        self.notify(job_id)

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        # A graceful stop hands its units back at once instead of letting the others wait out the lease.
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.store.release_units, self.replica_id, counted=False)
