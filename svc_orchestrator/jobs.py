"""Jobs: persisted in SQLite, run as asyncio tasks, watched through progress events.

A job body is `async def body(handle) -> result_json`. It reports progress with
`await handle.progress(done, total, message, image)` and calls `handle.check_cancelled()` between
units (images), so a cancel takes effect within one unit. A body that raises a TatorError fails
the job with its message and, when the error names a stage (metadata `stage`), `failed_stage`.
When the orchestrator starts, every job the database still has as QUEUED or RUNNING is marked
INTERRUPTED: its process is gone, and claiming it still runs would be a lie.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from svc_orchestrator.paging import DEFAULT_PAGE_SIZE, decode_token, encode_token
from tator_core import errors
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

log = logging.getLogger("tator.orchestrator.jobs")
TERMINAL = frozenset({pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED,
                      pb.JOB_STATE_INTERRUPTED})
_COLUMNS = ("id", "kind", "state", "dataset_id", "done", "total", "eta_s", "message", "error", "failed_stage",
            "created_at", "updated_at", "result_json")
_PAGE_QUERY = {"list": "jobs"}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY, kind INTEGER NOT NULL, state INTEGER NOT NULL, dataset_id TEXT NOT NULL,
  done INTEGER NOT NULL, total INTEGER NOT NULL, eta_s REAL NOT NULL, message TEXT NOT NULL,
  error TEXT NOT NULL, failed_stage TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL,
  result_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs(created_at);
"""


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


JobBody = Callable[[JobHandle], Awaitable[str]]


