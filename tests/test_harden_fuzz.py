"""A standing RPC fuzzer against the live stack, and property targets for the pure parsers.

Requests for every method of every service come from the proto descriptors (tests/rpc_strategies.py)
and go to the in-process stack of real services over real gRPC, with the stack's admin token
(auth is on, as under `tator up`). Whatever a request holds, the answer is a status a caller can act
on: never UNKNOWN or INTERNAL. Afterwards every service is still SERVING and the process's memory
grew by a bounded amount. TATOR_FUZZ_EXAMPLES sets the request count (`make fuzz` runs a long one;
TATOR_FUZZ_LOG=FILE logs each request's status, time and peak memory);
the default is a quick profile for the everyday suite (marked `stack`: it builds and loads the tiny
models, as the other stack tests do; TATOR_TEST_MODELS_DIR reuses a built set).

Where the quick profile's time goes (alone, cold, on a shared 2-core machine, measured once with
`pytest --durations`): importing torch, RF-DETR (which pulls in torch._dynamo), ultralytics and
transformers ~15-25 s, building the tiny models ~17-25 s (once per session; `make test` keeps them in
$TATOR_HOME/test-models), starting the five services ~5 s, then the 120 requests ~3 s and the parser
properties ~5 s. Only the last two are this module's own; the rest is shared with the other stack tests.

The long profile's memory finding (`make fuzz`, 3000 random requests), and its cause: a peak RSS growth
of 5437 MB, measured again after SAM3's raw-detection cap (which did not help: SAM3 never ran). A log of
every request (VmRSS before and after, VmHWM reset before each call) put both big jumps on one
request class: sam3.SegmentText of 3 MB holding 300 labels x 5,000 empty prompts, +5.3 GB each,
answered after 65 s and 133 s against a 5 s deadline. The time and memory were the interceptor's
protovalidate pass, before any handler: it evaluated all 1.5 million prompts and kept a violation of
~4 KB for each (alone, outside the stack: 64 x 5,000 empty prompts = 320,000 violations, 1.3 GB, 33 s),
synchronously on the event loop, so no deadline or cancel could stop it and SAM3's `max_prompt_runs`
never saw the call. glibc kept most of it afterwards (RSS after each such call +0.7-1.0 GB). Now a
field over its contract's max_items is refused without its items being read, `max_request_items` bounds
a request's items in all, and only the first violation is listed past FULL_REPORT_ITEMS items
(tests/test_harden_request_items.py); the same requests answer INVALID_ARGUMENT in 0.1-0.3 s with
under 120 MB of growth each (their wire bytes, parsed message and the client's own copy).
`make fuzz` with both fixes (this one and the one below): 3000 requests (INVALID_ARGUMENT 2473,
NOT_FOUND 428, OK 91, FAILED_PRECONDITION 8), peak growth 588 MB against the bound's ~1077 MB. Earlier
random runs peaked at 507 MB (door fix alone) and 696 MB (with the cut below), and 430-580 MB in the
request logs of two runs of the RPC part; the largest single requests grew +70-120 MB.
One `make fuzz` run was OOM-killed at 18 GB inside one request that never reached a service: the
strategies repeated a 5,000-character prompt 5,000 times and that label 300 times, a 7.5 GB message
built and serialised in this process (10 such labels measured: +300 MB built, +480 MB sized). Repeated
fields are now cut to MAX_REPEATED_BYTES (tests/rpc_strategies.py), still above the message limit.
"""

from __future__ import annotations

import io
import json
import os
import resource
import time
import zipfile
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rpc_strategies import message, odd_images
from stack_fixture import MODEL_SERVICES, Stack, build_models, make_datasets

from tator_core import errors, validation
from tator_core.auth import generate_tokens
from tator_core.gen.tator.classifier.v1 import classifier_pb2
from tator_core.gen.tator.common.v1 import models_pb2
from tator_core.gen.tator.detector.v1 import detector_pb2
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2
from tator_core.gen.tator.qwen.v1 import qwen_pb2
from tator_core.gen.tator.sam3.v1 import sam3_pb2

EXAMPLES = int(os.environ.get("TATOR_FUZZ_EXAMPLES", "120"))
# The everyday profile replays the same requests (a failure reproduces); `make fuzz` explores.
FIXED = not os.environ.get("TATOR_FUZZ_RANDOM")
BAD = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
SERVICES = {"detector": detector_pb2, "sam3": sam3_pb2, "qwen": qwen_pb2, "classifier": classifier_pb2,
            "orchestrator": orchestrator_pb2}
METHODS = [(name, m) for name, mod in SERVICES.items() for svc in mod.DESCRIPTOR.services_by_name.values()
           for m in svc.methods]
