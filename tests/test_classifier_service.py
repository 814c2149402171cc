"""Classifier service end to end over gRPC with the tiny CLIP/DINOv3 backbones and a head
trained on a small synthetic set: probability vectors, batches of 256, per-box errors, error
statuses, head/backbone pairing, Embed, TrainHead streaming, OOM back-off seen in metrics, the CLI
and the Tier 1 steps."""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import shutil
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest
import pytest_asyncio
import torch
import yaml
from PIL import Image

from tator_core.client import ServiceClient, image_ref
from tator_core.errors import parse_rpc_error
from tator_core.gen.tator.classifier.v1 import classifier_pb2 as pb
from tator_core.gen.tator.classifier.v1 import classifier_pb2_grpc as pbg
from tator_core.gen.tator.common.v1 import common_pb2 as cpb
from tator_core.server import start_server

pytestmark = pytest.mark.asyncio(loop_scope="module")
REPO = Path(__file__).resolve().parent.parent
SYNTH_IMAGES = 40


@dataclass
class World:
    root: Path
    data: Path
    models: Path
    registry: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    from svc_classifier import tiny
    from tator_fixtures.synth import generate

    root = tmp_path_factory.mktemp("classifier")
    data = root / "data" / "synth"
    generate(data, seed=0, images=SYNTH_IMAGES)
    models = root / "models"
    entries = tiny.build(models, seed=0, dataset_dir=data)
    head_dir = models / tiny.HEAD_ID
    stale = models / "head-stale"
    shutil.copytree(head_dir, stale)
    meta = json.loads((stale / "head.json").read_text())
    meta["backbone"]["version"] = "0" * 64
    (stale / "head.json").write_text(json.dumps(meta))
    entries += [
        {"id": "head-wrong-backbone", "family": "head", "path": tiny.HEAD_ID, "options": {"backbone": tiny.DINO_ID}},
        {"id": "head-stale", "family": "head", "path": "head-stale", "options": {"backbone": tiny.CLIP_ID}},
        {"id": "head-gone", "family": "head", "path": "not-here", "options": {}},
    ]
    registry = models / "registry.yaml"
    registry.write_text(yaml.safe_dump({"models": entries}))
    return World(root, data, models, registry)


def settings_for(world: World, **kw):
    from svc_classifier.settings import ClassifierSettings

    return ClassifierSettings.load([], **{"registry": world.registry, "heads_dir": world.root / "heads",
                                          "data_root": world.root / "data", "device": "cpu", "port": 0,
                                          "metrics_port": 0, **kw})


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def svc(world):
    from svc_classifier.server import build_spec

    settings = settings_for(world)
    running = await start_server(build_spec(settings), settings)
    await asyncio.wait_for(running.ready.wait(), 120)
    assert running.warmup_error is None
    yield running
    await running.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def client(svc):
    c = ServiceClient(svc.address, pbg.ClassifierServiceStub, timeout_s=120)
    yield c
    await c.close()


def val_image(world: World, k: int = 0) -> tuple[Path, bytes]:
    path = sorted((world.data / "val" / "images").glob("*.png"))[k]
    return path, path.read_bytes()


def boxes_pb(boxes) -> list[cpb.Box]:
    return [cpb.Box(x1=b[0], y1=b[1], x2=b[2], y2=b[3]) for b in boxes]


