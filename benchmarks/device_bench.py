"""One model family: the library called directly vs the same work through its service.

For each family the service runs in this process (tator_core's real server: interceptor,
protovalidate, image store, device thread) on the registry that device_models.py wrote,
and `benchmarks/load.py`'s closed-loop client drives it at each concurrency. The direct
side calls the model library itself (ultralytics / rfdetr predict, the SAM3 processor and
model, Qwen-VL generate, the CLIP vision tower) on the same device, one image at a time.
The detector is also measured with micro-batching off (max_batch 1, no wait): the other
services batch inside a call (prompts, windows, boxes), not across calls.
"""

from __future__ import annotations

import asyncio
import io
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load as loadbench

SERVICE = {"yolo": "detector", "rfdetr": "detector", "sam3": "sam3", "qwen": "qwen", "clip": "classifier"}
# Per-call work equal on both sides: the direct side has no cache, so the service's cross-call caches that
# can be turned off are (Qwen keeps at least one encoded image: its vision pass is counted once per image).
NO_CACHE = {"sam3": {"vision_cache_mb": 0, "text_cache_items": 0}}
CALLS = {"detector": "tator.detector.v1.DetectorService.Detect", "sam3": "tator.sam3.v1.Sam3Service.SegmentText",
         "qwen": "tator.qwen.v1.QwenService.Caption", "classifier": "tator.classifier.v1.ClassifierService.Embed"}


@dataclass
class Budget:
    """How much to measure: direct calls, and load-client calls per concurrency (at least the concurrency)."""

    direct_calls: int
    service_calls: int
    concurrency: tuple[int, ...] = (1, 8, 32)


