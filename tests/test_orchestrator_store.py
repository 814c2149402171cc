"""The orchestrator's store, the same tests over both implementations (SQLite file, real PostgreSQL
server started by the `pg_server` fixture): migrations, prepass cache, catalog documents, jobs and
their events, two replicas on one store, work units with leases."""

from __future__ import annotations

import asyncio
import time

import pytest

from svc_orchestrator.convert.jobs import job_pb, result_column
from svc_orchestrator.jobs import JobManager
from svc_orchestrator.prepass.cache import CacheMeta, PrepassCache
from svc_orchestrator.store import open_store
from svc_orchestrator.store.migrations import LATEST, SchemaTooNew
from tator_core import errors
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
from tator_core.labels import glossary_hash


@pytest.fixture
def store(store_url, tmp_path):
    s = open_store(store_url, tmp_path)
    yield s
    s.close()


def _meta(**over) -> CacheMeta:
    doc = dict(glossary_text="circle: disc", glossary_hash=glossary_hash("circle: disc"),
               labelmap=("circle", "square"), labelmap_hash="lm", config={"a": 1}, config_hash="cfg",
               versions={"yolo-synth": "v1"})
    doc.update(over)
    return CacheMeta(**doc)


# --- schema ----------------------------------------------------------------------------------------

def test_migrations_apply_once_and_record_their_version(store_url, tmp_path):
    first = open_store(store_url, tmp_path)
    assert first.applied == list(range(1, LATEST + 1))
    first.close()
    again = open_store(store_url, tmp_path)  # a second replica, or a restart: nothing left to apply
    assert again.applied == []
    with again.read() as t:
        assert t.q("SELECT MAX(version) FROM schema_version").fetchone()[0] == LATEST
        t.q("INSERT INTO schema_version VALUES (?, ?, ?)", (LATEST + 1, "from the future", 0.0))
    again.close()
    with pytest.raises(SchemaTooNew, match=f"version {LATEST + 1}"):
        open_store(store_url, tmp_path)


# --- prepass cache ---------------------------------------------------------------------------------

def test_cache_roundtrip_with_meta_and_atomic_entries(store):
    cache = PrepassCache(store)
    meta = _meta()
    result = pb.PrepassResult(image_sha256="sha", image_name="x.png", width=3, height=4, config_hash="cfg")
    result.candidates.add(label="circle", score=0.5)
    assert cache.get(meta.key("sha")) is None
    cache.put(meta.key("sha"), meta, result, "ds")
    assert cache.get(meta.key("sha")) == result
    m = cache.meta_for(meta.key("sha"))
    assert m["glossary_text"] == "circle: disc" and m["glossary_hash"] == meta.glossary_hash
    assert m["labelmap"] == ["circle", "square"] and m["versions"] == {"yolo-synth": "v1"} and m["config"] == {"a": 1}
    # a write failing after its meta row went in (NOT NULL on the entry) leaves neither behind
    with pytest.raises(Exception):  # noqa: B017 - sqlite3.IntegrityError or psycopg.errors.NotNullViolation
        cache.put("k2", _meta(config_hash="other"), result, None)  # type: ignore[arg-type]  # a wrong type on purpose
    assert cache.get("k2") is None and cache.count() == 1
    with store.read() as t:
        assert t.q("SELECT COUNT(*) FROM meta").fetchone()[0] == 1
    # writing the same key again replaces the entry and counts the second write
    cache.put(meta.key("sha"), meta, result, "ds")
    assert store.cache_stats() == {"entries": 1, "writes": 2}
    assert cache.keys() == [meta.key("sha")]


def test_catalog_documents(store):
    assert store.doc_get("glossary", "a") is None and store.doc_list("glossary") == []
    store.doc_put("glossary", "b", '{"x": 1}', 1.0)
    store.doc_put("glossary", "a", "first", 1.0)
    store.doc_put("glossary", "a", "second", 2.0)
    store.doc_put("recipe", "a", "other kind", 1.0)
    assert store.doc_list("glossary") == [("a", "second"), ("b", '{"x": 1}')]
    assert store.doc_delete("glossary", "a") and not store.doc_delete("glossary", "a")
    assert store.doc_get("recipe", "a") == "other kind"


