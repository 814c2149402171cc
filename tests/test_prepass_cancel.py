"""A client that cancels a real Prepass cancels the model services' work (the live in-process stack).

tests/test_call_context.py checks the generic chain on two stand-in servers; here the orchestrator's own
Prepass runs against the real detector and SAM3 services with the tiny models. The request is made slow
on purpose (a large scene, 160 px detector tiles, SAM3 on a 3x3 grid of windows) so that both services are
mid-call when the client cancels. Then: each service's handler ended CANCELLED (the interceptor's
`tator_rpc_total` counts it), nothing is left in flight, and SAM3 stopped between windows instead of
running the rest of the grid on its device thread for nobody (without the stop the prompt runs keep
growing after the cancel, which the last assertions catch). The detector's batch already on the device
finishes (a forward pass cannot be interrupted); its waiting handler is what gets cancelled.
"""

from __future__ import annotations

import asyncio
import io
import time

import pytest
import pytest_asyncio
from prometheus_client import REGISTRY
from stack_fixture import Stack, start_stack

from tator_core.client import ServiceClient, image_ref
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.stack, pytest.mark.timeout(600)]

GRID = 3  # SAM3 windows: a 3x3 grid plus the full frame (16 prompts x 10 stays under the fan-out cap)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory, stack_models) -> Stack:
    s = await start_stack(tmp_path_factory.mktemp("cancel-home"), stack_models)
    yield s
    await s.close()


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _cancelled(service: str, method: str) -> float:
    return _sample("tator_rpc_total", service=service, method=method, code="CANCELLED")


def _in_flight(service: str) -> float:
    return _sample("tator_rpc_in_flight", service=service)


def _counter_total(family: str) -> float:
    return sum(s.value for m in REGISTRY.collect() if m.name == family for s in m.samples
               if s.name == f"{family}_total")


def _sam3_prompt_runs() -> float:
    return _counter_total("tator_sam3_prompt_runs")


def _sam3_windows() -> float:
    """Vision embeddings SAM3 computed or reused: one per window it reached on its device thread."""
    return _counter_total("tator_sam3_vision_embeddings")


def big_scene() -> bytes:
    """A synthetic scene enlarged to 1600 px: many detector tiles and large SAM3 windows."""
    from tator_fixtures.synth import render_scene

    image, _ = render_scene(31337, 0)
    image = image.resize((1600, 1600))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


async def _until(check, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def test_cancelling_a_prepass_cancels_the_detector_and_sam3_calls(stack: Stack) -> None:
    client = ServiceClient(stack.orchestrator.address, pb_grpc.OrchestratorServiceStub, timeout_s=300)
    config = pb.PrepassConfig(sahi_window_size=160, detector_conf=0.02, enable_sam3_similarity=False,
                              sam3_text_synonym_budget=0, grid_cols=GRID, grid_rows=GRID, enable_caption=False,
                              enable_classifier=False)
    request = pb.PrepassRequest(image=image_ref(big_scene()), dataset_id="synth", config=config)
    before = {k: _cancelled(*k) for k in (("detector", "Detect"), ("sam3", "SegmentText"),
                                          ("orchestrator", "Prepass"))}
    runs_before, windows_before = _sam3_prompt_runs(), _sam3_windows()
    call = asyncio.ensure_future(client.call("Prepass", request))
    try:
        # both branches of the prepass run in their services, SAM3 already on its device thread (a window
        # embedded), so the cancellation has work to stop on both sides
        await _until(lambda: _in_flight("detector") >= 1 and _in_flight("sam3") >= 1
                     and _sam3_windows() > windows_before, 120, "the detector and SAM3 calls to be working")
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        # the cancellation reached each service's handler (not a deadline, not a finished call)
        await _until(lambda: all(_cancelled(*k) > n for k, n in before.items()), 30,
                     "every handler to end CANCELLED")
        await _until(lambda: _in_flight("detector") == 0 and _in_flight("sam3") == 0, 30, "nothing in flight")
        # SAM3 stopped between windows: the prompt runs stop growing, short of the whole grid
        await asyncio.sleep(1.0)  # a window already on the device finishes
        settled = _sam3_prompt_runs()
        await asyncio.sleep(1.0)
        assert _sam3_prompt_runs() == settled
        from tator_fixtures.synth import GLOSSARY  # the synth dataset's glossary: each label and its terms

        planned = sum(1 + len(terms) for terms in GLOSSARY.values()) * (GRID * GRID + 1)
        assert settled - runs_before < planned, (settled - runs_before, planned)
    finally:
        await client.close()
