"""SAM3 service end to end over gRPC with the tiny random-init model.

A random model's detections are noise, so these tests assert the contract:
schema, invariants (boxes inside the image, scores within [threshold, 1],
labels from the request, windows from the plan), the image-first cache order
(one vision embedding per image and window over N prompts and two calls,
from the response counters and the Prometheus counter), the fan-out cap and
the error statuses of bad inputs.
"""

from __future__ import annotations

import io

import grpc
import numpy as np
import pytest
import pytest_asyncio
import yaml
from PIL import Image, ImageDraw
from prometheus_client import REGISTRY

from tator_core import rle
from tator_core.client import ServiceClient, image_ref
from tator_core.convert import box_xyxy
from tator_core.enums import source_name
from tator_core.errors import parse_rpc_error
from tator_core.gen.tator.common.v1 import common_pb2 as cpb
from tator_core.gen.tator.sam3.v1 import sam3_pb2 as pb
from tator_core.gen.tator.sam3.v1 import sam3_pb2_grpc as pbg
from tator_core.server import start_server

pytestmark = pytest.mark.asyncio(loop_scope="module")

W, H = 240, 180
GLOSSARY = {"circle": ["circle", "disc", "ring"], "square": ["square", "box", "block"], "triangle": ["triangle", "wedge"]}


