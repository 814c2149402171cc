"""Tier 1 calibration steps: an MLP job and an XGBoost job on the same prepass cache, and the report schema.

The two jobs share dataset, image sample, seed and prepass config, so the second one must be answered
entirely from the prepass cache, and everything that does not depend on the model must agree between
the two reports: split, feature-schema hash, test GT count and the baselines (accept-all, best single
source). Each report must hold every method at every eval IoU with every labelmap class, and counts and
rates that agree with each other. SAM3 and Qwen are off to bound the cost (the step is about the
calibration, not the SAM3 stages); YOLO carries the recall.

`run_calibration_job` and `check_report` are also used by tests/test_calibration_stack.py.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from tator_fixtures.regress import StepContext, step

DEFAULT_DATASET = "synth"
MIN_IMAGES = 12


def light_prepass(pb: Any, **overrides: Any) -> Any:
    """Prepass config for calibration checks: detectors + classifier, no SAM3, no Qwen."""
    kw = dict(enable_sam3_text=False, enable_sam3_similarity=False, sam3_text_synonym_budget=0,
              sam3_text_window_extension=False, similarity_window_extension=False, enable_caption=False)
    kw.update(overrides)
    return pb.PrepassConfig(**kw)


async def run_calibration_job(client: Any, dataset_id: str, config: Any, *, timeout_s: float = 1800,
                              on_event: Callable[[Any], Awaitable[None] | None] | None = None) -> tuple[Any, Any, list]:
    """StartCalibration -> WatchJob to the end -> GetCalibrationReport.

    Returns (final job, report or None when the job did not succeed, the watched jobs in order).
    """
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

    job = (await client.call("StartCalibration", pb.StartCalibrationRequest(dataset_id=dataset_id, config=config))).job
    events = []
    async for ev in client.stream("WatchJob", pb.WatchJobRequest(job_id=job.id), timeout_s=timeout_s):
        events.append(ev.job)
        if on_event is not None:
            res = on_event(ev.job)
            if res is not None:
                await res
    final = events[-1] if events else job
    if final.state != pb.JOB_STATE_SUCCEEDED:
        return final, None, events
    report = (await client.call("GetCalibrationReport", pb.GetCalibrationReportRequest(job_id=job.id))).report
    return final, report, events


def method_name(r: Any) -> str:
    """mlp, xgb, accept_all or best_single_source:<source> of a MethodMetrics."""
    from tator_core.enums import source_name
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

    name = pb.AcceptMethod.Name(r.method).removeprefix("ACCEPT_METHOD_").lower()
    return f"{name}:{source_name(r.source)}" if r.source else name


def _model_name(method: int) -> str:
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

    return pb.AcceptMethod.Name(method).removeprefix("ACCEPT_METHOD_").lower()


def check_report(report: Any, labelmap: Sequence[str], models: Sequence[str]) -> None:
    """Assert the report's metric schema is consistent."""
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

    ious = sorted({round(r.eval_iou, 4) for r in report.results})
    methods = {method_name(r) for r in report.results}
    expected = {*models, "accept_all"}
    assert expected <= methods, f"methods {sorted(methods)} lack {sorted(expected - methods)}"
    assert sum(m.startswith("best_single_source:") for m in methods) == 1, methods
    assert all(bool(r.source) == (r.method == pb.ACCEPT_METHOD_BEST_SINGLE_SOURCE) for r in report.results)
    test_gt = report.test.ground_truth
    assert test_gt > 0, "test split has no ground truth"
    for method in methods:
        got = sorted(round(r.eval_iou, 4) for r in report.results if method_name(r) == method)
        assert got == ious, f"{method}: eval IoUs {got} != {ious}"
    for r in report.results:
        assert set(labelmap) <= set(r.per_class), f"{r.method}: per_class lacks {set(labelmap) - set(r.per_class)}"
        o = r.overall
        assert o.tp + o.fn == test_gt, f"{r.method}@{r.eval_iou}: tp+fn {o.tp + o.fn} != test GT {test_gt}"
        assert (sum(c.tp for c in r.per_class.values()), sum(c.fp for c in r.per_class.values()),
                sum(c.fn for c in r.per_class.values())) == (o.tp, o.fp, o.fn), f"{r.method}: per-class sums"
        for name, m in [("overall", o), *r.per_class.items()]:
            p = m.tp / (m.tp + m.fp) if m.tp + m.fp else 0.0
            rc = m.tp / (m.tp + m.fn) if m.tp + m.fn else 0.0
            f = 2 * p * rc / (p + rc) if p + rc else 0.0
            for field, want in (("precision", p), ("recall", rc), ("f1", f)):
                assert math.isclose(getattr(m, field), want, abs_tol=1e-9), f"{r.method} {name} {field}"
    for group in (report.thresholds, report.curves, report.models):
        assert [_model_name(m.model) for m in group] == list(models), list(group)
    assert sum(t.is_default for t in report.thresholds) == 1
    for t in report.thresholds:
        assert [c.label for c in t.classes] == list(labelmap), _model_name(t.model)
        assert all(0.0 <= c.threshold <= 1.0 for c in t.classes)
    for c in report.curves:
        assert len(c.thresholds) == len(c.precision) == len(c.recall) == len(c.f1) > 0
        assert list(c.thresholds) == sorted(c.thresholds)
    sz = report.split_images
    assert [sz[k] for k in ("train", "val", "test")] == \
        [len(report.train.images), len(report.val.images), len(report.test.images)]
    assert sum(sz.values()) == report.prepass_images
    assert not set(report.test.images) & (set(report.train.images) | set(report.val.images))
    assert len(report.feature_schema_hash) == 64 and report.feature_width > 0
    assert report.create_time.seconds > 0 and report.duration.ToNanoseconds() > 0
    assert len(report.artifacts) >= 3 and any(a.endswith(".png") for a in report.artifacts)


