"""A prepass job keeps `prepass_images_in_flight` images in flight: never more, every image once, and the
job's summary and progress are those of a one-at-a-time run."""

from __future__ import annotations

import asyncio

import pytest

from svc_orchestrator.app import Orchestrator
from svc_orchestrator.convert.jobs import job_pb
from svc_orchestrator.settings import OrchestratorSettings
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
from tator_fixtures.synth import generate

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    generate(root / "synth", seed=3, images=7, splits=("train",))
    return root


async def run_job(tmp_path, data_root, in_flight: int, fail_on: str = "") -> tuple[pb.Job, int, list[str], list]:
    app = Orchestrator(OrchestratorSettings(state_dir=tmp_path / f"state{in_flight}", data_root=data_root,
                                            prepass_images_in_flight=in_flight))
    active, peak, seen, progress = 0, 0, [], []

    async def fake_run_item(ctx, item, *, refresh=False):
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        try:
            await asyncio.sleep(0.02)  # a service call: the event loop is free meanwhile
            if fail_on and item.name.endswith(fail_on):
                raise RuntimeError("stage failed")
            seen.append(item.name)
            return pb.PrepassResult(candidates=[pb.Candidate(label="circle", source_primary=1)])
        finally:
            active -= 1

    app.runner.run_item = fake_run_item
    original = app.store.advance_unit

    def spy(replica, job_id, unit, done, *a, **kw):
        progress.append(done)
        return original(replica, job_id, unit, done, *a, **kw)

    app.store.advance_unit = spy
    job = app.start_prepass_job(pb.StartPrepassJobRequest(dataset_id="synth"))
    done = job_pb(await asyncio.wait_for(app.jobs.wait(job.id), 60))
    await app.close()
    assert done.total == 5  # what the seeded 7-image generation keeps in its train split
    return done, peak, seen, progress


@pytest.mark.parametrize("in_flight", [1, 3])
async def test_images_in_flight_are_bounded_and_all_done(tmp_path, data_root, in_flight):
    job, peak, seen, progress = await run_job(tmp_path, data_root, in_flight)
    assert job.state == pb.JOB_STATE_SUCCEEDED
    assert peak == in_flight  # 5 images: the bound is reached and never passed
    assert len(seen) == len(set(seen)) == 5
    assert progress == list(range(1, 6))  # progress counts up by one, in order
    assert job.done == job.total == 5
    summary = job.result.prepass
    assert summary.images == 5 and [(c.key, c.count) for c in summary.candidates_by_class] == [("circle", 5)]


async def test_a_failing_image_fails_the_job_and_stops_the_rest(tmp_path, data_root):
    job, peak, seen, _ = await run_job(tmp_path, data_root, 3, fail_on="000002.png")
    assert job.state == pb.JOB_STATE_FAILED
    assert len(seen) < 5
