"""Scale-out benchmark: prints ONE JSON line.

    .venv/bin/python benchmarks/scaling.py [--quick]

1. `queue`: the per-unit overhead of the work-unit queue (claim + one progress report + finish, no
   work in between), for the SQLite store and a real PostgreSQL server started here, with 1 and 4
   concurrent claimers (threads, each on its own store connection, as replicas would be).
2. `prepass`: a dataset prepass job's images/s with 1, 2 and 4 detector replicas, each a
   `python -m svc_detector` process, behind one round-robin target; SAM3, Qwen and the classifier run
   in this process; one orchestrator (in this process) with 4 unit workers and 2 images per unit, so
   4 images are in flight at once. Every run uses its own prepass config, so nothing is a cache hit.
   Scaling efficiency = (images/s with n replicas) / (n x images/s with 1). On a machine with few
   cores the replicas share them, and the efficiency says so.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]


def queue_overhead(url: str, units: int, claimers: int) -> dict:
    from svc_orchestrator.jobs import JobManager
    from svc_orchestrator.store import open_store
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

    stores = [open_store(url, Path(tempfile.gettempdir())) for _ in range(claimers)]
    job = JobManager(stores[0], replica_id="bench").start_sharded(
        pb.JOB_KIND_PREPASS, "ds", [[f"i{k}"] for k in range(units)], b"")
    counts = [0] * claimers

    def run(i: int) -> None:
        s, owner = stores[i], f"r{i}"
        while (u := s.claim_unit(owner, time.time(), time.time() + 60)) is not None:
            s.advance_unit(owner, u.job_id, u.unit, 1, time.time(), message="x", image=u.items[0])
            s.finish_unit(owner, u.job_id, u.unit, "{}")
            counts[i] += 1

    t0 = time.perf_counter()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(claimers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    state = stores[0].job(job.id).job
    for s in stores:
        s.close()
    assert sum(counts) == units and state.done == units
    return {"units": units, "claimers": claimers, "wall_s": round(wall, 3),
            "ms_per_unit": round(wall / units * 1000, 3), "units_per_s": round(units / wall, 1)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _wait_serving(address: str) -> None:
    from tator_core.client import ServiceClient

    client = ServiceClient(address, lambda ch: None)
    try:
        for _ in range(1200):
            if await client.health() == "SERVING":
                return
            await asyncio.sleep(0.1)
        raise TimeoutError(address)
    finally:
        await client.close()


async def prepass_scaling(home: Path, replicas: list[int], logs: Path) -> dict:
    from stack_fixture import Stack, build_models, make_datasets

    from svc_orchestrator.server import build_spec
    from svc_orchestrator.settings import OrchestratorSettings
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
    from tator_core.server import start_server

    make_datasets(home / "data")
    stack = Stack(home, build_models(home / "models", home / "data" / "synth"))
    for name in ("sam3", "qwen", "classifier"):
        await stack.start_service(name)
    out: dict = {}
    procs: list[subprocess.Popen] = []
    try:
        for n in replicas:
            while len(procs) < n:
                port = _free_port()
                log = open(logs / f"detector-{len(procs)}.log", "ab")  # noqa: SIM115 - the child owns it
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "svc_detector", "--host", "127.0.0.1", "--port", str(port),
                     "--metrics-port", "-1", "--device", "cpu", "--registry", str(stack.registry)],
                    cwd=REPO, stdout=log, stderr=subprocess.STDOUT))
                procs[-1].port = port  # type: ignore[attr-defined]  # the benchmark tags the process with its port
                log.close()
                await _wait_serving(f"127.0.0.1:{port}")
            target = "ipv4:" + ",".join(f"127.0.0.1:{p.port}" for p in procs[:n])  # type: ignore[attr-defined]  # set above
            addr = stack.addresses()
            settings = OrchestratorSettings(
                host="127.0.0.1", port=0, metrics_port=-1, data_root=stack.data_root,
                state_dir=home / f"state-{n}", detector_address=target, sam3_address=addr["sam3"],
                qwen_address=addr["qwen"], classifier_address=addr["classifier"], max_concurrent_jobs=4,
                unit_images=2)
            spec = build_spec(settings)
            orch = await start_server(spec, settings)
            await orch.ready.wait()
            app = spec.app  # type: ignore[attr-defined]  # set by the orchestrator's build_spec
            request = pb.StartPrepassJobRequest(dataset_id="synth", config=pb.PrepassConfig(grid_cols=n + 1))
            t0 = time.perf_counter()
            job = app.start_prepass_job(request)
            final = await app.jobs.wait(job.id)
            wall = time.perf_counter() - t0
            await orch.stop(0)
            assert final.state == pb.JOB_STATE_SUCCEEDED, final
            out[str(n)] = {"images": final.total, "wall_s": round(wall, 2),
                           "images_per_s": round(final.total / wall, 3)}
            print(f"detector replicas {n}: {out[str(n)]}", file=sys.stderr, flush=True)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(60)  # SIGTERM drains first
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
        await stack.close()
    base = out[str(replicas[0])]["images_per_s"]
    for n in replicas:
        out[str(n)]["efficiency"] = round(out[str(n)]["images_per_s"] / (n / replicas[0] * base), 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip-prepass", action="store_true")
    args = ap.parse_args()
    from tator_fixtures.postgres import PostgresServer, find_bin_dir

    units = 200 if args.quick else 1000
    result: dict = {"benchmark": "scaling", "cpus": os.cpu_count(), "queue": {}}
    with tempfile.TemporaryDirectory() as tmp:
        result["queue"]["sqlite"] = [queue_overhead(f"sqlite:///{tmp}/q.sqlite", units, 1)]
        if find_bin_dir() is not None:
            with PostgresServer() as pg:
                result["queue"]["postgresql"] = [queue_overhead(pg.create_database(), units, c) for c in (1, 4)]
        if not args.skip_prepass:
            logs = Path(tmp) / "logs"
            logs.mkdir()
            result["prepass"] = asyncio.run(prepass_scaling(Path(tmp) / "home", [1, 2, 4], logs))
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
