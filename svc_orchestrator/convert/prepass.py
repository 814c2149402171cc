"""The prepass's plain stage rows as StageReport messages."""

from __future__ import annotations

from svc_orchestrator.prepass.reports import StageRow
from tator_core.enums import from_short
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb


def stage_report_pb(row: StageRow) -> pb.StageReport:
    out = pb.StageReport(stage=from_short(pb.PrepassStage, row.stage), ran=row.ran, calls=row.calls,
                         image_bytes_sent=row.image_bytes_sent, bytes_sent=row.bytes_sent,
                         bytes_received=row.bytes_received, detections=row.detections, cache_hits=row.cache_hits,
                         note=row.note)
    out.duration.FromNanoseconds(row.nanos)
    return out
