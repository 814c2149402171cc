"""Tracing across the stack: a Prepass on the in-process stack (all five
services, tiny models) is ONE connected trace: the caller's span, the
orchestrator's server span, a span per prepass stage with the bytes it sent
and its batch size, and each model service's client and server spans under
the stage that called it. Spans go to an in-memory exporter; log lines carry
the trace id; with an endpoint set, spans reach an OTLP collector."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from concurrent import futures
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from stack_fixture import RICH as STACK_RICH
from stack_fixture import Stack, start_stack

from tator_core import tracing
from tator_core.client import ServiceClient, image_ref
from tator_core.enums import short_name
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from tator_core.logs import JsonFormatter

pytestmark = [pytest.mark.timeout(600)]

EXPORTER = InMemorySpanExporter()
SERVICES = {"orchestrator": "tator.orchestrator.v1.OrchestratorService",
            "detector": "tator.detector.v1.DetectorService", "sam3": "tator.sam3.v1.Sam3Service",
            "qwen": "tator.qwen.v1.QwenService", "classifier": "tator.classifier.v1.ClassifierService"}
# The stack tests' low thresholds, and the caption stage too: every model service serves the prepass.
RICH = {**STACK_RICH, "enable_caption": True}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory, stack_models: Path) -> Stack:
    tracing.setup("test").add_span_processor(SimpleSpanProcessor(EXPORTER))
    models = stack_models
    s = await start_stack(tmp_path_factory.mktemp("home"), models)
    yield s
    await s.close()


def scene_png(seed: int) -> bytes:
    from tator_fixtures.synth import render_scene

    image, _ = render_scene(seed, 0)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


async def finished(trace_id: int, want: set[str], timeout_s: float = 10.0) -> list[ReadableSpan]:
    """The trace's spans once the server spans of `want` have ended (a server
    span may end just after its client got the answer)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        spans = [s for s in EXPORTER.get_finished_spans() if s.context.trace_id == trace_id]
        if want <= {s.attributes.get("rpc.service") for s in spans if s.kind == SpanKind.SERVER} \
                or loop.time() > deadline:
            return spans
        await asyncio.sleep(0.05)


@pytest.mark.stack
@pytest.mark.asyncio(loop_scope="module")
async def test_prepass_is_one_connected_trace_across_all_services(stack: Stack) -> None:
    client = ServiceClient(stack.orchestrator.address, pb_grpc.OrchestratorServiceStub, timeout_s=300)
    data = scene_png(seed=5151)
    try:
        with tracing.span("test.prepass") as root:
            req = pb.PrepassRequest(image=image_ref(data), dataset_id="synth", config=pb.PrepassConfig(**RICH))
            res = (await client.call("Prepass", req)).result
    finally:
        await client.close()
    assert res.candidates and not res.cache_hit
    spans = await finished(root.get_span_context().trace_id, set(SERVICES.values()))
    by_id = {s.context.span_id: s for s in spans}

    # One tree: a single root (the caller's span), every other span's parent in the same trace.
    roots = [s for s in spans if s.parent is None]
    assert [r.name for r in roots] == ["test.prepass"]
    orphans = [s.name for s in spans if s.parent is not None and s.parent.span_id not in by_id]
    assert not orphans, orphans

    servers = {s.attributes["rpc.service"]: s for s in spans if s.kind == SpanKind.SERVER}
    assert set(servers) == set(SERVICES.values()), sorted(servers)
    assert not any(s.attributes["rpc.service"].startswith("grpc.health") for s in spans
                   if "rpc.service" in s.attributes), "health checks are not traced"

    def ancestors(span: ReadableSpan) -> list[str]:
        out = []
        while span.parent is not None:
            span = by_id[span.parent.span_id]
            out.append(span.name)
        return out

    # Every model service's server span hangs under a prepass stage under the orchestrator's Prepass.
    orch_prepass = servers[SERVICES["orchestrator"]]
    assert orch_prepass.name.endswith("OrchestratorService/Prepass")
    for name in ("detector", "sam3", "qwen", "classifier"):
        chain = ancestors(servers[SERVICES[name]])
        stage = next(a for a in chain if a.startswith("prepass."))
        assert chain.index(stage) < chain.index("prepass") < chain.index(orch_prepass.name), (name, chain)

    stages = {s.name: s for s in spans if s.name.startswith("prepass.")}
    assert {"prepass.detectors", "prepass.sam3_text", "prepass.classifier", "prepass.caption"} <= set(stages)
    report = {short_name(pb.PrepassStage, r.stage): r for r in res.stages}
    for name, span in stages.items():
        if name == "prepass.dedupe":
            assert span.attributes["tator.batch_size"] > 0
            continue
        stage = name.removeprefix("prepass.")
        if not report[stage].ran:
            continue
        # The span carries the stage's own report: bytes on the wire and calls.
        assert span.attributes["tator.image_bytes_sent"] == report[stage].image_bytes_sent, name
        assert span.attributes["tator.calls"] == report[stage].calls, name
        if stage != "caption":
            assert span.attributes["tator.batch_size"] >= 1, name
    # The image went to the detector once, with its bytes.
    assert stages["prepass.detectors"].attributes["tator.image_bytes_sent"] == len(data)