# Every model service also serves the shared model management (ListModels, Load, Unload, SetDefault).
METHODS += [(name, m) for name in ("detector", "sam3", "qwen", "classifier")
            for m in models_pb2.DESCRIPTOR.services_by_name["ModelManagementService"].methods]
SEEN: dict[str, int] = {}


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def reset_peak() -> bool:
    """Start a new peak-RSS (VmHWM) measurement from now; False where the kernel offers none."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


MEM: dict[str, float] = {}

# The stack under fuzz runs with smaller memory budgets than the defaults, so the bound on its growth
# can be derived from them and still be tight. Every budget a hostile request can fill, in MB:
BUDGET = {"image_pixels": 16_000_000, "decode_pixels": 20_000_000, "image_cache_mb": 64, "sam3_vision_cache_mb": 64,
          "message_mb": 64}
SERVICE_BUDGETS = {"max_image_pixels": BUDGET["image_pixels"], "max_decode_pixels": BUDGET["decode_pixels"],
                   "image_cache_mb": BUDGET["image_cache_mb"], "max_message_mb": BUDGET["message_mb"]}
_DECODE_MB = BUDGET["decode_pixels"] * 3 / 2**20  # RGB, one byte a channel
# Checking one request (one at a time: it runs on the event loop) holds at most FULL_REPORT_ITEMS
# protovalidate violations, measured at ~4.7 KB each.
_VALIDATION_MB = validation.FULL_REPORT_ITEMS * 4.7 / 1024
# Four model services each hold an image cache and a decode budget, the orchestrator a decode budget,
# SAM3 its vision cache; one request in flight at a time costs at most its message thrice (wire bytes,
# parsed message, the service's copy) and its check; 256 MB for what no setting bounds (allocator
# arenas, torch's per-shape kernels and workspaces, gRPC and Python object overhead), from the measured
# growth (tens of MB over the quick profile, see the printout).
GROWTH_BOUND_MB = (4 * (BUDGET["image_cache_mb"] + _DECODE_MB) + _DECODE_MB + BUDGET["sam3_vision_cache_mb"]
                   + 3 * BUDGET["message_mb"] + _VALIDATION_MB + 256)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live(tmp_path_factory, stack_models):
    home = tmp_path_factory.mktemp("fuzz-home")
    tokens_file = home / "secrets" / "tokens.json"
    tokens = generate_tokens(tokens_file)
    models = stack_models
    previous = os.environ.get("TATOR_AUTH_TOKENS_FILE")
    os.environ["TATOR_AUTH_TOKENS_FILE"] = str(tokens_file)  # the orchestrator's clients send the read token
    make_datasets(home / "data")
    stack = Stack(home, build_models(models, home / "data" / "synth"))
    real = stack.service_settings

    def with_tokens(name: str, port: int):
        extra = {"vision_cache_mb": BUDGET["sam3_vision_cache_mb"]} if name == "sam3" else {}
        return real(name, port).model_copy(update={"auth_tokens_file": tokens_file, **SERVICE_BUDGETS, **extra})

    stack.service_settings = with_tokens  # type: ignore[method-assign]  # the test replaces the method
    for name in MODEL_SERVICES:
        await stack.start_service(name)
    await stack.start_orchestrator(auth_tokens_file=tokens_file, max_image_pixels=BUDGET["image_pixels"],
                                   max_decode_pixels=BUDGET["decode_pixels"])
    channels = {name: grpc.aio.insecure_channel(addr, options=[("grpc.max_send_message_length", 64 << 20)])
                for name, addr in stack.addresses().items()}
    if reset_peak():  # the fuzz's own growth, not the model build's or the start's
        MEM["start_mb"] = _status_mb("VmRSS")
    yield stack, channels, tokens
    for ch in channels.values():
        await ch.close()
    await stack.close()
    if previous is None:
        os.environ.pop("TATOR_AUTH_TOKENS_FILE", None)
    else:
        os.environ["TATOR_AUTH_TOKENS_FILE"] = previous


async def call(channel: grpc.aio.Channel, service_full: str, method, request, token: str
               ) -> tuple[grpc.StatusCode, str]:
    """The status code, and for a failure everything the client reads of it (message, ErrorInfo
    metadata, field violations)."""
    path = f"/{service_full}/{method.name}"
    meta = (("authorization", f"Bearer {token}"),)
    try:
        if method.server_streaming:
            rpc = channel.unary_stream(path, request_serializer=lambda m: m.SerializeToString(),
                                       response_deserializer=lambda b: b)
            stream = rpc(request, metadata=meta, timeout=5)
            async for _ in stream:
                break
            stream.cancel()
        else:
            rpc = channel.unary_unary(path, request_serializer=lambda m: m.SerializeToString(),
                                      response_deserializer=lambda b: b)
            await rpc(request, metadata=meta, timeout=5)
    except grpc.aio.AioRpcError as exc:
        err = errors.parse_rpc_error(exc)
        return exc.code(), " ".join([err.message, *err.metadata.values(), *(d for _, d in err.field_violations)])
    return grpc.StatusCode.OK, ""


def _brief(request) -> str:
    """The request for a failure message: whole when small; a 1.5-million-prompt request printed whole
    would cost more memory than the call it reports."""
    if request.ByteSize() <= 20_000:
        return repr(request)[:2000]
    sizes = {fd.name: len(v) if fd.is_repeated else "set" for fd, v in request.ListFields()}
    return f"{type(request).__name__} of {request.ByteSize()} bytes, fields {sizes}"


# TATOR_FUZZ_LOG=FILE writes one JSON line per request: method, status, size, seconds, and the process's
# RSS before the call and its peak during it (VmHWM reset first), so a memory finding names its request.
LOG = os.environ.get("TATOR_FUZZ_LOG")


def _log(**fields) -> None:
    assert LOG is not None
    with open(LOG, "a") as f:
        f.write(json.dumps(fields) + "\n")


def requests():
    return st.sampled_from(METHODS).flatmap(
        lambda nm: st.tuples(st.just(nm), message(nm[1].input_type)))


@pytest.mark.stack
@pytest.mark.asyncio(loop_scope="module")
@settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=FIXED,
          suppress_health_check=list(HealthCheck))
@given(picked=requests())
async def test_rpc_fuzz_never_unknown_or_internal(live, picked):
    stack, channels, tokens = live
    (service, method), request = picked
    logged = LOG is not None and reset_peak()
    before, started = (_status_mb("VmRSS"), time.perf_counter()) if logged else (0.0, 0.0)
    code, said = await call(channels[service], method.containing_service.full_name, method, request,
                            tokens.admin[0])
    if logged:  # VmHWM was reset for this call: keep the fuzz's own peak
        MEM["peak_mb"] = max(MEM.get("peak_mb", 0.0), _status_mb("VmHWM"))
        _log(service=service, method=method.name, code=code.name, bytes=request.ByteSize(),
             seconds=round(time.perf_counter() - started, 3), rss_before_mb=round(before),
             peak_growth_mb=round(_status_mb("VmHWM") - before), rss_after_mb=round(_status_mb("VmRSS")))
    SEEN[code.name] = SEEN.get(code.name, 0) + 1
    assert code not in BAD, f"{service}.{method.name} answered {code.name} to {_brief(request)}"
    # No error may name a path of the stack's home or its models.
    for root in (stack.home, stack.registry.parent):
        assert str(root) not in said, f"{service}.{method.name}: server path in {said!r}"


@pytest.mark.stack
@pytest.mark.asyncio(loop_scope="module")
async def test_after_the_fuzz_every_service_serves(live):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    stack, channels, _ = live
    peak = max(_status_mb("VmHWM"), MEM.get("peak_mb", 0.0))
    grew = peak - MEM["start_mb"] if "start_mb" in MEM else float("nan")
    print(f"fuzz: {sum(SEEN.values())} requests, codes {dict(sorted(SEEN.items()))}, max RSS {rss_mb():.0f} MB, "
          f"peak growth during the fuzz {grew:.0f} MB")
    assert sum(SEEN.values()) >= EXAMPLES
    for name, ch in channels.items():
        reply = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, name
    # The budgets hold: the fuzz's peak growth stays within what the settings allow (an unbounded cache
    # of hostile images, or a decode outside the pixel budget, would pass it within a few requests).
    if "start_mb" not in MEM:
        pytest.skip("this kernel offers no peak-RSS reset (/proc/self/clear_refs): growth not measured")
    assert grew < GROWTH_BOUND_MB, f"grew {grew:.0f} MB during the fuzz; the budgets allow {GROWTH_BOUND_MB:.0f} MB"


def test_generated_requests_stay_near_the_message_limit():
    """A field repeated thousands of times over a large element is cut to MAX_REPEATED_BYTES: the
    worst SegmentText (300 labels x 5,000 prompts of 5,000 characters) was a 7.5 GB request built in
    this process before any call."""
    from rpc_strategies import MAX_REPEATED_BYTES, _copies

    label = sam3_pb2.LabelPrompts(label="x", prompts=_copies("A" * 5000, 5000))
    request = sam3_pb2.SegmentTextRequest(labels=_copies(label, 300))
    assert len(label.prompts) == 5000  # 25 MB: every copy
    assert len(request.labels) == MAX_REPEATED_BYTES // label.ByteSize() == 3  # not 300
    assert MAX_REPEATED_BYTES > request.ByteSize() > 64 << 20  # still over the services' message limit
    assert len(_copies("a", 5000)) == 5000  # small elements keep every copy


# --- the pure parsers --------------------------------------------------------------------------

def _mutations(seed: bytes) -> st.SearchStrategy[bytes]:
    return st.builds(lambda i, junk, cut: (seed[:i] + junk + seed[i + len(junk):])[:cut],
                     st.integers(0, len(seed)), st.binary(max_size=16), st.integers(0, len(seed) + 16))


@settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=FIXED)
@given(data=st.one_of(st.binary(max_size=256), st.sampled_from(odd_images()).flatmap(_mutations)))
def test_image_decode_only_refuses_with_invalid_argument(data):
    from tator_core.images import decode_image

    try:
        img = decode_image(data, max_pixels=4_000_000)
    except errors.TatorError as exc:
        assert exc.code == grpc.StatusCode.INVALID_ARGUMENT, exc
        return
    assert img.array.ndim == 3 and img.array.shape[2] == 3


def _recipe_zip() -> bytes:
    import tempfile

    from svc_orchestrator.recipes import Recipe, RecipeStore

    with tempfile.TemporaryDirectory() as d:
        store = RecipeStore(Path(d))
        saved = store.put(Recipe(name="fuzz", glossary="circle: disc"))
        return store.export(saved.id)[0]


@settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=FIXED)
@given(data=st.one_of(st.binary(max_size=256), st.just(_recipe_zip()).flatmap(_mutations),
                      st.dictionaries(st.sampled_from(["recipe.json", "manifest.json", "glossary.json", "x"]),
                                      st.binary(max_size=64), max_size=4).map(
                          lambda files: _zip(files))))
def test_recipe_archives_only_refuse_with_archive_invalid(tmp_path_factory, data):
    from svc_orchestrator.recipes import RecipeStore

    store = RecipeStore(tmp_path_factory.mktemp("recipes"))
    try:
        store.import_archive(data)
    except errors.TatorError as exc:
        assert exc.code == grpc.StatusCode.INVALID_ARGUMENT and exc.reason == "ARCHIVE_INVALID", exc


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


JSONISH = st.recursive(st.one_of(st.none(), st.booleans(), st.floats(), st.text(max_size=8)),
                       lambda inner: st.one_of(st.lists(inner, max_size=4),
                                               st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                       max_leaves=20)


@settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=FIXED)
@given(text=st.one_of(st.text(max_size=300), JSONISH.map(repr), JSONISH.map(lambda v: __import__("json").dumps(v)),
                      st.sampled_from(["{" * 3000, "[" * 5000, '{"circle": ' * 200, "<think>", "```json\n{"])))
def test_qwen_json_parser_never_raises(text):
    from svc_qwen.parsing import extract_json, parse_synonyms

    extract_json(text)
    parsed = parse_synonyms(text, ["circle", "square"])
    assert parsed is not None


@pytest.mark.stack
@pytest.mark.asyncio(loop_scope="module")
async def test_slow_service_fails_naming_the_stage_and_caches_nothing(live):
    """A detector slower than the orchestrator's deadline: the prepass fails with STAGE_FAILED naming
    the stage and the upstream DEADLINE_EXCEEDED, and no result is cached for the image."""
    from svc_orchestrator.server import build_spec
    from svc_orchestrator.settings import OrchestratorSettings
    from tator_core.client import ServiceClient
    from tator_core.errors import parse_rpc_error
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
    from tator_core.server import start_server

    stack, _, _ = live
    addr = stack.addresses()
    settings = OrchestratorSettings(
        host="127.0.0.1", port=0, metrics_port=-1, data_root=stack.data_root, state_dir=stack.home / "slow-state",
        detector_address=addr["detector"], sam3_address=addr["sam3"], qwen_address=addr["qwen"],
        classifier_address=addr["classifier"], detector_timeout_s=0.001)
    spec = build_spec(settings)
    running = await start_server(spec, settings)
    await running.ready.wait()
    client = ServiceClient(running.address, pb_grpc.OrchestratorServiceStub, timeout_s=60)
    root = stack.data_root / "synth"
    image = str(sorted(root.glob("*/images/*.png"))[0].relative_to(root))
    only_detectors = orchestrator_pb2.PrepassConfig(enable_sam3_text=False, enable_sam3_similarity=False,
                                                    enable_classifier=False, enable_caption=False)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as ei:
            await client.call("Prepass", orchestrator_pb2.PrepassRequest(
                dataset_id="synth", dataset_image=image, config=only_detectors))
        err = parse_rpc_error(ei.value)
        assert err.reason == "STAGE_FAILED" and err.metadata["stage"] == "detectors", err
        assert err.metadata["upstream_code"] == "DEADLINE_EXCEEDED", err
        assert spec.app.cache.count() == 0  # type: ignore[attr-defined]  # set by the orchestrator's build_spec
    finally:
        await client.close()
        await running.stop(0)
