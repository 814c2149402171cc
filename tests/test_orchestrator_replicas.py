"""Two orchestrator processes on one PostgreSQL, over one set of model services (in this process):
a dataset prepass job started on replica A is watched on B, A is killed mid-job (SIGKILL) and B
finishes it; every image is prepassed exactly once; a cancel on B stops the job; a replica killed
and restarted under its name finishes the job it was running, skipping the cached images."""

from __future__ import annotations

import pytest
import pytest_asyncio
from replica_fixture import Replica, cache_writes
from stack_fixture import MODEL_SERVICES, SYNTH_IMAGES, Stack, build_models, make_datasets

from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.stack]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def services(tmp_path_factory, stack_models) -> Stack:
    home = tmp_path_factory.mktemp("home")
    models = stack_models
    make_datasets(home / "data")
    stack = Stack(home, build_models(models, home / "data" / "synth"))
    for name in MODEL_SERVICES:
        await stack.start_service(name)
    yield stack
    await stack.close()


async def test_failover_between_orchestrator_processes(services: Stack, pg_server, tmp_path):
    url = pg_server.create_database()
    a = await Replica("a", services, url, tmp_path).start()
    b = await Replica("b", services, url, tmp_path).start()
    try:
        total = SYNTH_IMAGES
        job = (await a.client.call("StartPrepassJob", pb.StartPrepassJobRequest(dataset_id="synth"))).job
        assert job.total == total
        killed_at = None
        events = []
        async for ev in b.client.stream("WatchJob", pb.WatchJobRequest(job_id=job.id)):
            events.append(ev)
            if ev.image and killed_at is None:
                killed_at = ev.job.done
                await a.kill()  # mid-job: A holds a unit (and maybe an image in flight)
        final = events[-1].job
        assert killed_at is not None and killed_at < total
        assert final.state == pb.JOB_STATE_SUCCEEDED and final.done == total, final
        assert final.result.prepass.images == total
        # every image prepassed exactly once: one cache entry each, none written twice
        assert cache_writes(url, "synth") == (total, total)
        done = [ev.job.done for ev in events if ev.image]
        assert done == sorted(done)

        # a cancel on B of a job B's workers are running
        cfg = pb.PrepassConfig(grid_cols=3)
        job2 = (await b.client.call("StartPrepassJob", pb.StartPrepassJobRequest(dataset_id="synth",
                                                                                 config=cfg))).job
        async for ev in b.client.stream("WatchJob", pb.WatchJobRequest(job_id=job2.id)):
            if ev.image:
                assert (await b.client.call("CancelJob", pb.CancelJobRequest(job_id=job2.id))).job.state == \
                    pb.JOB_STATE_CANCELLED
            last = ev.job
        assert last.state == pb.JOB_STATE_CANCELLED and last.done < total

        # B alone: killed mid-job and restarted under its name, it finishes the job, skipping cached images
        cfg = pb.PrepassConfig(grid_cols=4)
        job3 = (await b.client.call("StartPrepassJob", pb.StartPrepassJobRequest(dataset_id="synth",
                                                                                 config=cfg))).job
        async for ev in b.client.stream("WatchJob", pb.WatchJobRequest(job_id=job3.id)):
            if ev.image and ev.job.done >= 3:
                break
        await b.kill()
        b = await Replica("b", services, url, tmp_path).start()
        final = (await b.client.call("GetJob", pb.GetJobRequest(job_id=job3.id))).job
        assert final.state != pb.JOB_STATE_INTERRUPTED  # its units wait in the store
        async for ev in b.client.stream("WatchJob", pb.WatchJobRequest(job_id=job3.id)):
            final = ev.job
        assert final.state == pb.JOB_STATE_SUCCEEDED and final.done == total, final
        assert final.result.prepass.cache_hits >= 1  # the unit it was in ran again, from the cache
        entries, writes = cache_writes(url, "synth")
        assert entries == writes  # across the kill, the cancel and the restart: no image prepassed twice
    finally:
        await a.stop()
        await b.stop()
