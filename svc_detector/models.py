"""Detector models: the shared model lifecycle (tator_core.lifecycle) for YOLO and RF-DETR, and
micro-batched inference.

Every loaded model gets a `MicroBatcher`; all of them share one device
executor, so model work never overlaps on the device, and jobs of one model
arriving within `max_delay_ms` run as one batch. Inside a batch, images of the
same shape and thresholds go through the model in one forward (the tiles of an
image, and the full frames of concurrent requests), chunked at
`max_images_per_call`.

Several models of one family can be loaded at once, and a model is addressed
by registry id: no family-wide slot is reloaded when another model is asked for.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from prometheus_client import Histogram

from svc_detector.backends import FAMILIES, Backend, RawDetections, load_backend
from svc_detector.settings import DetectorSettings
from tator_core import errors
from tator_core.batching import BatchStats
from tator_core.convert import Note
from tator_core.lifecycle import BatchLimits, ModelRepository
from tator_core.registry import ModelEntry, Registry

log = logging.getLogger("tator.detector.models")

IMAGES_PER_CALL = Histogram(
    "tator_detector_images_per_forward", "Images (full frames or tiles) per model forward", ["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
WARMUP_SIZE = 64


@dataclass(frozen=True)
class Job:
    """One request's images for one model, with its thresholds."""

    backend: Backend
    images: tuple[np.ndarray, ...]
    conf: float
    iou: float
    max_det: int


@dataclass
class JobOutput:
    """Per image of a job: detections, its share of forward time, and the forward's size."""

    dets: list[RawDetections]
    compute_ms: list[float]
    forward_size: list[int]


def run_jobs(jobs: Sequence[Job], max_images_per_call: int, model_id: str = "") -> list[JobOutput]:
    """The batch function (device thread): one forward per (model, thresholds, shape) group."""
    outs = [JobOutput([RawDetections.empty()] * len(j.images), [0.0] * len(j.images), [0] * len(j.images))
            for j in jobs]
    groups: dict[tuple, list[tuple[int, int]]] = defaultdict(list)
    for ji, job in enumerate(jobs):
        for ii, img in enumerate(job.images):
            groups[(id(job.backend), job.conf, job.iou, job.max_det, img.shape)].append((ji, ii))
    for members in groups.values():
        first = jobs[members[0][0]]
        for start in range(0, len(members), max_images_per_call):
            chunk = members[start:start + max_images_per_call]
            t0 = time.perf_counter()
            dets = first.backend.predict([jobs[ji].images[ii] for ji, ii in chunk], conf=first.conf,
                                         iou=first.iou, max_det=first.max_det)
            if len(dets) != len(chunk):
                raise RuntimeError(f"{model_id}: {len(dets)} results for {len(chunk)} images")
            share = (time.perf_counter() - t0) * 1000 / len(chunk)
            IMAGES_PER_CALL.labels(model_id).observe(len(chunk))
            for (ji, ii), det in zip(chunk, dets):
                outs[ji].dets[ii] = det
                outs[ji].compute_ms[ii] = share
                outs[ji].forward_size[ii] = len(chunk)
    return outs


class DetectorFamily:
    """The lifecycle contract (tator_core.lifecycle.ModelBackend) for YOLO and RF-DETR."""

    def load(self, entry: ModelEntry, device: str) -> Backend:
        return load_backend(entry, device)

    def warmup(self, backend: Backend) -> None:
        backend.predict([np.zeros((WARMUP_SIZE, WARMUP_SIZE, 3), np.uint8)], conf=0.5, iou=0.5, max_det=1)

    def describe(self, backend: Backend) -> tuple[list[str], dict[str, str]]:
        return list(backend.labelmap), dict(backend.extra)

    def release(self, backend: Backend) -> None:
        """Nothing beyond the references the repository drops."""


class DetectorModels(ModelRepository[Backend]):
    """The registry's detector entries on one device (tator_core.lifecycle), plus the two things
    only a detector does: choosing the models of a request and batching its images."""

    def __init__(self, registry: Registry, device: str, settings: DetectorSettings) -> None:
        super().__init__(registry, device, DetectorFamily(), service="detector", families=FAMILIES,
                         limits=BatchLimits(settings.max_batch, settings.max_delay_ms, settings.max_queue))
        self.settings = settings

    def select(self, model_ids: Sequence[str]) -> tuple[list[str], list[Note]]:
        """Requested ids (deduplicated, checked) or, when empty, each family's default that is on disk.

        Returns (ids, warnings).
        """
        warnings: list[Note] = []
        if model_ids:
            ids = list(dict.fromkeys(model_ids))
            warnings += [Note("duplicate_model_ids", mid, "named more than once; ran once")
                         for mid in ids if model_ids.count(mid) > 1]
            for mid in ids:
                self.entry(mid)
            return ids, warnings
        ids = []
        for family in FAMILIES:
            chosen = self.default_id(family)
            if chosen is None:
                continue
            entry = self.entry(chosen)
            if entry.exists:
                ids.append(entry.id)
            else:
                warnings.append(Note("default_model_skipped", entry.id,
                                     f"default {family} model skipped: {entry.missing_reason}"))
        if not ids:
            raise errors.failed_precondition("MODEL_MISSING", "no detector weights on disk; "
                                             + ("; ".join(f"{w.subject}: {w.message}" for w in warnings)
                                                or "the registry lists no detector"))
        return ids, warnings

    async def infer(self, model_id: str, images: Sequence[np.ndarray], *, conf: float, iou: float,
                    max_det: int) -> tuple[JobOutput, BatchStats]:
        backend = await self.acquire(model_id)
        job = Job(backend, tuple(images), conf, iou, max_det)
        limit = self.settings.max_images_per_call
        batcher = self.batcher(model_id, lambda jobs: run_jobs(jobs, limit, model_id))
        result: tuple[JobOutput, BatchStats] = await batcher.submit(job)
        return result
