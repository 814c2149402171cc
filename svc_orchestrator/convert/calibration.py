"""Messages -> what the calibration reads (svc_orchestrator/calibration/inputs.py): the ListModels
answer, the CalibrationConfig and each image's PrepassResult."""

from __future__ import annotations

from google.protobuf import json_format

from svc_orchestrator.calibration.inputs import (
    Atom,
    CalibrationRequest,
    Candidate,
    ImagePrepass,
    PrepassChoice,
    ServiceModels,
)
from svc_orchestrator.calibration.pipeline import Settings
from tator_core.convert import box_pb, box_xyxy, model_status
from tator_core.enums import from_short, short_name, source_name, source_value
from tator_core.gen.tator.common.v1 import common_pb2
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb


def service_models(models: pb.ListModelsResponse) -> list[ServiceModels]:
    return [ServiceModels(service=s.service, address=s.address,
                          health=pb.ServiceHealth.Name(s.health).removeprefix("SERVICE_HEALTH_"),
                          models=tuple(model_status(m) for m in s.models)) for s in models.services]


def _flag(msg: pb.PrepassConfig, name: str, default: bool = True) -> bool:
    """An optional switch of the prepass config with the prepass's own default when unset."""
    return bool(getattr(msg, name)) if msg.HasField(name) else default


def prepass_choice(prep: pb.PrepassConfig) -> PrepassChoice:
    d = PrepassChoice()
    return PrepassChoice(
        yolo=_flag(prep, "enable_yolo"), rfdetr=_flag(prep, "enable_rfdetr"),
        classifier=_flag(prep, "enable_classifier"), sam3_text=_flag(prep, "enable_sam3_text"),
        sam3_similarity=_flag(prep, "enable_sam3_similarity"), caption=_flag(prep, "enable_caption", default=False),
        yolo_id=prep.yolo_id, rfdetr_id=prep.rfdetr_id, classifier_id=prep.classifier_id,
        sam3_text_synonym_budget=(prep.sam3_text_synonym_budget if prep.HasField("sam3_text_synonym_budget")
                                  else d.sam3_text_synonym_budget),
        recorded=json_format.MessageToDict(prep))


def prepass_config_pb(choice: PrepassChoice) -> pb.PrepassConfig:
    """The prepass config a calibration request gave, back as the message the prepass takes."""
    return json_format.ParseDict(dict(choice.recorded), pb.PrepassConfig())


def settings(config: pb.CalibrationConfig) -> Settings:
    """The config with every default filled in (an unset optional field takes the Settings default)."""
    kinds = {pb.CALIBRATION_MODEL_MLP: ("mlp",), pb.CALIBRATION_MODEL_XGB: ("xgb",)}.get(config.model, ("mlp", "xgb"))
    ious = tuple(dict.fromkeys(round(float(v), 4) for v in config.eval_ious)) or (0.5,)
    d = Settings()
    return Settings(
        kinds=kinds, eval_ious=ious,
        label_iou=round(config.label_iou, 4) if config.HasField("label_iou") else d.label_iou,
        dedupe_iou=round(config.dedupe_iou, 4) if config.HasField("dedupe_iou") else d.dedupe_iou,
        recall_floor=round(config.recall_floor, 4) if config.HasField("recall_floor") else d.recall_floor,
        seed=int(config.seed) if config.HasField("seed") else d.seed,
        val_fraction=round(config.val_fraction, 4) if config.HasField("val_fraction") else d.val_fraction,
        test_fraction=round(config.test_fraction, 4) if config.HasField("test_fraction") else d.test_fraction,
        max_images=int(config.max_images), embedding_dims=int(config.embedding_dims))


def calibration_request(config: pb.CalibrationConfig) -> CalibrationRequest:
    return CalibrationRequest(settings=settings(config), prepass=prepass_choice(config.prepass),
                              allow_training_overlap=bool(config.allow_training_overlap))


def _atom(a: pb.Atom) -> Atom:
    # An atom without a detection source is named after its stage.
    source = source_name(a.detection.source) or short_name(pb.PrepassStage, a.stage)
    return Atom(atom_id=a.atom_id, source=source, label=a.detection.label, score=float(a.detection.score),
                box=box_xyxy(a.detection.box), pass_kind=short_name(pb.AtomPass, a.pass_kind))


def _candidate(c: pb.Candidate) -> Candidate:
    return Candidate(box=box_xyxy(c.box), label=c.label, score=float(c.score), primary=source_name(c.source_primary),
                     sources=tuple(source_name(s) for s in c.sources),
                     source_scores={source_name(ss.source): float(ss.score) for ss in c.source_scores},
                     atom_ids=tuple(c.atom_ids), probabilities=tuple(float(p) for p in c.probabilities))


def image_prepass(res: pb.PrepassResult) -> ImagePrepass:
    return ImagePrepass(
        image_name=res.image_name, width=res.width, height=res.height,
        candidates=tuple(_candidate(c) for c in res.candidates), atoms=tuple(_atom(a) for a in res.atoms),
        classifier_classes=tuple(res.classifier_classes), model_versions=dict(res.model_versions),
        config_hash=res.config_hash, glossary_hash=res.glossary_hash, labelmap_hash=res.labelmap_hash,
        run_id=res.run_id, cache_hit=res.cache_hit, warnings=len(res.warnings))


_STAGE_OF_SOURCE = {"yolo": pb.PREPASS_STAGE_DETECTORS, "rfdetr": pb.PREPASS_STAGE_DETECTORS,
                    "sam3_text": pb.PREPASS_STAGE_SAM3_TEXT, "sam3_similarity": pb.PREPASS_STAGE_SAM3_SIMILARITY}


def prepass_result_pb(view: ImagePrepass) -> pb.PrepassResult:
    """An ImagePrepass as the PrepassResult a prepass returns (the inverse of `image_prepass` on what the
    calibration reads; warnings are a count there and stay empty here). The simulated prepass answers
    with ImagePrepass; this lets it stand in where the orchestrator handles messages."""
    out = pb.PrepassResult(
        image_name=view.image_name, width=view.width, height=view.height, classifier_classes=view.classifier_classes,
        model_versions=dict(view.model_versions), config_hash=view.config_hash, glossary_hash=view.glossary_hash,
        labelmap_hash=view.labelmap_hash, run_id=view.run_id, cache_hit=view.cache_hit)
    for a in view.atoms:
        out.atoms.add(atom_id=a.atom_id, stage=_STAGE_OF_SOURCE.get(a.source) or from_short(pb.PrepassStage, a.source),
                      pass_kind=from_short(pb.AtomPass, a.pass_kind),
                      detection=common_pb2.Detection(box=box_pb(a.box), label=a.label, score=a.score,
                                                     source=source_value(a.source if a.source in _STAGE_OF_SOURCE
                                                                         else "")))
    for k, c in enumerate(view.candidates):
        out.candidates.add(index=k, box=box_pb(c.box), label=c.label, score=c.score,
                           source_primary=source_value(c.primary), sources=[source_value(s) for s in c.sources],
                           source_scores=[pb.SourceScore(source=source_value(s), score=v)
                                          for s, v in c.source_scores.items()],
                           atom_ids=c.atom_ids, probabilities=c.probabilities)
    return out
