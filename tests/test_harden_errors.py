"""A handler that lets a failed downstream call (or a timeout) through answers with a status that
says so (DEADLINE_EXCEEDED / UNAVAILABLE / FAILED_PRECONDITION, reason STAGE_FAILED, naming the call),
never INTERNAL. Two real servers built by start_server: the front one calls the back one."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from tator_core import errors
from tator_core.client import ServiceClient
from tator_core.errors import parse_rpc_error
from tator_core.gen.tator.classifier.v1 import classifier_pb2 as pb
from tator_core.gen.tator.classifier.v1 import classifier_pb2_grpc as pbg
from tator_core.gen.tator.common.v1 import common_pb2
from tator_core.gen.tator.common.v1 import models_pb2 as mpb
from tator_core.gen.tator.common.v1 import models_pb2_grpc as mpbg
from tator_core.server import ServiceSpec, start_server
from tator_core.settings import ServiceSettings

FULL = "tator.classifier.v1.ClassifierService"


class Back(pbg.ClassifierServiceServicer, mpbg.ModelManagementServiceServicer):
    """The downstream service: its ListModels (model management) slow, or refusing with a given code."""

    code = grpc.StatusCode.OK

    async def ListModels(self, request, context):
        if self.code != grpc.StatusCode.OK:
            raise errors.TatorError(self.code, "OVERLOADED" if self.code == grpc.StatusCode.RESOURCE_EXHAUSTED
                                    else "MODEL_MISSING", "refused")
        await asyncio.sleep(3)
        return mpb.ListModelsResponse()


class Front(pbg.ClassifierServiceServicer, mpbg.ModelManagementServiceServicer):
    """Handlers that map nothing: each lets its downstream failure through as it comes."""

    def __init__(self, address: str) -> None:
        self.back = ServiceClient(address, mpbg.ModelManagementServiceStub, timeout_s=0.3)

    async def ListModels(self, request, context):  # a raw grpc error
        return await self.back.call("ListModels", mpb.ListModelsRequest())

    async def Embed(self, request, context):  # the clients' wrapped error
        try:
            await self.back.call("ListModels", mpb.ListModelsRequest())
            return pb.EmbedResponse()
        except grpc.aio.AioRpcError as exc:
            raise errors.DownstreamError("classifier", "ListModels", parse_rpc_error(exc)) from exc

    async def Classify(self, request, context):  # a timeout of its own
        await asyncio.wait_for(asyncio.sleep(5), 0.05)


async def serve(servicer) -> object:
    def add(server) -> None:
        pbg.add_ClassifierServiceServicer_to_server(servicer, server)
        mpbg.add_ModelManagementServiceServicer_to_server(servicer, server)

    spec = ServiceSpec("classifier", FULL, add)
    running = await start_server(spec, ServiceSettings(warmup=False))
    await running.ready.wait()
    return running


async def failure(call) -> errors.RemoteError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return parse_rpc_error(info.value)


async def test_downstream_failures_keep_their_meaning_through_an_unmapping_handler():
    back_impl = Back()
    back = await serve(back_impl)
    front_impl = Front(back.address)
    front = await serve(front_impl)
    client = ServiceClient(front.address, pbg.ClassifierServiceStub, timeout_s=10)
    try:
        raw = await failure(client.list_models())
        assert (raw.code, raw.reason) == (grpc.StatusCode.DEADLINE_EXCEEDED, "STAGE_FAILED")
        assert raw.metadata["upstream_code"] == "DEADLINE_EXCEEDED" and raw.metadata["request_id"]
        wrapped = await failure(client.call("Embed", pb.EmbedRequest(image=_image())))
        assert (wrapped.code, wrapped.reason) == (grpc.StatusCode.DEADLINE_EXCEEDED, "STAGE_FAILED")
        assert wrapped.metadata["service"] == "classifier" and "classifier.ListModels" in wrapped.message
        own = await failure(client.call("Classify", pb.ClassifyRequest(image=_image(), boxes=[_box()])))
        assert own.code == grpc.StatusCode.DEADLINE_EXCEEDED
        # Other downstream codes: a transient one is UNAVAILABLE (retry), the rest FAILED_PRECONDITION;
        # the downstream's own message text is not repeated.
        for code, expected in ((grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE),
                               (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.FAILED_PRECONDITION)):
            back_impl.code = code
            err = await failure(client.call("Embed", pb.EmbedRequest(image=_image())))
            assert (err.code, err.reason, err.metadata["upstream_code"]) == (expected, "STAGE_FAILED", code.name)
            assert "refused" not in err.message
    finally:
        await client.close()
        await front_impl.back.close()
        await front.stop(0)
        await back.stop(0)


def _image():
    return common_pb2.ImageRef(sha256="0" * 64)


def _box():
    return common_pb2.Box(x1=0, y1=0, x2=4, y2=4)


def test_only_unknown_exceptions_are_internal():
    assert errors.from_exception(ValueError("x")) is None
    assert errors.from_exception(TimeoutError()).code == grpc.StatusCode.DEADLINE_EXCEEDED
    remote = errors.RemoteError(grpc.StatusCode.UNAVAILABLE, "down")
    assert errors.from_exception(errors.DownstreamError("sam3", "SegmentText", remote)).code == \
        grpc.StatusCode.UNAVAILABLE
