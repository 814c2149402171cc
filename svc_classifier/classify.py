"""Classify and Embed on Python types: boxes in, per-box results out.

Each box is checked and cut on its own; a bad box becomes `ok=False` with an
error code while the others are scored: one bad box must not cost the caller
every other result. Classify pads crops by the head's own training padding
unless the request says otherwise, so scoring sees crops framed like the ones
the head learned from (no train/serve skew).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from svc_classifier.crops import CropPlan, cut, full_image_region, plan_crops
from svc_classifier.embedding import Embedded, Embedder, embed_batched
from svc_classifier.heads import Head, l2_normalize
from tator_core.convert import StageTime
from tator_core.geometry import XYXY
from tator_core.images import DecodedImage


@dataclass
class BoxScore:
    index: int
    ok: bool
    error: str = ""
    label: str = ""
    class_id: int = -1
    score: float = 0.0
    margin: float = 0.0
    probabilities: list[float] = field(default_factory=list)
    is_background: bool = False
    embedding: list[float] = field(default_factory=list)   # the backbone's raw vector (before the head's L2)


@dataclass
class ClassifyResult:
    classes: list[str]
    background: list[bool]
    results: list[BoxScore]
    head_id: str
    backbone_id: str
    batch_size_used: int
    stages: list[StageTime]


@dataclass
class EmbedItem:
    index: int          # -1 = whole image
    ok: bool
    error: str = ""
    values: list[float] = field(default_factory=list)


@dataclass
class EmbedResult:
    items: list[EmbedItem]
    dim: int
    batch_size_used: int
    stages: list[StageTime]


def _embed_plans(backbone: Embedder, image: DecodedImage, plans: Sequence[CropPlan], batch_size: int,
                 name: str) -> tuple[list[CropPlan], Embedded, list[StageTime]]:
    t0 = time.perf_counter()
    good = [p for p in plans if p.ok]
    crops = [cut(image, p.region) for p in good if p.region is not None]  # every good plan has one
    t1 = time.perf_counter()
    got = embed_batched(backbone, crops, batch_size, name=name)
    stages = [StageTime("crop", (t1 - t0) * 1000), StageTime("embed", got.compute_ms, got.batch_size_used)]
    return good, got, stages


def classify(head: Head, backbone: Embedder, image: DecodedImage, boxes: Sequence[XYXY], *,
             backbone_id: str, padding: float | None = None, batch_size: int = 32,
             want_embeddings: bool = False) -> ClassifyResult:
    plans = plan_crops(boxes, image.width, image.height, head.context_padding if padding is None else padding)
    good, got, stages = _embed_plans(backbone, image, plans, batch_size, backbone_id)
    results = [BoxScore(p.index, False, p.error) for p in plans]
    t0 = time.perf_counter()
    scored = [k for k in range(len(good)) if k not in got.errors]
    probs = head.probabilities(got.vectors[scored]) if scored else np.zeros((0, len(head.classes)))
    background = head.background
    for row, k in zip(probs, scored):
        order = np.argsort(-row, kind="stable")
        top = int(order[0])
        res = results[good[k].index]
        res.ok, res.label, res.class_id = True, head.classes[top], top
        res.score = float(row[top])
        res.margin = float(row[top] - row[order[1]])
        res.probabilities = [float(v) for v in row]
        res.is_background = background[top]
        if want_embeddings:
            res.embedding = [float(v) for v in got.vectors[k]]
    for k, err in got.errors.items():
        results[good[k].index].error = err
    stages.append(StageTime("head", (time.perf_counter() - t0) * 1000))
    return ClassifyResult(list(head.classes), background, results, head.id, backbone_id,
                          got.batch_size_used, stages)


def embed(backbone: Embedder, image: DecodedImage, boxes: Sequence[XYXY], *, backbone_id: str,
          padding: float = 0.1, batch_size: int = 32, include_full_image: bool = False,
          normalize: bool = False) -> EmbedResult:
    plans = plan_crops(boxes, image.width, image.height, padding)
    if include_full_image:
        plans.append(CropPlan(-1, (0.0, 0.0, float(image.width), float(image.height)), full_image_region(image)))
    good, got, stages = _embed_plans(backbone, image, plans, batch_size, backbone_id)
    vectors = l2_normalize(got.vectors.astype(np.float64)) if normalize else got.vectors
    items = [EmbedItem(p.index, False, p.error) for p in plans]
    slot = {p.index: pos for pos, p in enumerate(plans)}
    for k, p in enumerate(good):
        item = items[slot[p.index]]
        if k in got.errors:
            item.error = got.errors[k]
        else:
            item.ok, item.values = True, [float(v) for v in vectors[k]]
    return EmbedResult(items, backbone.dim, got.batch_size_used, stages)
