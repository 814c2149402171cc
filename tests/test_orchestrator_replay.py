"""Replay(run_id) against the live local stack (all four model services in-process, tiny models).

A prepass of a dataset image replays identical (same run_id, same candidates) and the replay really ran
the models again (the detector and SAM3 served new calls; the cache took no write); an unknown run id is
NOT_FOUND; a changed glossary, a glossary that is gone, another default detector, and an image the
client held all refuse with FAILED_PRECONDITION naming what changed; with the client's bytes the replay
runs. The stack's models directory is a copy (hard links, the registry a real copy), because this
module changes the detector's default.
"""

from __future__ import annotations

import os
import shutil

import grpc
import pytest
import pytest_asyncio
from stack_fixture import (
    RICH,
    Stack,
    build_models,
    expect_error,
    make_datasets,
    orchestrator_client,
    rpc_counts,
    start_stack,
)

from tator_core.client import ServiceClient, image_ref
from tator_core.gen.tator.common.v1 import models_pb2, models_pb2_grpc
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
from tator_core.registry import add_entry
from tator_fixtures import YOLO_FIXTURE

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.stack]

@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory, stack_models) -> Stack:
    home = tmp_path_factory.mktemp("replay-home")
    make_datasets(home / "data")
    build_models(stack_models, home / "data" / "synth")
    models = tmp_path_factory.mktemp("replay-models") / "models"
    shutil.copytree(stack_models, models, copy_function=os.link)
    (models / "registry.yaml").unlink()  # edited below: a file of its own, not a link to the shared one
    shutil.copyfile(stack_models / "registry.yaml", models / "registry.yaml")
    s = await start_stack(home, models, models_ttl_s=0.0)
    yield s
    await s.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def orch(stack: Stack) -> ServiceClient:
    async with orchestrator_client(stack) as client:
        yield client


def dataset_image(stack: Stack, i: int) -> str:
    return stack.app.datasets.get("synth").items()[i].name


async def test_replay_of_a_dataset_image_is_identical_and_runs_the_models_again(stack: Stack, orch: ServiceClient):
    req = pb.PrepassRequest(dataset_id="synth", dataset_image=dataset_image(stack, 0), config=pb.PrepassConfig(**RICH))
    res = (await orch.call("Prepass", req)).result
    assert not res.cache_hit and res.candidates and len(res.run_id) == 64
    hit = (await orch.call("Prepass", req)).result
    assert hit.cache_hit and hit.run_id == res.run_id  # a lookup now would not run a thing
    calls, cache = rpc_counts(), stack.app.store.cache_stats()
    records = stack.app.store.replay_count()

    out = await orch.call("Replay", pb.ReplayRequest(run_id=res.run_id))
    assert out.identical and out.new_run_id == out.run_id == res.run_id
    assert out.stored_candidates == out.replayed_candidates == len(res.candidates)
    assert out.difference_count == 0 and not out.differences and out.stored_digest == out.replayed_digest
    assert (out.image_sha256, out.image_name, out.dataset_id) == (res.image_sha256, res.image_name, "synth")
    assert out.stored_time.seconds > 0
    # it ran the models again (not the cache): new Detect / SegmentText / SegmentExemplars / Classify calls
    after = rpc_counts()
    for service, method in (("detector", "Detect"), ("sam3", "SegmentText"), ("sam3", "SegmentExemplars"),
                            ("classifier", "Classify")):
        assert after.get((service, method), 0) > calls.get((service, method), 0), (service, method)
    stages = {pb.PrepassStage.Name(s.stage): s for s in out.stages}
    assert stages["PREPASS_STAGE_DETECTORS"].calls >= 1 and "PREPASS_STAGE_CACHE" not in stages
    # and wrote nothing: no cache write, no new replay record
    assert stack.app.store.cache_stats() == cache and stack.app.store.replay_count() == records