def random_boxes(n: int, w: int, h: int, seed: int = 0) -> list[tuple[float, ...]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        bw, bh = rng.uniform(2, w / 2), rng.uniform(2, h / 2)
        x, y = rng.uniform(-bw / 2, w - bw / 2), rng.uniform(-bh / 2, h - bh / 2)  # centre inside: scorable
        out.append((x, y, x + bw, y + bh))
    return out


async def classify(client, data: bytes, boxes, **kw) -> pb.ClassifyResponse:
    req = pb.ClassifyRequest(image=image_ref(data, with_bytes=False), boxes=boxes_pb(boxes), **kw)
    return await client.call("Classify", req, image_data=data)


async def status_of(coro) -> tuple[grpc.StatusCode, str, dict]:
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await coro
    err = parse_rpc_error(exc.value)
    return err.code, err.reason, err.metadata


def assert_distribution(r, n_classes: int) -> None:
    assert r.ok and not r.error
    assert len(r.probabilities) == n_classes
    assert math.isclose(sum(r.probabilities), 1.0, abs_tol=1e-5)
    top = int(np.argmax(r.probabilities))
    assert r.class_id == top and r.score == pytest.approx(r.probabilities[top])
    assert r.margin == pytest.approx(sorted(r.probabilities)[-1] - sorted(r.probabilities)[-2], abs=1e-6)


# --- listing -----------------------------------------------------------------------

async def test_list_models(client):
    models = {m.id: m for m in await client.list_models()}
    state = cpb.ModelState.Name
    assert models["clip-tiny"].is_default and state(models["clip-tiny"].state) == "MODEL_STATE_READY"
    assert models["clip-tiny"].version and models["clip-tiny"].extra["pooling"] == "cls_grid"
    assert models["dinov3-tiny"].family == "dinov3" and not models["dinov3-tiny"].is_default
    head = models["synth-clip-head"]
    assert head.family == "head" and head.is_default and state(head.state) == "MODEL_STATE_READY"
    assert list(head.labelmap) == ["circle", "square", "triangle", "__bg_background"]
    assert head.extra["backbone"] == "clip-tiny" and head.extra["backbone_version"] == models["clip-tiny"].version
    gone = models["head-gone"]
    assert state(gone.state) == "MODEL_STATE_MISSING" and "not-here" in gone.reason


async def test_head_beats_chance_on_val_split(client, world):
    """The tiny build's head: validation accuracy (objects + background crops) well above chance, and
    Classify on the val split's labelled boxes agrees."""
    from svc_classifier.datasets import read_dataset

    val_acc = float({m.id: m for m in await client.list_models()}["synth-clip-head"].extra["val_accuracy"])
    ds = read_dataset(world.data)
    hits = total = 0
    counts = np.zeros(3)
    for item in ds.splits["val"]:
        data = item.image.read_bytes()
        out = await classify(client, data, [b for _, b in item.boxes])
        for (cls, _), r in zip(item.boxes, out.results):
            hits += r.label == ds.labelmap[cls]
            total += 1
            counts[cls] += 1
    chance = counts.max() / counts.sum()  # always answering the commonest class
    print(f"val accuracy {val_acc:.3f}; Classify on {total} val objects {hits / total:.3f}; chance {chance:.3f}")
    assert val_acc >= 0.6
    assert hits / total >= chance + 0.15


async def test_tiny_build_is_deterministic_and_idempotent(world, tmp_path):
    from svc_classifier import tiny
    from tator_core.hashing import path_version

    stamp = (world.models / tiny.HEAD_ID / "head.json").stat().st_mtime_ns
    assert tiny.build(world.models, seed=0, dataset_dir=world.data)[:3] == tiny.build(
        tmp_path / "again", seed=0, dataset_dir=world.data)
    assert (world.models / tiny.HEAD_ID / "head.json").stat().st_mtime_ns == stamp   # reused, not rebuilt
    for model_id in (tiny.CLIP_ID, tiny.DINO_ID, tiny.HEAD_ID):
        assert path_version(world.models / model_id) == path_version(tmp_path / "again" / model_id), model_id


# --- Classify ------------------------------------------------------------------------

async def test_256_boxes_full_probability_vectors(client, world):
    path, data = val_image(world)
    w, h = Image.open(path).size
    boxes = random_boxes(256, w, h, seed=1)
    resp = await classify(client, data, boxes)
    assert list(resp.classes) == ["circle", "square", "triangle", "__bg_background"]
    assert list(resp.background) == [False, False, False, True]
    assert [r.index for r in resp.results] == list(range(256))
    for r in resp.results:
        assert_distribution(r, 4)
        assert r.is_background == (r.label == "__bg_background") and not r.embedding
    assert resp.batch_size_used == 32 and resp.head_id == "synth-clip-head" and resp.backbone_id == "clip-tiny"
    assert [s.stage for s in resp.timing.stages] == ["crop", "embed", "head"] and resp.timing.total.ToNanoseconds() > 0


async def test_batch_size_does_not_change_results(client, world):
    path, data = val_image(world, 1)
    boxes = random_boxes(12, *Image.open(path).size, seed=2)
    one = await classify(client, data, boxes, batch_size=1)
    many = await classify(client, data, boxes, batch_size=64)
    assert one.batch_size_used == 1 and many.batch_size_used == 12
    for a, b in zip(one.results, many.results):
        np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-4)


