"""Boxes, tiles, windows and class-aware merging.

Boxes are (x1, y1, x2, y2) pixel tuples unless a name says otherwise. IoU and
NMS go through torchvision.ops; clustering (which keeps every member, for
provenance and weighted box fusion) is a greedy pass over a torchvision IoU
matrix.
"""

from __future__ import annotations

import math
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, SupportsFloat

import torch
from torchvision.ops import batched_nms, box_iou

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


def greedy_clusters(items: Sequence[Scored], iou_thr: float, *, class_aware: bool = True,
                    cross_class_iou: float | None = None) -> list[list[int]]:
    """Group items: by score, each joins the first kept cluster it overlaps.

    An item joins a cluster when its IoU with the cluster's representative is
    >= iou_thr (same label) or >= cross_class_iou (other label, when given).
    iou_thr <= 0 disables merging. Returns index lists, representative first.
    """
    order = sorted(range(len(items)), key=lambda i: -items[i].score)
    if iou_thr <= 0:
        return [[i] for i in order]
    ious = iou_matrix([it.box for it in items], [it.box for it in items])
    clusters: list[list[int]] = []
    for i in order:
        for cl in clusters:
            rep = cl[0]
            same = items[rep].label == items[i].label or not class_aware
            thr = iou_thr if same else cross_class_iou
            if thr is not None and float(ious[rep, i]) >= thr:
                cl.append(i)
                break
        else:
            clusters.append([i])
    return clusters


def nms_keep(items: Sequence[Scored], iou_thr: float) -> list[int]:
    """Class-aware NMS through torchvision; returns kept indexes by score."""
    if not items:
        return []
    boxes = torch.tensor([it.box for it in items], dtype=torch.float32)
    scores = torch.tensor([it.score for it in items], dtype=torch.float32)
    labels = {lab: k for k, lab in enumerate(sorted({it.label for it in items}))}
    idxs = torch.tensor([labels[it.label] for it in items])
    return [int(i) for i in batched_nms(boxes, scores, idxs, iou_thr)]


def fused_box(members: Sequence[Scored]) -> XYXY:
    """Score-weighted mean box (weights floored at 1e-6)."""
    ws = [max(m.score, 1e-6) for m in members]
    tot = sum(ws)
    return as_xyxy(sum(w * m.box[k] for w, m in zip(ws, members)) / tot for k in range(4))


def merge(items: Sequence[Scored], iou_thr: float = 0.5, method: str = "nms",
          max_det: int | None = None) -> list[tuple[Scored, list[int]]]:
    """Class-aware merge of overlapping boxes.

    method "nms": torchvision batched NMS, the kept box as is;
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
