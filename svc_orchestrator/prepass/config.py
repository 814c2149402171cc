"""Prepass config: defaults, validation, the canonical form and its hash.

Every prepass toggle that still means something is a field of `PrepassConfig`; unset fields
take the defaults below (the one place they are written down). The canonical form drops knobs that
cannot change the output of the resolved config — similarity knobs when similarity is off, window
knobs when no stage runs windowed, the cross-class IoU when cross-class merging is off, deadlines
always — so two configs that behave the same hash the same (`config_hash`), and any knob that does
change the output is in the hash.

Left out on purpose: `detector_mode`/`detector_id` (one Detect call names both models),
`scoreless_iou` (every source here reports a score), `prepass_keep_all` and the classifier
accept thresholds (the classifier scores every candidate and rejects nothing; acceptance is
the calibrated accept model's job), the diverse exemplar strategy, caption profile/variant and the
EDR fields (calibration ids are request fields).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from tator_core import errors, limits
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
from tator_core.hashing import stable_hash

#: field -> default, for every optional scalar of PrepassConfig.
DEFAULTS: dict[str, object] = {
    "enable_yolo": True, "enable_rfdetr": True, "detector_conf": 0.45, "detector_iou": 0.45,
    "detector_merge_iou": 0.5, "detector_full": True, "detector_sahi": True, "sahi_window_size": 0,
    "sahi_overlap_ratio": 0.2,
    "enable_sam3_text": True, "sam3_text_synonym_budget": 10, "sam3_text_window_extension": True,
    "sam3_text_score": 0.2, "sam3_mask_threshold": 0.2,
    "enable_sam3_similarity": True, "similarity_min_exemplar_score": 0.6, "similarity_exemplar_count": 3,
    "similarity_window_extension": True, "similarity_score": 0.3,
    "grid_cols": 2, "grid_rows": 2, "grid_overlap_ratio": 0.2,
    "dedupe_iou": 0.75, "cross_class_dedupe": False, "cross_class_dedupe_iou": 0.8,
    "enable_classifier": True, "enable_caption": False, "caption_windowed": False, "caption_max_tokens": 64,
    "seed": 0, "stage_timeout_s": 0.0, "return_masks": False,
}


@dataclass(frozen=True)
class ResolvedConfig:
    """A PrepassConfig with every default filled in. stage_timeout_s 0 = per-service settings."""

    enable_yolo: bool
    enable_rfdetr: bool
    yolo_id: str
    rfdetr_id: str
    detector_conf: float
    detector_iou: float
    detector_merge_iou: float
    detector_full: bool
    detector_sahi: bool
    sahi_window_size: int  # 0 = each detector's input size (SAM3 SAHI windows: its service default)
    sahi_overlap_ratio: float
    enable_sam3_text: bool
    sam3_text_synonym_budget: int
    sam3_text_window_extension: bool
    window_mode: str  # grid | sahi
    sam3_text_score: float
    sam3_mask_threshold: float
    enable_sam3_similarity: bool
    similarity_min_exemplar_score: float
    similarity_exemplar_count: int
    similarity_exemplar_strategy: str  # top | random
    similarity_window_extension: bool
    similarity_score: float
    grid_cols: int
    grid_rows: int
    grid_overlap_ratio: float
    dedupe_iou: float
    fusion_mode: str  # primary | wbf
    cross_class_dedupe: bool
    cross_class_dedupe_iou: float
    enable_classifier: bool
    classifier_id: str
    enable_caption: bool
    caption_windowed: bool
    caption_max_tokens: int
    seed: int
    stage_timeout_s: float
    return_masks: bool

    @property
    def detectors_on(self) -> bool:
        return self.enable_yolo or self.enable_rfdetr

    @property
    def sam3_on(self) -> bool:
        return self.enable_sam3_text or self.enable_sam3_similarity

    @property
    def any_windowed(self) -> bool:
        return ((self.enable_sam3_text and self.sam3_text_window_extension)
                or (self.enable_sam3_similarity and self.similarity_window_extension)
                or (self.enable_caption and self.caption_windowed))

    def canonical(self) -> dict:
        """The knobs that can change the output, floats rounded so float32 noise never matters."""
        doc = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}
        drop = {"stage_timeout_s"}
        if not self.enable_yolo:
            drop.add("yolo_id")
        if not self.enable_rfdetr:
            drop.add("rfdetr_id")
        if not self.detectors_on:
            drop |= {"detector_conf", "detector_iou", "detector_merge_iou", "detector_full", "detector_sahi"}
        if not (self.detectors_on and self.detector_sahi) and not (self.any_windowed and self.window_mode == "sahi"):
            drop |= {"sahi_window_size", "sahi_overlap_ratio"}
        if not (self.detectors_on and self.detector_full and self.detector_sahi):
            drop.add("detector_merge_iou")
        if not self.enable_sam3_text:
            drop |= {"sam3_text_synonym_budget", "sam3_text_window_extension", "sam3_text_score"}
        if not self.sam3_on:
            drop |= {"sam3_mask_threshold"}
        if not self.enable_sam3_similarity:
            drop |= {"similarity_min_exemplar_score", "similarity_exemplar_count", "similarity_exemplar_strategy",
                     "similarity_window_extension", "similarity_score"}
        if not self.any_windowed:
            drop.add("window_mode")
        if not self.any_windowed or self.window_mode != "grid":
            drop |= {"grid_cols", "grid_rows", "grid_overlap_ratio"}
        if not self.cross_class_dedupe:
            drop.add("cross_class_dedupe_iou")
        if self.dedupe_iou <= 0 and not self.cross_class_dedupe:
            drop.add("fusion_mode")  # nothing merges, so nothing fuses
        if not self.enable_classifier:
            drop.add("classifier_id")
        if not self.enable_caption:
            drop |= {"caption_windowed", "caption_max_tokens"}
        # Generation is greedy, so the seed only matters for random exemplars.
        if not (self.enable_sam3_similarity and self.similarity_exemplar_strategy == "random"):
            drop.add("seed")
        if not self.sam3_on:
            drop.add("return_masks")
        return {k: v for k, v in doc.items() if k not in drop}

    def config_hash(self) -> str:
        return stable_hash(self.canonical())


_WINDOW = {pb.WINDOW_MODE_UNSPECIFIED: "grid", pb.WINDOW_MODE_GRID: "grid", pb.WINDOW_MODE_SAHI: "sahi"}
_STRATEGY = {pb.EXEMPLAR_STRATEGY_UNSPECIFIED: "top", pb.EXEMPLAR_STRATEGY_TOP: "top",
             pb.EXEMPLAR_STRATEGY_RANDOM: "random"}
_FUSION = {pb.FUSION_MODE_UNSPECIFIED: "primary", pb.FUSION_MODE_PRIMARY: "primary", pb.FUSION_MODE_WBF: "wbf"}


def _enum(table: Mapping[Any, str], value: int, fld: str) -> str:
    if value not in table:
        raise errors.invalid_argument(f"config.{fld}", f"unknown value {value}")
    return table[value]


@dataclass(frozen=True)
class ServiceCaps:
    """What the model services accept (defaults: tator_core.limits, the services' own defaults)."""

    tile_min: int = limits.TILE_MIN
    tile_max: int = limits.TILE_MAX
    sam3_max_prompt_runs: int = limits.SAM3_MAX_PROMPT_RUNS


def _check_caps(out: ResolvedConfig, caps: ServiceCaps, fld: str) -> None:
    """Refuse at the door what a model service would refuse mid-job."""
    # 0 (the default) lets each detector tile at its own input size and SAM3 at its service default.
    explicit = out.sahi_window_size != 0
    if explicit and out.detectors_on and out.detector_sahi and \
            not caps.tile_min <= out.sahi_window_size <= caps.tile_max:
        raise errors.invalid_argument(f"{fld}.sahi_window_size", f"must be in [{caps.tile_min}, {caps.tile_max}] "
                                      f"(the detector's tile limits), got {out.sahi_window_size}")
    sam3_windowed = (out.enable_sam3_text and out.sam3_text_window_extension) or \
        (out.enable_sam3_similarity and out.similarity_window_extension)
    if sam3_windowed and out.window_mode == "grid":
        contexts = out.grid_cols * out.grid_rows + 1  # the full frame runs too
        if contexts > caps.sam3_max_prompt_runs:
            raise errors.invalid_argument(
                f"{fld}.grid_cols", f"a {out.grid_cols}x{out.grid_rows} grid is {contexts} SAM3 contexts per prompt, "
                f"over SAM3's cap of {caps.sam3_max_prompt_runs} prompt runs per call", "FANOUT_CAP_EXCEEDED",
                cap=caps.sam3_max_prompt_runs, requested=contexts)
    if explicit and sam3_windowed and out.window_mode == "sahi" and \
            not caps.tile_min <= out.sahi_window_size <= caps.tile_max:
        raise errors.invalid_argument(f"{fld}.sahi_window_size", f"must be in [{caps.tile_min}, {caps.tile_max}], "
                                      f"got {out.sahi_window_size}")


def resolve(cfg: pb.PrepassConfig | None, *, fld: str = "config", caps: ServiceCaps | None = None) -> ResolvedConfig:
    """Fill defaults and check what protovalidate cannot (cross-field rules, non-finite floats)."""
    cfg = cfg if cfg is not None else pb.PrepassConfig()
    values: dict[str, Any] = {}
    for name, default in DEFAULTS.items():
        if cfg.HasField(name):
            value = getattr(cfg, name)
            if isinstance(value, float) and not math.isfinite(value):
                raise errors.invalid_argument(f"{fld}.{name}", "must be a finite number")
            values[name] = value
        else:
            values[name] = default
    values.update(
        yolo_id=cfg.yolo_id, rfdetr_id=cfg.rfdetr_id, classifier_id=cfg.classifier_id,
        window_mode=_enum(_WINDOW, cfg.window_mode, "window_mode"),
        similarity_exemplar_strategy=_enum(_STRATEGY, cfg.similarity_exemplar_strategy,
                                           "similarity_exemplar_strategy"),
        fusion_mode=_enum(_FUSION, cfg.fusion_mode, "fusion_mode"))
    names = {f.name for f in fields(ResolvedConfig)}
    out = ResolvedConfig(**{k: v for k, v in values.items() if k in names})
    if out.detectors_on and not (out.detector_full or out.detector_sahi):
        raise errors.invalid_argument(f"{fld}.detector_full",
                                      "a detector is enabled but both detector_full and detector_sahi are off")
    if not (out.detectors_on or out.enable_sam3_text):
        raise errors.invalid_argument(
            f"{fld}.enable_sam3_text",
            "no detection source: enable YOLO, RF-DETR or SAM3 text (similarity needs their clusters)")
    if not 0 <= out.stage_timeout_s <= 3600:
        raise errors.invalid_argument(f"{fld}.stage_timeout_s", "must be in (0, 3600]")
    _check_caps(out, caps or ServiceCaps(), fld)
    return out


def merge(base: pb.PrepassConfig, override: pb.PrepassConfig) -> pb.PrepassConfig:
    """A recipe's config with the request's set fields on top (optional scalars by presence,
    ids and enums when non-empty)."""
    out = pb.PrepassConfig()
    out.CopyFrom(base)
    for name in DEFAULTS:
        if override.HasField(name):
            setattr(out, name, getattr(override, name))
    for name in ("yolo_id", "rfdetr_id", "classifier_id", "window_mode", "similarity_exemplar_strategy",
                 "fusion_mode"):
        if getattr(override, name):
            setattr(out, name, getattr(override, name))
    return out



class ConfigDocError(ValueError):
    """A config document that does not parse into PrepassConfig or fails its validation."""


def config_from_doc(doc: Mapping[str, Any]) -> pb.PrepassConfig:
    """A PrepassConfig from its JSON document (proto or JSON field names)."""
    from google.protobuf import json_format

    try:
        return json_format.ParseDict(dict(doc), pb.PrepassConfig())
    except (json_format.ParseError, TypeError, ValueError, AttributeError, RecursionError) as exc:
        raise ConfigDocError(f"does not parse: {str(exc)[:200]}") from exc


def config_doc(cfg: pb.PrepassConfig) -> dict[str, Any]:
    """A PrepassConfig as the JSON document recipes keep (proto field names, set fields only)."""
    from google.protobuf import json_format

    return json_format.MessageToDict(cfg, preserving_proto_field_name=True)


def checked_config_doc(doc: Mapping[str, Any], *, fld: str = "config", validate: bool = True) -> dict[str, Any]:
    """A config document parsed, validated (protovalidate, when `validate`; a request's config was already
    checked at the door) and resolved, in its normal form. ConfigDocError when it does not parse or
    validate; resolve's INVALID_ARGUMENT, naming `fld`, when a cross-field rule fails."""
    from tator_core.validation import validation_error

    cfg = config_from_doc(doc)
    invalid = validation_error(cfg) if validate else None
    if invalid is not None:
        raise ConfigDocError(f"is invalid: {invalid.message}")
    resolve(cfg, fld=fld)
    return config_doc(cfg)
