"""The feature vector of one candidate, documented column by column.

`FeatureSchema` is the one place that says which columns exist, in which
order, and what each means; its hash is stored with every accept model, and
applying a model to features of another schema is refused. The random
projection's seed and widths are schema fields and part of the hash, so a
model is never applied to features projected another way.

Blocks, in column order:
  classifier  probability vector on the crop, plus derived columns
  source      per source: presence, best score, atom count; primary source
  geometry    relative size, aspect, position, border distance, and z-scores
              against a per-class size prior fitted on the TRAINING split's
              GT only (a prior fitted on evaluated images would leak their GT)
  overlap     per source: max IoU with / count of same-label atoms anywhere
              in the image (SAM3 and detector support outside the cluster)
  context     neighbouring candidates (duplicates left after clustering,
              cross-class overlaps)
  provenance  per run bucket (full frame vs SAHI tiles vs SAM3 windows):
              atom count and best score
  label       one-hot of the candidate label
  embedding   optional seeded random projection of the classifier embedding
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from tator_core.geometry import iou_matrix
from tator_core.hashing import stable_hash
from tator_core.labels import match_key

if TYPE_CHECKING:  # inputs imports the pipeline, which imports this module
    from svc_orchestrator.calibration.inputs import ImagePrepass

FEATURE_VERSION = 1
SOURCES = ("yolo", "rfdetr", "sam3_text", "sam3_similarity")
RUNS = ("yolo_full", "yolo_sahi", "rfdetr_full", "rfdetr_sahi", "sam3_text_full", "sam3_text_windowed",
        "sam3_similarity_full", "sam3_similarity_windowed")
Z_TAIL = 2.0


# Fixed columns (name, doc); `{s}` is a source, `{r}` a run bucket, `{iou}` the support IoU.
_CLASSIFIER = (
    ("clf_prob_label", "classifier probability of the candidate's own label (0 if the head lacks it)"),
    ("clf_score", "classifier argmax probability"),
    ("clf_margin", "classifier argmax minus runner-up probability"),
    ("clf_agrees", "1 when the classifier argmax is the candidate's label"),
    ("clf_background", "total probability of the head's background classes"),
    ("clf_missing", "1 when the classifier gave no probabilities for this box"),
)
_PER_SOURCE = (
    ("src_has::{s}", "1 when source {s} contributed an atom to the candidate"),
    ("src_score::{s}", "best {s} score among the candidate's atoms (0 if none)"),
    ("src_atoms::{s}", "number of the candidate's atoms from {s}"),
    ("src_primary::{s}", "1 when {s} gave the candidate's best-scoring atom"),
)
_SOURCE = (
    ("src_n", "number of distinct sources"),
    ("cand_score", "candidate score (best atom score)"),
    ("atoms_n", "number of atoms in the candidate's cluster"),
    ("atom_score_mean", "mean score of the candidate's atoms"),
    ("atom_score_std", "standard deviation of the candidate's atom scores"),
)
_GEOMETRY = (
    ("geom_cx", "box centre x / image width"),
    ("geom_cy", "box centre y / image height"),
    ("geom_w", "box width / image width"),
    ("geom_h", "box height / image height"),
    ("geom_log_area", "log of box area / image area"),
    ("geom_log_aspect", "log of box width / height"),
    ("geom_log_min_side_px", "log of the shorter box side in pixels"),
    ("geom_border", "distance of the box to the nearest image border / shorter image side"),
    ("geom_area_z", "z-score of log relative area against the label's training-GT prior"),
    ("geom_aspect_z", "z-score of log aspect against the label's training-GT prior"),
    ("geom_area_z_tail", f"max(0, |geom_area_z| - {Z_TAIL})"),
    ("geom_aspect_z_tail", f"max(0, |geom_aspect_z| - {Z_TAIL})"),
)
_PER_SOURCE_OVERLAP = (
    ("ovl_max::{s}", "max IoU with any same-label {s} atom in the image"),
    ("ovl_n::{s}", "same-label {s} atoms in the image with IoU >= {iou}"),
)
_CONTEXT = (
    ("ovl_other_label_max", "max IoU with any atom of another label"),
    ("ctx_log_candidates", "log(1 + candidates in the image)"),
    ("ctx_same_label_max_iou", "max IoU with another candidate of the same label"),
    ("ctx_other_label_max_iou", "max IoU with a candidate of another label"),
    ("ctx_same_label_share", "share of the image's candidates that carry this label"),
)
_PER_RUN = (
    ("run_n::{r}", "the candidate's atoms from run bucket {r}"),
    ("run_max::{r}", "best score among the candidate's atoms from run bucket {r}"),
)


@dataclass(frozen=True)
class Column:
    name: str
    block: str
    doc: str


def is_background(name: str) -> bool:
    """Classifier background classes (`__bg_*`, `background`) carry no object label."""
    return name.startswith("__bg") or match_key(name) in ("background", "bg")


# The run bucket suffix of each atom pass (detectors' tiles were "sahi" runs).
_PASS_RUN = {"full": "full", "tiled": "sahi", "windowed": "windowed"}


def run_bucket(run: str, source: str) -> str:
    """Atom run -> one of RUNS ('' when unknown): detectors name the run fully, SAM3 says full/windowed."""
    if run in RUNS:
        return run
    bucket = f"{source}_{run}"
    return bucket if bucket in RUNS else ""


@dataclass(frozen=True)
class FeatureSchema:
    labelmap: tuple[str, ...]
    classifier_classes: tuple[str, ...]
    embedding_dims: int = 0
    embedding_input_dim: int = 0
    embedding_seed: int = 0
    support_iou: float = 0.5
    version: int = FEATURE_VERSION

    @cached_property
    def columns(self) -> list[Column]:
        out = [Column(f"clf_prob::{c}", "classifier", f"classifier probability of class {c!r} on the candidate crop")
               for c in self.classifier_classes]
        out += [Column(n, "classifier", d) for n, d in _CLASSIFIER]
        out += [Column(n.format(s=s), "source", d.format(s=s)) for s in SOURCES for n, d in _PER_SOURCE]
        out += [Column(n, "source", d) for n, d in _SOURCE]
        out += [Column(n, "geometry", d) for n, d in _GEOMETRY]
        out += [Column(n.format(s=s), "overlap", d.format(s=s, iou=self.support_iou))
                for s in SOURCES for n, d in _PER_SOURCE_OVERLAP]
        out += [Column(n, "overlap" if n.startswith("ovl") else "context", d) for n, d in _CONTEXT]
        out += [Column(n.format(r=r), "provenance", d.format(r=r)) for r in RUNS for n, d in _PER_RUN]
        out += [Column(f"label::{lab}", "label", f"1 when the candidate label is {lab!r}") for lab in self.labelmap]
        out += [Column(f"emb_rp::{k:04d}", "embedding",
                       f"classifier embedding (L2-normalised) times a seeded Gaussian matrix, column {k}")
                for k in range(self.embedding_dims)]
        return out

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def width(self) -> int:
        return len(self.columns)

    @cached_property
    def index(self) -> dict[str, int]:
        return {c.name: i for i, c in enumerate(self.columns)}

    @cached_property
    def hash(self) -> str:
        return stable_hash({"schema": self.to_dict(), "names": self.names})

    def to_dict(self) -> dict:
        d = asdict(self)
        d["labelmap"], d["classifier_classes"] = list(self.labelmap), list(self.classifier_classes)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> FeatureSchema:
        return cls(labelmap=tuple(d["labelmap"]), classifier_classes=tuple(d["classifier_classes"]),
                   embedding_dims=int(d["embedding_dims"]), embedding_input_dim=int(d["embedding_input_dim"]),
                   embedding_seed=int(d["embedding_seed"]), support_iou=float(d["support_iou"]),
                   version=int(d["version"]))

    def describe(self) -> list[dict]:
        return [{"name": c.name, "block": c.block, "doc": c.doc} for c in self.columns]

    @cached_property
    def projection(self) -> np.ndarray | None:
        """(input_dim, dims) Gaussian matrix scaled by 1/sqrt(dims), so projected norms are preserved."""
        if not self.embedding_dims or not self.embedding_input_dim:
            return None
        rng = np.random.default_rng(self.embedding_seed)
        return rng.standard_normal((self.embedding_input_dim, self.embedding_dims)) / math.sqrt(self.embedding_dims)


# --- size prior --------------------------------------------------------------------

@dataclass
class SizePrior:
    """Per-label mean/std of log relative area and log aspect; `global` for unseen labels."""

    stats: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)
    fallback: tuple[float, float, float, float] = (0.0, 1.0, 0.0, 1.0)

    def get(self, label: str) -> tuple[float, float, float, float]:
        return self.stats.get(label, self.fallback)

    def to_dict(self) -> dict:
        return {"stats": {k: list(v) for k, v in self.stats.items()}, "fallback": list(self.fallback)}

    @classmethod
    def from_dict(cls, d: dict) -> SizePrior:
        return cls({k: tuple(v) for k, v in d["stats"].items()}, tuple(d["fallback"]))


def _log_area_aspect(box: Sequence[float], width: float, height: float) -> tuple[float, float]:
    w = max(float(box[2]) - float(box[0]), 1e-3)
    h = max(float(box[3]) - float(box[1]), 1e-3)
    return math.log(w * h / max(width * height, 1.0)), math.log(w / h)


def _mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(max(arr.std(), 0.05))


def fit_size_prior(gt: Sequence[tuple[str, Sequence[float], int, int]]) -> SizePrior:
    """gt: (label, box, image width, image height) of the TRAINING split only.

    Labels with fewer than two boxes use the pooled prior (one box gives no spread).
    """
    areas: dict[str, list[float]] = {}
    aspects: dict[str, list[float]] = {}
    for label, box, w, h in gt:
        a, r = _log_area_aspect(box, w, h)
        areas.setdefault(label, []).append(a)
        aspects.setdefault(label, []).append(r)
    pooled_a = [v for vs in areas.values() for v in vs]
    pooled_r = [v for vs in aspects.values() for v in vs]
    fallback = (*_mean_std(pooled_a), *_mean_std(pooled_r)) if len(pooled_a) >= 2 else (0.0, 1.0, 0.0, 1.0)
    stats = {lab: (*_mean_std(areas[lab]), *_mean_std(aspects[lab])) for lab in areas if len(areas[lab]) >= 2}
    return SizePrior(stats, fallback)


# --- the builder ---------------------------------------------------------------------

def image_features(result: ImagePrepass, schema: FeatureSchema, prior: SizePrior,
                   embeddings: Sequence[Sequence[float]] | None = None) -> np.ndarray:
    """(candidates, schema.width) float32 features of one image's prepass result.

    The result's classifier classes must be the schema's (the flow checks it
    once per image); embeddings, when the schema has an embedding block, are
    one vector per candidate (empty = unavailable -> zeros).
    """
    cands = list(result.candidates)
    X = np.zeros((len(cands), schema.width), dtype=np.float64)
    if not cands:
        return X.astype(np.float32)
    ix = schema.index
    W, H = max(int(result.width), 1), max(int(result.height), 1)
    atoms = {a.atom_id: a for a in result.atoms}
    atom_list = list(result.atoms)
    atom_src = [a.source for a in atom_list]
    atom_lab = [a.label for a in atom_list]
    cand_boxes = [c.box for c in cands]
    ca = iou_matrix(cand_boxes, [a.box for a in atom_list]).numpy()
    cc = iou_matrix(cand_boxes, cand_boxes).numpy()
    clf_pos = {match_key(c): k for k, c in enumerate(schema.classifier_classes)}
    bg = np.array([is_background(c) for c in schema.classifier_classes], dtype=bool)
    labels = [c.label for c in cands]
    for i, cand in enumerate(cands):
        row = X[i]
        # classifier
        probs = np.asarray(cand.probabilities, dtype=np.float64)
        if len(probs) == len(schema.classifier_classes) and len(probs):
            row[:len(probs)] = probs
            k = clf_pos.get(match_key(cand.label))
            row[ix["clf_prob_label"]] = probs[k] if k is not None else 0.0
            top = np.sort(probs)[::-1]
            row[ix["clf_score"]] = top[0]
            row[ix["clf_margin"]] = top[0] - (top[1] if len(top) > 1 else 0.0)
            row[ix["clf_agrees"]] = float(match_key(schema.classifier_classes[int(np.argmax(probs))])
                                          == match_key(cand.label))
            row[ix["clf_background"]] = float(probs[bg].sum())
        else:
            row[ix["clf_missing"]] = 1.0
        # sources
        own = [atoms[a] for a in cand.atom_ids if a in atoms]
        own_scores = [float(a.score) for a in own]
        best = cand.source_scores
        srcs = set(cand.sources) | {a.source for a in own}
        primary = cand.primary
        for s in SOURCES:
            row[ix[f"src_has::{s}"]] = float(s in srcs)
            row[ix[f"src_score::{s}"]] = float(best.get(s, 0.0))
            row[ix[f"src_atoms::{s}"]] = sum(1 for a in own if a.source == s)
            row[ix[f"src_primary::{s}"]] = float(primary == s)
        row[ix["src_n"]] = len(srcs & set(SOURCES))
        row[ix["cand_score"]] = float(cand.score)
        row[ix["atoms_n"]] = len(own)
        if own_scores:
            row[ix["atom_score_mean"]] = float(np.mean(own_scores))
            row[ix["atom_score_std"]] = float(np.std(own_scores))
        for a in own:
            b = run_bucket(_PASS_RUN.get(a.pass_kind, ""), a.source)
            if b:
                row[ix[f"run_n::{b}"]] += 1
                row[ix[f"run_max::{b}"]] = max(row[ix[f"run_max::{b}"]], float(a.score))
        # geometry
        x1, y1, x2, y2 = cand_boxes[i]
        bw, bh = max(x2 - x1, 0.0), max(y2 - y1, 0.0)
        la, lr = _log_area_aspect(cand_boxes[i], W, H)
        mu_a, sd_a, mu_r, sd_r = prior.get(cand.label)
        za, zr = (la - mu_a) / sd_a, (lr - mu_r) / sd_r
        row[ix["geom_cx"]], row[ix["geom_cy"]] = (x1 + x2) / 2 / W, (y1 + y2) / 2 / H
        row[ix["geom_w"]], row[ix["geom_h"]] = bw / W, bh / H
        row[ix["geom_log_area"]], row[ix["geom_log_aspect"]] = la, lr
        row[ix["geom_log_min_side_px"]] = math.log(max(min(bw, bh), 1e-3))
        row[ix["geom_border"]] = max(min(x1, y1, W - x2, H - y2), 0.0) / min(W, H)
        row[ix["geom_area_z"]], row[ix["geom_aspect_z"]] = za, zr
        row[ix["geom_area_z_tail"]] = max(0.0, abs(za) - Z_TAIL)
        row[ix["geom_aspect_z_tail"]] = max(0.0, abs(zr) - Z_TAIL)
        # overlap with every atom of the image
        for j, s in enumerate(atom_src):
            v = float(ca[i, j])
            if atom_lab[j] != cand.label:
                row[ix["ovl_other_label_max"]] = max(row[ix["ovl_other_label_max"]], v)
            elif s in SOURCES:
                row[ix[f"ovl_max::{s}"]] = max(row[ix[f"ovl_max::{s}"]], v)
                row[ix[f"ovl_n::{s}"]] += float(v >= schema.support_iou)
        # context
        row[ix["ctx_log_candidates"]] = math.log1p(len(cands))
        same = [j for j in range(len(cands)) if j != i and labels[j] == cand.label]
        other = [j for j in range(len(cands)) if labels[j] != cand.label]
        row[ix["ctx_same_label_max_iou"]] = float(cc[i, same].max()) if same else 0.0
        row[ix["ctx_other_label_max_iou"]] = float(cc[i, other].max()) if other else 0.0
        row[ix["ctx_same_label_share"]] = (len(same) + 1) / len(cands)
        # label
        if f"label::{cand.label}" in ix:
            row[ix[f"label::{cand.label}"]] = 1.0
    if schema.projection is not None and embeddings is not None:
        start = ix["emb_rp::0000"]
        for i, emb in enumerate(embeddings):
            if len(emb) == schema.embedding_input_dim:
                X[i, start:start + schema.embedding_dims] = np.asarray(emb, dtype=np.float64) @ schema.projection
    return X.astype(np.float32)
