"""Boxes, tiles, windows and class-aware merging.

Boxes are (x1, y1, x2, y2) pixel tuples unless a name says otherwise. IoU goes
through torchvision.ops. Every dedupe (NMS, clustering that keeps every member for
provenance and weighted box fusion, the calibration's evaluation) is one greedy
walk, `greedy_groups`, with the caller's overlap rule.
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, SupportsFloat

import numpy as np
import torch
from torchvision.ops import box_iou

XYXY = tuple[float, float, float, float]


# --- conversions -----------------------------------------------------------

def as_xyxy(values: Iterable[SupportsFloat]) -> XYXY:
    """Four numbers (a list, an array row, a label-file line) as a float (x1, y1, x2, y2) tuple;
    anything but four values is a ValueError."""
    x1, y1, x2, y2 = (float(v) for v in values)
    return x1, y1, x2, y2


def xyxy_to_xywh(b: XYXY) -> XYXY:
    return (b[0], b[1], b[2] - b[0], b[3] - b[1])


def xywh_to_xyxy(b: XYXY) -> XYXY:
    return (b[0], b[1], b[0] + b[2], b[1] + b[3])


def xyxy_to_yolo(b: XYXY, width: int, height: int) -> XYXY:
    """Pixel corners -> normalised (cx, cy, w, h)."""
    return ((b[0] + b[2]) / 2 / width, (b[1] + b[3]) / 2 / height, (b[2] - b[0]) / width, (b[3] - b[1]) / height)


def yolo_to_xyxy(b: XYXY, width: int, height: int) -> XYXY:
    cx, cy, w, h = b[0] * width, b[1] * height, b[2] * width, b[3] * height
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def xyxy_to_norm1000(b: XYXY, width: int, height: int) -> tuple[int, int, int, int]:
    """Qwen's convention: corners scaled to 0..1000, clamped, reordered if swapped."""
    x1, x2 = sorted((b[0], b[2]))
    y1, y2 = sorted((b[1], b[3]))

    def q(v: float, size: int) -> int:
        return int(round(min(1000.0, max(0.0, v / size * 1000.0))))

    return (q(x1, width), q(y1, height), q(x2, width), q(y2, height))


def norm1000_to_xyxy(b: Sequence[float], width: int, height: int) -> XYXY:
    x1, x2 = sorted((float(b[0]), float(b[2])))
    y1, y2 = sorted((float(b[1]), float(b[3])))
    x1, y1, x2, y2 = (min(1000.0, max(0.0, v)) for v in (x1, y1, x2, y2))
    return (x1 / 1000 * width, y1 / 1000 * height, x2 / 1000 * width, y2 / 1000 * height)


def clip_box(b: XYXY, width: int, height: int) -> XYXY:
    return (min(max(b[0], 0.0), width), min(max(b[1], 0.0), height),
            min(max(b[2], 0.0), width), min(max(b[3], 0.0), height))


def shift_box(b: XYXY, dx: float, dy: float) -> XYXY:
    return (b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy)


def box_area(b: XYXY) -> float:
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def is_valid_box(b: XYXY) -> bool:
    return all(math.isfinite(v) for v in b) and b[2] > b[0] and b[3] > b[1]