class JobManager:
    def __init__(self, db_path: Path, *, max_concurrent: int = 1) -> None:
        Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(db_path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        # Updates are read-modify-write with an await in between; serialising them
        # keeps concurrent progress reports from overwriting each other and keeps
        # WatchJob events in order.
        self._update_lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(max_concurrent)
        self._tasks: dict[str, asyncio.Task] = {}
        self._cancel: set[str] = set()
        self._watchers: dict[str, set[asyncio.Queue]] = {}
        self.interrupted = self._mark_interrupted()

    def _mark_interrupted(self) -> int:
        with self._lock:
            cur = self._db.execute(
                "UPDATE jobs SET state=?, error=?, eta_s=0, updated_at=? WHERE state IN (?, ?)",
                (pb.JOB_STATE_INTERRUPTED, "the orchestrator stopped while this job was queued or running",
                 time.time(), pb.JOB_STATE_QUEUED, pb.JOB_STATE_RUNNING))
            return cur.rowcount

    # --- storage ------------------------------------------------------------------------------
    def _row(self, job_id: str) -> pb.Job | None:
        with self._lock:
            row = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return pb.Job(**dict(zip(_COLUMNS, row))) if row else None

    def _write(self, job: pb.Job) -> None:
        values = [getattr(job, c) for c in _COLUMNS]
        with self._lock:
            self._db.execute(f"INSERT OR REPLACE INTO jobs ({', '.join(_COLUMNS)}) VALUES "
                             f"({', '.join('?' for _ in _COLUMNS)})", values)

    async def _update(self, job_id: str, *, image: str = "", **fields: object) -> pb.Job:
        async with self._update_lock:
            job = self._row(job_id)
            assert job is not None
            for k, v in fields.items():
                setattr(job, k, v)
            job.updated_at = time.time()
            await asyncio.to_thread(self._write, job)
            for q in list(self._watchers.get(job_id, ())):
                q.put_nowait((pb.Job().FromString(job.SerializeToString()), image))
            return job

    # --- API ------------------------------------------------------------------------------------
    def get(self, job_id: str) -> pb.Job:
        job = self._row(job_id)
        if job is None:
            raise errors.not_found("JOB_NOT_FOUND", f"no job {job_id!r}", job_id=job_id)
        return job

    def list(self, limit: int = 50) -> list[pb.Job]:
        return self.page(limit or DEFAULT_PAGE_SIZE, "")[0]

    def page(self, size: int, token: str) -> tuple[list[pb.Job], str]:
        """Newest first, by a (created_at, id) keyset: jobs started while a client pages through do
        not shift or repeat the later pages."""
        size = size or DEFAULT_PAGE_SIZE
        cursor = decode_token(token, _PAGE_QUERY)
        where, args = "", []
        if cursor is not None:
            if not (isinstance(cursor, list) and len(cursor) == 2 and isinstance(cursor[0], (int, float))
                    and isinstance(cursor[1], str)):
                raise errors.invalid_argument("page_token", "page_token is not a token this server issued")
            where, args = "WHERE created_at < ? OR (created_at = ? AND id < ?)", [cursor[0], cursor[0], cursor[1]]
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM jobs {where} ORDER BY created_at DESC, "
                                    "id DESC LIMIT ?", (*args, size + 1)).fetchall()
        jobs = [pb.Job(**dict(zip(_COLUMNS, r))) for r in rows[:size]]
        more = len(rows) > size
        return jobs, encode_token(_PAGE_QUERY, [jobs[-1].created_at, jobs[-1].id]) if more else ""

    def start(self, kind: int, dataset_id: str, total: int, body: JobBody, *, message: str = "queued") -> pb.Job:
        now = time.time()
        job = pb.Job(id=f"job-{uuid.uuid4().hex[:12]}", kind=kind, state=pb.JOB_STATE_QUEUED, dataset_id=dataset_id,
                     total=total, message=message, created_at=now, updated_at=now)
        self._write(job)
        self._tasks[job.id] = asyncio.create_task(self._run(job.id, body))
        return job

    async def _run(self, job_id: str, body: JobBody) -> None:
        try:
            async with self._slots:
                if job_id in self._cancel:
                    await self._update(job_id, state=pb.JOB_STATE_CANCELLED, message="cancelled before it started",
                                       eta_s=0.0)
                    return
                await self._update(job_id, state=pb.JOB_STATE_RUNNING, message="running")
                try:
                    result = await body(JobHandle(self, job_id))
                except JobCancelled:
                    await self._update(job_id, state=pb.JOB_STATE_CANCELLED, message="cancelled", eta_s=0.0)
                except errors.TatorError as exc:
                    stage = exc.metadata.get("stage", "")
                    await self._update(job_id, state=pb.JOB_STATE_FAILED, error=str(exc), failed_stage=stage,
                                       message=f"failed in stage {stage}" if stage else "failed", eta_s=0.0)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # recorded on the job, traceback to the log
                    log.error("job %s failed", job_id, exc_info=exc)
                    await self._update(job_id, state=pb.JOB_STATE_FAILED, error=f"internal error: {exc}",
                                       message="failed", eta_s=0.0)
                else:
                    await self._update(job_id, state=pb.JOB_STATE_SUCCEEDED, result_json=result, message="done",
                                       eta_s=0.0)
        except asyncio.CancelledError:
            job = self._row(job_id)
            if job is not None and job.state not in TERMINAL:
                job.state, job.error, job.updated_at = pb.JOB_STATE_INTERRUPTED, "the orchestrator stopped", time.time()
                self._write(job)
                for q in list(self._watchers.get(job_id, ())):
                    q.put_nowait((job, ""))
            raise
        finally:
            self._tasks.pop(job_id, None)
            self._cancel.discard(job_id)

    def cancel(self, job_id: str) -> pb.Job:
        job = self.get(job_id)
        if job.state in TERMINAL:
            return job
        self._cancel.add(job_id)
        job.message = "cancelling"
        return job

    async def watch(self, job_id: str) -> AsyncIterator[tuple[pb.Job, str]]:
        """The job now, then every change until it ends."""
        queue: asyncio.Queue = asyncio.Queue()
        self._watchers.setdefault(job_id, set()).add(queue)
        try:
            job = self.get(job_id)
            yield job, ""
            while job.state not in TERMINAL:
                job, image = await queue.get()
                yield job, image
        finally:
            self._watchers.get(job_id, set()).discard(queue)
            if not self._watchers.get(job_id):
                self._watchers.pop(job_id, None)

    async def wait(self, job_id: str) -> pb.Job:
        async for job, _ in self.watch(job_id):
            last = job
        return last

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with self._lock:
            self._db.close()
