"""Detector benchmark: prints ONE JSON line.

    .venv/bin/python benchmarks/detector.py [--quick] [--device cpu]

Measured in one run, on the same model and images:
- FULL vs TILED images/s (in-process `detect()`, one large scene);
- the tiles of one image in one forward vs tile by tile (ratio of times);
- the same Detect call over gRPC (loopback, image cached by sha) vs in-process (ratio of latencies);
- micro-batching on (max_delay_ms 5, max_batch 8) vs off (0, 1) at concurrency 8 over gRPC:
  throughput and p95 latency.

The model is the committed YOLO fixture (tests/fixtures/models/yolo-synth/best.pt, yolov8n at imgsz 160).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import yaml

from tator_fixtures import LABELMAP, YOLO_FIXTURE

MODEL_ID = "yolo-bench"
SEED = 11
LARGE, SMALL = 7, 0  # scene indexes
TILE = 256


def scene_png(index: int) -> bytes:
    """A synthetic-world scene as PNG bytes (index 7 is a large one with small objects, 0 a small one)."""
    from tator_fixtures.synth import render_scene

    buf = io.BytesIO()
    render_scene(SEED, index)[0].save(buf, format="PNG")
    return buf.getvalue()


def registry(models_dir: Path) -> Path:
    out = models_dir / MODEL_ID / "best.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(YOLO_FIXTURE.read_bytes())
    entry = {"id": MODEL_ID, "family": "yolo", "path": f"{MODEL_ID}/best.pt", "labelmap": list(LABELMAP),
             "default": True, "options": {}}
    path = models_dir / "registry.yaml"
    path.write_text(yaml.safe_dump({"models": [entry]}))
    return path


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95)) if values else 0.0


def med(values: list[float]) -> float:
    return statistics.median(values)


async def paired(fa, fb, n: int) -> tuple[list[float], list[float]]:
    """Time fa and fb alternately, so drift in a shared machine's load hits both alike."""
    a: list[float] = []
    b: list[float] = []
    for _ in range(n):
        for fn, out in ((fa, a), (fb, b)):
            t0 = time.perf_counter()
            await fn()
            out.append((time.perf_counter() - t0) * 1000)
    return a, b


async def block(fn, n: int, warm: int = 3) -> list[float]:
    """Time fn n times after a pause (idle OpenMP threads of the other side stop spinning) and a few
    untimed calls."""
    await asyncio.sleep(0.5)
    for _ in range(warm):
        await fn()
    return (await paired(fn, _noop, n))[0]


async def _noop() -> None:
    return None


