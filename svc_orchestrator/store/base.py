"""The orchestrator's storage interface: jobs and their events, work units of sharded jobs, the
prepass cache and catalog documents.

Two implementations share the SQL in `sql.py`: SQLite (one file, the embedded default) and
PostgreSQL (shared by every replica). Methods are blocking; the event loop calls them through
`asyncio.to_thread`. Every method that changes a job appends one event in the same transaction, so
WatchJob on any replica sees every change, in order, by reading events after the last seq it saw.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from svc_orchestrator.convert.jobs import result_readable
from svc_orchestrator.job_types import ACTIVE, TERMINAL, Job, JobState
from tator_core import errors

__all__ = ["ACTIVE", "TERMINAL", "JOB_COLUMNS", "job_from_row", "job_row"]
# Columns of the jobs table that hold a Job; `job_from_row` / `job_row` convert. Times are unix
# seconds at microsecond precision (so a Timestamp and its column value convert both ways exactly,
# which keyset paging on created_at relies on); result_json is the JobResult in protobuf JSON.
JOB_COLUMNS = ("id", "kind", "state", "dataset_id", "done", "total", "eta_s", "message", "error", "failed_stage",
               "created_at", "updated_at", "result_json")

#: What a damaged column raises while it is read back (a bad type, a value out of range).
_UNREADABLE = (TypeError, ValueError, OverflowError, AttributeError)


def _micros(value: object) -> float:
    """A time column at the microsecond precision the API's timestamps carry."""
    return round(float(value) * 1e6) / 1e6  # type: ignore[arg-type]  # a column value: checked by float()


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"not text: {type(value).__name__}")
    return value


def _int32(value: object) -> int:
    """The message's fields are int32: a column beyond them does not read back."""
    n = int(value)  # type: ignore[call-overload]  # a column value: checked by int()
    if not -2**31 <= n < 2**31:
        raise OverflowError(f"{n} does not fit an int32")
    return n


def job_from_row(values: Sequence) -> Job:
    """The Job of a jobs row. A column that does not read back (a row written by another version,
    edited by hand, damaged on disk) is left at its default and named in the job's `error`, so one bad
    row neither fails the call that reads it nor hides the other jobs; an unknown state reads as FAILED."""
    row = dict(zip(JOB_COLUMNS, values))
    fields: dict = {}
    damaged: list[str] = []

    def read(column: str, convert) -> None:
        try:
            fields[column] = convert(row[column])
        except _UNREADABLE:
            damaged.append(column)

    def result(value) -> str:
        if value and not result_readable(value):
            raise ValueError("not a JobResult")
        return str(value or "")

    read("id", _text)
    for column in ("dataset_id", "message", "error", "failed_stage"):
        read(column, _text)
    for column in ("kind", "done", "total"):
        read(column, _int32)
    read("state", lambda v: JobState(int(v)))  # ValueError for a number the enum does not define
    read("eta_s", lambda v: _micros(v) if v and float(v) > 0 else 0.0)
    read("created_at", _micros)
    read("updated_at", _micros)
    read("result_json", result)
    if damaged:
        if "state" in damaged:
            fields["state"] = JobState.FAILED
        note = f"the stored record of this job is damaged (unreadable: {', '.join(damaged)})"
        fields["error"] = f"{note}; {fields['error']}" if fields.get("error") else note
    return Job(**{"id": "", **fields})


def job_row(job: Job) -> list:
    """Column values of a Job, in JOB_COLUMNS order."""
    return [job.id, int(job.kind), int(job.state), job.dataset_id, job.done, job.total, job.eta_s, job.message,
            job.error, job.failed_stage, job.created_at, job.updated_at, job.result_json]

UNIT_PENDING, UNIT_CLAIMED, UNIT_DONE, UNIT_FAILED = 0, 1, 2, 3


