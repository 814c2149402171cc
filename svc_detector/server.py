"""gRPC transport of the detector: proto in, plain functions, proto out."""

from __future__ import annotations

import logging
import time

import grpc

from svc_detector.detect import Det, DetectResult, detect
from svc_detector.models import DetectorModels
from svc_detector.params import resolve_params
from svc_detector.settings import DetectorSettings
from tator_core.convert import StageTime, box_pb, timing_pb, warnings_pb, window_pb
from tator_core.enums import source_value
from tator_core.gen.tator.common.v1 import common_pb2
from tator_core.gen.tator.detector.v1 import detector_pb2, detector_pb2_grpc
from tator_core.images import ImageStore
from tator_core.registry import Registry
from tator_core.server import ServiceSpec
from tator_core.settings import resolve_device
from tator_core.timestamps import duration_ms

log = logging.getLogger("tator.detector")
FULL_NAME = "tator.detector.v1.DetectorService"
_MODE_NAMES = {detector_pb2.DETECT_MODE_UNSPECIFIED: "full", detector_pb2.DETECT_MODE_FULL: "full",
               detector_pb2.DETECT_MODE_TILED: "tiled", detector_pb2.DETECT_MODE_BOTH: "both"}
_MODE_ENUMS = {"full": detector_pb2.DETECT_MODE_FULL, "tiled": detector_pb2.DETECT_MODE_TILED,
               "both": detector_pb2.DETECT_MODE_BOTH}
_MERGE_NAMES = {detector_pb2.MERGE_METHOD_UNSPECIFIED: "nms", detector_pb2.MERGE_METHOD_NMS: "nms",
                detector_pb2.MERGE_METHOD_WBF: "wbf"}
_MERGE_ENUMS = {"nms": detector_pb2.MERGE_METHOD_NMS, "wbf": detector_pb2.MERGE_METHOD_WBF}


def detection_pb(d: Det) -> common_pb2.Detection:
    return common_pb2.Detection(
        box=box_pb(d.box), label=d.label, class_id=d.class_id, score=d.score, source=source_value(d.source), model_id=d.model_id,
        window=window_pb(d.window.name, d.window.box))


_PASS_ENUMS = {"full": detector_pb2.PASS_KIND_FULL, "tiled": detector_pb2.PASS_KIND_TILED}


def params_from_request(request: detector_pb2.DetectRequest):
    """Proto -> resolve_params keywords; unset optionals stay None so defaults apply."""
    opt = request.HasField
    plan = request.tile_plan
    merge = request.merge
    return resolve_params(
        mode=_MODE_NAMES.get(request.mode, str(request.mode)),
        conf=request.conf if opt("conf") else None, iou=request.iou if opt("iou") else None,
        max_det=request.max_det if opt("max_det") else None, tile_size=plan.size,
        overlap=plan.overlap if plan.HasField("overlap") else None, include_full=plan.include_full,
        merge_method=_MERGE_NAMES.get(merge.method, str(merge.method)),
        merge_iou=merge.iou if merge.HasField("iou") else None, expected_labelmap=list(request.expected_labelmap))


def response_pb(result: DetectResult, decode_ms: float, total_ms: float) -> detector_pb2.DetectResponse:
    p = result.params
    return detector_pb2.DetectResponse(
        detections=[detection_pb(d) for d in result.detections],
        runs=[detector_pb2.ModelRun(model_id=r.model_id, source=source_value(r.source), kind=_PASS_ENUMS[r.pass_], tiles=r.tiles,
                                    raw_detections=r.raw_detections, kept_detections=r.kept_detections,
                                    compute=duration_ms(r.compute_ms), batch_size=r.batch_size, tile_size=r.tile_size)
              for r in result.runs],
        merge=detector_pb2.MergeSettings(method=_MERGE_ENUMS[p.merge_method], iou=p.merge_iou),
        conf=p.conf, iou=p.iou, max_det=p.max_det,
        tile_plan=common_pb2.TilePlan(size=p.tile_size, overlap=p.overlap, include_full=p.mode == "both"),
        mode=_MODE_ENUMS[p.mode], timing=timing_pb([StageTime("decode", decode_ms), *result.stages], total_ms),
        warnings=warnings_pb(result.warnings))


class DetectorServicer(detector_pb2_grpc.DetectorServiceServicer):
    def __init__(self, settings: DetectorSettings, manager: DetectorModels) -> None:
        self.settings = settings
        self.manager = manager
        self.images = ImageStore.from_settings("detector", settings)

    async def Detect(self, request, context):
        start = time.perf_counter()
        params, warnings = params_from_request(request)
        image = await self.images.aresolve(request.image)
        decode_ms = (time.perf_counter() - start) * 1000
        result = await detect(image, list(request.model_ids), params, self.manager,
                              max_tiles=self.settings.max_tiles)
        result.warnings[:0] = warnings
        return response_pb(result, decode_ms, (time.perf_counter() - start) * 1000)


def build_spec(settings: DetectorSettings) -> ServiceSpec:
    device = resolve_device(settings.device)
    registry = Registry.load(settings.registry, families={"yolo", "rfdetr"})
    manager = DetectorModels(registry, device, settings)
    servicer = DetectorServicer(settings, manager)

    def add(server: grpc.aio.Server) -> None:
        detector_pb2_grpc.add_DetectorServiceServicer_to_server(servicer, server)

    return ServiceSpec(name="detector", full_name=FULL_NAME, add_to_server=add, warmup=manager.warm_defaults,
                       shutdown=manager.close, models=manager)
