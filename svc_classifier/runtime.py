"""The models a classifier process holds, and the one thread that runs them.

Backbones (families clip, dinov3) and heads come from the model registry;
heads trained here are written under the heads dir and registered at once
(and found again there after a restart). A head is only ever paired with the
backbone it was trained on: same registry id, same weights version hash, same
pooling and width, else FAILED_PRECONDITION HEAD_BACKBONE_MISMATCH.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from svc_classifier.embedding import CROP_FAILURES, OOM_SHRINKS, embed_batched
from svc_classifier.family import BackboneFamily
from svc_classifier.heads import META_FILE, Head, HeadError, load_head
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
from tator_core.registry import ModelEntry, Registry, TrainingRecord

log = logging.getLogger("tator.classifier.runtime")

BACKBONE_FAMILIES = ("clip", "dinov3")
READY, AVAILABLE, MISSING, FAILED = "READY", "AVAILABLE", "MISSING", "FAILED"
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


@dataclass
class HeadSlot:
    id: str
    path: Path
    source: str                   # registry | trained
    backbone_hint: str = ""       # the registry entry's options.backbone
    head: Head | None = None
    trained_on: TrainingRecord | None = None  # the registry entry's record (a trained head carries its own)
    error: str = ""
    held_down: bool = False       # unloaded by UnloadModel: not loaded on use until LoadModel


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
        # Backbones live in the shared model lifecycle; heads are small files handled here.
        family = BackboneFamily() if wrap_backbone is None else WrappedBackbones(wrap_backbone)
        self.backbones: ModelRepository[Any] = ModelRepository(self.registry, self.device, family,
                                                               service="classifier", families=BACKBONE_FAMILIES)
        self.executor = self.backbones.executor
        self.device_calls = DeviceCalls()  # Classify / Embed calls, tagged with the models they use
        self.heads_dir = settings.resolved_heads_dir()
        self._heads: dict[str, HeadSlot] = {}
        self._lock = threading.RLock()
        self._trainings = 0
        for entry in self.registry.family("head"):
            self._heads[entry.id] = HeadSlot(entry.id, entry.path, "registry", str(entry.options.get("backbone", "")),
                                              trained_on=entry.trained_on)
        default = self.registry.default("head")
        self.default_head_id = default.id if default else ""
        self._scan_heads_dir()

    # --- lookup --------------------------------------------------------------

    def _scan_heads_dir(self) -> None:
        if not self.heads_dir.is_dir():
            return
        for meta in sorted(self.heads_dir.glob(f"*/{META_FILE}")):
            hid = meta.parent.name
            if hid not in self._heads:
                self._heads[hid] = HeadSlot(hid, meta.parent, "trained")
        if not self.default_head_id and self._heads:
            self.default_head_id = next(iter(self._heads))

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
            slot = self._heads.get(head_id)
            if slot is None:
                raise errors.not_found("MODEL_NOT_FOUND", f"no head {head_id!r}", model_id=head_id)
            if slot.head is not None:
                return slot.head
            if slot.held_down:
                raise errors.failed_precondition("MODEL_UNLOADED", f"head {head_id} is unloaded; LoadModel "
                                                 "loads it again", model_id=head_id)
            if not slot.path.exists():
                raise errors.failed_precondition("MODEL_MISSING", f"head {head_id}: weights not found at "
                                                 f"{slot.path}", model_id=head_id, path=str(slot.path))
            try:
                slot.head = load_head(slot.path, head_id)
            except HeadError as exc:
                slot.error = str(exc)
                raise errors.failed_precondition("MODEL_LOAD_FAILED", f"head {head_id}: {exc}",
                                                 model_id=head_id) from exc
            slot.head.version = path_version(slot.path)
            slot.error = ""
            return slot.head

    def pair(self, head_id: str = "") -> tuple[Head, LoadedBackbone]:
        """The head and the backbone it was trained on, or HEAD_BACKBONE_MISMATCH saying why not."""
        head = self.head(head_id)
        hint = self._heads[head.id].backbone_hint

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
        slot = self._heads.get(head_id)
        if slot is None:
            return (head_id,)
        return head_id, slot.head.backbone_id if slot.head is not None else slot.backbone_hint

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
        slot = self._heads.get(head_id)
        if slot is not None and slot.source == "registry":
            raise errors.invalid_argument("head_id", f"{head_id!r} is a registry model; pick another id")

    def register_trained(self, head: Head, make_default: bool) -> Path:
        directory = head.save(self.heads_dir / head.id)
        head.version = path_version(directory)
        with self._lock:
            self._heads[head.id] = HeadSlot(head.id, directory, "trained", head=head, trained_on=head.trained_on)
            if make_default or not self.default_head_id:
                self.default_head_id = head.id
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
        with self._lock:
            slots = list(self._heads)
        return self.backbones.statuses() + [self.head_info(h) for h in slots]

    def head_slot(self, head_id: str) -> HeadSlot | None:
        return self._heads.get(head_id)

    def head_info(self, head_id: str) -> ModelStatus:
        slot = self._heads[head_id]
        try:
            head = self.head(head_id)
        except errors.TatorError:
            head = None
        exists = slot.path.exists()
        extra = {"source": slot.source, **({"backbone": slot.backbone_hint} if slot.backbone_hint else {})}
        if head is not None:
            extra.update(backbone=head.backbone_id, backbone_version=head.backbone_version, head_type=head.head_type,
                         normalize=str(head.normalize).lower(), context_padding=str(head.context_padding),
                         val_accuracy="" if head.val_accuracy is None else f"{head.val_accuracy:.4f}")
        version = head.version if head else path_version(slot.path) if exists else ""
        state = READY if head else FAILED if slot.error else AVAILABLE if exists else MISSING
        reason = slot.error or ("" if exists else f"weights not found at {slot.path}") or (
            "unloaded; LoadModel loads it again" if slot.held_down else "")
        return ModelStatus(id=slot.id, family="head", version=version, device="cpu", state=state,
                           is_default=slot.id == self.default_head_id, loaded=head is not None,
                           labelmap=list(head.classes) if head else [], reason=reason, extra=extra,
                           trained_on=slot.trained_on or (head.trained_on if head else None))

    async def close(self) -> None:
        await self.backbones.close()