@dataclass(frozen=True)
class JobRecord:
    """A job with the bookkeeping that is not part of the API message."""

    job: Job
    owner: str
    lease_until: float
    cancel_requested: bool
    sharded: bool
    spec: bytes
    seq: int = 0  # the job's last event: a watcher starting now reads the events after it


@dataclass(frozen=True)
class WorkUnit:
    job_id: str
    unit: int
    items: tuple[str, ...]
    attempts: int


@dataclass(frozen=True)
class CacheRow:
    """What the prepass cache stores per entry; `meta` is written once per meta_key."""

    key: str
    meta_key: str
    meta: dict
    image_sha256: str
    image_name: str
    dataset_id: str
    payload: bytes


@dataclass(frozen=True)
class ReplayRow:
    """What Replay needs of one computed prepass run, keyed by its run_id. `request` is the serialized
    PrepassRequest as the caller sent it without image bytes; `candidates` a serialized PrepassResult
    holding only the run's candidates (the diff's "before"), `candidates_digest` their hash."""

    run_id: str
    cache_key: str
    image_sha256: str
    dataset_id: str
    image_name: str
    request: bytes
    config: dict
    config_hash: str
    versions: dict[str, str]
    glossary_hash: str
    labelmap_hash: str
    pipeline_version: str
    candidates_digest: str
    candidates: bytes
    created_at: float = 0.0