async def test_bad_boxes_are_per_box_errors(client, world):
    _, data = val_image(world)
    boxes = [(10, 10, 40, 40), (5, 5, 5, 20), (30, 30, 10, 10), (1e6, 1e6, 1e6 + 9, 1e6 + 9),
             (float("nan"), 0, 9, 9), (-50, -50, -1, -1), (0, 0, float("inf"), 9)]
    resp = await classify(client, data, boxes, want_embeddings=True)
    assert [(r.ok, r.error) for r in resp.results] == [
        (True, ""), (False, "degenerate_box"), (False, "degenerate_box"), (False, "outside_image"),
        (False, "non_finite_box"), (False, "outside_image"), (False, "non_finite_box")]
    assert_distribution(resp.results[0], 4)
    assert len(resp.results[0].embedding) == 160 and not resp.results[1].probabilities
    only_bad = await classify(client, data, boxes[1:])
    assert [r.ok for r in only_bad.results] == [False] * 6 and only_bad.batch_size_used == 0


@pytest.mark.parametrize("case,expected", [
    ("no_boxes", ("INVALID_ARGUMENT", "INVALID_FIELD")),
    ("batch_zero", ("INVALID_ARGUMENT", "INVALID_FIELD")),
    ("padding_too_big", ("INVALID_ARGUMENT", "INVALID_FIELD")),
    ("unknown_head", ("NOT_FOUND", "MODEL_NOT_FOUND")),
    ("missing_head", ("FAILED_PRECONDITION", "MODEL_MISSING")),
    ("head_for_other_backbone", ("FAILED_PRECONDITION", "HEAD_BACKBONE_MISMATCH")),
    ("head_on_old_backbone_version", ("FAILED_PRECONDITION", "HEAD_BACKBONE_MISMATCH")),
    ("corrupt_image", ("INVALID_ARGUMENT", "IMAGE_INVALID")),
    ("image_not_cached", ("FAILED_PRECONDITION", "IMAGE_NOT_CACHED")),
])
async def test_classify_errors(svc, world, case, expected):
    _, data = val_image(world)
    req = pb.ClassifyRequest(image=image_ref(data), boxes=boxes_pb([(10, 10, 40, 40)]))
    if case == "no_boxes":
        del req.boxes[:]
    elif case == "batch_zero":
        req.batch_size = 0
    elif case == "padding_too_big":
        req.context_padding = 3.0
    elif case in ("unknown_head", "missing_head", "head_for_other_backbone", "head_on_old_backbone_version"):
        req.head_id = {"unknown_head": "nope", "missing_head": "head-gone", "head_for_other_backbone":
                       "head-wrong-backbone", "head_on_old_backbone_version": "head-stale"}[case]
    elif case == "corrupt_image":
        req.image.CopyFrom(image_ref(b"not an image at all"))
    elif case == "image_not_cached":
        req.image.CopyFrom(image_ref(b"never sent" * 10, with_bytes=False))
    async with grpc.aio.insecure_channel(svc.address) as channel:
        code, reason, meta = await status_of(pbg.ClassifierServiceStub(channel).Classify(req, timeout=60))
    assert (code.name, reason) == expected
    if case == "no_boxes":
        assert meta["field"] == "boxes"


async def test_sha_only_call_after_bytes_reuses_the_cached_image(client, world):
    _, data = val_image(world, 2)
    await classify(client, data, [(1, 1, 30, 30)])
    sent = client.image_bytes_sent
    await classify(client, data, [(2, 2, 31, 31)])
    assert client.image_bytes_sent == sent


# --- Embed ---------------------------------------------------------------------------

