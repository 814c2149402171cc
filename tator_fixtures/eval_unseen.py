"""Detection quality on synthetic worlds nothing was trained or tuned on: prints ONE JSON line.

    python -m tator_fixtures.eval_unseen [--seeds 101 102 103] [--images 200] [--sam3/--no-sam3]

With the stack up (`tator up`), for each seed it does what a user would: `tator data synth --seed N
--out $TATOR_HOME/data/unseen-N`, then `tator calibrate --dataset unseen-N --json`, and reads the report:
calibrated F1 of each accept model, F1 of the best single source, recall on the large scenes, each
with its bootstrap 95% interval (test images resampled), ECE, and what the numbers rest on (test
images, objects). The seeds must differ from the training world's (tator_fixtures.TRAIN_SEED) and the
demo's (DEMO_SEED, looked at during development); the calibration itself refuses a test split that
holds a model's training images. Per seed the report's own numbers are printed; across seeds the
min / mean / max, and whether each target holds on every seed:
  calibrated F1 >= 0.90, >= best single source + 0.05, large-scene recall >= 0.85.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tator_fixtures import DEMO_SEED, TRAIN_SEED, default_data_root

TARGET_F1 = 0.90
TARGET_MARGIN = 0.05
TARGET_LARGE_RECALL = 0.85


def _tator(*args: str) -> str:
    exe = Path(sys.executable).with_name("tator")
    cmd = [str(exe) if exe.exists() else "tator", *args]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, env=os.environ.copy())
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


def _interval(m, name: str) -> list[float] | None:
    if not m.HasField(f"{name}_ci"):
        return None
    ci = getattr(m, f"{name}_ci")
    return [round(ci.lower, 4), round(ci.upper, 4)]


def summarize(seed: int, report, seconds: float) -> dict:
    """The figures of one seed's calibration report (a tator.orchestrator.v1.CalibrationReport)."""
    from tator_core.enums import source_name
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

    at = [r for r in report.results if abs(r.eval_iou - report.primary_eval_iou) < 1e-6]
    best = next((r for r in at if r.method == pb.ACCEPT_METHOD_BEST_SINGLE_SOURCE), None)
    out: dict = {"seed": seed, "dataset": report.dataset_id, "seconds": round(seconds, 1),
                 "test_images": len(report.test.images), "test_objects": report.test.ground_truth,
                 "large_test_images": report.test.large_images, "large_test_objects": report.test.large_ground_truth,
                 "warnings": list(report.warnings),
                 "best_single_source": source_name(best.source) if best else None,
                 "best_single_source_f1": round(best.overall.f1, 4) if best else None,
                 "best_single_source_f1_ci": _interval(best.overall, "f1") if best else None,
                 "best_single_source_large_recall": round(best.large_scenes.recall, 4) if best else None,
                 "models": {}}
    ece = {m.model: m.candidate_metrics.expected_calibration_error for m in report.models
           if m.candidate_metrics.HasField("expected_calibration_error")}
    for r in at:
        if r.method not in (pb.ACCEPT_METHOD_MLP, pb.ACCEPT_METHOD_XGB):
            continue
        o, big = r.overall, r.large_scenes
        out["models"][pb.AcceptMethod.Name(r.method).removeprefix("ACCEPT_METHOD_").lower()] = {
            "f1": round(o.f1, 4), "f1_ci": _interval(o, "f1"),
            "precision": round(o.precision, 4), "precision_ci": _interval(o, "precision"),
            "recall": round(o.recall, 4), "recall_ci": _interval(o, "recall"),
            "large_recall": round(big.recall, 4), "large_recall_ci": _interval(big, "recall"),
            "ece": round(ece[r.method], 4) if r.method in ece else None,
            "delta_vs_best_single_source": round(o.f1 - (best.overall.f1 if best else 0.0), 4)}
    return out


def spread(per_seed: list[dict]) -> dict:
    """Min / mean / max over seeds per model, and whether each target holds on every seed."""
    kinds = sorted({k for s in per_seed for k in s["models"]})
    out: dict[str, Any] = {}  # a JSON summary: per model kind, plus the best single source
    for kind in kinds:
        rows = [s["models"][kind] for s in per_seed if kind in s["models"]]
        stats = {}
        for key in ("f1", "large_recall", "delta_vs_best_single_source", "ece"):
            vals = [r[key] for r in rows if r[key] is not None]
            stats[key] = {"min": round(min(vals), 4), "mean": round(sum(vals) / len(vals), 4),
                          "max": round(max(vals), 4)} if vals else None
        stats["targets_met_on_every_seed"] = {
            f"f1>={TARGET_F1}": all(r["f1"] >= TARGET_F1 for r in rows),
            f"f1>=best_single_source+{TARGET_MARGIN}": all(r["delta_vs_best_single_source"] >= TARGET_MARGIN
                                                          for r in rows),
            f"large_recall>={TARGET_LARGE_RECALL}": all(r["large_recall"] >= TARGET_LARGE_RECALL for r in rows)}
        out[kind] = stats
    vals = [s["best_single_source_f1"] for s in per_seed if s["best_single_source_f1"] is not None]
    out["best_single_source_f1"] = {"min": round(min(vals), 4), "mean": round(sum(vals) / len(vals), 4),
                                    "max": round(max(vals), 4)} if vals else None
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tator_fixtures.eval_unseen", description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[101, 102, 103])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--sam3", action=argparse.BooleanOptionalAction, default=True,
                        help="run the SAM3 stages (full frame; windows are off as in the demo)")
    parser.add_argument("--rfdetr", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args(argv)
    from google.protobuf import json_format

    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

    bad = sorted({TRAIN_SEED, DEMO_SEED} & set(args.seeds))
    if bad:
        parser.error(f"seeds {bad} are the training or the demo world; pick seeds nothing was trained or tuned on")
    per_seed = []
    for seed in args.seeds:
        name = f"unseen-{seed}"
        _tator("data", "synth", "--seed", str(seed), "--images", str(args.images),
               "--out", str(default_data_root() / name))
        flags = ["--no-sam3-windows", "--sam3" if args.sam3 else "--no-sam3",
                 "--rfdetr" if args.rfdetr else "--no-rfdetr"]
        started = time.monotonic()
        report = json_format.Parse(_tator("calibrate", "--dataset", name, "--json", *flags), pb.CalibrationReport())
        per_seed.append(summarize(seed, report, time.monotonic() - started))
        print(f"seed {seed}: {json.dumps(per_seed[-1]['models'])}", file=sys.stderr)
    print(json.dumps({"benchmark": "eval_unseen", "images_per_seed": args.images, "sam3": args.sam3,
                      "rfdetr": args.rfdetr, "targets": {"f1": TARGET_F1, "margin_vs_best_single_source": TARGET_MARGIN,
                                                        "large_recall": TARGET_LARGE_RECALL},
                      "per_seed": per_seed, "spread": spread(per_seed)}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
