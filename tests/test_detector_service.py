"""The detector service over gRPC, in-process on port 0, with real model files: the committed YOLO fixture
(trained on the synthetic world) and the tiny random-init RF-DETR Nano."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import shutil
from pathlib import Path

import grpc
import numpy as np
import pytest
import pytest_asyncio
import yaml
from PIL import Image

from svc_detector import tiny
from svc_detector.server import build_spec
from svc_detector.settings import DetectorSettings
from tator_core.client import ServiceClient, image_ref
from tator_core.enums import source_name
from tator_core.errors import RemoteError, parse_rpc_error
from tator_core.gen.tator.common.v1 import common_pb2, models_pb2_grpc
from tator_core.gen.tator.common.v1 import models_pb2 as mpb
from tator_core.gen.tator.detector.v1 import detector_pb2 as pb
from tator_core.gen.tator.detector.v1 import detector_pb2_grpc
from tator_core.metrics import QUEUE_DEPTH
from tator_core.server import start_server
from tator_fixtures import LABELMAP, YOLO_FIXTURE
from tator_fixtures.steps.detector import _kind
from tator_fixtures.synth import render_scene

pytestmark = pytest.mark.asyncio(loop_scope="module")
MAX_PIXELS = 4_000_000
YOLO_ID = "yolo-synth"


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def place_yolo(models_dir: Path) -> dict:
    """The committed YOLO fixture, as `tator models build` registers it."""
    out = models_dir / YOLO_ID / "best.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(YOLO_FIXTURE, out)
    return {"id": YOLO_ID, "family": "yolo", "path": f"{YOLO_ID}/best.pt", "labelmap": list(LABELMAP),
            "default": True, "options": {}}


def write_registry(models_dir: Path, entries: list[dict], name: str = "registry.yaml") -> Path:
    path = models_dir / name
    path.write_text(yaml.safe_dump({"models": entries}, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("detector-models")
    yolo = place_yolo(d)
    (d / "broken").mkdir()
    (d / "broken" / "best.pt").write_bytes(b"this is not a checkpoint")
    entries = [yolo, *tiny.build(d),
               {"id": "gone", "family": "rfdetr", "path": "gone/model.pth", "options": {"variant": "nano"}},
               {"id": "broken", "family": "yolo", "path": "broken/best.pt"},
               {"id": "yolo-wrongmap", "family": "yolo", "path": yolo["path"], "labelmap": ["car", "person"]}]
    write_registry(d, entries)
    write_registry(d, [yolo], "yolo-only.yaml")
    return d


async def start(registry: Path, **overrides):
    settings = DetectorSettings.load([], port=0, device="cpu", registry=registry, metrics_port=-1,
                                     max_image_pixels=MAX_PIXELS, **overrides)
    running = await start_server(build_spec(settings), settings)
    await asyncio.wait_for(running.ready.wait(), 300)
    assert running.warmup_error is None
    return running, ServiceClient(running.address, detector_pb2_grpc.DetectorServiceStub, timeout_s=120)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def service(models_dir):
    running, client = await start(models_dir / "registry.yaml")
    yield client
    await client.close()
    await running.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def manage(service):
    """The same service's tator.common.v1.ModelManagementService."""
    client = ServiceClient(service.address, models_pb2_grpc.ModelManagementServiceStub, timeout_s=120)
    yield client
    await client.close()


@pytest.fixture(scope="module")
def scene() -> tuple[bytes, int, int]:
    image, _ = render_scene(7, 2)
    return png(np.asarray(image)), image.width, image.height


async def rpc_error(client: ServiceClient, method: str, request, **kw) -> RemoteError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.call(method, request, **kw)
    return parse_rpc_error(err.value)


def detect_request(data: bytes, **fields) -> pb.DetectRequest:
    plan = fields.pop("tile_plan", None)
    req = pb.DetectRequest(image=image_ref(data, with_bytes=False), **fields)
    if plan:
        req.tile_plan.CopyFrom(common_pb2.TilePlan(**plan))
    return req


# --- model control ------------------------------------------------------------------

