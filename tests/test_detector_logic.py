"""Detector logic on Python types, with a fake backend: params, tiling, shifting, merging, batching, queueing,
model states. No model library is imported, so these run in about a second."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from svc_detector import models as models_mod
from svc_detector.backends import RawDetections, resolve_labelmap
from svc_detector.detect import detect, plan_windows, tile_size_for
from svc_detector.models import DetectorModels
from svc_detector.params import DetectParams, resolve_params
from svc_detector.settings import DetectorSettings
from tator_core.convert import Note
from tator_core.errors import TatorError
from tator_core.geometry import tile_windows
from tator_core.images import DecodedImage
from tator_core.registry import ModelEntry, Registry

LABELMAP = ["circle", "square", "triangle"]


class FakeBackend:
    """Finds the one white (255) rectangle of an image, but only when it lies fully inside the input
    (not touching its border), as class `square`; records the size of every forward."""

    family = "yolo"

    def __init__(self, labelmap=LABELMAP, delay_s: float = 0.0) -> None:
        self.labelmap = list(labelmap)
        self.extra = {"imgsz": "160"}
        self.calls: list[tuple[int, tuple]] = []
        self.delay_s = delay_s

    def predict(self, images, *, conf, iou, max_det):
        self.calls.append((len(images), images[0].shape))
        time.sleep(self.delay_s)
        out = []
        for im in images:
            ys, xs = np.nonzero(im[..., 0] == 255)
            h, w = im.shape[:2]
            if len(xs) and xs.min() > 0 and ys.min() > 0 and xs.max() < w - 1 and ys.max() < h - 1:
                out.append(RawDetections(np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32),
                                         np.array([0.9], np.float32), np.array([1])))
            else:
                out.append(RawDetections.empty())
        return out


def image_with_square(w: int, h: int, box: tuple[int, int, int, int] | None) -> DecodedImage:
    arr = np.zeros((h, w, 3), np.uint8)
    if box is not None:
        x1, y1, x2, y2 = box
        arr[y1:y2, x1:x2] = 255
    arr.setflags(write=False)
    return DecodedImage(sha256=f"{w}x{h}-{box}", array=arr, encoded_size=0)


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    path = tmp_path / "w.pt"
    path.write_bytes(b"fake weights")
    return path


def manager_with(monkeypatch, weights: Path, backend, **settings) -> DetectorModels:
    monkeypatch.setattr(models_mod, "load_backend", lambda entry, device: backend)
    registry = Registry([ModelEntry("fake", "yolo", weights, default=True),
                         ModelEntry("gone", "rfdetr", weights.parent / "nope.pth", default=True)])
    return DetectorModels(registry, "cpu", DetectorSettings(**settings))


async def warmed(manager: DetectorModels, backend: FakeBackend) -> DetectorModels:
    """Load (the load runs one warm-up forward), then forget that forward."""
    await manager.load("fake")
    backend.calls.clear()
    return manager


# --- params -------------------------------------------------------------------

def test_defaults_are_the_documented_ones():
    params, warnings = resolve_params()
    assert (params.mode, params.conf, params.iou, params.max_det) == ("full", 0.45, 0.45, 300)
    assert (params.tile_size, params.overlap, params.merge_method, params.merge_iou) == (0, 0.2, "nms", 0.5)
    assert warnings == []


@pytest.mark.parametrize("kwargs, field", [
    ({"conf": 1.5}, "conf"), ({"conf": float("nan")}, "conf"), ({"iou": -0.1}, "iou"), ({"max_det": 0}, "max_det"),
    ({"tile_size": 32}, "tile_plan.size"), ({"overlap": 0.95}, "tile_plan.overlap"), ({"merge_iou": 2.0}, "merge.iou"),
    ({"mode": "sideways"}, "mode"), ({"merge_method": "vote"}, "merge.method"),
    ({"expected_labelmap": ["a", "b\nc"]}, "expected_labelmap"),
])
def test_bad_values_are_invalid_argument_naming_the_field(kwargs, field):
    with pytest.raises(TatorError) as err:
        resolve_params(**kwargs)
    assert err.value.code.name == "INVALID_ARGUMENT" and err.value.metadata["field"] == field


def test_tiled_with_include_full_runs_both_and_says_so():
    params, warnings = resolve_params(mode="tiled", include_full=True)
    assert params.passes == ("full", "tiled")
    assert [(w.code, w.subject) for w in warnings] == [("include_full_promoted", "tile_plan.include_full")]


def test_tile_plan_over_the_cap_is_refused():
    params, _ = resolve_params(mode="tiled", tile_size=64, overlap=0.5)
    with pytest.raises(TatorError) as err:
        plan_windows(2000, 2000, params, max_tiles=256)
    assert err.value.reason == "FANOUT_CAP_EXCEEDED"
    assert len(plan_windows(2000, 2000, params, max_tiles=10_000)["tiled"]) > 256


def test_registry_labelmap_must_agree_with_checkpoint():
    entry = ModelEntry("m", "yolo", Path("/x"), labelmap=["Circle", "square", "tri_angle"])
    assert resolve_labelmap(entry, ["circle", "Square", "triangle"]) == ["Circle", "square", "tri_angle"]
    with pytest.raises(TatorError) as err:
        resolve_labelmap(entry, ["circle", "square"])
    assert err.value.reason == "LABELMAP_MISMATCH" and "[2]" in err.value.metadata["positions"]


# --- detect -------------------------------------------------------------------

async def test_tile_detections_are_shifted_back_and_merged(monkeypatch, weights):
    backend = FakeBackend()
    manager = manager_with(monkeypatch, weights, backend)
    await warmed(manager, backend)
    image = image_with_square(500, 400, (300, 250, 340, 290))
    params = DetectParams(mode="tiled", tile_size=200, overlap=0.5)
    result = await detect(image, ["fake"], params, manager)
    assert [(d.box, d.label, d.class_id, d.source, d.model_id) for d in result.detections] == [
        ((300.0, 250.0, 340.0, 290.0), "square", 1, "yolo", "fake")]
    tiles = plan_windows(500, 400, params, 256)["tiled"]
    det = result.detections[0]
    assert det.window in tiles and det.window.name.startswith("tile_")
    [run] = result.runs
    assert (run.pass_, run.tiles, run.kept_detections) == ("tiled", len(tiles), 1)
    assert run.raw_detections > 1  # found in several overlapping tiles, merged to one
    # all tiles of the image went through the model in one forward
    assert backend.calls == [(len(tiles), (200, 200, 3))] and run.batch_size == len(tiles)
    await manager.close()


async def test_tiles_are_chunked_at_max_images_per_call(monkeypatch, weights):
    backend = FakeBackend()
    manager = manager_with(monkeypatch, weights, backend, max_images_per_call=4)
    await warmed(manager, backend)
    params = DetectParams(mode="tiled", tile_size=100, overlap=0.0)
    await detect(image_with_square(400, 300, None), ["fake"], params, manager)
    assert [n for n, _ in backend.calls] == [4, 4, 4]
    await manager.close()


async def test_tiled_zero_stays_zero_without_a_full_frame_pass(monkeypatch, weights):
    backend = FakeBackend()
    manager = manager_with(monkeypatch, weights, backend)
    await warmed(manager, backend)
    # The square touches the image border, so no window "sees" it whole: every pass finds nothing.
    image = image_with_square(600, 600, (0, 0, 30, 30))
    result = await detect(image, ["fake"], DetectParams(mode="tiled", tile_size=256), manager)
    assert result.detections == []
    assert [(r.pass_, r.raw_detections) for r in result.runs] == [("tiled", 0)]
    assert all(shape == (256, 256, 3) for _, shape in backend.calls)  # no full-frame forward happened
    await manager.close()


@pytest.mark.parametrize("method", ["nms", "wbf"])
async def test_both_merges_full_and_tiles_and_counts_kept_per_pass(monkeypatch, weights, method):
    manager = manager_with(monkeypatch, weights, FakeBackend())
    image = image_with_square(300, 300, (20, 20, 60, 60))
    params = DetectParams(mode="both", tile_size=160, overlap=0.2, merge_method=method)
    result = await detect(image, ["fake"], params, manager)
    assert [d.box for d in result.detections] == [(20.0, 20.0, 60.0, 60.0)]
    assert {r.pass_ for r in result.runs} == {"full", "tiled"}
    assert sum(r.kept_detections for r in result.runs) == 1
    await manager.close()


async def test_expected_labelmap_mismatch_names_positions(monkeypatch, weights):
    backend = FakeBackend()
    manager = manager_with(monkeypatch, weights, backend)
    image = image_with_square(100, 100, None)
    ok = await detect(image, ["fake"], DetectParams(expected_labelmap=("CIRCLE", "square", "Tri-angle")), manager)
    assert ok.runs
    calls = len(backend.calls)
    with pytest.raises(TatorError) as err:
        await detect(image, ["fake"], DetectParams(expected_labelmap=("circle", "square", "hexagon")), manager)
    assert err.value.reason == "LABELMAP_MISMATCH" and err.value.code.name == "FAILED_PRECONDITION"
    assert "[2] 'triangle' != 'hexagon'" in err.value.metadata["positions"]
    assert len(backend.calls) == calls  # refused before any inference
    await manager.close()


async def test_concurrent_jobs_share_one_forward(monkeypatch, weights):
    backend = FakeBackend()
    manager = await warmed(manager_with(monkeypatch, weights, backend, max_delay_ms=200, max_batch=8), backend)
    images = [image_with_square(120, 90, (10 + i, 10, 30 + i, 30)) for i in range(3)]
    results = await asyncio.gather(*(detect(im, ["fake"], DetectParams(), manager) for im in images))
    assert backend.calls == [(3, (90, 120, 3))]
    assert [r.detections[0].box[0] for r in results] == [10.0, 11.0, 12.0]  # each job got its own output
    assert all(r.stages[0].batch_size == 3 for r in results)
    await manager.close()


async def test_full_queue_is_resource_exhausted(monkeypatch, weights):
    manager = manager_with(monkeypatch, weights, FakeBackend(delay_s=0.2), max_queue=1, max_batch=1, max_delay_ms=0)
    await manager.load("fake")
    image = image_with_square(64, 64, None)
    outcomes = await asyncio.gather(*(detect(image, ["fake"], DetectParams(), manager) for _ in range(6)),
                                    return_exceptions=True)
    errs = [o for o in outcomes if isinstance(o, BaseException)]
    assert errs and all(isinstance(e, TatorError) and e.code.name == "RESOURCE_EXHAUSTED" for e in errs)
    assert len(errs) < len(outcomes)
    await manager.close()


# --- model states ---------------------------------------------------------------

async def test_default_selection_skips_missing_weights_with_a_warning(monkeypatch, weights):
    manager = manager_with(monkeypatch, weights, FakeBackend())
    ids, warnings = manager.select([])
    assert ids == ["fake"] and [(w.code, w.subject) for w in warnings] == [("default_model_skipped", "gone")]
    assert "nope.pth" in warnings[0].message
    assert manager.select(["fake", "fake"]) == (["fake"], [Note("duplicate_model_ids", "fake", "named more than once; ran once")])
    with pytest.raises(TatorError) as err:
        manager.select(["nobody"])
    assert err.value.code.name == "NOT_FOUND" and err.value.reason == "MODEL_NOT_FOUND"
    with pytest.raises(TatorError) as err:
        await manager.load("gone")
    assert err.value.reason == "MODEL_MISSING" and "nope.pth" in err.value.message
    assert manager.status("gone").state == "MISSING"
    await manager.close()


async def test_failed_load_is_a_state_and_retries_when_the_file_changes(monkeypatch, weights):
    attempts = []

    def broken(entry, device):
        attempts.append(entry.id)
        raise RuntimeError("truncated checkpoint")

    monkeypatch.setattr(models_mod, "load_backend", broken)
    manager = DetectorModels(Registry([ModelEntry("fake", "yolo", weights)]), "cpu", DetectorSettings())
    for _ in range(2):
        with pytest.raises(TatorError) as err:
            await manager.load("fake")
        assert err.value.reason == "MODEL_LOAD_FAILED" and "truncated checkpoint" in err.value.message
    assert attempts == ["fake"]
    status = manager.status("fake")
    assert (status.state, status.loaded) == ("FAILED", False) and "truncated" in status.reason
    weights.write_bytes(b"new weights, longer than before")
    monkeypatch.setattr(models_mod, "load_backend", lambda entry, device: FakeBackend())
    await manager.load("fake")
    assert manager.status("fake").state == "READY"
    await manager.unload("fake")
    assert (manager.status("fake").state, manager.status("fake").loaded) == ("AVAILABLE", False)
    await manager.close()


def test_settings_accept_the_stack_flags_and_own_fields():
    settings = DetectorSettings.load(["--host", "127.0.0.1", "--port", "50051", "--metrics-port", "9461", "--device",
                                      "cpu", "--registry", "/m/registry.yaml", "--max-batch", "4",
                                      "--max-delay-ms", "0", "--max-queue", "2"])
    assert (settings.port, settings.metrics_port, settings.device, str(settings.registry)) == (
        50051, 9461, "cpu", "/m/registry.yaml")
    assert (settings.max_batch, settings.max_delay_ms, settings.max_queue) == (4, 0.0, 2)


def test_default_tile_size_is_the_input_size_and_grows_to_fit_the_cap() -> None:
    warnings: list[Note] = []
    params = DetectParams(mode="tiled", overlap=0.2)
    assert tile_size_for(1024, 1024, params, 160, 256, warnings, "m") == 160 and not warnings
    grown = tile_size_for(4000, 3000, params, 160, 64, warnings, "m")
    assert len(tile_windows(4000, 3000, grown, 0.2)) <= 64 < len(tile_windows(4000, 3000, 160, 0.2))
    [w] = warnings
    assert (w.code, w.subject) == ("tiles_enlarged", "m") and f"160 px to {grown} px" in w.message
    assert tile_size_for(1024, 1024, params, 0, 256, [], "m") == 640  # no stated input size
    assert tile_size_for(4000, 3000, DetectParams(mode="tiled", tile_size=100), 160, 64, [], "m") == 100
