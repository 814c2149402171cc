"""Calibration guards: everything a calibration needs, checked before any work.

Each check fails fast with FAILED_PRECONDITION naming the missing piece,
before a mismatch (a detector labelmap, say) can surface mid-prepass and leave
results behind that were computed on the wrong inputs.
Order: the classifier head (features need its probabilities), the
detectors (present and loaded), SAM3 when a SAM3 stage is on, Qwen when
synonym expansion or captions are on, the model labelmaps against the
dataset, then the dataset's ground truth.
"""

from __future__ import annotations

from collections.abc import Sequence

from svc_orchestrator.calibration.features import is_background
from svc_orchestrator.calibration.inputs import CalibrationRequest, ServiceModels
from svc_orchestrator.calibration.split import MIN_IMAGES
from tator_core import errors
from tator_core.convert import ModelStatus
from tator_core.labels import labelmap_diff, match_key


def _service(models: Sequence[ServiceModels], name: str, why: str) -> ServiceModels:
    svc = next((s for s in models if s.service == name), None)
    if svc is None or svc.health != "SERVING":
        state = "not configured" if svc is None else f"{svc.health} at {svc.address}"
        raise errors.failed_precondition("SERVICE_UNAVAILABLE", f"{name} service is {state}; calibration needs it {why}",
                                         service=name)
    return svc


def pick_model(svc: ServiceModels, families: Sequence[str], model_id: str) -> ModelStatus | None:
    """The model `model_id` of one of `families`, else the service's default of them, else the first."""
    members = [m for m in svc.models if m.family in families]
    if model_id:
        return next((m for m in members if m.id == model_id), None)
    return next((m for m in members if m.is_default), members[0] if members else None)


def _require_usable(m: ModelStatus, what: str, *, loaded: bool) -> None:
    """MISSING -> MODEL_MISSING; FAILED -> MODEL_LOAD_FAILED; not loaded (when required) -> MODEL_MISSING."""
    state = m.state
    if m.state == "MISSING":
        raise errors.failed_precondition("MODEL_MISSING", f"{what} {m.id!r} is missing: {m.reason or 'no weights'}",
                                         model_id=m.id)
    if m.state == "FAILED":
        raise errors.failed_precondition("MODEL_LOAD_FAILED", f"{what} {m.id!r} failed to load: {m.reason}",
                                         model_id=m.id)
    if loaded and not (m.state == "READY" or m.loaded):
        raise errors.failed_precondition("MODEL_MISSING", f"{what} {m.id!r} is not loaded (state {state}); "
                                         "load it in its service first", model_id=m.id, state=state)


def check_guards(models: Sequence[ServiceModels], dataset, request: CalibrationRequest) -> None:
    """Raise the first unmet precondition of a calibration of `dataset` (a datasets.Dataset)."""
    prep = request.prepass
    if not prep.classifier:
        raise errors.invalid_argument("config.prepass.enable_classifier",
                                      "calibration features need the classifier; leave it enabled")
    clf = _service(models, "classifier", "for the classifier features")
    head = pick_model(clf, ("head",), prep.classifier_id)
    if head is None:
        which = f"classifier head {prep.classifier_id!r}" if prep.classifier_id else "a classifier head"
        raise errors.failed_precondition("MODEL_REQUIRED", f"calibration needs {which}; none is registered "
                                         "(train one with the classifier's TrainHead)", model_id=prep.classifier_id)
    _require_usable(head, "classifier head", loaded=False)

    detectors: list[ModelStatus] = []
    for family, enabled, model_id in (("yolo", prep.yolo, prep.yolo_id), ("rfdetr", prep.rfdetr, prep.rfdetr_id)):
        if not enabled:
            continue
        det = _service(models, "detector", f"for {family}")
        m = pick_model(det, (family,), model_id)
        if m is None:
            name = f"{family} detector {model_id!r}" if model_id else f"a {family} detector"
            raise errors.failed_precondition("MODEL_MISSING", f"{name} is not in the registry (disable it in "
                                             f"config.prepass.enable_{family} or register one)", family=family,
                                             model_id=model_id)
        _require_usable(m, f"{family} detector", loaded=True)
        detectors.append(m)

    if prep.sam3_text or prep.sam3_similarity:
        sam = _service(models, "sam3", "for the SAM3 stages (or disable them in config.prepass)")
        m = pick_model(sam, ("sam3",), "")
        if m is None:
            raise errors.failed_precondition("MODEL_MISSING", "no sam3 model in the registry", family="sam3")
        _require_usable(m, "sam3 model", loaded=False)

    if (prep.sam3_text and prep.sam3_text_synonym_budget > 0) or prep.caption:
        _service(models, "qwen", "for synonym expansion / captions (or set config.prepass.sam3_text_synonym_budget "
                 "to 0 and leave captions off)")

    for m in detectors:
        diff = labelmap_diff(list(m.labelmap), dataset.labelmap)
        if diff or not m.labelmap:
            raise errors.failed_precondition("LABELMAP_MISMATCH", f"detector {m.id!r} labelmap differs from dataset "
                                             f"{dataset.id!r}: {'; '.join(diff[:5]) or 'model has no labelmap'}",
                                             model_id=m.id, dataset_id=dataset.id)
    head_keys = {match_key(c) for c in head.labelmap if not is_background(c)}
    absent = [lab for lab in dataset.labelmap if match_key(lab) not in head_keys]
    if absent:
        raise errors.failed_precondition("LABELMAP_MISMATCH", f"classifier head {head.id!r} lacks dataset classes "
                                         f"{absent[:5]}", model_id=head.id, dataset_id=dataset.id)

    if not dataset.has_ground_truth:
        raise errors.failed_precondition("NO_GROUND_TRUTH", f"dataset {dataset.id!r} has no ground-truth boxes; "
                                         "calibration labels candidates against them", dataset_id=dataset.id)
    if len(dataset.items()) < MIN_IMAGES:
        raise errors.invalid_argument("dataset_id", f"dataset {dataset.id!r} has {len(dataset.items())} images; "
                                      f"calibration needs at least {MIN_IMAGES} (train, val, test)")
    if 0 < request.settings.max_images < MIN_IMAGES:
        raise errors.invalid_argument("config.max_images", f"calibration needs at least {MIN_IMAGES} images")
