"""The device check: one call on a GPU machine (scripts/device_check.sh), or its CPU dry run.

    python benchmarks/device.py --out DIR [--dry-run] [--device cuda:0] [--skip-tests] [--families yolo,qwen]

Steps, each timed and recorded (a failing step is recorded and the next one still runs):
  env        interpreter, library versions, CUDA devices, cv2/scipy (the detector needs them; their wheels
             are too large to carry, see scripts/device_wheels.py)
  plan       the one-GPU-per-service assignment with CUDA_VISIBLE_DEVICES, for 4 GPUs and for this machine
  gpu_tests  pytest -m gpu (skipped with --skip-tests; the dry run skips it: without CUDA every test skips)
  models     random-weight checkpoints, `real` sizes on the device, `tiny` in the dry run (device_models.py)
  stack      `tator up`'s launcher: the four model services + orchestrator on those models, one prepass job
             over N synthetic images (50 real, 4 dry), images/s and stage times
  bench      per family: direct library vs service at concurrency 1/8/32, detector batching on/off,
             GPU memory peak (device_bench.py)
Writes DIR/device.json and DIR/device.md; prints the JSON as one line. Exit 1 when a step failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

import device_bench
import device_models

LIBS = {"torch": "torch", "torchvision": "torchvision", "transformers": "transformers", "grpc": "grpcio",
        "google.protobuf": "protobuf", "numpy": "numpy", "PIL": "pillow", "pydantic": "pydantic",
        "protovalidate": "protovalidate", "ultralytics": "ultralytics", "rfdetr": "rfdetr",
        "cv2": "opencv-python-headless", "scipy": "scipy"}
STEPS = ("env", "plan", "gpu_tests", "models", "stack", "bench")
GPU_TESTS = ["tests/test_detector_service.py", "tests/test_sam3_units.py", "tests/test_qwen_backend.py",
             "tests/test_classifier_service.py"]


def step_env(device: str) -> dict:
    # Found, not imported: importing ultralytics, rfdetr and cv2 costs tens of seconds; the steps that
    # need them import them for real.
    versions = {}
    for module, dist in LIBS.items():
        if importlib.util.find_spec(module) is None:
            versions[module] = "missing"
            continue
        try:
            versions[module] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[module] = "present"
    import torch

    cuda = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {"python": platform.python_version(), "device": device, "cuda_devices": cuda, "versions": versions,
            "bf16": bool(cuda) and torch.cuda.is_bf16_supported()}


def step_plan() -> dict:
    from tator_cli import stack

    out = {}
    for label, gpus in (("four_gpus", "0,1,2,3"), ("this_machine", os.environ.get("CUDA_VISIBLE_DEVICES"))):
        ids = stack.visible_gpu_ids(stack.gpu_count(), gpus) if label == "this_machine" else gpus.split(",")
        services = stack.load_config()
        out[label] = {name: {"CUDA_VISIBLE_DEVICES": env.get("CUDA_VISIBLE_DEVICES", ""), "device": dev}
                      for name, (dev, env) in stack.visible_device_env(services, ids).items()}
    return out


def step_gpu_tests(timeout_s: float) -> dict:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", *GPU_TESTS]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)
    tail = (done.stdout + done.stderr).strip().splitlines()[-15:]
    if done.returncode not in (0, 5):
        raise RuntimeError("gpu tests failed:\n" + "\n".join(tail))
    return {"returncode": done.returncode, "summary": tail[-1] if tail else ""}


def step_models(home: Path, size: str, device: str, families: tuple[str, ...]) -> dict:
    registry, extra = device_models.build_registry(home / "models", size, device, families)
    sizes = {p.parent.name if p.parent != home / "models" else p.name: 0 for p in (home / "models").iterdir()}
    for d in (home / "models").iterdir():
        sizes[d.name] = round(sum(f.stat().st_size for f in d.rglob("*") if f.is_file()) / 2**20, 1)
    return {"registry": str(registry), "extra": extra, "mib": sizes}


def _free_ports(n: int) -> list[int]:
    import socket

    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


async def _prepass_job(address: str, images: int) -> dict:
    from tator_core.client import ServiceClient
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2_grpc as pbg

    client = ServiceClient(address, pbg.OrchestratorServiceStub, timeout_s=900)
    try:
        t0 = time.perf_counter()
        job = (await client.call("StartPrepassJob", pb.StartPrepassJobRequest(dataset_id="synth",
                                                                             max_images=images))).job
        last = job
        async for ev in client.stream("WatchJob", pb.WatchJobRequest(job_id=job.id)):
            last = ev.job
            if last.state not in (pb.JOB_STATE_QUEUED, pb.JOB_STATE_RUNNING):
                break
        wall = time.perf_counter() - t0
    finally:
        await client.close()
    state = pb.JobState.Name(last.state)
    if state != "JOB_STATE_SUCCEEDED":
        raise RuntimeError(f"prepass job ended {state}: {last.error if hasattr(last, 'error') else ''}")
    return {"images": images, "wall_s": round(wall, 2), "images_per_s": round(images / wall, 3), "state": state}


def step_stack(home: Path, images: int) -> dict:
    """The stack launcher of `tator up` on the models just built, then one prepass job."""
    import yaml

    from tator_cli import stack
    from tator_fixtures.synth import generate

    generate(home / "data" / "synth", seed=0, images=images, splits=("train",))
    ports = _free_ports(10)
    names = ("orchestrator", "detector", "sam3", "qwen", "classifier")
    config = {"services": {n: {"address": f"127.0.0.1:{ports[i]}", "metrics_port": ports[5 + i],
                               "module": f"svc_{n}", "gpu": n != "orchestrator"} for i, n in enumerate(names)}}
    cfg_path = home / "stack.yaml"
    cfg_path.write_text(yaml.safe_dump(config))
    os.environ["TATOR_HOME"] = str(home)
    services, procs = stack.start(cfg_path, only=list(names), web=False)
    try:
        t0 = time.perf_counter()
        asyncio.run(stack.wait_serving({n: services[n].address for n in procs}, timeout_s=600, procs=procs))
        ready_s = time.perf_counter() - t0
        job = asyncio.run(_prepass_job(services["orchestrator"].address, images))
    finally:
        stack.stop()
    return {"devices": {n: services[n].device for n in procs}, "ready_s": round(ready_s, 1), "prepass": job}


# Calls per family on the device: enough for a p95, within the 8-minute wall (Qwen generates 32 tokens a call).
REAL_BUDGET = {"yolo": (30, 128), "rfdetr": (30, 128), "sam3": (20, 64), "qwen": (5, 16), "clip": (30, 128)}


def step_bench(registry: Path, extra: dict, device: str, dry: bool, families: tuple[str, ...],
               save: Any = None) -> list[dict]:
    out = []
    for family in families:
        direct_calls, service_calls = REAL_BUDGET[family]
        budget = device_bench.Budget(direct_calls=3, service_calls=4, concurrency=(1, 8)) if dry else \
            device_bench.Budget(direct_calls=direct_calls, service_calls=service_calls)
        image = device_bench.scene_png(640 if not dry else 160, seed=1)
        try:
            res = asyncio.run(device_bench.bench_family(family, registry, extra[family]["id"], extra[family],
                                                        device, image, budget))
        except Exception as exc:
            res = {"family": family, "model": extra[family]["id"], "error": f"{type(exc).__name__}: {exc}",
                   "traceback": traceback.format_exc()[-2000:]}
        out.append(res)
        if save is not None:  # partial results survive the wall-clock limit
            save(out)
    return out


def write_report(report: dict, out: Path) -> None:
    """device.json and device.md as they stand (rewritten after every step)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "device.json").write_text(json.dumps(report, indent=2) + "\n")
    md = [f"# Device check ({report['size']} models, {report.get('wall_s', 'running')} s)", ""]
    for name, s in report["steps"].items():
        md.append(f"- {name}: {'ok' if s['ok'] else 'FAILED: ' + s['error'][:300]} ({s['s']} s)")
    md += ["", report.get("table", "(no benchmark table)")]
    (out / "device.md").write_text("\n".join(md) + "\n")


