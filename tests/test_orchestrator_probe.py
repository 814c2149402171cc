"""The orchestrator's probe of a model service (ListModels, then health) against a real gRPC server on
loopback: a service that answered moments ago and now answers nothing at all (one replica behind a
dead link) keeps its last answer for the keepalive's grace instead of failing the stage; past the
grace, or when it refuses outright (UNAVAILABLE), the probe says so as before."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

import svc_orchestrator.clients as clients_module
from svc_orchestrator.clients import ServiceClients
from tator_core.gen.tator.common.v1 import common_pb2, models_pb2


class Detector:
    """ListModels (on tator.common.v1.ModelManagementService, where the orchestrator reads a service's
    models) and health only; `hang` makes ListModels answer nothing (as a host that vanished)."""

    def __init__(self) -> None:
        self.hang = False
        self.server = grpc.aio.server()
        self.health = health.aio.HealthServicer()

    async def start(self) -> Detector:
        async def list_models(request, context):
            if self.hang:
                await asyncio.sleep(30)
            return models_pb2.ListModelsResponse(models=[common_pb2.ModelInfo(id="yolo-synth", version="v1")])

        handler = grpc.unary_unary_rpc_method_handler(
            list_models, request_deserializer=models_pb2.ListModelsRequest.FromString,
            response_serializer=models_pb2.ListModelsResponse.SerializeToString)
        self.server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
            "tator.common.v1.ModelManagementService", {"ListModels": handler})])
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        return self


def _clients(port: int) -> ServiceClients:
    addr = f"127.0.0.1:{port}"
    return ServiceClients({s: addr for s in ("detector", "sam3", "qwen", "classifier")}, health_timeout_s=0.5,
                          models_ttl_s=0)


async def test_a_silent_service_keeps_its_last_answer_for_the_grace_only(monkeypatch):
    det = await Detector().start()
    clients = _clients(det.port)
    try:
        first = (await clients.states(["detector"], fresh=True))["detector"]
        assert first.health == "SERVING" and not first.error and [m.id for m in first.models] == ["yolo-synth"]
        det.hang = True
        during = (await clients.states(["detector"], fresh=True))["detector"]
        assert during == first  # no answer within the grace: the last one stands
        monkeypatch.setattr(clients_module, "SILENT_PEER_GRACE_S", 0.0)
        after = (await clients.states(["detector"], fresh=True))["detector"]
        assert after.error and not after.models, after  # past the grace: the stage fails as before
    finally:
        await clients.close()
        await det.server.stop(0)


async def test_a_silent_service_that_never_answered_and_a_refusing_one_fail_at_once():
    det = await Detector().start()
    det.hang = True
    clients = _clients(det.port)
    try:
        state = (await clients.states(["detector"], fresh=True))["detector"]
        assert state.error and not state.models  # nothing to fall back on
        det.hang = False
        assert not (await clients.states(["detector"], fresh=True))["detector"].error
        await det.server.stop(0)  # refused outright (UNAVAILABLE): no grace, the service is down
        state = (await clients.states(["detector"], fresh=True))["detector"]
        assert state.health == "UNREACHABLE" and state.error
    finally:
        await clients.close()


@pytest.fixture(autouse=True)
def _no_auth(monkeypatch):
    monkeypatch.delenv("TATOR_TOKEN", raising=False)
