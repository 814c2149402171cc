from tator_core.gen.buf.validate import validate_pb2 as _validate_pb2
from tator_core.gen.tator.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HeadType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HEAD_TYPE_UNSPECIFIED: _ClassVar[HeadType]
    HEAD_TYPE_LOGREG: _ClassVar[HeadType]
    HEAD_TYPE_MLP: _ClassVar[HeadType]
HEAD_TYPE_UNSPECIFIED: HeadType
HEAD_TYPE_LOGREG: HeadType
HEAD_TYPE_MLP: HeadType

class ClassifyRequest(_message.Message):
    __slots__ = ("image", "boxes", "want_embeddings", "head_id", "context_padding", "batch_size")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    BOXES_FIELD_NUMBER: _ClassVar[int]
    WANT_EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    HEAD_ID_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_PADDING_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    image: _common_pb2.ImageRef
    boxes: _containers.RepeatedCompositeFieldContainer[_common_pb2.Box]
    want_embeddings: bool
    head_id: str
    context_padding: float
    batch_size: int
    def __init__(self, image: _Optional[_Union[_common_pb2.ImageRef, _Mapping]] = ..., boxes: _Optional[_Iterable[_Union[_common_pb2.Box, _Mapping]]] = ..., want_embeddings: _Optional[bool] = ..., head_id: _Optional[str] = ..., context_padding: _Optional[float] = ..., batch_size: _Optional[int] = ...) -> None: ...

class BoxResult(_message.Message):
    __slots__ = ("index", "ok", "error", "label", "class_id", "score", "margin", "probabilities", "is_background", "embedding")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CLASS_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    MARGIN_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    IS_BACKGROUND_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    index: int
    ok: bool
    error: str
    label: str
    class_id: int
    score: float
    margin: float
    probabilities: _containers.RepeatedScalarFieldContainer[float]
    is_background: bool
    embedding: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, index: _Optional[int] = ..., ok: _Optional[bool] = ..., error: _Optional[str] = ..., label: _Optional[str] = ..., class_id: _Optional[int] = ..., score: _Optional[float] = ..., margin: _Optional[float] = ..., probabilities: _Optional[_Iterable[float]] = ..., is_background: _Optional[bool] = ..., embedding: _Optional[_Iterable[float]] = ...) -> None: ...

class ClassifyResponse(_message.Message):
    __slots__ = ("classes", "background", "results", "head_id", "backbone_id", "batch_size_used", "timing")
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    BACKGROUND_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    HEAD_ID_FIELD_NUMBER: _ClassVar[int]
    BACKBONE_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_USED_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    classes: _containers.RepeatedScalarFieldContainer[str]
    background: _containers.RepeatedScalarFieldContainer[bool]
    results: _containers.RepeatedCompositeFieldContainer[BoxResult]
    head_id: str
    backbone_id: str
    batch_size_used: int
    timing: _common_pb2.Timing
    def __init__(self, classes: _Optional[_Iterable[str]] = ..., background: _Optional[_Iterable[bool]] = ..., results: _Optional[_Iterable[_Union[BoxResult, _Mapping]]] = ..., head_id: _Optional[str] = ..., backbone_id: _Optional[str] = ..., batch_size_used: _Optional[int] = ..., timing: _Optional[_Union[_common_pb2.Timing, _Mapping]] = ...) -> None: ...

class Embedding(_message.Message):
    __slots__ = ("index", "ok", "error", "values")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    index: int
    ok: bool
    error: str
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, index: _Optional[int] = ..., ok: _Optional[bool] = ..., error: _Optional[str] = ..., values: _Optional[_Iterable[float]] = ...) -> None: ...

class EmbedRequest(_message.Message):
    __slots__ = ("image", "boxes", "backbone_id", "context_padding", "include_full_image", "normalize")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    BOXES_FIELD_NUMBER: _ClassVar[int]
    BACKBONE_ID_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_PADDING_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_FULL_IMAGE_FIELD_NUMBER: _ClassVar[int]
    NORMALIZE_FIELD_NUMBER: _ClassVar[int]
    image: _common_pb2.ImageRef
    boxes: _containers.RepeatedCompositeFieldContainer[_common_pb2.Box]
    backbone_id: str
    context_padding: float
    include_full_image: bool
    normalize: bool
    def __init__(self, image: _Optional[_Union[_common_pb2.ImageRef, _Mapping]] = ..., boxes: _Optional[_Iterable[_Union[_common_pb2.Box, _Mapping]]] = ..., backbone_id: _Optional[str] = ..., context_padding: _Optional[float] = ..., include_full_image: _Optional[bool] = ..., normalize: _Optional[bool] = ...) -> None: ...