def run(args: argparse.Namespace) -> dict:
    from tator_core.offline import enforce_offline
    from tator_core.settings import resolve_device

    enforce_offline()
    device = resolve_device(args.device)
    size = "tiny" if args.dry_run else "real"
    families = tuple(args.families.split(",")) if args.families else device_models.FAMILIES
    report: dict[str, Any] = {"check": "device", "dry_run": args.dry_run, "size": size, "steps": {}, "failed": []}
    home = Path(tempfile.mkdtemp(prefix="tator-device-"))
    os.environ["TATOR_HOME"] = str(home)  # ultralytics settings, service state: all in the scratch home

    wanted = set(args.steps.split(","))

    def step(name: str, fn, *a: Any) -> Any:
        if name not in wanted:
            return None
        t0 = time.perf_counter()
        try:
            with contextlib.redirect_stdout(sys.stderr):  # libraries print; the one JSON line must be alone
                value = fn(*a)
            report["steps"][name] = {"ok": True, "s": round(time.perf_counter() - t0, 1), "result": value}
            write_report(report, args.out)
            return value
        except Exception as exc:
            report["failed"].append(name)
            report["steps"][name] = {"ok": False, "s": round(time.perf_counter() - t0, 1),
                                     "error": f"{type(exc).__name__}: {exc}"[:4000]}
            write_report(report, args.out)
            return None

    try:
        step("env", step_env, device)
        step("plan", step_plan)
        if not (args.skip_tests or args.dry_run):
            step("gpu_tests", step_gpu_tests, 150.0)
        models = step("models", step_models, home, size, device, families)
        if models and set(models["extra"]) == set(device_models.FAMILIES):  # the prepass needs every family
            step("stack", step_stack, home, 4 if args.dry_run else 50)
        if models:
            def partial(done: list[dict]) -> None:
                report["table"] = device_bench.markdown(done)
                report["bench_partial"] = done
                write_report(report, args.out)

            results = step("bench", step_bench, Path(models["registry"]), models["extra"], device, args.dry_run,
                           families, partial)
            report.pop("bench_partial", None)
            if results:
                report["failed"] += [f"bench:{r['family']}" for r in results if "error" in r]
                report["table"] = device_bench.markdown(results)
    finally:
        shutil.rmtree(home, ignore_errors=True)  # the models (GBs at real sizes) and the stack's state
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="folder for device.json and device.md")
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny models, fewer calls: the same code path")
    p.add_argument("--device", default="auto", help="cuda:N, cpu or auto")
    p.add_argument("--skip-tests", action="store_true", help="do not run the gpu-marked tests")
    p.add_argument("--families", help=f"comma list, default all: {','.join(device_models.FAMILIES)}")
    p.add_argument("--steps", default=",".join(STEPS), help=f"comma list, default all: {','.join(STEPS)}")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    report = run(args)
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    write_report(report, args.out)
    print(json.dumps({k: v for k, v in report.items() if k != "table"}))
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
