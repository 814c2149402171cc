"""Synthetic shapes world: a deterministic dataset generator for tests and the demo.

Scenes hold coloured circles, squares and triangles (the labelmap) plus distractor shapes that are
never labelled (plus signs, stars, hexagons, thin ellipses), on textured, noisy backgrounds, with
partial occlusion. About one image in eight is large (800–1024 px) with small objects (12–28 px), which
is what the tiling code paths need to show: the fixture YOLO at imgsz 160 found 0 of 58 such objects
full-frame, and 57, 57 and 45 of them with 160, 224 and 320 px tiles (25% overlap; seed 0).

Determinism: every image draws from its own numpy Generator seeded by (seed, image index), so an image
does not depend on how many images come before it, and PNGs are written by Pillow with fixed
parameters and no metadata. Same seed and count ⇒ byte-identical output (tested on one machine;
another CPU or numpy build could round the background's float maths differently).

Output (OUT):
  labelmap.txt, glossary.json, dataset.json (generator version, seed, counts), data.yaml (ultralytics;
  paths relative to the yaml's directory, so the tree can be moved),
  {train,val,test}/images/synth_NNNNNN.png, {train,val,test}/labels/synth_NNNNNN.txt (`cls cx cy w h`),
  coco/{train,val,test}.json (bbox = [x, y, w, h] pixels, category ids 0..2, file_name = basename).
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import numpy as np
from PIL import Image, ImageDraw

from tator_fixtures import LABELMAP

GENERATOR_VERSION = 1
SPLITS = ("train", "val", "test")

GLOSSARY: dict[str, list[str]] = {
    "circle": ["disc", "round shape", "ring", "dot", "orb"],
    "square": ["box", "block", "tile", "quadrilateral"],
    "triangle": ["wedge", "three-sided shape", "delta", "pyramid shape"],
}
DISTRACTORS = ("plus", "star", "hexagon", "ellipse")

#: Every 8th image (index % 8 == 7) is large with small objects.
LARGE_EVERY = 8
SMALL_SIDE = (160, 320)
LARGE_SIDE = (800, 1024)
SMALL_OBJECT = (24, 64)
LARGE_OBJECT = (12, 28)
#: An object must keep at least this fraction of its pixels visible after later shapes cover it.
MIN_VISIBLE = 0.6
PLACEMENT_TRIES = 30


@dataclass(frozen=True)
class Obj:
    """A labelled object: class id and visible bbox in pixels (x0, y0, x1, y1), x1/y1 exclusive."""

    cls: int
    box: tuple[int, int, int, int]


def image_name(index: int) -> str:
    return f"synth_{index:06d}.png"


def split_of(seed: int, images: int, val_frac: float = 0.15, test_frac: float = 0.15) -> list[str]:
    """Split per image index: a seeded permutation, then the first 70% train, 15% val, the rest test.

    Large images are assigned separately in the same way, so every split gets its share of them.
    """
    rng = np.random.default_rng([seed, 1])
    out = [""] * images
    groups = ([i for i in range(images) if not is_large(i)], [i for i in range(images) if is_large(i)])
    for group in groups:
        order = [group[j] for j in rng.permutation(len(group))]
        n_val = round(len(order) * val_frac)
        n_test = round(len(order) * test_frac)
        n_train = len(order) - n_val - n_test
        for pos, index in enumerate(order):
            out[index] = "train" if pos < n_train else "val" if pos < n_train + n_val else "test"
    return out


def split_images(root: Path, split: str) -> list[str]:
    """Image names of one split of a generated dataset, relative to its root and sorted
    (`val/images/synth_000004.png`): the names a Prepass request's `dataset_image` takes."""
    return sorted(f"{split}/images/{p.name}" for p in (root / split / "images").glob("*.png"))


def is_large(index: int) -> bool:
    return index % LARGE_EVERY == LARGE_EVERY - 1