async def test_embed_matches_classify_embedding(client, world):
    _, data = val_image(world)
    boxes = [(10, 10, 40, 40), (3, 3, 3, 3), (50, 20, 90, 70)]
    req = pb.EmbedRequest(image=image_ref(data, with_bytes=False), boxes=boxes_pb(boxes), include_full_image=True)
    emb = await client.call("Embed", req, image_data=data)
    assert [(e.index, e.ok) for e in emb.embeddings] == [(0, True), (1, False), (2, True), (-1, True)]
    assert emb.dim == 160 and emb.backbone_id == "clip-tiny" and len(emb.backbone_version) == 64
    assert emb.embeddings[1].error == "degenerate_box"
    cls = await classify(client, data, boxes, want_embeddings=True)
    np.testing.assert_allclose(emb.embeddings[0].values, cls.results[0].embedding, atol=1e-5)
    req.normalize, req.backbone_id = True, "dinov3-tiny"
    dino = await client.call("Embed", req, image_data=data)
    assert dino.backbone_id == "dinov3-tiny" and dino.dim == 64
    for e in dino.embeddings:
        if e.ok:
            assert np.linalg.norm(e.values) == pytest.approx(1.0, abs=1e-5)


async def test_embed_errors(svc, world):
    _, data = val_image(world)
    async with grpc.aio.insecure_channel(svc.address) as channel:
        stub = pbg.ClassifierServiceStub(channel)
        code, reason, _ = await status_of(stub.Embed(pb.EmbedRequest(image=image_ref(data)), timeout=30))
        assert (code.name, reason) == ("INVALID_ARGUMENT", "INVALID_FIELD")
        code, reason, _ = await status_of(stub.Embed(pb.EmbedRequest(
            image=image_ref(data), include_full_image=True, backbone_id="synth-clip-head"), timeout=30))
        assert (code.name, reason) == ("NOT_FOUND", "MODEL_NOT_FOUND")


# --- TrainHead -------------------------------------------------------------------------

async def train(client, **kw) -> tuple[list, pb.TrainedHead | None]:
    events, done = [], None
    async for ev in client.stream("TrainHead", pb.TrainHeadRequest(**kw)):
        assert done is None, "nothing may follow the result"
        if ev.HasField("done"):
            done = ev.done
        else:
            events.append(ev.progress)
    return events, done


async def test_train_mlp_head_streams_and_is_usable_at_once(client, world):
    events, done = await train(client, dataset_dir=str(world.data), head_type=pb.HEAD_TYPE_MLP,
                               head_id="t-mlp", background_crops_per_image=1, seed=3)
    phases = [e.phase for e in events]
    assert phases[0] == "embed" and phases[-1] == "save"
    assert phases == sorted(phases, key=["embed", "fit", "save"].index)
    for phase in ("embed", "fit", "save"):
        done_counts = [e.done for e in events if e.phase == phase]
        assert done_counts == sorted(done_counts) and all(e.done <= e.total for e in events), phase
    embeds = [e for e in events if e.phase == "embed"]
    assert embeds[-1].done == embeds[-1].total == done.train_crops + done.val_crops
    assert done.head_id == "t-mlp" and list(done.classes)[-1] == "__bg_background"
    assert done.val_accuracy > 0.6 and done.model.extra["head_type"] == "mlp"
    assert (world.root / "heads" / "t-mlp" / "head.json").is_file()
    _, data = val_image(world)
    out = await classify(client, data, [(10, 10, 40, 40)], head_id="t-mlp")
    assert out.head_id == "t-mlp"
    assert_distribution(out.results[0], 4)

    from svc_classifier.runtime import ClassifierRuntime

    restarted = ClassifierRuntime(settings_for(world))   # a new process finds the trained head on disk
    assert restarted.head("t-mlp").classes == list(done.classes)
    await restarted.close()


async def test_train_from_coco_with_relative_dir_and_make_default(client, world):
    coco = world.root / "data" / "coco_only"
    if not coco.exists():
        shutil.copytree(world.data, coco)
        for split in ("train", "val", "test"):
            shutil.rmtree(coco / split / "labels")
    _, done = await train(client, dataset_dir="coco_only", head_id="t-coco", max_crops_per_class=20,
                          normalize_embeddings=True, make_default=True)
    assert done.train_crops <= 3 * 20 and list(done.classes) == ["circle", "square", "triangle"]
    assert done.model.is_default
    _, data = val_image(world)
    out = await classify(client, data, [(10, 10, 40, 40)])
    assert out.head_id == "t-coco" and len(out.results[0].probabilities) == 3
    _, done = await train(client, dataset_dir=str(world.data), head_id="t-restore", make_default=True,
                          background_crops_per_image=1)
    assert done.model.is_default