def intersects(a: XYXY, b: XYXY) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def iou(a: XYXY, b: XYXY) -> float:
    """IoU of two boxes; 0 when the union is empty."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = box_area(a) + box_area(b) - inter
    return inter / union if union > 0 else 0.0


def iou_matrix(a: Sequence[XYXY], b: Sequence[XYXY]) -> torch.Tensor:
    if len(a) == 0 or len(b) == 0:
        return torch.zeros((len(a), len(b)))
    iou: torch.Tensor = box_iou(torch.tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.float32))
    return iou


# --- tiles and windows -------------------------------------------------------

@dataclass(frozen=True)
class Win:
    """A named window in full-image pixels."""

    name: str
    box: XYXY

    @property
    def width(self) -> int:
        return int(self.box[2] - self.box[0])

    @property
    def height(self) -> int:
        return int(self.box[3] - self.box[1])


def _starts(length: int, size: int, step: int) -> list[int]:
    if size >= length:
        return [0]
    starts = list(range(0, length - size, step))
    starts.append(length - size)  # the last tile is aligned to the far edge
    return sorted(set(starts))


def tile_windows(width: int, height: int, size: int = 640, overlap: float = 0.2) -> list[Win]:
    """SAHI-style square tiles; edge tiles are shifted inward, never padded."""
    if size <= 0:
        raise ValueError("tile size must be > 0")
    if not 0 <= overlap < 1:
        raise ValueError("overlap must be in [0, 1)")
    tw, th = min(size, width), min(size, height)
    step_x = max(1, int(round(tw * (1 - overlap))))
    step_y = max(1, int(round(th * (1 - overlap))))
    wins: list[Win] = []
    for y in _starts(height, th, step_y):
        for x in _starts(width, tw, step_x):
            wins.append(Win(f"tile_{len(wins)}", (float(x), float(y), float(x + tw), float(y + th))))
    return wins


def cell_name(col: int, row: int) -> str:
    letters = ""
    col += 1
    while col:
        col, rem = divmod(col - 1, 26)
        letters = string.ascii_uppercase[rem] + letters
    return f"{letters}{row + 1}"


def grid_windows(width: int, height: int, cols: int = 2, rows: int = 2, overlap: float = 0.2) -> list[Win]:
    """A cols x rows grid; each cell grows by overlap * cell / 2 per side, clipped."""
    if cols < 1 or rows < 1:
        raise ValueError("grid needs at least one column and one row")
    cw, ch = width / cols, height / rows
    gx, gy = overlap * cw / 2, overlap * ch / 2
    wins = []
    for r in range(rows):
        for c in range(cols):
            box = (max(0.0, c * cw - gx), max(0.0, r * ch - gy),
                   min(float(width), (c + 1) * cw + gx), min(float(height), (r + 1) * ch + gy))
            wins.append(Win(cell_name(c, r), as_xyxy(round(v, 3) for v in box)))
    return wins


def parse_grid(spec: str) -> tuple[int, int]:
    """'2x3' -> (cols=2, rows=3)."""
    try:
        cols, rows = (int(p) for p in spec.lower().split("x"))
    except ValueError as exc:
        raise ValueError(f"grid spec must look like 2x2, got {spec!r}") from exc
    if not (1 <= cols <= 16 and 1 <= rows <= 16):
        raise ValueError(f"grid {spec!r} out of range 1..16")
    return cols, rows


# --- merging -----------------------------------------------------------------

@dataclass
class Scored:
    """A box with a score and a label; `ref` carries the caller's object."""

    box: XYXY
    score: float
    label: str
    ref: Any = None


#: Rule cells computed at once by greedy_groups: bounds its memory (a few MB) whatever the item count.
GROUP_BLOCK_CELLS = 1 << 18