# --- local jobs ------------------------------------------------------------------------------------

async def test_jobs_progress_watch_cancel_and_restart(store):
    jm = JobManager(store, replica_id="a", poll_s=0.05)
    release = asyncio.Event()

    async def body(handle):
        for i in range(3):
            handle.check_cancelled()
            await handle.progress(i + 1, 3, f"img{i}", image=f"img{i}")
            if i == 0:
                await release.wait()
        return result_column(pb.JobResult(prepass=pb.PrepassJobSummary(images=3, config_hash="c")))

    job = jm.start(pb.JOB_KIND_PREPASS, "ds", 3, body)
    events = []

    async def watch():
        async for j, image in jm.watch(job.id):
            events.append((j.state, j.done, image))

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.1)
    release.set()
    await asyncio.wait_for(watcher, 5)
    assert events[-1][0] == pb.JOB_STATE_SUCCEEDED
    assert [e[2] for e in events if e[2]] == ["img0", "img1", "img2"]
    got = job_pb(jm.get(job.id))
    assert got.result.prepass.images == 3 and got.result.prepass.config_hash == "c"  # typed, through the store
    assert not got.HasField("eta") and got.update_time.ToMicroseconds() >= got.create_time.ToMicroseconds() > 0

    # cancellation takes effect at the next unit
    gate = asyncio.Event()

    async def slow(handle):
        for i in range(100):
            handle.check_cancelled()
            await handle.progress(i + 1, 100)
            gate.set()
            await asyncio.sleep(0.01)
        return result_column(pb.JobResult())

    job2 = jm.start(pb.JOB_KIND_PREPASS, "ds", 100, slow)
    await gate.wait()
    jm.cancel(job2.id)
    final = await asyncio.wait_for(jm.wait(job2.id), 5)
    assert final.state == pb.JOB_STATE_CANCELLED and final.done < 100

    # a job that fails in a stage names it
    async def failing(handle):
        raise errors.unavailable("STAGE_FAILED", "sam3 down", stage="sam3_text")

    job3 = jm.start(pb.JOB_KIND_PREPASS, "ds", 1, failing)
    final = await asyncio.wait_for(jm.wait(job3.id), 5)
    assert final.state == pb.JOB_STATE_FAILED and final.failed_stage == "sam3_text" and "sam3 down" in final.error

    # a running local job is INTERRUPTED when its replica restarts (same replica id, new process)
    hang = asyncio.Event()

    async def hanging(handle):
        await handle.progress(0, 1)
        await hang.wait()
        return result_column(pb.JobResult())

    job4 = jm.start(pb.JOB_KIND_PREPASS, "ds", 1, hanging)
    for _ in range(200):  # a loaded machine may take a while to run the job's first report
        if jm.get(job4.id).state == pb.JOB_STATE_RUNNING:
            break
        await asyncio.sleep(0.05)
    assert jm.get(job4.id).state == pb.JOB_STATE_RUNNING
    jm2 = JobManager(store, replica_id="a")
    assert jm2.interrupted == 1 and jm2.get(job4.id).state == pb.JOB_STATE_INTERRUPTED
    assert [j.id for j in jm2.list()][:1] == [job4.id]
    # the old process's late report does not resurrect it
    hang.set()
    await asyncio.sleep(0.2)
    assert jm2.get(job4.id).state == pb.JOB_STATE_INTERRUPTED
    with pytest.raises(errors.TatorError) as exc:
        jm2.get("nope")
    assert exc.value.reason == "JOB_NOT_FOUND"
    await jm.close()
    await jm2.close()


