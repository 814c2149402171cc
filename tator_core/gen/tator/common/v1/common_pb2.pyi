import datetime

from tator_core.gen.buf.validate import validate_pb2 as _validate_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DetectionSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DETECTION_SOURCE_UNSPECIFIED: _ClassVar[DetectionSource]
    DETECTION_SOURCE_YOLO: _ClassVar[DetectionSource]
    DETECTION_SOURCE_RFDETR: _ClassVar[DetectionSource]
    DETECTION_SOURCE_SAM3_TEXT: _ClassVar[DetectionSource]
    DETECTION_SOURCE_SAM3_SIMILARITY: _ClassVar[DetectionSource]

class ModelState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_STATE_UNSPECIFIED: _ClassVar[ModelState]
    MODEL_STATE_MISSING: _ClassVar[ModelState]
    MODEL_STATE_AVAILABLE: _ClassVar[ModelState]
    MODEL_STATE_LOADING: _ClassVar[ModelState]
    MODEL_STATE_READY: _ClassVar[ModelState]
    MODEL_STATE_FAILED: _ClassVar[ModelState]

class ErrorReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_REASON_UNSPECIFIED: _ClassVar[ErrorReason]
    ERROR_REASON_IMAGE_NOT_CACHED: _ClassVar[ErrorReason]
    ERROR_REASON_IMAGE_INVALID: _ClassVar[ErrorReason]
    ERROR_REASON_IMAGE_TOO_LARGE: _ClassVar[ErrorReason]
    ERROR_REASON_IMAGE_SHA_MISMATCH: _ClassVar[ErrorReason]
    ERROR_REASON_LABELMAP_MISMATCH: _ClassVar[ErrorReason]
    ERROR_REASON_MODEL_MISSING: _ClassVar[ErrorReason]
    ERROR_REASON_MODEL_NOT_FOUND: _ClassVar[ErrorReason]
    ERROR_REASON_MODEL_LOAD_FAILED: _ClassVar[ErrorReason]
    ERROR_REASON_HEAD_BACKBONE_MISMATCH: _ClassVar[ErrorReason]
    ERROR_REASON_CALIBRATION_VERSION_MISMATCH: _ClassVar[ErrorReason]
    ERROR_REASON_OVERLOADED: _ClassVar[ErrorReason]
    ERROR_REASON_FANOUT_CAP_EXCEEDED: _ClassVar[ErrorReason]
    ERROR_REASON_INVALID_FIELD: _ClassVar[ErrorReason]
    ERROR_REASON_STAGE_FAILED: _ClassVar[ErrorReason]
    ERROR_REASON_DATASET_NOT_FOUND: _ClassVar[ErrorReason]
    ERROR_REASON_NO_GROUND_TRUTH: _ClassVar[ErrorReason]
    ERROR_REASON_SERVICE_UNAVAILABLE: _ClassVar[ErrorReason]
    ERROR_REASON_JOB_NOT_FOUND: _ClassVar[ErrorReason]
    ERROR_REASON_NOT_FOUND: _ClassVar[ErrorReason]
    ERROR_REASON_INTERNAL: _ClassVar[ErrorReason]
    ERROR_REASON_JOB_NOT_DONE: _ClassVar[ErrorReason]
    ERROR_REASON_ARCHIVE_INVALID: _ClassVar[ErrorReason]
    ERROR_REASON_MODEL_REQUIRED: _ClassVar[ErrorReason]
    ERROR_REASON_UNAUTHENTICATED: _ClassVar[ErrorReason]
    ERROR_REASON_PERMISSION_DENIED: _ClassVar[ErrorReason]
    ERROR_REASON_TRAINING_DATA_OVERLAP: _ClassVar[ErrorReason]
    ERROR_REASON_STORE_FULL: _ClassVar[ErrorReason]
    ERROR_REASON_MODEL_UNLOADED: _ClassVar[ErrorReason]
    ERROR_REASON_REPLAY_INPUT_CHANGED: _ClassVar[ErrorReason]
