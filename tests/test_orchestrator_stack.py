"""The orchestrator against the live local stack (all four model services in-process, tiny models).

Covers: catalogs, candidates from >= 3 sources with provenance, a second call answered from the
cache with identical output and no model call, a glossary change missing the cache (and the cache
meta holding the glossary text and hash), each service receiving the image bytes once, jobs with
progress/cancel, and a model service killed mid-job: the job fails naming the stage, the cache
holds only complete entries, and a rerun after the restart succeeds.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections import Counter
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from stack_fixture import (
    MODEL_SERVICES,
    RICH,
    Stack,
    expect_error,
    images_decoded,
    orchestrator_client,
    rpc_counts,
    start_stack,
)

from svc_orchestrator.clients import ServiceClients
from tator_core.client import ServiceClient, image_ref
from tator_core.enums import short_name, source_name
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.stack]

MODEL_METHODS = {"Detect", "SegmentText", "SegmentExemplars", "Classify", "Caption", "ExpandSynonyms", "Embed"}


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def stack(tmp_path_factory, stack_models) -> Stack:
    models = stack_models
    s = await start_stack(tmp_path_factory.mktemp("home"), models)
    yield s
    await s.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def orch(stack: Stack) -> ServiceClient:
    async with orchestrator_client(stack) as client:
        yield client


def stage_name(value: int) -> str:
    return short_name(pb.PrepassStage, value)


def scene_png(seed: int, index: int = 0) -> bytes:
    """A synthetic scene no service has seen yet."""
    from tator_fixtures.synth import render_scene

    image, _ = render_scene(seed, index)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def model_calls() -> dict:
    return {k: v for k, v in rpc_counts().items() if k[1] in MODEL_METHODS}


# --- catalogs --------------------------------------------------------------------------------------

async def test_catalogs_list_datasets_and_models(orch: ServiceClient):
    datasets = {d.id: d for d in (await orch.call("ListDatasets", pb.ListDatasetsRequest())).datasets}
    synth = datasets["synth"]
    assert synth.layout == "yolo" and list(synth.labelmap) == ["circle", "square", "triangle"]
    assert synth.image_count == sum(synth.images_per_split.values()) > 0 and synth.has_ground_truth
    assert synth.annotation_count > 0 and len(synth.glossary_hash) == 64 and "disc" in synth.glossary
    assert datasets["fuzz_pack"].image_count == 4
    models = await orch.call("ListModels", pb.ListModelsRequest())
    by_service = {s.service: s for s in models.services}
    assert set(by_service) == set(MODEL_SERVICES)
    for s in by_service.values():
        assert s.health == pb.SERVICE_HEALTH_SERVING and s.models and all(m.version for m in s.models if m.state == 4), s
    # Two models a page: the pages together hold every (service, model) once, in the same order.
    paged, token = [], ""
    while True:
        page = await orch.call("ListModels", pb.ListModelsRequest(page_size=2, page_token=token))
        assert sum(len(s.models) for s in page.services) <= 2
        paged += [(s.service, m.id) for s in page.services for m in s.models]
        token = page.next_page_token
        if not token:
            break
    assert not models.next_page_token  # the default page (50) holds the test stack's models
    assert paged == [(s.service, m.id) for s in models.services for m in s.models]


async def test_list_models_reports_a_down_service_as_unreachable():
    clients = ServiceClients({s: "127.0.0.1:1" for s in MODEL_SERVICES}, health_timeout_s=1.0)
    from svc_orchestrator.convert import list_models

    resp = await list_models(clients)
    assert [s.health for s in resp.services] == [pb.SERVICE_HEALTH_UNREACHABLE] * 4
    await clients.close()


# --- prepass ---------------------------------------------------------------------------------------

async def test_prepass_sources_provenance_and_wire_economy(orch: ServiceClient):
    data = scene_png(seed=4242)
    decoded = {s: images_decoded(s) for s in ("detector", "sam3", "classifier")}
    req = pb.PrepassRequest(image=image_ref(data), dataset_id="synth", config=pb.PrepassConfig(**RICH))
    res = (await orch.call("Prepass", req)).result
    assert not res.cache_hit and res.width > 0 and res.height > 0 and len(res.cache_key) == 64
    sources = Counter(source_name(s) for c in res.candidates for s in c.sources)
    assert len(sources) >= 3, sources
    atoms = {a.atom_id: a for a in res.atoms}
    assert len(atoms) == len(res.atoms)
    assert {a.stage for a in res.atoms} == {pb.PREPASS_STAGE_DETECTORS, pb.PREPASS_STAGE_SAM3_TEXT,
                                            pb.PREPASS_STAGE_SAM3_SIMILARITY}
    for a in res.atoms:  # detectors run full frame and tiles, SAM3 full frame and windows
        assert a.pass_kind in ((pb.ATOM_PASS_FULL, pb.ATOM_PASS_TILED) if a.stage == pb.PREPASS_STAGE_DETECTORS
                               else (pb.ATOM_PASS_FULL, pb.ATOM_PASS_WINDOWED)), a
    for cand in res.candidates:
        members = [atoms[i] for i in cand.atom_ids]
        assert members and list(cand.sources) == sorted({m.detection.source for m in members})
        assert [s.source for s in cand.source_scores] == list(cand.sources)
        for ss in cand.source_scores:
            assert ss.score == pytest.approx(max(m.detection.score for m in members if m.detection.source == ss.source))
        assert cand.score == pytest.approx(max(s.score for s in cand.source_scores))
        assert cand.source_primary in cand.sources and cand.label in ("circle", "square", "triangle")
        assert len(cand.probabilities) == len(res.classifier_classes) and sum(cand.probabilities) == \
            pytest.approx(1.0, abs=1e-3) or cand.classifier_error
    assert set(res.model_versions) >= {"sam3-tiny", "synth-clip-head", "clip-tiny", "rfdetr-nano"}
    # wire economy: the bytes reached each service once; similarity sent the sha only
    stages = {stage_name(s.stage): s for s in res.stages}
    assert [stage_name(s.stage) for s in res.stages] == ["synonyms", "detectors", "sam3_text", "dedupe", "sam3_similarity",
                                             "dedupe2", "classifier", "caption"]
    assert stages["detectors"].image_bytes_sent == len(data)
    assert stages["sam3_text"].image_bytes_sent == len(data)
    assert stages["sam3_similarity"].ran and stages["sam3_similarity"].image_bytes_sent == 0
    assert stages["classifier"].image_bytes_sent == len(data)
    assert stages["sam3_similarity"].cache_hits >= 1  # SAM3 reused the vision embedding of the text stage
    # cost both ways: every stage that called a service sent its request messages (the image inside them when
    # it went) and received the responses; the in-process stages cost no wire bytes
    for s in res.stages:
        if s.calls:
            assert s.bytes_sent > s.image_bytes_sent and s.bytes_received > 0, s
        else:
            assert s.bytes_sent == s.bytes_received == 0, s
    assert stages["detectors"].bytes_received > 0 and stages["dedupe"].calls == 0 and stages["dedupe"].ran
    assert stages["sam3_similarity"].bytes_sent < len(data)  # exemplar boxes and the sha, not the image
    assert not res.HasField("original_cost")  # computed here: no other run to report
    for service, before in decoded.items():
        assert images_decoded(service) - before == 1, service
    # a refresh reruns every stage without sending the bytes again
    again = (await orch.call("Prepass", pb.PrepassRequest(image=image_ref(data), dataset_id="synth",
                                                          config=pb.PrepassConfig(**RICH), refresh=True))).result
    assert not again.cache_hit and sum(s.image_bytes_sent for s in again.stages) == 0
    assert all(0 < s.bytes_sent < len(data) for s in again.stages if s.calls)  # the requests without the image
    assert again.candidates == res.candidates
    # the same inputs run again: the same run identity (and, above, the same candidates)
    assert len(res.run_id) == 64 and again.run_id == res.run_id


async def test_second_call_is_a_cache_hit_with_identical_output(stack: Stack, orch: ServiceClient):
    req = pb.PrepassRequest(dataset_id="synth", dataset_image=stack.app.datasets.get("synth").items()[0].name,
                            config=pb.PrepassConfig(**RICH))
    first = (await orch.call("Prepass", req)).result
    before = model_calls()
    second = (await orch.call("Prepass", req)).result
    assert model_calls() == before  # no model service did any work
    assert second.cache_hit and second.cache_key == first.cache_key
    # the hit reports its own cost (a store lookup, no model-service RPC, no wire bytes) and keeps the
    # computing run's stages as original_cost
    [hit] = second.stages
    assert (stage_name(hit.stage), hit.ran, hit.cache_hits, hit.calls, hit.bytes_sent, hit.bytes_received) == \
        ("cache", True, 1, 0, 0, 0)
    assert 0 < hit.duration.ToNanoseconds() < sum(s.duration.ToNanoseconds() for s in first.stages)
    assert list(second.original_cost.stages) == list(first.stages)
    assert second.run_id == first.run_id  # the hit names the run that computed what it returns
    assert sum(s.bytes_sent for s in second.original_cost.stages) > 0
    second.cache_hit = first.cache_hit
    del second.stages[:]
    second.stages.extend(first.stages)
    second.ClearField("original_cost")
    assert second == first
    # the bytes alone are enough to find it again, and a sha-only ref is answered from the cache too
    data = stack.app.datasets.get("synth").items()[0].path.read_bytes()
    by_sha = (await orch.call("Prepass", pb.PrepassRequest(image=image_ref(data, with_bytes=False),
                                                           dataset_id="synth", config=pb.PrepassConfig(**RICH)))).result
    assert by_sha.cache_hit and by_sha.candidates == first.candidates


async def test_glossary_change_misses_the_cache_and_meta_records_it(stack: Stack, orch: ServiceClient):
    item = stack.app.datasets.get("synth").items()[1].name
    base = (await orch.call("Prepass", pb.PrepassRequest(dataset_id="synth", dataset_image=item))).result
    text = '{"circle": ["orb", "ball"], "square": ["block"]}'  # triangle has no terms: Qwen expands it
    g = (await orch.call("PutGlossary", pb.PutGlossaryRequest(name="alt shapes", text=text))).glossary
    alt = (await orch.call("Prepass", pb.PrepassRequest(dataset_id="synth", dataset_image=item,
                                                        glossary_name="alt shapes"))).result
    assert not alt.cache_hit and alt.glossary_hash == g.hash != base.glossary_hash
    assert alt.cache_key != base.cache_key and alt.run_id != base.run_id  # another glossary: another run
    stages = {stage_name(s.stage): s for s in alt.stages}
    assert stages["synonyms"].ran and stages["synonyms"].calls + stages["synonyms"].cache_hits == 1
    assert "qwen-tiny" in alt.model_versions and "qwen-tiny" not in base.model_versions
    base, gloss = pb.PROMPT_ORIGIN_KIND_BASE, pb.PROMPT_ORIGIN_KIND_GLOSSARY
    assert [(p.kind, p.text) for p in alt.prompts["circle"].prompts] == [(base, "circle"), (gloss, "orb"),
                                                                         (gloss, "ball")]
    # triangle had no glossary terms: its expansions are Qwen's
    assert {p.kind for p in alt.prompts["triangle"].prompts} <= {base, pb.PROMPT_ORIGIN_KIND_QWEN}
    # every SAM3 text atom names the prompts that found it, each one of its label's prompts; other atoms none
    for a in alt.atoms:
        if a.stage == pb.PREPASS_STAGE_SAM3_TEXT:
            # every prompt of a merged detection, each with its origin, in the detection's order
            assert [p.text.lower() for p in a.prompts] == [t.text.lower() for t in a.detection.prompts]
            assert all(p in alt.prompts[a.detection.label].prompts for p in a.prompts)
        else:
            assert not a.prompts
    meta = stack.app.cache.meta_for(alt.cache_key)
    assert meta["glossary_text"] == g.text and meta["glossary_hash"] == g.hash
    assert meta["labelmap"] == ["circle", "square", "triangle"] and meta["config"]
    assert meta["versions"] == dict(alt.model_versions) and meta["config_hash"] == alt.config_hash


async def test_qwen_synonym_warnings_come_with_the_prepass_that_called(stack: Stack, orch: ServiceClient):
    # A glossary of its own (no other test warms the synonym cache with it): square and triangle have no terms.
    g = (await orch.call("PutGlossary", pb.PutGlossaryRequest(name="circle only", text='{"circle": ["disc"]}'))).glossary
    items = stack.app.datasets.get("synth").items()
    first, later = [(await orch.call("Prepass", pb.PrepassRequest(
        dataset_id="synth", dataset_image=item.name, glossary_name=g.name))).result for item in items[2:4]]
    # What Qwen itself says to the request the orchestrator sends (the prepass defaults: 10 terms, seed 0).
    clients = ServiceClients({s: stack.addresses()[s] for s in MODEL_SERVICES})
    try:
        direct, _ = await clients.qwen.expand_synonyms(["square", "triangle"], g.text, max_terms=10,
                                                       model_id="qwen-tiny", seed=0)
    finally:
        await clients.close()
    assert direct.warnings, "the random tiny Qwen gives no usable terms, and says so"

    def synonym_notes(res: pb.PrepassResult) -> list:
        return [(w.warning.code, w.warning.subject, w.warning.message) for w in res.warnings
                if w.stage == pb.PREPASS_STAGE_SYNONYMS]

    stages = {stage_name(s.stage): s for s in first.stages}
    assert (stages["synonyms"].calls, stages["synonyms"].cache_hits) == (1, 0)
    assert synonym_notes(first) == [(w.code, w.subject, w.message) for w in direct.warnings]
    # the next image of the same labels and glossary takes the terms from the synonym cache, without the notes
    stages = {stage_name(s.stage): s for s in later.stages}
    assert (stages["synonyms"].calls, stages["synonyms"].cache_hits) == (0, 1)
    assert not later.cache_hit and synonym_notes(later) == []


@pytest.mark.parametrize("windowed", [False, True])
async def test_caption_stage_runs_when_enabled(orch: ServiceClient, windowed: bool):
    cfg = pb.PrepassConfig(enable_caption=True, caption_windowed=windowed, caption_max_tokens=8,
                           enable_sam3_similarity=False)
    res = (await orch.call("Prepass", pb.PrepassRequest(image=image_ref(scene_png(seed=31)), dataset_id="synth",
                                                        config=cfg))).result
    stage = {stage_name(s.stage): s for s in res.stages}["caption"]
    assert stage.ran and stage.calls == 1 and "qwen-tiny" in res.model_versions
    # the random tiny Qwen writes noise: the service either returns text or says why it refused it
    assert res.caption.caption or res.caption.degenerate_reason
    assert bool(res.caption.windows) == windowed
    # Qwen's Caption warnings come along with the caption stage: 8 tokens never finish the random model's text
    notes = [w.warning for w in res.warnings if w.stage == pb.PREPASS_STAGE_CAPTION]
    assert {w.code for w in notes} <= {"windows_ignored_in_full_mode", "repetition_cut", "max_new_tokens_reached"}
    assert "max_new_tokens_reached" in {w.code for w in notes} and all(w.message for w in notes)


async def test_prepass_errors_have_their_statuses(orch: ServiceClient):
    png = scene_png(seed=7)
    await expect_error(orch.call("Prepass", pb.PrepassRequest(image=image_ref(png), dataset_id="nope")),
                       grpc.StatusCode.NOT_FOUND, "DATASET_NOT_FOUND")
    await expect_error(orch.call("Prepass", pb.PrepassRequest(dataset_id="synth", dataset_image="no/such.png")),
                       grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
    await expect_error(orch.call("Prepass", pb.PrepassRequest(image=image_ref(b"not an image"), dataset_id="synth")),
                       grpc.StatusCode.INVALID_ARGUMENT, "IMAGE_INVALID")
    await expect_error(orch.call("Prepass", pb.PrepassRequest(image=image_ref(scene_png(seed=8), with_bytes=False),
                                                              dataset_id="synth")),
                       grpc.StatusCode.FAILED_PRECONDITION, "IMAGE_NOT_CACHED")
    bad = pb.PrepassConfig(detector_full=False, detector_sahi=False)
    await expect_error(orch.call("Prepass", pb.PrepassRequest(image=image_ref(png), dataset_id="synth", config=bad)),
                       grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD")
    await expect_error(orch.call("Prepass", pb.PrepassRequest(image=image_ref(png), dataset_id="synth",
                                                              config=pb.PrepassConfig(detector_conf=3))),
                       grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD")
    await expect_error(orch.call("Prepass", pb.PrepassRequest(image=image_ref(png), dataset_id="synth",
                                                              config=pb.PrepassConfig(rfdetr_id="nope"))),
                       grpc.StatusCode.NOT_FOUND, "MODEL_NOT_FOUND")
    await expect_error(orch.call("Prepass", pb.PrepassRequest(image=image_ref(png), dataset_id="synth",
                                                              glossary_name="missing")),
                       grpc.StatusCode.NOT_FOUND, "NOT_FOUND")


async def test_glossary_and_recipe_rpcs(orch: ServiceClient):
    put = (await orch.call("PutGlossary", pb.PutGlossaryRequest(name=" lib  one ", text="circle: ring, hoop"))).glossary
    assert put.name == "lib one" and list(put.terms["circle"].terms) == ["ring", "hoop"]
    names = [g.name for g in (await orch.call("ListGlossaries", pb.ListGlossariesRequest())).glossaries]
    assert "lib one" in names
    assert (await orch.call("GetGlossary", pb.GetGlossaryRequest(name="lib one"))).glossary == put
    for bad in ("..", "a/b", "   "):
        await expect_error(orch.call("PutGlossary", pb.PutGlossaryRequest(name=bad, text="circle: x")),
                           grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD")
    await orch.call("DeleteGlossary", pb.DeleteGlossaryRequest(name="lib one"))
    await expect_error(orch.call("GetGlossary", pb.GetGlossaryRequest(name="lib one")),
                       grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
    recipe = pb.Recipe(name="no windows")
    recipe.config.CopyFrom(pb.PrepassConfig(sam3_text_window_extension=False, similarity_window_extension=False))
    saved = (await orch.call("PutRecipe", pb.PutRecipeRequest(recipe=recipe))).recipe
    exported = await orch.call("ExportRecipe", pb.ExportRecipeRequest(id=saved.id))
    imported = await orch.call("ImportRecipe", pb.ImportRecipeRequest(archive=exported.archive))
    assert imported.recipe.config == saved.config and imported.notice
    await expect_error(orch.call("ImportRecipe", pb.ImportRecipeRequest(archive=b"PK\x03\x04junk")),
                       grpc.StatusCode.INVALID_ARGUMENT, "ARCHIVE_INVALID")
    res = (await orch.call("Prepass", pb.PrepassRequest(image=image_ref(scene_png(seed=9)), dataset_id="synth",
                                                        recipe_id=saved.id))).result
    assert {a.pass_kind for a in res.atoms if a.stage != pb.PREPASS_STAGE_DETECTORS} <= {pb.ATOM_PASS_FULL}


async def test_tier1_steps_pass_against_the_stack(stack: Stack):
    import random

    from tator_fixtures import FUZZ_PACK_DIR, YOLO_FIXTURE
    from tator_fixtures.fuzz_pack import load_fuzz_pack
    from tator_fixtures.regress.registry import StepContext, registered_steps

    steps = [s for s in registered_steps() if s.name.startswith("orchestrator.")]
    assert len(steps) == 7
    pack = load_fuzz_pack(FUZZ_PACK_DIR)
    for spec in steps:
        if spec.name.endswith("sam3_similarity_only") and not YOLO_FIXTURE.is_file():
            continue  # its exemplars come from the trained detector; the random RF-DETR finds nothing
        ctx = StepContext(addresses=stack.addresses(), fuzz_pack=pack, rng=random.Random(f"0:{spec.name}"),
                          deadline_s=spec.deadline_s, models_dir=stack.registry.parent, data_root=stack.data_root)
        out = await spec.fn(ctx)
        assert out["config_hash"] and set(out) <= {"detections", "classes", "sources", "cache", "hashes",
                                                   "config_hash", "extra"}, (spec.name, out)
        if spec.name.endswith("cache_reuse"):
            assert out["cache"] == {"hits": 1}


# --- jobs -------------------------------------------------------------------------------------------

async def _watch(orch: ServiceClient, job_id: str) -> list[pb.WatchJobResponse]:
    return [ev async for ev in orch.stream("WatchJob", pb.WatchJobRequest(job_id=job_id))]


async def test_prepass_job_progress_summary_and_cancel(stack: Stack, orch: ServiceClient):
    job = (await orch.call("StartPrepassJob", pb.StartPrepassJobRequest(dataset_id="fuzz_pack"))).job
    assert job.kind == pb.JOB_KIND_PREPASS and job.total == 4
    events = await _watch(orch, job.id)
    final = events[-1].job
    assert final.state == pb.JOB_STATE_SUCCEEDED, final
    done = [ev.job.done for ev in events if ev.image]
    assert done == [1, 2, 3, 4] and all(ev.job.eta.ToNanoseconds() >= 0 for ev in events)
    assert not final.HasField("eta") and final.update_time.ToNanoseconds() >= final.create_time.ToNanoseconds() > 0
    summary = final.result.prepass
    assert final.result.WhichOneof("result") == "prepass"
    assert summary.images == 4 and summary.config_hash and {stage_name(s.stage) for s in summary.stages} >= {"detectors"}
    totals = {stage_name(s.stage): s for s in summary.stages}
    # (the detector may hold these images from earlier tests: then only the sha went, image_bytes_sent 0)
    assert totals["detectors"].bytes_sent > totals["detectors"].image_bytes_sent >= 0
    assert totals["detectors"].bytes_received > 0 and totals["detectors"].duration.ToNanoseconds() > 0
    assert sum(c.count for c in summary.candidates_by_class) == summary.candidates
    assert (await orch.call("GetJob", pb.GetJobRequest(job_id=job.id))).job.state == pb.JOB_STATE_SUCCEEDED
    assert job.id in [j.id for j in (await orch.call("ListJobs", pb.ListJobsRequest(page_size=5))).jobs]
    # a rerun is all cache hits
    rerun = (await orch.call("StartPrepassJob", pb.StartPrepassJobRequest(dataset_id="fuzz_pack"))).job
    final = (await _watch(orch, rerun.id))[-1].job
    # ... and its stage totals are what the rerun cost: four cache lookups, no model-service bytes
    assert final.result.prepass.cache_hits == 4
    assert [(stage_name(s.stage), s.bytes_sent, s.bytes_received) for s in final.result.prepass.stages] == \
        [("cache", 0, 0)]
    assert final.result.prepass.stages[0].duration.ToNanoseconds() > 0  # the four lookups took some time
    # cancel takes effect within one image
    job = (await orch.call("StartPrepassJob", pb.StartPrepassJobRequest(dataset_id="synth", refresh=True))).job
    seen = 0
    async for ev in orch.stream("WatchJob", pb.WatchJobRequest(job_id=job.id)):
        if ev.image and seen == 0:
            seen = ev.job.done
            await orch.call("CancelJob", pb.CancelJobRequest(job_id=job.id))
        last = ev.job
    assert last.state == pb.JOB_STATE_CANCELLED and last.done <= seen + 1 < last.total
    await expect_error(orch.call("GetJob", pb.GetJobRequest(job_id="job-missing")),
                       grpc.StatusCode.NOT_FOUND, "JOB_NOT_FOUND")


async def test_calibration_rpcs_are_wired(stack: Stack, orch: ServiceClient):
    await expect_error(orch.call("StartCalibration", pb.StartCalibrationRequest(dataset_id="nope")),
                       grpc.StatusCode.NOT_FOUND, "DATASET_NOT_FOUND")
    # guards run before any job exists
    jobs_before = len((await orch.call("ListJobs", pb.ListJobsRequest(page_size=1000))).jobs)
    no_clf = pb.CalibrationConfig(prepass=pb.PrepassConfig(enable_classifier=False))
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await orch.call("StartCalibration", pb.StartCalibrationRequest(dataset_id="synth", config=no_clf))
    assert exc.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION)
    assert len((await orch.call("ListJobs", pb.ListJobsRequest(page_size=1000))).jobs) == jobs_before
    # the stack's classifier head was trained on this dataset, so the leakage guard refuses it at the door
    cfg = pb.CalibrationConfig(prepass=pb.PrepassConfig(**RICH, enable_yolo=False))
    await expect_error(orch.call("StartCalibration", pb.StartCalibrationRequest(dataset_id="synth", config=cfg)),
                       grpc.StatusCode.FAILED_PRECONDITION, "TRAINING_DATA_OVERLAP")
    assert len((await orch.call("ListJobs", pb.ListJobsRequest(page_size=1000))).jobs) == jobs_before
    # forced past the guard (this test checks wiring, not metrics), a calibration job runs through the
    # orchestrator's environment and ends in a terminal state
    cfg.allow_training_overlap = True
    job = (await orch.call("StartCalibration", pb.StartCalibrationRequest(dataset_id="synth", config=cfg))).job
    assert job.kind == pb.JOB_KIND_CALIBRATION
    final = (await _watch(orch, job.id))[-1].job
    assert final.state in (pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED) and final.done > 0, final
    if final.state == pb.JOB_STATE_FAILED:
        await expect_error(orch.call("GetCalibrationReport", pb.GetCalibrationReportRequest(job_id=job.id)),
                           grpc.StatusCode.FAILED_PRECONDITION, "JOB_NOT_DONE")
    else:
        report = (await orch.call("GetCalibrationReport", pb.GetCalibrationReportRequest(job_id=job.id))).report
        assert report.dataset_id == "synth"
    prepass_job = next(j for j in (await orch.call("ListJobs", pb.ListJobsRequest())).jobs
                       if j.kind == pb.JOB_KIND_PREPASS)
    await expect_error(orch.call("GetCalibrationReport", pb.GetCalibrationReportRequest(job_id=prepass_job.id)),
                       grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
    await expect_error(orch.call("GetCalibrationReport", pb.GetCalibrationReportRequest(job_id="job-none")),
                       grpc.StatusCode.NOT_FOUND, "JOB_NOT_FOUND")
    item = stack.app.datasets.get("synth").items()[0].name
    await expect_error(orch.call("Prepass", pb.PrepassRequest(dataset_id="synth", dataset_image=item,
                                                              calibration_id=prepass_job.id)),
                       grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD")


async def test_cli_commands_against_the_stack(stack: Stack, tmp_path):
    from typer.testing import CliRunner

    from tator_cli.main import app

    addr = ["--address", stack.orchestrator.address]
    runner = CliRunner()

    async def cli(*args: str):
        # the CLI runs its own event loop: give it a thread while this loop keeps serving the stack
        return await asyncio.to_thread(runner.invoke, app, list(args))

    image = stack.data_root / "fuzz_pack" / "images" / "synth_000001.png"
    res = await cli("prepass", str(image), "--dataset", "fuzz_pack", "--no-windowed", "--json", *addr)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["image_sha256"] and {s["stage"] for s in doc["stages"]} >= {"PREPASS_STAGE_DETECTORS", "PREPASS_STAGE_SAM3_TEXT"}
    assert not any(a["pass_kind"] == "ATOM_PASS_WINDOWED" for a in doc.get("atoms", []))
    res = await cli("prepass", "--dataset", "fuzz_pack", "--max-images", "2", "--refresh", *addr)
    assert res.exit_code == 0, res.output
    assert "candidates per source" in res.stdout and "stage timings" in res.stdout
    res = await cli("datasets", *addr)
    assert res.exit_code == 0 and "synth" in res.stdout and "fuzz_pack" in res.stdout
    gfile = tmp_path / "g.json"
    gfile.write_text('{"circle": ["ring"]}')
    assert (await cli("glossary", "put", "cli one", str(gfile), *addr)).exit_code == 0
    res = await cli("glossary", "get", "cli one", "--json", *addr)
    assert res.exit_code == 0 and json.loads(res.stdout)["terms"]["circle"]["terms"] == ["ring"]
    assert "cli one" in (await cli("glossary", "list", *addr)).stdout
    assert (await cli("glossary", "delete", "cli one", *addr)).exit_code == 0
    res = await cli("glossary", "get", "cli one", *addr)
    assert res.exit_code == 1 and "NOT_FOUND" in res.output
    res = await cli("jobs", "--json", *addr)
    assert res.exit_code == 0 and json.loads(res.stdout)["jobs"]


async def test_demo_writes_an_overlay(stack: Stack, tmp_path):
    from PIL import Image

    from tator_cli.commands.demo import run_demo

    out = await asyncio.to_thread(lambda: asyncio.run(run_demo(stack.orchestrator.address, "fuzz_pack", tmp_path,
                                                               stack.data_root)))
    png = Path(out["overlay"])
    assert png.is_file() and Image.open(png).size[0] >= 128
    assert out["summary"]["images"] == 4 and out["summary"]["candidates_by_source"] is not None


async def test_demo_overlay_when_the_job_ends_before_the_watch(stack: Stack, tmp_path, monkeypatch):
    """A job that finishes before WatchJob starts replays only its final event, which names no image."""
    from tator_cli.commands import demo

    real_watch = demo.watch_with_progress

    async def late_watch(client, job_id, console, description="prepass", images=None):
        while (await client.call("GetJob", pb.GetJobRequest(job_id=job_id))).job.state in (pb.JOB_STATE_QUEUED, pb.JOB_STATE_RUNNING):
            await asyncio.sleep(0.05)
        return await real_watch(client, job_id, console, description, images=images)

    monkeypatch.setattr(demo, "watch_with_progress", late_watch)
    out = await asyncio.to_thread(lambda: asyncio.run(demo.run_demo(stack.orchestrator.address, "fuzz_pack",
                                                                    tmp_path, stack.data_root, max_images=2)))
    assert Path(out["overlay"]).is_file() and out["summary"]["images"] == 2


async def test_service_killed_mid_job_fails_the_stage_and_rerun_succeeds(stack: Stack, orch: ServiceClient):
    """Last in the file: it kills and restarts SAM3."""
    total = len(stack.app.datasets.get("synth").items())
    keys_before = set(stack.app.cache.keys())
    cfg = pb.PrepassConfig(**RICH, grid_cols=3)  # a config no other test used: every image is a miss
    job = (await orch.call("StartPrepassJob", pb.StartPrepassJobRequest(dataset_id="synth", config=cfg))).job
    killed = False
    async for ev in orch.stream("WatchJob", pb.WatchJobRequest(job_id=job.id)):
        if ev.image and not killed:
            await stack.kill_service("sam3")
            killed = True
        last = ev.job
    assert killed and last.state == pb.JOB_STATE_FAILED, last
    assert last.failed_stage in ("sam3_text", "sam3_similarity") and "sam3" in last.error
    assert 0 < last.done < total
    # nothing half-written: exactly the finished images are cached, each one complete
    new = set(stack.app.cache.keys()) - keys_before
    assert len(new) == last.done
    for key in new:
        res = stack.app.cache.get(key)
        assert {stage_name(s.stage) for s in res.stages if s.ran} >= {"detectors", "sam3_text", "dedupe", "classifier"}
    # ListModels shows the down service as UNREACHABLE, not an error
    health = {s.service: s.health for s in (await orch.call("ListModels", pb.ListModelsRequest())).services}
    assert health["sam3"] == pb.SERVICE_HEALTH_UNREACHABLE and health["detector"] == pb.SERVICE_HEALTH_SERVING
    # a single prepass names the stage too
    err = await expect_error(orch.call("Prepass", pb.PrepassRequest(image=image_ref(scene_png(seed=11)),
                                                                    dataset_id="synth")),
                             grpc.StatusCode.UNAVAILABLE, "STAGE_FAILED")
    assert err.metadata["stage"] == "sam3_text"
    await stack.start_service("sam3")
    for _ in range(50):  # the orchestrator's channel reconnects within its short backoff
        health = {s.service: s.health for s in (await orch.call("ListModels", pb.ListModelsRequest())).services}
        if health["sam3"] == pb.SERVICE_HEALTH_SERVING:
            break
        await asyncio.sleep(0.2)
    rerun = (await orch.call("StartPrepassJob", pb.StartPrepassJobRequest(dataset_id="synth", config=cfg))).job
    final = (await _watch(orch, rerun.id))[-1].job
    assert final.state == pb.JOB_STATE_SUCCEEDED, final
    summary = final.result.prepass
    assert summary.images == total and summary.cache_hits == last.done