async def test_list_models_reports_state_version_labelmap_and_defaults(service, models_dir):
    info = {m.id: m for m in await service.list_models()}
    assert set(info) == {YOLO_ID, "rfdetr-nano", "gone", "broken", "yolo-wrongmap"}
    for mid in (YOLO_ID, "rfdetr-nano"):  # the warm-up loaded each family's default
        m = info[mid]
        assert (m.state, m.loaded, m.is_default, m.device) == (common_pb2.MODEL_STATE_READY, True, True, "cpu")
    weights = models_dir / "rfdetr-nano" / "model.pth"
    assert info["rfdetr-nano"].version == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert list(info["rfdetr-nano"].labelmap) == list(LABELMAP) and info["rfdetr-nano"].family == "rfdetr"
    assert info["rfdetr-nano"].extra["resolution"] == str(tiny.RESOLUTION)
    gone = info["gone"]
    assert gone.state == common_pb2.MODEL_STATE_MISSING and "gone/model.pth" in gone.reason and not gone.version
    assert not info["broken"].loaded and not info["broken"].is_default


async def test_load_and_unload(service, manage, scene):
    data, _, _ = scene
    resp = await manage.call("UnloadModel", mpb.UnloadModelRequest(model_id=YOLO_ID))
    assert (resp.model.loaded, resp.model.state) == (False, common_pb2.MODEL_STATE_AVAILABLE)
    # An unloaded model stays unloaded: Detect refuses it by name instead of loading it again.
    err = await rpc_error(service, "Detect", detect_request(data, model_ids=[YOLO_ID]), image_data=data)
    assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "MODEL_UNLOADED") and YOLO_ID in err.message
    listed = await manage.call("ListModels", mpb.ListModelsRequest())
    assert not next(m for m in listed.models if m.id == YOLO_ID).loaded
    resp = await manage.call("LoadModel", mpb.LoadModelRequest(model_id=YOLO_ID))
    assert (resp.model.loaded, resp.model.state) == (True, common_pb2.MODEL_STATE_READY)
    assert resp.model.extra["imgsz"].isdigit()
    assert (await service.call("Detect", detect_request(data, model_ids=[YOLO_ID]), image_data=data)).runs


@pytest.mark.parametrize("method, model_id, code, reason, text", [
    ("LoadModel", "nobody", "NOT_FOUND", "MODEL_NOT_FOUND", "nobody"),
    ("UnloadModel", "nobody", "NOT_FOUND", "MODEL_NOT_FOUND", "nobody"),
    ("SetDefaultModel", "nobody", "NOT_FOUND", "MODEL_NOT_FOUND", "nobody"),
    ("LoadModel", "gone", "FAILED_PRECONDITION", "MODEL_MISSING", "gone/model.pth"),
    ("LoadModel", "broken", "FAILED_PRECONDITION", "MODEL_LOAD_FAILED", "broken"),
    ("LoadModel", "yolo-wrongmap", "FAILED_PRECONDITION", "LABELMAP_MISMATCH", "[0]"),
])
async def test_load_errors(manage, method, model_id, code, reason, text):
    request = getattr(mpb, f"{method}Request")(model_id=model_id)
    err = await rpc_error(manage, method, request)
    assert (err.code.name, err.reason) == (code, reason) and text in err.message


async def test_failed_load_shows_in_list_models(manage):
    await rpc_error(manage, "LoadModel", mpb.LoadModelRequest(model_id="broken"))
    resp = await manage.call("ListModels", mpb.ListModelsRequest())
    broken = next(m for m in resp.models if m.id == "broken")
    assert broken.state == common_pb2.MODEL_STATE_FAILED and broken.reason and not broken.loaded


async def test_list_models_pages_by_id(manage):
    seen, token = [], ""
    for _ in range(10):
        resp = await manage.call("ListModels", mpb.ListModelsRequest(page_size=2, page_token=token))
        assert len(resp.models) <= 2
        seen += [m.id for m in resp.models]
        token = resp.next_page_token
        if not token:
            break
    assert seen == sorted({YOLO_ID, "rfdetr-nano", "gone", "broken", "yolo-wrongmap"})
    err = await rpc_error(manage, "ListModels", mpb.ListModelsRequest(page_token="not-a-token"))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and err.metadata["field"] == "page_token"


