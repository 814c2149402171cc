"""The versioned accept model: save, load, apply.

Saved under `<job_dir>/accept_model/`: `meta.json` (format version, feature
schema and its hash, the version hash of every model the prepass used, the
prepass config hash and glossary hash, the training-GT size prior, per-model thresholds and
fit facts, the dedupe IoU, which model is the default) plus `mlp.pt`
(tensors only, loaded with weights_only) and/or `xgb.json`.

Applying the model to a prepass result made by other model versions, with
another prepass config or glossary (other prompts, thresholds or windows
change which candidates exist and how they score), or whose features would
follow another schema (other classifier classes or labelmap), is refused with FAILED_PRECONDITION CALIBRATION_VERSION_MISMATCH
naming what differs: a silently mismatched accept model would score features
it was never trained on (train/serve skew). Accepted candidates are deduplicated exactly as in
evaluation (same label, by accept probability, IoU >= dedupe_iou), so
runtime decisions are the ones the report measured.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

from svc_orchestrator.calibration import models as mdl
from svc_orchestrator.calibration.candidates import build_table
from svc_orchestrator.calibration.evaluate import dedupe_frame
from svc_orchestrator.calibration.features import FeatureSchema, SizePrior, image_features
from svc_orchestrator.calibration.inputs import ImagePrepass
from svc_orchestrator.calibration.thresholds import accept_mask
from tator_core import errors
from tator_core.hashing import atomic_write_bytes, atomic_write_text
from tator_core.labels import labelmap_hash

ACCEPT_DIR = "accept_model"
# 2: meta.json records the glossary hash the accept model was trained on.
FORMAT_VERSION = 2
_FILES = {"mlp": "mlp.pt", "xgb": "xgb.json"}


@dataclass
class AcceptModel:
    schema: FeatureSchema
    prior: SizePrior
    model_versions: dict[str, str]
    config_hash: str
    glossary_hash: str
    dedupe_iou: float
    models: dict[str, mdl.MlpModel | mdl.XgbModel]
    thresholds: dict[str, dict[str, float]]           # kind -> label -> threshold
    default: str
    extra: dict = field(default_factory=dict)         # fit facts, val metrics (informational)

    def meta(self) -> dict:
        return {
            "format_version": FORMAT_VERSION, "feature_schema": self.schema.to_dict(),
            "feature_schema_hash": self.schema.hash, "model_versions": dict(sorted(self.model_versions.items())),
            "config_hash": self.config_hash, "glossary_hash": self.glossary_hash,
            "labelmap_hash": labelmap_hash(self.schema.labelmap),
            "size_prior": self.prior.to_dict(), "dedupe_iou": self.dedupe_iou, "default": self.default,
            "models": {k: {"file": _FILES[k], "thresholds": self.thresholds[k], **m.meta()}
                       for k, m in self.models.items()},
            "extra": self.extra,
        }


def save(job_dir: Path, accept: AcceptModel) -> Path:
    out = Path(job_dir) / ACCEPT_DIR
    for kind, model in accept.models.items():
        atomic_write_bytes(out / _FILES[kind], model.to_bytes())
    atomic_write_text(out / "meta.json", json.dumps(accept.meta(), indent=1, sort_keys=True))  # last: marks complete
    return out


_cache: dict[str, tuple[int, AcceptModel]] = {}
_cache_lock = threading.Lock()


def load(job_dir: Path) -> AcceptModel:
    """Load (cached by meta.json mtime); NOT_FOUND when the job saved no accept model."""
    base = Path(job_dir) / ACCEPT_DIR
    meta_path = base / "meta.json"
    try:
        mtime = meta_path.stat().st_mtime_ns
    except (FileNotFoundError, NotADirectoryError):
        raise errors.not_found("NOT_FOUND", f"no accept model for job {Path(job_dir).name}",
                               job_id=Path(job_dir).name) from None
    key = str(base.resolve())
    with _cache_lock:
        hit = _cache.get(key)
        if hit and hit[0] == mtime:
            return hit[1]
    meta = json.loads(meta_path.read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise errors.failed_precondition("CALIBRATION_VERSION_MISMATCH",
                                         f"accept model format {meta.get('format_version')} != {FORMAT_VERSION}; "
                                         "recalibrate")
    schema = FeatureSchema.from_dict(meta["feature_schema"])
    if schema.hash != meta["feature_schema_hash"]:
        raise errors.failed_precondition("CALIBRATION_VERSION_MISMATCH",
                                         "accept model was saved with another feature-schema definition; recalibrate",
                                         saved=meta["feature_schema_hash"], current=schema.hash)
    loaded = {k: mdl.from_bytes(k, (base / m["file"]).read_bytes(), m) for k, m in meta["models"].items()}
    accept = AcceptModel(schema=schema, prior=SizePrior.from_dict(meta["size_prior"]),
                         model_versions=dict(meta["model_versions"]), config_hash=meta["config_hash"],
                         glossary_hash=meta["glossary_hash"],
                         dedupe_iou=float(meta["dedupe_iou"]), models=loaded,
                         thresholds={k: dict(m["thresholds"]) for k, m in meta["models"].items()},
                         default=meta["default"], extra=meta.get("extra", {}))
    with _cache_lock:
        _cache[key] = (mtime, accept)
    return accept


def check_compatible(accept: AcceptModel, result: ImagePrepass) -> None:
    """Refuse a prepass result the accept model was not trained for (see module doc)."""
    got = dict(result.model_versions)
    if got != accept.model_versions:
        ids = sorted(set(got) | set(accept.model_versions))
        diff = [f"{i}: trained {accept.model_versions.get(i, '-')[:12]} vs result {got.get(i, '-')[:12]}"
                for i in ids if got.get(i) != accept.model_versions.get(i)]
        raise errors.failed_precondition(
            "CALIBRATION_VERSION_MISMATCH",
            f"prepass used other model versions than the accept model was trained on: {'; '.join(diff)}",
            models=",".join(i for i in ids if got.get(i) != accept.model_versions.get(i)))
    if result.config_hash != accept.config_hash:
        raise errors.failed_precondition(
            "CALIBRATION_VERSION_MISMATCH",
            f"prepass config hash {result.config_hash[:12]} differs from the one the accept model was trained on "
            f"({accept.config_hash[:12]}); run the prepass with the calibration's prepass config",
            trained_config_hash=accept.config_hash, result_config_hash=result.config_hash)
    if result.glossary_hash != accept.glossary_hash:
        raise errors.failed_precondition(
            "CALIBRATION_VERSION_MISMATCH",
            f"prepass glossary hash {result.glossary_hash[:12]} differs from the one the accept model was trained "
            f"on ({accept.glossary_hash[:12]}); use the calibration's glossary",
            trained_glossary_hash=accept.glossary_hash, result_glossary_hash=result.glossary_hash)
    if result.candidates and tuple(result.classifier_classes) != accept.schema.classifier_classes:
        raise errors.failed_precondition(
            "CALIBRATION_VERSION_MISMATCH", "prepass classifier classes differ from the accept model's feature schema",
            feature_schema_hash=accept.schema.hash)
    if result.labelmap_hash and result.labelmap_hash != labelmap_hash(accept.schema.labelmap):
        raise errors.failed_precondition(
            "CALIBRATION_VERSION_MISMATCH", "prepass labelmap differs from the accept model's feature schema",
            feature_schema_hash=accept.schema.hash)


def needs_embeddings(job_dir: Path) -> bool:
    """Whether apply_accept_model needs the candidates' classifier embeddings."""
    return load(job_dir).schema.embedding_dims > 0


