"""A real service process: SERVING after warm-up, JSON logs, graceful drain on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time

from tator_core.client import ServiceClient


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_sigterm_drains_and_exits_cleanly(tmp_path):
    registry = tmp_path / "registry.yaml"
    registry.write_text("models: []\n")
    port = free_port()
    env = dict(os.environ, TATOR_HOME=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-m", "svc_classifier", "--port", str(port), "--device", "cpu",
                             "--registry", str(registry), "--grace-s", "2"],
                            env=env, stderr=subprocess.PIPE, text=True)
    client = ServiceClient(f"127.0.0.1:{port}", lambda ch: None)
    try:
        deadline = time.monotonic() + 60
        while await client.health() != "SERVING":
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "never SERVING"
            await asyncio.sleep(0.2)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 30)
        assert code == 0 and time.monotonic() - started < 15
        logs = [json.loads(ln) for ln in proc.stderr.read().splitlines() if ln.startswith("{")]
        msgs = [r["msg"] for r in logs]
        assert "serving" in msgs and "draining" in msgs and "stopped" in msgs
        assert all(r["service"] == "svc_classifier" and "ts" in r and "level" in r for r in logs)
    finally:
        await client.close()
        if proc.poll() is None:
            proc.kill()
