"""Tier 1 classifier steps: batch scoring with the full probability vector, and embeddings.

Boxes are the image's ground-truth boxes (from the fuzz pack's labels) plus boxes drawn from the
step's rng inside the image, plus one degenerate and one outside box: those two must come back
`ok=false` with their error code while every other box is scored (one bad box never fails the call).
Every scored box must carry a probability vector over all the head's classes that sums to 1, with
label/score/margin/is_background consistent with it.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from tator_fixtures.regress import StepContext, step

BATCH_SIZES = (4, 8, 32)
BAD_BOXES = {"degenerate_box": (12.0, 12.0, 12.0, 30.0), "outside_image": (1e5, 1e5, 1e5 + 20, 1e5 + 20)}


def _random_boxes(ctx: StepContext, width: int, height: int, n: int) -> list[tuple]:
    boxes = []
    for _ in range(n):
        w = ctx.rng.uniform(8, max(9, width / 2))
        h = ctx.rng.uniform(8, max(9, height / 2))
        x, y = ctx.rng.uniform(0, width - w), ctx.rng.uniform(0, height - h)
        boxes.append((round(x, 1), round(y, 1), round(x + w, 1), round(y + h, 1)))
    return boxes


def _pick_image(ctx: StepContext) -> tuple[Path, bytes, int, int]:
    from PIL import Image

    path = ctx.rng.choice(ctx.fuzz_pack.images)
    with Image.open(path) as im:
        width, height = im.size
    return path, path.read_bytes(), width, height


async def _call(ctx: StepContext, method: str, request: Any, data: bytes) -> Any:
    from tator_core.client import ServiceClient
    from tator_core.gen.tator.classifier.v1 import classifier_pb2_grpc

    client = ServiceClient(ctx.addresses["classifier"], classifier_pb2_grpc.ClassifierServiceStub,
                           timeout_s=ctx.deadline_s)
    try:
        return await client.call(method, request, image_data=data)
    finally:
        await client.close()


def check_result(r: Any, classes: list[str], background: list[bool]) -> None:
    probs = list(r.probabilities)
    if len(probs) != len(classes):
        raise AssertionError(f"box {r.index}: {len(probs)} probabilities for {len(classes)} classes")
    if abs(sum(probs) - 1.0) > 1e-4 or min(probs) < 0 or max(probs) > 1 + 1e-6:
        raise AssertionError(f"box {r.index}: probabilities {probs} are not a distribution")
    top = max(range(len(probs)), key=probs.__getitem__)
    runner = max((p for i, p in enumerate(probs) if i != top), default=0.0)
    if r.label != classes[r.class_id] or abs(probs[r.class_id] - probs[top]) > 1e-6:
        raise AssertionError(f"box {r.index}: label {r.label} is not the argmax")
    if abs(r.score - probs[top]) > 1e-5 or abs(r.margin - (probs[top] - runner)) > 1e-5:
        raise AssertionError(f"box {r.index}: score/margin disagree with the probabilities")
    if r.is_background != background[r.class_id]:
        raise AssertionError(f"box {r.index}: is_background disagrees with the class list")


@step("classifier.classify_batch", tier=1, service="classifier", deadline_s=60,
      tolerances={"classes": 2, "detections": 0})
async def classify_batch(ctx: StepContext) -> dict:
    from tator_core.client import image_ref
    from tator_core.convert import boxes_pb
    from tator_core.gen.tator.classifier.v1 import classifier_pb2 as pb

    path, data, width, height = _pick_image(ctx)
    gt = ctx.fuzz_pack.ground_truth(path, width, height)
    boxes = [b for _, b in gt] + _random_boxes(ctx, width, height, ctx.rng.randint(8, 24)) + list(BAD_BOXES.values())
    batch = ctx.rng.choice(BATCH_SIZES)
    request = pb.ClassifyRequest(image=image_ref(data, with_bytes=False), batch_size=batch,
                                 boxes=boxes_pb(boxes))
    resp = await _call(ctx, "Classify", request, data)

    classes, background = list(resp.classes), list(resp.background)
    if len(classes) < 2 or len(background) != len(classes):
        raise AssertionError(f"classes {classes} / background {background} malformed")
    if [r.index for r in resp.results] != list(range(len(boxes))):
        raise AssertionError("results are not one per box in request order")
    bad = resp.results[-len(BAD_BOXES):]
    if [(r.ok, r.error) for r in bad] != [(False, code) for code in BAD_BOXES]:
        raise AssertionError(f"bad boxes answered {[(r.ok, r.error) for r in bad]}")
    good = resp.results[:-len(BAD_BOXES)]
    for r in good:
        if not r.ok:
            raise AssertionError(f"box {r.index} inside the image failed: {r.error}")
        check_result(r, classes, background)
    if not 1 <= resp.batch_size_used <= batch:
        raise AssertionError(f"batch_size_used {resp.batch_size_used} outside 1..{batch}")
    hits = sum(1 for (label, _), r in zip(gt, good) if r.label == label)
    return {
        "detections": len(good),
        "classes": dict(Counter(r.label for r in good)),
        "metrics": {"gt_accuracy": hits / len(gt) if gt else 1.0},
        "extra": {"image": path.name, "head": resp.head_id, "backbone": resp.backbone_id, "batch_size": batch,
                  "classes": classes},
    }


@step("classifier.embed_boxes", tier=1, service="classifier", deadline_s=60)
async def embed_boxes(ctx: StepContext) -> dict:
    from tator_core.client import image_ref
    from tator_core.convert import boxes_pb
    from tator_core.gen.tator.classifier.v1 import classifier_pb2 as pb

    path, data, width, height = _pick_image(ctx)
    boxes = _random_boxes(ctx, width, height, ctx.rng.randint(2, 8))
    request = pb.EmbedRequest(image=image_ref(data, with_bytes=False), include_full_image=True, normalize=True,
                              boxes=boxes_pb(boxes))
    resp = await _call(ctx, "Embed", request, data)
    indexes = [e.index for e in resp.embeddings]
    if indexes != list(range(len(boxes))) + [-1]:
        raise AssertionError(f"embedding indexes {indexes}: boxes in order, whole image (-1) last")
    for e in resp.embeddings:
        norm = sum(v * v for v in e.values) ** 0.5
        if not e.ok or len(e.values) != resp.dim or abs(norm - 1.0) > 1e-3:
            raise AssertionError(f"embedding {e.index}: ok={e.ok} width {len(e.values)}/{resp.dim} norm {norm:.4f}")
    return {"detections": len(resp.embeddings),
            "extra": {"image": path.name, "dim": resp.dim, "backbone": resp.backbone_id,
                      "backbone_version": resp.backbone_version[:12]}}
