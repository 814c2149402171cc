"""The flat candidate table every calibration step works on.

Candidates are the final deduplicated clusters of cached `PrepassResult`s;
ground truth comes from the same `Dataset` object that gave the images, so
images, sizes and labels can never come from two places. Per image the
candidate-candidate and candidate-GT IoU matrices are computed once here;
labelling, threshold tuning and evaluation then work on index masks instead
of recomputing boxes for every threshold they try.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from tator_core.geometry import XYXY, as_xyxy, iou_matrix


@dataclass
class ImageFrame:
    """One image's candidates (global row ids) and ground truth, with IoUs."""

    name: str
    rows: np.ndarray                 # global row indices, table order
    gt_labels: list[str]
    gt_boxes: np.ndarray             # (m, 4)
    cc: np.ndarray                   # (n, n) candidate-candidate IoU
    cg: np.ndarray                   # (n, m) candidate-GT IoU
    same: np.ndarray                 # (n, n) True where two candidates have the same label (for dedupe)


@dataclass
class CandidateTable:
    """Candidates of many images as parallel arrays (row = one candidate)."""

    images: list[str]                         # image names, frame order
    image_index: np.ndarray                   # (N,) row -> image position
    labels: list[str]                         # (N,)
    boxes: np.ndarray                         # (N, 4) pixels
    scores: np.ndarray                        # (N,) prepass score
    sources: list[frozenset[str]]             # (N,)
    frames: list[ImageFrame] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def rows_in(self, images: set[str] | Sequence[str]) -> np.ndarray:
        """Boolean row mask of the candidates of the given images."""
        wanted = set(images)
        pos = np.array([name in wanted for name in self.images], dtype=bool)
        return pos[self.image_index] if len(self) else np.zeros(0, dtype=bool)

    def frames_in(self, images: set[str] | Sequence[str]) -> list[ImageFrame]:
        wanted = set(images)
        return [f for f in self.frames if f.name in wanted]

    def gt_count(self, images: set[str] | Sequence[str] | None = None) -> int:
        frames = self.frames if images is None else self.frames_in(images)
        return sum(len(f.gt_labels) for f in frames)


def _as_boxes(boxes: Sequence[XYXY]) -> np.ndarray:
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def build_table(per_image: Sequence[tuple[str, Sequence[tuple[str, XYXY, float, Sequence[str]]],
                                          Sequence[tuple[str, XYXY]]]]) -> CandidateTable:
    """per_image: (image name, [(label, box, score, sources)], [(gt label, gt box)]).

    Image order is kept (it fixes row order, hence determinism of everything
    downstream).
    """
    labels: list[str] = []
    boxes: list[XYXY] = []
    scores: list[float] = []
    sources: list[frozenset[str]] = []
    index: list[int] = []
    frames: list[ImageFrame] = []
    names: list[str] = []
    for pos, (name, cands, gts) in enumerate(per_image):
        start = len(labels)
        for label, box, score, srcs in cands:
            labels.append(label)
            boxes.append(as_xyxy(box))
            scores.append(float(score))
            sources.append(frozenset(srcs))
            index.append(pos)
        rows = np.arange(start, len(labels))
        cb = [boxes[i] for i in rows]
        cl = np.asarray(labels[start:], dtype=object)
        gb: list[XYXY] = [(float(g[1][0]), float(g[1][1]), float(g[1][2]), float(g[1][3])) for g in gts]
        frames.append(ImageFrame(
            name=name, rows=rows, gt_labels=[g[0] for g in gts], gt_boxes=_as_boxes(gb),
            cc=iou_matrix(cb, cb).numpy().astype(np.float64),
            cg=iou_matrix(cb, gb).numpy().astype(np.float64), same=cl[:, None] == cl[None, :]))
        names.append(name)
    return CandidateTable(images=names, image_index=np.asarray(index, dtype=np.int64), labels=labels,
                          boxes=_as_boxes(boxes), scores=np.asarray(scores, dtype=np.float64),
                          sources=sources, frames=frames)
