"""Model backends: one module per family, each with `load(entry, device) -> Backend`.

A backend is plain Python (no gRPC, no asyncio): `predict` takes a list of RGB
uint8 arrays and answers one `RawDetections` per image in that image's pixels.
It is only ever called from the device thread, so it need not be thread-safe.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from tator_core import errors
from tator_core.labels import labelmap_diff
from tator_core.registry import ModelEntry

FAMILIES = ("yolo", "rfdetr")


@dataclass
class RawDetections:
    """One image's model output: (N, 4) xyxy pixels, (N,) scores, (N,) class ids."""

    xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @classmethod
    def empty(cls) -> RawDetections:
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int64))


class Backend(Protocol):
    family: str
    labelmap: list[str]
    extra: dict[str, str]
    #: Side in pixels the model sees its input at (YOLO imgsz, RF-DETR resolution): the default tile size,
    #: so a tile reaches the model at its own scale and small objects are not shrunk away.
    input_size: int

    def predict(self, images: Sequence[np.ndarray], *, conf: float, iou: float,
                max_det: int) -> list[RawDetections]: ...


def describe_labelmap(names: Sequence[str], shown: int = 12) -> str:
    """'(3 classes: circle, square, triangle)', the names cut after `shown`."""
    listed = ", ".join(names[:shown]) + (f", ... ({len(names) - shown} more)" if len(names) > shown else "")
    return f"({len(names)} classes: {listed})"


def resolve_labelmap(entry: ModelEntry, checkpoint_names: Sequence[str]) -> list[str]:
    """The registry's labelmap if given, else the checkpoint's.

    When both exist they must agree (normalised): a registry entry that names
    other classes than the weights were trained on would silently mislabel every
    detection, so loading fails with LABELMAP_MISMATCH naming the positions.
    """
    names = [str(n) for n in checkpoint_names]
    if entry.labelmap:
        diffs = labelmap_diff(names, entry.labelmap)
        if diffs:
            raise errors.failed_precondition(
                "LABELMAP_MISMATCH",
                f"model {entry.id}: registry labelmap {describe_labelmap(entry.labelmap)} differs from the "
                f"checkpoint's {describe_labelmap(names)} at {entry.path.name}: {'; '.join(diffs[:10])}",
                model_id=entry.id, positions=",".join(diffs[:50]))
        return list(entry.labelmap)
    return names


def load_backend(entry: ModelEntry, device: str) -> Backend:
    """Import the family's module lazily (ultralytics and rfdetr are slow to import)."""
    if entry.family not in FAMILIES:
        raise errors.failed_precondition("MODEL_LOAD_FAILED", f"family {entry.family!r} is not a detector",
                                         model_id=entry.id)
    module = importlib.import_module(f"svc_detector.backends.{entry.family}")
    return module.load(entry, device)