async def test_concurrent_progress_reports_do_not_overwrite_each_other(store):
    """Tasks of one job reporting at once: the last report wins, events stay ordered."""
    jm = JobManager(store, replica_id="a", poll_s=0.05)
    update = store.update_job

    def slow_update(job_id, fields, **kw):  # earlier reports take longer to land, as a loaded disk may do
        time.sleep(max(0, 20 - fields.get("done", 20)) * 0.002)
        return update(job_id, fields, **kw)

    store.update_job = slow_update

    async def body(handle):
        await asyncio.gather(*(handle.progress(k, 20, f"unit {k}") for k in range(1, 21)))
        assert jm.get(handle.job_id).done == 20
        return result_column(pb.JobResult())

    job = jm.start(pb.JOB_KIND_PREPASS, "ds", 20, body)
    events = []

    async def watch():
        async for j, _ in jm.watch(job.id):
            events.append(job_pb(j).update_time.ToMicroseconds())

    await asyncio.wait_for(asyncio.gather(watch(), jm.wait(job.id)), 10)
    assert events == sorted(events)
    final = jm.get(job.id)
    assert final.state == pb.JOB_STATE_SUCCEEDED and final.done == 20
    await jm.close()


async def test_a_local_job_is_watched_and_cancelled_from_another_replica(store_url, tmp_path):
    a_store, b_store = open_store(store_url, tmp_path), open_store(store_url, tmp_path)
    a = JobManager(a_store, replica_id="a", poll_s=0.05)
    b = JobManager(b_store, replica_id="b", poll_s=0.05)

    async def slow(handle):
        for i in range(200):
            handle.check_cancelled()
            await handle.progress(i + 1, 200, image=f"img{i}")
            await asyncio.sleep(0.02)
        return result_column(pb.JobResult())

    job = a.start(pb.JOB_KIND_CALIBRATION, "ds", 200, slow)
    seen = []
    asked = []

    async def watch_on_b():
        async for j, image in b.watch(job.id):
            seen.append((j.state, j.done, image))
            # Once: the job may stop at exactly 5 done, and its final CANCELLED event then shows done == 5 again.
            if j.done >= 5 and not asked:
                asked.append(b.cancel(job.id).message)

    await asyncio.wait_for(watch_on_b(), 10)
    assert asked == ["cancelling"]
    assert seen[-1][0] == pb.JOB_STATE_CANCELLED and 5 <= seen[-1][1] < 200
    done = [d for _, d, img in seen if img]
    assert done == sorted(done) and len(done) == len(set(done))
    # a replica that stops renewing its lease: its local job ends INTERRUPTED on the others
    hang = asyncio.Event()

    async def hanging(handle):
        await hang.wait()
        return result_column(pb.JobResult())

    a.lease_s = 0.3
    job2 = a.start(pb.JOB_KIND_CALIBRATION, "ds", 1, hanging)
    await asyncio.sleep(0.2)
    a._keeper.cancel()  # replica a freezes: no more heartbeats
    b.lease_s = 0.3
    b._ensure_keeper()
    final = await asyncio.wait_for(b.wait(job2.id), 10)
    assert final.state == pb.JOB_STATE_INTERRUPTED and "lease" in final.error
    hang.set()
    await a.close()
    await b.close()
    a_store.close()
    b_store.close()


# --- work units ------------------------------------------------------------------------------------

def test_units_are_claimed_once_reclaimed_after_lease_and_finished_once(store):
    jm = JobManager(store, replica_id="a")
    job = jm.start_sharded(pb.JOB_KIND_PREPASS, "ds", [["i0", "i1"], ["i2", "i3"], ["i4"]], b"spec")
    assert job.total == 5 and store.job(job.id).sharded and store.job(job.id).spec == b"spec"
    now = time.time()
    u0 = store.claim_unit("r1", now, now + 10)
    u1 = store.claim_unit("r2", now, now + 10)
    assert (u0.unit, u0.items, u1.unit) == (0, ("i0", "i1"), 1)
    assert store.job(job.id).job.state == pb.JOB_STATE_RUNNING
    assert store.advance_unit("r1", job.id, 0, 1, now, message="i0", image="i0").done == 1
    assert store.advance_unit("r2", job.id, 0, 2, now) is None  # not its unit
    # r3 finds the last unit; nothing else is free until a lease expires
    u2 = store.claim_unit("r3", now, now + 1)
    assert u2.unit == 2 and store.claim_unit("r3", now, now + 1) is None
    # r3 dies: after its lease, r1 claims unit 2 again and r3's late report is refused
    later = now + 5
    again = store.claim_unit("r1", later, later + 10)
    assert again.unit == 2 and again.attempts == 2
    assert store.heartbeat_units("r3", [(job.id, 2)], later + 10) == {(job.id, 2)}
    assert store.heartbeat_units("r1", [(job.id, 2)], later + 10) == set()
    assert store.advance_unit("r3", job.id, 2, 1, later) is None
    assert store.finish_unit("r3", job.id, 2, "late") is None
    assert store.finish_unit("r1", job.id, 0, "s0") is None
    assert store.finish_unit("r1", job.id, 2, "s2") is None
    assert store.finish_unit("r2", job.id, 1, "s1") == ["s0", "s1", "s2"]
    assert store.finish_unit("r2", job.id, 1, "s1") is None  # the last word is given once


