"""Qwen service end to end over gRPC with the tiny random-init models.

The tiny model writes random bytes, so these tests assert the contract: a
caption or a degenerate reason (exactly one, for the whole and per window),
token limits, windows, determinism for a fixed request and seed, image-first
feature reuse, synonym origins / cap / cache, model states and the error
statuses of bad inputs. Also drives the CLI against the running service.
"""

from __future__ import annotations

import asyncio
import io
import json
import math

import grpc
import pytest
import pytest_asyncio
import yaml
from PIL import Image
from prometheus_client import REGISTRY
from typer.testing import CliRunner

from tator_core.client import ServiceClient, image_ref
from tator_core.errors import parse_rpc_error
from tator_core.gen.tator.common.v1 import common_pb2 as cpb
from tator_core.gen.tator.qwen.v1 import qwen_pb2 as pb
from tator_core.gen.tator.qwen.v1 import qwen_pb2_grpc as pbg
from tator_core.labels import clean_term
from tator_core.server import start_server
from tator_fixtures import LABELMAP
from tator_fixtures.synth import render_scene

pytestmark = pytest.mark.asyncio(loop_scope="module")

GLOSSARY = json.dumps({"circle": ["disc", "ring", "orb"], "square": ["box", "block"]})


def scene(seed: int) -> bytes:
    """A scene of the synthetic shapes world, PNG-encoded."""
    buf = io.BytesIO()
    render_scene(seed, 0)[0].save(buf, "PNG")
    return buf.getvalue()


