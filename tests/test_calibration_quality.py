"""Bootstrap intervals (images resampled) and calibration error of the accept models' probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from svc_orchestrator.calibration.evaluate import Prediction, evaluate_predictions
from svc_orchestrator.calibration.quality import bootstrap_ci, reliability


def test_ece_of_a_constant_overconfident_model_is_its_gap() -> None:
    rel = reliability(np.array([1, 0] * 50), np.full(100, 0.9))
    assert rel["ece"] == pytest.approx(0.4)
    assert rel["count"][9] == 100 and sum(rel["count"]) == 100
    assert rel["fraction_positive"][9] == pytest.approx(0.5) and rel["mean_predicted"][0] is None


def test_ece_is_small_for_calibrated_probabilities_and_large_for_inverted_ones() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(size=20000)
    y = (rng.uniform(size=p.size) < p).astype(int)
    assert reliability(y, p)["ece"] < 0.02
    assert reliability(y, 1 - p)["ece"] > 0.3


def test_bootstrap_of_identical_images_is_degenerate() -> None:
    per_image = np.tile(np.array([[[3, 1, 1]]]), (20, 1, 1))  # every image: 3 TP, 1 FP, 1 FN of one class
    ci = bootstrap_ci(per_image, ["a"], seed=0)
    assert ci["overall"]["precision"] == [0.75, 0.75] and ci["overall"]["f1"] == [0.75, 0.75]
    assert ci["per_class"]["a"] == ci["overall"] and ci["images"] == 20


def test_bootstrap_interval_holds_the_estimate_narrows_with_more_images_and_is_seeded() -> None:
    rng = np.random.default_rng(1)

    def images(n: int) -> np.ndarray:
        tp = rng.integers(0, 5, (n, 2))
        return np.stack([tp, rng.integers(0, 2, (n, 2)), rng.integers(0, 2, (n, 2))], axis=-1)

    small, large = images(20), images(320)
    for data in (small, large):
        tp, fp, fn = data.sum(axis=(0, 1))
        recall = tp / (tp + fn)
        lo, hi = bootstrap_ci(data, ["a", "b"], seed=3)["overall"]["recall"]
        assert lo <= recall <= hi
    width = {k: np.diff(bootstrap_ci(d, ["a", "b"], seed=3)["overall"]["f1"])[0]
             for k, d in (("small", small), ("large", large))}
    assert width["large"] < width["small"] / 2
    assert bootstrap_ci(small, ["a", "b"], seed=3) == bootstrap_ci(small, ["a", "b"], seed=3)


def test_per_image_counts_add_up_to_the_overall_counts() -> None:
    gt = {"i1": [("a", (0, 0, 10, 10)), ("b", (20, 20, 30, 30))], "i2": [("a", (0, 0, 10, 10))]}
    preds = [Prediction("i1", "a", (0, 0, 10, 10)), Prediction("i1", "a", (50, 50, 60, 60)),
             Prediction("i2", "b", (0, 0, 10, 10))]
    res = evaluate_predictions(preds, gt, labelmap=["a", "b"])
    per = res.per_image(["a", "b"])
    assert per.shape == (2, 2, 3)
    assert tuple(per.sum(axis=(0, 1))) == (res.overall.tp, res.overall.fp, res.overall.fn) == (1, 2, 2)
    assert per[0].tolist() == [[1, 1, 0], [0, 0, 1]]
    assert res.per_image(["a", "b"], {"i2"}).tolist() == [[[0, 0, 1], [0, 1, 0]]]
