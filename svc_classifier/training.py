"""Training a head: dataset boxes -> padded crops -> backbone embeddings ->
fit -> a Head with its validation accuracy.

Synchronous and free of gRPC: the service runs it in a worker thread and
sends the embedding work to its device thread through `embed_fn`, so scoring
calls keep being served between training batches; `svc_classifier.tiny` runs
the same code directly.

Background crops are sampled only from scene images (YOLO/COCO), never from a
crop-folder dataset, whose `__bg_*` folders give background crops directly.
Validation uses the dataset's val split; a dataset without one (flat YOLO)
holds out a seeded 20% of its images. The head records the SHA-256 of every
image of both (`Head.trained_on`), so no calibration reports numbers on them.
Background crops (class
`__bg_background`) are squares of object size that overlap no
labelled box by more than 10%.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from svc_classifier import fit as fitting
from svc_classifier.crops import cut, padded_region
from svc_classifier.datasets import Annotated, Dataset, read_dataset
from svc_classifier.embedding import Embedded
from svc_classifier.heads import BG_PREFIX, Head
from tator_core import errors
from tator_core.geometry import XYXY, box_area
from tator_core.hashing import stable_hash
from tator_core.images import decode_image
from tator_core.registry import TrainingRecord

log = logging.getLogger("tator.classifier.training")

BACKGROUND_CLASS = f"{BG_PREFIX}background"
EMBED_CHUNK = 64
HOLDOUT = 0.2


@dataclass
class TrainParams:
    dataset_dir: Path
    backbone_id: str = ""
    head_type: str = "logreg"
    head_id: str = ""
    background_crops_per_image: int = 0
    max_crops_per_class: int = 0
    normalize: bool = False
    seed: int = 0
    context_padding: float = 0.1
    make_default: bool = False
    batch_size: int = 32
    max_crops: int = 100_000


@dataclass
class Progress:
    phase: str          # embed | fit | save
    done: int
    total: int
    message: str = ""


@dataclass
class TrainOutcome:
    head: Head
    train_crops: int
    val_crops: int
    val_accuracy: float
    dropped_classes: list[str] = field(default_factory=list)


class TrainingCancelled(Exception):
    """The caller went away; nothing was saved."""


@dataclass
class _Crop:
    image: int          # index into the split's items
    box: XYXY
    label: int


def derive_head_id(params: TrainParams, backbone_id: str) -> str:
    key = stable_hash({"dataset": str(params.dataset_dir), "backbone": backbone_id, "type": params.head_type,
                       "bg": params.background_crops_per_image, "cap": params.max_crops_per_class,
                       "norm": params.normalize, "seed": params.seed, "pad": params.context_padding})
    raw = f"head-{params.dataset_dir.name or 'dataset'}-{backbone_id}-{params.head_type}"
    return f"{re.sub(r'[^A-Za-z0-9_-]+', '-', raw)[:110]}-{key[:8]}"


def _overlap(a: XYXY, b: XYXY) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min(box_area(a), box_area(b))
    return ix * iy / smaller if smaller > 0 else 0.0


def background_boxes(width: int, height: int, objects: Sequence[XYXY], k: int,
                     rng: np.random.Generator) -> list[XYXY]:
    sides = [max(b[2] - b[0], b[3] - b[1]) for b in objects] or [0.2 * min(width, height)]
    out: list[XYXY] = []
    for _ in range(k):
        for _attempt in range(30):
            side = min(float(rng.choice(sides)) * float(rng.uniform(0.8, 1.25)), float(min(width, height)))
            x, y = float(rng.uniform(0, width - side)), float(rng.uniform(0, height - side))
            cand = (x, y, x + side, y + side)
            if side >= 4 and all(_overlap(cand, o) <= 0.1 for o in list(objects) + out):
                out.append(cand)
                break
    return out


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        return im.size


def plan(items: list[Annotated], n_classes: int, params: TrainParams, split_no: int,
         bg_label: int | None) -> list[_Crop]:
    crops: list[_Crop] = []
    for i, item in enumerate(items):
        crops += [_Crop(i, box, cls) for cls, box in item.boxes]
        if bg_label is not None and params.background_crops_per_image > 0:
            rng = np.random.default_rng([params.seed, split_no, i])
            try:
                w, h = _image_size(item.image)
            except OSError:
                continue
            crops += [_Crop(i, b, bg_label) for b in
                      background_boxes(w, h, [b for _, b in item.boxes], params.background_crops_per_image, rng)]
    if params.max_crops_per_class > 0:
        rng = np.random.default_rng([params.seed, split_no, 1_000_003])
        keep: list[_Crop] = []
        for cls in range(n_classes):
            members = [c for c in crops if c.label == cls]
            if len(members) > params.max_crops_per_class:
                picks = sorted(rng.choice(len(members), params.max_crops_per_class, replace=False))
                members = [members[j] for j in picks]
            keep += members
        crops = sorted(keep, key=lambda c: c.image)
    return crops


def _splits(ds: Dataset, seed: int) -> tuple[list[Annotated], list[Annotated]]:
    train = ds.splits.get("train", [])
    val = ds.splits.get("val", [])
    if val and any(a.boxes for a in val):
        return train, val
    order = np.random.default_rng([seed, 7]).permutation(len(train))
    n_val = max(1, int(round(len(train) * HOLDOUT))) if len(train) > 1 else 0
    held = set(int(i) for i in order[:n_val])
    return [a for i, a in enumerate(train) if i not in held], [a for i, a in enumerate(train) if i in held]


class _Embedder:
    """Embeds planned crops image by image, in chunks, reporting progress."""

    def __init__(self, embed_fn: Callable[[list[np.ndarray]], Embedded], params: TrainParams, total: int,
                 progress: Callable[[Progress], None], cancelled: Callable[[], bool]) -> None:
        self.embed_fn, self.params, self.total = embed_fn, params, total
        self.progress, self.cancelled = progress, cancelled
        self.done = 0
        self.failed = 0

    def run(self, items: list[Annotated], crops: list[_Crop]) -> tuple[np.ndarray, np.ndarray]:
        vectors: list[np.ndarray] = []
        labels: list[int] = []
        pending: list[np.ndarray] = []
        pending_labels: list[int] = []
        by_image: dict[int, list[_Crop]] = {}
        for c in crops:
            by_image.setdefault(c.image, []).append(c)
        for idx, members in by_image.items():
            if self.cancelled():
                raise TrainingCancelled()
            try:
                image = decode_image(items[idx].image.read_bytes(), min_side=1, max_aspect=float("inf"))  # own files: any crop
            except (errors.TatorError, OSError) as exc:
                log.warning("training image skipped", extra={"fields": {"image": str(items[idx].image),
                                                                         "error": str(exc)}})
                self.failed += len(members)
                continue
            for c in members:
                pending.append(np.ascontiguousarray(
                    cut(image, padded_region(c.box, image.width, image.height, self.params.context_padding))))
                pending_labels.append(c.label)
            if len(pending) >= EMBED_CHUNK:
                self._flush(pending, pending_labels, vectors, labels)
        if pending:
            self._flush(pending, pending_labels, vectors, labels)
        if not vectors:
            return np.zeros((0, 0), np.float32), np.zeros((0,), np.int64)
        return np.concatenate(vectors), np.array(labels, dtype=np.int64)

    def _flush(self, pending: list[np.ndarray], pending_labels: list[int], vectors: list[np.ndarray],
               labels: list[int]) -> None:
        got = self.embed_fn(list(pending))
        ok = [j for j in range(len(pending)) if j not in got.errors]
        vectors.append(got.vectors[ok])
        labels.extend(pending_labels[j] for j in ok)
        self.failed += len(got.errors)
        self.done += len(pending)
        pending.clear()
        pending_labels.clear()
        self.progress(Progress("embed", self.done, self.total, f"{self.done}/{self.total} crops embedded"))


def train_head(params: TrainParams, *, backbone_id: str, backbone_version: str, backbone_pooling: str,
               embed_fn: Callable[[list[np.ndarray]], Embedded], head_id: str | None = None,
               progress: Callable[[Progress], None] | None = None,
               cancelled: Callable[[], bool] | None = None, dataset: Dataset | None = None) -> TrainOutcome:
    """Plan, embed, fit; returns the (unsaved) head and its validation accuracy."""
    progress = progress or (lambda p: None)
    cancelled = cancelled or (lambda: False)
    ds = dataset or read_dataset(params.dataset_dir)
    classes = list(ds.labelmap)
    bg_label = None
    if params.background_crops_per_image > 0 and ds.layout != "crops":  # a crop is all object: nothing to sample
        if BACKGROUND_CLASS not in classes:
            classes.append(BACKGROUND_CLASS)
        bg_label = classes.index(BACKGROUND_CLASS)
    train_items, val_items = _splits(ds, params.seed)
    train_plan = plan(train_items, len(classes), params, 0, bg_label)
    val_plan = plan(val_items, len(classes), params, 1, bg_label)
    total = len(train_plan) + len(val_plan)
    if total > params.max_crops:
        raise errors.invalid_argument("max_crops_per_class", f"{total} crops exceed this service's cap of "
                                      f"{params.max_crops}; set max_crops_per_class")
    started = time.perf_counter()
    embedder = _Embedder(embed_fn, params, total, progress, cancelled)
    x_train, y_train = embedder.run(train_items, train_plan)
    x_val, y_val = embedder.run(val_items, val_plan)
    if len(set(y_train.tolist())) < 2:
        raise errors.failed_precondition("NO_GROUND_TRUTH", f"dataset {params.dataset_dir.name!r}: training crops cover "
                                         f"{len(set(y_train.tolist()))} class(es); a head needs two or more")
    if cancelled():
        raise TrainingCancelled()
    fit_total = fitting.MLP_EPOCHS if params.head_type == "mlp" else 1   # units: epochs, or one sklearn fit
    progress(Progress("fit", 0, fit_total, f"fitting {params.head_type} on {len(y_train)} crops"))

    def fit_progress(done: int, total_epochs: int) -> None:
        if cancelled():
            raise TrainingCancelled()
        progress(Progress("fit", done, total_epochs, f"epoch {done}/{total_epochs}"))

    fitted = fitting.fit(x_train, y_train, classes, head_type=params.head_type, normalize=params.normalize,
                         seed=params.seed, progress=fit_progress)
    head = Head(
        id=head_id or params.head_id or derive_head_id(params, backbone_id), head_type=params.head_type,
        classes=fitted.classes, arrays=fitted.arrays, backbone_id=backbone_id, backbone_version=backbone_version,
        backbone_pooling=backbone_pooling, normalize=params.normalize, context_padding=params.context_padding,
        seed=params.seed, trained_on=training_record(params, ds.layout, train_items, val_items),
    )
    accuracy = val_accuracy(head, x_val, y_val, classes)
    head.val_accuracy = accuracy if np.isfinite(accuracy) else None
    # Only inputs and results go into the artifact (no paths, no timings): same data and seed, same bytes.
    head.extra = {"dataset": params.dataset_dir.name, "layout": ds.layout, "train_crops": int(len(y_train)),
                  "val_crops": int(len(y_val)), "failed_crops": embedder.failed, "dropped_classes": fitted.dropped}
    progress(Progress("fit", fit_total, fit_total, f"val accuracy {accuracy:.3f} on {len(y_val)} crops "
                                   f"({time.perf_counter() - started:.1f} s)"))
    return TrainOutcome(head, int(len(y_train)), int(len(y_val)), accuracy, fitted.dropped)


def training_record(params: TrainParams, layout: str, train: Sequence[Annotated],
                    val: Sequence[Annotated]) -> TrainingRecord:
    """Every image the head was fitted on or validated on (the validation accuracy is what a caller
    picks heads by), by the SHA-256 of the file bytes: what the orchestrator can hash for any dataset."""
    shas = set()
    for item in (*train, *val):
        try:
            with open(item.image, "rb") as fh:
                shas.add(hashlib.file_digest(fh, "sha256").hexdigest())
        except OSError:   # an image that cannot be read gave no crops either
            continue
    return TrainingRecord(f"TrainHead on dataset {params.dataset_dir.name!r} ({layout}): {len(train)} train and "
                          f"{len(val)} validation images, seed {params.seed}", frozenset(shas))


def val_accuracy(head: Head, x: np.ndarray, y: np.ndarray, classes: list[str]) -> float:
    """Top-1 accuracy; a crop of a class the head dropped counts as wrong. NaN without val crops."""
    if len(y) == 0:
        return float("nan")
    pred = head.probabilities(x).argmax(axis=1)
    predicted = np.array([classes.index(head.classes[p]) for p in pred])
    return float((predicted == y).mean())
