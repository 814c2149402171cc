"""Detector models: registry state, load/unload, and micro-batched inference.

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

import asyncio
import dataclasses
import gc
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from prometheus_client import Histogram

from svc_detector.backends import Backend, RawDetections, load_backend
from svc_detector.settings import DetectorSettings
from tator_core import errors
from tator_core.batching import BatchStats, MicroBatcher, device_executor
from tator_core.convert import ModelStatus
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


@dataclass
class _Slot:
    entry: ModelEntry
    backend: Backend | None = None
    loading: bool = False
    failure: errors.TatorError | None = None  # the last load's error, re-raised until the file changes
    failed_key: tuple | None = None  # weights (size, mtime) at the failed load
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    batcher: MicroBatcher | None = None


def _file_key(entry: ModelEntry) -> tuple | None:
    try:
        st = entry.path.stat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)


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


class ModelManager:
    """The registry's detector entries and what is loaded on the device."""

    def __init__(self, registry: Registry, device: str, settings: DetectorSettings) -> None:
        self.registry = registry
        self.device = device
        self.settings = settings
        self.executor = device_executor("detector")
        self._slots = {e.id: _Slot(e) for e in registry.entries.values()}

    # --- state -------------------------------------------------------------

    def _slot(self, model_id: str) -> _Slot:
        slot = self._slots.get(model_id)
        if slot is None:
            raise errors.not_found("MODEL_NOT_FOUND", f"no detector {model_id!r} in the registry",
                                   model_id=model_id, known=",".join(sorted(self._slots)))
        return slot

    def status(self, model_id: str) -> ModelStatus:
        slot = self._slot(model_id)
        entry = slot.entry
        default = self.registry.default(entry.family)
        if not entry.exists:
            state, reason = "MISSING", entry.missing_reason
        elif slot.backend is not None:
            state, reason = "READY", ""
        elif slot.loading:
            state, reason = "LOADING", ""
        elif slot.failure is not None and slot.failed_key == _file_key(entry):
            state, reason = "FAILED", slot.failure.message
        else:
            state, reason = "AVAILABLE", ""
        backend = slot.backend
        return ModelStatus(
            id=entry.id, family=entry.family, version=entry.version(),
            labelmap=list(backend.labelmap if backend is not None else entry.labelmap or []),
            device=self.device, state=state, reason=reason,
            is_default=default is not None and default.id == entry.id, loaded=backend is not None,
            extra=dict(backend.extra) if backend is not None else {}, trained_on=entry.trained_on)

    def statuses(self) -> list[ModelStatus]:
        return [self.status(mid) for mid in self._slots]

    def statuses_if_cheap(self) -> list[ModelStatus] | None:
        """statuses() when every weight hash is already known (no file read: fine on the event loop), else None."""
        if any(slot.entry.cached_version() is None for slot in self._slots.values()):
            return None
        return self.statuses()

    def select(self, model_ids: Sequence[str]) -> tuple[list[str], list[str]]:
        """Requested ids (deduplicated, checked) or, when empty, each family's default that is on disk.

        Returns (ids, warnings).
        """
        warnings: list[str] = []
        if model_ids:
            ids = list(dict.fromkeys(model_ids))
            if len(ids) != len(model_ids):
                warnings.append("duplicate model ids were run once")
            for mid in ids:
                self._slot(mid)
            return ids, warnings
        ids = []
        for family in ("yolo", "rfdetr"):
            entry = self.registry.default(family)
            if entry is None:
                continue
            if entry.exists:
                ids.append(entry.id)
            else:
                warnings.append(f"default {family} model {entry.id} skipped: {entry.missing_reason}")
        if not ids:
            raise errors.failed_precondition("MODEL_MISSING", "no detector weights on disk; "
                                             + ("; ".join(warnings) or "the registry lists no detector"))
        return ids, warnings

    # --- load / unload -----------------------------------------------------

    async def load(self, model_id: str, *, warm: bool = True) -> Backend:
        """Load (once) and optionally run one warm-up inference; errors name the cause."""
        slot = self._slot(model_id)
        if slot.backend is not None:
            return slot.backend
        async with slot.lock:
            if slot.backend is not None:
                return slot.backend
            entry = slot.entry
            if not entry.exists:
                raise errors.failed_precondition("MODEL_MISSING", f"model {entry.id}: {entry.missing_reason}",
                                                 model_id=entry.id, path=str(entry.path))
            key = _file_key(entry)
            if slot.failure is not None and slot.failed_key == key:
                # A fresh copy: the interceptor stamps each raised error with its request id.
                meta = {k: v for k, v in slot.failure.metadata.items() if k != "request_id"}
                raise dataclasses.replace(slot.failure, metadata=meta)
            slot.loading = True
            loop = asyncio.get_running_loop()
            try:
                backend = await loop.run_in_executor(self.executor, self._load_sync, entry, warm)
            except errors.TatorError as exc:
                slot.failure, slot.failed_key = exc, key
                raise
            except Exception as exc:  # a corrupt or incompatible checkpoint is a model state, not a crash
                log.error("loading %s failed", entry.id, exc_info=exc)
                slot.failure, slot.failed_key = errors.failed_precondition(
                    "MODEL_LOAD_FAILED", f"model {entry.id}: {type(exc).__name__}: {exc}", model_id=entry.id), key
                raise slot.failure from exc
            finally:
                slot.loading = False
            slot.backend, slot.failure, slot.failed_key = backend, None, None
            log.info("loaded", extra={"fields": {"model_id": entry.id, "device": self.device}})
            return backend

    def _load_sync(self, entry: ModelEntry, warm: bool) -> Backend:
        backend = load_backend(entry, self.device)
        if warm:
            backend.predict([np.zeros((WARMUP_SIZE, WARMUP_SIZE, 3), np.uint8)], conf=0.5, iou=0.5, max_det=1)
        return backend

    async def unload(self, model_id: str) -> None:
        """Drop the model; jobs already queued keep their reference and finish."""
        slot = self._slot(model_id)
        async with slot.lock:
            if slot.backend is None:
                return
            slot.backend = None
            if slot.batcher is not None:  # its worker task goes; the shared device thread stays
                await slot.batcher.close()
                slot.batcher = None
        await asyncio.get_running_loop().run_in_executor(self.executor, _free_memory, self.device)
        log.info("unloaded", extra={"fields": {"model_id": model_id}})

    # --- inference -----------------------------------------------------------

    def _batcher(self, slot: _Slot) -> MicroBatcher:
        if slot.batcher is None:
            s = self.settings
            mid = slot.entry.id
            slot.batcher = MicroBatcher(
                lambda jobs: run_jobs(jobs, s.max_images_per_call, mid), service="detector", model=mid,
                max_batch=s.max_batch, max_delay_ms=s.max_delay_ms, max_queue=s.max_queue,
                executor=self.executor)
        return slot.batcher

    async def infer(self, model_id: str, images: Sequence[np.ndarray], *, conf: float, iou: float,
                    max_det: int) -> tuple[JobOutput, BatchStats]:
        backend = await self.load(model_id)
        job = Job(backend, tuple(images), conf, iou, max_det)
        return await self._batcher(self._slot(model_id)).submit(job)

    async def close(self) -> None:
        for slot in self._slots.values():
            if slot.batcher is not None:
                await slot.batcher.close()  # leaves the shared executor to us
        self.executor.shutdown(wait=False, cancel_futures=True)


def _free_memory(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()