def test_release_and_cancel_of_a_sharded_job(store):
    jm = JobManager(store, replica_id="a")
    job = jm.start_sharded(pb.JOB_KIND_PREPASS, "ds", [["i0"], ["i1"]], b"")
    now = time.time()
    assert store.claim_unit("r1", now, now + 60).unit == 0
    assert store.release_units("r1") == 1  # a graceful shutdown hands its unit back at once
    assert store.claim_unit("r2", now, now + 60).unit == 0
    cancelled = jm.cancel(job.id)
    assert cancelled.state == pb.JOB_STATE_CANCELLED
    assert store.advance_unit("r2", job.id, 0, 1, now) is None  # the worker stops at its next image
    assert store.claim_unit("r3", now, now + 60) is None  # no unit of a cancelled job is handed out


def test_concurrent_claims_hand_out_every_unit_exactly_once(store_url, tmp_path):
    """Four replicas (threads with their own connections) claim 40 units at once."""
    import threading

    stores = [open_store(store_url, tmp_path) for _ in range(4)]
    JobManager(stores[0], replica_id="a").start_sharded(pb.JOB_KIND_PREPASS, "ds", [[f"i{k}"] for k in range(40)], b"")
    got: dict[int, list[int]] = {i: [] for i in range(4)}

    def claimer(i):
        while (u := stores[i].claim_unit(f"r{i}", time.time(), time.time() + 60)) is not None:
            got[i].append(u.unit)

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    units = sorted(u for us in got.values() for u in us)
    assert units == list(range(40))
    for s in stores:
        s.close()


# --- workers of two replicas -------------------------------------------------------------------------

class _Replica:
    """A replica's job manager and unit workers on its own connection to the shared store; its
    execute step records which replica handled which item."""

    def __init__(self, name, store_url, tmp_path, log, *, lease_s=5.0, delay=0.03):
        from svc_orchestrator.prepass.sharding import merge_summaries
        from svc_orchestrator.workers import UnitWorkers

        self.store = open_store(store_url, tmp_path)
        self.jobs = JobManager(self.store, replica_id=name, poll_s=0.05, lease_s=lease_s)

        async def execute(rec, unit, progress):
            for i, item in enumerate(unit.items):
                progress.check()
                await asyncio.sleep(delay)
                log.append((name, item))
                await progress.advance(i + 1, item, image=item)
            # candidates_by_class doubles as a per-replica tally: merge adds Count lists up by key
            return result_column(pb.JobResult(prepass=pb.PrepassJobSummary(
                images=len(unit.items), candidates_by_class=[pb.Count(key=name, count=len(unit.items))])))

        self.workers = UnitWorkers(self.store, name, execute=execute, notify=self.jobs.notify, poll_s=0.05,
                                   lease_s=lease_s, finalize=lambda _rec, summaries: merge_summaries(summaries))
        self.jobs.on_cancel = lambda job_id: self.workers.stop(job_id=job_id)
        self.workers.start()

    async def close(self, *, crash=False):
        if crash:  # the process dies: nothing is handed back, its leases just run out
            for t in self.workers._tasks:
                t.cancel()
            await asyncio.gather(*self.workers._tasks, return_exceptions=True)
            self.workers._tasks = []
        else:
            await self.workers.close()
        await self.jobs.close()
        self.store.close()


