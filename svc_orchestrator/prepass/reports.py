"""What each prepass stage did and cost, gathered while the stages run (plain rows; the StageReport
messages are built from them in svc_orchestrator.convert.prepass)."""

from __future__ import annotations

from dataclasses import dataclass, field

from svc_orchestrator.clients import CallStats
from tator_core import tracing

STAGES = ("synonyms", "detectors", "sam3_text", "dedupe", "sam3_similarity", "dedupe2", "classifier", "caption")


@dataclass
class StageRow:
    """One stage's row; `stage` is the PrepassStage short name, `nanos` its summed wall time."""

    stage: str
    ran: bool = False
    calls: int = 0
    image_bytes_sent: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    nanos: int = 0
    detections: int = 0
    cache_hits: int = 0
    note: str = ""


@dataclass
class StageReports:
    by_stage: dict[str, StageRow] = field(default_factory=lambda: {s: StageRow(s) for s in STAGES})
    tiles: list = field(default_factory=list)  # (model, pass, tile side, tiles) per detector pass: the tile plan

    def record(self, stage: str, stats: CallStats, *, detections: int = 0, cache_hits: int = 0,
               ms: float | None = None, note: str = "") -> None:
        row = self.by_stage[stage]
        row.ran = True
        row.calls += stats.calls
        row.image_bytes_sent += stats.image_bytes_sent
        row.bytes_sent += stats.bytes_sent
        row.bytes_received += stats.bytes_received
        # Summed in whole nanoseconds (the Duration's unit), so parts of a stage add up exactly.
        row.nanos += int(round((stats.ms if ms is None else ms) * 1e6))
        row.detections += detections
        row.cache_hits += cache_hits
        if note:
            row.note = f"{row.note}; {note}" if row.note else note
        # Called inside the stage's span (tracing.traced): what it sent goes on the trace.
        tracing.annotate(image_bytes_sent=row.image_bytes_sent, bytes_sent=row.bytes_sent, calls=row.calls,
                         detections=row.detections)

    def skip(self, stage: str, note: str) -> None:
        self.by_stage[stage].note = note
        tracing.annotate(skipped=note)

    def in_order(self) -> list[StageRow]:
        return [self.by_stage[s] for s in STAGES]