class EmbedResponse(_message.Message):
    __slots__ = ("embeddings", "dim", "backbone_id", "backbone_version", "timing")
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    BACKBONE_ID_FIELD_NUMBER: _ClassVar[int]
    BACKBONE_VERSION_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    embeddings: _containers.RepeatedCompositeFieldContainer[Embedding]
    dim: int
    backbone_id: str
    backbone_version: str
    timing: _common_pb2.Timing
    def __init__(self, embeddings: _Optional[_Iterable[_Union[Embedding, _Mapping]]] = ..., dim: _Optional[int] = ..., backbone_id: _Optional[str] = ..., backbone_version: _Optional[str] = ..., timing: _Optional[_Union[_common_pb2.Timing, _Mapping]] = ...) -> None: ...

class TrainHeadRequest(_message.Message):
    __slots__ = ("dataset_dir", "backbone_id", "head_type", "head_id", "background_crops_per_image", "max_crops_per_class", "normalize_embeddings", "seed", "context_padding", "make_default")
    DATASET_DIR_FIELD_NUMBER: _ClassVar[int]
    BACKBONE_ID_FIELD_NUMBER: _ClassVar[int]
    HEAD_TYPE_FIELD_NUMBER: _ClassVar[int]
    HEAD_ID_FIELD_NUMBER: _ClassVar[int]
    BACKGROUND_CROPS_PER_IMAGE_FIELD_NUMBER: _ClassVar[int]
    MAX_CROPS_PER_CLASS_FIELD_NUMBER: _ClassVar[int]
    NORMALIZE_EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_PADDING_FIELD_NUMBER: _ClassVar[int]
    MAKE_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    dataset_dir: str
    backbone_id: str
    head_type: HeadType
    head_id: str
    background_crops_per_image: int
    max_crops_per_class: int
    normalize_embeddings: bool
    seed: int
    context_padding: float
    make_default: bool
    def __init__(self, dataset_dir: _Optional[str] = ..., backbone_id: _Optional[str] = ..., head_type: _Optional[_Union[HeadType, str]] = ..., head_id: _Optional[str] = ..., background_crops_per_image: _Optional[int] = ..., max_crops_per_class: _Optional[int] = ..., normalize_embeddings: _Optional[bool] = ..., seed: _Optional[int] = ..., context_padding: _Optional[float] = ..., make_default: _Optional[bool] = ...) -> None: ...

class TrainHeadProgress(_message.Message):
    __slots__ = ("phase", "done", "total", "message")
    PHASE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    phase: str
    done: int
    total: int
    message: str
    def __init__(self, phase: _Optional[str] = ..., done: _Optional[int] = ..., total: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class TrainedHead(_message.Message):
    __slots__ = ("head_id", "val_accuracy", "train_crops", "val_crops", "classes", "model")
    HEAD_ID_FIELD_NUMBER: _ClassVar[int]
    VAL_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    TRAIN_CROPS_FIELD_NUMBER: _ClassVar[int]
    VAL_CROPS_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    head_id: str
    val_accuracy: float
    train_crops: int
    val_crops: int
    classes: _containers.RepeatedScalarFieldContainer[str]
    model: _common_pb2.ModelInfo
    def __init__(self, head_id: _Optional[str] = ..., val_accuracy: _Optional[float] = ..., train_crops: _Optional[int] = ..., val_crops: _Optional[int] = ..., classes: _Optional[_Iterable[str]] = ..., model: _Optional[_Union[_common_pb2.ModelInfo, _Mapping]] = ...) -> None: ...

class TrainHeadResponse(_message.Message):
    __slots__ = ("progress", "done")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    progress: TrainHeadProgress
    done: TrainedHead
    def __init__(self, progress: _Optional[_Union[TrainHeadProgress, _Mapping]] = ..., done: _Optional[_Union[TrainedHead, _Mapping]] = ...) -> None: ...
