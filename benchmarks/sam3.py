"""SAM3 benchmark: prints ONE JSON line.

    .venv/bin/python benchmarks/sam3.py [--quick] [--device cpu]

Measured in one run, on the same model, images and prompts (labels + glossary synonyms of the
synthetic world; every image gets the same prompts twice, as a prepass and a repeat would; the
prompt-first baseline has nothing to reuse, so it runs each image once):
- prompts/s without the embedding cache (prompt-first: one full `Sam3Model` forward per prompt, image
  preprocessing and vision encoder included: what calling the model per prompt costs) vs the service's
  image-first engine (vision embedding once per image, text embeddings cached, prompts batched);
- the same engine with batch 1 (cache alone) and with the caches kept for one call only (no reuse
  across calls), to split the gain between batching, in-call reuse and cross-call reuse;
- windowed (full + 2x2 grid) vs full frame only: ms per first call (nothing cached yet).

Modes are interleaved call by call, so load from other processes on a shared machine spreads over
all of them; the ratios come from one run.

The model is the tiny seeded random-init SAM3 (svc_sam3.tiny): its vision encoder is cheap next to
its prompt heads, so the cache gains here are a floor; a real SAM3's ViT-L at 1008 px dominates a
prompt run and the ratio grows with it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TATOR_HOME", tempfile.mkdtemp(prefix="tator-bench-"))

from tator_core.offline import enforce_offline

enforce_offline()

import yaml

from svc_sam3 import segment, tiny
from svc_sam3.models import FAMILY, make_repository
from svc_sam3.settings import Sam3Settings
from tator_core.gen.tator.common.v1 import common_pb2
from tator_core.images import decode_image
from tator_core.registry import Registry
from tator_fixtures import FUZZ_PACK_DIR

GLOSSARY = {"circle": ["circle", "disc", "ring"], "square": ["square", "box", "block"],
            "triangle": ["triangle", "wedge", "delta"]}


def load_images(n: int) -> list:
    paths = sorted((FUZZ_PACK_DIR / "images").glob("*.png"))[:n]
    if not paths:
        raise SystemExit(f"no fuzz-pack images under {FUZZ_PACK_DIR}")
    return [decode_image(p.read_bytes()) for p in paths]


class Mode:
    """One way of serving a text call; accumulates its own time and counters."""

    def __init__(self, name: str, fn, every_call: bool = True) -> None:
        self.name, self.fn, self.every_call = name, fn, every_call
        self.wall = 0.0
        self.calls = self.prompt_runs = self.vision = self.detections = 0

    def run(self, img) -> None:
        started = time.perf_counter()
        runs, vision, dets = self.fn(img)
        self.wall += time.perf_counter() - started
        self.calls += 1
        self.prompt_runs += runs
        self.vision += vision
        self.detections += dets

    def report(self) -> dict:
        return {"calls": self.calls, "prompt_runs": self.prompt_runs, "wall_s": round(self.wall, 3),
                "prompts_per_s": round(self.prompt_runs / self.wall, 2),
                "ms_per_call": round(self.wall * 1000 / self.calls, 1), "vision_computed": self.vision,
                "detections": self.detections}


def engine_mode(name: str, models, entry, prompts, device: str, windows=None, every_call: bool = True,
                **overrides) -> Mode:
    eng = segment.Engine(Sam3Settings(device=device, **overrides), models)
    labels = list(prompts.items())

    def call(img) -> tuple[int, int, int]:
        plan = segment.plan_text(entry, img, labels, windows, segment.Options(segment.TEXT_SCORE), cap=10_000)
        res = eng.run_text(plan)
        return res.stats.prompt_runs, res.stats.vision_embeddings_computed, len(res.detections)

    return Mode(name, call, every_call)


def prompt_first_mode(backend, prompts) -> Mode:
    """No cache: one full forward per prompt, the way a plain `model(**processor(image, text))` loop runs.

    It has nothing to reuse, so one call per image measures its rate (every_call=False).
    """
    import torch

    texts = [p for ps in prompts.values() for p in ps]

    def call(img) -> tuple[int, int, int]:
        dets = 0
        with torch.inference_mode():
            for text in texts:
                inputs = backend.processor(images=img.array.copy(), text=text, return_tensors="pt")
                out = backend.model(pixel_values=inputs["pixel_values"].to(backend.device, backend.dtype),
                                    input_ids=inputs["input_ids"].to(backend.device),
                                    attention_mask=inputs["attention_mask"].to(backend.device))
                res = backend.processor.post_process_instance_segmentation(
                    out, threshold=segment.TEXT_SCORE, mask_threshold=segment.MASK_THRESHOLD,
                    target_sizes=[(img.height, img.width)])
                dets += len(res[0]["scores"])
        return len(texts), len(texts), dets

    return Mode("cache_off_prompt_first", call, every_call=False)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer images and prompts (a smoke run)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    from tator_core.settings import resolve_device

    device = resolve_device(args.device)
    n_images, calls = (2, 2) if args.quick else (4, 2)
    prompts = {k: v[:2] for k, v in GLOSSARY.items()} if args.quick else GLOSSARY

    root = Path(tempfile.mkdtemp(prefix="sam3-bench-"))
    (root / "registry.yaml").write_text(yaml.safe_dump({"models": tiny.build(root, seed=0)}))
    models = make_repository(Registry.load(root / "registry.yaml", families={FAMILY}), device)
    entry = models.entry(models.resolve("", FAMILY))
    backend = asyncio.run(models.load(entry.id))
    images = load_images(n_images)
    grid = common_pb2.WindowSpec(grid=common_pb2.GridSpec(cols=2, rows=2), include_full=True)

    # warm every code path once so first-call overheads do not land in one mode
    engine_mode("warm", models, entry, {"circle": ["circle"]}, device, windows=grid).run(images[0])
    prompt_first_mode(backend, {"circle": ["circle"]}).run(images[0])

    modes = [
        prompt_first_mode(backend, prompts),
        engine_mode("cache_on_image_first", models, entry, prompts, device),
        engine_mode("cache_on_batch1", models, entry, prompts, device, prompt_batch=1),
        engine_mode("cache_per_call_only", models, entry, prompts, device, vision_cache_mb=0, text_cache_items=0),
        # first calls only: compared with cache_per_call_only, whose every call is a first call
        engine_mode("windowed_2x2_plus_full", models, entry, prompts, device, windows=grid, every_call=False),
    ]
    # Interleaved: every mode serves the same call before the next call starts (order rotated), so
    # on a shared machine a burst of load from elsewhere hits all modes alike instead of one.
    k = 0
    for img in images:
        for c in range(calls):
            for mode in modes[k % len(modes):] + modes[:k % len(modes)]:
                if c == 0 or mode.every_call:
                    mode.run(img)
            k += 1
    r = {m.name: m.report() for m in modes}

    def ratio(a: str, b: str, key: str = "prompts_per_s") -> float:
        return round(r[a][key] / r[b][key], 2)

    print(json.dumps({
        "benchmark": "sam3", "quick": args.quick, "device": device, "model": entry.id,
        "images": len(images), "prompts_per_call": sum(len(v) for v in prompts.values()), "calls_per_image": calls,
        **r,
        "ratio_prompts_per_s_cache_on_vs_off": ratio("cache_on_image_first", "cache_off_prompt_first"),
        "ratio_prompts_per_s_cache_on_batch1_vs_off": ratio("cache_on_batch1", "cache_off_prompt_first"),
        "ratio_prompts_per_s_cross_call_reuse": ratio("cache_on_image_first", "cache_per_call_only"),
        "ratio_ms_per_call_windowed_vs_full": ratio("windowed_2x2_plus_full", "cache_per_call_only", "ms_per_call"),
        "vision_embeddings": {m: r[m]["vision_computed"] for m in r},
    }))


if __name__ == "__main__":
    main()
