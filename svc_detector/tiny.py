"""Tiny seeded random-init RF-DETR Nano for tests, the demo stack and benchmarks.

Written as the checkpoint dict rfdetr's own loader reads (`{"model":
state_dict, "args": {..., "class_names"}}`), so the service loads it through the
same `pretrain_weights=<abs path>` path a trained checkpoint takes. Nano needs
no DINOv2 download with `pretrain_weights=None` (its patch size is 16). The file is named `model.pth`, not
`rf-detr-nano.pth`: rfdetr matches official weight names by basename and would
try to download or MD5-check them.

The random weights only exercise the plumbing: scores are around 0.03-0.05,
so at the default conf 0.45 it finds nothing.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

from tator_core.hashing import atomic_write_bytes, atomic_write_text, stable_hash

MODEL_ID = "rfdetr-nano"
WEIGHTS = "model.pth"
STAMP = "tator_tiny.json"
LABELMAP = ("circle", "square", "triangle")
#: Multiple of patch 16 x 2 windows; small so a CPU forward takes a fraction of a second.
RESOLUTION = 192


def _config(seed: int) -> dict:
    return {"builder": "svc_detector.tiny", "version": 1, "seed": seed, "variant": "nano",
            "resolution": RESOLUTION, "labelmap": list(LABELMAP)}


def entry(models_dir: Path) -> dict:
    """The registry entry of the built model."""
    return {"id": MODEL_ID, "family": "rfdetr", "path": f"{MODEL_ID}/{WEIGHTS}", "labelmap": list(LABELMAP),
            "default": True, "options": {"variant": "nano", "resolution": RESOLUTION, "num_classes": len(LABELMAP)}}


def build(models_dir: Path, *, seed: int = 0, **_: object) -> list[dict]:
    """Write models_dir/rfdetr-nano/model.pth (skipped when already built with this config)."""
    out = Path(models_dir) / MODEL_ID
    config = _config(seed)
    stamp = out / STAMP
    if ((out / WEIGHTS).is_file() and stamp.is_file()
            and json.loads(stamp.read_text()).get("config_hash") == stable_hash(config)):
        return [entry(Path(models_dir))]

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from rfdetr import RFDETRNano

    torch.manual_seed(seed)
    model = RFDETRNano(pretrain_weights=None, num_classes=len(LABELMAP), device="cpu", resolution=RESOLUTION)
    args = model.model_config.model_dump(mode="json")
    args.update(class_names=list(LABELMAP), pretrain_weights=None, device="cpu")
    checkpoint = {"model": model.model.model.state_dict(), "args": args, "model_name": "RFDETRNano"}
    buf = io.BytesIO()  # a buffer, so the archive's inner folder name does not depend on the file name
    torch.save(checkpoint, buf)
    atomic_write_bytes(out / WEIGHTS, buf.getvalue())
    atomic_write_text(stamp, json.dumps({"config": config, "config_hash": stable_hash(config)}, indent=2) + "\n")
    return [entry(Path(models_dir))]
