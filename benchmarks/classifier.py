"""Classifier benchmark: crops/s at batch 1 vs 32, and one Classify call over gRPC vs in-process.

    .venv/bin/python benchmarks/classifier.py [--quick] [--device cpu|cuda:0] [--boxes N]

Builds the tiny CLIP backbone and its head (svc_classifier.tiny) on a small synthetic set in a temp
dir, then times, in this one run:
  * the plain classify function over N boxes of one image at batch 1 and at batch 32 (median of R
    repeats) -> crops/s each and their ratio;
  * the same N-box Classify through the real gRPC server on loopback (image sent once, then by sha)
    against the plain function -> ms per call each and their ratio.
Prints one JSON line. The tiny backbone makes the numbers overhead-bound (preprocessing, Python,
transport): they show batching and transport costs, not what a real CLIP costs on a GPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tator_core.offline import enforce_offline

enforce_offline()


def _boxes(n: int, w: int, h: int) -> list[tuple[float, float, float, float]]:
    import random

    rng = random.Random(0)
    out = []
    for _ in range(n):
        bw, bh = rng.uniform(12, w / 2), rng.uniform(12, h / 2)
        x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
        out.append((x, y, x + bw, y + bh))
    return out


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


async def _grpc_caller(address: str, data: bytes, boxes):
    """An async fn doing one gRPC Classify (the image crosses once: warm-up call here)."""
    from tator_core.client import ServiceClient, image_ref
    from tator_core.convert import boxes_pb
    from tator_core.gen.tator.classifier.v1 import classifier_pb2 as pb
    from tator_core.gen.tator.classifier.v1 import classifier_pb2_grpc as pbg

    client = ServiceClient(address, pbg.ClassifierServiceStub, timeout_s=300)

    async def call() -> float:
        req = pb.ClassifyRequest(image=image_ref(data, with_bytes=False), batch_size=32,
                                 boxes=boxes_pb(boxes))
        t = time.perf_counter()
        resp = await client.call("Classify", req, image_data=data)
        elapsed = time.perf_counter() - t
        assert len(resp.results) == len(boxes) and all(r.ok for r in resp.results)
        return elapsed

    await call()
    return client, call


async def main(args: argparse.Namespace) -> dict:
    import yaml

    from svc_classifier import classify as plain
    from svc_classifier import tiny
    from svc_classifier.runtime import ClassifierRuntime
    from svc_classifier.server import build_spec
    from svc_classifier.settings import ClassifierSettings
    from tator_core.images import decode_image
    from tator_core.server import start_server
    from tator_fixtures.synth import generate

    with tempfile.TemporaryDirectory(prefix="tator-bench-classifier-") as tmp:
        root = Path(tmp)
        generate(root / "synth", seed=0, images=16 if args.quick else 40)
        entries = tiny.build(root / "models", seed=0, dataset_dir=root / "synth")
        (root / "models" / "registry.yaml").write_text(yaml.safe_dump({"models": entries}))
        settings = ClassifierSettings.load([], registry=root / "models" / "registry.yaml", heads_dir=root / "heads",
                                           device=args.device, port=0, metrics_port=-1, batch_size=32)
        runtime = ClassifierRuntime(settings)
        image_path = max((root / "synth" / "val" / "images").glob("*.png"), key=lambda p: p.stat().st_size)
        data = image_path.read_bytes()
        image = decode_image(data)
        boxes = _boxes(args.boxes, image.width, image.height)
        head, backbone = runtime.pair("")
        repeats = 3 if args.quick else 7

        def run(batch: int):
            return lambda: plain.classify(head, backbone.model, image, boxes, backbone_id=backbone.id, batch_size=batch)

        # Alternating the variants within each repeat keeps load drift on a shared machine out of the ratios.
        running = await start_server(build_spec(settings, runtime=runtime), settings)
        try:
            await running.ready.wait()
            client, grpc_call = await _grpc_caller(running.address, data, boxes)
            run(1)()
            times: dict[str, list[float]] = {"b1": [], "b32": [], "rpc": []}
            for _ in range(repeats):
                times["b1"].append(_timed(run(1)))
                times["b32"].append(_timed(run(32)))
                times["rpc"].append(await grpc_call())
            await client.close()
        finally:
            await running.stop()
        b1, b32, rpc = (statistics.median(times[k]) for k in ("b1", "b32", "rpc"))
        import torch

        return {
            "bench": "classifier", "device": runtime.device, "torch_threads": torch.get_num_threads(),
            "backbone": backbone.id, "embedding_dim": backbone.dim, "boxes": len(boxes),
            "image": f"{image.width}x{image.height}", "repeats": repeats, "quick": args.quick,
            "crops_per_s_batch1": round(len(boxes) / b1, 1), "crops_per_s_batch32": round(len(boxes) / b32, 1),
            "batch32_vs_batch1": round(b1 / b32, 2),
            "inproc_ms": round(b32 * 1000, 2), "grpc_ms": round(rpc * 1000, 2),
            "grpc_vs_inproc": round(rpc / b32, 3), "grpc_overhead_ms": round((rpc - b32) * 1000, 2),
            "head_val_accuracy": round(head.val_accuracy or float("nan"), 3),
        }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer boxes and repeats (CI smoke)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda:N or auto")
    parser.add_argument("--boxes", type=int, default=None, help="boxes per call (default 256; 64 with --quick)")
    ns = parser.parse_args()
    ns.boxes = ns.boxes or (64 if ns.quick else 256)
    print(json.dumps(asyncio.run(main(ns))))
