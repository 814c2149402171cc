"""Training labels: which candidates are real objects.

One-to-one matching per image and class: candidate-GT pairs of the same
class with IoU >= label_iou are taken greedily in descending IoU order, each
candidate and each GT box at most once. Among several duplicates of one
object only the best-localised one is positive: marking every duplicate
positive would make threshold tuning count duplicates as TPs, which the
object-level evaluation punishes as FPs. A candidate whose label is not a GT label of its image stays 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from svc_orchestrator.calibration.candidates import CandidateTable


@dataclass
class Labels:
    y: np.ndarray          # (N,) 0/1
    best_iou: np.ndarray   # (N,) best IoU with any same-class GT box (matched or not)
    gt_index: np.ndarray   # (N,) matched GT index within its image, -1 when negative

    def as_summary(self) -> dict:
        return {"candidates": int(len(self.y)), "positives": int(self.y.sum()),
                "duplicates_of_matched": int(((self.y == 0) & (self.best_iou >= 0.5)).sum())}


def label_candidates(table: CandidateTable, label_iou: float = 0.5) -> Labels:
    n = len(table)
    y = np.zeros(n, dtype=np.int64)
    best = np.zeros(n, dtype=np.float64)
    gt_index = np.full(n, -1, dtype=np.int64)
    for frame in table.frames:
        if not len(frame.rows) or not frame.gt_labels:
            continue
        cand_labels = np.asarray([table.labels[r] for r in frame.rows], dtype=object)
        gt_labels = np.asarray(frame.gt_labels, dtype=object)
        same = cand_labels[:, None] == gt_labels[None, :]
        ious = np.where(same, frame.cg, 0.0)
        best[frame.rows] = ious.max(axis=1)
        ci, gj = np.nonzero(ious >= label_iou)
        if not len(ci):
            continue
        # Descending IoU; ties by candidate then GT position, so the result is deterministic.
        order = np.lexsort((gj, ci, -ious[ci, gj]))
        used_c: set[int] = set()
        used_g: set[int] = set()
        for k in order:
            c, g = int(ci[k]), int(gj[k])
            if c in used_c or g in used_g:
                continue
            used_c.add(c)
            used_g.add(g)
            y[frame.rows[c]] = 1
            gt_index[frame.rows[c]] = g
    return Labels(y, best, gt_index)
