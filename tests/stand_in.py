"""A fixed model list for stand-in servers built by `start_server`.

Handed to `ServiceSpec.models`, it makes the bootstrap serve the real tator.common.v1.ModelManagementService
(paging, validation, auth, the interceptor) next to a fake service, without any model weights: tests that
need a cheap unary read call use its ListModels.
"""

from __future__ import annotations

from tator_core import errors
from tator_core.convert import ModelStatus


class FixedModels:
    """ManagedModels over a fixed list; Load/Unload/SetDefault are refused (nothing here to load)."""

    def __init__(self, *statuses: ModelStatus) -> None:
        self.statuses = list(statuses)

    async def astatuses(self) -> list[ModelStatus]:
        return list(self.statuses)

    def status(self, model_id: str) -> ModelStatus:
        for s in self.statuses:
            if s.id == model_id:
                return s
        raise errors.not_found("MODEL_NOT_FOUND", f"no model '{model_id}'", model_id=model_id)

    async def _refuse(self, model_id: str) -> None:
        self.status(model_id)
        raise errors.failed_precondition("MODEL_MISSING", f"stand-in model '{model_id}' has no weights",
                                         model_id=model_id)

    async def load(self, model_id: str, *, warm: bool = True) -> None:
        await self._refuse(model_id)

    async def unload(self, model_id: str) -> None:
        await self._refuse(model_id)

    async def set_default(self, model_id: str) -> None:
        await self._refuse(model_id)


def one_model(model_id: str = "m", family: str = "clip") -> FixedModels:
    """One READY model, as the stand-ins' listings used to answer."""
    return FixedModels(ModelStatus(id=model_id, family=family, version="v1", device="cpu", state="READY",
                                   loaded=True, is_default=True))
