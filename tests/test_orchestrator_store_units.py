"""Work units that never finish, on both stores: a poison unit (its replicas keep dying on it) is
given up after `max_attempts` claims and fails its job naming its images; a graceful hand-back does
not count as an attempt."""

from __future__ import annotations

import time

import pytest

from svc_orchestrator.jobs import JobManager
from svc_orchestrator.store import open_store
from svc_orchestrator.store.base import UNIT_CLAIMED, UNIT_DONE, UNIT_FAILED, UNIT_PENDING
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb


@pytest.fixture
def store(store_url, tmp_path):
    s = open_store(store_url, tmp_path)
    yield s
    s.close()


def test_a_unit_whose_replicas_keep_dying_fails_its_job_naming_its_images(store):
    jm = JobManager(store, replica_id="a")
    poison = jm.start_sharded(pb.JOB_KIND_PREPASS, "ds", [["p0", "p1"], ["p2", "p3"]], b"")
    t = time.time()
    assert store.claim_unit("r1", t, t + 10, 3).unit == 0
    assert store.finish_unit("r1", poison.id, 0, "s0") is None  # unit 0 is fine
    # unit 1 takes down every replica that claims it: three claims, each lease running out
    for attempt, owner in enumerate(["r1", "r2", "r3"], start=1):
        t += 20
        u = store.claim_unit(owner, t, t + 10, 3)
        assert (u.job_id, u.unit, u.attempts) == (poison.id, 1, attempt)
        assert store.advance_unit(owner, poison.id, 1, 1, t, image="p2") is not None
    other = jm.start_sharded(pb.JOB_KIND_PREPASS, "ds", [["o0"]], b"")
    t += 20
    # the fourth claim gives unit 1 up, fails its job, and hands out the next job's unit instead
    u = store.claim_unit("r4", t, t + 10, 3)
    assert (u.job_id, u.unit) == (other.id, 0)
    assert store.finish_unit("r4", other.id, 0, "o") == ["o"]
    job = store.job(poison.id).job
    assert job.state == pb.JOB_STATE_FAILED
    assert "work unit 1" in job.error and "p2, p3" in job.error and "3 times" in job.error and "r3" in job.error
    assert "p0" not in job.error  # the unit that finished is not blamed
    states = store.unit_states(poison.id)
    assert [(s[0], s[1], s[2]) for s in states] == [(0, UNIT_DONE, 1), (1, UNIT_FAILED, 3)]
    assert states[1][3] == job.error
    # the last holder's late report is refused, and the failed job's units are never handed out again
    assert store.advance_unit("r3", poison.id, 1, 2, t) is None
    assert store.finish_unit("r3", poison.id, 1, "late") is None
    assert store.claim_unit("r5", t + 100, t + 110, 3) is None
    # the failure is an event a watcher sees
    assert store.events_after(poison.id, 0, 1000)[-1][1].state == pb.JOB_STATE_FAILED


def test_no_limit_and_graceful_hand_backs_do_not_give_a_unit_up(store):
    jm = JobManager(store, replica_id="a")
    job = jm.start_sharded(pb.JOB_KIND_PREPASS, "ds", [["i0"]], b"")
    t = time.time()
    for _ in range(5):  # max_attempts 0: reclaimed however often (the old behaviour)
        t += 20
        assert store.claim_unit("r1", t, t + 10, 0).unit == 0
    assert store.unit_states(job.id)[0][:3] == (0, UNIT_CLAIMED, 5)
    job2 = jm.start_sharded(pb.JOB_KIND_PREPASS, "ds", [["j0"]], b"")
    store.request_cancel(job.id)  # only so the next claims reach job2
    for _ in range(5):  # replicas shutting down gracefully hand the unit back: no attempt is spent
        u = store.claim_unit("r2", t, t + 10, 2)
        assert u.job_id == job2.id and u.attempts == 1
        assert store.release_units("r2", counted=False) == 1
    assert store.unit_states(job2.id)[0][:3] == (0, UNIT_PENDING, 0)
    # a restart under the same name counts: the process died holding it
    store.claim_unit("r2", t, t + 10, 2)
    assert store.release_units("r2") == 1
    store.claim_unit("r2", t, t + 10, 2)
    assert store.release_units("r2") == 1
    assert store.claim_unit("r3", t, t + 10, 2) is None
    assert store.job(job2.id).job.state == pb.JOB_STATE_FAILED


async def test_replicas_that_crash_on_a_unit_stop_claiming_it_after_max_attempts(store_url, tmp_path):
    """Unit workers of real replicas (one store connection each): two crash mid-unit, one after the
    other; the third finds the unit claimed twice and fails the job instead of running it."""
    import asyncio

    from test_orchestrator_store import _Replica

    log: list[tuple[str, str]] = []
    items = ["p0", "p1", "p2"]
    first = _Replica("a", store_url, tmp_path, log, lease_s=1.0, delay=0.3)
    first.workers.max_attempts = 2
    job = first.jobs.start_sharded(pb.JOB_KIND_PREPASS, "ds", [items], b"")
    crashed = [first]
    for name in ("b", None):
        while not any(r == crashed[-1].workers.replica_id for r, _ in log):
            await asyncio.sleep(0.02)
        await crashed[-1].close(crash=True)  # mid-unit: its lease runs out
        if name is not None:
            nxt = _Replica(name, store_url, tmp_path, log, lease_s=1.0, delay=0.3)
            nxt.workers.max_attempts = 2
            crashed.append(nxt)
    last = _Replica("c", store_url, tmp_path, log, lease_s=1.0, delay=0.3)
    last.workers.max_attempts = 2
    final = await asyncio.wait_for(last.jobs.wait(job.id), 30)
    assert final.state == pb.JOB_STATE_FAILED and "p0, p1, p2" in final.error and "2 times" in final.error
    assert "the last one b;" in final.error  # the last replica that died on it
    assert {r for r, _ in log} == {"a", "b"}  # c never ran it
    await last.close()