async def measure(reg: Path, device: str, n: int, rounds: int, per_worker: int, concurrency: int = 8) -> dict:
    from svc_detector.detect import detect
    from svc_detector.models import DetectorModels
    from svc_detector.params import DetectParams
    from svc_detector.server import build_spec
    from svc_detector.settings import DetectorSettings
    from tator_core.client import ServiceClient, image_ref
    from tator_core.gen.tator.detector.v1 import detector_pb2 as pb
    from tator_core.gen.tator.detector.v1 import detector_pb2_grpc
    from tator_core.geometry import tile_windows
    from tator_core.images import decode_image
    from tator_core.registry import Registry
    from tator_core.server import start_server

    # In process: the plain detect() with batching off (no waiting for companions).
    manager = DetectorModels(Registry.load(reg, {"yolo"}), device, DetectorSettings(max_delay_ms=0))
    backend = await manager.load(MODEL_ID)
    large = decode_image(scene_png(LARGE))
    full, tiled = DetectParams(mode="full"), DetectParams(mode="tiled", tile_size=TILE, overlap=0.2)
    for params in (full, tiled):  # warm both shapes
        await detect(large, [MODEL_ID], params, manager)
    full_ms, tiled_ms = await paired(lambda: detect(large, [MODEL_ID], full, manager),
                                     lambda: detect(large, [MODEL_ID], tiled, manager), n)

    tiles = [large.crop(w.box) for w in tile_windows(large.width, large.height, TILE, 0.2)]
    kw = {"conf": 0.45, "iou": 0.45, "max_det": 300}
    loop = asyncio.get_running_loop()
    run = lambda f: loop.run_in_executor(manager.executor, f)  # the device thread, as in serving
    batched_ms, one_by_one_ms = await paired(lambda: run(lambda: backend.predict(tiles, **kw)),
                                             lambda: run(lambda: [backend.predict([t], **kw) for t in tiles]), n)

    # Over gRPC: one server with micro-batching on, one with it off, both up for the whole run.
    data = scene_png(SMALL)
    small = decode_image(data)
    servers, clients = {}, {}
    for label, delay, batch in (("on", 5.0, 8), ("off", 0.0, 1)):
        settings = DetectorSettings.load([], port=0, device=device, registry=reg, max_delay_ms=delay, max_batch=batch)
        servers[label] = await start_server(build_spec(settings), settings)
        await servers[label].ready.wait()
        clients[label] = [ServiceClient(servers[label].address, detector_pb2_grpc.DetectorServiceStub)
                          for _ in range(concurrency)]

    def call(c: ServiceClient):
        req = pb.DetectRequest(image=image_ref(data, with_bytes=False), model_ids=[MODEL_ID])
        return c.call("Detect", req, image_data=data)

    for cs in clients.values():
        for c in cs:
            await call(c)  # the bytes go once per client
    # Same call, same batching settings (off) on both sides: the difference is the transport. Timed in blocks,
    # not call by call: the two sides compute on different threads, and switching torch's OpenMP team between
    # threads on every call costs more than the transport itself (a service has one device thread).
    local_ms, grpc_ms = [], []
    for _ in range(4):  # alternate blocks, so drift in the shared machine's load hits both sides alike
        local_ms += await block(lambda: detect(small, [MODEL_ID], full, manager), n)
        grpc_ms += await block(lambda: call(clients["off"][0]), n)

    lat: dict[str, list[float]] = {"on": [], "off": []}
    wall = {"on": 0.0, "off": 0.0}

    async def worker(c: ServiceClient, out: list[float]) -> None:
        for _ in range(per_worker):
            t0 = time.perf_counter()
            await call(c)
            out.append((time.perf_counter() - t0) * 1000)

    for _ in range(rounds):
        for label in ("on", "off"):
            t0 = time.perf_counter()
            await asyncio.gather(*(worker(c, lat[label]) for c in clients[label]))
            wall[label] += time.perf_counter() - t0
    for label in ("on", "off"):
        for c in clients[label]:
            await c.close()
        await servers[label].stop()
    await manager.close()

    rps = {k: len(lat[k]) / wall[k] for k in lat}
    return {
        "imgsz": int(backend.extra["imgsz"]),
        "full_images_per_s": round(1000 / med(full_ms), 2),
        "tiled_images_per_s": round(1000 / med(tiled_ms), 2),
        "tiles_per_image": len(tiles),
        "tiles_batched_ms": round(med(batched_ms), 2),
        "tiles_one_by_one_ms": round(med(one_by_one_ms), 2),
        "tiles_batched_speedup": round(med(one_by_one_ms) / med(batched_ms), 3),
        "small_image": f"{small.width}x{small.height}",
        "large_image": f"{large.width}x{large.height}",
        "in_process_ms": round(med(local_ms), 2),
        "grpc_ms": round(med(grpc_ms), 2),
        "grpc_over_in_process": round(med(grpc_ms) / med(local_ms), 3),
        "concurrency": concurrency,
        "microbatch_on_rps": round(rps["on"], 2),
        "microbatch_on_p95_ms": round(p95(lat["on"]), 2),
        "microbatch_off_rps": round(rps["off"], 2),
        "microbatch_off_p95_ms": round(p95(lat["off"]), 2),
        "microbatch_throughput_ratio": round(rps["on"] / rps["off"], 3),
    }


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (CI smoke)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    n, rounds, per_worker = (3, 1, 3) if args.quick else (10, 3, 4)
    from tator_core.offline import enforce_offline
    from tator_core.settings import resolve_device

    device = resolve_device(args.device)
    # ultralytics prints to stdout; the one JSON line must be alone there.
    with contextlib.redirect_stdout(sys.stderr), tempfile.TemporaryDirectory(prefix="tator-bench-") as tmp:
        os.environ["TATOR_HOME"] = tmp  # ultralytics' settings file lands here, not in ~/.config
        enforce_offline()
        reg = registry(Path(tmp) / "models")
        numbers = await measure(reg, device, n, rounds, per_worker)
    print(json.dumps({"bench": "detector", "device": device, "model": "yolo-synth fixture", "quick": args.quick,
                      "tile": TILE, **numbers}))


if __name__ == "__main__":
    asyncio.run(main())
