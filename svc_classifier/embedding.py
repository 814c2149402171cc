"""Crops through a backbone in batches, with CUDA out-of-memory back-off.

On OOM the batch is halved and the same crops retried, down to 1; every
shrink is counted in Prometheus and the smallest batch reached comes back to
the caller (`batch_size_used`). A crop that makes the backbone fail for any
other reason is isolated and reported alone; the rest of the batch is scored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from prometheus_client import Counter, Gauge

from tator_core import errors

log = logging.getLogger("tator.classifier.embedding")

OOM_SHRINKS = Counter("tator_classifier_oom_shrinks_total",
                      "Times a backbone batch was halved after CUDA out-of-memory", ["backbone"])
BATCH_SIZE_USED = Gauge("tator_classifier_batch_size_used",
                        "Batch size the last embedding call ended at (below the setting after OOM back-off)",
                        ["backbone"])
CROPS = Counter("tator_classifier_crops_total", "Crops embedded", ["backbone"])
CROP_FAILURES = Counter("tator_classifier_crop_failures_total", "Crops the backbone failed on", ["backbone"])


class Embedder(Protocol):
    dim: int

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray: ...


def is_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def _release_device_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@dataclass
class Embedded:
    """Vectors for the crops that worked; `errors` maps crop index -> reason."""

    vectors: np.ndarray                       # (n, dim); rows of failed crops are zero
    errors: dict[int, str] = field(default_factory=dict)
    batch_size_used: int = 0
    shrinks: int = 0
    compute_ms: float = 0.0


def embed_batched(backbone: Embedder, crops: Sequence[np.ndarray], batch_size: int, *,
                  name: str = "backbone") -> Embedded:
    n = len(crops)
    out = np.zeros((n, backbone.dim), dtype=np.float32)
    result = Embedded(out)
    bs = max(1, min(int(batch_size), n))
    start = time.perf_counter()
    i = 0
    while i < n:
        chunk = crops[i:i + bs]
        try:
            out[i:i + len(chunk)] = backbone.embed(chunk)
        except Exception as exc:  # OOM backs off; anything else is isolated per crop
            if is_oom(exc):
                _release_device_memory()
                if bs == 1:
                    raise errors.resource_exhausted(
                        f"{name}: out of device memory even at batch size 1", backbone=name) from exc
                bs //= 2
                result.shrinks += 1
                OOM_SHRINKS.labels(name).inc()
                log.warning("out of memory; batch halved", extra={"fields": {"backbone": name, "batch_size": bs}})
                continue
            _isolate(backbone, chunk, i, out, result, name, exc)
        i += len(chunk)
    result.batch_size_used = bs if n else 0   # 0: the backbone never ran
    result.compute_ms = (time.perf_counter() - start) * 1000
    if n:
        BATCH_SIZE_USED.labels(name).set(bs)
    CROPS.labels(name).inc(n - len(result.errors))
    return result


def _isolate(backbone: Embedder, chunk: Sequence[np.ndarray], offset: int, out: np.ndarray,
             result: Embedded, name: str, exc: Exception) -> None:
    """Re-run a failed chunk one crop at a time so one bad crop costs one result."""
    if len(chunk) == 1:
        failures = {offset: exc}
    else:
        failures = {}
        for j, crop in enumerate(chunk):
            try:
                out[offset + j] = backbone.embed([crop])[0]
            except Exception as one:
                if is_oom(one):
                    raise errors.resource_exhausted(f"{name}: out of device memory", backbone=name) from one
                failures[offset + j] = one
    for idx, err in failures.items():
        result.errors[idx] = f"embed_failed: {type(err).__name__}: {err}"[:300]
        CROP_FAILURES.labels(name).inc()
        log.warning("crop failed", extra={"fields": {"backbone": name, "index": idx, "error": str(err)[:200]}})
