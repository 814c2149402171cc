"""A damaged job row (a column that does not read back: bad JSON, an unknown state, a non-number
time) does not fail the call that reads it: GetJob answers with the readable columns and an error
naming the damaged ones, ListJobs lists it beside the others, and a damaged event blob is skipped by
WatchJob's reader. Through the real orchestrator server (SQLite store) and, for the store alone,
also PostgreSQL."""

from __future__ import annotations

import grpc
from stack_fixture import start_orchestrator_only

from svc_orchestrator.convert.jobs import job_from_pb, job_pb
from svc_orchestrator.store import open_store
from tator_core.client import ServiceClient
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2_grpc as pbg


def _job(i: int) -> pb.Job:
    job = pb.Job(id=f"job-{i}", kind=pb.JOB_KIND_PREPASS, state=pb.JOB_STATE_SUCCEEDED, dataset_id="synth",
                 done=3, total=3, message="done")
    job.create_time.FromMicroseconds(1_700_000_000_000_000 + i)
    job.update_time.CopyFrom(job.create_time)
    job.result.prepass.images = 3
    return job


def _fill(store, *, typed_columns: bool = False) -> None:
    for i in range(4):
        store.insert_job(job_from_pb(_job(i)), owner="r1", lease_until=0.0)
    with store.tx() as t:
        t.q("UPDATE jobs SET result_json = ?, state = ? WHERE id = ?", ("{not json", 99, "job-1"))
        if not typed_columns:  # PostgreSQL's columns refuse text in a number column; SQLite's keep it
            t.q("UPDATE jobs SET created_at = ? WHERE id = ?", ("yesterday", "job-2"))
        t.q("UPDATE job_events SET job = ? WHERE job_id = ?", (b"\xff\xff\xff", "job-3"))


def test_the_store_reads_damaged_rows_in_both_implementations(store_url, tmp_path):
    store = open_store(store_url, tmp_path)
    try:
        _fill(store, typed_columns=store_url.startswith("postgresql"))
        jobs = {j.id: j for j in store.list_jobs(10)}
        assert set(jobs) >= {"job-0", "job-1", "job-3"}  # job-2's time does not sort in every database
        bad = job_pb(store.job("job-1").job)
        assert bad.state == pb.JOB_STATE_FAILED and not bad.HasField("result")
        assert "damaged" in bad.error and "result_json" in bad.error and "state" in bad.error
        assert bad.total == 3 and bad.dataset_id == "synth"          # the readable columns are kept
        good = job_pb(store.job("job-0").job)
        assert good.state == pb.JOB_STATE_SUCCEEDED and good.error == ""
        assert store.events_after("job-3", 0) == []                   # the damaged event is skipped
        assert len(store.events_after("job-0", 0)) == 1
    finally:
        store.close()


async def test_get_and_list_jobs_answer_around_a_damaged_row(tmp_path):
    (tmp_path / "data").mkdir()
    running, spec = await start_orchestrator_only(tmp_path)
    client = ServiceClient(running.address, pbg.OrchestratorServiceStub, timeout_s=10, token="")
    try:
        _fill(spec.app.jobs.store)
        listed = await client.call("ListJobs", pb.ListJobsRequest(page_size=10))
        ids = [j.id for j in listed.jobs]
        assert {"job-0", "job-1", "job-2", "job-3"} == set(ids), ids
        got = (await client.call("GetJob", pb.GetJobRequest(job_id="job-2"))).job
        assert "created_at" in got.error and got.state == pb.JOB_STATE_SUCCEEDED
        got = (await client.call("GetJob", pb.GetJobRequest(job_id="job-1"))).job
        assert got.state == pb.JOB_STATE_FAILED and "result_json" in got.error
    except grpc.aio.AioRpcError as exc:  # the failure this test guards against: say which
        raise AssertionError(f"{exc.code().name}: {exc.details()}") from exc
    finally:
        await client.close()
        await running.stop(0)
