"""The Qwen models a service may run: registry entries, their state, loading,
and the one device thread every model call runs on.

Models load lazily on first use (the warm-up loads the default). A missing
weights directory is reported (ModelInfo MISSING, FAILED_PRECONDITION
MODEL_MISSING naming the path) and re-checked on every use, so weights copied
in later are picked up without a restart. A failed load stays FAILED with its
reason until the files change. Loading and hashing weights run off the event
loop (a real checkpoint takes minutes to hash).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client import Counter

from svc_qwen.backends.qwen_vl import QwenVL
from tator_core import errors
from tator_core.batching import device_executor
from tator_core.metrics import MODEL_COMPUTE_MS, QUEUE_MS
from tator_core.registry import ModelEntry, Registry

log = logging.getLogger("svc_qwen.models")
VISION_REGIONS = Counter("tator_qwen_vision_regions_total", "Image regions needing vision features",
                         ["model", "result"])  # result: computed | cached
GENERATED_TOKENS = Counter("tator_qwen_generated_tokens_total", "Tokens generated", ["model", "rpc"])
T = TypeVar("T")
MISSING, AVAILABLE, LOADING, READY, FAILED = "MISSING", "AVAILABLE", "LOADING", "READY", "FAILED"


@dataclass
class Slot:
    """One registry entry and what the service knows about it."""

    entry: ModelEntry
    state: str = AVAILABLE
    reason: str = ""
    backend: QwenVL | None = None
    version: str = ""            # sha256 of the weights, computed once when loaded
    failed_files: tuple = ()     # file signature at the failed load
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def refresh(self) -> None:
        if self.backend is not None:
            return
        if not self.entry.exists:
            self.state, self.reason = MISSING, self.entry.missing_reason
        elif self.state == MISSING or (self.state == FAILED and file_signature(self.entry.path) != self.failed_files):
            self.state, self.reason = AVAILABLE, ""


def file_signature(path: Path) -> tuple:
    """(name, size, mtime) of every file: cheap change detection, unlike hashing gigabytes."""
    try:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        return tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    except OSError:
        return ()


def _load(entry: ModelEntry, device: str, feature_cache_items: int) -> tuple[QwenVL, str]:
    """Load and hash on the device thread: both can take minutes for a real checkpoint."""
    backend = QwenVL.load(entry.path, device, entry.options, feature_cache_items=feature_cache_items)
    return backend, entry.version()


@dataclass
class RunStats:
    """Device-thread accounting of one call."""

    queue_ms: float
    compute_ms: float


class QwenModels:
    def __init__(self, registry: Registry, device: str, *, feature_cache_items: int = 16) -> None:
        self.registry = registry
        self.device = device
        self.feature_cache_items = feature_cache_items
        self.executor = device_executor("qwen")
        self.slots = {e.id: Slot(e) for e in registry.family("qwen")}
        for slot in self.slots.values():
            slot.refresh()

    def default_id(self) -> str | None:
        entry = self.registry.default("qwen")
        return entry.id if entry is not None else None

    def infos(self) -> list[dict[str, Any]]:
        """ModelInfo fields per model; hashes unloaded weights, so call it off the event loop."""
        default = self.default_id()
        out = []
        for slot in self.slots.values():
            slot.refresh()
            backend = slot.backend
            out.append({
                "id": slot.entry.id, "family": "qwen", "version": slot.version or slot.entry.version(),
                "device": self.device,
                "state": slot.state, "reason": slot.reason, "is_default": slot.entry.id == default,
                "loaded": backend is not None,
                "extra": {"model_type": backend.model_type} if backend is not None else {},
            })
        return out

    def slot(self, model_id: str) -> Slot:
        """The slot for an id ("" = default); NOT_FOUND / MODEL_MISSING when there is none."""
        if not model_id:
            model_id = self.default_id() or ""
            if not model_id:
                raise errors.failed_precondition("MODEL_MISSING", "no qwen model in the registry", family="qwen")
        slot = self.slots.get(model_id)
        if slot is None:
            raise errors.not_found("MODEL_NOT_FOUND", f"no qwen model {model_id!r} in the registry",
                                   model_id=model_id)
        return slot

    async def acquire(self, model_id: str) -> Slot:
        """A loaded model, loading it on the device thread if needed."""
        slot = self.slot(model_id)
        async with slot.lock:
            slot.refresh()
            if slot.state == MISSING:
                raise errors.failed_precondition("MODEL_MISSING", f"model {slot.entry.id}: {slot.reason}",
                                                 model_id=slot.entry.id, path=str(slot.entry.path))
            if slot.state == FAILED:
                raise errors.failed_precondition("MODEL_LOAD_FAILED", f"model {slot.entry.id}: {slot.reason}",
                                                 model_id=slot.entry.id)
            if slot.backend is None:
                slot.state = LOADING
                try:
                    (slot.backend, slot.version), _ = await self.run(
                        _load, slot.entry, self.device, self.feature_cache_items, model_id=slot.entry.id)
                except Exception as exc:  # any load failure is reported, not raised raw
                    slot.state, slot.reason = FAILED, f"{type(exc).__name__}: {exc}"[:500]
                    slot.failed_files = file_signature(slot.entry.path)
                    log.error("model load failed", exc_info=exc, extra={"fields": {"model_id": slot.entry.id}})
                    raise errors.failed_precondition("MODEL_LOAD_FAILED", f"model {slot.entry.id}: {slot.reason}",
                                                     model_id=slot.entry.id) from exc
                slot.state, slot.reason = READY, ""
                log.info("model loaded", extra={"fields": {"model_id": slot.entry.id,
                                                           "model_type": getattr(slot.backend, "model_type", "")}})
        return slot

    async def run(self, fn: Callable[..., T], *args: Any, model_id: str = "", **kwargs: Any) -> tuple[T, RunStats]:
        """Run fn on the device thread; model calls never overlap."""
        enqueued = time.perf_counter()
        started: list[float] = []

        def call() -> T:
            started.append(time.perf_counter())
            return fn(*args, **kwargs)

        result = await asyncio.get_running_loop().run_in_executor(self.executor, call)
        done = time.perf_counter()
        stats = RunStats((started[0] - enqueued) * 1000, (done - started[0]) * 1000)
        QUEUE_MS.labels("qwen").observe(stats.queue_ms)
        MODEL_COMPUTE_MS.labels("qwen", model_id).observe(stats.compute_ms)
        return result, stats

    async def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
