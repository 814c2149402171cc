"""Checking a request costs bounded time and memory whatever it holds.

The long fuzz run's 5.4 GB peak was one SegmentText of 3 MB: 300 labels x 5,000 empty prompts. The
interceptor's protovalidate pass evaluated all 1.5 million prompts and kept a violation (~4 KB) for
each, synchronously on the event loop, for 65-133 s: the caller's deadline passed long before, and
SAM3's own fan-out cap never ran. Now a repeated field over its contract's bound is refused naming
it without looking at its items, a request over the operator's `max_request_items` is refused
naming the field where it passed the bound, and a request of more than FULL_REPORT_ITEMS items gets
its first violation only. The interceptor is exercised through a real server from start_server with
a minimal SAM3 servicer: the check lives in the door, so it holds for every service.
"""

from __future__ import annotations

import grpc
import pytest

from tator_core import limits, validation
from tator_core.client import ServiceClient
from tator_core.errors import parse_rpc_error
from tator_core.gen.tator.common.v1 import common_pb2
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2
from tator_core.gen.tator.sam3.v1 import sam3_pb2 as pb
from tator_core.gen.tator.sam3.v1 import sam3_pb2_grpc as pbg
from tator_core.server import ServiceSpec, start_server
from tator_core.settings import ServiceSettings
from tator_core.validation import validation_error

IMAGE = common_pb2.ImageRef(sha256="0" * 64)


def segment(labels: int, prompts: int, text: str = "", distinct: bool = False) -> pb.SegmentTextRequest:
    return pb.SegmentTextRequest(image=IMAGE, labels=[
        pb.LabelPrompts(label=f"l{j}" if distinct else "l", prompts=[text] * prompts) for j in range(labels)])


def test_a_field_over_its_contract_bound_is_refused_without_checking_its_items():
    # 10,000 empty prompts in one field: each item alone breaks string.min_len, and protovalidate would
    # list 10,001 violations (and hold ~4 KB for each while doing so).
    err = validation_error(segment(2, 5000))
    assert err is not None and err.code == grpc.StatusCode.INVALID_ARGUMENT and err.reason == "INVALID_FIELD"
    assert err.field_violations == [("labels[0].prompts", "repeated.max_items: must contain no more than 64 "
                                                          "item(s), not 5000")]
    assert err.metadata["limit"] == "64"
    # The fuzzer's request: the outer field is refused before any of its 1.5 million prompts is seen.
    err = validation_error(segment(300, 5000))
    assert err is not None and [f for f, _ in err.field_violations] == ["labels"]


def test_a_map_over_its_bound_and_the_total_over_max_request_items_name_the_field():
    # Within every contract bound (3 labels of 60 prompts), over an operator bound of 100 items in all:
    # 3 labels, then 60 + 60 prompts pass 100 at the second label's prompts.
    request = segment(3, 60, "circle", distinct=True)
    assert validation_error(request, max_items=200) is None
    err = validation_error(request, max_items=100)
    assert err is not None and err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.metadata["field"] == "labels[1].prompts" and err.metadata["limit"] == "100"
    assert "max_request_items" in err.message
    # Map entries count too, and items inside a map's values (Glossary.terms: label -> Terms).
    glossary = orchestrator_pb2.Glossary(name="g")
    for k in range(20):
        glossary.terms[f"t{k}"].terms.extend(["a", "b", "c", "d", "e"])
    assert validation.size_error(glossary)[1] == 20 + 20 * 5
    err = validation_error(glossary, max_items=50)
    assert err is not None and err.metadata["field"].startswith("terms[")


def test_only_small_requests_get_every_violation_listed(monkeypatch):
    request = segment(3, 64, distinct=True)  # 192 empty prompts, 195 items
    assert len(validation_error(request).field_violations) == 192
    monkeypatch.setattr(validation, "FULL_REPORT_ITEMS", 100)
    err = validation_error(request)
    assert err is not None and len(err.field_violations) == 1
    assert err.field_violations[0][0].startswith("labels[0].prompts[")
    assert "195" in err.metadata["violations_listed"]


def test_the_default_bound_admits_the_largest_requests_the_services_exchange():
    # SAM3 at its contract's limits: 64 labels x 64 prompts.
    assert validation_error(segment(64, 64, "circle", distinct=True)) is None
    assert ServiceSettings().max_request_items == limits.MAX_REQUEST_ITEMS


class AnySam3(pbg.Sam3ServiceServicer):
    async def SegmentText(self, request, context):
        return pb.SegmentTextResponse()


@pytest.fixture
async def door():
    spec = ServiceSpec("sam3", "tator.sam3.v1.Sam3Service", lambda s: pbg.add_Sam3ServiceServicer_to_server(AnySam3(), s))
    running = await start_server(spec, ServiceSettings(warmup=False, max_request_items=100))
    await running.ready.wait()
    client = ServiceClient(running.address, pbg.Sam3ServiceStub, timeout_s=20, token="")
    yield client
    await client.close()
    await running.stop(0)


async def test_the_door_takes_the_setting_and_answers_the_fuzzers_request_at_once(door):
    assert isinstance(await door.call("SegmentText", segment(3, 30, "circle", distinct=True)), pb.SegmentTextResponse)
    for request, field in ((segment(3, 60, "circle", distinct=True), "labels[1].prompts"),
                           (segment(300, 5000), "labels")):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await door.call("SegmentText", request)
        err = parse_rpc_error(info.value)
        assert (err.code, err.reason, err.metadata["field"]) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD",
                                                                 field), err.message
