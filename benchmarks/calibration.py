"""Calibration benchmark: prints ONE JSON line.

    .venv/bin/python benchmarks/calibration.py [--quick]

Runs the calibration job (`run_calibration`, MLP + XGBoost) on a synthetic dataset with the seeded
prepass simulator standing in for the model services (the services have their own benchmarks; this one
measures what the calibration package itself costs and gives). Measured in one run:
- wall time of each step (features, fits, threshold tuning, test evaluation) and of the whole job;
- the event loop's worst stall while the job runs (a 5 ms ticker; prepass answered from the
  simulator's cache, libraries imported before), against the time one XGBoost fit would block the
  loop if it ran on it (ratio: what the worker thread buys);
- test-split F1 of each model, of the best single source and of accept-all (ratios model / source);
- object-level evaluations per second on the test split, and `apply_accept_model` ms per image
  (what a Prepass with a calibration id adds).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TATOR_HOME", tempfile.mkdtemp(prefix="tator-bench-"))

from tator_core.enums import source_name
from tator_core.offline import enforce_offline

enforce_offline()

import numpy as np


async def _ticker(gaps: list[float], stop: asyncio.Event, period: float = 0.005) -> None:
    last = time.perf_counter()
    while not stop.is_set():
        await asyncio.sleep(period)
        now = time.perf_counter()
        gaps.append(now - last - period)
        last = now


async def main(quick: bool) -> dict:
    from svc_orchestrator.calibration import apply_accept_model, run_calibration
    from svc_orchestrator.calibration import models as mdl
    from svc_orchestrator.calibration.candidates import build_table
    from svc_orchestrator.calibration.evaluate import evaluate
    from svc_orchestrator.calibration.inputs import PrepassChoice
    from svc_orchestrator.calibration.simulate import SimulatedEnv
    from svc_orchestrator.convert.calibration import calibration_request
    from svc_orchestrator.convert.calibration_report import method_name, save_report_pb
    from svc_orchestrator.datasets import DatasetCatalog
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
    from tator_fixtures.synth import generate

    images = 48 if quick else 160
    root = Path(tempfile.mkdtemp(prefix="tator-calbench-"))
    generate(root / "synth", seed=0, images=images)
    ds = DatasetCatalog(root).get("synth")
    env = SimulatedEnv(ds, seed=0)
    job_dir = root / "job"
    # The simulator computes on the event loop (the real prepass awaits gRPC), so warm its cache first:
    # the stalls measured below are then the calibration's own. Likewise the one-time imports of the
    # fitting and plotting libraries are timed separately.
    for item in ds.items():
        await env.prepass(ds, item, PrepassChoice())
    t = time.perf_counter()
    for module in ("matplotlib.backends.backend_agg", "matplotlib.figure", "sklearn.metrics", "xgboost"):
        importlib.import_module(module)
    first_use_imports_s = time.perf_counter() - t

    async def progress(done: int, total: int, message: str) -> None:
        return None

    gaps: list[float] = []
    stop = asyncio.Event()
    tick = asyncio.create_task(_ticker(gaps, stop))
    t0 = time.perf_counter()
    config = calibration_request(pb.CalibrationConfig(model=pb.CALIBRATION_MODEL_BOTH, seed=0))
    doc = await run_calibration(env, ds, config, job_id="bench", job_dir=job_dir, progress=progress,
                                cancelled=lambda: False)
    wall = time.perf_counter() - t0
    rep = save_report_pb(job_dir, doc)
    stop.set()
    await tick
    doc = json.loads((job_dir / "report.json").read_text())
    at = {method_name(r.method, source_name(r.source)): r.overall.f1 for r in rep.results if r.eval_iou == 0.5}
    best = next(m for m in at if m.startswith("best_single_source:"))

    # What one fit would block the loop for, on the same features.
    data = np.load(job_dir / "features.npz")
    X, y = data["X"], data["y"]
    n = len(y)
    cut = int(n * 0.6)
    t = time.perf_counter()
    mdl.fit_xgb(X[:cut], y[:cut], X[cut:], y[cut:], seed=0)
    xgb_block = time.perf_counter() - t

    # Object-level evaluation speed on the test split (accept everything, fixed frames).
    test = set(doc["split"]["images"]["test"])
    per_image = []
    for name in sorted(test):
        res = await env.prepass(ds, ds.item(name), PrepassChoice())
        per_image.append((name, res))
    table = build_table([(name, [(c.label, c.box, c.score, c.sources) for c in res.candidates],
                          [(g.label, g.box) for g in ds.ground_truth(ds.item(name))]) for name, res in per_image])
    accept = np.ones(len(table), dtype=bool)
    reps = 20 if quick else 50
    t = time.perf_counter()
    for _ in range(reps):
        evaluate(table, table.frames, accept, table.scores, labelmap=ds.labelmap)
    eval_per_s = reps / (time.perf_counter() - t)

    apply_accept_model(job_dir, per_image[0][1])  # load + cache the model once
    lat = []
    for _, res in per_image:
        t = time.perf_counter()
        apply_accept_model(job_dir, res)
        lat.append((time.perf_counter() - t) * 1000)

    timing = doc["timing"]
    max_gap_ms = max(gaps) * 1000 if gaps else 0.0
    return {
        "benchmark": "calibration", "quick": quick, "images": images, "candidates": doc["prepass"]["candidates"],
        "feature_width": doc["feature_schema"]["width"], "split": doc["split"]["sizes"],
        "job_wall_s": round(wall, 3), "first_use_imports_s": round(first_use_imports_s, 3), "step_s": {k: v for k, v in timing.items() if k != "total"},
        "loop_max_stall_ms": round(max_gap_ms, 1),
        "loop_p99_stall_ms": round(float(np.percentile(gaps, 99)) * 1000, 1) if gaps else 0.0,
        "xgb_fit_if_on_loop_ms": round(xgb_block * 1000, 1),
        "stall_ratio_thread_vs_on_loop": round(max_gap_ms / (xgb_block * 1000), 3) if xgb_block else None,
        "f1": {"mlp": round(at["mlp"], 4), "xgb": round(at["xgb"], 4), "accept_all": round(at["accept_all"], 4),
               best: round(at[best], 4)},
        "ratio_mlp_vs_best_source": round(at["mlp"] / at[best], 3) if at[best] else None,
        "ratio_xgb_vs_best_source": round(at["xgb"] / at[best], 3) if at[best] else None,
        "test_evaluations_per_s": round(eval_per_s, 1),
        "apply_ms_per_image_median": round(statistics.median(lat), 2),
        "apply_ms_per_image_max": round(max(lat), 2),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="48 images instead of 160")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.quick)), sort_keys=True))