def _pick_dataset(datasets: Sequence[Any]) -> Any:
    usable = [d for d in datasets if d.has_ground_truth and d.image_count >= MIN_IMAGES]
    chosen = next((d for d in usable if d.id == DEFAULT_DATASET), usable[0] if usable else None)
    if chosen is None:
        raise AssertionError(f"no dataset with ground truth and >= {MIN_IMAGES} images under the data root")
    return chosen


@step("calibration.mlp_xgb_same_cache", tier=1, service="orchestrator", deadline_s=600)
async def mlp_xgb_same_cache(ctx: StepContext) -> dict:
    from tator_core.client import ServiceClient
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc

    client = ServiceClient(ctx.addresses["orchestrator"], pb_grpc.OrchestratorServiceStub, timeout_s=ctx.deadline_s)
    try:
        ds = _pick_dataset((await client.call("ListDatasets", pb.ListDatasetsRequest(page_size=1000))).datasets)
        images = min(ds.image_count, ctx.rng.choice([20, 24, 28]))
        common = dict(max_images=images, seed=ctx.rng.randrange(1000), eval_ious=[0.5, 0.75],
                      prepass=light_prepass(pb))
        reports = {}
        for kind, enum in (("mlp", pb.CALIBRATION_MODEL_MLP), ("xgb", pb.CALIBRATION_MODEL_XGB)):
            job, report, _ = await run_calibration_job(client, ds.id, pb.CalibrationConfig(model=enum, **common),
                                                       timeout_s=ctx.deadline_s)
            if report is None:
                raise AssertionError(f"{kind} calibration {job.id} ended {pb.JobState.Name(job.state)}: {job.error}")
            check_report(report, list(ds.labelmap), [kind])
            reports[kind] = report
    finally:
        await client.close()
    rm, rx = reports["mlp"], reports["xgb"]
    assert rx.prepass_cache_hits == rx.prepass_images, \
        f"second job missed the cache: {rx.prepass_cache_hits} of {rx.prepass_images}"
    assert rm.feature_schema_hash == rx.feature_schema_hash, "same cache, different feature schema"
    assert [list(s.images) for s in (rm.train, rm.val, rm.test)] == \
        [list(s.images) for s in (rx.train, rx.val, rx.test)], "same seed, other split"
    baselines = {(method_name(r), round(r.eval_iou, 4)): r.overall for r in rm.results
                 if r.method != pb.ACCEPT_METHOD_MLP}
    for r in rx.results:
        if r.method != pb.ACCEPT_METHOD_XGB:
            assert baselines.get((method_name(r), round(r.eval_iou, 4))) == r.overall, \
                f"baseline {method_name(r)}@{r.eval_iou} differs between the two jobs"
    at = {method_name(r): r.overall.f1 for rep in (rm, rx) for r in rep.results if r.eval_iou == 0.5}
    best = next(m for m in at if m.startswith("best_single_source:"))
    return {
        "detections": rx.test.candidates,
        "cache": {"second_job_hits": rx.prepass_cache_hits},
        "metrics": {"mlp_f1": at["mlp"], "xgb_f1": at["xgb"], "accept_all_f1": at["accept_all"],
                    "best_single_source_f1": at[best]},
        "hashes": {"feature_schema": rx.feature_schema_hash},
        "extra": {"dataset": ds.id, "images": images, "best_single_source": best.split(":", 1)[1],
                  "split": dict(rx.split_images)},
    }
