"""Qwen service benchmark: caption latency full vs windowed (2x2), tokens/s, image-first reuse.

Builds the tiny random-init Qwen2.5-VL (or --arch qwen3_vl), starts the real service in-process on
CPU, and calls it over gRPC. Cold runs use a new image each time, so every run pays the vision tower;
the warm full run repeats an image and shows the feature reuse. The merge pass only runs when some
window caption is usable, which random bytes never are, so its cost is measured separately on the
same model with a merge prompt of four window captions. Prints one JSON line.

    .venv/bin/python benchmarks/qwen.py [--quick] [--arch qwen2_5_vl|qwen3_vl] [--tokens N]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TATOR_HOME", tempfile.mkdtemp(prefix="tator_bench_qwen_"))

from tator_core.offline import enforce_offline

enforce_offline()


def scene(seed: int, w: int = 640, h: int = 480) -> bytes:
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    img = Image.fromarray((rng.random((h, w, 3)) * 50).astype("uint8"))
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x, y, s = int(rng.integers(0, w - 80)), int(rng.integers(0, h - 80)), int(rng.integers(24, 80))
        draw.ellipse((x, y, x + s, y + s), fill=tuple(int(c) for c in rng.integers(120, 255, 3)))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def gen_ms(resp) -> float:
    from tator_core.timestamps import milliseconds

    return sum(milliseconds(s.compute) for s in resp.timing.stages if s.stage in ("generate", "merge"))


async def run(args: argparse.Namespace) -> dict:
    import yaml

    from svc_qwen import tiny
    from svc_qwen.backends.qwen_vl import GenSettings, QwenVL
    from svc_qwen.prompts import Vocabulary, merge_instruction, merge_prompt
    from svc_qwen.server import build_spec
    from svc_qwen.settings import QwenSettings
    from tator_core.client import ServiceClient, image_ref
    from tator_core.gen.tator.common.v1 import common_pb2 as cpb
    from tator_core.gen.tator.qwen.v1 import qwen_pb2 as pb
    from tator_core.gen.tator.qwen.v1 import qwen_pb2_grpc as pbg
    from tator_core.server import start_server
    from tator_core.timestamps import milliseconds

    models = Path(tempfile.mkdtemp(prefix="qwen_bench_models_"))
    entries = tiny.build(models, arch=args.arch)
    entries[0]["default"] = True
    (models / "registry.yaml").write_text(yaml.safe_dump({"models": entries}))
    settings = QwenSettings.load([], registry=models / "registry.yaml", device="cpu")
    running = await start_server(build_spec(settings), settings)
    await running.ready.wait()
    client = ServiceClient(running.address, pbg.QwenServiceStub, timeout_s=600)
    gen = cpb.GenerationSettings(max_new_tokens=args.tokens)
    glossary = json.dumps({"circle": ["disc", "ring"], "light_vehicle": ["car"]})

    async def caption(data: bytes, windowed: bool):
        req = pb.CaptionRequest(image=image_ref(data, with_bytes=False), generation=gen, glossary=glossary,
                                avoid_labels=["circle", "light_vehicle"],
                                mode=pb.CAPTION_MODE_WINDOWED if windowed else pb.CAPTION_MODE_FULL)
        if windowed:
            req.windows.CopyFrom(cpb.WindowSpec(grid=cpb.GridSpec(cols=2, rows=2)))
        t0 = time.perf_counter()
        resp = await client.call("Caption", req, image_data=data)
        return (time.perf_counter() - t0) * 1000, resp

    try:
        await caption(scene(10_000), False)  # warm the code paths
        full, windowed, warm = [], [], []
        tokens = {"full": 0, "windowed": 0}
        spent_ms = {"full": 0.0, "windowed": 0.0}
        encode_ms = {"full": [], "windowed": []}
        for i in range(args.repeats):
            data = scene(i)
            ms, resp = await caption(data, False)
            full.append(ms)
            tokens["full"] += resp.generated_tokens
            spent_ms["full"] += gen_ms(resp)
            encode_ms["full"].append(sum(milliseconds(s.compute) for s in resp.timing.stages if s.stage == "encode"))
            ms, resp = await caption(data, False)  # same image: vision features reused
            warm.append(ms)
            ms, resp = await caption(scene(1000 + i), True)
            windowed.append(ms)
            tokens["windowed"] += resp.generated_tokens
            spent_ms["windowed"] += gen_ms(resp)
            encode_ms["windowed"].append(sum(milliseconds(s.compute) for s in resp.timing.stages if s.stage == "encode"))
        syn_req = pb.ExpandSynonymsRequest(labels=["circle", "square", "light_vehicle"], glossary=glossary,
                                           generation=cpb.GenerationSettings(max_new_tokens=args.tokens))
        t0 = time.perf_counter()
        syn = await client.call("ExpandSynonyms", syn_req)
        syn_ms = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        await client.call("ExpandSynonyms", syn_req)
        syn_cached_ms = (time.perf_counter() - t0) * 1000
    finally:
        await client.close()
        await running.stop()

    # The merge pass, on the same model and thread setting as the service, with four plausible window captions.
    import torch

    torch.set_num_threads(settings.cpu_threads or torch.get_num_threads())
    backend = QwenVL.load(models / entries[0]["path"])
    vocab = Vocabulary.build(["circle", "light_vehicle"], {"circle": ["disc", "ring"], "light_vehicle": ["car"]})
    windows = [(n, "Two bright round discs on a dark noisy background, one near the top edge.")
               for n in ("A1", "B1", "A2", "B2")]
    prompt = merge_prompt(merge_instruction(vocab, []), windows)
    merge_runs = []
    for _ in range(max(2, args.repeats // 2)):
        t0 = time.perf_counter()
        out = backend.generate([(prompt, None)], GenSettings(args.tokens))[0]
        merge_runs.append(((time.perf_counter() - t0) * 1000, out.tokens))
    merge_ms = statistics.median(m for m, _ in merge_runs)

    med = statistics.median
    return {
        "benchmark": "qwen", "arch": args.arch, "device": "cpu", "image": "640x480", "repeats": args.repeats,
        "max_new_tokens": args.tokens,
        "caption_full_ms": round(med(full), 1),
        "caption_full_same_image_ms": round(med(warm), 1),
        "caption_windowed_2x2_ms": round(med(windowed), 1),
        "windowed_over_full": round(med(windowed) / med(full), 2),
        "merge_pass_ms": round(merge_ms, 1),
        "windowed_with_merge_estimate_ms": round(med(windowed) + merge_ms, 1),
        "feature_reuse_speedup": round(med(full) / med(warm), 2),
        "encode_full_ms": round(med(encode_ms["full"]), 1),
        "encode_4_windows_ms": round(med(encode_ms["windowed"]), 1),
        "tokens_per_s_full": round(tokens["full"] / (spent_ms["full"] / 1000), 1),
        "tokens_per_s_windows_batch4": round(tokens["windowed"] / (spent_ms["windowed"] / 1000), 1),
        "tokens_per_s_merge": round(sum(t for _, t in merge_runs) / (sum(m for m, _ in merge_runs) / 1000), 1),
        "synonyms_ms": round(syn_ms, 1), "synonyms_cached_ms": round(syn_cached_ms, 2),
        "synonym_origins": sorted({lt.origin for lt in syn.labels}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and tokens")
    parser.add_argument("--arch", choices=("qwen2_5_vl", "qwen3_vl"), default="qwen2_5_vl")
    parser.add_argument("--tokens", type=int, default=None, help="max_new_tokens per pass (default 64, quick 24)")
    parser.add_argument("--repeats", type=int, default=None, help="runs per measurement (default 7, quick 3)")
    args = parser.parse_args()
    args.tokens = args.tokens or (24 if args.quick else 64)
    args.repeats = args.repeats or (3 if args.quick else 7)
    print(json.dumps(asyncio.run(run(args))), flush=True)


if __name__ == "__main__":
    main()