async def test_train_from_crop_folders(client, world, tmp_path):
    from test_classifier_units import crop_folders

    root = crop_folders(world.data, world.root / "data" / "crops")   # inside the data root: paths are confined
    _, done = await train(client, dataset_dir=str(root), head_id="t-crops", background_crops_per_image=3)
    assert list(done.classes) == ["circle", "square", "triangle", "__bg_background"]
    assert done.val_accuracy > 0.5 and done.val_crops > 0


async def test_trained_head_records_its_training_images_and_the_leakage_check_sees_them(client, world):
    """A head trained at run time lists (ModelInfo.trained_on) the SHA-256 of every train and val image
    of its dataset, after a restart too; a calibration whose test split holds one of them is refused
    naming that head, and one on a dataset drawn with another seed passes."""
    from svc_classifier.runtime import ClassifierRuntime
    from svc_orchestrator.calibration import leakage
    from svc_orchestrator.calibration.flow import plan_split
    from svc_orchestrator.convert.calibration import calibration_request, service_models
    from svc_orchestrator.datasets import load_dataset
    from tator_core.errors import TatorError
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as opb
    from tator_fixtures.synth import generate

    _, done = await train(client, dataset_dir=str(world.data), head_id="t-leak", seed=5)
    fitted = [p for s in ("train", "val") for p in sorted((world.data / s / "images").glob("*.png"))]
    test_only = sorted((world.data / "test" / "images").glob("*.png"))
    assert fitted and test_only
    rec = done.model.trained_on
    assert set(rec.image_sha256) == {leakage.file_sha256(p) for p in fitted}
    assert rec.images == len(fitted) and not set(rec.image_sha256) & {leakage.file_sha256(p) for p in test_only}
    restarted = ClassifierRuntime(settings_for(world))   # read back from the head's directory
    assert restarted.head_info("t-leak").trained_on.image_sha256 == frozenset(rec.image_sha256)
    await restarted.close()

    listed = await client.list_models()  # tator.common.v1.ModelManagementService, every page
    models = service_models(opb.ListModelsResponse(services=[opb.ServiceModels(service="classifier",
                                                                               models=list(listed))]))
    config = opb.CalibrationConfig(prepass=opb.PrepassConfig(classifier_id="t-leak", enable_yolo=False,
                                                             enable_rfdetr=False, enable_sam3_text=False,
                                                             enable_sam3_similarity=False))
    request = calibration_request(config)
    used = leakage.used_models(models, request.prepass)
    assert [m.id for m in used] == ["t-leak"]

    def found_in(root: Path) -> dict:
        ds = load_dataset(root)
        _, split = plan_split(ds, request.settings)
        return leakage.overlap(ds, split, used)

    same = found_in(world.data)    # the calibration re-splits all images: its test split holds fitted ones
    assert same["t-leak"]["overlap"]["test"]
    with pytest.raises(TatorError) as err:
        leakage.check(same, allow=False)
    assert (err.value.code.name, err.value.reason) == ("FAILED_PRECONDITION", "TRAINING_DATA_OVERLAP")
    assert err.value.metadata["model_id"] == "t-leak"
    assert any(w.startswith("LEAKAGE") and "t-leak" in w for w in leakage.check(same, allow=True))
    unseen = world.root / "data" / "unseen-leak"
    if not unseen.exists():
        generate(unseen, seed=11, images=12)
    other = found_in(unseen)
    assert other["t-leak"]["known"] and not any(other["t-leak"]["overlap"].values())
    assert leakage.check(other, allow=False) == []


@pytest.mark.parametrize("kw,expected", [
    ({"dataset_dir": "not-here"}, ("NOT_FOUND", "DATASET_NOT_FOUND")),
    ({"dataset_dir": "/definitely/not/here"}, ("INVALID_ARGUMENT", "INVALID_FIELD")),
    ({"dataset_dir": ""}, ("INVALID_ARGUMENT", "INVALID_FIELD")),
    ({"head_id": "bad id!"}, ("INVALID_ARGUMENT", "INVALID_FIELD")),
    ({"head_id": "synth-clip-head"}, ("INVALID_ARGUMENT", "INVALID_FIELD")),
    ({"head_id": ".."}, ("INVALID_ARGUMENT", "INVALID_FIELD")),
    ({"head_id": ".hidden"}, ("INVALID_ARGUMENT", "INVALID_FIELD")),
    ({"backbone_id": "nope"}, ("NOT_FOUND", "MODEL_NOT_FOUND")),
])
async def test_train_errors(client, world, kw, expected):
    kw = {"dataset_dir": str(world.data), **kw}
    code, reason, _ = await status_of(train(client, **kw))
    assert (code.name, reason) == expected


