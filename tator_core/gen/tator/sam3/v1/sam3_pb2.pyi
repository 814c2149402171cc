from tator_core.gen.buf.validate import validate_pb2 as _validate_pb2
from tator_core.gen.tator.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LabelPrompts(_message.Message):
    __slots__ = ("label", "prompts")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    label: str
    prompts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, label: _Optional[str] = ..., prompts: _Optional[_Iterable[str]] = ...) -> None: ...

class SegmentStats(_message.Message):
    __slots__ = ("vision_embeddings_computed", "vision_embeddings_cached", "text_embeddings_computed", "text_embeddings_cached", "contexts", "prompt_runs", "raw_detections")
    VISION_EMBEDDINGS_COMPUTED_FIELD_NUMBER: _ClassVar[int]
    VISION_EMBEDDINGS_CACHED_FIELD_NUMBER: _ClassVar[int]
    TEXT_EMBEDDINGS_COMPUTED_FIELD_NUMBER: _ClassVar[int]
    TEXT_EMBEDDINGS_CACHED_FIELD_NUMBER: _ClassVar[int]
    CONTEXTS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_RUNS_FIELD_NUMBER: _ClassVar[int]
    RAW_DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    vision_embeddings_computed: int
    vision_embeddings_cached: int
    text_embeddings_computed: int
    text_embeddings_cached: int
    contexts: int
    prompt_runs: int
    raw_detections: int
    def __init__(self, vision_embeddings_computed: _Optional[int] = ..., vision_embeddings_cached: _Optional[int] = ..., text_embeddings_computed: _Optional[int] = ..., text_embeddings_cached: _Optional[int] = ..., contexts: _Optional[int] = ..., prompt_runs: _Optional[int] = ..., raw_detections: _Optional[int] = ...) -> None: ...

class SegmentTextRequest(_message.Message):
    __slots__ = ("image", "labels", "windows", "score_threshold", "mask_threshold", "return_masks", "model_id", "merge_iou", "max_results_per_prompt")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    SCORE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MASK_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    RETURN_MASKS_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    MERGE_IOU_FIELD_NUMBER: _ClassVar[int]
    MAX_RESULTS_PER_PROMPT_FIELD_NUMBER: _ClassVar[int]
    image: _common_pb2.ImageRef
    labels: _containers.RepeatedCompositeFieldContainer[LabelPrompts]
    windows: _common_pb2.WindowSpec
    score_threshold: float
    mask_threshold: float
    return_masks: bool
    model_id: str
    merge_iou: float
    max_results_per_prompt: int
    def __init__(self, image: _Optional[_Union[_common_pb2.ImageRef, _Mapping]] = ..., labels: _Optional[_Iterable[_Union[LabelPrompts, _Mapping]]] = ..., windows: _Optional[_Union[_common_pb2.WindowSpec, _Mapping]] = ..., score_threshold: _Optional[float] = ..., mask_threshold: _Optional[float] = ..., return_masks: _Optional[bool] = ..., model_id: _Optional[str] = ..., merge_iou: _Optional[float] = ..., max_results_per_prompt: _Optional[int] = ...) -> None: ...

class SegmentTextResponse(_message.Message):
    __slots__ = ("detections", "stats", "timing", "warnings")
    DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    detections: _containers.RepeatedCompositeFieldContainer[_common_pb2.Detection]
    stats: SegmentStats
    timing: _common_pb2.Timing
    warnings: _containers.RepeatedCompositeFieldContainer[_common_pb2.Warning]
    def __init__(self, detections: _Optional[_Iterable[_Union[_common_pb2.Detection, _Mapping]]] = ..., stats: _Optional[_Union[SegmentStats, _Mapping]] = ..., timing: _Optional[_Union[_common_pb2.Timing, _Mapping]] = ..., warnings: _Optional[_Iterable[_Union[_common_pb2.Warning, _Mapping]]] = ...) -> None: ...

class ExemplarSet(_message.Message):
    __slots__ = ("label", "positives", "negatives", "text")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    POSITIVES_FIELD_NUMBER: _ClassVar[int]
    NEGATIVES_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    label: str
    positives: _containers.RepeatedCompositeFieldContainer[_common_pb2.Box]
    negatives: _containers.RepeatedCompositeFieldContainer[_common_pb2.Box]
    text: str
    def __init__(self, label: _Optional[str] = ..., positives: _Optional[_Iterable[_Union[_common_pb2.Box, _Mapping]]] = ..., negatives: _Optional[_Iterable[_Union[_common_pb2.Box, _Mapping]]] = ..., text: _Optional[str] = ...) -> None: ...

class SegmentExemplarsRequest(_message.Message):
    __slots__ = ("image", "exemplars", "windows", "score_threshold", "mask_threshold", "return_masks", "model_id", "merge_iou")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    EXEMPLARS_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    SCORE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MASK_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    RETURN_MASKS_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    MERGE_IOU_FIELD_NUMBER: _ClassVar[int]
    image: _common_pb2.ImageRef
    exemplars: _containers.RepeatedCompositeFieldContainer[ExemplarSet]
    windows: _common_pb2.WindowSpec
    score_threshold: float
    mask_threshold: float
    return_masks: bool
    model_id: str
    merge_iou: float
    def __init__(self, image: _Optional[_Union[_common_pb2.ImageRef, _Mapping]] = ..., exemplars: _Optional[_Iterable[_Union[ExemplarSet, _Mapping]]] = ..., windows: _Optional[_Union[_common_pb2.WindowSpec, _Mapping]] = ..., score_threshold: _Optional[float] = ..., mask_threshold: _Optional[float] = ..., return_masks: _Optional[bool] = ..., model_id: _Optional[str] = ..., merge_iou: _Optional[float] = ...) -> None: ...

class SegmentExemplarsResponse(_message.Message):
    __slots__ = ("detections", "stats", "timing", "warnings")
    DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    detections: _containers.RepeatedCompositeFieldContainer[_common_pb2.Detection]
    stats: SegmentStats
    timing: _common_pb2.Timing
    warnings: _containers.RepeatedCompositeFieldContainer[_common_pb2.Warning]
    def __init__(self, detections: _Optional[_Iterable[_Union[_common_pb2.Detection, _Mapping]]] = ..., stats: _Optional[_Union[SegmentStats, _Mapping]] = ..., timing: _Optional[_Union[_common_pb2.Timing, _Mapping]] = ..., warnings: _Optional[_Iterable[_Union[_common_pb2.Warning, _Mapping]]] = ...) -> None: ...
