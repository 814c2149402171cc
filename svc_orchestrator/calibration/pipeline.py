"""The synchronous calibration steps on arrays: fit, tune, evaluate, assemble.

`flow.py` runs each of these in a worker thread and checks for cancellation
between them. Split discipline: models fit on train (early
stopping on val), thresholds are tuned on val, and every number under
`results`, `baselines`, `curves` and `candidate_metrics` is measured on
test only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from svc_orchestrator.calibration import models as mdl
from svc_orchestrator.calibration import quality
from svc_orchestrator.calibration.candidates import CandidateTable
from svc_orchestrator.calibration.evaluate import Counts, EvalResult, evaluate
from svc_orchestrator.calibration.features import SOURCES
from svc_orchestrator.calibration.report import result_entry
from svc_orchestrator.calibration.split import Split
from svc_orchestrator.calibration.thresholds import Choice, accept_mask, tune_thresholds
from tator_core import errors

CURVE_STEPS = 49
#: Test images whose longer side is at least this many pixels are "large scenes": their objects are small
#: relative to the frame, only tiles at the detector's input size find them, so their recall is reported
#: on its own as well.
LARGE_SIDE = 800


@dataclass(frozen=True)
class Settings:
    """A CalibrationConfig with every default filled in."""

    kinds: tuple[str, ...] = ("mlp", "xgb")
    label_iou: float = 0.5
    eval_ious: tuple[float, ...] = (0.5,)
    dedupe_iou: float = 0.75
    recall_floor: float = 0.0
    seed: int = 42
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    max_images: int = 0
    embedding_dims: int = 0

    @property
    def primary_iou(self) -> float:
        return self.eval_ious[0]

    def as_dict(self) -> dict:
        return {"models": list(self.kinds), "label_iou": self.label_iou, "eval_ious": list(self.eval_ious),
                "primary_eval_iou": self.primary_iou, "dedupe_iou": self.dedupe_iou,
                "recall_floor": self.recall_floor, "seed": self.seed, "val_fraction": self.val_fraction,
                "test_fraction": self.test_fraction, "max_images": self.max_images,
                "embedding_dims": self.embedding_dims}


@dataclass
class Masks:
    """Row masks of the three splits."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    @classmethod
    def of(cls, table: CandidateTable, split: Split) -> Masks:
        return cls(table.rows_in(split.train), table.rows_in(split.val), table.rows_in(split.test))


@dataclass
class Trained:
    """One accept model and what was learned about it."""

    kind: str
    model: mdl.MlpModel | mdl.XgbModel
    probs: np.ndarray                       # every row
    thresholds: dict[str, Choice] = field(default_factory=dict)
    val_f1: float = 0.0

    @property
    def threshold_map(self) -> dict[str, float]:
        return {lab: ch.threshold for lab, ch in self.thresholds.items()}


def check_trainable(y: np.ndarray, masks: Masks) -> None:
    ytr = y[masks.train]
    if not len(ytr) or ytr.min() == ytr.max():
        what = "no candidates" if not len(ytr) else ("no candidate matching ground truth" if ytr.max() == 0
                                                     else "no negative candidate")
        raise errors.failed_precondition("STAGE_FAILED", f"the training split has {what}; an accept model needs "
                                         "both accepted and rejected examples", stage="train",
                                         rows=len(ytr), positives=int(ytr.sum()))


def fit_one(kind: str, X: np.ndarray, y: np.ndarray, masks: Masks, seed: int) -> Trained:
    model = mdl.fit(kind, X[masks.train], y[masks.train], X[masks.val], y[masks.val], seed=seed)
    return Trained(kind, model, model.predict(X))


def tune(trained: Trained, table: CandidateTable, split: Split, masks: Masks, labelmap: Sequence[str],
         s: Settings) -> None:
    frames = table.frames_in(split.val)
    trained.thresholds = tune_thresholds(table, frames, trained.probs, masks.val, labelmap=labelmap,
                                         eval_iou=s.primary_iou, dedupe_iou=s.dedupe_iou, recall_floor=s.recall_floor)
    acc = accept_mask(table.labels, trained.probs, trained.threshold_map) & masks.val
    trained.val_f1 = evaluate(table, frames, acc, trained.probs, labelmap=labelmap, eval_iou=s.primary_iou,
                              dedupe_iou=s.dedupe_iou).overall.f1


def _candidate_metrics(y: np.ndarray, p: np.ndarray) -> dict:
    """Candidate-level scores from sklearn (AP, ROC-AUC, Brier) on the test rows."""
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    both = len(y) and 0 < y.sum() < len(y)
    return {"rows": int(len(y)), "positives": int(y.sum()),
            "average_precision": float(average_precision_score(y, p)) if both else None,
            "roc_auc": float(roc_auc_score(y, p)) if both else None,
            "brier": float(brier_score_loss(y, p, labels=[0, 1])) if len(y) else None,
            "reliability": quality.reliability(y, p)}