async def test_train_head_says_nothing_about_paths_outside_the_data_root(client, world):
    """Existing and missing paths outside the root get the same answer, naming no server path."""
    async def answer(dataset_dir: str):
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await train(client, dataset_dir=dataset_dir)
        return parse_rpc_error(exc.value)

    answers = set()
    for outside in ("/etc", "/definitely/not/here", "../../..", "../" * 12 + "etc", str(world.root / "heads")):
        err = await answer(outside)
        assert (err.code.name, err.reason) == ("INVALID_ARGUMENT", "INVALID_FIELD"), outside
        answers.add(err.message)
    assert len(answers) == 1 and str(world.root) not in answers.pop()
    err = await answer("not-here")
    assert err.code.name == "NOT_FOUND" and str(world.root) not in err.message
    assert all(str(world.root) not in v for v in err.metadata.values())


# --- OOM back-off through the service ----------------------------------------------------

class OOMAbove:
    """Wraps a backbone; batches larger than `limit` raise CUDA out-of-memory."""

    def __init__(self, inner, limit: int) -> None:
        self.inner, self.limit = inner, limit
        self.dim, self.pooling = inner.dim, inner.pooling

    def embed(self, crops):
        if len(crops) > self.limit:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory (injected above {self.limit})")
        return self.inner.embed(crops)


