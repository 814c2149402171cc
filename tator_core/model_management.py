"""The one model-management surface (tator.common.v1.ModelManagementService) every model service
serves: proto in, the service's model repository, proto out.

A service hands its models to `ServiceSpec.models`; the bootstrap registers this servicer next to
the service's own. Anything with the `ManagedModels` methods fits: `tator_core.lifecycle`'s
ModelRepository does.
"""

from __future__ import annotations

from typing import Any, Protocol

import grpc

from tator_core.convert import ModelStatus, model_info_pb
from tator_core.gen.tator.common.v1 import models_pb2, models_pb2_grpc
from tator_core.paging import page_by_key

FULL_NAME = "tator.common.v1.ModelManagementService"


class ManagedModels(Protocol):
    """What the management RPCs need of a service's models."""

    async def astatuses(self) -> list[ModelStatus]: ...

    def status(self, model_id: str) -> ModelStatus: ...

    async def load(self, model_id: str, *, warm: bool = True) -> Any: ...

    async def unload(self, model_id: str) -> None: ...

    async def set_default(self, model_id: str) -> None: ...


class ModelManagementServicer(models_pb2_grpc.ModelManagementServiceServicer):
    def __init__(self, models: ManagedModels) -> None:
        self.models = models

    async def ListModels(self, request: models_pb2.ListModelsRequest,
                         context: grpc.aio.ServicerContext[Any, Any]) -> models_pb2.ListModelsResponse:
        page, token = page_by_key(await self.models.astatuses(), lambda s: s.id, request.page_size,
                                  request.page_token, {"list": "models"})
        return models_pb2.ListModelsResponse(models=[model_info_pb(s) for s in page], next_page_token=token)

    async def LoadModel(self, request: models_pb2.LoadModelRequest,
                        context: grpc.aio.ServicerContext[Any, Any]) -> models_pb2.LoadModelResponse:
        await self.models.load(request.model_id)
        return models_pb2.LoadModelResponse(model=model_info_pb(self.models.status(request.model_id)))

    async def UnloadModel(self, request: models_pb2.UnloadModelRequest,
                          context: grpc.aio.ServicerContext[Any, Any]) -> models_pb2.UnloadModelResponse:
        await self.models.unload(request.model_id)
        return models_pb2.UnloadModelResponse(model=model_info_pb(self.models.status(request.model_id)))

    async def SetDefaultModel(self, request: models_pb2.SetDefaultModelRequest,
                              context: grpc.aio.ServicerContext[Any, Any]) -> models_pb2.SetDefaultModelResponse:
        await self.models.set_default(request.model_id)
        return models_pb2.SetDefaultModelResponse(model=model_info_pb(self.models.status(request.model_id)))


def add_to_server(models: ManagedModels, server: grpc.aio.Server) -> None:
    servicer = ModelManagementServicer(models)
    models_pb2_grpc.add_ModelManagementServiceServicer_to_server(servicer, server)
