"""Dedupe benchmark: prints ONE JSON line.

    .venv/bin/python benchmarks/dedupe.py [--quick]

Every dedupe (detector/SAM3 NMS, prepass clustering, the calibration's evaluation) is one greedy
walk, `tator_core.geometry.greedy_groups`, with the caller's overlap rule. Measured in one run,
each as the best of a few repeats:
- threshold tuning (`tune_thresholds`, where evaluation runs once per candidate threshold) on the
  calibration benchmark's synthetic prepass results, with the shared walk against the plain
  per-item loop (tests/dedupe_reference.py) swapped in for `dedupe_frame`;
- `nms_keep` against torchvision's `batched_nms` (C++) on random detector-like pools;
- `greedy_clusters` against the plain loop over a torchvision IoU matrix.
Ratios are shared walk / reference: above 1 is slower.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TATOR_HOME", tempfile.mkdtemp(prefix="tator-bench-"))

from tator_core.offline import enforce_offline

enforce_offline()

import numpy as np
import torch
from torchvision.ops import batched_nms


def best_of(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


async def calibration_table(images: int):
    from svc_orchestrator.calibration.candidates import build_table
    from svc_orchestrator.calibration.inputs import PrepassChoice
    from svc_orchestrator.calibration.simulate import SimulatedEnv
    from svc_orchestrator.datasets import DatasetCatalog
    from tator_fixtures.synth import generate

    root = Path(tempfile.mkdtemp(prefix="tator-dedupebench-"))
    generate(root / "synth", seed=0, images=images)
    ds = DatasetCatalog(root).get("synth")
    env = SimulatedEnv(ds, seed=0)
    per_image = []
    for item in ds.items():
        res = await env.prepass(ds, item, PrepassChoice())
        per_image.append((item.name, [(c.label, c.box, c.score, c.sources) for c in res.candidates],
                          [(g.label, g.box) for g in ds.ground_truth(item)]))
    return build_table(per_image), list(ds.labelmap)


def tuning(images: int, repeats: int) -> dict:
    from svc_orchestrator.calibration import evaluate as ev
    from svc_orchestrator.calibration.thresholds import tune_thresholds
    from tests.dedupe_reference import reference_dedupe_frame

    table, labelmap = asyncio.run(calibration_table(images))
    probs = np.random.default_rng(0).random(len(table))  # spread thresholds like a model's probabilities
    rows = np.ones(len(table), dtype=bool)

    def run() -> dict:
        return tune_thresholds(table, table.frames, probs, rows, labelmap=labelmap)

    shared = ev.dedupe_frame

    def with_reference() -> dict:
        ev.dedupe_frame = reference_dedupe_frame
        try:
            return run()
        finally:
            ev.dedupe_frame = shared

    # Alternate the two, so a neighbour's load on the machine lands on both alike.
    ref_s, shared_s = [], []
    for _ in range(repeats):
        ref_s.append(best_of(with_reference, 1))
        shared_s.append(best_of(run, 1))
    want, got = with_reference(), run()
    out = {"candidates": len(table), "images": images, "reference_s": round(min(ref_s), 4),
           "shared_s": round(min(shared_s), 4),
           "same_thresholds": {k: v.threshold for k, v in got.items()} == {k: v.threshold for k, v in want.items()}}
    out["ratio"] = round(out["shared_s"] / out["reference_s"], 3)
    return out


def pool(rng: random.Random, n: int, labels: int):
    from tator_core.geometry import Scored
    out = []
    for _ in range(n):
        x, y, w, h = rng.uniform(0, 4000), rng.uniform(0, 3000), rng.uniform(5, 300), rng.uniform(5, 300)
        out.append(Scored((x, y, x + w, y + h), rng.random(), str(rng.randrange(labels))))
    return out


def nms(repeats: int, sizes: list[tuple[int, int]]) -> list[dict]:
    from tator_core.geometry import nms_keep
    rng, out = random.Random(0), []
    for n, labels in sizes:
        items = pool(rng, n, labels)

        def reference(items=items) -> list[int]:
            boxes = torch.tensor([it.box for it in items], dtype=torch.float32)
            scores = torch.tensor([it.score for it in items], dtype=torch.float32)
            ids = torch.tensor([int(it.label) for it in items])
            return batched_nms(boxes, scores, ids, 0.5).tolist()

        same = reference() == nms_keep(items, 0.5)
        ref, shared = best_of(reference, repeats), best_of(lambda items=items: nms_keep(items, 0.5), repeats)
        out.append({"boxes": n, "labels": labels, "same_keep": same, "torchvision_ms": round(ref * 1000, 2),
                    "shared_ms": round(shared * 1000, 2), "ratio": round(shared / ref, 3)})
    return out


def clusters(repeats: int, n: int) -> dict:
    from tator_core.geometry import greedy_clusters, iou_matrix
    from tests.dedupe_reference import reference_groups
    items = pool(random.Random(1), n, 5)

    def reference() -> list[list[int]]:
        order = sorted(range(len(items)), key=lambda i: -items[i].score)
        ious = iou_matrix([it.box for it in items], [it.box for it in items])
        return reference_groups(order, lambda h, i: items[h].label == items[i].label and float(ious[h, i]) >= 0.5)

    same = reference() == greedy_clusters(items, 0.5)
    ref, shared = best_of(reference, repeats), best_of(lambda: greedy_clusters(items, 0.5), repeats)
    return {"items": n, "same_groups": same, "reference_ms": round(ref * 1000, 2), "shared_ms": round(shared * 1000, 2),
            "ratio": round(shared / ref, 3)}


def main(quick: bool) -> dict:
    repeats = 3 if quick else 7
    return {"benchmark": "dedupe", "quick": quick,
            "threshold_tuning": tuning(48 if quick else 160, repeats),
            "nms": nms(repeats, [(300, 5), (2000, 10)] if quick else [(300, 5), (2000, 10), (10000, 20), (10000, 1)]),
            "clusters": clusters(repeats, 300 if quick else 1000)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images, sizes and repeats")
    args = parser.parse_args()
    print(json.dumps(main(args.quick), sort_keys=True))
