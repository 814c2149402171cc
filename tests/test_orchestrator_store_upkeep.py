"""Upkeep of the orchestrator's store, on both implementations: the events of ended jobs are pruned to
their last few once a retention time has passed (on a timer every replica may run)."""

from __future__ import annotations

import asyncio
import time

import pytest

from svc_orchestrator.jobs import JobManager
from svc_orchestrator.store import open_store
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb


@pytest.fixture
def store(store_url, tmp_path):
    s = open_store(store_url, tmp_path)
    yield s
    s.close()


def _job_with_events(store, jm, n: int, *, end: pb.JobState.ValueType | None, at: float) -> str:
    job = jm.start_sharded(pb.JOB_KIND_PREPASS, "ds", [[f"i{k}" for k in range(n)]], b"")
    for k in range(n):
        store.update_job(job.id, {"done": k + 1, "updated_at": at}, image=f"i{k}")
    if end is not None:
        store.update_job(job.id, {"state": end, "updated_at": at})
    return job.id


def _seqs(store, job_id: str) -> list[int]:
    return [seq for seq, _, _ in store.events_after(job_id, 0, 10_000)]


def test_events_of_jobs_ended_before_the_retention_are_pruned_to_the_last_few(store):
    jm = JobManager(store, replica_id="a")
    now = time.time()
    old_ok = _job_with_events(store, jm, 10, end=pb.JOB_STATE_SUCCEEDED, at=now - 7200)
    old_failed = _job_with_events(store, jm, 4, end=pb.JOB_STATE_FAILED, at=now - 7200)
    recent = _job_with_events(store, jm, 10, end=pb.JOB_STATE_CANCELLED, at=now - 10)
    running = _job_with_events(store, jm, 10, end=None, at=now - 7200)  # active: never pruned, however old
    assert _seqs(store, old_ok) == list(range(1, 13))  # created, 10 images, the end
    assert store.prune_events(now - 3600, keep=3) == 2
    assert _seqs(store, old_ok) == [10, 11, 12]
    last = store.events_after(old_ok, 0)[-1][1]
    assert last.state == pb.JOB_STATE_SUCCEEDED and last.done == 10  # the final state survives
    assert _seqs(store, old_failed) == [4, 5, 6]
    assert _seqs(store, recent) == list(range(1, 13)) and _seqs(store, running) == list(range(1, 12))
    # each ended job is pruned once; the next sweep finds only jobs that ended since
    assert store.prune_events(now - 3600, keep=3) == 0
    assert store.prune_events(now, keep=1) == 1 and _seqs(store, recent) == [12]
    assert _seqs(store, old_ok) == [10, 11, 12]  # already pruned: a smaller keep later does not reach it
    # keep below 1 still keeps the final event
    late = _job_with_events(store, jm, 2, end=pb.JOB_STATE_SUCCEEDED, at=now - 7200)
    assert store.prune_events(now, keep=0) == 1 and _seqs(store, late) == [4]


async def test_the_upkeep_timer_prunes_and_a_watcher_of_a_pruned_job_gets_its_final_state(store):
    jm = JobManager(store, replica_id="a", event_keep=2, event_retention_s=0.0, prune_every_s=0.05)
    job_id = _job_with_events(store, jm, 6, end=pb.JOB_STATE_SUCCEEDED, at=time.time() - 1)
    jm.start_upkeep()
    jm.start_upkeep()  # idempotent
    for _ in range(100):
        if len(_seqs(store, job_id)) == 2:
            break
        await asyncio.sleep(0.05)
    assert _seqs(store, job_id) == [7, 8]
    seen = [job async for job, _ in jm.watch(job_id)]
    assert [j.state for j in seen] == [pb.JOB_STATE_SUCCEEDED] and seen[0].done == 6
    await jm.close()
    assert jm._pruner.done()