def _regular(cx: float, cy: float, radius: float, theta: float, n: int,
             inner: float | None = None) -> list[tuple[float, float]]:
    """n vertices evenly spaced on a circle from angle theta; with `inner`, odd vertices sit at that radius."""
    pts = []
    for k in range(n):
        rad = inner if inner is not None and k % 2 else radius
        angle = theta + k * 2 * math.pi / n
        pts.append((cx + rad * math.cos(angle), cy + rad * math.sin(angle)))
    return pts


def _polygon(kind: str, cx: float, cy: float, size: float,
             rng: np.random.Generator) -> list[tuple[float, float]]:
    """Vertices of a polygonal shape of about `size` px across, centred at (cx, cy)."""
    r = size / 2
    theta = rng.uniform(0, 2 * math.pi)
    if kind == "square":
        theta = rng.uniform(-math.pi / 12, math.pi / 12) + math.pi / 4  # near axis-aligned, side = size
        return _regular(cx, cy, r * math.sqrt(2), theta, 4)
    if kind == "triangle":
        return _regular(cx, cy, r, theta, 3)
    if kind == "hexagon":
        return _regular(cx, cy, r, theta, 6)
    if kind == "star":
        return _regular(cx, cy, r, theta, 10, inner=r * 0.45)
    if kind == "plus":
        t = r * rng.uniform(0.25, 0.4)  # half arm width
        arms = [(-t, -r), (t, -r), (t, -t), (r, -t), (r, t), (t, t),
                (t, r), (-t, r), (-t, t), (-r, t), (-r, -t), (-t, -t)]
        c, s = math.cos(theta), math.sin(theta)
        return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in arms]
    raise ValueError(kind)


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    """A saturated, bright colour that stands out from the dark backgrounds."""
    hue = rng.uniform(0, 6)
    sector, frac = int(hue), hue - int(hue)
    hi, lo = int(rng.integers(190, 256)), int(rng.integers(0, 70))
    mid_up = int(lo + (hi - lo) * frac)
    mid_down = int(hi - (hi - lo) * frac)
    return [
        (hi, mid_up, lo), (mid_down, hi, lo), (lo, hi, mid_up), (lo, mid_down, hi), (mid_up, lo, hi), (hi, lo, mid_down)
    ][sector]


def _background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Dark base colour + smooth gradient + stripes or blotches + per-pixel noise, as uint8 HxWx3.

    Smooth parts are computed on a 1/8-resolution grid and upsampled, which keeps 1024 px scenes cheap.
    """
    f32 = np.float32
    gh, gw = h // 8 + 1, w // 8 + 1
    yy, xx = (a * 8 for a in np.mgrid[0:gh, 0:gw].astype(f32))
    angle = rng.uniform(0, 2 * math.pi)
    ramp = (xx * math.cos(angle) + yy * math.sin(angle)) / max(w, h)
    smooth = rng.uniform(10, 90, size=3).astype(f32) + rng.uniform(-25, 25, size=3).astype(f32) * ramp[..., None]
    for _ in range(int(rng.integers(0, 6))):
        bx, by, br = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.05, 0.3) * max(w, h)
        blob = np.exp(-((xx - bx) ** 2 + (yy - by) ** 2) / (2 * br**2))
        smooth += rng.uniform(-20, 20, size=3).astype(f32) * blob[..., None]
    coarse = Image.fromarray(np.clip(smooth, 0, 255).astype(np.uint8), "RGB")
    img = np.asarray(coarse.resize((gw * 8, gh * 8), Image.BILINEAR))[:h, :w].astype(f32)
    if rng.random() < 0.5:
        period = rng.uniform(6, 24)
        fy, fx = np.mgrid[0:h, 0:w].astype(f32)
        phase = (fx * math.sin(angle) - fy * math.cos(angle)) * f32(2 * math.pi / period)
        img += f32(rng.uniform(4, 14)) * np.sin(phase)[..., None]
    img += rng.standard_normal((h, w, 1), dtype=f32) * f32(rng.uniform(4, 16))
    img += rng.standard_normal((h, w, 3), dtype=f32) * f32(4)
    return np.clip(img, 0, 255).astype(np.uint8)


def _shape_mask(kind: str, cx: float, cy: float, size: float, rng: np.random.Generator) -> tuple[int, int, np.ndarray]:
    """The shape's mask on a local canvas: (x offset, y offset, bool mask), to keep big scenes cheap."""
    ox, oy = int(cx - size) , int(cy - size)
    side = int(2 * size) + 2
    cx, cy = cx - ox, cy - oy
    mask = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(mask)
    r = size / 2
    if kind == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    elif kind == "ellipse":
        ratio = rng.uniform(2.5, 4.0)  # strongly elongated, so never a plausible circle
        if rng.random() < 0.5:
            draw.ellipse((cx - r, cy - r / ratio, cx + r, cy + r / ratio), fill=255)
        else:
            draw.ellipse((cx - r / ratio, cy - r, cx + r / ratio, cy + r), fill=255)
    else:
        draw.polygon(_polygon(kind, cx, cy, size, rng), fill=255)
    return ox, oy, np.asarray(mask) > 0


