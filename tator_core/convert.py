"""Plain Python values every service shares, and their one proto form.

Boxes on Python types are (x1, y1, x2, y2) pixel sequences; a stage of a call is a
`StageTime`; a model's state is a `ModelStatus`; a non-fatal note of a call is a `Note`. Each has exactly one conversion
to its `tator.common.v1` message here, so no server builds these messages by hand.
This module imports no torch, so the CLI can use it without paying for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import SupportsFloat

from tator_core.errors import scrub_paths
from tator_core.gen.tator.common.v1 import common_pb2
from tator_core.registry import TrainingRecord, training_pb
from tator_core.timestamps import duration_ms

Corners = tuple[float, float, float, float]


# --- boxes -------------------------------------------------------------------

def box_pb(b: Sequence[SupportsFloat]) -> common_pb2.Box:
    """(x1, y1, x2, y2) -> Box; numpy scalars and ints become the float fields the message holds."""
    return common_pb2.Box(x1=float(b[0]), y1=float(b[1]), x2=float(b[2]), y2=float(b[3]))


def boxes_pb(boxes: Iterable[Sequence[SupportsFloat]]) -> list[common_pb2.Box]:
    return [box_pb(b) for b in boxes]


def box_xyxy(b: common_pb2.Box) -> Corners:
    """Box -> (x1, y1, x2, y2) floats."""
    return (float(b.x1), float(b.y1), float(b.x2), float(b.y2))


def window_pb(name: str, box: Sequence[SupportsFloat]) -> common_pb2.Window:
    return common_pb2.Window(name=name, box=box_pb(box))


# --- stage timing --------------------------------------------------------------

@dataclass
class StageTime:
    """One stage of a call: milliseconds of compute, milliseconds waiting in a queue, and the
    batch it ran in (0: not batched). The domain keeps float milliseconds; `timing_pb` turns them
    into the StageTiming message's Durations."""

    stage: str
    compute_ms: float = 0.0
    batch_size: int = 0
    queue_ms: float = 0.0


def timing_pb(stages: Iterable[StageTime], total_ms: float, queue_ms: float = 0.0) -> common_pb2.Timing:
    """Stages in execution order plus the call's wall time; `queue_ms` is time the call waited
    before its first stage (a batcher's queue), reported on that first stage."""
    out = common_pb2.Timing(total=duration_ms(total_ms))
    for i, s in enumerate(stages):
        out.stages.add(stage=s.stage, compute=duration_ms(s.compute_ms), batch_size=s.batch_size,
                       queue=duration_ms(s.queue_ms + (queue_ms if i == 0 else 0.0)))
    return out


# --- model status --------------------------------------------------------------

_STATES = {"MISSING": common_pb2.MODEL_STATE_MISSING, "AVAILABLE": common_pb2.MODEL_STATE_AVAILABLE,
           "LOADING": common_pb2.MODEL_STATE_LOADING, "READY": common_pb2.MODEL_STATE_READY,
           "FAILED": common_pb2.MODEL_STATE_FAILED}


@dataclass
class ModelStatus:
    """ModelInfo on Python types; `state` is MISSING, AVAILABLE, LOADING, READY or FAILED."""

    id: str
    family: str
    version: str
    device: str
    state: str
    reason: str = ""
    is_default: bool = False
    loaded: bool = False
    labelmap: list[str] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)
    trained_on: TrainingRecord | None = None


def model_info_pb(s: ModelStatus) -> common_pb2.ModelInfo:
    return common_pb2.ModelInfo(
        id=s.id, family=s.family, version=s.version, labelmap=s.labelmap, device=s.device,
        state=_STATES[s.state], reason=scrub_paths(s.reason), is_default=s.is_default, loaded=s.loaded,
        extra={k: scrub_paths(v) for k, v in s.extra.items()},
        trained_on=training_pb(s.trained_on))


def model_status(m: common_pb2.ModelInfo) -> ModelStatus:
    """ModelInfo -> ModelStatus (the inverse of `model_info_pb`, for a client of a model service)."""
    trained = (TrainingRecord(m.trained_on.description, frozenset(m.trained_on.image_sha256))
               if m.HasField("trained_on") else None)
    known = m.state in common_pb2.ModelState.values()  # a newer service may report a state this one lacks
    state = common_pb2.ModelState.Name(m.state).removeprefix("MODEL_STATE_") if known else f"STATE_{int(m.state)}"
    return ModelStatus(id=m.id, family=m.family, version=m.version, device=m.device, state=state, reason=m.reason,
                       is_default=m.is_default, loaded=m.loaded, labelmap=list(m.labelmap), extra=dict(m.extra),
                       trained_on=trained)


def prompt_text(p: common_pb2.Prompt) -> str:
    """A SAM3 prompt as one table cell: its text, or "exemplars <label> #<indexes>" for exemplar boxes."""
    if p.WhichOneof("kind") == "exemplar":
        return f"exemplars {p.exemplar.label} #{','.join(str(i) for i in p.exemplar.positive_indexes)}"
    return p.text


# --- non-fatal notes ---------------------------------------------------------

@dataclass(frozen=True)
class Note:
    """A call's non-fatal note: a code the service documents on its response's `warnings` field, what it
    concerns (a window, a model id, a request field; empty for the whole call), and the detail."""

    code: str
    subject: str = ""
    message: str = ""


def warning_pb(n: Note) -> common_pb2.Warning:
    return common_pb2.Warning(code=n.code, subject=n.subject, message=scrub_paths(n.message))


def warnings_pb(notes: Iterable[Note]) -> list[common_pb2.Warning]:
    return [warning_pb(n) for n in notes]


def warning_text(w: common_pb2.Warning) -> str:
    """One line for a person: "code subject: message" (empty parts left out)."""
    head = " ".join(x for x in (w.code, w.subject) if x)
    return f"{head}: {w.message}" if head and w.message else head or w.message