async def test_set_default_survives_a_restart(models_dir, scene, tmp_path):
    data, _, _ = scene
    home = tmp_path / "models"
    shutil.copytree(models_dir, home)  # the module's registry stays as it is
    running, client = await start(home / "yolo-only.yaml")
    try:
        doc = yaml.safe_load((home / "yolo-only.yaml").read_text())
        doc["models"].append({**doc["models"][0], "id": "yolo-second", "default": False})
        (home / "yolo-only.yaml").write_text(yaml.safe_dump(doc))
    finally:
        await client.close()
        await running.stop()
    for step in ("set", "after restart"):
        running, client = await start(home / "yolo-only.yaml")
        manage = ServiceClient(running.address, models_pb2_grpc.ModelManagementServiceStub, timeout_s=120)
        try:
            if step == "set":
                resp = await manage.call("SetDefaultModel", mpb.SetDefaultModelRequest(model_id="yolo-second"))
                assert resp.model.is_default
            listed = {m.id: m for m in (await manage.call("ListModels", mpb.ListModelsRequest())).models}
            assert listed["yolo-second"].is_default and not listed[YOLO_ID].is_default, step
            # a request that names no model runs the new default
            resp = await client.call("Detect", detect_request(data), image_data=data)
            assert [r.model_id for r in resp.runs] == ["yolo-second"], step
        finally:
            await manage.close()
            await client.close()
            await running.stop()


async def test_unload_fails_queued_calls_at_once_naming_the_model(models_dir, scene):
    data, _, _ = scene
    running, client = await start(models_dir / "yolo-only.yaml", max_batch=1, max_delay_ms=0, max_queue=64)
    manage = ServiceClient(running.address, models_pb2_grpc.ModelManagementServiceStub, timeout_s=120)
    try:
        req = detect_request(data, model_ids=[YOLO_ID], mode=pb.DETECT_MODE_TILED, tile_plan={"size": 64})
        await client.call("Detect", req, image_data=data)  # the image is cached: later calls send only its hash
        # A channel without the clients' retry of UNAVAILABLE (which would ask again and then hear that the
        # model is unloaded): this test looks at the first answer.
        channel = grpc.aio.insecure_channel(running.address, options=[("grpc.enable_retries", 0)])
        stub = detector_pb2_grpc.DetectorServiceStub(channel)
        calls = [asyncio.ensure_future(stub.Detect(req, timeout=60)) for _ in range(24)]
        depth = QUEUE_DEPTH.labels("detector")
        for _ in range(600):  # the service runs in this process: wait until calls wait in the model's queue
            if depth._value.get() >= 3:
                break
            await asyncio.sleep(0.01)
        assert depth._value.get() >= 3, "no calls queued behind the device"
        await manage.call("UnloadModel", mpb.UnloadModelRequest(model_id=YOLO_ID))
        outcomes = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 60)
        await channel.close()
        refused = [parse_rpc_error(o) for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
        assert refused, "every call ran before the unload: nothing was queued"
        unavailable = [e for e in refused if e.code == grpc.StatusCode.UNAVAILABLE]
        assert unavailable and all(YOLO_ID in e.message and e.reason == "MODEL_UNLOADED" for e in unavailable)
        # what was not queued when the unload came either ran or was refused as unloaded, nothing else
        assert all(e.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.FAILED_PRECONDITION) for e in refused)
    finally:
        await manage.close()
        await client.close()
        await running.stop()


# --- detect ---------------------------------------------------------------------

