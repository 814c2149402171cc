"""Which model of which service a prepass uses, and their versions — decided before the cache lookup.

The plan comes from the services' ListModels answers: an empty id in the config means the
family's default model. The version of every model that can influence the output goes into the
cache key — detectors, SAM3, Qwen (when it expands synonyms or captions), the classifier head and
its backbone — so a new version of any of them never answers from an older result.

A family with no model in the registry at all is skipped with a warning (the result says so, and
the key differs from a run that had the model); a listed model whose weights are missing or that
failed to load fails the prepass with MODEL_MISSING / MODEL_LOAD_FAILED naming the stage — never
an empty success.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc

from svc_orchestrator.clients import RemoteCallError, ServiceState
from svc_orchestrator.prepass.config import ResolvedConfig
from tator_core import errors
from tator_core.enums import from_short
from tator_core.gen.tator.common.v1 import common_pb2
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

_TRANSIENT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED,
              grpc.StatusCode.CANCELLED, grpc.StatusCode.ABORTED)


def stage_failed(stage: str, service: str, code: grpc.StatusCode, message: str, reason: str = "") -> errors.TatorError:
    """UNAVAILABLE for a service that is down or overloaded, else FAILED_PRECONDITION; reason STAGE_FAILED,
    metadata stage=<name> plus the upstream status, so a job can name the failing stage."""
    meta = {"stage": stage, "service": service, "upstream_code": code.name, "upstream_reason": reason}
    text = f"prepass stage {stage} failed ({service}: {code.name}{' ' + reason if reason else ''}): {message}"
    if code in _TRANSIENT:
        return errors.unavailable("STAGE_FAILED", text, **meta)
    return errors.failed_precondition("STAGE_FAILED", text, **meta)


def remote_stage_failed(stage: str, exc: RemoteCallError) -> errors.TatorError:
    """stage_failed for a model-service call that failed, from the status it answered."""
    r = exc.remote
    return stage_failed(stage, exc.service, r.code, r.message, r.reason)


@dataclass
class ModelPlan:
    detector_ids: list[str] = field(default_factory=list)
    detector_family: dict[str, str] = field(default_factory=dict)
    sam3_id: str = ""
    qwen_id: str = ""
    head_id: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    warnings: list[pb.PrepassWarning] = field(default_factory=list)

    @property
    def services(self) -> set[str]:
        used = set()
        if self.detector_ids:
            used.add("detector")
        if self.sam3_id:
            used.add("sam3")
        if self.qwen_id:
            used.add("qwen")
        if self.head_id:
            used.add("classifier")
        return used


def needed_services(cfg: ResolvedConfig, wants_expansion: bool) -> list[str]:
    out = []
    if cfg.detectors_on:
        out.append("detector")
    if cfg.sam3_on:
        out.append("sam3")
    if (cfg.enable_sam3_text and wants_expansion and cfg.sam3_text_synonym_budget > 0) or cfg.enable_caption:
        out.append("qwen")
    if cfg.enable_classifier:
        out.append("classifier")
    return out


def _pick(state: ServiceState, families: Sequence[str], wanted: str, stage: str, what: str,
          warnings: list[pb.PrepassWarning]) -> common_pb2.ModelInfo | None:
    models = [m for m in state.models if m.family in families]
    if wanted:
        info = next((m for m in state.models if m.id == wanted), None)
        if info is None:
            raise errors.not_found("MODEL_NOT_FOUND", f"{state.service} has no model {wanted!r} ({what})",
                                   model_id=wanted, stage=stage)
        if info.family not in families:
            raise errors.invalid_argument(f"config.{what}", f"model {wanted!r} is a {info.family} model, "
                                          f"not one of {', '.join(families)}")
    else:
        info = next((m for m in models if m.is_default), models[0] if models else None)
        if info is None:
            warnings.append(pb.PrepassWarning(stage=from_short(pb.PrepassStage, stage), warning=common_pb2.Warning(
                code="no_model", subject=what,
                message=f"no {'/'.join(families)} model in the {state.service} registry; skipped")))
            return None
    if info.state == common_pb2.MODEL_STATE_MISSING:
        raise errors.failed_precondition("MODEL_MISSING", f"{info.id}: {info.reason or 'weights missing'}",
                                         model_id=info.id, stage=stage)
    if info.state == common_pb2.MODEL_STATE_FAILED:
        raise errors.failed_precondition("MODEL_LOAD_FAILED", f"{info.id}: {info.reason or 'failed to load'}",
                                         model_id=info.id, stage=stage)
    return info


def _require(states: dict[str, ServiceState], service: str, stage: str) -> ServiceState:
    state = states[service]
    if state.health == "UNREACHABLE" or state.error:
        code = grpc.StatusCode.UNAVAILABLE
        raise stage_failed(stage, service, code, f"{service} at {state.address} is {state.health}"
                           f"{': ' + state.error if state.error else ''}")
    return state


def resolve_plan(cfg: ResolvedConfig, states: dict[str, ServiceState], *, wants_expansion: bool) -> ModelPlan:
    plan = ModelPlan()
    w = plan.warnings
    if cfg.detectors_on:
        state = _require(states, "detector", "detectors")
        for on, fam, wanted in ((cfg.enable_yolo, "yolo", cfg.yolo_id), (cfg.enable_rfdetr, "rfdetr", cfg.rfdetr_id)):
            if not on:
                continue
            info = _pick(state, (fam,), wanted, "detectors", f"{fam}_id", w)
            if info is not None:
                plan.detector_ids.append(info.id)
                plan.detector_family[info.id] = fam
                plan.versions[info.id] = info.version
    if cfg.sam3_on:
        stage = "sam3_text" if cfg.enable_sam3_text else "sam3_similarity"
        info = _pick(_require(states, "sam3", stage), ("sam3",), "", stage, "sam3", w)
        if info is not None:
            plan.sam3_id, plan.versions[info.id] = info.id, info.version
    if "qwen" in needed_services(cfg, wants_expansion):
        stage = "synonyms" if cfg.enable_sam3_text and wants_expansion else "caption"
        info = _pick(_require(states, "qwen", stage), ("qwen",), "", stage, "qwen", w)
        if info is not None:
            plan.qwen_id, plan.versions[info.id] = info.id, info.version
    if cfg.enable_classifier:
        state = _require(states, "classifier", "classifier")
        info = _pick(state, ("head",), cfg.classifier_id, "classifier", "classifier_id", w)
        if info is not None:
            plan.head_id, plan.versions[info.id] = info.id, info.version
            backbone = info.extra.get("backbone_id") or info.extra.get("backbone") or ""
            bb = next((m for m in state.models if m.id == backbone), None)
            if bb is not None:
                plan.versions[bb.id] = bb.version
            elif backbone and info.extra.get("backbone_version"):
                plan.versions[backbone] = info.extra["backbone_version"]
    return plan
