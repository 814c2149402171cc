"""Per-class accept thresholds, tuned on the validation split only.

Thresholds are chosen on the same object-level metric that is reported
(dedupe, then one-to-one matching), not on candidate-level counts: the old
stage-1 tuning counted every duplicate as a TP, and its policy
gates ran only after tuning. There is no hand policy here: whatever
the source and geometry columns say about SAM-only or tiny boxes, the model
has learned, and the threshold is tuned on exactly what is deployed.

For each class the candidate thresholds are the midpoints between
consecutive distinct validation probabilities of that class (at most
`max_steps`, else quantiles), plus "accept all" and "reject all". The best is
the highest F1 among thresholds meeting the recall floor (all of them when
no threshold meets it, by recall first). Ties take the middle of the tied
thresholds, so the choice is not pinned to the edge of what val supports.
Each class's threshold is then shrunk toward the one global threshold by its
validation support (see `tune_thresholds`). A class without validation
candidates takes the global threshold; one with candidates but no
validation GT (every acceptance an FP there) the higher of the global
threshold and `DEFAULT_THRESHOLD`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from svc_orchestrator.calibration.candidates import CandidateTable, ImageFrame
from svc_orchestrator.calibration.evaluate import Counts, evaluate

DEFAULT_THRESHOLD = 0.5
SHRINK = 5.0


@dataclass
class Choice:
    threshold: float
    val: Counts
    tried: int
    reason: str      # tuned | recall_floor_unmet | no_val_gt | no_val_candidates
    global_threshold: float = DEFAULT_THRESHOLD

    def as_dict(self) -> dict:
        return {"threshold": self.threshold, "val": self.val.as_dict(), "tried": self.tried, "reason": self.reason,
                "global_threshold": self.global_threshold}


def candidate_thresholds(probs: np.ndarray, max_steps: int = 200) -> np.ndarray:
    """Ascending thresholds that separate distinct probabilities, plus accept-all and reject-all."""
    uniq = np.unique(np.clip(probs, 0.0, 1.0))
    if len(uniq) > max_steps:
        uniq = np.unique(np.quantile(uniq, np.linspace(0.0, 1.0, max_steps)))
    mids = (uniq[:-1] + uniq[1:]) / 2 if len(uniq) > 1 else np.zeros(0)
    return np.concatenate([[uniq[0] / 2 if len(uniq) else 0.0], mids, [(uniq[-1] + 1.0) / 2 if len(uniq) else 1.0]])


def pick(thresholds: Sequence[float] | np.ndarray, results: Sequence[Counts], recall_floor: float = 0.0) -> tuple[int, str]:
    """Index of the chosen threshold (see module doc) and why."""
    ok = [k for k, c in enumerate(results) if c.recall >= recall_floor - 1e-12]
    reason = "tuned"
    if not ok:
        best_r = max(c.recall for c in results)
        ok = [k for k, c in enumerate(results) if c.recall >= best_r - 1e-12]
        reason = "recall_floor_unmet"
    best_f = max(results[k].f1 for k in ok)
    tied = [k for k in ok if results[k].f1 >= best_f - 1e-12]
    return tied[(len(tied) - 1) // 2], reason


def tune_class(table: CandidateTable, frames: Sequence[ImageFrame], probs: np.ndarray, rows: np.ndarray,
               label: str, *, labelmap: Sequence[str], eval_iou: float, dedupe_iou: float,
               recall_floor: float = 0.0, max_steps: int = 200) -> Choice:
    """Tune one class on the given (validation) frames; rows masks that class's val candidates."""
    gt = sum(1 for f in frames for g in f.gt_labels if g == label)
    if not rows.any():
        return Choice(DEFAULT_THRESHOLD, Counts(fn=gt), 0, "no_val_candidates")
    if gt == 0:
        res = evaluate(table, frames, rows & (probs >= DEFAULT_THRESHOLD), probs, labelmap=labelmap,
                       eval_iou=eval_iou, dedupe_iou=dedupe_iou, classes=[label])
        return Choice(DEFAULT_THRESHOLD, res.per_class[label], 0, "no_val_gt")
    ths = candidate_thresholds(probs[rows], max_steps)
    results = [evaluate(table, frames, rows & (probs >= t), probs, labelmap=labelmap, eval_iou=eval_iou,
                        dedupe_iou=dedupe_iou, classes=[label]).per_class[label] for t in ths]
    k, reason = pick(ths, results, recall_floor)
    return Choice(float(ths[k]), results[k], len(ths), reason)


def tune_global(table: CandidateTable, frames: Sequence[ImageFrame], probs: np.ndarray, rows: np.ndarray, *,
                labelmap: Sequence[str], eval_iou: float, dedupe_iou: float, recall_floor: float = 0.0) -> float:
    """One threshold for every class, by overall F1 on the given frames."""
    if not rows.any():
        return DEFAULT_THRESHOLD
    ths = candidate_thresholds(probs[rows])
    results = [evaluate(table, frames, rows & (probs >= t), probs, labelmap=labelmap, eval_iou=eval_iou,
                        dedupe_iou=dedupe_iou).overall for t in ths]
    return float(ths[pick(ths, results, recall_floor)[0]])


def tune_thresholds(table: CandidateTable, frames: Sequence[ImageFrame], probs: np.ndarray, val_rows: np.ndarray,
                    *, labelmap: Sequence[str], eval_iou: float = 0.5, dedupe_iou: float = 0.75,
                    recall_floor: float = 0.0, shrink: float = SHRINK) -> dict[str, Choice]:
    """Per-class thresholds, each shrunk toward the global one by its validation support n:
    t = (n * t_class + shrink * t_global) / (n + shrink), so a class with few val objects leans on
    what all classes say. Measured on simulated prepass results (10 seeds x 48 images, 8 x 100):
    shrink 5 raised mean test F1 by 0.003-0.006 for both models against per-class thresholds alone."""
    labels = np.asarray(table.labels, dtype=object)
    known = val_rows & np.isin(labels, list(labelmap))
    kw: dict[str, Any] = dict(labelmap=labelmap, eval_iou=eval_iou, dedupe_iou=dedupe_iou)
    t_global = tune_global(table, frames, probs, known, recall_floor=recall_floor, **kw)
    out = {}
    for lab in labelmap:
        rows = val_rows & (labels == lab)
        ch = tune_class(table, frames, probs, rows, lab, recall_floor=recall_floor, **kw)
        n = ch.val.tp + ch.val.fn
        if ch.reason == "no_val_candidates":
            ch.threshold = t_global
        elif ch.reason == "no_val_gt":
            ch.threshold = max(DEFAULT_THRESHOLD, t_global)
        elif shrink > 0:
            ch.threshold = (n * ch.threshold + shrink * t_global) / (n + shrink)
        if rows.any():
            ch.val = evaluate(table, frames, rows & (probs >= ch.threshold), probs, classes=[lab], **kw).per_class[lab]
        ch.global_threshold = t_global
        out[lab] = ch
    return out


def accept_mask(labels: Sequence[str], probs: np.ndarray, thresholds: dict[str, float]) -> np.ndarray:
    """Accept when prob >= the label's threshold; labels without a threshold are rejected."""
    th = np.array([thresholds.get(lab, np.inf) for lab in labels], dtype=np.float64)
    return probs >= th
