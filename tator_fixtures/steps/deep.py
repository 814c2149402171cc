"""Tier 2 (deep, optional): the full pipeline over the synthetic val split, a
10-image prepass benchmark, and a calibration on the synthetic dataset.

They use the demo dataset `synth` under the stack's data root (`make fixtures`
puts it there) and the demo's prepass config, so a stack that ran `make demo`
answers the prepass from its cache. Run with `tator regress --tier 2`.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from tator_core.enums import short_name, source_name
from tator_core.timestamps import milliseconds
from tator_fixtures.regress import StepContext, step
from tator_fixtures.synth import split_images

DATASET = "synth"


def _config(pb: Any, **extra: Any) -> Any:
    # The demo's lane: detector tiles at each model's input size for the large scenes, SAM3 on the full frame.
    return pb.PrepassConfig(sam3_text_window_extension=False,
                            similarity_window_extension=False, **extra)


def _client(ctx: StepContext) -> Any:
    from tator_core.client import ServiceClient
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc

    return ServiceClient(ctx.addresses["orchestrator"], pb_grpc.OrchestratorServiceStub, timeout_s=ctx.deadline_s)


async def _finish(client: Any, job_id: str) -> Any:
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

    last = None
    async for event in client.stream("WatchJob", pb.WatchJobRequest(job_id=job_id)):
        last = event.job
    if last is None or last.state != pb.JOB_STATE_SUCCEEDED:
        state = pb.JobState.Name(last.state) if last is not None else "no events"
        raise AssertionError(f"job {job_id} ended {state}: {last.error if last else ''}")
    return last


@step("deep.prepass_val_split", tier=2, service="orchestrator", heavy=True, deadline_s=1800,
      tolerances={"detections": 10, "classes": 10, "sources": 10})
async def prepass_val_split(ctx: StepContext) -> dict:
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

    client = _client(ctx)
    try:
        job = (await client.call("StartPrepassJob", pb.StartPrepassJobRequest(
            dataset_id=DATASET, split="val", config=_config(pb)))).job
        await _finish(client, job.id)
        names = [d for d in (await client.call("ListDatasets", pb.ListDatasetsRequest(page_size=1000))).datasets
                 if d.id == DATASET]
        if not names:
            raise AssertionError(f"dataset {DATASET} is not under the stack's data root")
        results = [(await client.call("Prepass", pb.PrepassRequest(
            dataset_id=DATASET, dataset_image=name, config=_config(pb)))).result
            for name in split_images(ctx.data_root / DATASET, "val")]
    finally:
        await client.close()
    cands = [c for r in results for c in r.candidates]
    return {"detections": len(cands), "classes": dict(Counter(c.label for c in cands)),
            "sources": dict(Counter(source_name(s) for c in cands for s in c.sources)),
            "cache": {"hits": sum(r.cache_hit for r in results), "images": len(results)},
            "config_hash": results[0].config_hash if results else ""}


@step("deep.prepass_benchmark_10", tier=2, service="orchestrator", heavy=True, deadline_s=900)
async def prepass_benchmark_10(ctx: StepContext) -> dict:
    """Ten uncached prepasses (refresh) through gRPC; timings are reported, not compared."""
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

    names = split_images(ctx.data_root / DATASET, "test")[:10]
    client = _client(ctx)
    stage_ms: Counter = Counter()
    started = time.perf_counter()
    try:
        for name in names:
            result = (await client.call("Prepass", pb.PrepassRequest(
                dataset_id=DATASET, dataset_image=name, config=_config(pb), refresh=True))).result
            stage_ms.update({short_name(pb.PrepassStage, s.stage): milliseconds(s.duration) for s in result.stages})
    finally:
        await client.close()
    wall = time.perf_counter() - started
    return {"detections": len(names), "extra": {"images_per_s": round(len(names) / wall, 3),
                                                "stage_ms_per_image": {k: round(v / len(names), 1)
                                                                       for k, v in stage_ms.items()}}}


@step("deep.calibration", tier=2, service="orchestrator", heavy=True, deadline_s=1800)
async def calibration(ctx: StepContext) -> dict:
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

    client = _client(ctx)
    try:
        job = (await client.call("StartCalibration", pb.StartCalibrationRequest(
            dataset_id=DATASET, config=pb.CalibrationConfig(model=pb.CALIBRATION_MODEL_BOTH,
                                                           prepass=_config(pb))))).job
        await _finish(client, job.id)
        report = (await client.call("GetCalibrationReport",
                                    pb.GetCalibrationReportRequest(job_id=job.id))).report
    finally:
        await client.close()
    metrics = {}
    for r in report.results:
        for name in ("precision", "recall", "f1"):
            metrics[f"{r.method}.{name}@{r.eval_iou:g}"] = round(getattr(r.overall, name), 4)
    return {"metrics": metrics, "hashes": {"feature_schema": report.feature_schema_hash}}
