"""A server stream still open when a draining server's grace runs out ends
with a clear, retryable status (UNAVAILABLE, reason SERVICE_UNAVAILABLE,
before the grace ends), never a reset or a bare CANCELLED; unary calls and
streams that finish in time are untouched."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import pytest

from tator_core.client import ServiceClient
from tator_core.errors import parse_rpc_error
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from tator_core.server import ServiceSpec, start_server
from tator_core.settings import ServiceSettings

pytestmark = pytest.mark.timeout(60)


class Endless(pb_grpc.OrchestratorServiceServicer):
    """WatchJob that sends one update, then waits for progress that never comes."""

    async def WatchJob(self, request: Any, context: Any) -> Any:
        yield pb.WatchJobResponse(job=pb.Job(id=request.job_id, done=0, total=3))
        await asyncio.Event().wait()


async def start(servicer: Any) -> Any:
    spec = ServiceSpec("orchestrator", "tator.orchestrator.v1.OrchestratorService",
                       lambda s: pb_grpc.add_OrchestratorServiceServicer_to_server(servicer, s))
    running = await start_server(spec, ServiceSettings(port=0, metrics_port=-1, warmup=False))
    await running.ready.wait()
    return running


async def test_open_stream_ends_with_unavailable_before_the_grace_runs_out() -> None:
    running = await start(Endless())
    client = ServiceClient(running.address, pb_grpc.OrchestratorServiceStub, timeout_s=30)
    try:
        stream = client.stream("WatchJob", pb.WatchJobRequest(job_id="j1")).__aiter__()
        first = await stream.__anext__()
        assert first.job.id == "j1"
        grace = 2.0
        started = time.monotonic()
        stopping = asyncio.create_task(running.stop(grace))
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await stream.__anext__()
        ended = time.monotonic() - started
        err = parse_rpc_error(exc.value)
        assert (err.code, err.reason) == (grpc.StatusCode.UNAVAILABLE, "SERVICE_UNAVAILABLE"), err
        assert "shutting down" in err.message
        assert ended < grace, ended
        await stopping
    finally:
        await client.close()
