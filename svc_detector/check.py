"""`python -m svc_detector check-model`: load a candidate detector and run one inference (tator_core.model_check).

The load is the service's own `load_backend`, so a labelmap that disagrees with the checkpoint fails
here exactly as it would at serve time (LABELMAP_MISMATCH naming both).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from svc_detector.backends import load_backend
from tator_core.registry import ModelEntry

#: Seed of the check image: a fixed image, so two checks of one checkpoint report the same count.
IMAGE_SEED = 0


def check(entry: ModelEntry, device: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    backend = load_backend(entry, device)
    load_s = time.perf_counter() - t0
    side = max(32, int(backend.input_size))
    image = np.random.default_rng(IMAGE_SEED).integers(0, 256, (side, side, 3), dtype=np.uint8)
    t0 = time.perf_counter()
    (dets,) = backend.predict([image], conf=0.25, iou=0.45, max_det=100)
    return {"labelmap": list(backend.labelmap), "extra": dict(backend.extra), "input_size": int(backend.input_size),
            "detections": len(dets), "load_s": round(load_s, 3), "inference_s": round(time.perf_counter() - t0, 3)}