def scrape(port: int, name: str, labels: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    line = next((ln for ln in text.splitlines() if ln.startswith(f"{name}{{") and labels in ln), None)
    return float(line.rsplit(" ", 1)[1]) if line else 0.0


async def test_oom_backoff_shows_in_response_and_metrics(world):
    from svc_classifier.runtime import ClassifierRuntime
    from svc_classifier.server import build_spec

    settings = settings_for(world, batch_size=32)
    runtime = ClassifierRuntime(settings, wrap_backbone=lambda bb: OOMAbove(bb, 8))
    running = await start_server(build_spec(settings, runtime=runtime), settings)
    client = ServiceClient(running.address, pbg.ClassifierServiceStub, timeout_s=60)
    try:
        await asyncio.wait_for(running.ready.wait(), 60)
        before = scrape(running.metrics_port, "tator_classifier_oom_shrinks_total", 'backbone="clip-tiny"')
        path, data = val_image(world)
        resp = await classify(client, data, random_boxes(64, *Image.open(path).size, seed=4))
        assert resp.batch_size_used == 8 and all(r.ok for r in resp.results)
        after = scrape(running.metrics_port, "tator_classifier_oom_shrinks_total", 'backbone="clip-tiny"')
        assert after - before == 2   # 32 -> 16 -> 8
        assert scrape(running.metrics_port, "tator_classifier_batch_size_used", 'backbone="clip-tiny"') == 8
    finally:
        await client.close()
        await running.stop()


@pytest.mark.gpu
async def test_cuda_scores_like_cpu_and_backs_off_on_a_real_oom(world):
    """On a GPU: same probabilities as on CPU, and a genuine allocator OOM (not an injected
    exception) is caught and halves the batch."""
    from svc_classifier import classify as plain
    from svc_classifier.runtime import ClassifierRuntime
    from tator_core.images import decode_image

    path, data = val_image(world)
    image = decode_image(data)
    boxes = random_boxes(40, image.width, image.height, seed=5)
    results = {}
    for device in ("cpu", "cuda:0"):
        runtime = ClassifierRuntime(settings_for(world, device=device))
        head, backbone = runtime.pair("")
        results[device] = plain.classify(head, backbone.model, image, boxes, backbone_id=backbone.id)
        await runtime.close()
    for a, b in zip(results["cpu"].results, results["cuda:0"].results):
        np.testing.assert_allclose(a.probabilities, b.probabilities, atol=2e-3)

    class RealOOM:
        def __init__(self, inner):
            self.inner, self.dim, self.pooling = inner, inner.dim, inner.pooling

        def embed(self, crops):
            if len(crops) > 8:
                torch.empty(1 << 50, dtype=torch.uint8, device="cuda:0")  # a petabyte: the allocator refuses
            return self.inner.embed(crops)

    runtime = ClassifierRuntime(settings_for(world, device="cuda:0"), wrap_backbone=RealOOM)
    head, backbone = runtime.pair("")
    out = plain.classify(head, backbone.model, image, boxes, backbone_id=backbone.id, batch_size=32)
    assert out.batch_size_used == 8 and all(r.ok for r in out.results)
    await runtime.close()


# --- CLI and Tier 1 steps -------------------------------------------------------------------

async def run_cli(*args: str) -> tuple[int, str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "tator_cli.main", *args, cwd=str(REPO), env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 180)
    return proc.returncode, out.decode(), err.decode()


async def test_cli_classify_and_train_head(svc, world):
    path, _ = val_image(world)
    rc, out, err = await run_cli("classify", str(path), "--box", "10,10,40,40", "--box", "5,5,5,9", "--json",
                                 "--address", svc.address)
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["results"][0]["ok"] and len(doc["results"][0]["probabilities"]) == len(doc["classes"])
    assert doc["results"][1]["error"] == "degenerate_box"
    rc, out, err = await run_cli("classify", str(path), "--box", "1,1,9,9", "--head", "nope", "--address", svc.address)
    assert rc == 2 and "MODEL_NOT_FOUND" in err
    rc, out, err = await run_cli("train-head", "--dataset", str(world.data), "--head-id", "t-cli", "--head-type", "mlp",
                                 "--json", "--address", svc.address)
    assert rc == 0, err
    assert json.loads(out)["head_id"] == "t-cli"


async def test_tier1_steps(svc, world):
    from tator_fixtures import FUZZ_PACK_DIR
    from tator_fixtures.fuzz_pack import load_fuzz_pack
    from tator_fixtures.regress import StepContext
    from tator_fixtures.steps import classifier as steps

    ctx = StepContext(addresses={"classifier": svc.address}, fuzz_pack=load_fuzz_pack(FUZZ_PACK_DIR),
                      rng=random.Random(0), deadline_s=60, models_dir=world.models, data_root=world.root / "data")
    result = await steps.classify_batch(ctx)
    assert result["detections"] >= 8 and sum(result["classes"].values()) == result["detections"]
    assert 0 <= result["metrics"]["gt_accuracy"] <= 1
    again = await steps.classify_batch(StepContext(**{**ctx.__dict__, "rng": random.Random(0)}))
    assert again == result   # same seed, same draw, same answer
    emb = await steps.embed_boxes(ctx)
    assert emb["extra"]["dim"] == 160
    from tator_fixtures.regress.registry import registered_steps

    smoke = {s.name: s for s in registered_steps()}
    for name in ("core.classifier.health", "core.classifier.list_models"):   # Tier 0 checks of this service
        await smoke[name].fn(ctx)


async def test_model_management_surface(world, tmp_path):
    """tator.common.v1.ModelManagementService on the classifier: an unloaded backbone or head stays
    unloaded until LoadModel, and a default set there is in the registry file after a restart."""
    from svc_classifier import tiny
    from svc_classifier.server import build_spec
    from tator_core.gen.tator.common.v1 import models_pb2 as mpb
    from tator_core.gen.tator.common.v1 import models_pb2_grpc as mpbg

    models = tmp_path / "models"
    shutil.copytree(world.models, models)  # the module's registry stays as it is
    settings = settings_for(world, registry=models / "registry.yaml", heads_dir=tmp_path / "heads")
    _, data = val_image(world)
    box = [(10.0, 10.0, 40.0, 40.0)]
    for step in ("change", "after restart"):
        running = await start_server(build_spec(settings), settings)
        await asyncio.wait_for(running.ready.wait(), 120)
        client = ServiceClient(running.address, pbg.ClassifierServiceStub, timeout_s=120)
        manage = ServiceClient(running.address, mpbg.ModelManagementServiceStub, timeout_s=120)
        try:
            listed = {m.id: m for m in (await manage.call("ListModels", mpb.ListModelsRequest())).models}
            assert {tiny.CLIP_ID, tiny.DINO_ID, tiny.HEAD_ID, "head-stale"} <= set(listed)
            if step == "change":
                assert listed[tiny.CLIP_ID].is_default and listed[tiny.HEAD_ID].is_default
                for mid in (tiny.CLIP_ID, tiny.HEAD_ID):
                    resp = await manage.call("UnloadModel", mpb.UnloadModelRequest(model_id=mid))
                    assert not resp.model.loaded
                    code, _, meta = await status_of(classify(client, data, box))
                    assert code == grpc.StatusCode.FAILED_PRECONDITION and meta["model_id"] == mid
                    resp = await manage.call("LoadModel", mpb.LoadModelRequest(model_id=mid))
                    assert resp.model.loaded and resp.model.state == cpb.MODEL_STATE_READY
                    assert (await classify(client, data, box)).results[0].ok
                await manage.call("SetDefaultModel", mpb.SetDefaultModelRequest(model_id=tiny.DINO_ID))
                await manage.call("SetDefaultModel", mpb.SetDefaultModelRequest(model_id="head-stale"))
                code, reason, _ = await status_of(manage.call("SetDefaultModel",
                                                              mpb.SetDefaultModelRequest(model_id="nobody")))
                assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "MODEL_NOT_FOUND")
            else:
                assert listed[tiny.DINO_ID].is_default and not listed[tiny.CLIP_ID].is_default
                assert listed["head-stale"].is_default and not listed[tiny.HEAD_ID].is_default
                emb = await client.call("Embed", pb.EmbedRequest(image=image_ref(data, with_bytes=False),
                                                                 boxes=boxes_pb(box)), image_data=data)
                assert emb.backbone_id == tiny.DINO_ID  # a request naming no backbone gets the new default
        finally:
            await manage.close()
            await client.close()
            await running.stop()


