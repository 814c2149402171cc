"""A trivial Tator RPC vs a bare grpc.aio echo server: prints ONE JSON line.

    .venv/bin/python benchmarks/rpc_overhead.py [--quick] [--concurrency 16] [--seconds 2]

Three servers, each in its own process (so the client does not share their GIL), all
up for the whole run:
  echo       a bare grpc.aio server with one generic unary method returning its request bytes;
  tator      the detector service's real server stack (interceptor, protovalidate, health,
             reflection) on an empty model registry, answering ListModels;
  health     grpc.health.v1 Check on that same tator server.
One grpc.aio client process drives them in alternating timed blocks (echo, ListModels,
Health, repeated), so drift in a shared machine's load hits all alike; the ratios are of
the medians over blocks. Target: ListModels and Health >= 0.8 of echo's calls/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = 0.8
ECHO_METHOD = "/tator.bench.Echo/Echo"


async def _serve_echo(port_file: Path) -> None:
    import grpc

    async def echo(request: bytes, context) -> bytes:
        return request

    handler = grpc.method_handlers_generic_handler(
        "tator.bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)})
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    port_file.write_text(str(port))
    await server.wait_for_termination()


async def _serve_tator(port_file: Path, registry: Path) -> None:
    from svc_detector.server import build_spec
    from svc_detector.settings import DetectorSettings
    from tator_core.server import start_server

    settings = DetectorSettings(port=0, metrics_port=-1, device="cpu", registry=registry, warmup=False,
                                log_level="WARNING")
    running = await start_server(build_spec(settings), settings)
    await running.ready.wait()
    port_file.write_text(str(running.port))
    await running.server.wait_for_termination()


def _spawn(kind: str, tmp: Path) -> tuple[subprocess.Popen, int]:
    port_file = tmp / f"{kind}.port"
    proc = subprocess.Popen([sys.executable, __file__, "--serve", kind, "--tmp", str(tmp)], cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not port_file.exists() or not port_file.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{kind} server did not start")
        time.sleep(0.1)
    return proc, int(port_file.read_text())


async def _block(call, concurrency: int, seconds: float) -> float:
    """Closed loop for `seconds`: calls per second."""
    count = 0
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal count
        while time.perf_counter() < stop_at:
            await call()
            count += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - t0)


async def measure(ports: dict[str, int], concurrency: int, seconds: float, rounds: int) -> dict:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from tator_core.gen.tator.common.v1 import models_pb2, models_pb2_grpc

    echo_ch = grpc.aio.insecure_channel(f"127.0.0.1:{ports['echo']}")
    tator_ch = grpc.aio.insecure_channel(f"127.0.0.1:{ports['tator']}")
    echo = echo_ch.unary_unary(ECHO_METHOD)
    stub = models_pb2_grpc.ModelManagementServiceStub(tator_ch)  # the detector serves it too
    health_stub = health_pb2_grpc.HealthStub(tator_ch)
    list_req, health_req = models_pb2.ListModelsRequest(), health_pb2.HealthCheckRequest()
    calls = {"echo": lambda: echo(b""), "list_models": lambda: stub.ListModels(list_req),
             "health": lambda: health_stub.Check(health_req)}
    for fn in calls.values():  # connect and warm every path
        for _ in range(20):
            await fn()
    rps: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(rounds):
        for name, fn in calls.items():
            rps[name].append(await _block(fn, concurrency, seconds))
    await echo_ch.close()
    await tator_ch.close()
    med = {k: statistics.median(v) for k, v in rps.items()}
    ratios = {k: round(med[k] / med["echo"], 3) for k in ("list_models", "health")}
    return {"echo_rps": round(med["echo"], 1), "list_models_rps": round(med["list_models"], 1),
            "health_rps": round(med["health"], 1), "ratio_list_models_vs_echo": ratios["list_models"],
            "ratio_health_vs_echo": ratios["health"], "target": TARGET,
            "meets_target": all(r >= TARGET for r in ratios.values()),
            "blocks_per_kind": rounds, "block_s": seconds,
            "per_block_rps": {k: [round(x) for x in v] for k, v in rps.items()}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="shorter blocks (CI smoke)")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--seconds", type=float, default=2.0, help="length of one timed block")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--serve", choices=("echo", "tator"), help=argparse.SUPPRESS)
    p.add_argument("--tmp", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve == "echo":
        asyncio.run(_serve_echo(args.tmp / "echo.port"))
        return 0
    if args.serve == "tator":
        asyncio.run(_serve_tator(args.tmp / "tator.port", args.tmp / "registry.yaml"))
        return 0
    seconds, rounds = (0.5, 2) if args.quick else (args.seconds, args.rounds)
    with tempfile.TemporaryDirectory(prefix="tator-rpc-") as tmp:
        (Path(tmp) / "registry.yaml").write_text("models: []\n")
        procs, ports = [], {}
        try:
            for kind in ("echo", "tator"):
                proc, ports[kind] = _spawn(kind, Path(tmp))
                procs.append(proc)
            result = asyncio.run(measure(ports, args.concurrency, seconds, rounds))
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=30)
    print(json.dumps({"bench": "rpc_overhead", "quick": args.quick, "concurrency": args.concurrency, **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
