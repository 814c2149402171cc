"""The multi-seed measurement script's reading of calibration reports and its per-target verdicts."""

from __future__ import annotations

import pytest

from tator_core.gen.tator.common.v1 import common_pb2
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
from tator_fixtures import DEMO_SEED, TRAIN_SEED
from tator_fixtures.eval_unseen import main, spread, summarize


def _metrics(f1: float, large_recall: float | None = None) -> pb.Metrics:
    return pb.Metrics(f1=f1, precision=f1, recall=large_recall if large_recall is not None else f1,
                      f1_ci=pb.Interval(lower=f1 - 0.02, upper=f1 + 0.02),
                      recall_ci=pb.Interval(lower=0.7, upper=0.9))


def _report(mlp_f1: float, best_f1: float, large: float) -> pb.CalibrationReport:
    return pb.CalibrationReport(
        dataset_id="unseen-1", primary_eval_iou=0.5,
        test=pb.SplitSummary(images=[f"i{k}" for k in range(40)], ground_truth=100, large_images=5,
                             large_ground_truth=60),
        results=[pb.MethodMetrics(method=pb.ACCEPT_METHOD_MLP, eval_iou=0.5, overall=_metrics(mlp_f1),
                                  large_scenes=_metrics(0.0, large)),
                 pb.MethodMetrics(method=pb.ACCEPT_METHOD_MLP, eval_iou=0.75, overall=_metrics(0.1),
                                  large_scenes=_metrics(0.0, 0.1)),
                 pb.MethodMetrics(method=pb.ACCEPT_METHOD_BEST_SINGLE_SOURCE, source=common_pb2.DETECTION_SOURCE_YOLO, eval_iou=0.5,
                                  overall=_metrics(best_f1), large_scenes=_metrics(0.0, 0.5))],
        models=[pb.AcceptModelSummary(model=pb.ACCEPT_METHOD_MLP, candidate_metrics=pb.CandidateMetrics(
            expected_calibration_error=0.05))])


def test_summary_reads_the_primary_iou_and_the_targets_hold_only_when_met_on_every_seed() -> None:
    good = summarize(101, _report(0.95, 0.85, 0.9), 1.0)
    assert good["models"]["mlp"]["f1"] == 0.95 and good["models"]["mlp"]["f1_ci"] == pytest.approx([0.93, 0.97])
    assert good["models"]["mlp"]["delta_vs_best_single_source"] == pytest.approx(0.10)
    assert (good["test_images"], good["test_objects"], good["large_test_objects"]) == (40, 100, 60)
    assert (good["best_single_source"], good["models"]["mlp"]["large_recall"], good["models"]["mlp"]["ece"]) == (
        "yolo", 0.9, 0.05)
    weak = summarize(102, _report(0.93, 0.90, 0.80), 1.0)
    verdict = spread([good, weak])["mlp"]
    assert verdict["f1"] == {"min": 0.93, "mean": 0.94, "max": 0.95}
    assert verdict["targets_met_on_every_seed"] == {"f1>=0.9": True, "f1>=best_single_source+0.05": False,
                                                    "large_recall>=0.85": False}


def test_training_and_demo_seeds_are_refused() -> None:
    for seed in (TRAIN_SEED, DEMO_SEED):
        with pytest.raises(SystemExit):
            main(["--seeds", str(seed)])
