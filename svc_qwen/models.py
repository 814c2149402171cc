"""The Qwen models a service may run: the shared model lifecycle (tator_core.lifecycle) for the
qwen family, and the service's metrics.

Models load lazily on first use (the warm-up loads the default). A missing
weights directory is reported (ModelInfo MISSING, FAILED_PRECONDITION
MODEL_MISSING naming the path) and re-checked on every use, so weights copied
in later are picked up without a restart. A failed load stays FAILED with its
reason until the files change. Loading and hashing weights run off the event
loop (a real checkpoint takes minutes to hash).
"""

from __future__ import annotations

import numpy as np
from prometheus_client import Counter

from svc_qwen.backends.qwen_vl import GenSettings, QwenVL
from svc_qwen.captions import FULL, CaptionJob, run_caption
from svc_qwen.prompts import Vocabulary
from tator_core.images import DecodedImage
from tator_core.lifecycle import ModelRepository
from tator_core.registry import ModelEntry, Registry

VISION_REGIONS = Counter("tator_qwen_vision_regions_total", "Image regions needing vision features",
                         ["model", "result"])  # result: computed | cached
GENERATED_TOKENS = Counter("tator_qwen_generated_tokens_total", "Tokens generated", ["model", "rpc"])
FAMILY = "qwen"


class QwenFamily:
    """The lifecycle contract (tator_core.lifecycle.ModelBackend) for Qwen-VL checkpoints."""

    def __init__(self, *, feature_cache_items: int = 16, warmup_tokens: int = 4) -> None:
        self.feature_cache_items = feature_cache_items
        self.warmup_tokens = warmup_tokens

    def load(self, entry: ModelEntry, device: str) -> QwenVL:
        return QwenVL.load(entry.path, device, entry.options, feature_cache_items=self.feature_cache_items)

    def warmup(self, backend: QwenVL) -> None:
        """Caption one small image: the vision tower and the decoder both run once."""
        pixels = np.zeros((64, 64, 3), dtype=np.uint8)
        pixels[16:48, 16:48] = (230, 60, 60)
        run_caption(backend, CaptionJob(DecodedImage("warmup", pixels, 0), FULL, Vocabulary(),
                                        GenSettings(self.warmup_tokens)))

    def describe(self, backend: QwenVL) -> tuple[list[str], dict[str, str]]:
        return [], {"model_type": backend.model_type}

    def release(self, backend: QwenVL) -> None:
        """Nothing beyond the references the repository drops (the feature cache lives on the backend)."""


def make_repository(registry: Registry, device: str, *, feature_cache_items: int = 16,
                    warmup_tokens: int = 4) -> ModelRepository[QwenVL]:
    return ModelRepository(registry, device, QwenFamily(feature_cache_items=feature_cache_items,
                                                        warmup_tokens=warmup_tokens),
                           service="qwen", families=(FAMILY,))
