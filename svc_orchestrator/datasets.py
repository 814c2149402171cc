"""One dataset abstraction for every flow (prepass, calibration, catalogs).

Images and ground truth come from one place, so no layout silently gets no
labels. A dataset is a directory under the data root, in
YOLO layout (`labelmap.txt` + `{split}/images` + `{split}/labels`, or flat
`images/` + `labels/`) or COCO layout (`coco/<split>.json` or
`annotations/<split>.json`), and images, sizes and ground truth all come from
the same object. Image names are paths relative to the dataset root; anything
that escapes the root or passes through a symlink is ignored.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from PIL import Image

from tator_core import errors
from tator_core.datasets import read_coco, read_yolo_labels
from tator_core.geometry import XYXY
from tator_core.labels import (
    LabelmapError,
    default_glossary,
    glossary_hash,
    labelmap_hash,
    normalize_glossary,
    read_labelmap,
)

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
SPLITS = ("train", "val", "valid", "test")


@dataclass(frozen=True)
class GtBox:
    label: str
    class_id: int
    box: XYXY


@dataclass(frozen=True)
class ImageItem:
    name: str     # relative to the dataset root, e.g. "val/images/synth_000012.png"
    split: str    # train / val / test / "" (flat layout)
    path: Path


def _safe_files(folder: Path, root: Path) -> list[Path]:
    """Image files under folder, skipping symlinks and anything outside root."""
    if not folder.is_dir() or folder.is_symlink():
        return []
    out = []
    for p in sorted(folder.rglob("*")):
        if p.suffix.lower() not in IMAGE_EXTS or not p.is_file():
            continue
        if any(part.is_symlink() for part in [p, *p.parents] if root in part.parents or part == p):
            continue
        if root.resolve() not in p.resolve().parents:
            continue
        out.append(p)
    return out


@dataclass
class Dataset:
    id: str
    root: Path
    layout: str
    labelmap: list[str]
    _items: list[ImageItem] = field(default_factory=list)
    _coco_gt: dict[str, list[GtBox]] | None = None
    _sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- metadata ----------------------------------------------------------
    @cached_property
    def glossary_text(self) -> str:
        """The dataset's glossary.json (normalised), else the default glossary."""
        path = self.root / "glossary.json"
        if path.is_file() and not path.is_symlink():
            raw = path.read_text(encoding="utf-8")
            try:
                return normalize_glossary(json.loads(raw))
            except json.JSONDecodeError:
                return normalize_glossary(raw)
        return default_glossary(self.labelmap)

    @property
    def glossary_hash(self) -> str:
        return glossary_hash(self.glossary_text)

    @property
    def labelmap_hash(self) -> str:
        return labelmap_hash(self.labelmap)

    def items(self, split: str | None = None) -> list[ImageItem]:
        if split in (None, "", "all"):
            return list(self._items)
        return [it for it in self._items if it.split == split]

    @property
    def splits(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for it in self._items:
            counts[it.split or "all"] = counts.get(it.split or "all", 0) + 1
        return counts

    def item(self, name: str) -> ImageItem:
        for it in self._items:
            if it.name == name:
                return it
        raise errors.not_found("NOT_FOUND", f"dataset {self.id!r} has no image {name!r}", dataset_id=self.id,
                               image=name)

    def image_size(self, item: ImageItem) -> tuple[int, int]:
        with self._lock:
            if item.name not in self._sizes:
                with Image.open(item.path) as img:
                    self._sizes[item.name] = img.size
            return self._sizes[item.name]

    # --- ground truth --------------------------------------------------------
    def _yolo_label_path(self, item: ImageItem) -> Path:
        rel = item.path.relative_to(self.root)
        parts = list(rel.parts)
        # {split}/images/x.png -> {split}/labels/x.txt ; images/x.png -> labels/x.txt
        idx = len(parts) - 1 - parts[::-1].index("images") if "images" in parts else None
        if idx is None:
            return item.path.with_suffix(".txt")
        parts[idx] = "labels"
        return (self.root / Path(*parts)).with_suffix(".txt")

    def ground_truth(self, item: ImageItem) -> list[GtBox]:
        if self._coco_gt is not None:
            return list(self._coco_gt.get(item.name, []))
        path = self._yolo_label_path(item)
        if not path.is_file():
            return []
        w, h = self.image_size(item)
        boxes, _ = read_yolo_labels(path, w, h, len(self.labelmap))
        return [GtBox(self.labelmap[cls], cls, box) for cls, box in boxes]

    @cached_property
    def has_ground_truth(self) -> bool:
        if self._coco_gt is not None:
            return any(self._coco_gt.values())
        return any(self._yolo_label_path(it).is_file() and self._yolo_label_path(it).stat().st_size > 0
                   for it in self._items)

    def annotation_count(self) -> int:
        if self._coco_gt is not None:
            return sum(len(v) for v in self._coco_gt.values())
        total = 0
        for it in self._items:
            p = self._yolo_label_path(it)
            if p.is_file():
                total += sum(1 for ln in p.read_text().splitlines() if len(ln.split()) >= 5)
        return total


def _load_yolo(ds_id: str, root: Path) -> Dataset | None:
    lm = root / "labelmap.txt"
    if not lm.is_file():
        return None
    items = []
    for split in SPLITS:
        for p in _safe_files(root / split / "images", root):
            items.append(ImageItem(str(p.relative_to(root)), "val" if split == "valid" else split, p))
    if not items:
        items = [ImageItem(str(p.relative_to(root)), "", p) for p in _safe_files(root / "images", root)]
    if not items:
        return None
    return Dataset(ds_id, root, "yolo", read_labelmap(lm), items)


def _coco_files(root: Path) -> list[Path]:
    for sub in ("coco", "annotations"):
        d = root / sub
        if d.is_dir() and not d.is_symlink():
            files = sorted(p for p in d.glob("*.json") if p.is_file() and not p.is_symlink())
            if files:
                return files
    return []


def _load_coco(ds_id: str, root: Path) -> Dataset | None:
    files = _coco_files(root)
    if not files:
        return None
    items: list[ImageItem] = []
    gt: dict[str, list[GtBox]] = {}
    labelmap: list[str] | None = read_labelmap(root / "labelmap.txt") if (root / "labelmap.txt").is_file() else None
    for f in files:
        doc = read_coco(f)
        split = f.stem if f.stem in SPLITS else ""
        cats = doc.categories
        if labelmap is None:
            labelmap = [cats[k] for k in sorted(cats)]
        by_name = {n: i for i, n in enumerate(labelmap)}
        img_names: dict[int, str] = {}
        for image_id, file_name in doc.images.items():
            fname = Path(file_name)
            if fname.is_absolute() or ".." in fname.parts:  # unsafe names are reduced to their basename
                fname = Path(fname.name)
            for cand in (root / fname, root / split / "images" / fname, root / "images" / fname):
                if cand.is_file() and not cand.is_symlink() and root.resolve() in cand.resolve().parents:
                    rel = str(cand.relative_to(root))
                    items.append(ImageItem(rel, split, cand))
                    img_names[image_id] = rel
                    gt.setdefault(rel, [])
                    break
        for image_id, boxes in doc.boxes.items():
            name = img_names.get(image_id)
            for cid, box in boxes:
                label = cats.get(cid)
                if name is not None and label is not None and label in by_name:
                    gt[name].append(GtBox(label, by_name[label], box))
    if not items or not labelmap:
        return None
    return Dataset(ds_id, root, "coco", labelmap, sorted(items, key=lambda i: i.name), gt)


def load_dataset(root: Path, ds_id: str | None = None) -> Dataset | None:
    """YOLO layout first (it is what the detectors train on), then COCO."""
    ds_id = ds_id or root.name
    try:
        return _load_yolo(ds_id, root) or _load_coco(ds_id, root)
    except (LabelmapError, OSError, ValueError, KeyError, json.JSONDecodeError):
        return None


class DatasetCatalog:
    """Datasets under the data root, loaded lazily and cached by id."""

    def __init__(self, data_root: Path) -> None:
        self.data_root = Path(data_root)
        self._cache: dict[str, tuple[tuple, Dataset]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _signature(root: Path) -> tuple:
        """Cheap change detector: editing the labelmap, the glossary or adding a
        split/annotation file invalidates the cached Dataset without a restart."""
        sig: list[tuple[str, int | None, int | None]] = []
        for p in (root, root / "labelmap.txt", root / "glossary.json", *(root / s for s in SPLITS),
                  root / "coco", root / "annotations"):
            try:
                st = p.stat()
                sig.append((p.name, st.st_mtime_ns, st.st_size))
            except OSError:
                sig.append((p.name, None, None))
        return tuple(sig)

    def list(self) -> list[Dataset]:
        if not self.data_root.is_dir():
            return []
        out = []
        for d in sorted(self.data_root.iterdir()):
            if d.is_dir() and not d.is_symlink() and not d.name.startswith("."):
                try:
                    out.append(self.get(d.name))
                except errors.TatorError:
                    continue
        return out

    def get(self, ds_id: str) -> Dataset:
        if not ds_id or "/" in ds_id or "\\" in ds_id or set(ds_id) <= {"."}:
            raise errors.invalid_argument("dataset_id", f"invalid dataset id {ds_id!r}")
        root = self.data_root / ds_id
        sig = self._signature(root)
        with self._lock:
            hit = self._cache.get(ds_id)
            if hit is not None and hit[0] == sig:
                return hit[1]
        ds = load_dataset(root, ds_id) if root.is_dir() and not root.is_symlink() else None
        if ds is None:
            raise errors.not_found("DATASET_NOT_FOUND", f"no dataset {ds_id!r}",
                                   dataset_id=ds_id)
        with self._lock:
            self._cache[ds_id] = (sig, ds)
        return ds
