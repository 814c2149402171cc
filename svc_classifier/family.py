"""The lifecycle contract (tator_core.lifecycle.ModelBackend) for CLIP and DINOv3 backbones.

`python -m svc_classifier check-model` drives it to check a candidate backbone with the service's own
loader (`backends.load`) and one embedding, before `tator models add` registers it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from svc_classifier import backends
from tator_core.registry import ModelEntry

#: Side of the blank crop the warm-up embeds (the backbone resizes it to its input size).
WARMUP_SIDE = 64


class BackboneFamily:
    def load(self, entry: ModelEntry, device: str) -> Any:
        return backends.load(entry, device)

    def warmup(self, backend: Any) -> None:
        embedding = backend.embed([np.full((WARMUP_SIDE, WARMUP_SIDE, 3), 127, np.uint8)])
        if embedding.shape != (1, backend.dim) or not np.isfinite(embedding).all():
            raise ValueError(f"one crop gave an embedding of shape {embedding.shape} with non-finite values "
                             f"or not {backend.dim} wide")

    def describe(self, backend: Any) -> tuple[list[str], dict[str, str]]:
        return [], {"dim": str(backend.dim), "pooling": str(backend.pooling)}

    def release(self, backend: Any) -> None:
        """Nothing beyond the references the caller drops."""
