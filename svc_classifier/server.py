"""gRPC transport of the classifier: proto in, plain functions, proto out."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any

import numpy as np

from svc_classifier import classify as plain
from svc_classifier.models import ClassifierModels
from svc_classifier.runtime import ClassifierRuntime
from svc_classifier.settings import ClassifierSettings
from svc_classifier.training import Progress, TrainParams
from tator_core import errors
from tator_core.convert import StageTime, box_xyxy, model_info_pb, timing_pb
from tator_core.gen.tator.classifier.v1 import classifier_pb2 as pb
from tator_core.gen.tator.classifier.v1 import classifier_pb2_grpc as pb_grpc
from tator_core.gen.tator.common.v1 import common_pb2
from tator_core.images import DecodedImage, ImageStore
from tator_core.paths import confine
from tator_core.server import ServiceSpec

log = logging.getLogger("tator.classifier")

HEAD_TYPES = {pb.HEAD_TYPE_UNSPECIFIED: "logreg", pb.HEAD_TYPE_LOGREG: "logreg", pb.HEAD_TYPE_MLP: "mlp"}
def _boxes(request: Any) -> list[tuple[float, float, float, float]]:
    return [box_xyxy(b) for b in request.boxes]


def _timing(stages: list[StageTime], queue_ms: float, started: float) -> common_pb2.Timing:
    return timing_pb(stages, (time.perf_counter() - started) * 1000, queue_ms)


def train_params(request: pb.TrainHeadRequest, settings: ClassifierSettings) -> TrainParams:
    """The dataset dir is confined to the data root (relative paths are resolved under it)."""
    return TrainParams(
        dataset_dir=confine(settings.resolved_data_root(), request.dataset_dir, "dataset_dir"), backbone_id=request.backbone_id, head_type=HEAD_TYPES[request.head_type],
        head_id=request.head_id, background_crops_per_image=request.background_crops_per_image,
        max_crops_per_class=request.max_crops_per_class, normalize=request.normalize_embeddings,
        seed=request.seed,
        context_padding=request.context_padding if request.HasField("context_padding") else settings.context_padding,
        make_default=request.make_default, batch_size=settings.batch_size, max_crops=settings.max_train_crops)


class ClassifierServicer(pb_grpc.ClassifierServiceServicer):
    def __init__(self, settings: ClassifierSettings, runtime: ClassifierRuntime) -> None:
        self.settings = settings
        self.runtime = runtime
        self.images = ImageStore.from_settings("classifier", settings)

    async def _image(self, ref: common_pb2.ImageRef) -> DecodedImage:
        return await self.images.aresolve(ref)

    async def Classify(self, request: pb.ClassifyRequest, context: Any) -> pb.ClassifyResponse:
        started = time.perf_counter()
        image = await self._image(request.image)
        padding = request.context_padding if request.HasField("context_padding") else None
        batch = request.batch_size if request.HasField("batch_size") else self.settings.batch_size

        def run() -> plain.ClassifyResult:
            head, backbone = self.runtime.pair(request.head_id)
            return plain.classify(head, backbone.model, image, _boxes(request), backbone_id=backbone.id,
                                  padding=padding, batch_size=batch, want_embeddings=request.want_embeddings)

        res, queue_ms = await self.runtime.on_device(run, model_ids=self.runtime.call_models(request.head_id))
        return pb.ClassifyResponse(
            classes=res.classes, background=res.background, head_id=res.head_id, backbone_id=res.backbone_id,
            batch_size_used=res.batch_size_used, timing=_timing(res.stages, queue_ms, started),
            results=[pb.BoxResult(index=r.index, ok=r.ok, error=r.error, label=r.label, class_id=r.class_id,
                                  score=r.score, margin=r.margin, probabilities=r.probabilities,
                                  is_background=r.is_background, embedding=r.embedding) for r in res.results])

    async def Embed(self, request: pb.EmbedRequest, context: Any) -> pb.EmbedResponse:
        started = time.perf_counter()
        if not request.boxes and not request.include_full_image:
            raise errors.invalid_argument("boxes", "give boxes, include_full_image, or both")
        image = await self._image(request.image)
        padding = request.context_padding if request.HasField("context_padding") else self.settings.context_padding

        def run() -> tuple[plain.EmbedResult, str, str]:
            backbone = self.runtime.backbone(request.backbone_id)
            res = plain.embed(backbone.model, image, _boxes(request), backbone_id=backbone.id, padding=padding,
                              batch_size=self.settings.batch_size, include_full_image=request.include_full_image,
                              normalize=request.normalize)
            return res, backbone.id, backbone.version

        (res, bb_id, bb_version), queue_ms = await self.runtime.on_device(
            run, model_ids=(request.backbone_id or self.runtime.default_backbone_id,))
        return pb.EmbedResponse(
            embeddings=[pb.Embedding(index=e.index, ok=e.ok, error=e.error, values=e.values) for e in res.items],
            dim=res.dim, backbone_id=bb_id, backbone_version=bb_version,
            timing=_timing(res.stages, queue_ms, started))

    async def TrainHead(self, request: pb.TrainHeadRequest, context: Any):
        params = train_params(request, self.settings)
        async for event in self.runtime.train(params):
            if isinstance(event, Progress):
                yield pb.TrainHeadResponse(progress=pb.TrainHeadProgress(
                    phase=event.phase, done=event.done, total=event.total, message=event.message))
                continue
            head = event.head
            info = await asyncio.to_thread(self.runtime.head_info, head.id)
            yield pb.TrainHeadResponse(done=pb.TrainedHead(
                head_id=head.id, val_accuracy=event.val_accuracy if math.isfinite(event.val_accuracy) else 0.0,
                train_crops=event.train_crops, val_crops=event.val_crops, classes=head.classes,
                model=model_info_pb(info)))


async def warmup(runtime: ClassifierRuntime) -> None:
    """Load the default backbone and head and score one box; missing or mismatched
    models are logged (the service still serves what it has)."""
    def run() -> None:
        image = DecodedImage("warmup", np.full((64, 64, 3), 127, np.uint8), 0)
        try:
            head, backbone = runtime.pair("")
        except errors.TatorError as exc:
            log.warning("warm-up: no usable default head", extra={"fields": {"reason": exc.reason,
                                                                              "detail": exc.message}})
            try:
                runtime.backbone("")
            except errors.TatorError as exc2:
                log.warning("warm-up: no usable default backbone", extra={"fields": {"reason": exc2.reason,
                                                                                      "detail": exc2.message}})
            return
        plain.classify(head, backbone.model, image, [(8.0, 8.0, 56.0, 56.0)], backbone_id=backbone.id)

    await runtime.on_device(run)


def build_spec(settings: ClassifierSettings, *, runtime: ClassifierRuntime | None = None) -> ServiceSpec:
    runtime = runtime or ClassifierRuntime(settings)
    servicer = ClassifierServicer(settings, runtime)
    return ServiceSpec(
        name="classifier", full_name="tator.classifier.v1.ClassifierService",
        add_to_server=lambda server: pb_grpc.add_ClassifierServiceServicer_to_server(servicer, server),
        warmup=lambda: warmup(runtime), shutdown=runtime.close, models=ClassifierModels(runtime))
