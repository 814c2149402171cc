"""Object-level evaluation of accepted candidates.

Per image: accepted candidates are deduplicated (same label, greedy by rank
score, a candidate is dropped when its IoU with a kept one is >= dedupe_iou;
dedupe_iou <= 0 disables it, the geometry module's convention); then, per
class, predictions in rank order each take the unmatched same-class GT box
with the highest IoU, a TP when that IoU >= eval_iou, else an FP; unmatched
GT boxes are FNs.

Every evaluated image counts, including images without ground truth, and
every predicted class counts, including classes absent from an image's GT:
skipping either would undercount false positives. A prediction whose label is not in the labelmap is an FP
under its own label.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from svc_orchestrator.calibration.candidates import CandidateTable, ImageFrame, build_table
from tator_core.geometry import XYXY, greedy_groups

BACKGROUND = "__background__"
MISSED = "__missed__"
#: Below this IoU with a same-class GT box an FP is "background", above it "localization".
LOCALIZATION_IOU = 0.1
FP_KINDS = ("duplicate", "localization", "wrong_class", "background")


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, other: Counts) -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn

    @property
    def precision(self) -> float:
        return prf(self.tp, self.fp, self.fn)[0]

    @property
    def recall(self) -> float:
        return prf(self.tp, self.fp, self.fn)[1]

    @property
    def f1(self) -> float:
        return prf(self.tp, self.fp, self.fn)[2]

    def as_dict(self) -> dict:
        p, r, f = prf(self.tp, self.fp, self.fn)
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "precision": p, "recall": r, "f1": f}


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall, F1; each 0 when its denominator is 0 (sklearn's zero_division=0)."""
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


@dataclass
class EvalResult:
    eval_iou: float
    overall: Counts
    per_class: dict[str, Counts]
    confusion: dict[str, dict[str, int]]       # pred label (or MISSED) -> GT label (or BACKGROUND) -> n
    fp_kinds: dict[str, int]
    images: int
    predictions: int                           # after dedupe
    by_image: list[tuple[str, dict[str, Counts]]] = field(default_factory=list)  # frame order

    def per_image(self, classes: Sequence[str], images: set[str] | None = None) -> np.ndarray:
        """(images, classes, 3) tp/fp/fn per evaluated image (optionally only some), for bootstraps."""
        rows = [c for name, c in self.by_image if images is None or name in images]
        out = np.zeros((len(rows), len(classes), 3), dtype=np.int64)
        for i, counts in enumerate(rows):
            for k, lab in enumerate(classes):
                if lab in counts:
                    out[i, k] = (counts[lab].tp, counts[lab].fp, counts[lab].fn)
        return out

    def as_dict(self) -> dict:
        return {"eval_iou": self.eval_iou, "overall": self.overall.as_dict(),
                "per_class": {k: v.as_dict() for k, v in sorted(self.per_class.items())},
                "confusion": self.confusion, "fp_kinds": self.fp_kinds, "images": self.images,
                "predictions": self.predictions}


def _order(rank: np.ndarray, local: np.ndarray) -> np.ndarray:
    """Local indexes sorted by rank score descending; ties by position (deterministic)."""
    return local[np.lexsort((local, -rank[local]))] if len(local) else local


def dedupe_frame(frame: ImageFrame, accept: np.ndarray, rank: np.ndarray, dedupe_iou: float) -> list[int]:
    """Local indexes of the accepted candidates that survive dedupe, in rank order."""
    local = np.flatnonzero(accept[frame.rows])
    order = _order(rank[frame.rows], local)
    if dedupe_iou <= 0 or len(order) < 2:
        return [int(i) for i in order]

    def absorbs(heads: np.ndarray, rest: np.ndarray) -> np.ndarray:
        cells = np.ix_(heads, rest)
        # "not below" rather than ">=": a NaN IoU (two empty boxes) counts as a duplicate
        return ~(frame.cc[cells] < dedupe_iou) & frame.same[cells]

    return [g[0] for g in greedy_groups(order, absorbs)]


