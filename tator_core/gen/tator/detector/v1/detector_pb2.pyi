import datetime

from tator_core.gen.buf.validate import validate_pb2 as _validate_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from tator_core.gen.tator.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DetectMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DETECT_MODE_UNSPECIFIED: _ClassVar[DetectMode]
    DETECT_MODE_FULL: _ClassVar[DetectMode]
    DETECT_MODE_TILED: _ClassVar[DetectMode]
    DETECT_MODE_BOTH: _ClassVar[DetectMode]

class MergeMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MERGE_METHOD_UNSPECIFIED: _ClassVar[MergeMethod]
    MERGE_METHOD_NMS: _ClassVar[MergeMethod]
    MERGE_METHOD_WBF: _ClassVar[MergeMethod]

class PassKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PASS_KIND_UNSPECIFIED: _ClassVar[PassKind]
    PASS_KIND_FULL: _ClassVar[PassKind]
    PASS_KIND_TILED: _ClassVar[PassKind]
DETECT_MODE_UNSPECIFIED: DetectMode
DETECT_MODE_FULL: DetectMode
DETECT_MODE_TILED: DetectMode
DETECT_MODE_BOTH: DetectMode
MERGE_METHOD_UNSPECIFIED: MergeMethod
MERGE_METHOD_NMS: MergeMethod
MERGE_METHOD_WBF: MergeMethod
PASS_KIND_UNSPECIFIED: PassKind
PASS_KIND_FULL: PassKind
PASS_KIND_TILED: PassKind

class MergeSettings(_message.Message):
    __slots__ = ("method", "iou")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    IOU_FIELD_NUMBER: _ClassVar[int]
    method: MergeMethod
    iou: float
    def __init__(self, method: _Optional[_Union[MergeMethod, str]] = ..., iou: _Optional[float] = ...) -> None: ...

class DetectRequest(_message.Message):
    __slots__ = ("image", "model_ids", "mode", "tile_plan", "conf", "iou", "max_det", "expected_labelmap", "merge")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    MODEL_IDS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    TILE_PLAN_FIELD_NUMBER: _ClassVar[int]
    CONF_FIELD_NUMBER: _ClassVar[int]
    IOU_FIELD_NUMBER: _ClassVar[int]
    MAX_DET_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_LABELMAP_FIELD_NUMBER: _ClassVar[int]
    MERGE_FIELD_NUMBER: _ClassVar[int]
    image: _common_pb2.ImageRef
    model_ids: _containers.RepeatedScalarFieldContainer[str]
    mode: DetectMode
    tile_plan: _common_pb2.TilePlan
    conf: float
    iou: float
    max_det: int
    expected_labelmap: _containers.RepeatedScalarFieldContainer[str]
    merge: MergeSettings
    def __init__(self, image: _Optional[_Union[_common_pb2.ImageRef, _Mapping]] = ..., model_ids: _Optional[_Iterable[str]] = ..., mode: _Optional[_Union[DetectMode, str]] = ..., tile_plan: _Optional[_Union[_common_pb2.TilePlan, _Mapping]] = ..., conf: _Optional[float] = ..., iou: _Optional[float] = ..., max_det: _Optional[int] = ..., expected_labelmap: _Optional[_Iterable[str]] = ..., merge: _Optional[_Union[MergeSettings, _Mapping]] = ...) -> None: ...

class ModelRun(_message.Message):
    __slots__ = ("model_id", "source", "kind", "tiles", "raw_detections", "kept_detections", "compute", "batch_size", "tile_size")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TILES_FIELD_NUMBER: _ClassVar[int]
    RAW_DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    KEPT_DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    TILE_SIZE_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    source: _common_pb2.DetectionSource
    kind: PassKind
    tiles: int
    raw_detections: int
    kept_detections: int
    compute: _duration_pb2.Duration
    batch_size: int
    tile_size: int
    def __init__(self, model_id: _Optional[str] = ..., source: _Optional[_Union[_common_pb2.DetectionSource, str]] = ..., kind: _Optional[_Union[PassKind, str]] = ..., tiles: _Optional[int] = ..., raw_detections: _Optional[int] = ..., kept_detections: _Optional[int] = ..., compute: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., batch_size: _Optional[int] = ..., tile_size: _Optional[int] = ...) -> None: ...

class DetectResponse(_message.Message):
    __slots__ = ("detections", "runs", "merge", "conf", "iou", "max_det", "tile_plan", "mode", "timing", "warnings")
    DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    MERGE_FIELD_NUMBER: _ClassVar[int]
    CONF_FIELD_NUMBER: _ClassVar[int]
    IOU_FIELD_NUMBER: _ClassVar[int]
    MAX_DET_FIELD_NUMBER: _ClassVar[int]
    TILE_PLAN_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    detections: _containers.RepeatedCompositeFieldContainer[_common_pb2.Detection]
    runs: _containers.RepeatedCompositeFieldContainer[ModelRun]
    merge: MergeSettings
    conf: float
    iou: float
    max_det: int
    tile_plan: _common_pb2.TilePlan
    mode: DetectMode
    timing: _common_pb2.Timing
    warnings: _containers.RepeatedCompositeFieldContainer[_common_pb2.Warning]
    def __init__(self, detections: _Optional[_Iterable[_Union[_common_pb2.Detection, _Mapping]]] = ..., runs: _Optional[_Iterable[_Union[ModelRun, _Mapping]]] = ..., merge: _Optional[_Union[MergeSettings, _Mapping]] = ..., conf: _Optional[float] = ..., iou: _Optional[float] = ..., max_det: _Optional[int] = ..., tile_plan: _Optional[_Union[_common_pb2.TilePlan, _Mapping]] = ..., mode: _Optional[_Union[DetectMode, str]] = ..., timing: _Optional[_Union[_common_pb2.Timing, _Mapping]] = ..., warnings: _Optional[_Iterable[_Union[_common_pb2.Warning, _Mapping]]] = ...) -> None: ...
