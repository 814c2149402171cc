"""Classifier heads: the artifact, its checks and its probabilities.

A head is two files in one directory: `head.safetensors` (the arrays) and
`head.json` (classes, background classes, the backbone id, version hash and
pooling it was trained on, the normalisation flag, head type, context
padding, validation accuracy, seed). A head trained by this service adds a
third, `trained_on.json`: the SHA-256 of every image it was fitted or
validated on, which the calibration's leakage check compares with its test
split (a registry head's record is in the registry instead). Heads are never pickles (`.pkl` /
`.joblib`): loading one could run arbitrary code; safetensors and JSON cannot.

Math: optional L2 normalisation, standardisation (`input.mean`,
`input.scale`), then dense layers with ReLU between them (one layer = logistic
regression), softmax over all classes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tator_core.hashing import atomic_write_bytes, atomic_write_text
from tator_core.registry import TrainingRecord

BG_PREFIX = "__bg_"
FORMAT = "tator.classifier.head"
FORMAT_VERSION = 1
WEIGHTS_FILE = "head.safetensors"
META_FILE = "head.json"
TRAINED_ON_FILE = "trained_on.json"
HEAD_TYPES = ("logreg", "mlp")


class HeadError(ValueError):
    """A head artifact that cannot be used."""


def is_background(name: str) -> bool:
    return name.startswith(BG_PREFIX)


@dataclass
class Head:
    id: str
    head_type: str
    classes: list[str]
    arrays: dict[str, np.ndarray]
    backbone_id: str
    backbone_version: str
    backbone_pooling: str = ""
    normalize: bool = False
    context_padding: float = 0.1
    val_accuracy: float | None = None
    seed: int = 0
    extra: dict = field(default_factory=dict)   # train/val counts, dataset, ...
    version: str = ""                            # sha256 of the saved files; "" until saved
    trained_on: TrainingRecord | None = None     # the images it was fitted and validated on; None: unknown

    def __post_init__(self) -> None:
        self.validate()

    @property
    def background(self) -> list[bool]:
        return [is_background(c) for c in self.classes]

    @property
    def n_layers(self) -> int:
        return sum(1 for k in self.arrays if k.startswith("layer") and k.endswith(".weight"))

    @property
    def dim(self) -> int:
        return int(self.arrays["layer0.weight"].shape[0])

    def validate(self) -> None:
        if self.head_type not in HEAD_TYPES:
            raise HeadError(f"head type {self.head_type!r} is not one of {HEAD_TYPES}")
        if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes) or not all(self.classes):
            raise HeadError("a head needs at least two distinct, non-empty class names")
        if self.n_layers < 1 or "input.mean" not in self.arrays or "input.scale" not in self.arrays:
            raise HeadError("head arrays need input.mean, input.scale and layer0.weight/bias")
        width = self.arrays["input.mean"].shape
        if width != self.arrays["input.scale"].shape or len(width) != 1:
            raise HeadError("input.mean and input.scale must be vectors of one width")
        fan_in = width[0]
        for k in range(self.n_layers):
            w, b = self.arrays.get(f"layer{k}.weight"), self.arrays.get(f"layer{k}.bias")
            if w is None or b is None or w.ndim != 2 or w.shape[0] != fan_in or b.shape != (w.shape[1],):
                raise HeadError(f"layer{k} shapes do not chain (expected input width {fan_in})")
            fan_in = w.shape[1]
        if fan_in != len(self.classes):
            raise HeadError(f"last layer gives {fan_in} outputs for {len(self.classes)} classes")
        if not all(np.all(np.isfinite(a)) for a in self.arrays.values()) or np.any(self.arrays["input.scale"] <= 0):
            raise HeadError("head arrays hold non-finite values or a non-positive scale")

    def logits(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise HeadError(f"embeddings of width {x.shape[-1]} for a head of width {self.dim}")
        if self.normalize:
            x = l2_normalize(x)
        x = (x - self.arrays["input.mean"]) / self.arrays["input.scale"]
        for k in range(self.n_layers):
            x = x @ self.arrays[f"layer{k}.weight"] + self.arrays[f"layer{k}.bias"]
            if k < self.n_layers - 1:
                x = np.maximum(x, 0.0)
        return x

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """(n, C) rows that sum to 1."""
        return softmax(self.logits(x))

    def meta(self) -> dict:
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION, "id": self.id, "head_type": self.head_type,
            "classes": self.classes, "background_classes": [c for c in self.classes if is_background(c)],
            "backbone": {"id": self.backbone_id, "version": self.backbone_version,
                         "pooling": self.backbone_pooling, "dim": self.dim},
            "normalize_embeddings": self.normalize, "context_padding": self.context_padding,
            "val_accuracy": self.val_accuracy, "seed": self.seed, "extra": self.extra,
        }

    def save(self, directory: Path) -> Path:
        """Write both files atomically (weights first, so a meta never points at missing weights)."""
        from safetensors.numpy import save

        directory.mkdir(parents=True, exist_ok=True)
        blob = save({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in sorted(self.arrays.items())})
        atomic_write_bytes(directory / WEIGHTS_FILE, blob)
        if self.trained_on is not None:
            atomic_write_text(directory / TRAINED_ON_FILE, json.dumps(self.trained_on.to_dict(), indent=1) + "\n")
        else:  # a record of an earlier head under this id would describe other training data
            (directory / TRAINED_ON_FILE).unlink(missing_ok=True)
        atomic_write_text(directory / META_FILE, json.dumps(self.meta(), indent=2, sort_keys=True) + "\n")
        return directory


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def l2_normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def load_head(path: Path, head_id: str | None = None) -> Head:
    """Load a head directory (or its head.json); every problem is a HeadError."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = Path(path)
    directory = path.parent if path.name == META_FILE else path
    try:
        meta = json.loads((directory / META_FILE).read_text())
        arrays = {k: v.astype(np.float64) for k, v in load_file(str(directory / WEIGHTS_FILE)).items()}
    except (OSError, ValueError, SafetensorError) as exc:
        raise HeadError(f"head {directory.name}: cannot read head files ({type(exc).__name__})") from exc
    trained_on = _read_trained_on(directory)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise HeadError(f"head {directory.name}/{META_FILE}: not a {FORMAT} file")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise HeadError(f"head {directory.name}: head format {meta.get('format_version')} is newer than this service")
    try:
        backbone = meta["backbone"]
        val = meta.get("val_accuracy")
        return Head(
            id=head_id or str(meta["id"]), head_type=str(meta["head_type"]),
            classes=[str(c) for c in meta["classes"]], arrays=arrays,
            backbone_id=str(backbone["id"]), backbone_version=str(backbone.get("version", "")),
            backbone_pooling=str(backbone.get("pooling", "")), normalize=bool(meta.get("normalize_embeddings")),
            context_padding=float(meta.get("context_padding", 0.1)),
            val_accuracy=float(val) if val is not None and math.isfinite(float(val)) else None,
            seed=int(meta.get("seed", 0)), extra=dict(meta.get("extra") or {}), trained_on=trained_on,
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, HeadError):
            raise
        raise HeadError(f"head {directory.name}/{META_FILE}: malformed ({type(exc).__name__})") from exc


def _read_trained_on(directory: Path) -> TrainingRecord | None:
    """The head's training record, None when it has none; an unreadable one is a HeadError (a head whose
    training data cannot be told must not pass the leakage check as 'unknown')."""
    path = directory / TRAINED_ON_FILE
    if not path.is_file():
        return None
    try:
        return TrainingRecord.parse(json.loads(path.read_text()), f"head {directory.name}/{TRAINED_ON_FILE}")
    except (OSError, ValueError) as exc:  # RegistryError is a ValueError
        raise HeadError(f"head {directory.name}/{TRAINED_ON_FILE}: unreadable training record "
                        f"({type(exc).__name__})") from exc