DETECTION_SOURCE_UNSPECIFIED: DetectionSource
DETECTION_SOURCE_YOLO: DetectionSource
DETECTION_SOURCE_RFDETR: DetectionSource
DETECTION_SOURCE_SAM3_TEXT: DetectionSource
DETECTION_SOURCE_SAM3_SIMILARITY: DetectionSource
MODEL_STATE_UNSPECIFIED: ModelState
MODEL_STATE_MISSING: ModelState
MODEL_STATE_AVAILABLE: ModelState
MODEL_STATE_LOADING: ModelState
MODEL_STATE_READY: ModelState
MODEL_STATE_FAILED: ModelState
ERROR_REASON_UNSPECIFIED: ErrorReason
ERROR_REASON_IMAGE_NOT_CACHED: ErrorReason
ERROR_REASON_IMAGE_INVALID: ErrorReason
ERROR_REASON_IMAGE_TOO_LARGE: ErrorReason
ERROR_REASON_IMAGE_SHA_MISMATCH: ErrorReason
ERROR_REASON_LABELMAP_MISMATCH: ErrorReason
ERROR_REASON_MODEL_MISSING: ErrorReason
ERROR_REASON_MODEL_NOT_FOUND: ErrorReason
ERROR_REASON_MODEL_LOAD_FAILED: ErrorReason
ERROR_REASON_HEAD_BACKBONE_MISMATCH: ErrorReason
ERROR_REASON_CALIBRATION_VERSION_MISMATCH: ErrorReason
ERROR_REASON_OVERLOADED: ErrorReason
ERROR_REASON_FANOUT_CAP_EXCEEDED: ErrorReason
ERROR_REASON_INVALID_FIELD: ErrorReason
ERROR_REASON_STAGE_FAILED: ErrorReason
ERROR_REASON_DATASET_NOT_FOUND: ErrorReason
ERROR_REASON_NO_GROUND_TRUTH: ErrorReason
ERROR_REASON_SERVICE_UNAVAILABLE: ErrorReason
ERROR_REASON_JOB_NOT_FOUND: ErrorReason
ERROR_REASON_NOT_FOUND: ErrorReason
ERROR_REASON_INTERNAL: ErrorReason
ERROR_REASON_JOB_NOT_DONE: ErrorReason
ERROR_REASON_ARCHIVE_INVALID: ErrorReason
ERROR_REASON_MODEL_REQUIRED: ErrorReason
ERROR_REASON_UNAUTHENTICATED: ErrorReason
ERROR_REASON_PERMISSION_DENIED: ErrorReason
ERROR_REASON_TRAINING_DATA_OVERLAP: ErrorReason
ERROR_REASON_STORE_FULL: ErrorReason
ERROR_REASON_MODEL_UNLOADED: ErrorReason
ERROR_REASON_REPLAY_INPUT_CHANGED: ErrorReason