def with_intervals(method: str, res: EvalResult, seed: int, large: set[str]) -> dict:
    """A results entry with bootstrap 95% intervals (images resampled) for every P/R/F1, and the
    counts, recall and interval on the large scenes alone."""
    entry = result_entry(method, res)
    classes = sorted(res.per_class)
    entry["ci"] = quality.bootstrap_ci(res.per_image(classes), classes, seed=seed)
    per_large = res.per_image(classes, large)
    tp, fp, fn = (int(v) for v in per_large.sum(axis=(0, 1))) if len(per_large) else (0, 0, 0)
    entry["large_scenes"] = {"images": int(per_large.shape[0]), **Counts(tp, fp, fn).as_dict(),
                             "ci": quality.bootstrap_ci(per_large, classes, seed=seed)["overall"]}
    return entry


def evaluate_test(table: CandidateTable, y: np.ndarray, trained: Sequence[Trained], split: Split, masks: Masks,
                  labelmap: Sequence[str], s: Settings, large: set[str] | None = None) -> dict:
    """results (models + accept_all + best single source, each with intervals), baselines, curves,
    candidate metrics with calibration error. `large`: the test images that are large scenes."""
    frames = table.frames_in(split.test)
    test = masks.test
    large = set(large or ())

    def run(accept: np.ndarray, rank: np.ndarray, iou: float, dedupe: float | None = None):
        return evaluate(table, frames, accept & test, rank, labelmap=labelmap, eval_iou=iou,
                        dedupe_iou=s.dedupe_iou if dedupe is None else dedupe)

    def entry(method: str, res: EvalResult) -> dict:
        return with_intervals(method, res, s.seed, large)

    results: list[dict] = []
    for t in trained:
        acc = accept_mask(table.labels, t.probs, t.threshold_map)
        results += [entry(t.kind, run(acc, t.probs, iou)) for iou in s.eval_ious]
    everything = np.ones(len(table), dtype=bool)
    accept_all = {iou: run(everything, table.scores, iou) for iou in s.eval_ious}
    results += [entry("accept_all", r) for r in accept_all.values()]
    per_source: dict[str, dict] = {}
    for src in SOURCES:
        rows = np.array([src in srcs for srcs in table.sources], dtype=bool)
        if (rows & test).any():
            per_source[src] = {iou: run(rows, table.scores, iou) for iou in s.eval_ious}
    best = max(per_source, key=lambda k: (per_source[k][s.primary_iou].overall.f1, k), default=None)
    if best is not None:
        results += [entry(f"best_single_source:{best}", r) for r in per_source[best].values()]
    curves = {}
    for t in trained:
        pts = [run(t.probs >= th, t.probs, s.primary_iou).overall
               for th in np.linspace(0.02, 0.98, CURVE_STEPS)]
        curves[t.kind] = {"thresholds": [round(float(v), 4) for v in np.linspace(0.02, 0.98, CURVE_STEPS)],
                          "precision": [c.precision for c in pts], "recall": [c.recall for c in pts],
                          "f1": [c.f1 for c in pts]}
    return {
        "results": results,
        "baselines": {
            "best_single_source": best,
            "best_single_source_note": "chosen by test F1 at the primary eval IoU, which favours the baseline",
            "single_sources": {src: {str(iou): r.overall.as_dict() for iou, r in v.items()}
                               for src, v in per_source.items()},
            "coverage_upper_bound": {str(iou): run(everything, table.scores, iou, dedupe=0.0).overall.recall
                                     for iou in s.eval_ious},
        },
        "curves": curves,
        "candidate_metrics": {t.kind: _candidate_metrics(y[test], t.probs[test]) for t in trained},
    }


def comparison(results: list[dict], kinds: Sequence[str], primary_iou: float) -> dict:
    """Each model's test F1 next to the baselines' at the primary eval IoU."""
    at = {e["method"]: e["overall"]["f1"] for e in results if e["eval_iou"] == primary_iou}
    best_src = next((m for m in at if m.startswith("best_single_source:")), None)
    out = {}
    for k in kinds:
        if k in at:
            out[k] = {"f1": at[k], "accept_all_f1": at.get("accept_all", 0.0),
                      "best_single_source": best_src.split(":", 1)[1] if best_src else None,
                      "best_single_source_f1": at.get(best_src, 0.0) if best_src else 0.0,
                      "delta_vs_best_single_source": at[k] - (at.get(best_src, 0.0) if best_src else 0.0)}
    return out


def data_summary(table: CandidateTable, y: np.ndarray, split: Split, masks: Masks,
                 large: set[str] | None = None) -> dict:
    out: dict = {}
    for name in ("train", "val", "test"):
        m = getattr(masks, name)
        out[name] = {"images": len(split.of(name)), "candidates": int(m.sum()), "positives": int(y[m].sum()),
                     "gt": table.gt_count(split.of(name))}
    big = sorted(set(large or ()) & set(split.test))
    out["test"].update(large_side=LARGE_SIDE, large_images=len(big), large_gt=table.gt_count(big))
    return out
