"""One model lifecycle for every model service: a backend contract per family and a repository.

The split follows KServe's `Model` / `ModelRepository`: a family says how to load, warm up,
describe and release one of its models (`ModelBackend`); the repository owns everything else that
is the same in every service: the registry's entries, which are loaded, their states (MISSING,
AVAILABLE, LOADING, READY, FAILED), one lock per model, the device thread all model work runs on,
a micro-batcher per model, the default per family (persisted in the registry file) and unloading.

Rules every service gets from here:
- a model loads on first use, or on LoadModel; a failed load is a state (FAILED with its reason)
  and is not retried until the weights change on disk;
- a model taken down with UnloadModel stays down: using it answers FAILED_PRECONDITION naming the
  model until LoadModel brings it back (no silent reload behind the operator's back);
- unloading fails that model's queued calls at once with UNAVAILABLE naming the model, those in its
  micro-batcher and those `run` handed to the device thread alike; a batch already on the device
  finishes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import yaml

from tator_core import errors
from tator_core import registry as registry_mod
from tator_core.batching import DeviceCalls, MicroBatcher, device_executor
from tator_core.convert import ModelStatus
from tator_core.metrics import MODEL_COMPUTE_MS, QUEUE_MS
from tator_core.registry import ModelEntry, Registry

log = logging.getLogger("tator.lifecycle")

B = TypeVar("B")
T = TypeVar("T")
MISSING, AVAILABLE, LOADING, READY, FAILED = "MISSING", "AVAILABLE", "LOADING", "READY", "FAILED"


class ModelBackend(Protocol[B]):
    """How the repository drives one family's models. Every method but `describe` runs on the
    device thread; none of them sees gRPC or asyncio."""

    def load(self, entry: ModelEntry, device: str) -> B:
        """Read the weights; errors.TatorError for a known cause, anything else is MODEL_LOAD_FAILED."""
        ...

    def warmup(self, backend: B) -> None:
        """One inference on a blank input, so the first request pays no first-call cost."""
        ...

    def describe(self, backend: B) -> tuple[Sequence[str], Mapping[str, str]]:
        """The loaded model's labelmap (empty when it has none) and family-specific facts."""
        ...

    def release(self, backend: B) -> None:
        """Drop what the backend holds beyond Python references (caches, device memory)."""
        ...


@dataclass
class RunStats:
    """Device-thread accounting of one call: time waiting for the thread, time on it."""

    queue_ms: float
    compute_ms: float


def file_signature(path: Path) -> tuple[tuple[str, int, int], ...]:
    """(name, size, mtime) of every weights file: cheap change detection, unlike hashing gigabytes."""
    try:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        return tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    except OSError:
        return ()


@dataclass
class _Slot(Generic[B]):
    entry: ModelEntry
    backend: B | None = None
    loading: bool = False
    held_down: bool = False  # unloaded by UnloadModel: no load on use until LoadModel
    failure: errors.TatorError | None = None  # the last load's error, answered until the files change
    failed_files: tuple[tuple[str, int, int], ...] = ()
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    batcher: MicroBatcher[Any, Any] | None = None
    device_calls: DeviceCalls = field(default_factory=DeviceCalls)  # run() calls of this model


@dataclass(frozen=True)
class BatchLimits:
    """A model's micro-batcher bounds (each service's settings name them)."""

    max_batch: int = 8
    max_delay_ms: float = 5.0
    max_queue: int = 64


