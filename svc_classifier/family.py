"""The lifecycle contract (tator_core.lifecycle.ModelBackend) for CLIP and DINOv3 backbones and heads.

`python -m svc_classifier check-model` drives it to check a candidate backbone with the service's own
loader (`backends.load`) and one embedding, before `tator models add` registers it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from svc_classifier import backends
from svc_classifier.heads import Head, HeadError, load_head
from tator_core import errors
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


class HeadFamily:
    """Heads: a few numpy matrices on the CPU, so nothing to warm up or to release; loading one
    checks the artifact (a HeadError is the model's FAILED state, named)."""

    def load(self, entry: ModelEntry, device: str) -> Head:
        try:
            head = load_head(entry.path, entry.id)
        except HeadError as exc:
            raise errors.failed_precondition("MODEL_LOAD_FAILED", f"head {entry.id}: {exc}",
                                             model_id=entry.id) from exc
        head.version = entry.version()
        return head

    def warmup(self, backend: Head) -> None:
        """Nothing: no first-call cost to pay ahead."""

    def describe(self, backend: Head) -> tuple[list[str], dict[str, str]]:
        h = backend
        return list(h.classes), {
            "backbone": h.backbone_id, "backbone_version": h.backbone_version, "head_type": h.head_type,
            "normalize": str(h.normalize).lower(), "context_padding": str(h.context_padding),
            "val_accuracy": "" if h.val_accuracy is None else f"{h.val_accuracy:.4f}"}

    def release(self, backend: Head) -> None:
        """Nothing beyond the references the caller drops."""
