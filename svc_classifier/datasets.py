"""Ground-truth boxes of a dataset directory, for head training.

Layouts, tried in this order: YOLO split (`{train,val}/images` +
`{train,val}/labels`), YOLO flat (`images/` + `labels/`), COCO
(`coco/{split}.json`, bbox `[x, y, w, h]` pixels), or crop folders
(`{train,val}/<class>/*.png` or `<class>/*.png`: each image is one crop of its
folder's class, the whole image its box; folders named `__bg_*` add
background classes). The class names come from the dataset's
`labelmap.txt`; COCO categories and crop folders are matched to it by the
`tator_core.labels.match_key`. Image names are reduced to their basename and must stay
inside the dataset root (no traversal, no symlink escapes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from svc_classifier.heads import BG_PREFIX
from tator_core import errors
from tator_core.geometry import XYXY, as_xyxy, yolo_to_xyxy
from tator_core.labels import LabelmapError, match_key, read_labelmap

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
SPLITS = ("train", "val")


@dataclass
class Annotated:
    image: Path
    boxes: list[tuple[int, XYXY]]          # (class index, pixel box)


@dataclass
class Dataset:
    root: Path
    labelmap: list[str]
    layout: str                            # yolo_split | yolo_flat | coco | crops
    splits: dict[str, list[Annotated]] = field(default_factory=dict)
    skipped: int = 0                       # unusable label lines / annotations

    @property
    def n_boxes(self) -> int:
        return sum(len(a.boxes) for items in self.splits.values() for a in items)


def _inside(root: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def _images(folder: Path, root: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.suffix.lower() in IMAGE_EXTS and p.is_file() and _inside(root, p)) if folder.is_dir() else []


def _yolo_split(ds: Dataset, images_dir: Path, labels_dir: Path) -> list[Annotated]:
    out = []
    for img in _images(images_dir, ds.root):
        label = labels_dir / f"{img.stem}.txt"
        boxes: list[tuple[int, XYXY]] = []
        if label.is_file() and _inside(ds.root, label):
            with Image.open(img) as im:  # header only: the size
                w, h = im.size
            for line in label.read_text(errors="replace").splitlines():
                parsed = _yolo_line(line, w, h, len(ds.labelmap))
                if parsed is None:
                    ds.skipped += bool(line.strip())
                else:
                    boxes.append(parsed)
        out.append(Annotated(img, boxes))
    return out


def _yolo_line(line: str, w: int, h: int, n_classes: int) -> tuple[int, XYXY] | None:
    """`cls cx cy w h`, or a polygon `cls x1 y1 x2 y2 ...` (normalised) whose bounds are the box."""
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
        box = yolo_to_xyxy(as_xyxy(vals), w, h)
    elif len(vals) % 2 == 0:
        xs, ys = vals[0::2], vals[1::2]
        box = (min(xs) * w, min(ys) * h, max(xs) * w, max(ys) * h)
    else:
        return None
    return (cls, box) if box[2] > box[0] and box[3] > box[1] else None


def _coco_split(ds: Dataset, doc_path: Path, split: str) -> list[Annotated]:
    try:
        doc = json.loads(doc_path.read_text())
        keys = {match_key(n): i for i, n in enumerate(ds.labelmap)}
        cat = {int(c["id"]): keys.get(match_key(str(c["name"]))) for c in doc.get("categories", [])}
        images = {int(im["id"]): Path(str(im["file_name"])).name for im in doc.get("images", [])}
        anns = doc.get("annotations", [])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise errors.invalid_argument("dataset_dir", f"coco/{doc_path.name}: unreadable COCO file "
                                      f"({type(exc).__name__})") from exc
    per_image: dict[int, list[tuple[int, XYXY]]] = {i: [] for i in images}
    for ann in anns:
        try:
            cls, image_id = cat.get(int(ann["category_id"])), int(ann["image_id"])
            x, y, w, h = (float(v) for v in ann["bbox"])
        except (KeyError, TypeError, ValueError):
            ds.skipped += 1
            continue
        if cls is None or image_id not in per_image or w <= 0 or h <= 0:
            ds.skipped += 1
            continue
        per_image[image_id].append((cls, (x, y, x + w, y + h)))
    out = []
    for image_id, name in sorted(images.items()):
        path = next((p for p in (ds.root / split / "images" / name, ds.root / split / name, ds.root / "images" / name)
                     if p.is_file() and _inside(ds.root, p)), None)
        if path is None:
            ds.skipped += len(per_image[image_id])
            continue
        out.append(Annotated(path, per_image[image_id]))
    return out


def _class_dirs(ds: Dataset, base: Path) -> list[tuple[Path, str]]:
    """Sub-folders of base named like a labelmap class (by match key) or `__bg_*`."""
    if not base.is_dir():
        return []
    keys = {match_key(n): n for n in ds.labelmap}
    out = []
    for folder in sorted(p for p in base.iterdir() if p.is_dir() and _inside(ds.root, p)):
        name = keys.get(match_key(folder.name)) or (folder.name if folder.name.startswith(BG_PREFIX) else None)
        if name is not None:
            out.append((folder, name))
    return out


def _crop_folders(ds: Dataset, base: Path) -> list[Annotated]:
    out = []
    for folder, name in _class_dirs(ds, base):
        if name not in ds.labelmap:
            ds.labelmap.append(name)   # a background class the labelmap does not list
        cls = ds.labelmap.index(name)
        for img in _images(folder, ds.root):
            try:
                with Image.open(img) as im:
                    w, h = im.size
            except OSError:
                ds.skipped += 1
                continue
            out.append(Annotated(img, [(cls, (0.0, 0.0, float(w), float(h)))]))
    return out


def read_dataset(root: Path) -> Dataset:
    if not root.is_dir():
        raise errors.not_found("DATASET_NOT_FOUND", f"no dataset directory {root.name!r}", dataset_dir=root.name)
    try:
        labelmap = read_labelmap(root / "labelmap.txt")
    except FileNotFoundError as exc:
        raise errors.invalid_argument("dataset_dir", f"dataset {root.name!r} has no labelmap.txt") from exc
    except (LabelmapError, OSError, UnicodeDecodeError) as exc:
        why = exc if isinstance(exc, LabelmapError) else type(exc).__name__  # OS errors carry server paths
        raise errors.invalid_argument("dataset_dir", f"dataset {root.name!r}: labelmap.txt: {why}") from exc
    ds = Dataset(root, labelmap, "")
    if any((root / s / "labels").is_dir() for s in SPLITS):
        ds.layout = "yolo_split"
        ds.splits = {s: _yolo_split(ds, root / s / "images", root / s / "labels")
                     for s in SPLITS if (root / s / "labels").is_dir()}
    elif (root / "labels").is_dir():
        ds.layout = "yolo_flat"
        ds.splits = {"train": _yolo_split(ds, root / "images", root / "labels")}
    elif any((root / "coco" / f"{s}.json").is_file() for s in SPLITS):
        ds.layout = "coco"
        ds.splits = {s: _coco_split(ds, root / "coco" / f"{s}.json", s)
                     for s in SPLITS if (root / "coco" / f"{s}.json").is_file()}
    elif any(_class_dirs(ds, root / s) for s in SPLITS):
        ds.layout = "crops"
        ds.splits = {s: _crop_folders(ds, root / s) for s in SPLITS if (root / s).is_dir()}
    elif _class_dirs(ds, root):
        ds.layout = "crops"
        ds.splits = {"train": _crop_folders(ds, root)}
    if not ds.layout or ds.n_boxes == 0:
        raise errors.failed_precondition("NO_GROUND_TRUTH", f"dataset {root.name!r}: no YOLO labels, COCO boxes or crop folders",
                                         dataset_dir=root.name)
    return ds
