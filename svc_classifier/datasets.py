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

from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from svc_classifier.heads import BG_PREFIX
from tator_core import errors
from tator_core.datasets import read_coco, read_yolo_labels
from tator_core.geometry import XYXY
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
            boxes, skipped = read_yolo_labels(label, w, h, len(ds.labelmap))
            ds.skipped += skipped
        out.append(Annotated(img, boxes))
    return out


def _coco_split(ds: Dataset, doc_path: Path, split: str) -> list[Annotated]:
    try:
        doc = read_coco(doc_path)
    except (OSError, ValueError) as exc:
        raise errors.invalid_argument("dataset_dir", f"coco/{doc_path.name}: unreadable COCO file "
                                      f"({type(exc).__name__})") from exc
    keys = {match_key(n): i for i, n in enumerate(ds.labelmap)}
    cat = {cid: keys.get(match_key(name)) for cid, name in doc.categories.items()}
    ds.skipped += doc.skipped
    out = []
    for image_id, file_name in sorted(doc.images.items()):
        name = Path(file_name).name
        boxes = []
        for cid, box in doc.boxes[image_id]:
            cls = cat.get(cid)
            if cls is None:
                ds.skipped += 1
            else:
                boxes.append((cls, box))
        path = next((p for p in (ds.root / split / "images" / name, ds.root / split / name, ds.root / "images" / name)
                     if p.is_file() and _inside(ds.root, p)), None)
        if path is None:
            ds.skipped += len(boxes)
            continue
        out.append(Annotated(path, boxes))
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
