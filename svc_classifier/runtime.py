"""The models a classifier process holds, and the one thread that runs them.

Backbones (families clip, dinov3) and heads come from the model registry and
live in the shared model lifecycle (tator_core.lifecycle), each kind in its own
repository: backbones on the device, heads (numpy) on the CPU. Heads trained
here are written under the heads dir and adopted by the heads' repository at
once (and found again there after a restart). A head is only ever paired with
the backbone it was trained on: same registry id, same weights version hash,
same pooling and width, else FAILED_PRECONDITION HEAD_BACKBONE_MISMATCH.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from svc_classifier.embedding import CROP_FAILURES, OOM_SHRINKS, embed_batched
from svc_classifier.family import BackboneFamily, HeadFamily
from svc_classifier.heads import META_FILE, Head
from svc_classifier.settings import ClassifierSettings
from svc_classifier.training import (
    Progress,
    TrainOutcome,
    TrainParams,
    derive_head_id,
    train_head,
)
from tator_core import errors
from tator_core.batching import DeviceCalls
from tator_core.convert import ModelStatus
from tator_core.hashing import path_version
from tator_core.lifecycle import ModelRepository
from tator_core.registry import ModelEntry, Registry

log = logging.getLogger("tator.classifier.runtime")

BACKBONE_FAMILIES = ("clip", "dinov3")
HEAD_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,128}")


@dataclass
class LoadedBackbone:
    id: str
    family: str
    version: str
    model: Any            # embed(crops) -> (n, dim); dim; pooling

    @property
    def dim(self) -> int:
        return int(self.model.dim)

    @property
    def pooling(self) -> str:
        return str(getattr(self.model, "pooling", ""))


class WrappedBackbones(BackboneFamily):
    """The backbone family with a wrapper around each loaded model (tests inject faults such as OOM)."""

    def __init__(self, wrap: Callable[[Any], Any]) -> None:
        self.wrap = wrap

    def load(self, entry: ModelEntry, device: str) -> Any:
        return self.wrap(super().load(entry, device))


class ClassifierRuntime:
    def __init__(self, settings: ClassifierSettings, *, device: str | None = None,
                 wrap_backbone: Callable[[Any], Any] | None = None) -> None:
        from tator_core.settings import resolve_device

        self.settings = settings
        self.registry = Registry.load(settings.registry, families={*BACKBONE_FAMILIES, "head"})
        self.device = device or resolve_device(settings.device)
        if self.device == "cpu" and settings.cpu_threads > 0:
            import torch

            torch.set_num_threads(settings.cpu_threads)
        family = BackboneFamily() if wrap_backbone is None else WrappedBackbones(wrap_backbone)
        self.backbones: ModelRepository[Any] = ModelRepository(self.registry, self.device, family,
                                                               service="classifier", families=BACKBONE_FAMILIES)
        self.executor = self.backbones.executor
        self.device_calls = DeviceCalls()  # Classify / Embed calls, tagged with the models they use
        self.heads: ModelRepository[Head] = ModelRepository(self.registry, "cpu", HeadFamily(),
                                                            service="classifier", families=("head",))
        self.heads_dir = settings.resolved_heads_dir()
        self._trained: set[str] = set()  # heads trained here (under heads_dir), not in the registry file
        self._lock = threading.RLock()  # heads load from the device thread and from listing threads
        self._trainings = 0
        self._scan_heads_dir()

    # --- lookup --------------------------------------------------------------

    def _scan_heads_dir(self) -> None:
        if not self.heads_dir.is_dir():
            return
        for meta in sorted(self.heads_dir.glob(f"*/{META_FILE}")):
            hid = meta.parent.name
            if hid not in self.heads.ids():
                self.heads.adopt(ModelEntry(hid, "head", meta.parent))
                self._trained.add(hid)

    @property
    def default_head_id(self) -> str:
        """The registry's default head, else its first, else the first head trained here."""
        return self.heads.default_id("head") or ""

    def backbone_entries(self) -> list[ModelEntry]:
        return [e for fam in BACKBONE_FAMILIES for e in self.registry.family(fam)]

    @property
    def default_backbone_id(self) -> str:
        return self.backbones.default_id(BACKBONE_FAMILIES[0]) or ""

    def backbone_entry(self, backbone_id: str = "") -> ModelEntry:
        backbone_id = backbone_id or self.default_backbone_id
        if not backbone_id:
            raise errors.failed_precondition("MODEL_MISSING", "no clip or dinov3 backbone in the registry")
        entry = self.registry.entries.get(backbone_id)
        if entry is None or entry.family not in BACKBONE_FAMILIES:
            raise errors.not_found("MODEL_NOT_FOUND", f"no backbone {backbone_id!r} in the registry",
                                   model_id=backbone_id)
        if not entry.exists:
            raise errors.failed_precondition("MODEL_MISSING", f"backbone {entry.id}: {entry.missing_reason}",
                                             model_id=entry.id, path=str(entry.path))
        return entry

    def backbone(self, backbone_id: str = "") -> LoadedBackbone:
        """Loaded on first use (call on the device thread); one taken down by UnloadModel is refused."""
        entry = self.backbone_entry(backbone_id)
        model = self.backbones.load_here(entry.id)
        for metric in (OOM_SHRINKS, CROP_FAILURES):  # series exist at 0, so a dashboard sees "no shrinks yet"
            metric.labels(entry.id)
        return LoadedBackbone(entry.id, entry.family, entry.version(), model)

    def head(self, head_id: str = "") -> Head:
        head_id = head_id or self.default_head_id
        if not head_id:
            raise errors.failed_precondition("MODEL_REQUIRED", "no classifier head: add one to the registry "
                                             "or train one with TrainHead")
        with self._lock:
            return self.heads.load_here(head_id)

    def pair(self, head_id: str = "") -> tuple[Head, LoadedBackbone]:
        """The head and the backbone it was trained on, or HEAD_BACKBONE_MISMATCH saying why not."""
        head = self.head(head_id)
        hint = str(self.heads.entry(head.id).options.get("backbone", ""))

        def mismatch(why: str) -> errors.TatorError:
            return errors.failed_precondition("HEAD_BACKBONE_MISMATCH", f"head {head.id}: {why}",
                                              head_id=head.id, backbone_id=head.backbone_id)

        if hint and hint != head.backbone_id:
            raise mismatch(f"registered for backbone {hint} but trained on {head.backbone_id}")
        entry = self.registry.entries.get(head.backbone_id)
        if entry is None or entry.family not in BACKBONE_FAMILIES:
            raise mismatch(f"trained on backbone {head.backbone_id}, which this service does not have")
        backbone = self.backbone(head.backbone_id)
        if head.backbone_version and backbone.version != head.backbone_version:
            raise mismatch(f"trained on {head.backbone_id} version {head.backbone_version[:12]}, loaded version "
                           f"is {backbone.version[:12]}")
        if head.backbone_pooling and backbone.pooling and head.backbone_pooling != backbone.pooling:
            raise mismatch(f"trained on {head.backbone_pooling} pooling, backbone gives {backbone.pooling}")
        if head.dim != backbone.dim:
            raise mismatch(f"expects {head.dim}-wide embeddings, backbone gives {backbone.dim}")
        return head, backbone

    # --- device thread -------------------------------------------------------

    async def on_device(self, fn: Callable[..., Any], *args: Any, model_ids: Iterable[str] = (),
                        **kwargs: Any) -> tuple[Any, float]:
        """Run fn on the device thread; returns (result, ms it waited for the thread). Unloading one of
        `model_ids` before the thread starts fn fails the call at once (refuse_waiting)."""
        submitted = time.perf_counter()

        def run() -> tuple[Any, float]:
            waited = (time.perf_counter() - submitted) * 1000
            return fn(*args, **kwargs), waited

        return await self.device_calls.run(self.executor, run, tags=frozenset(i for i in model_ids if i))

    def call_models(self, head_id: str = "") -> tuple[str, ...]:
        """The head a Classify call resolves to and, when already known, its backbone."""
        head_id = head_id or self.default_head_id
        if head_id not in self.heads.ids():
            return (head_id,)
        if self.heads.is_loaded(head_id):
            return head_id, self.heads.loaded(head_id).backbone_id
        return head_id, str(self.heads.entry(head_id).options.get("backbone", ""))

    def refuse_waiting(self, model_id: str) -> None:
        """Fail the calls on `model_id` still waiting for the device thread: UNAVAILABLE naming it."""
        self.device_calls.refuse_waiting(lambda: errors.unavailable(
            "MODEL_UNLOADED", f"classifier model {model_id} was unloaded while this call waited",
            model_id=model_id), tag=model_id)

    # --- training ------------------------------------------------------------

    def check_new_head_id(self, head_id: str) -> None:
        if not head_id or head_id.startswith(".") or not HEAD_ID_RE.fullmatch(head_id):
            # the id names a directory under heads_dir: "..", ".x" or a separator must never get there
            raise errors.invalid_argument("head_id", f"{head_id!r} is not a usable head id ([A-Za-z0-9_-] first, "
                                          "then also '.')")
        if head_id in self.heads.ids() and head_id not in self._trained:
            raise errors.invalid_argument("head_id", f"{head_id!r} is a registry model; pick another id")

    def register_trained(self, head: Head, make_default: bool) -> Path:
        directory = head.save(self.heads_dir / head.id)
        head.version = path_version(directory)
        with self._lock:
            first = not self.default_head_id
            self.heads.adopt(ModelEntry(head.id, "head", directory, trained_on=head.trained_on), loaded=head)
            self._trained.add(head.id)
            if make_default or first:
                self.registry.mark_default(head.id)
        log.info("head registered", extra={"fields": {"head": head.id, "val_accuracy": head.val_accuracy,
                                                      "default": self.default_head_id == head.id}})
        return directory

    async def train(self, params: TrainParams) -> AsyncIterator[Progress | TrainOutcome]:
        """Stream progress events, then the outcome (the head saved and registered)."""
        if self._trainings >= self.settings.max_concurrent_trainings:
            raise errors.resource_exhausted(f"{self._trainings} head training(s) already running; retry later")
        self._trainings += 1
        cancel = threading.Event()
        try:
            backbone, _ = await self.on_device(self.backbone, params.backbone_id)
            head_id = params.head_id or derive_head_id(params, backbone.id)
            self.check_new_head_id(head_id)
            loop = asyncio.get_running_loop()
            queue: asyncio.Queue = asyncio.Queue()

            def emit(event: Progress) -> None:
                loop.call_soon_threadsafe(queue.put_nowait, event)

            def embed_fn(crops):  # from the training thread onto the device thread, between scoring calls
                return self.executor.submit(embed_batched, backbone.model, crops, params.batch_size,
                                            name=backbone.id).result()

            def work() -> TrainOutcome:
                outcome = train_head(params, backbone_id=backbone.id, backbone_version=backbone.version,
                                     backbone_pooling=backbone.pooling, embed_fn=embed_fn, head_id=head_id,
                                     progress=emit, cancelled=cancel.is_set)
                emit(Progress("save", 0, 1, f"writing {head_id}"))
                where = self.register_trained(outcome.head, params.make_default)
                emit(Progress("save", 1, 1, f"saved to {where}"))
                return outcome

            task = loop.run_in_executor(None, work)
            task.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved even if abandoned
            while True:
                getter = asyncio.ensure_future(queue.get())
                try:
                    done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    if not getter.done():
                        getter.cancel()
                if getter in done:
                    yield getter.result()
                    continue
                while not queue.empty():  # events emitted before the worker returned
                    yield queue.get_nowait()
                yield task.result()
                return
        finally:
            cancel.set()   # a caller that went away stops the worker at its next check
            self._trainings -= 1

    # --- listing -------------------------------------------------------------

    def model_infos(self) -> list[ModelStatus]:
        """The state of every backbone and head (heads are small: listing loads them); hashes unloaded
        weights, so call it off the event loop."""
        self.heads.adopt_new_entries()
        return self.backbones.statuses() + [self.head_info(h) for h in self.heads.ids()]

    def in_registry_file(self, head_id: str) -> bool:
        return head_id not in self._trained

    def is_head(self, model_id: str) -> bool:
        if model_id not in self.heads.ids():
            self.heads.adopt_new_entries()  # a head `tator models add` registered since
        return model_id in self.heads.ids()

    def head_info(self, head_id: str) -> ModelStatus:
        """The lifecycle's status of a head, loading it first (heads are small), plus where it came
        from; a head that fails to load is listed FAILED with the reason."""
        try:
            head: Head | None = self.head(head_id)
        except errors.TatorError:
            head = None
        status = self.heads.status(head_id)
        hint = str(self.heads.entry(head_id).options.get("backbone", ""))
        source = "trained" if head_id in self._trained else "registry"
        extra = {"source": source, **({"backbone": hint} if hint else {}), **status.extra}
        trained_on = status.trained_on or (head.trained_on if head is not None else None)
        return dataclasses.replace(status, extra=extra, trained_on=trained_on)

    async def close(self) -> None:
        await self.backbones.close()
        await self.heads.close()