async def test_both_models_in_one_call_full_and_tiled(service, scene):
    data, width, height = scene
    req = detect_request(data, model_ids=[YOLO_ID, "rfdetr-nano"], mode=pb.DETECT_MODE_BOTH, conf=0.02,
                         tile_plan={"size": 128, "overlap": 0.25})
    resp = await service.call("Detect", req, image_data=data)
    runs = {(r.model_id, _kind(r)): r for r in resp.runs}
    assert set(runs) == {(m, p) for m in (YOLO_ID, "rfdetr-nano") for p in ("full", "tiled")}
    tiles = runs[("rfdetr-nano", "tiled")].tiles
    assert tiles > 1 and runs[(YOLO_ID, "tiled")].tiles == tiles and runs[("rfdetr-nano", "full")].tiles == 1
    assert runs[("rfdetr-nano", "tiled")].batch_size == tiles  # one forward for all tiles of the image
    # every pass ran a forward: its share of the compute is a positive Duration, well under the call's total
    assert all(0 < r.compute.ToNanoseconds() < resp.timing.total.ToNanoseconds() for r in resp.runs)
    # the random-init RF-DETR scores ~0.03-0.05: at conf 0.02 it reports boxes, which must be well-formed
    assert {source_name(d.source) for d in resp.detections} == {"yolo", "rfdetr"}
    family = {YOLO_ID: "yolo", "rfdetr-nano": "rfdetr"}
    for d in resp.detections:
        assert source_name(d.source) == family[d.model_id] and d.score >= 0.02 - 1e-6 and d.score <= 1
        assert 0 <= d.box.x1 < d.box.x2 <= width and 0 <= d.box.y1 < d.box.y2 <= height
        assert d.label == LABELMAP[d.class_id]
        w = d.window
        assert w.name == "full" or w.name.startswith("tile_")
        assert w.box.x1 - 1e-3 <= d.box.x1 and d.box.x2 <= w.box.x2 + 1e-3
    for mid in family:
        kept = sum(r.kept_detections for r in resp.runs if r.model_id == mid)
        assert kept == sum(1 for d in resp.detections if d.model_id == mid)
        assert kept <= 300
    assert (resp.mode, resp.merge.method, round(resp.merge.iou, 3)) == (pb.DETECT_MODE_BOTH, pb.MERGE_METHOD_NMS, 0.5)
    assert (round(resp.conf, 3), round(resp.iou, 3), resp.max_det) == (0.02, 0.45, 300)
    assert (resp.tile_plan.size, round(resp.tile_plan.overlap, 3)) == (128, 0.25)
    stages = [s.stage for s in resp.timing.stages]
    assert stages[0] == "decode" and f"model:{YOLO_ID}" in stages and resp.timing.total.ToNanoseconds() > 0


async def test_empty_model_ids_run_each_family_default(service, scene):
    data, _, _ = scene
    resp = await service.call("Detect", detect_request(data), image_data=data)
    assert [(r.model_id, _kind(r)) for r in resp.runs] == [(YOLO_ID, "full"), ("rfdetr-nano", "full")]
    assert (resp.mode, round(resp.conf, 3), resp.tile_plan.size) == (pb.DETECT_MODE_FULL, 0.45, 0)


async def test_tiled_with_no_detections_stays_empty_and_says_what_ran(service, scene):
    data, _, _ = scene
    req = detect_request(data, model_ids=["rfdetr-nano"], mode=pb.DETECT_MODE_TILED, conf=0.99,
                         tile_plan={"size": 160})
    resp = await service.call("Detect", req, image_data=data)
    assert len(resp.detections) == 0
    assert [(_kind(r), r.raw_detections, r.kept_detections) for r in resp.runs] == [("tiled", 0, 0)]
    assert resp.mode == pb.DETECT_MODE_TILED and not resp.tile_plan.include_full and not resp.warnings


async def test_notes_come_typed_with_their_code_and_subject(service, scene):
    data, _, _ = scene
    req = detect_request(data, model_ids=["rfdetr-nano", "rfdetr-nano"], mode=pb.DETECT_MODE_TILED, conf=0.99,
                         tile_plan={"size": 160, "include_full": True})
    resp = await service.call("Detect", req, image_data=data)
    assert [(w.code, w.subject) for w in resp.warnings] == [
        ("include_full_promoted", "tile_plan.include_full"), ("duplicate_model_ids", "rfdetr-nano")]
    assert all(w.message for w in resp.warnings) and resp.mode == pb.DETECT_MODE_BOTH


async def test_default_tiles_are_each_models_input_size(service, scene):
    """No tile size in the request: YOLO tiles at its registry imgsz (160), RF-DETR at its resolution."""
    data, width, height = scene
    req = detect_request(data, mode=pb.DETECT_MODE_TILED, conf=0.99)
    resp = await service.call("Detect", req, image_data=data)
    sizes = {r.model_id: r.tile_size for r in resp.runs}
    rfdetr = next(m for m in await service.list_models()
                  if m.id == "rfdetr-nano")
    assert sizes == {YOLO_ID: 160, "rfdetr-nano": int(rfdetr.extra["resolution"])}
    assert resp.tile_plan.size == 0
    tiles = {r.model_id: r.tiles for r in resp.runs}
    assert tiles[YOLO_ID] > 1 or max(width, height) <= 160
    explicit = await service.call("Detect", detect_request(data, mode=pb.DETECT_MODE_TILED, conf=0.99,
                                                           tile_plan={"size": 96}), image_data=data)
    assert {r.tile_size for r in explicit.runs} == {96}