async def test_unload_fails_calls_waiting_for_the_device_at_once_naming_the_model(world, tmp_path):
    """Classify calls queued behind a running one on the device thread fail with UNAVAILABLE
    MODEL_UNLOADED naming the head when it is unloaded, instead of running into it on the thread."""
    from svc_classifier import tiny
    from svc_classifier.server import build_spec
    from tator_core.gen.tator.common.v1 import models_pb2 as mpb
    from tator_core.gen.tator.common.v1 import models_pb2_grpc as mpbg
    from tator_core.metrics import IN_FLIGHT

    settings = settings_for(world, heads_dir=tmp_path / "heads")
    running = await start_server(build_spec(settings), settings)
    await asyncio.wait_for(running.ready.wait(), 120)
    client = ServiceClient(running.address, pbg.ClassifierServiceStub, timeout_s=120)
    manage = ServiceClient(running.address, mpbg.ModelManagementServiceStub, timeout_s=120)
    # No retry of UNAVAILABLE (the shared client would ask again and then hear FAILED_PRECONDITION).
    channel = grpc.aio.insecure_channel(running.address, options=[("grpc.enable_retries", 0)])
    try:
        path, data = val_image(world)
        boxes = random_boxes(256, *Image.open(path).size)
        await classify(client, data, boxes)  # the image is cached: the calls below send only its hash
        stub = pbg.ClassifierServiceStub(channel)
        req = pb.ClassifyRequest(image=image_ref(data, with_bytes=False), boxes=boxes_pb(boxes))
        calls = [asyncio.ensure_future(stub.Classify(req, timeout=120)) for _ in range(12)]
        in_flight = IN_FLIGHT.labels("classifier")
        for _ in range(1000):  # the service runs in this process: wait until calls wait behind the device
            if in_flight._value.get() >= 4:
                break
            await asyncio.sleep(0.005)
        assert in_flight._value.get() >= 4, "no calls waiting for the device"
        await manage.call("UnloadModel", mpb.UnloadModelRequest(model_id=tiny.HEAD_ID))
        outcomes = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 120)
        refused = [parse_rpc_error(o) for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
        assert any(e.code == grpc.StatusCode.UNAVAILABLE for e in refused), [e.code for e in refused]
        assert all(e.reason == "MODEL_UNLOADED" and tiny.HEAD_ID in e.message for e in refused), refused
        assert {e.code for e in refused} <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.FAILED_PRECONDITION}
    finally:
        await channel.close()
        await manage.close()
        await client.close()
        await running.stop()