def _clip(ox: int, oy: int, mask: np.ndarray, w: int, h: int) -> tuple[tuple[slice, slice], np.ndarray]:
    """Clip a local mask to the image; returns the image region and the matching part of the mask."""
    x0, y0 = max(ox, 0), max(oy, 0)
    x1, y1 = min(ox + mask.shape[1], w), min(oy + mask.shape[0], h)
    return (slice(y0, y1), slice(x0, x1)), mask[y0 - oy : y1 - oy, x0 - ox : x1 - ox]


def render_scene(seed: int, index: int) -> tuple[Image.Image, list[Obj]]:
    """One scene: the image and its labelled objects (distractors are drawn but not returned)."""
    rng = np.random.default_rng([seed, 0, index])
    large = is_large(index)
    lo, hi = LARGE_SIDE if large else SMALL_SIDE
    w, h = (int(v) for v in rng.integers(lo, hi + 1, size=2))
    smin, smax = LARGE_OBJECT if large else SMALL_OBJECT
    n_targets = int(rng.integers(3, 7) if large else rng.integers(1, 5))
    n_distractors = int(rng.integers(1, 4) if large else rng.integers(0, 3))
    kinds = [LABELMAP[int(c)] for c in rng.integers(0, len(LABELMAP), size=n_targets)]
    kinds += [DISTRACTORS[int(c)] for c in rng.integers(0, len(DISTRACTORS), size=n_distractors)]
    kinds = [kinds[i] for i in rng.permutation(len(kinds))]  # distractors occlude and get occluded too

    canvas = _background(rng, w, h)
    owner = np.full((h, w), -1, dtype=np.int16)  # index of the shape visible at each pixel
    areas: list[int] = []  # full pixel area per placed shape
    visible: list[int] = []  # pixels still visible per placed shape
    placed: list[str] = []
    for kind in kinds:
        for _ in range(PLACEMENT_TRIES):
            size = float(rng.uniform(smin, smax))
            cx, cy = rng.uniform(size / 2, w - size / 2), rng.uniform(size / 2, h - size / 2)
            region, mask = _clip(*_shape_mask(kind, cx, cy, size, rng), w, h)
            below = owner[region][mask]
            covered = np.bincount(below[below >= 0], minlength=len(placed))
            if all(visible[i] - covered[i] >= MIN_VISIBLE * areas[i] for i in range(len(placed))):
                break
        else:
            continue  # no room without hiding an earlier shape too much: leave this one out
        canvas[region][mask] = _colour(rng)
        owner[region][mask] = len(placed)
        visible = [v - int(c) for v, c in zip(visible, covered)] + [int(mask.sum())]
        areas.append(int(mask.sum()))
        placed.append(kind)

    objects = []
    for i, kind in enumerate(placed):
        if kind not in LABELMAP:
            continue
        ys, xs = np.nonzero(owner == i)
        objects.append(Obj(LABELMAP.index(kind), (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)))
    return Image.fromarray(canvas, "RGB"), objects


