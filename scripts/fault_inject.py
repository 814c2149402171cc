"""Fault injection with real processes: kill -9 a service in the middle of a prepass job.

Starts `tator up` in the foreground (its supervisor restarts crashed children) for this checkout's
TATOR_HOME / TATOR_STACK_CONFIG, starts a prepass job over `--images` images of the synthetic
dataset, kills the chosen service with SIGKILL once `--kill-after` images are done, and checks:
- a model service: the job ends FAILED naming the stage, the service comes back SERVING under
  supervision, and the same job run again finishes with every image finished before the kill served
  from the cache;
- the orchestrator: it comes back SERVING under supervision and the same job (same id: its work
  units are in the store, and the restarted replica takes its own units back) finishes SUCCEEDED with
  every image; a second run is served wholly from the cache (nothing half-written).
With --disk-full (root: it mounts a tmpfs) the orchestrator's SQLite store lives on a 4 MiB tmpfs;
once the stack serves, a filler file takes every free byte (but --headroom-kb), and a prepass job must end in
RESOURCE_EXHAUSTED / STORE_FULL (refused at the door, or the job FAILED with that text), leave the
file passing SQLite's integrity check with no entry missing its meta row, and the same job run again
after the filler is removed must succeed. With `--headroom-kb 64` the volume runs full in the middle
of the job: it ends FAILED with STORE_FULL in stage `store` (the store keeps a small reserve file that
it gives up so that this last write lands) instead of waiting silently for space.
Prints one JSON line; exit status 1 when a check fails.

    python scripts/fault_inject.py --service detector --images 6 --kill-after 2
    python scripts/fault_inject.py --service orchestrator --images 6 --kill-after 2
    python scripts/fault_inject.py --disk-full --images 6
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tator_cli import stack
from tator_core.client import ServiceClient
from tator_core.errors import parse_rpc_error
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc

TERMINAL = {pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED}


async def wait_serving(services: dict, names: list[str], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        states = [await stack.health_of(services[n].address) for n in names]
        if all(s == "SERVING" for s in states):
            return True
        await asyncio.sleep(1)
    return False


async def poll_job(client: ServiceClient, job_id: str, on_progress=None, timeout_s: float = 900) -> pb.Job:
    """GetJob until the job ends; UNAVAILABLE (the orchestrator restarting) is waited out."""
    deadline, fired = time.monotonic() + timeout_s, False
    while time.monotonic() < deadline:
        try:
            job = (await client.call("GetJob", pb.GetJobRequest(job_id=job_id), timeout_s=10)).job
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise
            await asyncio.sleep(1)
            continue
        if on_progress is not None and not fired and on_progress(job):
            fired = True
        if job.state in TERMINAL:
            return job
        await asyncio.sleep(0.2)
    raise TimeoutError(f"job {job_id} did not end within {timeout_s:.0f} s")


async def run_job(client: ServiceClient, images: int, on_progress=None, refresh: bool = False,
                  timeout_s: float = 900) -> pb.Job:
    job = (await client.call("StartPrepassJob", pb.StartPrepassJobRequest(
        dataset_id="synth", split="val", max_images=images, refresh=refresh))).job
    return await poll_job(client, job.id, on_progress, timeout_s)


def fill(volume: Path) -> int:
    """Write a filler file until the volume has no byte left; its size."""
    chunk, n = b"\0" * 65536, 0
    with open(volume / "filler", "wb", buffering=0) as f:
        for size in (65536, 4096, 512, 1):
            try:
                while True:
                    n += f.write(chunk[:size])
            except OSError:
                continue
    return n


def store_check(path: Path) -> dict:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        orphans = db.execute("SELECT COUNT(*) FROM entries e LEFT JOIN meta m ON m.meta_key = e.meta_key "
                             "WHERE m.meta_key IS NULL").fetchone()[0]
        return {"integrity": db.execute("PRAGMA integrity_check").fetchone()[0], "entries_without_meta": orphans,
                "entries": db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]}
    finally:
        db.close()


async def disk_full(args: argparse.Namespace, services: dict, client: ServiceClient, out: dict) -> dict:
    volume = Path(out["volume"])
    out["filler_bytes"] = fill(volume)
    if args.headroom_kb:  # room for the job's first rows: the volume then runs full in the middle of it
        out["filler_bytes"] -= args.headroom_kb * 1024
        os.truncate(volume / "filler", out["filler_bytes"])
    try:
        first = await run_job(client, args.images, refresh=True, timeout_s=180)
        out["first"] = {"state": pb.JobState.Name(first.state), "done": first.done, "error": first.error[:200]}
        full = first.state == pb.JOB_STATE_FAILED and "STORE_FULL" in first.error
    except TimeoutError as exc:  # a job that cannot record its failure would sit RUNNING
        out["first"], full = {"stuck": str(exc)}, False
    except grpc.aio.AioRpcError as exc:
        err = parse_rpc_error(exc)
        out["first"] = {"refused": err.code.name, "reason": err.reason, "message": err.message[:200]}
        full = err.code == grpc.StatusCode.RESOURCE_EXHAUSTED and err.reason == "STORE_FULL"
    (volume / "filler").unlink()
    out["store"] = store_check(volume / "orchestrator.sqlite")
    second = await run_job(client, args.images)
    out["second"] = {"state": pb.JobState.Name(second.state), "images": second.result.prepass.images}
    return {
        "store_full_reported": full,
        "store_intact": out["store"]["integrity"] == "ok" and out["store"]["entries_without_meta"] == 0,
        "rerun_succeeded": second.state == pb.JOB_STATE_SUCCEEDED and second.result.prepass.images == args.images,
        "orchestrator_serving": await wait_serving(services, ["orchestrator"], 10),
    }


async def main(args: argparse.Namespace) -> int:
    services = stack.load_config(None)
    env = dict(os.environ)
    out: dict = {"service": args.service, "images": args.images, "kill_after": args.kill_after}
    if args.disk_full:
        volume = Path(tempfile.mkdtemp(prefix="tator-full-"))
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(volume)], check=True)
        env["TATOR_ORCHESTRATOR_STORE_URL"] = f"sqlite:///{volume}/orchestrator.sqlite"
        out = {"disk_full": True, "images": args.images, "volume": str(volume)}
    proc = subprocess.Popen([sys.executable, "-m", "tator_cli.main", "up"], cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        names = list(services)
        if not await wait_serving(services, names, args.start_timeout_s):
            out["error"] = "stack never became SERVING"
            return 1
        client = ServiceClient(services["orchestrator"].address, pb_grpc.OrchestratorServiceStub, timeout_s=60)
        if args.disk_full:
            out["checks"] = checks = await disk_full(args, services, client, out)
            await client.close()
            return 0 if all(checks.values()) else 1
        state = json.loads(stack.state_file().read_text())
        victim = int(state[args.service]["pid"])

        def kill_when_ready(job: pb.Job) -> bool:
            if job.done >= args.kill_after:
                os.kill(victim, signal.SIGKILL)
                out["killed_pid"], out["done_at_kill"] = victim, job.done
                return True
            return False

        first = await run_job(client, args.images, kill_when_ready, refresh=True)  # every image computed
        out["first"] = {"state": pb.JobState.Name(first.state), "failed_stage": first.failed_stage,
                        "done": first.done, "error": first.error[:200]}
        started = time.monotonic()
        out["restarted_serving"] = await wait_serving(services, [args.service], args.start_timeout_s)
        out["restart_s"] = round(time.monotonic() - started, 1)
        if args.service == "orchestrator":
            out["restarted_pid"] = int(json.loads(stack.state_file().read_text())["orchestrator"]["pid"])
        second = await run_job(client, args.images)
        summary = second.result.prepass
        out["second"] = {"state": pb.JobState.Name(second.state), "images": summary.images,
                         "cache_hits": summary.cache_hits}
        await client.close()
        if args.service == "orchestrator":
            checks = {
                "killed_mid_job": 0 < out.get("done_at_kill", 0) < args.images,
                "orchestrator_restarted": out["restarted_serving"] and out["restarted_pid"] != victim,
                "job_finished_after_restart": first.state == pb.JOB_STATE_SUCCEEDED
                and first.result.prepass.images == args.images,
                "rerun_all_cached": second.state == pb.JOB_STATE_SUCCEEDED and summary.cache_hits == args.images,
            }
        else:
            checks = {
                "first_failed_naming_stage": first.state == pb.JOB_STATE_FAILED and bool(first.failed_stage),
                "service_restarted": out["restarted_serving"],
                "rerun_succeeded": second.state == pb.JOB_STATE_SUCCEEDED,
                "rerun_reused_cache": summary.cache_hits >= first.done,
            }
        out["checks"] = checks
        return 0 if all(checks.values()) else 1
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        if args.disk_full:
            subprocess.run(["umount", "-l", out["volume"]], check=False)
            os.rmdir(out["volume"])
        print(json.dumps(out))


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--service", default="detector", choices=["detector", "sam3", "qwen", "classifier", "orchestrator"])
    p.add_argument("--disk-full", action="store_true", help="the store's volume runs full (needs root to mount)")
    p.add_argument("--headroom-kb", type=int, default=0, help="with --disk-full: bytes left free after the fill")
    p.add_argument("--images", type=int, default=6)
    p.add_argument("--kill-after", type=int, default=2)
    p.add_argument("--start-timeout-s", type=float, default=300)
    sys.exit(asyncio.run(main(p.parse_args())))
