"""gRPC transport of the SAM3 service: proto in, plain functions, proto out."""

from __future__ import annotations

import asyncio
import logging
import time

from svc_sam3 import segment
from svc_sam3.backends.sam3 import Sam3Backend
from svc_sam3.merge import Prompt
from svc_sam3.models import FAMILY, make_repository
from svc_sam3.settings import Sam3Settings
from svc_sam3.windows import window_proto
from tator_core.convert import box_pb, box_xyxy, timing_pb
from tator_core.enums import source_value
from tator_core.gen.tator.common.v1 import common_pb2
from tator_core.gen.tator.sam3.v1 import sam3_pb2, sam3_pb2_grpc
from tator_core.images import ImageStore
from tator_core.lifecycle import ModelRepository
from tator_core.registry import Registry
from tator_core.server import ServiceSpec
from tator_core.settings import resolve_device

log = logging.getLogger("tator.sam3")
FULL_NAME = "tator.sam3.v1.Sam3Service"


def _options(request, default_score: float) -> segment.Options:  # either request type
    def opt(name: str, default: float) -> float:
        return getattr(request, name) if request.HasField(name) else default

    return segment.Options(
        score_threshold=opt("score_threshold", default_score),
        mask_threshold=opt("mask_threshold", segment.MASK_THRESHOLD),
        merge_iou=opt("merge_iou", segment.MERGE_IOU),
        return_masks=request.return_masks,
        max_results=getattr(request, "max_results_per_prompt", 0))


def _prompt(p: Prompt) -> common_pb2.Prompt:
    if isinstance(p, str):
        return common_pb2.Prompt(text=p)
    return common_pb2.Prompt(exemplar=common_pb2.ExemplarPrompt(
        label=p.label, positive_indexes=p.indexes, positives=[box_pb(b) for b in p.positives], text=p.text))


def _detection(d: segment.Detection) -> common_pb2.Detection:
    out = common_pb2.Detection(
        box=box_pb(d.box), label=d.label, class_id=-1, score=d.score, source=source_value(d.source),
        model_id=d.model_id, window=window_proto(d.window), prompts=[_prompt(p) for p in d.prompts])
    if d.mask is not None:
        out.mask.CopyFrom(d.mask)
    return out


def _response(cls, result: segment.Result, started: float):
    timing = timing_pb(result.stages, (time.perf_counter() - started) * 1000)
    return cls(detections=[_detection(d) for d in result.detections],
               stats=sam3_pb2.SegmentStats(**vars(result.stats)), timing=timing, warnings=result.warnings)


class Sam3Servicer(sam3_pb2_grpc.Sam3ServiceServicer):
    def __init__(self, settings: Sam3Settings, models: ModelRepository[Sam3Backend]) -> None:
        self.settings = settings
        self.models = models
        self.images = ImageStore.from_settings("sam3", settings)
        self.engine = segment.Engine(settings, models)

    async def _entry(self, model_id: str):
        """The named model (or the default), loaded: NOT_FOUND, MODEL_MISSING, MODEL_LOAD_FAILED, or
        FAILED_PRECONDITION for a model taken down by UnloadModel."""
        mid = self.models.resolve(model_id, FAMILY)
        await self.models.acquire(mid)
        return self.models.entry(mid)

    async def _on_device(self, fn, plan, model_id: str):
        # Through the repository, so unloading the model fails this call at once while it still waits
        # for the device thread (UNAVAILABLE naming the model) instead of after the work ahead of it.
        try:
            result, _ = await self.models.run(fn, plan, time.perf_counter(), model_id=model_id)
            return result
        except asyncio.CancelledError:
            # The caller went away: the device thread stops before its next window instead of running the
            # rest of the grid for nobody (a call still queued for the device never starts).
            plan.cancelled.set()
            raise

    async def SegmentText(self, request: sam3_pb2.SegmentTextRequest, context) -> sam3_pb2.SegmentTextResponse:
        started = time.perf_counter()
        entry = await self._entry(request.model_id)
        image = await self.images.aresolve(request.image)
        plan = segment.plan_text(entry, image, [(lp.label, list(lp.prompts)) for lp in request.labels],
                                 request.windows if request.HasField("windows") else None,
                                 _options(request, segment.TEXT_SCORE), self.settings.max_prompt_runs)
        result = await self._on_device(self.engine.run_text, plan, entry.id)
        return _response(sam3_pb2.SegmentTextResponse, result, started)

    async def SegmentExemplars(self, request: sam3_pb2.SegmentExemplarsRequest, context) -> sam3_pb2.SegmentExemplarsResponse:
        started = time.perf_counter()
        entry = await self._entry(request.model_id)
        image = await self.images.aresolve(request.image)
        queries = [segment.ExemplarQuery(s.label, [box_xyxy(b) for b in s.positives], [box_xyxy(b) for b in s.negatives],
                                         s.text) for s in request.exemplars]
        plan = segment.plan_exemplars(entry, image, queries, request.windows if request.HasField("windows") else None,
                                      _options(request, segment.SIMILARITY_SCORE), self.settings.max_prompt_runs)
        result = await self._on_device(self.engine.run_exemplars, plan, entry.id)
        return _response(sam3_pb2.SegmentExemplarsResponse, result, started)


def make_servicer(settings: Sam3Settings) -> Sam3Servicer:
    device = resolve_device(settings.device)
    return Sam3Servicer(settings, make_repository(Registry.load(settings.registry, families={FAMILY}), device))


def build_spec(settings: Sam3Settings, servicer: Sam3Servicer | None = None) -> ServiceSpec:
    """The service for `tator_core.server`; pass a servicer to keep a handle on its engine (tests, benchmarks)."""
    servicer = servicer or make_servicer(settings)

    return ServiceSpec(
        name="sam3", full_name=FULL_NAME,
        add_to_server=lambda server: sam3_pb2_grpc.add_Sam3ServiceServicer_to_server(servicer, server),
        warmup=servicer.models.warm_defaults, shutdown=servicer.models.close, models=servicer.models)
