"""How far to trust the report: bootstrap intervals for P/R/F1 and calibration of the accept models.

Bootstrap: the test images are resampled with replacement (images, not objects: the objects of one
image share its scene and its prepass, so they are not independent draws), the counts of each
resample summed, and precision / recall / F1 recomputed; the interval is the 2.5th-97.5th percentile
of `BOOT` resamples drawn with a fixed seed, so the same report gives the same intervals.

Calibration: expected calibration error (ECE) of the accept model's probability that a candidate is a
true object, over `BINS` equal-width bins on the test candidates, with the reliability diagram's data
(mean predicted probability, observed positive fraction and count per bin).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BOOT = 1000
BINS = 10
LEVEL = 0.95


def _prf(c: np.ndarray) -> np.ndarray:
    """(..., 3) tp/fp/fn -> (..., 3) precision/recall/F1, 0 where undefined."""
    tp, fp, fn = c[..., 0], c[..., 1], c[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)
        r = np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), 0.0)
        f = np.where(p + r > 0, 2 * p * r / np.where(p + r > 0, p + r, 1), 0.0)
    return np.stack([p, r, f], axis=-1)


def bootstrap_ci(per_image: np.ndarray, classes: Sequence[str], *, seed: int, boot: int = BOOT,
                 level: float = LEVEL) -> dict:
    """per_image: (images, classes, 3) tp/fp/fn counts. Returns {"overall": {metric: [lo, hi]},
    "per_class": {class: {metric: [lo, hi]}}, "resamples", "images", "level"}."""
    n = per_image.shape[0]
    if n == 0:
        return {"overall": {}, "per_class": {}, "resamples": 0, "images": 0, "level": level}
    rng = np.random.default_rng(seed)
    weights = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(boot)])  # (boot, n)
    sums = np.einsum("bi,ick->bck", weights, per_image.astype(np.float64))  # (boot, classes, 3)
    lo_q, hi_q = (1 - level) / 2 * 100, (1 + level) / 2 * 100

    def interval(counts: np.ndarray) -> dict:
        lo, hi = np.percentile(_prf(counts), [lo_q, hi_q], axis=0)
        return {m: [round(float(a), 4), round(float(b), 4)] for m, a, b in zip(("precision", "recall", "f1"), lo, hi)}

    return {"overall": interval(sums.sum(axis=1)),
            "per_class": {c: interval(sums[:, k]) for k, c in enumerate(classes)},
            "resamples": boot, "images": n, "level": level}


def reliability(y: np.ndarray, p: np.ndarray, bins: int = BINS) -> dict:
    """ECE and the reliability diagram's per-bin data (empty bins have count 0 and null means)."""
    y = np.asarray(y, dtype=np.float64)
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1], right=False), 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    sum_p = np.bincount(which, weights=p, minlength=bins)
    sum_y = np.bincount(which, weights=y, minlength=bins)
    mean_p = np.divide(sum_p, count, out=np.zeros(bins), where=count > 0)
    frac = np.divide(sum_y, count, out=np.zeros(bins), where=count > 0)
    ece = float(np.sum(count * np.abs(mean_p - frac)) / count.sum()) if count.sum() else None
    return {"ece": None if ece is None else round(ece, 5), "bins": bins, "edges": [round(float(e), 4) for e in edges],
            "count": count.astype(int).tolist(),
            "mean_predicted": [round(float(v), 5) if c else None for v, c in zip(mean_p, count)],
            "fraction_positive": [round(float(v), 5) if c else None for v, c in zip(frac, count)]}
