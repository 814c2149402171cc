"""Jobs <-> their messages: the API's Job, the JobResult documents jobs end with, and the stored
events (each event keeps the Job message WatchJob sends, so rows written by earlier versions read back)."""

from __future__ import annotations

from google.protobuf import json_format
from google.protobuf.message import DecodeError

from svc_orchestrator.job_types import Job, JobState
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb


def _micros(seconds: float) -> int:
    return round(float(seconds) * 1e6)


def result_column(result: pb.JobResult | None) -> str:
    """A JobResult as the document a Job keeps (protobuf JSON, keys sorted; "" for none)."""
    return json_format.MessageToJson(result, indent=None, sort_keys=True) if result is not None else ""


def result_readable(text: str) -> bool:
    """Whether a stored result document parses as a JobResult."""
    try:
        json_format.Parse(text, pb.JobResult())
    except (json_format.ParseError, TypeError, ValueError, AttributeError):
        return False
    return True


def job_pb(job: Job) -> pb.Job:
    out = pb.Job(id=job.id, kind=job.kind, state=job.state, dataset_id=job.dataset_id, done=job.done,  # type: ignore[arg-type]  # stored numbers, checked against the enum by the store tests
                 total=job.total, message=job.message, error=job.error, failed_stage=job.failed_stage)
    if job.eta_s > 0:
        out.eta.FromMicroseconds(_micros(job.eta_s))
    out.create_time.FromMicroseconds(_micros(job.created_at))
    out.update_time.FromMicroseconds(_micros(job.updated_at))
    if job.result_json:
        json_format.Parse(job.result_json, out.result)
    return out


def job_from_pb(msg: pb.Job) -> Job:
    return Job(id=msg.id, kind=int(msg.kind), state=JobState(msg.state), dataset_id=msg.dataset_id, done=msg.done,
               total=msg.total, eta_s=msg.eta.ToMicroseconds() / 1e6 if msg.HasField("eta") else 0.0,
               message=msg.message, error=msg.error, failed_stage=msg.failed_stage,
               created_at=msg.create_time.ToMicroseconds() / 1e6, updated_at=msg.update_time.ToMicroseconds() / 1e6,
               result_json=result_column(msg.result) if msg.HasField("result") else "")


def event_blob(job: Job) -> bytes:
    """A job as its stored event."""
    return job_pb(job).SerializeToString()


def event_job(blob: bytes) -> Job | None:
    """A stored event's job; None when the blob does not parse."""
    try:
        return job_from_pb(pb.Job.FromString(blob))
    except (TypeError, ValueError, DecodeError):
        return None