class ImageRef(_message.Message):
    __slots__ = ("sha256", "data")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    data: bytes
    def __init__(self, sha256: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class Box(_message.Message):
    __slots__ = ("x1", "y1", "x2", "y2")
    X1_FIELD_NUMBER: _ClassVar[int]
    Y1_FIELD_NUMBER: _ClassVar[int]
    X2_FIELD_NUMBER: _ClassVar[int]
    Y2_FIELD_NUMBER: _ClassVar[int]
    x1: float
    y1: float
    x2: float
    y2: float
    def __init__(self, x1: _Optional[float] = ..., y1: _Optional[float] = ..., x2: _Optional[float] = ..., y2: _Optional[float] = ...) -> None: ...

class Window(_message.Message):
    __slots__ = ("name", "box")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    name: str
    box: Box
    def __init__(self, name: _Optional[str] = ..., box: _Optional[_Union[Box, _Mapping]] = ...) -> None: ...

class TilePlan(_message.Message):
    __slots__ = ("size", "overlap", "include_full")
    SIZE_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_FULL_FIELD_NUMBER: _ClassVar[int]
    size: int
    overlap: float
    include_full: bool
    def __init__(self, size: _Optional[int] = ..., overlap: _Optional[float] = ..., include_full: _Optional[bool] = ...) -> None: ...

class GridSpec(_message.Message):
    __slots__ = ("cols", "rows", "overlap")
    COLS_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_FIELD_NUMBER: _ClassVar[int]
    cols: int
    rows: int
    overlap: float
    def __init__(self, cols: _Optional[int] = ..., rows: _Optional[int] = ..., overlap: _Optional[float] = ...) -> None: ...

class WindowSpec(_message.Message):
    __slots__ = ("windows", "grid", "include_full", "tiles")
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    GRID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_FULL_FIELD_NUMBER: _ClassVar[int]
    TILES_FIELD_NUMBER: _ClassVar[int]
    windows: _containers.RepeatedCompositeFieldContainer[Window]
    grid: GridSpec
    include_full: bool
    tiles: TilePlan
    def __init__(self, windows: _Optional[_Iterable[_Union[Window, _Mapping]]] = ..., grid: _Optional[_Union[GridSpec, _Mapping]] = ..., include_full: _Optional[bool] = ..., tiles: _Optional[_Union[TilePlan, _Mapping]] = ...) -> None: ...

class Mask(_message.Message):
    __slots__ = ("height", "width", "counts", "x0", "y0")
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    X0_FIELD_NUMBER: _ClassVar[int]
    Y0_FIELD_NUMBER: _ClassVar[int]
    height: int
    width: int
    counts: _containers.RepeatedScalarFieldContainer[int]
    x0: int
    y0: int
    def __init__(self, height: _Optional[int] = ..., width: _Optional[int] = ..., counts: _Optional[_Iterable[int]] = ..., x0: _Optional[int] = ..., y0: _Optional[int] = ...) -> None: ...

class Detection(_message.Message):
    __slots__ = ("box", "label", "class_id", "score", "source", "model_id", "window", "mask", "prompts")
    BOX_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CLASS_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    box: Box
    label: str
    class_id: int
    score: float
    source: DetectionSource
    model_id: str
    window: Window
    mask: Mask
    prompts: _containers.RepeatedCompositeFieldContainer[Prompt]
    def __init__(self, box: _Optional[_Union[Box, _Mapping]] = ..., label: _Optional[str] = ..., class_id: _Optional[int] = ..., score: _Optional[float] = ..., source: _Optional[_Union[DetectionSource, str]] = ..., model_id: _Optional[str] = ..., window: _Optional[_Union[Window, _Mapping]] = ..., mask: _Optional[_Union[Mask, _Mapping]] = ..., prompts: _Optional[_Iterable[_Union[Prompt, _Mapping]]] = ...) -> None: ...

class Prompt(_message.Message):
    __slots__ = ("text", "exemplar")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    EXEMPLAR_FIELD_NUMBER: _ClassVar[int]
    text: str
    exemplar: ExemplarPrompt
    def __init__(self, text: _Optional[str] = ..., exemplar: _Optional[_Union[ExemplarPrompt, _Mapping]] = ...) -> None: ...

class ExemplarPrompt(_message.Message):
    __slots__ = ("label", "positive_indexes", "positives", "text")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    POSITIVE_INDEXES_FIELD_NUMBER: _ClassVar[int]
    POSITIVES_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    label: str
    positive_indexes: _containers.RepeatedScalarFieldContainer[int]
    positives: _containers.RepeatedCompositeFieldContainer[Box]
    text: str
    def __init__(self, label: _Optional[str] = ..., positive_indexes: _Optional[_Iterable[int]] = ..., positives: _Optional[_Iterable[_Union[Box, _Mapping]]] = ..., text: _Optional[str] = ...) -> None: ...

class Warning(_message.Message):
    __slots__ = ("code", "subject", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    subject: str
    message: str
    def __init__(self, code: _Optional[str] = ..., subject: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("id", "family", "version", "labelmap", "device", "state", "reason", "is_default", "loaded", "extra", "trained_on")
    class ExtraEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LABELMAP_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    LOADED_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELD_NUMBER: _ClassVar[int]
    TRAINED_ON_FIELD_NUMBER: _ClassVar[int]
    id: str
    family: str
    version: str
    labelmap: _containers.RepeatedScalarFieldContainer[str]
    device: str
    state: ModelState
    reason: str
    is_default: bool
    loaded: bool
    extra: _containers.ScalarMap[str, str]
    trained_on: TrainingData
    def __init__(self, id: _Optional[str] = ..., family: _Optional[str] = ..., version: _Optional[str] = ..., labelmap: _Optional[_Iterable[str]] = ..., device: _Optional[str] = ..., state: _Optional[_Union[ModelState, str]] = ..., reason: _Optional[str] = ..., is_default: _Optional[bool] = ..., loaded: _Optional[bool] = ..., extra: _Optional[_Mapping[str, str]] = ..., trained_on: _Optional[_Union[TrainingData, _Mapping]] = ...) -> None: ...

class TrainingData(_message.Message):
    __slots__ = ("description", "images", "list_sha256", "image_sha256")
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    LIST_SHA256_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SHA256_FIELD_NUMBER: _ClassVar[int]
    description: str
    images: int
    list_sha256: str
    image_sha256: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, description: _Optional[str] = ..., images: _Optional[int] = ..., list_sha256: _Optional[str] = ..., image_sha256: _Optional[_Iterable[str]] = ...) -> None: ...

class StageTiming(_message.Message):
    __slots__ = ("stage", "queue", "compute", "batch_size")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    stage: str
    queue: _duration_pb2.Duration
    compute: _duration_pb2.Duration
    batch_size: int
    def __init__(self, stage: _Optional[str] = ..., queue: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., compute: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., batch_size: _Optional[int] = ...) -> None: ...

class Timing(_message.Message):
    __slots__ = ("stages", "total")
    STAGES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    stages: _containers.RepeatedCompositeFieldContainer[StageTiming]
    total: _duration_pb2.Duration
    def __init__(self, stages: _Optional[_Iterable[_Union[StageTiming, _Mapping]]] = ..., total: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class GenerationSettings(_message.Message):
    __slots__ = ("max_new_tokens", "do_sample", "temperature", "top_p", "seed")
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    DO_SAMPLE_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    max_new_tokens: int
    do_sample: bool
    temperature: float
    top_p: float
    seed: int
    def __init__(self, max_new_tokens: _Optional[int] = ..., do_sample: _Optional[bool] = ..., temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., seed: _Optional[int] = ...) -> None: ...
