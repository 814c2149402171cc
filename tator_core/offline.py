"""Keep model libraries off the network.

No machine this project runs on reaches a model hub, and a production
service must never fetch weights behind the operator's back: weights come
from the registry's local paths only. Call before importing ultralytics,
rfdetr or transformers.
"""

from __future__ import annotations

import os

from tator_core.settings import tator_home


def enforce_offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    cfg = tator_home() / "ultralytics"
    cfg.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("YOLO_CONFIG_DIR", str(cfg))
