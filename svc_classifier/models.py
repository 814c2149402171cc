"""Model management of the classifier (tator.common.v1.ModelManagementService): backbones through
the shared model lifecycle, heads through the runtime, behind one id space (the registry's ids and
the ids of heads trained here)."""

from __future__ import annotations

import asyncio

from svc_classifier.runtime import ClassifierRuntime
from tator_core import errors
from tator_core import registry as registry_mod
from tator_core.convert import ModelStatus


class ClassifierModels:
    """The ManagedModels methods (tator_core.model_management) over backbones and heads."""

    def __init__(self, runtime: ClassifierRuntime) -> None:
        self.runtime = runtime

    def _is_backbone(self, model_id: str) -> bool:
        if model_id in self.runtime.backbones.ids():
            return True
        if self.runtime.head_slot(model_id) is None:
            raise errors.not_found("MODEL_NOT_FOUND", f"no classifier model {model_id!r} (backbone or head)",
                                   model_id=model_id)
        return False

    async def astatuses(self) -> list[ModelStatus]:
        return await asyncio.to_thread(self.runtime.model_infos)

    def status(self, model_id: str) -> ModelStatus:
        if self._is_backbone(model_id):
            return self.runtime.backbones.status(model_id)
        return self.runtime.head_info(model_id)

    async def load(self, model_id: str, *, warm: bool = True) -> object:
        if self._is_backbone(model_id):
            return await self.runtime.backbones.load(model_id, warm=warm)
        slot = self.runtime.head_slot(model_id)
        assert slot is not None  # _is_backbone raised NOT_FOUND otherwise
        slot.held_down = False
        return await asyncio.to_thread(self.runtime.head, model_id)

    async def unload(self, model_id: str) -> None:
        if self._is_backbone(model_id):
            # first, or the release would wait behind the calls queued on the device thread
            self.runtime.refuse_waiting(model_id)
            await self.runtime.backbones.unload(model_id)
            return
        slot = self.runtime.head_slot(model_id)
        assert slot is not None
        slot.held_down, slot.head = True, None
        self.runtime.refuse_waiting(model_id)

    async def set_default(self, model_id: str) -> None:
        """Backbones: the shared default of CLIP and DINOv3. Heads: only a registry head can be the
        persisted default; a head trained here is not in the registry file yet."""
        if self._is_backbone(model_id):
            await self.runtime.backbones.set_default(model_id)
            return
        slot = self.runtime.head_slot(model_id)
        assert slot is not None
        if slot.source != "registry":
            raise errors.failed_precondition(
                "MODEL_REQUIRED", f"head {model_id} was trained by this service and is not in the model registry; "
                "register it there first so the default survives a restart", model_id=model_id)
        registry = self.runtime.registry
        if registry.source is not None:
            await asyncio.to_thread(registry_mod.set_default, registry.source, model_id)
        registry.mark_default(model_id)
        self.runtime.default_head_id = model_id
