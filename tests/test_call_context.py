"""What a served RPC hands to the calls it makes: its request id, its deadline (less a margin) and its
cancellation. Two in-process servers through the real bootstrap and interceptor: a front service whose
handler calls a back service with the shared ServiceClient, as the orchestrator calls the model services."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from tator_core import errors
from tator_core.client import ServiceClient
from tator_core.gen.tator.common.v1 import common_pb2
from tator_core.gen.tator.common.v1 import models_pb2 as mpb
from tator_core.gen.tator.common.v1 import models_pb2_grpc as mpbg
from tator_core.gen.tator.detector.v1 import detector_pb2 as pb
from tator_core.gen.tator.detector.v1 import detector_pb2_grpc as pbg
from tator_core.logs import detach, downstream_timeout, request_id_var
from tator_core.server import ServiceSpec, start_server
from tator_core.settings import ServiceSettings

FULL = "tator.detector.v1.DetectorService"
# A request that passes validation; the fakes never look at the image.
DETECT = pb.DetectRequest(image=common_pb2.ImageRef(sha256="0" * 64))


class Back(pbg.DetectorServiceServicer, mpbg.ModelManagementServiceServicer):
    def __init__(self) -> None:
        self.seen: list[tuple[str, float | None]] = []
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def ListModels(self, request, context):
        self.seen.append((dict(context.invocation_metadata())["x-request-id"], context.time_remaining()))
        return mpb.ListModelsResponse()

    async def Detect(self, request, context):  # blocks until the caller goes away
        self.detect_remaining = context.time_remaining()
        self.started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return pb.DetectResponse()


class Front(pbg.DetectorServiceServicer, mpbg.ModelManagementServiceServicer):
    def __init__(self, back: ServiceClient) -> None:
        self.back = back

    async def ListModels(self, request, context):
        await self.back.list_models()
        return mpb.ListModelsResponse()

    async def Detect(self, request, context):
        try:
            await self.back.call("Detect", DETECT, timeout_s=60)
        except grpc.aio.AioRpcError as exc:  # as the orchestrator maps a failed stage
            raise errors.unavailable("STAGE_FAILED", f"back: {exc.code().name}") from exc
        return pb.DetectResponse()


async def _serve(servicer, name: str):
    def add(server) -> None:  # Detect, and ListModels of the model management served next to it
        pbg.add_DetectorServiceServicer_to_server(servicer, server)
        mpbg.add_ModelManagementServiceServicer_to_server(servicer, server)

    spec = ServiceSpec(name, FULL, add)
    running = await start_server(spec, ServiceSettings(host="127.0.0.1", port=0, metrics_port=-1, warmup=False))
    await running.ready.wait()
    return running


async def list_models(client: ServiceClient, **kwargs):
    stub = mpbg.ModelManagementServiceStub(client.channel)
    return await client.call("ListModels", mpb.ListModelsRequest(), stub=stub, **kwargs)


@pytest.fixture
async def pair():
    back = Back()
    back_srv = await _serve(back, "back")
    back_client = ServiceClient(back_srv.address, pbg.DetectorServiceStub, timeout_s=120)
    front_srv = await _serve(Front(back_client), "front")
    client = ServiceClient(front_srv.address, pbg.DetectorServiceStub, timeout_s=120)
    yield back, client
    await client.close()
    await back_client.close()
    await front_srv.stop(0)
    await back_srv.stop(0)


async def test_request_id_and_deadline_reach_the_downstream_call(pair) -> None:
    back, client = pair
    await list_models(client, request_id="req-42", timeout_s=5)
    rid, remaining = back.seen[-1]
    assert rid == "req-42"  # the caller's id, not a new one per hop
    assert remaining is not None and remaining < 5 - 0.1  # 5 s less the hop and the margin
    await list_models(client, timeout_s=100)
    # the client's own 120 s default is cut to the caller's 100 s (grpc sends coarse timeouts: ~1 s slack)
    assert back.seen[-1][1] < 110


async def test_an_overlong_request_id_is_replaced_not_forwarded(pair) -> None:
    back, client = pair
    await list_models(client, request_id="x" * 500)
    rid = back.seen[-1][0]
    assert rid != "x" * 500 and 0 < len(rid) <= 64


async def test_cancelling_the_caller_cancels_the_downstream_call(pair) -> None:
    back, client = pair
    call = asyncio.ensure_future(client.call("Detect", DETECT, timeout_s=60))
    await asyncio.wait_for(back.started.wait(), 10)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await asyncio.wait_for(back.cancelled.wait(), 10)  # the back handler stopped, not left running


async def test_a_past_deadline_fails_at_once_and_detach_frees_background_work() -> None:
    from tator_core.logs import deadline_var

    deadline_var.set(0.0)  # long past
    assert downstream_timeout(30) == pytest.approx(0.001)
    request_id_var.set("rpc-1")
    detach("job-1")
    assert downstream_timeout(30) == 30 and request_id_var.get() == "job-1"


async def test_the_downstream_call_is_bounded_by_the_callers_deadline(pair) -> None:
    back, client = pair
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await client.call("Detect", DETECT, timeout_s=2)
    # The back call got the caller's 2 s less the margin, not the front's own 60 s. Which deadline
    # fires first on a loaded machine is a race, so either answer is right: the front's named
    # failure (it had the margin to answer) or the caller's own DEADLINE_EXCEEDED.
    assert back.detect_remaining is not None and back.detect_remaining < 2
    assert exc.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    if exc.value.code() == grpc.StatusCode.UNAVAILABLE:
        assert "back: DEADLINE_EXCEEDED" in exc.value.details()
    await asyncio.wait_for(back.cancelled.wait(), 10)
