"""Leakage check: no calibration reports numbers on images a model of the stack was trained on.

The model services list, for each model, the SHA-256 of every image it was fitted or selected on
(`ModelInfo.trained_on`, from the model registry). The calibration hashes the files of its own split
and compares. A test split that holds any such image is refused with FAILED_PRECONDITION
TRAINING_DATA_OVERLAP naming the model, unless the config forces the run (`allow_training_overlap`);
then the report carries the overlap and a warning. Overlap in the calibration's train or val split is
reported as a warning only: those images are not what the reported numbers are measured on, but an
accept model fitted on a detector's own training images learns its over-confident scores.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from svc_orchestrator.calibration.guards import pick_model
from svc_orchestrator.calibration.inputs import PrepassChoice, ServiceModels
from svc_orchestrator.calibration.split import Split
from tator_core import errors
from tator_core.convert import ModelStatus

SPLITS = ("train", "val", "test")


def used_models(models: Sequence[ServiceModels], prep: PrepassChoice) -> list[ModelStatus]:
    """The models whose output a calibration with this prepass config feeds on."""
    wanted: list[tuple[str, tuple[str, ...], str, bool]] = [
        ("detector", ("yolo",), prep.yolo_id, prep.yolo),
        ("detector", ("rfdetr",), prep.rfdetr_id, prep.rfdetr),
        ("classifier", ("head",), prep.classifier_id, True),
        ("sam3", ("sam3",), "", prep.sam3_text or prep.sam3_similarity),
    ]
    out = []
    for service, families, model_id, enabled in wanted:
        svc = next((s for s in models if s.service == service), None)
        if not enabled or svc is None:
            continue
        pick = pick_model(svc, families, model_id)
        if pick is not None:
            out.append(pick)
    return out


def file_sha256(path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def overlap(dataset, split: Split, models: Sequence[ModelStatus]) -> dict:
    """Per model: its training record and which images of each calibration split it was trained on.
    Models without a record are listed with `known: false`."""
    sha = {name: file_sha256(dataset.item(name).path) for part in SPLITS for name in split.of(part)}
    out: dict[str, dict] = {}
    for m in models:
        if m.trained_on is None:
            out[m.id] = {"family": m.family, "known": False}
            continue
        seen = m.trained_on.image_sha256
        out[m.id] = {"family": m.family, "known": True, "description": m.trained_on.description,
                     "training_images": len(seen), "list_sha256": m.trained_on.list_sha256,
                     "overlap": {part: sorted(n for n in split.of(part) if sha[n] in seen) for part in SPLITS}}
    return out


def check(found: dict, *, allow: bool) -> list[str]:
    """Raise on a test split a model was trained on (unless allowed); returns the report's warnings."""
    warnings = []
    for model_id, rec in found.items():
        if not rec["known"]:
            continue
        n_test = len(rec["overlap"]["test"])
        if n_test and not allow:
            raise errors.failed_precondition(
                "TRAINING_DATA_OVERLAP", f"{n_test} test image(s) of this calibration were used to train model "
                f"{model_id!r} ({rec['description']}), e.g. {rec['overlap']['test'][0]}; evaluate on data the "
                "models never saw (another dataset or seed), or set config.allow_training_overlap to run anyway "
                "with the overlap flagged in the report", model_id=model_id, test_images=n_test)
        if n_test:
            warnings.append(f"LEAKAGE: {n_test} test image(s) were used to train {model_id!r}; its test numbers "
                            "are optimistic")
        for part in ("train", "val"):
            if rec["overlap"][part]:
                warnings.append(f"{len(rec['overlap'][part])} {part} image(s) of the calibration were used to train "
                                f"{model_id!r}: the accept model learns its scores on images it has seen")
    return warnings


def summary(found: dict) -> dict:
    """The report's `leakage` section: counts, not the image lists of every model."""
    return {mid: {**{k: v for k, v in rec.items() if k != "overlap"},
                  **({"overlap": {p: len(v) for p, v in rec["overlap"].items()},
                      "test_images_overlapping": rec["overlap"]["test"][:20]} if rec["known"] else {})}
            for mid, rec in found.items()}