def scene_png(side: int, seed: int = 0) -> bytes:
    """A synthetic-world scene resized to side x side, as PNG (what a camera frame costs to decode)."""
    from PIL import Image

    from tator_fixtures.synth import render_scene

    img = render_scene(seed, 3)[0].convert("RGB").resize((side, side), Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _stats(ms: list[float]) -> dict:
    ms = sorted(ms)
    return {"calls": len(ms), "images_per_s": round(1000 * len(ms) / sum(ms), 3) if ms else 0.0,
            "p50_ms": loadbench.percentile(ms, 50), "p95_ms": loadbench.percentile(ms, 95)}


def request_for(family: str, model_id: str, extra: dict) -> Any:
    """The service request that does the direct call's work on one image (named by sha; bytes sent once)."""
    from tator_core.gen.tator.common.v1 import common_pb2 as cpb

    if SERVICE[family] == "detector":
        from tator_core.gen.tator.detector.v1 import detector_pb2 as pb

        return pb.DetectRequest(model_ids=[model_id], mode=pb.DETECT_MODE_FULL, conf=0.25, max_det=300)
    if family == "sam3":
        from tator_core.gen.tator.sam3.v1 import sam3_pb2 as pb

        return pb.SegmentTextRequest(model_id=model_id, labels=[pb.LabelPrompts(label="circle", prompts=["circle"])])
    if family == "qwen":
        from tator_core.gen.tator.qwen.v1 import qwen_pb2 as pb

        return pb.CaptionRequest(model_id=model_id, mode=pb.CAPTION_MODE_FULL,
                                 generation=cpb.GenerationSettings(max_new_tokens=extra["new_tokens"]))
    from tator_core.gen.tator.classifier.v1 import classifier_pb2 as pb

    return pb.EmbedRequest(backbone_id=model_id, include_full_image=True)


def direct_fn(family: str, entry: Any, device: str, extra: dict) -> Callable[[np.ndarray], Any]:
    """The model library called directly on one RGB array."""
    import torch

    if SERVICE[family] == "detector":
        from svc_detector.backends import load_backend

        backend = load_backend(entry, device)
        return lambda arr: backend.predict([arr], conf=0.25, iou=0.45, max_det=300)
    if family == "sam3":
        from svc_sam3.backends.sam3 import Sam3Backend

        b = Sam3Backend.load(entry.path, device, entry.options)

        def sam3(arr: np.ndarray) -> Any:
            with torch.inference_mode():
                inputs = b.processor(images=arr, text="circle", return_tensors="pt")
                out = b.model(pixel_values=inputs["pixel_values"].to(b.device, b.dtype),
                              input_ids=inputs["input_ids"].to(b.device),
                              attention_mask=inputs["attention_mask"].to(b.device))
                return b.processor.post_process_instance_segmentation(
                    out, threshold=0.5, mask_threshold=0.5, target_sizes=[arr.shape[:2]])
        return sam3
    if family == "qwen":
        from svc_qwen.backends.qwen_vl import QwenVL

        q = QwenVL.load(entry.path, device, entry.options)
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe."}]}]
        prompt = q.processor.apply_chat_template(messages, add_generation_prompt=True)

        def qwen(arr: np.ndarray) -> Any:
            with torch.inference_mode():
                inputs = q.processor(text=[prompt], images=[arr], return_tensors="pt").to(q.model.device)
                return q.model.generate(**inputs, max_new_tokens=extra["new_tokens"],
                                        min_new_tokens=extra["new_tokens"], do_sample=False)
        return qwen
    from svc_classifier import backends

    bb = backends.load(entry, device)
    return lambda arr: bb.embed([arr])


async def time_tiles(entry: Any, device: str, calls: int) -> dict:
    """The SAHI tiles of one 4:3 frame twice the model's input side: one batched forward vs tile by tile."""
    from svc_detector.backends import load_backend
    from tator_core.geometry import tile_windows

    backend = load_backend(entry, device)
    side = int(entry.options.get("imgsz") or entry.options.get("resolution") or 640)
    frame = np.random.default_rng(0).integers(0, 256, (side * 3 // 2, side * 2, 3), dtype=np.uint8)
    tiles = [np.ascontiguousarray(frame[int(w.box[1]):int(w.box[3]), int(w.box[0]):int(w.box[2])])
             for w in tile_windows(frame.shape[1], frame.shape[0], side, 0.2)]
    kw = {"conf": 0.25, "iou": 0.45, "max_det": 300}

    def run() -> tuple[list[float], list[float]]:
        backend.predict(tiles, **kw)
        batched, one_by_one = [], []
        for _ in range(max(2, calls // 4)):
            for out, fn in ((batched, lambda: backend.predict(tiles, **kw)),
                            (one_by_one, lambda: [backend.predict([t], **kw) for t in tiles])):
                _sync(device)
                t0 = time.perf_counter()
                fn()
                _sync(device)
                out.append((time.perf_counter() - t0) * 1000)
        return batched, one_by_one

    batched, one_by_one = await asyncio.to_thread(run)
    return {"tiles": len(tiles), "tile_side": side, "batched_ms": round(median(batched), 2),
            "one_by_one_ms": round(median(one_by_one), 2),
            "batched_speedup": round(median(one_by_one) / median(batched), 3)}


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


async def time_direct(fn: Callable[[np.ndarray], Any], arr: np.ndarray, device: str, calls: int) -> dict:
    def run() -> list[float]:
        fn(arr)  # warm: kernels chosen, caches filled
        _sync(device)
        out = []
        for _ in range(calls):
            t0 = time.perf_counter()
            fn(arr)
            _sync(device)
            out.append((time.perf_counter() - t0) * 1000)
        return out

    return _stats(await asyncio.to_thread(run))


async def time_service(family: str, registry: Path, model_id: str, extra: dict, device: str, image: bytes,
                       budget: Budget, overrides: dict | None = None) -> dict:
    """Start the family's service in-process on `registry`, drive it at each concurrency, stop it."""
    import importlib

    svc = SERVICE[family]
    server = importlib.import_module(f"svc_{svc}.server")
    settings_mod = importlib.import_module(f"svc_{svc}.settings")
    settings_cls = next(v for k, v in vars(settings_mod).items() if k.endswith("Settings") and k != "ServiceSettings")
    settings = settings_cls.load([], port=0, metrics_port=-1, device=device, registry=registry, **(overrides or {}))
    from tator_core.server import start_server

    running = await start_server(server.build_spec(settings), settings)
    try:
        await asyncio.wait_for(running.ready.wait(), timeout=600)
        request = request_for(family, model_id, extra)
        request.image.sha256 = loadbench.sha256_hex(image)
        out = {}
        for conc in budget.concurrency:
            res = await loadbench.run_load(running.address, CALLS[svc], request, image=image, concurrency=conc,
                                           total=max(conc, budget.service_calls), timeout_s=600)
            if res["statuses"].get("OK", 0) != res["total"]:
                raise RuntimeError(f"{family} service answered {res['statuses']} {res['reasons']}")
            out[f"c{conc}"] = {k: res[k] for k in ("rps", "p50_ms", "p95_ms", "total")}
        return out
    finally:
        await running.stop(0)


def _gpu_peak_mib(device: str) -> float | None:
    import torch

    if not device.startswith("cuda"):
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)


def _reset_peak(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


async def bench_family(family: str, registry: Path, model_id: str, extra: dict, device: str, image: bytes,
                       budget: Budget) -> dict:
    from tator_core.images import decode_image
    from tator_core.registry import Registry

    entry = Registry.load(registry).get(model_id)
    arr = decode_image(image).array
    _reset_peak(device)
    fn = direct_fn(family, entry, device, extra)
    direct = await time_direct(fn, arr, device, budget.direct_calls)
    if SERVICE[family] == "detector":
        tiles = await time_tiles(entry, device, budget.direct_calls)
    del fn
    service = await time_service(family, registry, model_id, extra, device, image, budget, NO_CACHE.get(family))
    result: dict[str, Any] = {"family": family, "model": model_id, "direct": direct, "service": service}
    if SERVICE[family] == "detector":
        result["tiles"] = tiles
    if SERVICE[family] == "detector":
        result["service_batching_off"] = await time_service(
            family, registry, model_id, extra, device, image, budget, {"max_batch": 1, "max_delay_ms": 0.0})
        on, off = service.get("c8"), result["service_batching_off"].get("c8")
        if on and off and off["rps"]:
            result["batching_speedup_c8"] = round(on["rps"] / off["rps"], 3)
            result["batching_p95_ratio_c8"] = round(on["p95_ms"] / off["p95_ms"], 3) if off["p95_ms"] else None
    c1 = service.get("c1")
    if c1 and direct["images_per_s"]:
        result["service_over_direct_c1"] = round(c1["rps"] / direct["images_per_s"], 3)
    result["gpu_peak_mib"] = _gpu_peak_mib(device)
    return result


def markdown(results: list[dict]) -> str:
    """A short table: one row per family."""
    lines = ["| family | model | direct img/s | direct p50/p95 ms | service c1 / c8 / c32 rps | service c1 p50/p95 ms "
             "| service/direct (c1) | batching x (c8) | tiles batched x | GPU peak MiB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['family']} | {r.get('model', '')} | error: {r['error'][:80]} | | | | | | | |")
            continue
        d, s = r["direct"], r["service"]
        rps = " / ".join(str(s[k]["rps"]) if k in s else "-" for k in ("c1", "c8", "c32"))
        c1 = s.get("c1", {})
        lines.append(f"| {r['family']} | {r['model']} | {d['images_per_s']} | {d['p50_ms']}/{d['p95_ms']} | {rps} | "
                     f"{c1.get('p50_ms', '-')}/{c1.get('p95_ms', '-')} | {r.get('service_over_direct_c1', '-')} | "
                     f"{r.get('batching_speedup_c8', 'n/a')} | {r.get('tiles', {}).get('batched_speedup', 'n/a')} | "
                     f"{r.get('gpu_peak_mib') or '-'} |")
    return "\n".join(lines) + "\n"


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0