def evaluate(table: CandidateTable, frames: Iterable[ImageFrame], accept: np.ndarray, rank: np.ndarray, *,
             labelmap: Sequence[str], eval_iou: float = 0.5, dedupe_iou: float = 0.75,
             classes: Sequence[str] | None = None) -> EvalResult:
    """Evaluate the rows with accept=True over the given frames (see module doc).

    classes: restrict predictions and GT to these labels (threshold tuning of
    one class); default all.
    """
    only = set(classes) if classes is not None else None
    per_class: dict[str, Counts] = {lab: Counts() for lab in (classes if classes is not None else labelmap)}
    confusion: dict[str, dict[str, int]] = {}
    kinds = dict.fromkeys(FP_KINDS, 0)
    n_images = n_preds = 0
    by_image: list[tuple[str, dict[str, Counts]]] = []

    def bump(pred: str, gt: str) -> None:
        row = confusion.setdefault(pred, {})
        row[gt] = row.get(gt, 0) + 1

    for frame in frames:
        n_images += 1
        mine: dict[str, Counts] = {}
        by_image.append((frame.name, mine))
        kept = dedupe_frame(frame, accept, rank, dedupe_iou)
        if only is not None:
            kept = [i for i in kept if table.labels[frame.rows[i]] in only]
        n_preds += len(kept)
        matched = np.zeros(len(frame.gt_labels), dtype=bool)
        gt_labels = np.asarray(frame.gt_labels, dtype=object)
        for i in kept:  # kept is in rank order, so each class is matched in rank order
            lab = table.labels[frame.rows[i]]
            counts = per_class.setdefault(lab, Counts())
            own = mine.setdefault(lab, Counts())
            ious = frame.cg[i] if frame.cg.shape[1] else np.zeros(0)
            same = gt_labels == lab if len(ious) else np.zeros(0, dtype=bool)
            free = np.where(same & ~matched, ious, -1.0)
            j = int(np.argmax(free)) if len(free) else -1
            if j >= 0 and free[j] >= eval_iou:
                matched[j] = True
                counts.tp += 1
                own.tp += 1
                bump(lab, lab)
                continue
            counts.fp += 1
            own.fp += 1
            best_same = float(np.max(np.where(same, ious, 0.0))) if len(ious) else 0.0
            other = (~same) & (ious >= eval_iou) if len(ious) else np.zeros(0, dtype=bool)
            if only is not None and len(ious):
                other &= np.isin(gt_labels, list(only))
            if best_same >= eval_iou:
                kinds["duplicate"] += 1
                bump(lab, BACKGROUND)
            elif other.any():
                kinds["wrong_class"] += 1
                bump(lab, str(gt_labels[int(np.argmax(np.where(other, ious, -1.0)))]))
            elif best_same >= LOCALIZATION_IOU:
                kinds["localization"] += 1
                bump(lab, BACKGROUND)
            else:
                kinds["background"] += 1
                bump(lab, BACKGROUND)
        for j, lab in enumerate(frame.gt_labels):
            if matched[j] or (only is not None and lab not in only):
                continue
            per_class.setdefault(lab, Counts()).fn += 1
            mine.setdefault(lab, Counts()).fn += 1
            bump(MISSED, lab)
    overall = Counts()
    for c in per_class.values():
        overall.add(c)
    return EvalResult(eval_iou, overall, per_class, confusion, kinds, n_images, n_preds, by_image)


@dataclass
class Prediction:
    """A hand-made prediction (tests, ad-hoc evaluation)."""

    image: str
    label: str
    box: XYXY
    score: float = 1.0
    sources: tuple[str, ...] = field(default_factory=tuple)


def evaluate_predictions(preds: Sequence[Prediction], gt: dict[str, Sequence[tuple[str, XYXY]]], *,
                         labelmap: Sequence[str], images: Sequence[str] | None = None,
                         eval_iou: float = 0.5, dedupe_iou: float = 0.75) -> EvalResult:
    """Evaluate plain predictions against {image: [(label, box)]}.

    images: the evaluated image set; default every image named in preds or gt.
    """
    names = list(images) if images is not None else sorted({p.image for p in preds} | set(gt))
    by_image: dict[str, list[Prediction]] = {n: [] for n in names}
    for p in preds:
        if p.image in by_image:
            by_image[p.image].append(p)
    table = build_table([(n, [(p.label, p.box, p.score, p.sources) for p in by_image[n]], list(gt.get(n, [])))
                         for n in names])
    accept = np.ones(len(table), dtype=bool)
    return evaluate(table, table.frames, accept, table.scores, labelmap=labelmap, eval_iou=eval_iou,
                    dedupe_iou=dedupe_iou)
