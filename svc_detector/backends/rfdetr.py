"""RF-DETR through rfdetr, from a local checkpoint named in the registry.

The checkpoint is the dict rfdetr's own loader reads (`{"model": state_dict,
"args": {..., "class_names": [...]}}`), passed as an absolute
`pretrain_weights` path: a bare file name would resolve under ~/.roboflow and a
name like `rf-detr-nano.pth` would trigger rfdetr's download logic. Registry
options: `variant` (nano, small, medium, base, large; default nano) and any
other rfdetr model-config field (e.g. `resolution`), passed through unchanged.

Class ids are not shifted: the head's extra logit is the documented no-object
slot and its boxes are dropped.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from svc_detector.backends import RawDetections, resolve_labelmap
from tator_core import errors
from tator_core.registry import ModelEntry

VARIANTS = {"nano": "RFDETRNano", "small": "RFDETRSmall", "medium": "RFDETRMedium", "base": "RFDETRBase",
            "large": "RFDETRLarge"}
OWN_OPTIONS = frozenset({"variant"})
# Cached images are read-only arrays; rfdetr wraps them with torch.from_numpy and only reads them.
warnings.filterwarnings("ignore", message="The given NumPy array is not writable", category=UserWarning)


class RfdetrBackend:
    family = "rfdetr"

    def __init__(self, model: Any, labelmap: list[str], variant: str) -> None:
        self.model = model
        self.labelmap = labelmap
        self.input_size = int(model.model.resolution)
        self.extra = {"variant": variant, "resolution": str(self.input_size)}

    def predict(self, images: Sequence[np.ndarray], *, conf: float, iou: float,
                max_det: int) -> list[RawDetections]:
        # rfdetr has no NMS stage (a set-prediction model), so `iou` does not apply.
        if not images:
            return []
        results = self.model.predict(list(images), threshold=conf, include_source_image=False)
        out = []
        n_classes = len(self.labelmap)
        for det in results:
            xyxy = np.asarray(det.xyxy, dtype=np.float32).reshape(-1, 4)
            scores = np.asarray(det.confidence, dtype=np.float32).reshape(-1)
            cls = np.asarray(det.class_id, dtype=np.int64).reshape(-1)
            keep = (cls >= 0) & (cls < n_classes)
            order = np.argsort(-scores[keep], kind="stable")[:max_det]
            out.append(RawDetections(xyxy[keep][order], scores[keep][order], cls[keep][order]))
        return out


def load(entry: ModelEntry, device: str) -> RfdetrBackend:
    import rfdetr

    variant = str(entry.options.get("variant", "nano")).lower()
    if variant not in VARIANTS:
        raise errors.failed_precondition(
            "MODEL_LOAD_FAILED", f"model {entry.id}: unknown rfdetr variant {variant!r} "
            f"(one of {', '.join(VARIANTS)})", model_id=entry.id)
    kwargs = {k: v for k, v in entry.options.items() if k not in OWN_OPTIONS}
    model = getattr(rfdetr, VARIANTS[variant])(pretrain_weights=str(entry.path.resolve()), device=device, **kwargs)
    # `model.class_names` falls back to the 80 COCO names when the checkpoint has none; the head size is the truth.
    checkpoint_names = list(model.model.class_names or [str(i) for i in range(model.model_config.num_classes)])
    return RfdetrBackend(model, resolve_labelmap(entry, checkpoint_names), variant)
