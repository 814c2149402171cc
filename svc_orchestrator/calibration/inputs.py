"""What the calibration reads, on plain Python types.

The orchestrator converts its messages into these (svc_orchestrator/convert/calibration.py) before
the calibration sees them, so nothing in this package depends on the wire format:

- `ServiceModels`: one model service as ListModels reports it (health and models);
- `CalibrationRequest`: the calibration's settings, its prepass choices and the leakage override;
- `ImagePrepass`: one image's prepass result, reduced to the candidates and atoms the features,
  labels and version checks look at.

Enum values are short names (a source is "yolo", an atom pass "full", "tiled" or "windowed"), the
names the feature columns and stored schemas already use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from svc_orchestrator.calibration.pipeline import Settings
from tator_core.convert import Corners, ModelStatus

#: The prepass enables these stages when the request leaves them unset; captions are off unless asked.
SYNONYM_BUDGET_DEFAULT = 10


@dataclass(frozen=True)
class ServiceModels:
    """One model service: `health` is SERVING, NOT_SERVING or UNREACHABLE."""

    service: str
    address: str = ""
    health: str = "SERVING"
    models: tuple[ModelStatus, ...] = ()


@dataclass(frozen=True)
class PrepassChoice:
    """What a calibration reads of its prepass config: which stages and models run. `recorded` is the
    config as the request gave it (its JSON form), kept in the report so a client can rerun it."""

    yolo: bool = True
    rfdetr: bool = True
    classifier: bool = True
    sam3_text: bool = True
    sam3_similarity: bool = True
    caption: bool = False
    yolo_id: str = ""
    rfdetr_id: str = ""
    classifier_id: str = ""
    sam3_text_synonym_budget: int = SYNONYM_BUDGET_DEFAULT
    recorded: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CalibrationRequest:
    settings: Settings = field(default_factory=Settings)
    prepass: PrepassChoice = field(default_factory=PrepassChoice)
    allow_training_overlap: bool = False


@dataclass(frozen=True)
class Atom:
    """One detection of one stage before clustering. `source` falls back to the stage's name for an
    atom without a detection source; `pass_kind` is full, tiled or windowed ("" when unknown)."""

    atom_id: str
    source: str
    label: str
    score: float
    box: Corners
    pass_kind: str = ""


@dataclass(frozen=True)
class Candidate:
    """One deduplicated cluster: its representative box, label and score, the sources that found it
    (short names), the best score per source, its atoms and the classifier's probability vector."""

    box: Corners
    label: str
    score: float
    primary: str = ""
    sources: tuple[str, ...] = ()
    source_scores: Mapping[str, float] = field(default_factory=dict)
    atom_ids: tuple[str, ...] = ()
    probabilities: tuple[float, ...] = ()


@dataclass(frozen=True)
class ImagePrepass:
    """One image's prepass result as the calibration reads it."""

    image_name: str
    width: int
    height: int
    candidates: tuple[Candidate, ...] = ()
    atoms: tuple[Atom, ...] = ()
    classifier_classes: tuple[str, ...] = ()
    model_versions: Mapping[str, str] = field(default_factory=dict)
    config_hash: str = ""
    glossary_hash: str = ""
    labelmap_hash: str = ""
    run_id: str = ""
    cache_hit: bool = False
    warnings: int = 0
