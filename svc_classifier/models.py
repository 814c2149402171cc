"""Model management of the classifier (tator.common.v1.ModelManagementService): backbones and heads
through the shared model lifecycle, each kind in its own repository, behind one id space (the registry's ids
and the ids of heads trained here)."""

from __future__ import annotations

import asyncio

from svc_classifier.runtime import ClassifierRuntime
from tator_core import errors
from tator_core.convert import ModelStatus


class ClassifierModels:
    """The ManagedModels methods (tator_core.model_management) over backbones and heads."""

    def __init__(self, runtime: ClassifierRuntime) -> None:
        self.runtime = runtime

    def _is_backbone(self, model_id: str) -> bool:
        if model_id in self.runtime.backbones.ids():
            return True
        if not self.runtime.is_head(model_id):
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
        repo = self.runtime.backbones if self._is_backbone(model_id) else self.runtime.heads
        return await repo.load(model_id, warm=warm)

    async def unload(self, model_id: str) -> None:
        if self._is_backbone(model_id):
            # first, or the release would wait behind the calls queued on the device thread
            self.runtime.refuse_waiting(model_id)
            await self.runtime.backbones.unload(model_id)
            return
        await self.runtime.heads.unload(model_id)  # held down first, so a refused call cannot reload it
        self.runtime.refuse_waiting(model_id)

    async def set_default(self, model_id: str) -> None:
        """Backbones: the shared default of CLIP and DINOv3. Heads: only a registry head can be the
        persisted default; a head trained here is not in the registry file yet."""
        if self._is_backbone(model_id):
            await self.runtime.backbones.set_default(model_id)
            return
        if not self.runtime.in_registry_file(model_id):
            raise errors.failed_precondition(
                "MODEL_REQUIRED", f"head {model_id} was trained by this service and is not in the model registry; "
                "register it there first so the default survives a restart", model_id=model_id)
        await self.runtime.heads.set_default(model_id)