def size_of(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as im:
        return im.size


def hints_of(seed: int) -> list[pb.LabelHint]:
    """The scene's ground truth as caption hints."""
    return [pb.LabelHint(label=LABELMAP[o.cls], score=1.0, box=cpb.Box(x1=o.box[0], y1=o.box[1], x2=o.box[2],
                                                                      y2=o.box[3]))
            for o in render_scene(seed, 0)[1]]


def gen(n: int = 12, **kw) -> cpb.GenerationSettings:
    return cpb.GenerationSettings(max_new_tokens=n, **kw)


def caption_req(data: bytes, mode=pb.CAPTION_MODE_FULL, **kw) -> pb.CaptionRequest:
    kw.setdefault("generation", gen())
    kw.setdefault("avoid_labels", ["circle", "light_vehicle"])
    kw.setdefault("glossary", GLOSSARY)
    return pb.CaptionRequest(image=image_ref(data, with_bytes=False), mode=mode, **kw)


def stages(resp) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in resp.timing.stages:
        out[s.stage] = out.get(s.stage, 0) + s.batch_size
    return out


def exactly_one(caption: str, reason: str) -> None:
    assert bool(caption) != bool(reason), (caption, reason)
    assert "light_vehicle" not in caption


async def expect_error(coro, code: grpc.StatusCode, reason: str, fld: str | None = None):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await coro
    info = parse_rpc_error(err.value)
    assert (info.code, info.reason) == (code, reason), info
    if fld is not None:
        assert info.metadata.get("field") == fld or fld in [f for f, _ in info.field_violations], info
    return info


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    from svc_qwen import tiny

    root = tmp_path_factory.mktemp("qwen_models")
    entries = tiny.build(root) + tiny.build(root, arch="qwen3_vl")
    (root / "broken").mkdir()
    (root / "broken" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    entries += [{"id": "qwen-gone", "family": "qwen", "path": "not-here", "default": False, "options": {}},
                {"id": "qwen-broken", "family": "qwen", "path": "broken", "default": False, "options": {}}]
    (root / "registry.yaml").write_text(yaml.safe_dump({"models": entries}))
    (root / "empty.yaml").write_text(yaml.safe_dump({"models": []}))
    return root


async def serve(registry):
    from svc_qwen.server import build_spec
    from svc_qwen.settings import QwenSettings

    settings = QwenSettings.load([], registry=registry, device="cpu", max_windows=16)
    running = await start_server(build_spec(settings), settings)
    await running.ready.wait()
    assert running.warmup_error is None
    return running, ServiceClient(running.address, pbg.QwenServiceStub, timeout_s=120)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def svc(models_dir):
    running, client = await serve(models_dir / "registry.yaml")
    client.running = running
    yield client
    await client.close()
    await running.stop()


async def test_list_models_states(svc):
    by_id = {m.id: m for m in await svc.list_models()}
    assert set(by_id) == {"qwen-tiny", "qwen3-tiny", "qwen-gone", "qwen-broken"}
    ready = by_id["qwen-tiny"]
    assert (ready.state, ready.is_default, ready.loaded, ready.family) == (cpb.MODEL_STATE_READY, True, True, "qwen")
    assert len(ready.version) == 64 and ready.device == "cpu" and ready.extra["model_type"] == "qwen2_5_vl"
    gone = by_id["qwen-gone"]
    assert gone.state == cpb.MODEL_STATE_MISSING and "not-here" in gone.reason and gone.version == ""


async def test_caption_full_contract_and_determinism(svc):
    data = scene(0)
    req = caption_req(data, hints=hints_of(0))
    assert req.hints
    first = await svc.call("Caption", req, image_data=data)
    exactly_one(first.caption, first.degenerate_reason)
    assert first.mode == pb.CAPTION_MODE_FULL and not first.windows
    assert 0 < first.generated_tokens <= 12
    assert stages(first).get("encode") == 1
    second = await svc.call("Caption", caption_req(data, hints=req.hints), image_data=data)
    assert (second.caption, second.degenerate_reason, second.generated_tokens) == \
        (first.caption, first.degenerate_reason, first.generated_tokens)
    # image-first: the second call reuses the vision features and sends no bytes
    assert "encode" not in stages(second) and stages(second)["feature_cache"] == 1
    assert svc.image_bytes_sent == len(data)


@pytest.mark.parametrize("n", [1, 5, 20])
async def test_max_new_tokens_bounds_generated_tokens(svc, n):
    data = scene(1)
    resp = await svc.call("Caption", caption_req(data, generation=gen(n)), image_data=data)
    assert resp.generated_tokens <= n
    exactly_one(resp.caption, resp.degenerate_reason)


async def test_notes_come_typed_with_their_code_and_subject(svc):
    data = scene(1)
    resp = await svc.call("Caption", caption_req(data, generation=gen(1), windows=cpb.WindowSpec(include_full=True)),
                          image_data=data)
    assert resp.mode == pb.CAPTION_MODE_FULL and not resp.windows
    notes = [(w.code, w.subject) for w in resp.warnings]
    assert notes[0] == ("windows_ignored_in_full_mode", "windows") and all(w.message for w in resp.warnings)
    # one token of budget: the full pass is cut there, unless the model ended on its first token
    assert set(notes[1:]) <= {("max_new_tokens_reached", "full"), ("repetition_cut", "full")}
    assert ("max_new_tokens_reached", "full") in notes or resp.generated_tokens < 1


async def test_sampling_is_deterministic_for_a_seed(svc):
    data = scene(2)
    a, b, c = [await svc.call("Caption", caption_req(data, generation=gen(16, do_sample=True, seed=s)),
                              image_data=data) for s in (5, 5, 6)]
    assert (a.caption, a.degenerate_reason, a.generated_tokens) == (b.caption, b.degenerate_reason, b.generated_tokens)
    assert a.generated_tokens > 0 and c.generated_tokens > 0


async def test_caption_windowed_default_grid(svc):
    data = scene(3)
    W, H = size_of(data)
    before = REGISTRY.get_sample_value("tator_qwen_vision_regions_total", {"model": "qwen-tiny", "result": "cached"}) or 0
    resp = await svc.call("Caption", caption_req(data, mode=pb.CAPTION_MODE_WINDOWED, generation=gen(10),
                                                 hints=hints_of(3)), image_data=data)
    assert resp.mode == pb.CAPTION_MODE_WINDOWED
    assert [w.window.name for w in resp.windows] == ["A1", "B1", "A2", "B2"]
    for w in resp.windows:
        b = w.window.box
        assert 0 <= b.x1 < b.x2 <= W and 0 <= b.y1 < b.y2 <= H
        assert 0 < w.generated_tokens <= 10
        exactly_one(w.caption, w.degenerate_reason)
    exactly_one(resp.caption, resp.degenerate_reason)
    window_tokens = sum(w.generated_tokens for w in resp.windows)
    assert window_tokens <= resp.generated_tokens <= window_tokens + 10
    if all(w.degenerate_reason for w in resp.windows):
        assert resp.degenerate_reason == "no_usable_windows" and "merge" not in stages(resp)
    assert stages(resp)["encode"] == 4
    # full frame as a draft: one more region; the four windows come from the feature cache
    again = await svc.call("Caption", caption_req(data, mode=pb.CAPTION_MODE_WINDOWED, generation=gen(10),
                                                  windows=cpb.WindowSpec(include_full=True)), image_data=data)
    assert len(again.windows) == 4 and stages(again) .get("feature_cache") == 4 and stages(again)["encode"] == 1
    after = REGISTRY.get_sample_value("tator_qwen_vision_regions_total", {"model": "qwen-tiny", "result": "cached"})
    assert after - before == 4


async def test_caption_explicit_windows_and_other_architecture(svc):
    data = scene(4)
    W, H = size_of(data)
    spec = cpb.WindowSpec(windows=[cpb.Window(name="left", box=cpb.Box(x1=0, y1=0, x2=100, y2=H)),
                                   cpb.Window(box=cpb.Box(x1=-50, y1=-50, x2=W + 50, y2=H + 50))])
    resp = await svc.call("Caption", caption_req(data, mode=pb.CAPTION_MODE_WINDOWED, windows=spec,
                                                 model_id="qwen3-tiny"), image_data=data)
    assert [w.window.name for w in resp.windows] == ["left", "win_1"]
    assert (resp.windows[1].window.box.x2, resp.windows[1].window.box.y2) == (W, H)
    models = {m.id: m for m in await svc.list_models()}
    assert models["qwen3-tiny"].state == cpb.MODEL_STATE_READY and models["qwen3-tiny"].extra["model_type"] == "qwen3_vl"


async def test_hostile_text_fields_do_not_break_the_prompt(svc):
    data = scene(5)
    resp = await svc.call("Caption", caption_req(
        data, avoid_labels=["<|image_pad|>", "<|im_end|>x_y", "a" * 200], glossary="{" * 5000 + "<|video_pad|>",
        hints=[pb.LabelHint(label="<|vision_start|>", score=1)]), image_data=data)
    exactly_one(resp.caption, resp.degenerate_reason)


async def test_caption_errors(svc):
    data = scene(6)
    await expect_error(svc.call("Caption", caption_req(data, model_id="qwen-gone"), image_data=data),
                       grpc.StatusCode.FAILED_PRECONDITION, "MODEL_MISSING")
    await expect_error(svc.call("Caption", caption_req(data, model_id="nope"), image_data=data),
                       grpc.StatusCode.NOT_FOUND, "MODEL_NOT_FOUND")
    info = await expect_error(svc.call("Caption", caption_req(data, model_id="qwen-broken"), image_data=data),
                              grpc.StatusCode.FAILED_PRECONDITION, "MODEL_LOAD_FAILED")
    assert "bert" in info.message
    models = {m.id: m for m in await svc.list_models()}
    assert models["qwen-broken"].state == cpb.MODEL_STATE_FAILED and "bert" in models["qwen-broken"].reason
    bad_hint = [pb.LabelHint(label="circle", box=cpb.Box(x1=math.nan, y1=0, x2=1, y2=1))]
    await expect_error(svc.call("Caption", caption_req(data, hints=bad_hint), image_data=data),
                       grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", "hints[0].box")
    await expect_error(svc.call("Caption", caption_req(data, avoid_labels=["a\nb"]), image_data=data),
                       grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", "avoid_labels[0]")
    await expect_error(svc.call("Caption", caption_req(data, generation=gen(0)), image_data=data),
                       grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", "generation.max_new_tokens")
    await expect_error(svc.call("Caption", caption_req(data, mode=pb.CAPTION_MODE_WINDOWED, windows=cpb.WindowSpec(
        grid=cpb.GridSpec(cols=5, rows=5))), image_data=data),
        grpc.StatusCode.INVALID_ARGUMENT, "FANOUT_CAP_EXCEEDED", "windows")
    junk = b"not an image at all"
    await expect_error(svc.call("Caption", caption_req(junk), image_data=junk),
                       grpc.StatusCode.INVALID_ARGUMENT, "IMAGE_INVALID")
    sha_only = pb.CaptionRequest(image=image_ref(scene(99), with_bytes=False))
    await expect_error(svc.stub.Caption(sha_only), grpc.StatusCode.FAILED_PRECONDITION, "IMAGE_NOT_CACHED")


async def test_expand_synonyms_origins_cap_and_cache(svc):
    labels = ["circle", "square", "light_vehicle", "odd_tag"]
    req = pb.ExpandSynonymsRequest(labels=labels, glossary=GLOSSARY, max_terms_per_class=2,
                                   generation=gen(48))
    resp = await svc.call("ExpandSynonyms", req)
    assert [lt.label for lt in resp.labels] == labels
    origins = {lt.label: lt.terms_origin for lt in resp.labels}
    assert origins["circle"] == origins["square"] == pb.TERMS_ORIGIN_GLOSSARY
    either = (pb.TERMS_ORIGIN_MODEL, pb.TERMS_ORIGIN_DEFAULT)
    assert origins["light_vehicle"] in either and origins["odd_tag"] in either
    terms = {lt.label: list(lt.terms) for lt in resp.labels}
    assert terms["circle"] == ["disc", "ring"] and resp.dropped_by_cap >= 1
    for lt in resp.labels:
        assert len(lt.terms) <= 2 and all(clean_term(t) == t for t in lt.terms)
        if lt.terms_origin == pb.TERMS_ORIGIN_DEFAULT:
            assert lt.terms == [lt.label.replace("_", " ")]
    assert resp.raw_output, "labels without glossary terms were asked"
    assert [s.stage for s in resp.timing.stages] == ["generate"]
    again = await svc.call("ExpandSynonyms", req)
    assert [s.stage for s in again.timing.stages] == ["cache"]
    assert list(again.labels) == list(resp.labels) and again.raw_output == resp.raw_output
    # a different cap is a different cache key (and a different prompt: it states the cap)
    other = await svc.call("ExpandSynonyms", pb.ExpandSynonymsRequest(
        labels=labels, glossary=GLOSSARY, max_terms_per_class=1, generation=gen(48)))
    assert [s.stage for s in other.timing.stages] == ["generate"]
    assert all(len(lt.terms) <= 1 for lt in other.labels)


async def test_expand_synonyms_without_model_call_and_errors(svc):
    resp = await svc.call("ExpandSynonyms", pb.ExpandSynonymsRequest(labels=["circle"], glossary=GLOSSARY))
    assert resp.raw_output == "" and resp.labels[0].terms_origin == pb.TERMS_ORIGIN_GLOSSARY and list(resp.labels[0].terms) == [
        "disc", "ring", "orb"]
    await expect_error(svc.call("ExpandSynonyms", pb.ExpandSynonymsRequest(labels=["Car", "car"])),
                       grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", "labels[1]")
    await expect_error(svc.call("ExpandSynonyms", pb.ExpandSynonymsRequest()),
                       grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", "labels")
    await expect_error(svc.call("ExpandSynonyms", pb.ExpandSynonymsRequest(labels=["x"], max_terms_per_class=101)),
                       grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", "max_terms_per_class")
    await expect_error(svc.call("ExpandSynonyms", pb.ExpandSynonymsRequest(labels=["x"], model_id="qwen-gone")),
                       grpc.StatusCode.FAILED_PRECONDITION, "MODEL_MISSING")
    # Hostile nesting is not JSON and holds no terms: answered, never an INTERNAL error.
    hostile = await svc.call("ExpandSynonyms", pb.ExpandSynonymsRequest(labels=["x"], glossary="[" * 100000))
    assert [lt.label for lt in hostile.labels] == ["x"] and hostile.labels[0].terms_origin != pb.TERMS_ORIGIN_GLOSSARY


async def test_service_without_models(models_dir):
    running, client = await serve(models_dir / "empty.yaml")
    try:
        assert list(await client.list_models()) == []
        data = scene(7)
        await expect_error(client.call("Caption", caption_req(data), image_data=data),
                           grpc.StatusCode.FAILED_PRECONDITION, "MODEL_MISSING")
        resp = await client.call("ExpandSynonyms", pb.ExpandSynonymsRequest(labels=["square"], glossary=GLOSSARY))
        assert resp.labels[0].terms_origin == pb.TERMS_ORIGIN_GLOSSARY
        await expect_error(client.call("ExpandSynonyms", pb.ExpandSynonymsRequest(labels=["x"])),
                           grpc.StatusCode.FAILED_PRECONDITION, "MODEL_MISSING")
    finally:
        await client.close()
        await running.stop()


async def test_cli_caption_and_synonyms(svc, tmp_path):
    from tator_cli.main import app

    image = tmp_path / "scene.png"
    image.write_bytes(scene(8))
    runner = CliRunner()
    address = svc.running.address
    res = await asyncio.to_thread(runner.invoke, app, [
        "caption", str(image), "--windowed", "2x2", "--max-new-tokens", "8", "--json", "--address", address])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["mode"] == "CAPTION_MODE_WINDOWED" and len(doc["windows"]) == 4
    res = await asyncio.to_thread(runner.invoke, app, ["caption", str(image), "--max-new-tokens", "8",
                                                       "--address", address])
    assert res.exit_code == 0 and "tokens:" in res.output
    res = await asyncio.to_thread(runner.invoke, app, ["caption", str(image), "--windowed", "2by2",
                                                       "--address", address])
    assert res.exit_code != 0
    res = await asyncio.to_thread(runner.invoke, app, ["synonyms", "circle", "odd_tag", "--cap", "1",
                                                       "--max-new-tokens", "16", "--json", "--address", address])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert [x["label"] for x in doc["labels"]] == ["circle", "odd_tag"] and all(len(x["terms"]) <= 1 for x in doc["labels"])
    res = await asyncio.to_thread(runner.invoke, app, ["caption", str(image), "--model-id", "nope",
                                                       "--address", address])
    assert res.exit_code == 1 and "MODEL_NOT_FOUND" in res.output


async def test_model_management_pages_and_keeps_an_unloaded_model_down(svc):
    """tator.common.v1.ModelManagementService on Qwen: pages by id; a model taken down stays down
    (FAILED_PRECONDITION naming it) until LoadModel."""
    from tator_core.gen.tator.common.v1 import models_pb2 as mpb
    from tator_core.gen.tator.common.v1 import models_pb2_grpc as mpbg

    manage = ServiceClient(svc.address, mpbg.ModelManagementServiceStub, timeout_s=300)
    try:
        first = await manage.call("ListModels", mpb.ListModelsRequest(page_size=3))
        rest = await manage.call("ListModels", mpb.ListModelsRequest(page_size=3, page_token=first.next_page_token))
        assert [m.id for m in [*first.models, *rest.models]] == ["qwen-broken", "qwen-gone", "qwen-tiny", "qwen3-tiny"]
        assert first.next_page_token and not rest.next_page_token
        data = scene(2)
        await manage.call("LoadModel", mpb.LoadModelRequest(model_id="qwen3-tiny"))
        await manage.call("UnloadModel", mpb.UnloadModelRequest(model_id="qwen3-tiny"))
        info = await expect_error(svc.call("Caption", caption_req(data, model_id="qwen3-tiny", generation=gen(4)),
                                           image_data=data), grpc.StatusCode.FAILED_PRECONDITION, "MODEL_UNLOADED")
        assert "qwen3-tiny" in info.message
        resp = await manage.call("LoadModel", mpb.LoadModelRequest(model_id="qwen3-tiny"))
        assert resp.model.loaded and resp.model.state == cpb.MODEL_STATE_READY
        again = await svc.call("Caption", caption_req(data, model_id="qwen3-tiny", generation=gen(4)), image_data=data)
        assert again.caption or again.degenerate_reason  # it ran: a caption, or the reason there is none
    finally:
        await manage.close()


async def test_unload_fails_calls_waiting_for_the_device_at_once_naming_the_model(svc):
    """Captions queued behind a running one on Qwen's device thread fail with UNAVAILABLE MODEL_UNLOADED
    naming the model when it is unloaded (they do not run on it afterwards); LoadModel brings it back."""
    from tator_core.gen.tator.common.v1 import models_pb2 as mpb
    from tator_core.gen.tator.common.v1 import models_pb2_grpc as mpbg
    from tator_core.metrics import IN_FLIGHT

    data = scene(23)
    request = caption_req(data, model_id="qwen3-tiny", generation=gen(48))
    manage = ServiceClient(svc.address, mpbg.ModelManagementServiceStub, timeout_s=300)
    await manage.call("LoadModel", mpb.LoadModelRequest(model_id="qwen3-tiny"))
    await svc.call("Caption", request, image_data=data)  # the image is cached: the calls below send only its hash
    # No retry of UNAVAILABLE (the shared client would ask again and then hear FAILED_PRECONDITION).
    channel = grpc.aio.insecure_channel(svc.address, options=[("grpc.enable_retries", 0)])
    try:
        stub = pbg.QwenServiceStub(channel)
        calls = [asyncio.ensure_future(stub.Caption(request, timeout=300)) for _ in range(6)]
        in_flight = IN_FLIGHT.labels("qwen")
        for _ in range(1000):  # the service runs in this process: wait until calls wait behind the device
            if in_flight._value.get() >= 4:
                break
            await asyncio.sleep(0.01)
        assert in_flight._value.get() >= 4, "no calls waiting for the device"
        await manage.call("UnloadModel", mpb.UnloadModelRequest(model_id="qwen3-tiny"))
        outcomes = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 300)
        refused = [parse_rpc_error(o) for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
        assert any(e.code == grpc.StatusCode.UNAVAILABLE for e in refused), [e.code for e in refused]
        assert all(e.reason == "MODEL_UNLOADED" and "qwen3-tiny" in e.message for e in refused), refused
        assert {e.code for e in refused} <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.FAILED_PRECONDITION}
    finally:
        await channel.close()
        await manage.call("LoadModel", mpb.LoadModelRequest(model_id="qwen3-tiny"))
        await manage.close()
