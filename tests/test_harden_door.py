"""The shared interceptor against hostile callers: stream vs unary budgets, malformed protobuf
bytes, undefined enum numbers, control characters, and oversized request ids.

A real server built by `start_server` with a minimal classifier servicer (TrainHead is the
server stream, Classify and the model-management ListModels the unary calls): the checks live in
the interceptor, so they hold for every service without model weights here.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from stand_in import one_model

from tator_core.errors import parse_rpc_error
from tator_core.gen.tator.classifier.v1 import classifier_pb2 as pb
from tator_core.gen.tator.classifier.v1 import classifier_pb2_grpc as pbg
from tator_core.gen.tator.common.v1 import common_pb2
from tator_core.gen.tator.common.v1 import models_pb2 as mpb
from tator_core.gen.tator.common.v1 import models_pb2_grpc as mpbg
from tator_core.server import ServiceSpec, start_server
from tator_core.settings import ServiceSettings
from tator_core.text import bad_char, message_error

FULL = "tator.classifier.v1.ClassifierService"
MANAGE = "tator.common.v1.ModelManagementService"


class Fake(pbg.ClassifierServiceServicer):
    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def TrainHead(self, request, context):
        yield pb.TrainHeadResponse()
        await self.release.wait()


@pytest.fixture
async def server():
    fake = Fake()
    spec = ServiceSpec("classifier", FULL, lambda s: pbg.add_ClassifierServiceServicer_to_server(fake, s),
                       models=one_model())
    running = await start_server(spec, ServiceSettings(max_in_flight=2, max_streams=2, warmup=False))
    await running.ready.wait()
    channel = grpc.aio.insecure_channel(running.address)
    yield running, fake, channel
    fake.release.set()
    await channel.close()
    await running.stop()


async def test_idle_streams_do_not_lock_out_unary_calls(server):
    _, fake, channel = server
    stub = pbg.ClassifierServiceStub(channel)
    manage = mpbg.ModelManagementServiceStub(channel)
    streams = [stub.TrainHead(pb.TrainHeadRequest(dataset_dir="d", backbone_id="b", head_id="h"))
               for _ in range(3)]
    firsts = await asyncio.gather(*(s.read() for s in streams), return_exceptions=True)
    refused = [f for f in firsts if isinstance(f, grpc.aio.AioRpcError)]
    assert len(refused) == 1 and refused[0].code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # Two streams hold their whole budget; unary calls still have all of theirs.
    for _ in range(3):
        assert (await manage.ListModels(mpb.ListModelsRequest(), timeout=5)).models[0].id == "m"
    fake.release.set()
    for s in streams:
        s.cancel()


async def test_malformed_bytes_are_invalid_argument_without_parser_text(server):
    _, _, channel = server
    raw = channel.unary_unary(f"/{MANAGE}/ListModels", request_serializer=lambda b: b,
                              response_deserializer=lambda b: b)
    for junk in (b"\xff\xff\xff\xff", b"\x0a\xff\xff\xff\xff\x0f", b"\x08" + b"\xff" * 11):
        with pytest.raises(grpc.aio.AioRpcError) as ei:
            await raw(junk, timeout=5)
        err = parse_rpc_error(ei.value)
        assert err.code == grpc.StatusCode.INVALID_ARGUMENT, (junk, err)
        assert "Error" not in err.message and "Traceback" not in err.message and "decode" not in err.message


async def test_undefined_enum_number_is_invalid_argument(server):
    _, _, channel = server
    stub = pbg.ClassifierServiceStub(channel)
    req = pb.TrainHeadRequest(dataset_dir="d", backbone_id="b", head_id="h")
    req.head_type = 9
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await stub.TrainHead(req).read()
    err = parse_rpc_error(ei.value)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and err.field_violations[0][0] == "head_type"


@pytest.mark.parametrize("hostile", ["ds\x00x", "red\x1b[31m", "abc\u202edcba", "x\x85y"])
async def test_control_characters_in_any_string_are_invalid_argument(server, hostile):
    _, _, channel = server
    stub = pbg.ClassifierServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await stub.TrainHead(pb.TrainHeadRequest(dataset_dir=hostile, backbone_id="b", head_id="h")).read()
    err = parse_rpc_error(ei.value)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and err.field_violations[0][0] == "dataset_dir"


async def test_long_request_id_is_not_echoed(server):
    _, _, channel = server
    stub = mpbg.ModelManagementServiceStub(channel)
    call = stub.ListModels(mpb.ListModelsRequest(), metadata=(("x-request-id", "A" * 5000),))
    await call
    echoed = dict(await call.trailing_metadata())["x-request-id"]
    assert len(echoed) <= 64 and "AAAA" not in echoed
    call = stub.ListModels(mpb.ListModelsRequest(), metadata=(("x-request-id", "job-42.a"),))
    await call
    assert dict(await call.trailing_metadata())["x-request-id"] == "job-42.a"


def test_text_rule_keeps_ordinary_text_and_names_nested_fields():
    assert bad_char("Light vehicle\twith\nnewlines, ümlauts, 日本語 and emoji 🚗") is None
    req = pb.ClassifyRequest(boxes=[common_pb2.Box(x1=0, y1=0, x2=1, y2=1)], head_id="ok")
    assert message_error(req) is None
    req.image.sha256 = "a\x07"
    assert message_error(req).field_violations[0][0] == "image.sha256"
