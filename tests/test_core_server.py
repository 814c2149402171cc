"""serve() bootstrap and interceptor: health gating, reflection, metrics,
validation errors with field paths, INTERNAL with request id, overload,
and the client's IMAGE_NOT_CACHED resend."""

from __future__ import annotations

import asyncio
import io
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from PIL import Image
from stand_in import one_model

from tator_core import errors
from tator_core.client import ServiceClient, image_ref
from tator_core.errors import parse_rpc_error
from tator_core.gen.tator.common.v1 import common_pb2
from tator_core.gen.tator.detector.v1 import detector_pb2 as pb
from tator_core.gen.tator.detector.v1 import detector_pb2_grpc as pbg
from tator_core.images import ImageStore
from tator_core.server import ServiceSpec, start_server
from tator_core.settings import ServiceSettings

FULL = "tator.detector.v1.DetectorService"


class Fake(pbg.DetectorServiceServicer):
    """A minimal servicer: real bootstrap, real store, no model."""

    def __init__(self) -> None:
        self.store = ImageStore(max_items=4)
        self.gate = asyncio.Event()
        self.gate.set()

    async def Detect(self, request, context):
        img = self.store.resolve(request.image)
        await self.gate.wait()
        if request.max_det == 13:
            raise KeyError("secret internal detail")
        if request.max_det == 14:
            raise errors.failed_precondition("LABELMAP_MISMATCH", "[0] 'a' != 'b'", model_id="m")
        return pb.DetectResponse(max_det=img.width)


def png(w=32, h=16) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (9, 9, 9)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
async def server():
    warm = asyncio.Event()
    fake = Fake()

    async def warmup():
        await warm.wait()

    spec = ServiceSpec("detector", FULL, lambda s: pbg.add_DetectorServiceServicer_to_server(fake, s), warmup,
                       models=one_model(family="yolo"))
    running = await start_server(spec, ServiceSettings(metrics_port=0, max_in_flight=2))
    running.fake = fake
    running.warm = warm
    client = ServiceClient(running.address, pbg.DetectorServiceStub, timeout_s=10)
    yield running, client
    await client.close()
    await running.stop()


async def test_health_gated_on_warmup(server):
    running, client = server
    assert await client.health() == "NOT_SERVING"
    assert await client.health(FULL) == "NOT_SERVING"
    running.warm.set()
    await running.ready.wait()
    assert await client.health() == "SERVING"
    assert await client.health(FULL) == "SERVING"


async def test_warmup_failure_stays_not_serving():
    async def bad():
        raise RuntimeError("weights corrupt")

    spec = ServiceSpec("detector", FULL, lambda s: pbg.add_DetectorServiceServicer_to_server(Fake(), s), bad)
    running = await start_server(spec, ServiceSettings())
    client = ServiceClient(running.address, pbg.DetectorServiceStub)
    await running.ready.wait()
    assert await client.health() == "NOT_SERVING"
    assert isinstance(running.warmup_error, RuntimeError)
    await client.close()
    await running.stop()


async def test_reflection_lists_service(server):
    running, _ = server
    async with grpc.aio.insecure_channel(running.address) as ch:
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)

        async def reqs():
            yield reflection_pb2.ServerReflectionRequest(list_services="")

        async for resp in stub.ServerReflectionInfo(reqs()):
            names = {s.name for s in resp.list_services_response.service}
            break
    assert {FULL, "grpc.health.v1.Health"} <= names


async def test_validation_error_has_field_paths(server):
    _, client = server
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await client.call("Detect", pb.DetectRequest(conf=1.5, model_ids=["", "ok"],
                                                     image=common_pb2.ImageRef(sha256="abc")))
    err = parse_rpc_error(ei.value)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and err.reason == "INVALID_FIELD"
    fields = {f for f, _ in err.field_violations}
    assert {"conf", "model_ids[0]", "image.sha256"} <= fields


async def test_unexpected_exception_is_internal_with_request_id(server):
    _, client = server
    data = png()
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await client.call("Detect", pb.DetectRequest(image=image_ref(data), max_det=13), request_id="rid-123")
    err = parse_rpc_error(ei.value)
    assert err.code == grpc.StatusCode.INTERNAL and err.metadata["request_id"] == "rid-123"
    assert "secret" not in err.message and "Traceback" not in err.message
    assert "rid-123" in err.message


async def test_tator_error_maps_to_its_status(server):
    _, client = server
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await client.call("Detect", pb.DetectRequest(image=image_ref(png()), max_det=14))
    err = parse_rpc_error(ei.value)
    assert (err.code, err.reason, err.metadata["model_id"]) == (grpc.StatusCode.FAILED_PRECONDITION,
                                                                "LABELMAP_MISMATCH", "m")


async def test_in_flight_limit_is_resource_exhausted(server):
    running, client = server
    data = png()
    await client.call("Detect", pb.DetectRequest(image=image_ref(data), max_det=1))  # cache the image
    running.fake.gate.clear()
    calls = [asyncio.create_task(client.call("Detect", pb.DetectRequest(image=image_ref(data, False))))
             for _ in range(5)]
    await asyncio.sleep(0.3)
    running.fake.gate.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    codes = [r.code() if isinstance(r, grpc.aio.AioRpcError) else grpc.StatusCode.OK for r in results]
    assert codes.count(grpc.StatusCode.OK) == 2
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 3
    assert parse_rpc_error(next(r for r in results if isinstance(r, Exception))).reason == "OVERLOADED"


async def test_client_sends_bytes_once_and_resends_after_eviction(server):
    running, client = server
    data = png(32, 16)
    for _ in range(3):
        resp = await client.call("Detect", pb.DetectRequest(image=image_ref(data, False)), image_data=data)
        assert resp.max_det == 32
    assert client.image_bytes_sent == len(data) and running.fake.store.decodes == 1
    running.fake.store._items.clear()  # the service evicted it
    await client.call("Detect", pb.DetectRequest(image=image_ref(data, False)), image_data=data)
    assert client.resends == 1 and client.image_bytes_sent == 2 * len(data)


async def test_metrics_endpoint(server):
    running, client = server
    assert [m.id for m in await client.list_models()] == ["m"]  # the model management, served next to Detect
    body = await asyncio.to_thread(
        lambda: urllib.request.urlopen(f"http://127.0.0.1:{running.metrics_port}/metrics").read().decode())
    assert 'tator_rpc_total{code="OK",method="ListModels",service="detector"}' in body
    assert "tator_rpc_latency_seconds_bucket" in body and "tator_rpc_in_flight" in body


async def test_health_service_not_limited(server):
    running, _ = server
    async with grpc.aio.insecure_channel(running.address) as ch:
        resp = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest())
    assert resp.status in (health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING)
