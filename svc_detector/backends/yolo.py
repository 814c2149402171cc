"""YOLO through ultralytics, from a local .pt (or .yaml) named in the registry.

Never a bare hub name: `YOLO("yolov8n.pt")` would try GitHub. The inference
size comes from the registry options (`imgsz`), else the checkpoint's training
arguments, so a model trained at 160 px is not silently run at 640.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from svc_detector.backends import RawDetections, resolve_labelmap
from tator_core.registry import ModelEntry

DEFAULT_IMGSZ = 640


class YoloBackend:
    family = "yolo"

    def __init__(self, model: Any, labelmap: list[str], imgsz: int, device: str) -> None:
        self.model = model
        self.labelmap = labelmap
        self.imgsz = imgsz
        self.input_size = imgsz
        self.device = device
        self.extra = {"imgsz": str(imgsz)}

    def predict(self, images: Sequence[np.ndarray], *, conf: float, iou: float,
                max_det: int) -> list[RawDetections]:
        if not images:
            return []
        # ultralytics reads numpy arrays as BGR (OpenCV order); the image store holds RGB.
        bgr = [np.ascontiguousarray(im[..., ::-1]) for im in images]
        results = self.model.predict(bgr, imgsz=self.imgsz, conf=conf, iou=iou, max_det=max_det,
                                     device=self.device, verbose=False)
        out = []
        for res in results:
            boxes = res.boxes
            out.append(RawDetections(boxes.xyxy.cpu().numpy().astype(np.float32),
                                     boxes.conf.cpu().numpy().astype(np.float32),
                                     boxes.cls.cpu().numpy().astype(np.int64)))
        return out


def undo_pil_patch() -> None:
    """Importing ultralytics replaces `PIL.Image.open` process-wide with a wrapper that, on bytes Pillow
    cannot identify, runs `check_requirements("pi-heif")` (a pip install when online) and then fails
    with ModuleNotFoundError instead of UnidentifiedImageError. The shared image store relies on the
    latter to answer IMAGE_INVALID, and a service must never pip-install at request time, so the
    original is put back (HEIF is not an accepted format here anyway)."""
    from PIL import Image
    from ultralytics.utils import patches

    original = getattr(patches, "_image_open", None)
    if original is not None and Image.open is not original:
        Image.open = original


def load(entry: ModelEntry, device: str) -> YoloBackend:
    from ultralytics import YOLO

    undo_pil_patch()

    model = YOLO(str(entry.path), task="detect")
    names = model.names or {}
    checkpoint_names = [names[i] for i in sorted(names)] if isinstance(names, dict) else list(names)
    labelmap = resolve_labelmap(entry, checkpoint_names)
    imgsz = int(entry.options.get("imgsz") or model.overrides.get("imgsz") or DEFAULT_IMGSZ)
    return YoloBackend(model, labelmap, imgsz, device)
