"""Box checks and context-padded crop regions on a cached image.

A bad box is a per-box result (`ok=false`, error code), never a failed call:
one bad box must not cost the caller the scores of all the others, so each box
stands alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tator_core.geometry import XYXY, as_xyxy, intersects
from tator_core.images import DecodedImage

NON_FINITE = "non_finite_box"
DEGENERATE = "degenerate_box"
OUTSIDE = "outside_image"

Region = tuple[int, int, int, int]


@dataclass(frozen=True)
class CropPlan:
    """One requested box: the pixel region to cut, or why it cannot be scored."""

    index: int
    box: XYXY
    region: Region | None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.region is not None


def box_error(box: XYXY, width: int, height: int) -> str:
    """Error code for a box that cannot be scored; "" when it can."""
    if not all(math.isfinite(v) for v in box):
        return NON_FINITE
    if box[2] <= box[0] or box[3] <= box[1]:
        return DEGENERATE
    if not intersects(box, (0.0, 0.0, float(width), float(height))):
        return OUTSIDE
    return ""


def padded_region(box: XYXY, width: int, height: int, padding: float) -> Region:
    """The box grown by `padding` x its size on every side, clipped, on whole
    pixels (outward), and never empty: a sub-pixel box still gets one pixel."""
    pw, ph = (box[2] - box[0]) * padding, (box[3] - box[1]) * padding
    x1 = min(max(math.floor(box[0] - pw), 0), width - 1)
    y1 = min(max(math.floor(box[1] - ph), 0), height - 1)
    x2 = max(min(math.ceil(box[2] + pw), width), x1 + 1)
    y2 = max(min(math.ceil(box[3] + ph), height), y1 + 1)
    return x1, y1, x2, y2


def plan_crops(boxes: Sequence[XYXY], width: int, height: int, padding: float) -> list[CropPlan]:
    plans = []
    for i, box in enumerate(boxes):
        box = as_xyxy(box)
        err = box_error(box, width, height)
        plans.append(CropPlan(i, box, None if err else padded_region(box, width, height, padding), err))
    return plans


def cut(image: DecodedImage, region: Region) -> np.ndarray:
    return image.crop(as_xyxy(region))


def full_image_region(image: DecodedImage) -> Region:
    return 0, 0, image.width, image.height