async def test_wbf_merge_is_echoed(service, scene):
    data, _, _ = scene
    req = detect_request(data, model_ids=["rfdetr-nano"], mode=pb.DETECT_MODE_TILED, conf=0.02,
                         merge=pb.MergeSettings(method=pb.MERGE_METHOD_WBF, iou=0.3), tile_plan={"size": 160})
    resp = await service.call("Detect", req, image_data=data)
    assert (resp.merge.method, round(resp.merge.iou, 3)) == (pb.MERGE_METHOD_WBF, 0.3)


async def test_expected_labelmap_normalised_match_and_mismatch(service, scene):
    data, _, _ = scene
    ok = detect_request(data, model_ids=["rfdetr-nano"], expected_labelmap=["Circle", "SQUARE", "tri_angle"])
    assert (await service.call("Detect", ok, image_data=data)).runs
    bad = detect_request(data, model_ids=[YOLO_ID, "rfdetr-nano"], expected_labelmap=["circle", "hexagon", "triangle"])
    err = await rpc_error(service, "Detect", bad, image_data=data)
    assert (err.code.name, err.reason) == ("FAILED_PRECONDITION", "LABELMAP_MISMATCH")
    assert "[1]" in err.metadata["positions"] and "hexagon" in err.message


@pytest.mark.parametrize("fields, code, reason, text", [
    ({"model_ids": ["nobody"]}, "NOT_FOUND", "MODEL_NOT_FOUND", "nobody"),
    ({"model_ids": ["gone"]}, "FAILED_PRECONDITION", "MODEL_MISSING", "gone/model.pth"),
    ({"conf": 1.5}, "INVALID_ARGUMENT", "INVALID_FIELD", "conf"),
    ({"conf": float("nan")}, "INVALID_ARGUMENT", "INVALID_FIELD", "conf"),
    ({"iou": -0.1}, "INVALID_ARGUMENT", "INVALID_FIELD", "iou"),
    ({"max_det": 0}, "INVALID_ARGUMENT", "INVALID_FIELD", "max_det"),
    ({"merge": pb.MergeSettings(iou=1.5)}, "INVALID_ARGUMENT", "INVALID_FIELD", "merge.iou"),
    ({"tile_plan": {"size": 160, "overlap": 0.95}}, "INVALID_ARGUMENT", "INVALID_FIELD", "tile_plan.overlap"),
    ({"tile_plan": {"size": 16}, "mode": pb.DETECT_MODE_TILED}, "INVALID_ARGUMENT", "INVALID_FIELD", "tile_plan.size"),
    ({"mode": 7}, "INVALID_ARGUMENT", "INVALID_FIELD", "mode"),
    ({"merge": pb.MergeSettings(method=9)}, "INVALID_ARGUMENT", "INVALID_FIELD", "merge.method"),
])
async def test_detect_errors(service, scene, fields, code, reason, text):
    data, _, _ = scene
    err = await rpc_error(service, "Detect", detect_request(data, **fields), image_data=data)
    assert (err.code.name, err.reason) == (code, reason) and text in err.message


@pytest.mark.parametrize("data, code, reason", [
    (b"definitely not an image", "INVALID_ARGUMENT", "IMAGE_INVALID"),
    (png(np.zeros((2100, 2100, 3), np.uint8)), "INVALID_ARGUMENT", "IMAGE_TOO_LARGE"),
])
async def test_bad_images(service, data, code, reason):
    err = await rpc_error(service, "Detect", pb.DetectRequest(image=image_ref(data)))
    assert (err.code.name, err.reason) == (code, reason)


async def test_image_not_cached_and_tile_fanout_cap(service):
    data = png(np.zeros((1900, 1900, 3), np.uint8))
    err = await rpc_error(service, "Detect", pb.DetectRequest(image=image_ref(data, with_bytes=False)))
    assert (err.code.name, err.reason) == ("FAILED_PRECONDITION", "IMAGE_NOT_CACHED")
    req = detect_request(data, model_ids=[YOLO_ID], mode=pb.DETECT_MODE_TILED, tile_plan={"size": 64, "overlap": 0.5})
    err = await rpc_error(service, "Detect", req, image_data=data)
    assert (err.code.name, err.reason) == ("INVALID_ARGUMENT", "FANOUT_CAP_EXCEEDED")


# --- concurrency ------------------------------------------------------------------

