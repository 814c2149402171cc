"""SAM3 models: the shared model lifecycle (tator_core.lifecycle) for the sam3 family.

A registry entry whose directory is missing is MISSING (with the path as
reason) and every use answers FAILED_PRECONDITION / MODEL_MISSING; the
service starts anyway. Loading happens on the device thread, once per model;
a load failure is remembered (FAILED) and answered as MODEL_LOAD_FAILED
without retrying until the files change.
"""

from __future__ import annotations

import logging

import numpy as np

from svc_sam3.backends.sam3 import Sam3Backend
from tator_core.lifecycle import ModelRepository
from tator_core.registry import ModelEntry, Registry

log = logging.getLogger("tator.sam3.models")
FAMILY = "sam3"
#: The text prompt of the warm-up inference (any short prompt does).
WARMUP_TEXT = "visual"


class Sam3Family:
    """The lifecycle contract (tator_core.lifecycle.ModelBackend) for SAM3 checkpoints."""

    def load(self, entry: ModelEntry, device: str) -> Sam3Backend:
        return Sam3Backend.load(entry.path, device, entry.options)

    def warmup(self, backend: Sam3Backend) -> None:
        """One prompt on a blank image; the service's embedding caches stay untouched."""
        vision = backend.embed_image(np.zeros((64, 64, 3), dtype=np.uint8))
        backend.decode(vision, backend.embed_texts([WARMUP_TEXT]), (64, 64), score_threshold=1.0)

    def describe(self, backend: Sam3Backend) -> tuple[list[str], dict[str, str]]:
        return [], {}

    def release(self, backend: Sam3Backend) -> None:
        """Nothing beyond the references the repository drops (the engine's caches are keyed by model)."""


def make_repository(registry: Registry, device: str) -> ModelRepository[Sam3Backend]:
    return ModelRepository(registry, device, Sam3Family(), service="sam3", families=(FAMILY,))