class ModelRepository(Generic[B]):
    """The registry entries of some families, what of them is loaded on `device`, and the one
    thread that runs model work there."""

    def __init__(self, registry: Registry, device: str, backend: ModelBackend[B], *, service: str,
                 families: Iterable[str] | None = None, limits: BatchLimits | None = None) -> None:
        self.registry = registry
        self.device = device
        self.backend = backend
        self.service = service
        self.families = tuple(families) if families is not None else tuple(
            dict.fromkeys(e.family for e in registry.entries.values()))
        self.limits = limits or BatchLimits()
        self.executor = device_executor(service)
        self._slots: dict[str, _Slot[B]] = {
            e.id: _Slot(e) for e in registry.entries.values() if e.family in self.families}
        self._registry_seen = file_signature(registry.source) if registry.source is not None else ()

    # --- lookup ----------------------------------------------------------------

    def ids(self) -> list[str]:
        return list(self._slots)

    def adopt_new_entries(self) -> list[str]:
        """Entries of this repository's families the registry file gained since it was read (`tator
        models add` on a running stack): known from now on and loaded on first use like the others.
        Additions only: a removed or edited entry keeps its current form until a restart, so no model
        changes under calls already using it. One stat when the file is unchanged."""
        source = self.registry.source
        if source is None or file_signature(source) == self._registry_seen:
            return []
        self._registry_seen = file_signature(source)
        try:
            fresh = Registry.load(source, families=set(self.families))
        except (OSError, ValueError, yaml.YAMLError) as exc:  # the writers rename atomically; still, never fatal
            log.warning("registry not re-read", extra={"fields": {"error": f"{type(exc).__name__}: {exc}"}})
            return []
        added = [e for e in fresh.entries.values() if e.id not in self._slots and e.id not in self.registry.entries]
        for entry in added:
            self.registry.entries[entry.id] = entry
            self._slots[entry.id] = _Slot(entry)
            if entry.default:  # the file made it its group's default (the first of its family, or asked for)
                self.registry.mark_default(entry.id)
            log.info("model added to the registry", extra={"fields": {"model_id": entry.id}})
        return [e.id for e in added]

    def adopt(self, entry: ModelEntry, loaded: B | None = None) -> None:
        """Know a model the registry file does not list (one the service made itself, such as a
        trained head), in memory: from now on it loads, lists, unloads and can be the default like
        the others. `loaded` puts it up already loaded. An entry of the same id is replaced."""
        self.registry.entries[entry.id] = entry
        self._slots[entry.id] = _Slot(entry, backend=loaded)

    def _slot(self, model_id: str) -> _Slot[B]:
        slot = self._slots.get(model_id)
        if slot is None and self.adopt_new_entries():
            slot = self._slots.get(model_id)
        if slot is None:
            raise errors.not_found("MODEL_NOT_FOUND", f"no {self.service} model {model_id!r} in the registry",
                                   model_id=model_id, known=",".join(sorted(self._slots)))
        return slot

    def entry(self, model_id: str) -> ModelEntry:
        return self._slot(model_id).entry

    def default_id(self, family: str) -> str | None:
        entry = self.registry.default_of_group(family)
        return entry.id if entry is not None and entry.id in self._slots else None

    def resolve(self, model_id: str, family: str) -> str:
        """The id a request names, or `family`'s default when it names none."""
        if model_id:
            self._slot(model_id)
            return model_id
        chosen = self.default_id(family)
        if chosen is None:
            raise errors.failed_precondition("MODEL_MISSING", f"no {family} model in the registry", family=family)
        return chosen

    def is_loaded(self, model_id: str) -> bool:
        return self._slot(model_id).backend is not None

    # --- status ----------------------------------------------------------------

    def status(self, model_id: str) -> ModelStatus:
        """Hashes the weights of a model not hashed before: off the event loop unless statuses_if_cheap."""
        slot = self._slot(model_id)
        entry, backend = slot.entry, slot.backend
        if backend is not None:
            state, reason = READY, ""
        elif not entry.exists:
            state, reason = MISSING, entry.missing_reason
        elif slot.loading:
            state, reason = LOADING, ""
        elif slot.failure is not None and slot.failed_files == file_signature(entry.path):
            state, reason = FAILED, slot.failure.message
        elif slot.held_down:
            state, reason = AVAILABLE, "unloaded; LoadModel loads it again"
        else:
            state, reason = AVAILABLE, ""
        labelmap, extra = self.backend.describe(backend) if backend is not None else (entry.labelmap or [], {})
        return ModelStatus(
            id=entry.id, family=entry.family, version=entry.version(), labelmap=list(labelmap), device=self.device,
            state=state, reason=reason, is_default=self.default_id(entry.family) == entry.id,
            loaded=backend is not None, extra=dict(extra), trained_on=entry.trained_on)

    def statuses(self) -> list[ModelStatus]:
        self.adopt_new_entries()
        return [self.status(mid) for mid in self._slots]

    def statuses_if_cheap(self) -> list[ModelStatus] | None:
        """statuses() when every weight hash is already known (no file read: fine on the event loop)."""
        self.adopt_new_entries()
        if any(slot.entry.cached_version() is None for slot in self._slots.values()):
            return None
        return self.statuses()

    async def astatuses(self) -> list[ModelStatus]:
        cheap = self.statuses_if_cheap()
        return cheap if cheap is not None else await asyncio.to_thread(self.statuses)

    # --- load / unload ---------------------------------------------------------

    async def acquire(self, model_id: str) -> B:
        """The loaded model, loading it on first use; one held down by unload() is refused by name."""
        slot = self._slot(model_id)
        if slot.backend is not None:
            return slot.backend
        if slot.held_down:
            raise errors.failed_precondition(
                "MODEL_UNLOADED", f"{self.service} model {model_id} is unloaded; LoadModel loads it again",
                model_id=model_id)
        return await self.load(model_id)

    def loaded(self, model_id: str) -> B:
        """The loaded model, for code already on the device thread (acquire() loaded it before)."""
        backend = self._slot(model_id).backend
        if backend is None:
            raise errors.failed_precondition(
                "MODEL_UNLOADED", f"{self.service} model {model_id} is not loaded (unloaded since the call began?)",
                model_id=model_id)
        return backend

    async def load(self, model_id: str, *, warm: bool = True) -> B:
        """Load (once) and optionally run one warm-up inference; errors name the cause."""
        slot = self._slot(model_id)
        async with slot.lock:
            slot.held_down = False
            if slot.backend is not None:
                return slot.backend
            self._check_loadable(slot)
            slot.loading = True
            return await asyncio.get_running_loop().run_in_executor(self.executor, self._load_into, slot, warm)

    def load_here(self, model_id: str) -> B:
        """For code already on the device thread (or a script with no event loop running): the loaded
        model, loading and warming it here on first use; one held down by unload() is refused by name."""
        slot = self._slot(model_id)
        if slot.backend is not None:
            return slot.backend
        if slot.held_down:
            raise errors.failed_precondition(
                "MODEL_UNLOADED", f"{self.service} model {model_id} is unloaded; LoadModel loads it again",
                model_id=model_id)
        self._check_loadable(slot)
        slot.loading = True
        return self._load_into(slot, True)

    def _check_loadable(self, slot: _Slot[B]) -> None:
        entry = slot.entry
        if not entry.exists:
            raise errors.failed_precondition("MODEL_MISSING", f"model {entry.id}: {entry.missing_reason}",
                                             model_id=entry.id, path=str(entry.path))
        if slot.failure is not None and slot.failed_files == file_signature(entry.path):
            # A fresh copy: the interceptor stamps each raised error with its request id.
            meta = {k: v for k, v in slot.failure.metadata.items() if k != "request_id"}
            raise dataclasses.replace(slot.failure, metadata=meta)

    def _load_into(self, slot: _Slot[B], warm: bool) -> B:
        """Device thread: load, hash and warm up, recording the outcome in the slot. Loads queued on
        the one device thread run one after another, so the second finds the first's model."""
        entry = slot.entry
        try:
            if slot.backend is not None:
                return slot.backend
            files = file_signature(entry.path)
            try:
                backend = self.backend.load(entry, self.device)
                entry.version()  # hash the weights here, once, not on the event loop at the next ListModels
                if warm:
                    self.backend.warmup(backend)
            except errors.TatorError as exc:
                slot.failure, slot.failed_files = exc, files
                raise
            except Exception as exc:  # a corrupt or incompatible checkpoint is a model state, not a crash
                log.error("model load failed", exc_info=exc, extra={"fields": {"model_id": entry.id}})
                slot.failure, slot.failed_files = errors.failed_precondition(
                    "MODEL_LOAD_FAILED", f"model {entry.id}: {type(exc).__name__}: {exc}"[:600],
                    model_id=entry.id), files
                raise slot.failure from exc
            slot.backend, slot.failure, slot.failed_files = backend, None, ()
        finally:
            slot.loading = False
        log.info("model loaded", extra={"fields": {"model_id": entry.id, "device": self.device}})
        return backend

    async def unload(self, model_id: str) -> None:
        """Take the model down until the next load(): its queued calls fail now (UNAVAILABLE naming
        it), a batch already running finishes, then its memory is released."""
        slot = self._slot(model_id)
        async with slot.lock:
            slot.held_down = True
            backend, slot.backend = slot.backend, None
            batcher, slot.batcher = slot.batcher, None
            def refusal() -> errors.TatorError:
                return errors.unavailable(
                    "MODEL_UNLOADED", f"{self.service} model {model_id} was unloaded while this call waited",
                    model_id=model_id)

            slot.device_calls.refuse_waiting(refusal)
            if batcher is not None:
                await batcher.abort(refusal())
            if backend is None:
                return
            await asyncio.get_running_loop().run_in_executor(self.executor, self._release_sync, backend)
        log.info("model unloaded", extra={"fields": {"model_id": model_id}})

    def _release_sync(self, backend: B) -> None:
        self.backend.release(backend)
        gc.collect()
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    async def set_default(self, model_id: str) -> None:
        """Make the model its family's default, in the registry file (so a restart keeps it) and here."""
        self._slot(model_id)
        if self.registry.source is not None:
            await asyncio.to_thread(registry_mod.set_default, self.registry.source, model_id)
        self.registry.mark_default(model_id)
        log.info("default model set", extra={"fields": {"model_id": model_id}})

    # --- running ---------------------------------------------------------------

    def batcher(self, model_id: str, fn: Callable[[Sequence[Any]], Sequence[Any]]) -> MicroBatcher[Any, Any]:
        """The model's micro-batcher on the device thread (made on first use; unload() fails its queue)."""
        slot = self._slot(model_id)
        if slot.batcher is None:
            lim = self.limits
            slot.batcher = MicroBatcher(fn, service=self.service, model=model_id, max_batch=lim.max_batch,
                                        max_delay_ms=lim.max_delay_ms, max_queue=lim.max_queue,
                                        executor=self.executor)
        return slot.batcher

    async def run(self, fn: Callable[..., T], *args: Any, model_id: str = "", **kwargs: Any) -> tuple[T, RunStats]:
        """Run fn on the device thread (model calls never overlap there). With the model_id of one of
        this repository's models, unloading that model before fn starts fails the call at once."""
        enqueued = time.perf_counter()
        started: list[float] = []

        def call() -> T:
            started.append(time.perf_counter())
            return fn(*args, **kwargs)

        slot = self._slots.get(model_id) if model_id else None
        if slot is not None:
            result = await slot.device_calls.run(self.executor, call)
        else:
            result = await asyncio.get_running_loop().run_in_executor(self.executor, call)
        stats = RunStats((started[0] - enqueued) * 1000, (time.perf_counter() - started[0]) * 1000)
        QUEUE_MS.labels(self.service).observe(stats.queue_ms)
        if model_id:
            MODEL_COMPUTE_MS.labels(self.service, model_id).observe(stats.compute_ms)
        return result, stats

    async def warm_defaults(self) -> None:
        """Load each family's default that is on disk; a failure is recorded as that model's state
        (FAILED in ListModels) and does not keep the others from serving."""
        for family in self.families:
            mid = self.default_id(family)
            if mid is None or not self.entry(mid).exists or self.is_loaded(mid):
                continue
            try:
                await self.load(mid)
            except Exception as exc:  # recorded in the model's state
                log.error("warm-up: %s failed to load", mid, exc_info=exc)

    async def close(self) -> None:
        for slot in self._slots.values():
            if slot.batcher is not None:
                await slot.batcher.close()  # leaves the shared executor to us
        self.executor.shutdown(wait=False, cancel_futures=True)
