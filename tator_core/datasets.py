"""The two annotation formats datasets come in: YOLO label files and COCO JSON.

One reader for each, shared by every service that reads ground truth, so a label line or an
annotation is usable or not the same way everywhere. Where the files lie (split folders, flat
folders, `coco/` or `annotations/`) and how class names map to a labelmap is the caller's.

A YOLO line is `cls cx cy w h` or a polygon `cls x1 y1 x2 y2 ...`, normalised to the image; the
polygon's bounds are its box. A COCO bbox is `[x, y, w, h]` in pixels. Anything else (too few or
non-numeric values, an odd polygon, a class outside the labelmap, an empty or non-finite box) is
skipped and counted, never an exception.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tator_core.geometry import XYXY, as_xyxy, xywh_to_xyxy, yolo_to_xyxy

Labelled = tuple[int, XYXY]  # (class index or category id, pixel box)


def _usable(box: XYXY) -> bool:
    return all(math.isfinite(v) for v in box) and box[2] > box[0] and box[3] > box[1]


def yolo_box(line: str, width: int, height: int, n_classes: int) -> Labelled | None:
    """One label line as (class, pixel box); None when it is not a usable box."""
    parts = line.split()
    if len(parts) < 5:
        return None
    try:
        cls = int(float(parts[0]))
        vals = [float(v) for v in parts[1:]]
    except ValueError:
        return None
    if not 0 <= cls < n_classes:
        return None
    if len(vals) == 4:
        box = yolo_to_xyxy(as_xyxy(vals), width, height)
    elif len(vals) % 2 == 0:
        xs, ys = vals[0::2], vals[1::2]
        box = (min(xs) * width, min(ys) * height, max(xs) * width, max(ys) * height)
    else:
        return None
    return (cls, box) if _usable(box) else None


def read_yolo_labels(path: Path, width: int, height: int, n_classes: int) -> tuple[list[Labelled], int]:
    """The usable boxes of a label file, and how many non-blank lines were not usable."""
    boxes: list[Labelled] = []
    skipped = 0
    for line in path.read_text(errors="replace").splitlines():
        parsed = yolo_box(line, width, height, n_classes)
        if parsed is not None:
            boxes.append(parsed)
        elif line.strip():
            skipped += 1
    return boxes, skipped


@dataclass
class CocoDoc:
    categories: dict[int, str]                     # category id -> name
    images: dict[int, str]                         # image id -> file_name as written
    boxes: dict[int, list[Labelled]] = field(default_factory=dict)  # image id -> (category id, box)
    skipped: int = 0                               # annotations without a known image or a usable bbox


def _int_keyed(entries: Any, value: str) -> dict[int, str]:
    out: dict[int, str] = {}
    for entry in entries if isinstance(entries, list) else []:
        try:
            out[int(entry["id"])] = str(entry[value])
        except (KeyError, TypeError, ValueError):
            continue
    return out


def read_coco(path: Path) -> CocoDoc:
    """A COCO file's categories, images and usable boxes. OSError or ValueError (JSON errors are
    ValueErrors) when the file cannot be read or is not a JSON object."""
    doc = json.loads(path.read_text())
    if not isinstance(doc, dict):
        raise ValueError("a COCO file is a JSON object")
    out = CocoDoc(_int_keyed(doc.get("categories"), "name"), _int_keyed(doc.get("images"), "file_name"))
    out.boxes = {i: [] for i in out.images}
    anns = doc.get("annotations")
    for ann in anns if isinstance(anns, list) else []:
        try:
            image_id, cat = int(ann["image_id"]), int(ann["category_id"])
            x, y, w, h = (float(v) for v in ann["bbox"])
        except (KeyError, TypeError, ValueError):
            out.skipped += 1
            continue
        box = xywh_to_xyxy((x, y, w, h))
        if image_id not in out.boxes or not _usable(box):
            out.skipped += 1
            continue
        out.boxes[image_id].append((cat, box))
    return out