async def test_replay_of_an_unknown_or_malformed_run_id(orch: ServiceClient):
    err = await expect_error(orch.call("Replay", pb.ReplayRequest(run_id="0" * 64)), grpc.StatusCode.NOT_FOUND,
                             "NOT_FOUND")
    assert "0" * 64 in err.message
    err = await expect_error(orch.call("Replay", pb.ReplayRequest(run_id="not-a-run")),
                             grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD")
    assert "run_id" in str(err)


async def test_replay_refuses_a_changed_or_deleted_glossary(stack: Stack, orch: ServiceClient):
    await orch.call("PutGlossary", pb.PutGlossaryRequest(name="replay shapes", text='{"circle": ["orb"]}'))
    req = pb.PrepassRequest(dataset_id="synth", dataset_image=dataset_image(stack, 1), glossary_name="replay shapes")
    res = (await orch.call("Prepass", req)).result
    assert (await orch.call("Replay", pb.ReplayRequest(run_id=res.run_id))).identical
    await orch.call("PutGlossary", pb.PutGlossaryRequest(name="replay shapes", text='{"circle": ["ball"]}'))
    before = rpc_counts()
    err = await expect_error(orch.call("Replay", pb.ReplayRequest(run_id=res.run_id)),
                             grpc.StatusCode.FAILED_PRECONDITION, "REPLAY_INPUT_CHANGED")
    assert "glossary" in err.metadata["changed"].split(",") and "glossary 'replay shapes' changed" in err.message
    assert {k: v for k, v in rpc_counts().items() if k[1] != "ListModels"} == \
        {k: v for k, v in before.items() if k[1] != "ListModels"}  # refused before any model ran
    await orch.call("DeleteGlossary", pb.DeleteGlossaryRequest(name="replay shapes"))
    err = await expect_error(orch.call("Replay", pb.ReplayRequest(run_id=res.run_id)),
                             grpc.StatusCode.FAILED_PRECONDITION, "REPLAY_INPUT_CHANGED")
    assert err.metadata["changed"] == "glossary" and "replay shapes" in err.message


async def test_replay_of_a_client_image_needs_its_bytes(stack: Stack, orch: ServiceClient):
    import io

    from tator_fixtures.synth import render_scene

    image, _ = render_scene(9191, 0)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    data = buf.getvalue()
    res = (await orch.call("Prepass", pb.PrepassRequest(image=image_ref(data), dataset_id="synth",
                                                        config=pb.PrepassConfig(**RICH)))).result
    record = stack.app.store.replay_get(res.run_id)
    assert data not in record.request and record.image_name == ""  # the hash is kept, not the bytes
    assert pb.PrepassRequest.FromString(record.request).image.sha256 == res.image_sha256
    err = await expect_error(orch.call("Replay", pb.ReplayRequest(run_id=res.run_id)),
                             grpc.StatusCode.FAILED_PRECONDITION, "IMAGE_NOT_CACHED")
    assert res.image_sha256 in err.message
    await expect_error(orch.call("Replay", pb.ReplayRequest(run_id=res.run_id, image_data=data + b"x")),
                       grpc.StatusCode.INVALID_ARGUMENT, "IMAGE_SHA_MISMATCH")
    out = await orch.call("Replay", pb.ReplayRequest(run_id=res.run_id, image_data=data))
    assert out.identical and out.new_run_id == res.run_id and out.replayed_candidates == len(res.candidates) > 0


async def test_a_job_image_run_with_a_recipe_replays_and_an_edited_recipe_refuses(stack: Stack, orch: ServiceClient):
    recipe = pb.Recipe(id="replay-recipe", name="replay", config=pb.PrepassConfig(**RICH),
                       glossary='{"circle": ["orb"], "square": ["block"], "triangle": ["wedge"]}')
    await orch.call("PutRecipe", pb.PutRecipeRequest(recipe=recipe))
    job = (await orch.call("StartPrepassJob", pb.StartPrepassJobRequest(
        dataset_id="fuzz_pack", recipe_id="replay-recipe", max_images=1, refresh=True))).job
    async for ev in orch.stream("WatchJob", pb.WatchJobRequest(job_id=job.id)):
        last = ev.job
    assert last.state == pb.JOB_STATE_SUCCEEDED, last
    with stack.app.store.read() as t:  # the job's image left a record (jobs do not return run ids)
        [(run_id, name)] = t.q("SELECT run_id, image_name FROM replays WHERE dataset_id = ?", ("fuzz_pack",)).fetchall()
    record = stack.app.store.replay_get(run_id)
    stored = pb.PrepassRequest.FromString(record.request)
    assert (stored.dataset_id, stored.dataset_image, stored.recipe_id) == ("fuzz_pack", name, "replay-recipe")
    out = await orch.call("Replay", pb.ReplayRequest(run_id=run_id))
    assert out.identical and out.new_run_id == run_id and out.image_name == name
    recipe.config.detector_conf = 0.5  # the recipe the job ran with is edited afterwards
    await orch.call("PutRecipe", pb.PutRecipeRequest(recipe=recipe))
    err = await expect_error(orch.call("Replay", pb.ReplayRequest(run_id=run_id)),
                             grpc.StatusCode.FAILED_PRECONDITION, "REPLAY_INPUT_CHANGED")
    assert err.metadata["changed"] == "config" and "detector_conf: 0.02 -> 0.5" in err.message, err


@pytest.mark.skipif(not YOLO_FIXTURE.is_file(), reason="the committed YOLO fixture is absent")
async def test_replay_refuses_another_default_detector(stack: Stack, orch: ServiceClient):
    req = pb.PrepassRequest(dataset_id="synth", dataset_image=dataset_image(stack, 2), config=pb.PrepassConfig(**RICH))
    res = (await orch.call("Prepass", req)).result
    assert "yolo-synth" in res.model_versions
    add_entry(stack.registry, {"id": "yolo-replay", "family": "yolo", "path": "yolo-synth/best.pt",
                               "labelmap": ["circle", "square", "triangle"], "options": {"imgsz": 160}})
    manage = ServiceClient(stack.servers["detector"].address, models_pb2_grpc.ModelManagementServiceStub,
                           timeout_s=120)
    try:
        await manage.call("SetDefaultModel", models_pb2.SetDefaultModelRequest(model_id="yolo-replay"))
        err = await expect_error(orch.call("Replay", pb.ReplayRequest(run_id=res.run_id)),
                                 grpc.StatusCode.FAILED_PRECONDITION, "REPLAY_INPUT_CHANGED")
        assert err.metadata["changed"] == "models", err
        assert "yolo-synth" in err.message and "no longer used" in err.message and "yolo-replay" in err.message
    finally:
        await manage.call("SetDefaultModel", models_pb2.SetDefaultModelRequest(model_id="yolo-synth"))
        await manage.close()
    # the same models as the run again: replayable and identical
    assert (await orch.call("Replay", pb.ReplayRequest(run_id=res.run_id))).identical


async def test_a_replay_that_differs_lists_typed_differences_and_the_cli_exit_codes(stack: Stack, orch: ServiceClient):
    import asyncio
    import json

    from typer.testing import CliRunner

    from svc_orchestrator.prepass.replay import candidates_digest
    from tator_cli.main import app

    req = pb.PrepassRequest(dataset_id="synth", dataset_image=dataset_image(stack, 3), config=pb.PrepassConfig(**RICH))
    res = (await orch.call("Prepass", req)).result
    assert len(res.candidates) >= 3
    runner, addr = CliRunner(), ["--address", stack.orchestrator.address]

    async def cli(*args: str):
        return await asyncio.to_thread(runner.invoke, app, list(args))  # the CLI runs its own event loop

    out = await cli("replay", res.run_id, *addr)
    assert out.exit_code == 0 and "identical" in out.stdout, out.output
    out = await cli("replay", "0" * 64, *addr)
    assert out.exit_code == 2 and "NOT_FOUND" in out.output, out.output

    # The record of a run whose backend was not deterministic: its candidates are not what this stack gives.
    # One box moved, one score changed, one candidate never there.
    stored = list(res.candidates)
    moved, rescored = pb.Candidate(), pb.Candidate()
    moved.CopyFrom(stored[0])
    moved.box.x1 += 1.0
    rescored.CopyFrom(stored[1])
    rescored.score = 0.123
    tampered = [moved, rescored, *stored[3:]]
    with stack.app.store.tx() as t:
        t.q("UPDATE replays SET candidates = ?, candidates_digest = ? WHERE run_id = ?",
            (pb.PrepassResult(candidates=tampered).SerializeToString(), candidates_digest(tampered), res.run_id))
    diff = await orch.call("Replay", pb.ReplayRequest(run_id=res.run_id, max_differences=2))
    assert not diff.identical and diff.new_run_id == res.run_id  # same inputs, other candidates
    assert (diff.stored_candidates, diff.replayed_candidates) == (len(stored) - 1, len(stored))
    assert diff.difference_count >= 3 and len(diff.differences) == 2  # capped at max_differences
    first, second = diff.differences
    assert first.kind == pb.REPLAY_DIFFERENCE_KIND_BOX and "box" in first.fields
    assert (first.stored.box.x1, first.replayed.box.x1) == (moved.box.x1, stored[0].box.x1)
    assert second.kind == pb.REPLAY_DIFFERENCE_KIND_SCORE and "score" in second.fields
    assert second.stored.score == pytest.approx(0.123) and second.replayed.score == stored[1].score
    everything = await orch.call("Replay", pb.ReplayRequest(run_id=res.run_id, max_differences=1000))
    extra = [d for d in everything.differences if d.kind == pb.REPLAY_DIFFERENCE_KIND_EXTRA]
    assert [d.replayed for d in extra] == [stored[2]]
    out = await cli("replay", res.run_id, "--json", *addr)
    assert out.exit_code == 1, out.output
    doc = json.loads(out.stdout)
    assert not doc.get("identical", False)  # proto JSON leaves a false bool out
    assert [d["kind"] for d in doc["differences"][:2]] == ["REPLAY_DIFFERENCE_KIND_BOX", "REPLAY_DIFFERENCE_KIND_SCORE"]
    out = await cli("replay", res.run_id, *addr)
    assert out.exit_code == 1 and "differs" in out.stdout and "box" in out.stdout, out.output