def greedy_groups(order: Sequence[int] | np.ndarray,
                  absorbs: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> list[list[int]]:
    """The one greedy dedupe behind NMS, clustering and the calibration's evaluation.

    Walk `order` (best first). An item that no earlier group took starts a group and takes every
    later, still free item it absorbs. So the heads are greedy NMS under the caller's overlap rule,
    and every other item joins the first head that overlaps it. Each caller brings its own rule as
    `absorbs(heads, items)`, a bool matrix (row per head, column per item): its IoU source,
    threshold, >= or >, same label or not. Groups come in walk order, head first, members in walk
    order.

    The rule is asked for a block of the next items against all items still free (at most
    GROUP_BLOCK_CELLS cells), so memory stays bounded and numpy runs per block, Python per item.
    """
    rest = np.asarray(order, dtype=np.intp)
    groups: list[list[int]] = []
    while len(rest):
        n_rows = max(1, min(len(rest), GROUP_BLOCK_CELLS // len(rest)))
        # The walk runs in plain Python over the block's hits: per-item numpy calls would cost
        # more than the whole rule on the small sets that dominate (a few boxes per image).
        takes: list[list[int]] = [[] for _ in range(n_rows)]
        for k, col in zip(*(a.tolist() for a in np.nonzero(absorbs(rest[:n_rows], rest)))):
            if col > k:  # a head takes only later items (the rule may say yes to itself)
                takes[k].append(col)
        ids, free = rest.tolist(), [True] * len(rest)
        for k in range(n_rows):
            if not free[k]:
                continue
            group = [ids[k]]
            for col in takes[k]:
                if free[col]:
                    free[col] = False
                    group.append(ids[col])
            groups.append(group)
        rest = rest[n_rows:][np.array(free[n_rows:], dtype=bool)]
    return groups


def _score_order(scores: np.ndarray) -> np.ndarray:
    """Indexes by score descending; equal scores by index (a stable sort, so runs are repeatable)."""
    return np.argsort(-scores, kind="stable")


class _Boxes:
    """Float32 boxes and their areas, for IoUs computed as torchvision's box_iou does (the same
    float32 operations in the same order, so the same values) in plain numpy blocks."""

    def __init__(self, items: Sequence[Scored]):
        self.b = np.array([it.box for it in items], dtype=np.float32).reshape(-1, 4)
        self.area = (self.b[:, 2] - self.b[:, 0]) * (self.b[:, 3] - self.b[:, 1])

    def iou(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """IoU of boxes `rows` with boxes `cols`, widened to float64: thresholds such as 0.7 are not
        float32 values, and comparing in float32 would round them."""
        r, c = self.b[rows][:, None, :], self.b[cols][None, :, :]
        w = np.maximum(np.minimum(r[..., 2], c[..., 2]) - np.maximum(r[..., 0], c[..., 0]), np.float32(0))
        h = np.maximum(np.minimum(r[..., 3], c[..., 3]) - np.maximum(r[..., 1], c[..., 1]), np.float32(0))
        inter = w * h
        with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 of empty boxes is NaN: never a match
            iou: np.ndarray = (inter / (self.area[rows][:, None] + self.area[cols][None, :] - inter))
        return iou.astype(np.float64)


def _label_ids(items: Sequence[Scored]) -> np.ndarray:
    ids: dict[str, int] = {}
    return np.array([ids.setdefault(it.label, len(ids)) for it in items], dtype=np.intp)


def _groups_per_label(order: np.ndarray, labels: np.ndarray,
                      absorbs: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> list[list[int]]:
    """greedy_groups for a rule that never crosses labels: one walk per label (smaller blocks),
    groups put back in the walk order of their heads, which is what one walk over all gives."""
    pos = np.empty(len(order), dtype=np.intp)
    pos[order] = np.arange(len(order))
    groups = [g for lab in np.unique(labels) for g in greedy_groups(order[labels[order] == lab], absorbs)]
    groups.sort(key=lambda g: pos[g[0]])
    return groups


def greedy_clusters(items: Sequence[Scored], iou_thr: float, *, class_aware: bool = True,
                    cross_class_iou: float | None = None) -> list[list[int]]:
    """Group items: by score, each joins the first kept cluster it overlaps.

    An item joins a cluster when its IoU with the cluster's representative is
    >= iou_thr (same label) or >= cross_class_iou (other label, when given).
    iou_thr <= 0 disables merging. Returns index lists, representative first.
    """
    order = _score_order(np.array([it.score for it in items], dtype=np.float64))
    if iou_thr <= 0:
        return [[int(i)] for i in order]
    boxes, labels = _Boxes(items), _label_ids(items)
    if class_aware and cross_class_iou is None:
        return _groups_per_label(order, labels, lambda heads, rest: boxes.iou(heads, rest) >= iou_thr)
    if not class_aware:
        return greedy_groups(order, lambda heads, rest: boxes.iou(heads, rest) >= iou_thr)
    cross = math.inf if cross_class_iou is None else cross_class_iou
    return greedy_groups(order, lambda heads, rest: boxes.iou(heads, rest) >= np.where(
        labels[heads][:, None] == labels[rest][None, :], iou_thr, cross))


def nms_keep(items: Sequence[Scored], iou_thr: float) -> list[int]:
    """Class-aware NMS: kept indexes by score; an item goes when its IoU with a kept one of its
    label is > iou_thr (torchvision's rule, on float32 boxes and scores)."""
    boxes = _Boxes(items)
    order = _score_order(np.array([it.score for it in items], dtype=np.float32))
    groups = _groups_per_label(order, _label_ids(items), lambda heads, rest: boxes.iou(heads, rest) > iou_thr)
    return [g[0] for g in groups]


def fused_box(members: Sequence[Scored]) -> XYXY:
    """Score-weighted mean box (weights floored at 1e-6)."""
    ws = [max(m.score, 1e-6) for m in members]
    tot = sum(ws)
    return as_xyxy(sum(w * m.box[k] for w, m in zip(ws, members)) / tot for k in range(4))


def merge(items: Sequence[Scored], iou_thr: float = 0.5, method: str = "nms",
          max_det: int | None = None) -> list[tuple[Scored, list[int]]]:
    """Class-aware merge of overlapping boxes.

    method "nms": greedy NMS (an item goes when its IoU with a kept one is > iou_thr), the kept box as is;
    method "wbf": greedy clusters, box = score-weighted mean, score = max.
    Returns (merged item, member indexes) by descending score.
    """
    if method == "nms":
        out = [(items[i], [i]) for i in nms_keep(items, iou_thr)]
    elif method == "wbf":
        out = []
        for cl in greedy_clusters(items, iou_thr):
            rep = items[cl[0]]
            members = [items[i] for i in cl]
            out.append((Scored(fused_box(members), rep.score, rep.label, rep.ref), cl))
    else:
        raise ValueError(f"unknown merge method {method!r}")
    out.sort(key=lambda t: -t[0].score)
    return out[:max_det] if max_det else out
