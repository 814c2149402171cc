"""Tier 1 detector steps: full frame and SAHI tiles, YOLO and RF-DETR requested in the same call.

Inputs are drawn from the step's rng within bounds (which fuzz-pack image, tile size, overlap), so a
baseline pins one draw per seed. Besides the counts, each step checks the contract invariants: every requested model/pass shows up in `runs`, a TILED call runs no full-frame
pass (no silent fallback), and every box lies inside the image and its window.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from tator_core.enums import source_name
from tator_fixtures.regress import StepContext, step


def _kind(run: Any) -> str:
    """A ModelRun's pass as the regression record names it: full or tiled."""
    from tator_core.gen.tator.detector.v1 import detector_pb2 as pb

    return pb.PassKind.Name(run.kind).removeprefix("PASS_KIND_").lower()

FAMILIES = ("yolo", "rfdetr")
TILE_SIZES = (64, 96, 128)


async def _detect(ctx: StepContext, *, tiled: bool) -> dict[str, Any]:
    from PIL import Image

    from tator_core.client import ServiceClient, image_ref
    from tator_core.gen.tator.common.v1 import common_pb2
    from tator_core.gen.tator.detector.v1 import detector_pb2 as pb
    from tator_core.gen.tator.detector.v1 import detector_pb2_grpc

    path = ctx.rng.choice(ctx.fuzz_pack.images)
    data = path.read_bytes()
    with Image.open(path) as im:
        width, height = im.size
    client = ServiceClient(ctx.addresses["detector"], detector_pb2_grpc.DetectorServiceStub, timeout_s=ctx.deadline_s)
    try:
        ids = [m.id for m in await client.list_models() if m.is_default and m.family in FAMILIES
               and m.state != common_pb2.MODEL_STATE_MISSING]
        if len(ids) != len(FAMILIES):
            raise AssertionError(f"expected a default yolo and rfdetr detector on disk, got {ids}")
        request = pb.DetectRequest(image=image_ref(data, with_bytes=False), model_ids=ids,
                                   mode=pb.DETECT_MODE_TILED if tiled else pb.DETECT_MODE_FULL)
        if tiled:
            request.tile_plan.size = ctx.rng.choice(TILE_SIZES)
            request.tile_plan.overlap = round(ctx.rng.uniform(0.1, 0.3), 2)
        resp = await client.call("Detect", request, image_data=data)
    finally:
        await client.close()

    want = "tiled" if tiled else "full"
    ran = sorted((r.model_id, _kind(r)) for r in resp.runs)
    if ran != sorted((mid, want) for mid in ids):
        raise AssertionError(f"runs {ran} are not exactly {want} passes of {ids}")
    for d in resp.detections:
        b, w = d.box, d.window.box
        if not (0 <= b.x1 < b.x2 <= width and 0 <= b.y1 < b.y2 <= height):
            raise AssertionError(f"box {b} outside the {width}x{height} image")
        if tiled and not (w.x1 - 1e-3 <= b.x1 and b.x2 <= w.x2 + 1e-3 and w.y1 - 1e-3 <= b.y1 and b.y2 <= w.y2 + 1e-3):
            raise AssertionError(f"box {b} outside its window {d.window.name}")
    return {
        "detections": len(resp.detections),
        "classes": dict(Counter(d.label for d in resp.detections)),
        "sources": dict(Counter(source_name(d.source) for d in resp.detections)),
        "extra": {"image": path.name, "tile_size": resp.tile_plan.size if tiled else 0,
                  "runs": {f"{r.model_id}:{_kind(r)}": r.tiles for r in resp.runs}},
    }


@step("detector.detect_full", tier=1, service="detector", deadline_s=60, tolerances={"detections": 1})
async def detect_full(ctx: StepContext) -> dict:
    return await _detect(ctx, tiled=False)


@step("detector.detect_sahi", tier=1, service="detector", deadline_s=90, tolerances={"detections": 2})
async def detect_sahi(ctx: StepContext) -> dict:
    return await _detect(ctx, tiled=True)