def scene(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    img = Image.fromarray((rng.random((H, W, 3)) * 60).astype("uint8"))
    draw = ImageDraw.Draw(img)
    draw.ellipse((20, 20, 80, 80), fill=(220, 40, 40))
    draw.rectangle((140, 30, 200, 90), fill=(40, 200, 60))
    draw.polygon([(60, 170), (110, 100), (160, 170)], fill=(50, 80, 230))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def counter(result: str) -> float:
    return REGISTRY.get_sample_value("tator_sam3_vision_embeddings_total",
                                     {"model": "sam3-tiny", "result": result}) or 0.0


def text_request(data: bytes, labels: dict[str, list[str]], **kw) -> pb.SegmentTextRequest:
    return pb.SegmentTextRequest(image=image_ref(data, with_bytes=False),
                                 labels=[pb.LabelPrompts(label=k, prompts=v) for k, v in labels.items()], **kw)


def grid(cols=2, rows=2, include_full=True) -> cpb.WindowSpec:
    return cpb.WindowSpec(grid=cpb.GridSpec(cols=cols, rows=rows), include_full=include_full)


def box(x1, y1, x2, y2) -> cpb.Box:
    return cpb.Box(x1=x1, y1=y1, x2=x2, y2=y2)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    from svc_sam3 import tiny

    root = tmp_path_factory.mktemp("sam3_models")
    entries = tiny.build(root, seed=0)
    entries.append({"id": "sam3-gone", "family": "sam3", "path": "not-here", "default": False, "options": {}})
    (root / "registry.yaml").write_text(yaml.safe_dump({"models": entries}))
    return root


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def svc(models_dir):
    from svc_sam3.server import build_spec
    from svc_sam3.settings import Sam3Settings

    settings = Sam3Settings.load([], registry=models_dir / "registry.yaml", device="cpu", max_prompt_runs=60)
    running = await start_server(build_spec(settings), settings)
    await running.ready.wait()
    assert running.warmup_error is None
    client = ServiceClient(running.address, pbg.Sam3ServiceStub, timeout_s=120)
    yield client
    await client.close()
    await running.stop()


async def call(client: ServiceClient, method: str, request, data: bytes | None):
    return await client.call(method, request, image_data=data)


async def error_of(client: ServiceClient, method: str, request, data: bytes | None = None):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(client, method, request, data)
    return parse_rpc_error(info.value)


def check_detections(resp, *, labels: set[str], threshold: float, source: str, windows: set[str] | None = None):
    for d in resp.detections:
        assert d.label in labels
        assert threshold <= d.score <= 1.0
        assert source_name(d.source) == source and d.model_id == "sam3-tiny" and d.class_id == -1
        assert 0 <= d.box.x1 < d.box.x2 <= W and 0 <= d.box.y1 < d.box.y2 <= H
        kinds = {p.WhichOneof("kind") for p in d.prompts}
        assert kinds == {"text" if source == "sam3_text" else "exemplar"}  # one kind, always set
        assert len({p.SerializeToString(deterministic=True) for p in d.prompts}) == len(d.prompts)  # each once
        assert d.window.name in (windows or {"full"})
        wb = d.window.box
        assert wb.x1 <= d.box.x1 and wb.y1 <= d.box.y1 and d.box.x2 <= wb.x2 and d.box.y2 <= wb.y2


async def test_list_models_states(svc):
    by_id = {m.id: m for m in await svc.list_models()}
    assert set(by_id) == {"sam3-tiny", "sam3-gone"}
    tiny = by_id["sam3-tiny"]
    assert tiny.state == cpb.MODEL_STATE_READY and tiny.loaded and tiny.is_default
    assert len(tiny.version) == 64 and tiny.device == "cpu" and tiny.family == "sam3"
    gone = by_id["sam3-gone"]
    assert gone.state == cpb.MODEL_STATE_MISSING and "not-here" in gone.reason and not gone.version


async def test_text_full_frame_schema(svc):
    data = scene(1)
    resp = await call(svc, "SegmentText", text_request(data, GLOSSARY), data)
    assert resp.detections, "threshold 0.2 keeps the tiny model's queries (scores ~0.25)"
    check_detections(resp, labels=set(GLOSSARY), threshold=0.2, source="sam3_text")
    prompts = {p for ps in GLOSSARY.values() for p in ps}
    assert all(p.text in prompts and p.text in GLOSSARY[d.label] for d in resp.detections for p in d.prompts)
    assert all(not d.HasField("mask") for d in resp.detections)
    assert [d.score for d in resp.detections] == sorted((d.score for d in resp.detections), reverse=True)
    s = resp.stats
    assert (s.contexts, s.prompt_runs) == (1, 8)
    assert s.raw_detections >= len(resp.detections)
    assert {st.stage for st in resp.timing.stages} >= {"text_embed", "vision_embed", "decode"}
    assert resp.timing.total.ToNanoseconds() > 0


async def test_vision_embedding_once_per_image_over_prompts_and_calls(svc):
    data = scene(2)
    prompts = {"circle": ["circle", "disc", "ring", "dot", "orb", "round shape"]}
    before = counter("computed"), counter("cached")
    first = await call(svc, "SegmentText", text_request(data, prompts), data)
    second = await call(svc, "SegmentText", text_request(data, prompts), data)
    assert (first.stats.vision_embeddings_computed, first.stats.vision_embeddings_cached) == (1, 0)
    assert (second.stats.vision_embeddings_computed, second.stats.vision_embeddings_cached) == (0, 1)
    assert first.stats.prompt_runs == second.stats.prompt_runs == 6
    assert counter("computed") - before[0] == 1
    assert counter("cached") - before[1] == 1
    # prompt texts are embedded once too
    assert second.stats.text_embeddings_computed == 0 and second.stats.text_embeddings_cached == 6
    # same inputs, same model, same answer
    assert [(d.label, list(d.prompts), round(d.score, 5)) for d in first.detections] == \
           [(d.label, list(d.prompts), round(d.score, 5)) for d in second.detections]


async def test_prompt_shared_by_labels_runs_once_and_credits_both(svc):
    data = scene(3)
    resp = await call(svc, "SegmentText",
                      text_request(data, {"circle": ["round shape"], "dot": ["Round  shape", "round shape"]},
                                   merge_iou=0), data)
    assert resp.stats.prompt_runs == 1 and resp.stats.text_embeddings_computed + resp.stats.text_embeddings_cached == 1
    by_label = {lab: sorted(round(d.score, 6) for d in resp.detections if d.label == lab) for lab in ("circle", "dot")}
    assert by_label["circle"] and by_label["circle"] == by_label["dot"]


async def test_windowed_text_and_cache_across_calls(svc):
    data = scene(4)
    req = text_request(data, {"circle": ["circle", "disc"], "square": ["box"]}, windows=grid())
    first = await call(svc, "SegmentText", req, data)
    names = {"full", "A1", "B1", "A2", "B2"}
    check_detections(first, labels={"circle", "square"}, threshold=0.2, source="sam3_text", windows=names)
    assert first.stats.contexts == 5 and first.stats.prompt_runs == 15
    assert first.stats.vision_embeddings_computed == 5
    assert {d.window.name for d in first.detections} - {"full"}, "window detections survive the merge"
    assert first.stats.raw_detections > len(first.detections), "window results are merged per label"
    second = await call(svc, "SegmentText", req, data)
    assert (second.stats.vision_embeddings_computed, second.stats.vision_embeddings_cached) == (0, 5)
    # windows only (no full frame)
    only = await call(svc, "SegmentText", text_request(data, {"circle": ["circle"]}, windows=grid(include_full=False)),
                      data)
    assert only.stats.contexts == 4 and {d.window.name for d in only.detections} <= names - {"full"}


async def test_window_detections_shift_back_to_full_image(svc):
    data = scene(5)
    win = cpb.Window(name="right", box=box(120, 60, 240, 180))
    resp = await call(svc, "SegmentText", text_request(
        data, {"circle": ["circle"]}, windows=cpb.WindowSpec(windows=[win]), merge_iou=0, return_masks=True,
        mask_threshold=0.0), data)
    assert resp.detections and resp.stats.contexts == 1
    for d in resp.detections:
        assert d.window.name == "right"
        assert d.box.x1 >= 120 and d.box.y1 >= 60
        # mask threshold 0 keeps every pixel of the window: the mask is the window, in full-image pixels
        full = rle.decode(d.mask, (H, W))
        assert full.sum() == 120 * 120 and full[60:, 120:].all()


async def test_long_prompt_is_truncated_with_a_warning(svc):
    data = scene(16)
    long = " ".join(["disc"] * 36)  # 36 tokens + start/end > the 32-token text window, < 200 chars
    resp = await call(svc, "SegmentText", text_request(data, {"circle": [long, "disc"]}), data)
    assert [(w.code, w.subject) for w in resp.warnings] == [("prompt_truncated", long)]
    assert "tail was ignored" in resp.warnings[0].message
    assert resp.stats.prompt_runs == 2


async def test_masks_are_rle_inside_image(svc):
    data = scene(6)
    resp = await call(svc, "SegmentText", text_request(data, {"square": ["square"]}, return_masks=True,
                                                        mask_threshold=0.5), data)
    assert resp.detections
    for d in resp.detections:
        assert d.HasField("mask")
        m = d.mask
        assert m.x0 >= 0 and m.y0 >= 0 and m.x0 + m.width <= W and m.y0 + m.height <= H
        assert sum(m.counts) == m.width * m.height


async def test_thresholds_bound_scores(svc):
    data = scene(7)
    resp = await call(svc, "SegmentText", text_request(data, {"circle": ["circle", "ring"]}, score_threshold=0.25,
                                                        merge_iou=0, max_results_per_prompt=3), data)
    assert all(d.score >= 0.25 for d in resp.detections)
    assert len(resp.detections) <= 2 * 3
    none = await call(svc, "SegmentText", text_request(data, {"circle": ["circle"]}, score_threshold=1.0), data)
    assert len(none.detections) == 0 and none.stats.prompt_runs == 1


async def test_exemplars_full_frame(svc):
    data = scene(8)
    req = pb.SegmentExemplarsRequest(
        image=image_ref(data, with_bytes=False), score_threshold=0.2,
        exemplars=[pb.ExemplarSet(label="circle", positives=[box(20, 20, 80, 80)]),
                   pb.ExemplarSet(label="square", positives=[box(140, 30, 200, 90), box(10, 100, 50, 140)],
                                  negatives=[box(60, 100, 160, 170)], text="square")])
    resp = await call(svc, "SegmentExemplars", req, data)
    assert resp.detections
    check_detections(resp, labels={"circle", "square"}, threshold=0.2, source="sam3_similarity")
    used = {(e.label, tuple(e.positive_indexes), tuple(box_xyxy(b) for b in e.positives), e.text)
            for d in resp.detections for e in (p.exemplar for p in d.prompts)}
    # each detection names its label's exemplar set: the positives it used (all of them on the full frame),
    # those boxes in full-image pixels, and the set's text
    assert used <= {("circle", (0,), ((20, 20, 80, 80),), ""),
                    ("square", (0, 1), ((140, 30, 200, 90), (10, 100, 50, 140)), "square")}
    assert {u[0] for u in used} == {d.label for d in resp.detections}
    assert resp.stats.prompt_runs == 2 and resp.stats.contexts == 1
    # default similarity threshold is 0.3
    default = await call(svc, "SegmentExemplars", pb.SegmentExemplarsRequest(
        image=image_ref(data, with_bytes=False), exemplars=req.exemplars[:1]), data)
    assert all(d.score >= 0.3 for d in default.detections)


async def test_exemplars_windowed_use_only_intersecting_boxes(svc):
    data = scene(9)
    req = pb.SegmentExemplarsRequest(
        image=image_ref(data, with_bytes=False), score_threshold=0.2, windows=grid(), merge_iou=0,
        exemplars=[pb.ExemplarSet(label="circle", positives=[box(10, 10, 40, 40), box(200, 140, 230, 170)])])
    resp = await call(svc, "SegmentExemplars", req, data)
    # the two boxes sit in A1 and B2; A2 and B1 have none and are skipped with a warning
    skipped = {w.subject for w in resp.warnings if w.code == "similarity_window_skipped"}
    assert skipped == {"A2", "B1"}
    assert resp.stats.contexts == 3 and resp.stats.prompt_runs == 3
    handles = {(d.window.name, tuple(d.prompts[0].exemplar.positive_indexes),
                tuple(box_xyxy(b) for b in d.prompts[0].exemplar.positives)) for d in resp.detections}
    assert handles <= {("full", (0, 1), ((10, 10, 40, 40), (200, 140, 230, 170))),
                       ("A1", (0,), ((10, 10, 40, 40),)), ("B2", (1,), ((200, 140, 230, 170),))}
    assert {w for w, *_ in handles} == {"full", "A1", "B2"}
    check_detections(resp, labels={"circle"}, threshold=0.2, source="sam3_similarity",
                     windows={"full", "A1", "B2"})


async def test_fanout_cap(svc):
    data = scene(10)
    # 3 prompts x 5 contexts = 15 <= 60 passes; 13 prompts x 5 = 65 > 60 is refused before any model work
    many = {"circle": ["circle", "disc", "ring"], "square": ["square", "box", "block"], "triangle": list("abcdefg")}
    err = await error_of(svc, "SegmentText", text_request(data, many, windows=grid()), data)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and err.reason == "FANOUT_CAP_EXCEEDED"
    assert err.metadata["cap"] == "60" and err.metadata["requested"] == "65"
    assert "60" in err.message and "65" in err.message
    tiles = cpb.WindowSpec(tiles=cpb.TilePlan(size=8, overlap=0.5))
    err = await error_of(svc, "SegmentExemplars", pb.SegmentExemplarsRequest(
        image=image_ref(data, with_bytes=False), windows=tiles,
        exemplars=[pb.ExemplarSet(label="circle", positives=[box(1, 1, 9, 9)])]), data)
    assert err.reason == "FANOUT_CAP_EXCEEDED" and int(err.metadata["requested"]) > 60


async def test_empty_prompt_list_is_invalid(svc):
    data = scene(11)
    req = pb.SegmentTextRequest(image=image_ref(data, with_bytes=False), labels=[pb.LabelPrompts(label="circle")])
    err = await error_of(svc, "SegmentText", req, data)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert any(f == "labels[0].prompts" for f, _ in err.field_violations)
    err = await error_of(svc, "SegmentText", text_request(data, {"circle": ["circle", "   "]}), data)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and err.metadata["field"] == "labels[0].prompts[1]"
    err = await error_of(svc, "SegmentText", pb.SegmentTextRequest(image=image_ref(data, with_bytes=False)), data)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and any(f == "labels" for f, _ in err.field_violations)


async def test_bad_inputs(svc):
    data = scene(12)
    err = await error_of(svc, "SegmentText", text_request(data, {"c": ["c"]}, score_threshold=1.5), data)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and any(f == "score_threshold" for f, _ in err.field_violations)
    corrupt = b"\x89PNG\r\n\x1a\n" + b"not really a png"
    err = await error_of(svc, "SegmentText", text_request(corrupt, {"c": ["c"]}), corrupt)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and err.reason == "IMAGE_INVALID"
    outside = pb.SegmentExemplarsRequest(image=image_ref(data, with_bytes=False),
                                         exemplars=[pb.ExemplarSet(label="c", positives=[box(500, 500, 600, 600)])])
    err = await error_of(svc, "SegmentExemplars", outside, data)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and err.metadata["field"] == "exemplars[0].positives[0]"
    flipped = cpb.WindowSpec(windows=[cpb.Window(name="w", box=box(50, 50, 10, 10))])
    err = await error_of(svc, "SegmentText", text_request(data, {"c": ["c"]}, windows=flipped), data)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and err.metadata["field"] == "windows.windows[0].box"


async def test_model_errors(svc):
    data = scene(13)
    err = await error_of(svc, "SegmentText", text_request(data, {"c": ["c"]}, model_id="sam3-gone"), data)
    assert err.code == grpc.StatusCode.FAILED_PRECONDITION and err.reason == "MODEL_MISSING"
    assert "not-here" in err.message
    err = await error_of(svc, "SegmentExemplars", pb.SegmentExemplarsRequest(
        image=image_ref(data, with_bytes=False), model_id="nope",
        exemplars=[pb.ExemplarSet(label="c", positives=[box(1, 1, 9, 9)])]), data)
    assert err.code == grpc.StatusCode.NOT_FOUND and err.reason == "MODEL_NOT_FOUND"


async def test_sha_only_reuses_cached_image(svc):
    data = scene(14)
    await call(svc, "SegmentText", text_request(data, {"circle": ["circle"]}), data)
    sent = svc.image_bytes_sent
    resp = await call(svc, "SegmentExemplars", pb.SegmentExemplarsRequest(
        image=image_ref(data, with_bytes=False), score_threshold=0.2,
        exemplars=[pb.ExemplarSet(label="circle", positives=[box(20, 20, 80, 80)])]), data)
    assert svc.image_bytes_sent == sent, "second call sends the hash only"
    assert resp.stats.vision_embeddings_computed == 0 and resp.stats.vision_embeddings_cached == 1


async def test_regress_steps_against_live_service(svc, tmp_path):
    import random

    from tator_fixtures import FUZZ_PACK_DIR
    from tator_fixtures.fuzz_pack import load_fuzz_pack
    from tator_fixtures.regress.registry import StepContext, registered_steps

    steps = {s.name: s for s in registered_steps() if s.service == "sam3" and s.tier == 1}
    assert set(steps) == {"sam3.text", "sam3.similarity", "sam3.windowed", "sam3.windowed_off"}
    assert all(s.heavy for s in steps.values())
    pack = load_fuzz_pack(FUZZ_PACK_DIR)
    results = {}
    for name, s in steps.items():
        ctx = StepContext(addresses={"sam3": svc.address}, fuzz_pack=pack, rng=random.Random(f"0:{name}"),
                          deadline_s=s.deadline_s, models_dir=tmp_path, data_root=tmp_path)
        results[name] = await s.fn(ctx)
    assert results["sam3.windowed"]["cache"]["second_call_vision_computed"] == 0
    assert results["sam3.windowed_off"]["cache"]["contexts"] == 2
    assert results["sam3.windowed"]["cache"]["contexts"] > 2
    assert set(results["sam3.text"]["sources"]) <= {"sam3_text"}
    assert set(results["sam3.similarity"]["sources"]) <= {"sam3_similarity"}
    assert results["sam3.text"]["detections"] > 0


async def test_cli_segment_against_live_service(svc, tmp_path):
    import asyncio
    import json

    import typer
    from typer.testing import CliRunner

    from tator_cli.commands.sam3 import register

    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    path = tmp_path / "scene.png"
    path.write_bytes(scene(15))
    result = await asyncio.to_thread(CliRunner().invoke, app, [
        "segment", str(path), "--text", "circle=circle,disc", "--windows", "2x2", "--address", svc.address, "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["stats"]["contexts"] == 5 and doc["stats"]["prompt_runs"] == 10
    assert {d["label"] for d in doc["detections"]} == {"circle"}
    result = await asyncio.to_thread(CliRunner().invoke, app, [
        "segment", str(path), "--exemplar", "circle=500,500,600,600", "--address", svc.address])
    assert result.exit_code == 1 and "INVALID_ARGUMENT" in result.output


async def test_model_management_unload_stays_unloaded_until_load(svc):
    """tator.common.v1.ModelManagementService on SAM3: its models in id order; an unloaded
    model is refused by name (no silent reload) until LoadModel."""
    from tator_core.gen.tator.common.v1 import models_pb2 as mpb
    from tator_core.gen.tator.common.v1 import models_pb2_grpc as mpbg

    manage = ServiceClient(svc.address, mpbg.ModelManagementServiceStub, timeout_s=120)
    try:
        listed = await manage.call("ListModels", mpb.ListModelsRequest())
        assert [m.id for m in listed.models] == ["sam3-gone", "sam3-tiny"] and not listed.next_page_token
        data = scene(3)
        resp = await manage.call("UnloadModel", mpb.UnloadModelRequest(model_id="sam3-tiny"))
        assert not resp.model.loaded
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call(svc, "SegmentText", text_request(data, GLOSSARY), data)
        err = parse_rpc_error(info.value)
        assert err.code == grpc.StatusCode.FAILED_PRECONDITION and "sam3-tiny" in err.message
        resp = await manage.call("LoadModel", mpb.LoadModelRequest(model_id="sam3-tiny"))
        assert resp.model.loaded and resp.model.state == cpb.MODEL_STATE_READY
        assert (await call(svc, "SegmentText", text_request(data, GLOSSARY), data)).stats.prompt_runs
    finally:
        await manage.close()


async def test_unload_fails_calls_waiting_for_the_device_at_once_naming_the_model(svc):
    """Calls queued behind a running one on SAM3's device thread fail with UNAVAILABLE MODEL_UNLOADED
    naming the model when it is unloaded (they do not run on it afterwards); LoadModel brings it back."""
    import asyncio

    from tator_core.gen.tator.common.v1 import models_pb2 as mpb
    from tator_core.gen.tator.common.v1 import models_pb2_grpc as mpbg
    from tator_core.metrics import IN_FLIGHT

    data = scene(21)
    request = text_request(data, GLOSSARY, windows=grid(2, 2))  # 8 prompts x 5 contexts, under the cap
    await call(svc, "SegmentText", request, data)  # the image is cached: the calls below send only its hash
    manage = ServiceClient(svc.address, mpbg.ModelManagementServiceStub, timeout_s=120)
    # No retry of UNAVAILABLE (the shared client would ask again and then hear FAILED_PRECONDITION).
    channel = grpc.aio.insecure_channel(svc.address, options=[("grpc.enable_retries", 0)])
    try:
        stub = pbg.Sam3ServiceStub(channel)
        calls = [asyncio.ensure_future(stub.SegmentText(request, timeout=120)) for _ in range(8)]
        in_flight = IN_FLIGHT.labels("sam3")
        for _ in range(1000):  # the service runs in this process: wait until calls wait behind the device
            if in_flight._value.get() >= 4:
                break
            await asyncio.sleep(0.01)
        assert in_flight._value.get() >= 4, "no calls waiting for the device"
        await manage.call("UnloadModel", mpb.UnloadModelRequest(model_id="sam3-tiny"))
        outcomes = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 120)
        refused = [parse_rpc_error(o) for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
        unavailable = [e for e in refused if e.code == grpc.StatusCode.UNAVAILABLE]
        assert unavailable, [e.code for e in refused]
        assert all(e.reason == "MODEL_UNLOADED" and "sam3-tiny" in e.message for e in refused), refused
        # a call not yet queued when the unload came was refused by name as unloaded, nothing else
        assert {e.code for e in refused} <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.FAILED_PRECONDITION}
    finally:
        await channel.close()
        await manage.call("LoadModel", mpb.LoadModelRequest(model_id="sam3-tiny"))
        await manage.close()