async def _burst(client: ServiceClient, data: bytes, n: int = 16) -> list:
    await client.call("Detect", detect_request(data, model_ids=[YOLO_ID]), image_data=data)  # the bytes go once
    requests = [detect_request(data, model_ids=[YOLO_ID], mode=pb.DETECT_MODE_TILED, tile_plan={"size": 128})
                for _ in range(n)]
    return await asyncio.gather(*(client.call("Detect", r, image_data=data) for r in requests),
                                return_exceptions=True)


async def test_16_concurrent_calls_succeed_and_batch(service, scene):
    data, _, _ = scene
    outcomes = await _burst(service, data)
    errors = [parse_rpc_error(o) for o in outcomes if isinstance(o, BaseException)]
    assert errors == []
    batches = [s.batch_size for o in outcomes for s in o.timing.stages if s.stage == f"model:{YOLO_ID}"]
    assert max(batches) > 1  # concurrent jobs were micro-batched


async def test_16_concurrent_calls_with_a_small_queue_get_only_resource_exhausted(models_dir, scene):
    data, _, _ = scene
    running, client = await start(models_dir / "yolo-only.yaml", max_queue=1, max_batch=1, max_delay_ms=0)
    try:
        outcomes = await _burst(client, data)
    finally:
        await client.close()
        await running.stop()
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert all(isinstance(e, grpc.aio.AioRpcError) for e in errors), errors
    assert {(parse_rpc_error(e).code.name, parse_rpc_error(e).reason) for e in errors} == {
        ("RESOURCE_EXHAUSTED", "OVERLOADED")}
    assert 0 < len(errors) < len(outcomes)


# --- CLI ----------------------------------------------------------------------------

async def test_cli_detect_json(service, scene, tmp_path):
    from typer.testing import CliRunner

    from tator_cli.main import app

    data, _, _ = scene
    path = tmp_path / "scene.png"
    path.write_bytes(data)
    args = ["detect", str(path), "--model", "rfdetr-nano", "--mode", "both", "--tile-size", "160", "--conf", "0.02",
            "--address", service.address, "--json"]
    result = await asyncio.to_thread(CliRunner().invoke, app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert {r["kind"] for r in doc["runs"]} == {"PASS_KIND_FULL", "PASS_KIND_TILED"} and doc["mode"] == "DETECT_MODE_BOTH"
    bad = await asyncio.to_thread(CliRunner().invoke, app, ["detect", str(path), "--model", "nobody",
                                                            "--address", service.address])
    assert bad.exit_code == 1 and "MODEL_NOT_FOUND" in bad.output


# --- Tier 1 steps -------------------------------------------------------------------

async def test_tier1_steps_against_the_service(service, models_dir, tmp_path):
    import random

    from tator_fixtures import FUZZ_PACK_DIR
    from tator_fixtures.fuzz_pack import load_fuzz_pack
    from tator_fixtures.regress import StepContext
    from tator_fixtures.steps.detector import detect_full, detect_sahi

    pack = load_fuzz_pack(FUZZ_PACK_DIR)
    for fn, passes in ((detect_full, "full"), (detect_sahi, "tiled")):
        ctx = StepContext(addresses={"detector": service.address}, fuzz_pack=pack, rng=random.Random(fn.__name__),
                          deadline_s=60, models_dir=models_dir, data_root=tmp_path)
        result = await fn(ctx)
        assert set(result["extra"]["runs"]) == {f"{YOLO_ID}:{passes}", f"rfdetr-nano:{passes}"}
        assert result["detections"] == sum(result["sources"].values()) == sum(result["classes"].values())
        again = await fn(StepContext(**{**ctx.__dict__, "rng": random.Random(fn.__name__)}))
        assert again == result  # same draw, same answer


@pytest.mark.gpu
async def test_runs_on_the_configured_cuda_device(models_dir, scene):
    data, _, _ = scene
    running, client = await start(models_dir / "registry.yaml", device="cuda:0")
    try:
        assert {m.device for m in await client.list_models()} == {"cuda:0"}
        req = detect_request(data, model_ids=[YOLO_ID, "rfdetr-nano"], mode=pb.DETECT_MODE_BOTH, conf=0.02,
                             tile_plan={"size": 128})
        resp = await client.call("Detect", req, image_data=data)
        assert len(resp.runs) == 4 and any(source_name(d.source) == "rfdetr" for d in resp.detections)
    finally:
        await client.close()
        await running.stop()