def yolo_lines(objects: list[Obj], w: int, h: int) -> str:
    rows = []
    for obj in objects:
        x0, y0, x1, y1 = obj.box
        cx, cy, bw, bh = (x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h
        rows.append(f"{obj.cls} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}")
    return "".join(row + "\n" for row in rows)


def save_png(image: Image.Image, path: Path) -> None:
    """Fixed encoder parameters and no metadata, so the bytes depend only on the pixels."""
    image.save(path, format="PNG", compress_level=1, optimize=False)


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


class SplitCounts(TypedDict):
    """What dataset.json records per split."""

    images: int
    large_images: int
    objects: int
    per_class: dict[str, int]


def generate(out: Path, *, seed: int, images: int, splits: tuple[str, ...] = SPLITS) -> dict:
    """Write the dataset to `out` (created; existing files are overwritten) and return dataset.json.

    `splits` limits which splits are rendered (a test that needs only the test split skips the rest);
    the split of each image is the same either way. An earlier synthetic dataset at `out` is replaced
    whole, so no stale image survives; any other non-empty directory is refused.
    """
    out = Path(out)
    if out.is_dir() and any(out.iterdir()):
        if not (out / "dataset.json").is_file():
            raise FileExistsError(f"{out} is not empty and holds no synthetic dataset; not writing into it")
        for sub in (*SPLITS, "coco"):
            shutil.rmtree(out / sub, ignore_errors=True)
    assignment = split_of(seed, images)
    categories = [{"id": i, "name": n} for i, n in enumerate(LABELMAP)]
    coco = {s: {"images": [], "annotations": [], "categories": categories} for s in splits}
    counts: dict[str, SplitCounts] = {
        s: {"images": 0, "large_images": 0, "objects": 0, "per_class": dict.fromkeys(LABELMAP, 0)} for s in splits}
    for split in splits:
        (out / split / "images").mkdir(parents=True, exist_ok=True)
        (out / split / "labels").mkdir(parents=True, exist_ok=True)
    (out / "coco").mkdir(parents=True, exist_ok=True)

    for index, split in enumerate(assignment):
        if split not in splits:
            continue
        image, objects = render_scene(seed, index)
        name = image_name(index)
        save_png(image, out / split / "images" / name)
        (out / split / "labels" / name.replace(".png", ".txt")).write_text(yolo_lines(objects, *image.size))
        doc = coco[split]
        doc["images"].append({"id": index, "file_name": name, "width": image.width, "height": image.height})
        for obj in objects:
            x0, y0, x1, y1 = obj.box
            doc["annotations"].append({
                "id": len(doc["annotations"]), "image_id": index, "category_id": obj.cls,
                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0), "iscrowd": 0,
            })
        c = counts[split]
        c["images"] += 1
        c["large_images"] += int(is_large(index))
        c["objects"] += len(objects)
        for obj in objects:
            c["per_class"][LABELMAP[obj.cls]] += 1

    for split in splits:
        _write_json(out / "coco" / f"{split}.json", coco[split])
    (out / "labelmap.txt").write_text("".join(f"{name}\n" for name in LABELMAP))
    _write_json(out / "glossary.json", GLOSSARY)
    (out / "data.yaml").write_text(
        "# ultralytics dataset; paths are relative to this file's directory\n"
        + "".join(f"{s}: {s}/images\n" for s in splits)
        + f"nc: {len(LABELMAP)}\nnames: [{', '.join(LABELMAP)}]\n"
    )
    meta = {"generator": "tator_fixtures.synth", "version": GENERATOR_VERSION, "seed": seed, "images": images,
            "labelmap": list(LABELMAP), "splits": counts}
    _write_json(out / "dataset.json", meta)
    return meta