class Store(ABC):
    dialect: str

    # --- jobs ---------------------------------------------------------------------------------------
    @abstractmethod
    def insert_job(self, job: Job, *, owner: str, lease_until: float, spec: bytes = b"",
                   units: Sequence[Sequence[str]] = ()) -> None:
        """A new job (and, for a sharded job, its work units) in one transaction; event seq 1."""

    @abstractmethod
    def job(self, job_id: str) -> JobRecord | None: ...

    @abstractmethod
    def list_jobs(self, limit: int, before: tuple[float, str] | None = None) -> list[Job]:
        """Newest first; `before` = (created_at, id) of the last job of the previous page."""

    @abstractmethod
    def update_job(self, job_id: str, fields: dict, *, image: str = "", only_active: bool = False) -> Job | None:
        """Set fields and append an event; None if missing, or if `only_active` and the job already
        ended (so a late report never overwrites CANCELLED or SUCCEEDED)."""

    def record_end(self, job_id: str, fields: dict) -> Job | None:
        """update_job(only_active) for the write that ends a job, which must land even when the volume
        is full (else the job would sit QUEUED or RUNNING with no word of why): on STORE_FULL the
        store's reserve is released and the write tried once more."""
        try:
            return self.update_job(job_id, fields, only_active=True)
        except errors.TatorError as exc:
            if exc.reason != "STORE_FULL" or not self.release_reserve():
                raise
            return self.update_job(job_id, fields, only_active=True)

    def release_reserve(self) -> bool:
        """Give back the space kept for `record_end` on a full volume; True when some was freed. A store
        whose volume it does not manage (PostgreSQL's is the server's) keeps none."""
        return False

    def restore_reserve(self) -> None:  # noqa: B027 -- optional: a store without a reserve does nothing
        """Take the reserve again once there is room (called while the workers idle)."""

    @abstractmethod
    def events_after(self, job_id: str, seq: int, limit: int = 256) -> list[tuple[int, Job, str]]: ...

    @abstractmethod
    def prune_events(self, ended_before: float, keep: int) -> int:
        """Of every job that ended before `ended_before`, delete all but its last `keep` events (the last
        one is its final state); each job is pruned once. The number of jobs pruned."""

    @abstractmethod
    def request_cancel(self, job_id: str) -> None: ...

    @abstractmethod
    def cancel_requested(self, job_ids: Sequence[str]) -> set[str]: ...

    @abstractmethod
    def heartbeat_jobs(self, owner: str, job_ids: Sequence[str], lease_until: float) -> None: ...

    @abstractmethod
    def interrupt_orphans(self, owner: str, now: float, error: str) -> int:
        """Unsharded active jobs that `owner` held before it restarted, or whose lease expired, end
        INTERRUPTED (their process is gone); sharded jobs are resumed by claiming units instead."""

    # --- work units ---------------------------------------------------------------------------------
    @abstractmethod
    def claim_unit(self, owner: str, now: float, lease_until: float, max_attempts: int = 0) -> WorkUnit | None:
        """One pending unit, or one whose lease expired, of an active job; marks the job RUNNING. A unit
        already claimed `max_attempts` times (0 = no limit) is marked failed instead, and its job FAILED
        naming its images."""

    @abstractmethod
    def claimable_job(self, now: float) -> str | None:
        """The job whose unit `claim_unit` would take next (a read: it works on a full volume)."""

    @abstractmethod
    def advance_unit(self, owner: str, job_id: str, unit: int, done: int, now: float, *, message: str = "",
                     image: str = "") -> Job | None:
        """A held unit has `done` images finished: the job's done becomes the sum over its units and an
        event is appended. None when this owner lost the unit or the job ended: stop working on it."""

    @abstractmethod
    def heartbeat_units(self, owner: str, units: Sequence[tuple[str, int]], lease_until: float) -> set[tuple[str, int]]:
        """Extend the leases still held; the units whose lease this owner lost or whose job ended."""

    @abstractmethod
    def finish_unit(self, owner: str, job_id: str, unit: int, summary: str) -> list[str] | None:
        """Mark a unit done; when it was the job's last, the summaries of all units (once, to exactly one
        caller), else None."""

    @abstractmethod
    def release_units(self, owner: str, *, counted: bool = True) -> int:
        """Give back every unit `owner` holds: a restart under the same name (the claim counts as an
        attempt), or a graceful shutdown (`counted=False`: it does not)."""

    @abstractmethod
    def unit_states(self, job_id: str) -> list[tuple[int, int, int, str]]:
        """(unit, state, attempts, error) of each unit of a job."""

    # --- prepass cache ------------------------------------------------------------------------------
    @abstractmethod
    def cache_get(self, key: str) -> bytes | None: ...

    @abstractmethod
    def cache_put(self, row: CacheRow, now: float, replay: ReplayRow | None = None) -> None:
        """Meta (first time), entry and the run's replay record in one transaction: all land or none does.
        A replay record whose run_id exists is replaced (the same run computed again)."""

    @abstractmethod
    def replay_get(self, run_id: str) -> ReplayRow | None: ...

    @abstractmethod
    def replay_count(self) -> int: ...

    @abstractmethod
    def cache_import(self, metas: Sequence[Sequence], entries: Sequence[Sequence]) -> int:
        """Rows of another cache database, as its `meta` (10 columns) and `entries` (7 columns, no
        write count) tables hold them, added in one transaction; rows whose key exists are kept as
        they are. The number of entries added."""

    @abstractmethod
    def cache_meta(self, key: str) -> dict | None: ...

    @abstractmethod
    def cache_stats(self) -> dict[str, int]:
        """entries, and writes (more than entries when an image was prepassed twice)."""

    @abstractmethod
    def cache_keys(self) -> list[str]: ...

    # --- catalog documents (glossaries, recipes) ----------------------------------------------------
    @abstractmethod
    def doc_put(self, kind: str, name: str, doc: str, now: float) -> None: ...

    @abstractmethod
    def doc_add(self, kind: str, name: str, doc: str, now: float) -> bool:
        """Insert unless the name is taken (False then): two replicas creating one name, one wins."""

    @abstractmethod
    def doc_get(self, kind: str, name: str) -> str | None: ...

    @abstractmethod
    def doc_list(self, kind: str) -> list[tuple[str, str]]: ...

    @abstractmethod
    def doc_delete(self, kind: str, name: str) -> bool: ...

    @abstractmethod
    def close(self) -> None: ...
