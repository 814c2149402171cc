"""A job on plain Python types: what the job manager, the workers and the store pass around.

The numbers of `JobKind` and `JobState` are those the store's `kind` and `state` columns hold, which are
the contract's JobKind / JobState numbers (svc_orchestrator/convert/jobs.py converts a Job to its message
and tests/test_orchestrator_store.py checks that the two enums agree).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class JobKind(IntEnum):
    UNSPECIFIED = 0
    PREPASS = 1
    CALIBRATION = 2


class JobState(IntEnum):
    UNSPECIFIED = 0
    QUEUED = 1
    RUNNING = 2
    SUCCEEDED = 3
    FAILED = 4
    CANCELLED = 5
    INTERRUPTED = 6


ACTIVE = (JobState.QUEUED, JobState.RUNNING)
TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.INTERRUPTED})


@dataclass(frozen=True)
class Job:
    """One job as the API reports it. Times are unix seconds at microsecond precision; `kind` is a
    JobKind number (a stored row may hold one this version does not know, and keeps it); `result_json`
    is the finished job's result document (the JobResult message in protobuf JSON, "" until it ends),
    made and read by the conversion layer."""

    id: str
    kind: int = JobKind.UNSPECIFIED
    state: JobState = JobState.UNSPECIFIED
    dataset_id: str = ""
    done: int = 0
    total: int = 0
    eta_s: float = 0.0
    message: str = ""
    error: str = ""
    failed_stage: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0
    result_json: str = ""
