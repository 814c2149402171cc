"""Two orchestrator processes on one PostgreSQL, over one set of model services (in this process):
a dataset prepass job started on replica A is watched on B, A is killed mid-job (SIGKILL) and B
finishes it; every image is prepassed exactly once; a cancel on B stops the job; a replica killed
and restarted under its name finishes the job it was running, skipping the cached images."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_asyncio
from stack_fixture import MODEL_SERVICES, SYNTH_IMAGES, Stack, build_models, make_datasets

from tator_core.client import ServiceClient
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.stack]
REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Replica:
    """`python -m svc_orchestrator` as its own process, as a deployment runs it."""

    def __init__(self, name: str, stack: Stack, store_url: str, logs: Path) -> None:
        self.name, self.stack, self.store_url, self.logs = name, stack, store_url, logs
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None
        self.client: ServiceClient | None = None

    async def start(self) -> Replica:
        addr = self.stack.addresses()
        args = [sys.executable, "-m", "svc_orchestrator", "--host", "127.0.0.1", "--port", str(self.port),
                "--metrics-port", "-1", "--data-root", str(self.stack.data_root),
                "--state-dir", str(self.stack.home / f"state-{self.name}"), "--store-url", self.store_url,
                "--replica-id", self.name, "--unit-images", "2", "--lease-s", "3"]
        for svc in MODEL_SERVICES:
            args += [f"--{svc}-address", addr[svc]]
        log = open(self.logs / f"orchestrator-{self.name}.log", "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(args, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.client = ServiceClient(f"127.0.0.1:{self.port}", pb_grpc.OrchestratorServiceStub, timeout_s=300)
        for _ in range(600):
            if await self.client.health() == "SERVING":
                return self
            assert self.proc.poll() is None, (self.logs / f"orchestrator-{self.name}.log").read_text()[-3000:]
            await asyncio.sleep(0.1)
        raise TimeoutError(f"orchestrator {self.name} did not become SERVING")

    async def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        await self.client.close()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.client is not None:
            await self.client.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def services(tmp_path_factory, stack_models) -> Stack:
    home = tmp_path_factory.mktemp("home")
    models = stack_models
    make_datasets(home / "data")
    stack = Stack(home, build_models(models, home / "data" / "synth"))
    for name in MODEL_SERVICES:
        await stack.start_service(name)
    yield stack
    await stack.close()


def _cache_writes(store_url: str, dataset_id: str) -> tuple[int, int]:
    import psycopg

    with psycopg.connect(store_url) as conn:
        n, w = conn.execute("SELECT COUNT(*), COALESCE(SUM(writes), 0) FROM entries WHERE dataset_id = %s",
                            (dataset_id,)).fetchone()
    return int(n), int(w)


async def test_failover_between_orchestrator_processes(services: Stack, pg_server, tmp_path):
    url = pg_server.create_database()
    a = await Replica("a", services, url, tmp_path).start()
    b = await Replica("b", services, url, tmp_path).start()
    try:
        total = SYNTH_IMAGES
        job = (await a.client.call("StartPrepassJob", pb.StartPrepassJobRequest(dataset_id="synth"))).job
        assert job.total == total
        killed_at = None
        events = []
        async for ev in b.client.stream("WatchJob", pb.WatchJobRequest(job_id=job.id)):
            events.append(ev)
            if ev.image and killed_at is None:
                killed_at = ev.job.done
                await a.kill()  # mid-job: A holds a unit (and maybe an image in flight)
        final = events[-1].job
        assert killed_at is not None and killed_at < total
        assert final.state == pb.JOB_STATE_SUCCEEDED and final.done == total, final
        assert final.result.prepass.images == total
        # every image prepassed exactly once: one cache entry each, none written twice
        assert _cache_writes(url, "synth") == (total, total)
        done = [ev.job.done for ev in events if ev.image]
        assert done == sorted(done)

        # a cancel on B of a job B's workers are running
        cfg = pb.PrepassConfig(grid_cols=3)
        job2 = (await b.client.call("StartPrepassJob", pb.StartPrepassJobRequest(dataset_id="synth",
                                                                                 config=cfg))).job
        async for ev in b.client.stream("WatchJob", pb.WatchJobRequest(job_id=job2.id)):
            if ev.image:
                assert (await b.client.call("CancelJob", pb.CancelJobRequest(job_id=job2.id))).job.state == \
                    pb.JOB_STATE_CANCELLED
            last = ev.job
        assert last.state == pb.JOB_STATE_CANCELLED and last.done < total

        # B alone: killed mid-job and restarted under its name, it finishes the job, skipping cached images
        cfg = pb.PrepassConfig(grid_cols=4)
        job3 = (await b.client.call("StartPrepassJob", pb.StartPrepassJobRequest(dataset_id="synth",
                                                                                 config=cfg))).job
        async for ev in b.client.stream("WatchJob", pb.WatchJobRequest(job_id=job3.id)):
            if ev.image and ev.job.done >= 3:
                break
        await b.kill()
        b = await Replica("b", services, url, tmp_path).start()
        final = (await b.client.call("GetJob", pb.GetJobRequest(job_id=job3.id))).job
        assert final.state != pb.JOB_STATE_INTERRUPTED  # its units wait in the store
        async for ev in b.client.stream("WatchJob", pb.WatchJobRequest(job_id=job3.id)):
            final = ev.job
        assert final.state == pb.JOB_STATE_SUCCEEDED and final.done == total, final
        assert final.result.prepass.cache_hits >= 1  # the unit it was in ran again, from the cache
        entries, writes = _cache_writes(url, "synth")
        assert entries == writes  # across the kill, the cancel and the restart: no image prepassed twice
    finally:
        await a.stop()
        await b.stop()