def apply(accept: AcceptModel, result: ImagePrepass, *, embeddings=None, kind: str | None = None) -> list[tuple[float, bool]]:
    check_compatible(accept, result)
    kind = kind or accept.default
    if kind not in accept.models:
        raise errors.invalid_argument("kind", f"accept model has no {kind!r} model (has {sorted(accept.models)})")
    if not result.candidates:
        return []
    if accept.schema.embedding_dims and embeddings is None:
        raise errors.failed_precondition("MODEL_REQUIRED", "this accept model uses classifier embeddings of the "
                                         "candidates; pass them", embedding_dims=accept.schema.embedding_dims)
    X = image_features(result, accept.schema, accept.prior, embeddings)
    probs = accept.models[kind].predict(X)
    cands = list(result.candidates)
    labels = [c.label for c in cands]
    ok = accept_mask(labels, probs, accept.thresholds[kind])
    table = build_table([(result.image_name or "image",
                          [(c.label, c.box, 0.0, ()) for c in cands], [])])
    kept = set(dedupe_frame(table.frames[0], ok, probs, accept.dedupe_iou))
    return [(float(p), i in kept) for i, p in enumerate(probs)]


def apply_accept_model(job_dir: Path, result: ImagePrepass, *, embeddings=None, kind: str | None = None) -> list[tuple[float, bool]]:
    """Per candidate (accept_prob, accepted); see module doc for the refusals."""
    return apply(load(job_dir), result, embeddings=embeddings, kind=kind)