async def test_a_sharded_job_runs_on_both_replicas_and_is_watched_on_the_other(store_url, tmp_path):
    log: list[tuple[str, str]] = []
    a, b = _Replica("a", store_url, tmp_path, log), _Replica("b", store_url, tmp_path, log)
    items = [f"img{k:02d}" for k in range(20)]
    job = a.jobs.start_sharded(pb.JOB_KIND_PREPASS, "ds", [items[i:i + 2] for i in range(0, 20, 2)], b"")
    events = [(j.state, j.done, img) async for j, img in b.jobs.watch(job.id)]
    final = events[-1]
    assert final[0] == pb.JOB_STATE_SUCCEEDED and final[1] == 20
    assert sorted(item for _, item in log) == items  # every image exactly once
    result = job_pb(b.jobs.get(job.id)).result.prepass
    by_replica = {c.key: c.count for c in result.candidates_by_class}
    assert result.images == 20 and sum(by_replica.values()) == 20
    assert set(by_replica) == {"a", "b"}, result  # both replicas took units
    done = [d for _, d, img in events if img]
    assert done == sorted(done) and done[-1] == 20  # aggregated progress never goes back
    await a.close()
    await b.close()


async def test_a_crashed_replica_s_units_are_taken_over_and_a_cancel_reaches_every_replica(store_url, tmp_path):
    log: list[tuple[str, str]] = []
    a = _Replica("a", store_url, tmp_path, log, lease_s=1.0, delay=0.1)
    items = [f"img{k:02d}" for k in range(12)]
    job = a.jobs.start_sharded(pb.JOB_KIND_PREPASS, "ds", [items[i:i + 3] for i in range(0, 12, 3)], b"")
    while not log:
        await asyncio.sleep(0.02)
    await a.close(crash=True)  # mid-unit
    b = _Replica("b", store_url, tmp_path, log, lease_s=1.0, delay=0.01)
    final = await asyncio.wait_for(b.jobs.wait(job.id), 30)
    assert final.state == pb.JOB_STATE_SUCCEEDED and final.done == 12
    assert {item for r, item in log if r == "b"} >= set(items[3:])  # b ran a's abandoned unit again
    assert {item for _, item in log} == set(items)
    # cancel on one replica stops the work on the other within an image
    c = _Replica("c", store_url, tmp_path, log, delay=0.1)
    job2 = b.jobs.start_sharded(pb.JOB_KIND_PREPASS, "ds", [[f"x{k}" for k in range(50)]], b"")
    while not any(item.startswith("x") for _, item in log):
        await asyncio.sleep(0.02)
    assert c.jobs.cancel(job2.id).state == pb.JOB_STATE_CANCELLED
    await asyncio.sleep(2.5)  # b's heartbeat (lease/3) or its next report notices
    ran = [item for _, item in log if item.startswith("x")]
    assert len(ran) < 50 and not b.workers._running
    assert b.jobs.get(job2.id).state == pb.JOB_STATE_CANCELLED
    await b.close()
    await c.close()


def test_the_job_enums_are_the_contract_s_and_a_job_round_trips_through_its_message():
    """The store's kind and state columns hold the contract's numbers; a job converts to its message and
    back (as every stored event does) without changing."""
    from svc_orchestrator.convert.jobs import event_blob, event_job, job_from_pb
    from svc_orchestrator.job_types import Job, JobKind, JobState

    for ours, theirs in ((JobKind, pb.JobKind), (JobState, pb.JobState)):
        assert {m.name: int(m) for m in ours} == {
            n.removeprefix("JOB_KIND_").removeprefix("JOB_STATE_"): v for n, v in theirs.items()}
    job = Job(id="job-1", kind=JobKind.PREPASS, state=JobState.RUNNING, dataset_id="ds", done=2, total=5,
              eta_s=1.25, message="img", created_at=1_700_000_000.123456, updated_at=1_700_000_001.5,
              result_json=result_column(pb.JobResult(prepass=pb.PrepassJobSummary(images=2))))
    assert job_from_pb(job_pb(job)) == job and event_job(event_blob(job)) == job
    assert job_pb(job).eta.ToMicroseconds() == 1_250_000 and job_pb(job).result.prepass.images == 2
    assert event_job(b"\xff\xff\xff") is None
