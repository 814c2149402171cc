"""SAM3 models of the registry: state, lazy loading, ModelInfo.

A registry entry whose directory is missing is MISSING (with the path as
reason) and every use answers FAILED_PRECONDITION / MODEL_MISSING; the
service starts anyway. Loading happens on the device thread, once per model;
a load failure is remembered (FAILED) and answered as MODEL_LOAD_FAILED
without retrying on every request.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from svc_sam3.backends.sam3 import Sam3Backend
from tator_core import errors
from tator_core.gen.tator.common.v1 import common_pb2
from tator_core.registry import ModelEntry, Registry

log = logging.getLogger("tator.sam3.models")
FAMILY = "sam3"

Loader = Callable[[ModelEntry, str], Sam3Backend]


def load_backend(entry: ModelEntry, device: str) -> Sam3Backend:
    return Sam3Backend.load(entry.path, device, entry.options)


class ModelManager:
    def __init__(self, registry: Registry, device: str, loader: Loader = load_backend) -> None:
        self.registry = registry
        self.device = device
        self.loader = loader
        self._loaded: dict[str, Sam3Backend] = {}
        self._failed: dict[str, str] = {}
        self._loading: set[str] = set()
        self._lock = threading.Lock()

    def entry(self, model_id: str) -> ModelEntry:
        """The entry a request names ('' = default); NOT_FOUND / MODEL_MISSING / MODEL_LOAD_FAILED."""
        # The registry holds only this family, so another family's id is NOT_FOUND too.
        entry = self.registry.get(model_id) if model_id else self.registry.require_default(FAMILY)
        if entry.id not in self._loaded and not entry.exists:
            raise errors.failed_precondition("MODEL_MISSING", f"model {entry.id!r}: {entry.missing_reason}",
                                             model_id=entry.id, path=entry.path)
        if entry.id in self._failed:
            raise errors.failed_precondition("MODEL_LOAD_FAILED",
                                             f"model {entry.id!r} failed to load: {self._failed[entry.id]}",
                                             model_id=entry.id)
        return entry

    def is_loaded(self, model_id: str) -> bool:
        return model_id in self._loaded

    def backend(self, entry: ModelEntry) -> Sam3Backend:
        """Loaded backend of an entry (loads on first use; call on the device thread)."""
        with self._lock:
            loaded = self._loaded.get(entry.id)
            if loaded is not None:
                return loaded
            self._loading.add(entry.id)
        try:
            backend = self.loader(entry, self.device)
        except Exception as exc:  # a broken checkpoint is a model state, not a crash
            log.error("model load failed", exc_info=exc, extra={"fields": {"model_id": entry.id}})
            with self._lock:
                self._failed[entry.id] = f"{type(exc).__name__}: {exc}"
            raise errors.failed_precondition("MODEL_LOAD_FAILED", f"model {entry.id!r} failed to load: {exc}",
                                             model_id=entry.id) from exc
        finally:
            with self._lock:
                self._loading.discard(entry.id)
        with self._lock:
            self._loaded[entry.id] = backend
        return backend

    def infos(self) -> list[common_pb2.ModelInfo]:
        default = self.registry.default(FAMILY)
        out = []
        for entry in self.registry.family(FAMILY):
            info = common_pb2.ModelInfo(id=entry.id, family=FAMILY, device=self.device,
                                        is_default=default is not None and entry.id == default.id,
                                        loaded=entry.id in self._loaded)
            if entry.id in self._loaded:
                info.state = common_pb2.MODEL_STATE_READY
            elif entry.id in self._failed:
                info.state, info.reason = common_pb2.MODEL_STATE_FAILED, self._failed[entry.id]
            elif not entry.exists:
                info.state, info.reason = common_pb2.MODEL_STATE_MISSING, entry.missing_reason
            elif entry.id in self._loading:
                info.state = common_pb2.MODEL_STATE_LOADING
            else:
                info.state = common_pb2.MODEL_STATE_AVAILABLE
            if entry.exists:
                info.version = entry.version()
            out.append(info)
        return out