CALLER_S = 90.0  # the caller's deadline: less than the orchestrator's default stage timeout (120 s)


class _AccessLines(logging.Handler):
    """The interceptor's access lines (logger tator.rpc at DEBUG), formatted as the services write them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter("stack"))
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.mark.stack
@pytest.mark.asyncio(loop_scope="module")
async def test_one_request_id_and_the_callers_deadline_in_every_services_log_line(stack: Stack) -> None:
    """The caller's x-request-id is on the access line of every RPC the Prepass made, in all five services,
    and each model service got the caller's deadline less the orchestrator's margin; an overlong id is
    replaced by one short id that again reaches every service, and is written nowhere."""
    rpc_log = logging.getLogger("tator.rpc")
    handler, level = _AccessLines(), rpc_log.level
    rpc_log.addHandler(handler)
    rpc_log.setLevel(logging.DEBUG)
    client = ServiceClient(stack.orchestrator.address, pb_grpc.OrchestratorServiceStub, timeout_s=300)
    rid, overlong = f"audit-{id(handler):x}", "x" * 500
    try:
        for seed, request_id in ((5153, rid), (5154, overlong)):
            req = pb.PrepassRequest(image=image_ref(scene_png(seed)), dataset_id="synth",
                                    config=pb.PrepassConfig(**RICH))
            res = (await client.call("Prepass", req, request_id=request_id, timeout_s=CALLER_S)).result
            assert not res.cache_hit and res.candidates
    finally:
        await client.close()
        rpc_log.removeHandler(handler)
        rpc_log.setLevel(level)
    prepasses = [line for line in handler.lines
                 if line["rpc_service"] == "orchestrator" and line["method"] == "Prepass"]
    assert [p["request_id"] == rid for p in prepasses] == [True, False]
    replaced = prepasses[1]["request_id"]
    assert 0 < len(replaced) <= 64 and not any(overlong in json.dumps(line) for line in handler.lines)
    for request_id, prepass in zip((rid, replaced), prepasses):
        # grpc encodes a timeout in the header rounded up to about three digits: 90 s arrives as ~90.1 s
        assert prepass["code"] == "OK" and CALLER_S - 1 < prepass["deadline_s"] <= CALLER_S + 0.2
        served = [line for line in handler.lines if line["request_id"] == request_id]
        assert {line["rpc_service"] for line in served} == {"orchestrator", "detector", "sam3", "qwen", "classifier"}
        downstream = [line for line in served if line["rpc_service"] != "orchestrator"]
        assert {line["method"] for line in downstream} >= {"Detect", "SegmentText", "Classify", "Caption"}
        # the caller's deadline, less the time already spent and the 0.25 s margin (rounded up by at most
        # 0.1 s on the wire): below the caller's, and below the 120 s stage timeout the orchestrator would
        # have given the calls on its own
        assert all(0 < line["deadline_s"] < min(prepass["deadline_s"] - 0.1, CALLER_S) for line in downstream), \
            downstream

def test_log_lines_carry_the_trace_id() -> None:
    formatter = JsonFormatter("svc_test")
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "inside", None, None)
    with tracing.span("test.log") as span:
        inside = json.loads(formatter.format(record))
    outside = json.loads(formatter.format(record))
    assert inside["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert inside["span_id"] == format(span.get_span_context().span_id, "016x")
    assert "trace_id" not in outside


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []

    def Export(self, request, context):
        self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()


def test_spans_are_exported_over_otlp_when_an_endpoint_is_set() -> None:
    collector = Collector()
    server = grpc.server(futures.ThreadPoolExecutor(2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        provider = tracing.make_provider("detector", f"http://127.0.0.1:{port}")
        with provider.get_tracer("t").start_as_current_span("exported"):
            pass
        assert provider.force_flush(10_000)
        provider.shutdown()
    finally:
        server.stop(0)
    spans = [(rs.resource, sp) for req in collector.requests for rs in req.resource_spans
             for ss in rs.scope_spans for sp in ss.spans]
    assert [sp.name for _, sp in spans] == ["exported"]
    service = {a.key: a.value.string_value for a in spans[0][0].attributes}["service.name"]
    assert service == "tator-detector"
    # Without an endpoint nothing is exported (spans only feed ids to logs and the next service).
    assert not tracing.make_provider("detector", "")._active_span_processor._span_processors
