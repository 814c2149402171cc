"""A model registered with `tator models add` gives, through the detector service, the boxes the upstream
library gives when called directly on the same image with the same parameters (conf, iou, imgsz).

Two checkpoints: the committed YOLO fixture (trained on the synthetic world, so it finds real objects)
registered with an imgsz option, and a checkpoint this test trains itself with ultralytics' own trainer
(see fine_tune), registered with neither options nor labelmap. (A freshly initialised, untrained model
was tried first: its outputs are tied scores on inverted boxes, which compare nothing.)
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
from typer.testing import CliRunner

from svc_detector.server import build_spec
from svc_detector.settings import DetectorSettings
from tator_cli.main import app
from tator_core.client import ServiceClient, image_ref
from tator_core.gen.tator.detector.v1 import detector_pb2 as pb
from tator_core.gen.tator.detector.v1 import detector_pb2_grpc
from tator_core.server import start_server
from tator_fixtures import LABELMAP, YOLO_FIXTURE
from tator_fixtures.synth import generate, render_scene

pytestmark = [pytest.mark.asyncio(loop_scope="module"),
              pytest.mark.skipif(not YOLO_FIXTURE.is_file(), reason="the committed YOLO fixture is absent")]

# The same forward on the same pixels can still differ in the last float32 bits (summation order follows
# the thread count and the batch a call lands in), which moves a box by far less than 0.01 px and a
# score by far less than 1e-4. A real difference of pipeline (RGB/BGR order, another letterbox or
# input size, a second NMS, a shifted class id) moves boxes by whole pixels or changes the set.
BOX_ATOL_PX = 0.01
SCORE_ATOL = 1e-4
#: (registry name, imgsz option, conf, iou) per checkpoint: non-default values on every parameter.
FIXTURE = ("fidelity-yolo", 224, 0.3, 0.6)
TUNED = ("tuned-yolo", 224, 0.2, 0.4)


def tator(*args: str | Path):
    return CliRunner().invoke(app, [str(a) for a in args])


FINE_TUNE = """
import sys
from tator_core.offline import enforce_offline
enforce_offline()
from ultralytics import YOLO
YOLO(sys.argv[1]).train(data=sys.argv[2], project=sys.argv[3], name="ft", epochs=1, imgsz=TUNED_IMGSZ, batch=8,
                        nbs=8, device="cpu", workers=0, seed=0, amp=False, plots=False, val=False, verbose=False)
"""


def fine_tune(root: Path) -> Path:
    """One epoch of ultralytics' own trainer from the fixture, on unseen seed-11 scenes at another input
    size: a checkpoint in the trainer's format (EMA, train_args with imgsz) that no fixture builder writes.
    In a child process, so the trainer's global torch settings stay out of this one."""
    data = root / "tune-data"
    generate(data, seed=11, images=16)
    subprocess.run([sys.executable, "-c", FINE_TUNE.replace("TUNED_IMGSZ", str(TUNED[1])), str(YOLO_FIXTURE),
                    str(data / "data.yaml"), str(root / "runs")], check=True, capture_output=True, timeout=600)
    return root / "runs" / "ft" / "weights" / "last.pt"


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fidelity")
    registry = root / "models" / "registry.yaml"
    labels = root / "labels.txt"
    labels.write_text("\n".join(LABELMAP) + "\n")
    name, imgsz, _, _ = FIXTURE
    res = tator("models", "add", "yolo", YOLO_FIXTURE, "--name", name, "--labelmap", labels,
                "--option", f"imgsz={imgsz}", "--registry", registry)
    assert res.exit_code == 0, res.output
    # No --option imgsz and no labelmap: the service takes both from the checkpoint, as ultralytics does.
    res = tator("models", "add", "yolo", fine_tune(root), "--name", TUNED[0], "--registry", registry)
    assert res.exit_code == 0, res.output
    return registry


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    """PNG files of unseen scenes (seed 11; the fixture was trained on seed 0), small and large."""
    out = []
    for index in (0, 1, 5):
        image, _ = render_scene(11, index)
        path = tmp_path_factory.mktemp("img") / f"scene{index}.png"
        image.save(path)
        out.append(path)
    return out


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def detector(registry):
    settings = DetectorSettings.load([], port=0, device="cpu", registry=registry, metrics_port=-1)
    running = await start_server(build_spec(settings), settings)
    await asyncio.wait_for(running.ready.wait(), 300)
    client = ServiceClient(running.address, detector_pb2_grpc.DetectorServiceStub, timeout_s=120)
    yield client
    await client.close()
    await running.stop()


def direct(weights: Path, image: Path, imgsz: int, conf: float, iou: float) -> list[tuple[int, float, list[float]]]:
    """ultralytics as a user calls it: the image file, the same parameters."""
    from ultralytics import YOLO

    res = YOLO(str(weights), task="detect").predict(str(image), imgsz=imgsz, conf=conf, iou=iou, max_det=300,
                                                    device="cpu", verbose=False)[0]
    return [(int(c), float(s), [float(v) for v in b]) for c, s, b in
            zip(res.boxes.cls.tolist(), res.boxes.conf.tolist(), res.boxes.xyxy.tolist())]


def ordered(dets: list[tuple[int, float, list[float]]]) -> list[tuple[int, float, list[float]]]:
    return sorted(dets, key=lambda d: (d[0], -d[1], d[2]))


@pytest.mark.parametrize("model", [FIXTURE, TUNED], ids=["fixture-yolo", "tuned-yolo"])
async def test_service_boxes_equal_direct_ultralytics(detector, registry, images, model):
    name, imgsz, conf, iou = model
    weights = registry.parent / "user" / name / ("best.pt" if name == FIXTURE[0] else "last.pt")
    total = 0
    for path in images:
        data = path.read_bytes()
        resp = await detector.call("Detect", pb.DetectRequest(
            image=image_ref(data), model_ids=[name], mode=pb.DETECT_MODE_FULL, conf=conf, iou=iou, max_det=300))
        (run,) = resp.runs
        assert run.tile_size == imgsz or run.tiles == 1
        served = ordered([(d.class_id, d.score, [d.box.x1, d.box.y1, d.box.x2, d.box.y2]) for d in resp.detections])
        upstream = ordered(direct(weights, path, imgsz, conf, iou))
        assert [d[0] for d in served] == [d[0] for d in upstream], path.name
        assert [d.label for d in resp.detections] == [LABELMAP[d.class_id] for d in resp.detections]
        if served:
            np.testing.assert_allclose([d[1] for d in served], [d[1] for d in upstream], atol=SCORE_ATOL)
            np.testing.assert_allclose([d[2] for d in served], [d[2] for d in upstream], atol=BOX_ATOL_PX)
        total += len(served)
    assert total >= 3  # the comparison was not over empty results


async def test_imgsz_is_a_real_parameter(detector, registry, images):
    """The comparison above would pass vacuously if imgsz did not reach the model: at another size the
    direct call gives other boxes."""
    name, imgsz, conf, iou = FIXTURE
    weights = registry.parent / "user" / name / "best.pt"
    path = images[2]
    at_registered = ordered(direct(weights, path, imgsz, conf, iou))
    at_other = ordered(direct(weights, path, 640, conf, iou))
    assert len(at_registered) != len(at_other) or not np.allclose(
        [d[2] for d in at_registered], [d[2] for d in at_other], atol=0.5)
