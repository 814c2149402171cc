"""An orchestrator replica as its own process (`python -m svc_orchestrator`), as a deployment runs it,
for the tests that kill one mid-job; and the cache's write counts read straight from PostgreSQL."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
from pathlib import Path

from stack_fixture import MODEL_SERVICES, Stack

from tator_core.client import ServiceClient
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Replica:
    """One orchestrator process on `store_url`, with the stack's model services (or `addresses`)."""

    def __init__(self, name: str, stack: Stack, store_url: str, logs: Path, *,
                 addresses: dict[str, str] | None = None, extra: tuple[str, ...] = ()) -> None:
        self.name, self.stack, self.store_url, self.logs = name, stack, store_url, logs
        self.addresses = {**stack.addresses(), **(addresses or {})}
        self.extra = extra
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.client: ServiceClient | None = None

    @property
    def log_path(self) -> Path:
        return self.logs / f"orchestrator-{self.name}.log"

    async def start(self) -> Replica:
        args = [sys.executable, "-m", "svc_orchestrator", "--host", "127.0.0.1", "--port", str(self.port),
                "--metrics-port", "-1", "--data-root", str(self.stack.data_root),
                "--state-dir", str(self.stack.home / f"state-{self.name}"), "--store-url", self.store_url,
                "--replica-id", self.name, "--unit-images", "2", "--lease-s", "3", *self.extra]
        for svc in MODEL_SERVICES:
            args += [f"--{svc}-address", self.addresses[svc]]
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(args, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.client = ServiceClient(f"127.0.0.1:{self.port}", pb_grpc.OrchestratorServiceStub, timeout_s=300)
        for _ in range(600):
            if await self.client.health() == "SERVING":
                return self
            assert self.proc.poll() is None, self.log_path.read_text()[-3000:]
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


def cache_writes(store_url: str, dataset_id: str) -> tuple[int, int]:
    """(entries, writes) of the prepass cache for one dataset: equal when no image was prepassed twice."""
    import psycopg

    with psycopg.connect(store_url) as conn:
        n, w = conn.execute("SELECT COUNT(*), COALESCE(SUM(writes), 0) FROM entries WHERE dataset_id = %s",
                            (dataset_id,)).fetchone()
    return int(n), int(w)
