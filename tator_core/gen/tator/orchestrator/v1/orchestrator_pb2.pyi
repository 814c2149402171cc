import datetime

from tator_core.gen.buf.validate import validate_pb2 as _validate_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from tator_core.gen.tator.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ServiceHealth(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SERVICE_HEALTH_UNSPECIFIED: _ClassVar[ServiceHealth]
    SERVICE_HEALTH_SERVING: _ClassVar[ServiceHealth]
    SERVICE_HEALTH_NOT_SERVING: _ClassVar[ServiceHealth]
    SERVICE_HEALTH_UNREACHABLE: _ClassVar[ServiceHealth]

class WindowMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WINDOW_MODE_UNSPECIFIED: _ClassVar[WindowMode]
    WINDOW_MODE_GRID: _ClassVar[WindowMode]
    WINDOW_MODE_SAHI: _ClassVar[WindowMode]

class ExemplarStrategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXEMPLAR_STRATEGY_UNSPECIFIED: _ClassVar[ExemplarStrategy]
    EXEMPLAR_STRATEGY_TOP: _ClassVar[ExemplarStrategy]
    EXEMPLAR_STRATEGY_RANDOM: _ClassVar[ExemplarStrategy]

class FusionMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FUSION_MODE_UNSPECIFIED: _ClassVar[FusionMode]
    FUSION_MODE_PRIMARY: _ClassVar[FusionMode]
    FUSION_MODE_WBF: _ClassVar[FusionMode]

class PrepassStage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PREPASS_STAGE_UNSPECIFIED: _ClassVar[PrepassStage]
    PREPASS_STAGE_SYNONYMS: _ClassVar[PrepassStage]
    PREPASS_STAGE_DETECTORS: _ClassVar[PrepassStage]
    PREPASS_STAGE_SAM3_TEXT: _ClassVar[PrepassStage]
    PREPASS_STAGE_DEDUPE: _ClassVar[PrepassStage]
    PREPASS_STAGE_SAM3_SIMILARITY: _ClassVar[PrepassStage]
    PREPASS_STAGE_DEDUPE2: _ClassVar[PrepassStage]
    PREPASS_STAGE_CLASSIFIER: _ClassVar[PrepassStage]
    PREPASS_STAGE_CAPTION: _ClassVar[PrepassStage]
    PREPASS_STAGE_CACHE: _ClassVar[PrepassStage]

class AtomPass(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ATOM_PASS_UNSPECIFIED: _ClassVar[AtomPass]
    ATOM_PASS_FULL: _ClassVar[AtomPass]
    ATOM_PASS_TILED: _ClassVar[AtomPass]
    ATOM_PASS_WINDOWED: _ClassVar[AtomPass]

class PromptOriginKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROMPT_ORIGIN_KIND_UNSPECIFIED: _ClassVar[PromptOriginKind]
    PROMPT_ORIGIN_KIND_BASE: _ClassVar[PromptOriginKind]
    PROMPT_ORIGIN_KIND_GLOSSARY: _ClassVar[PromptOriginKind]
    PROMPT_ORIGIN_KIND_QWEN: _ClassVar[PromptOriginKind]

class ReplayDifferenceKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REPLAY_DIFFERENCE_KIND_UNSPECIFIED: _ClassVar[ReplayDifferenceKind]
    REPLAY_DIFFERENCE_KIND_MISSING: _ClassVar[ReplayDifferenceKind]
    REPLAY_DIFFERENCE_KIND_EXTRA: _ClassVar[ReplayDifferenceKind]
    REPLAY_DIFFERENCE_KIND_BOX: _ClassVar[ReplayDifferenceKind]
    REPLAY_DIFFERENCE_KIND_SCORE: _ClassVar[ReplayDifferenceKind]
    REPLAY_DIFFERENCE_KIND_OTHER: _ClassVar[ReplayDifferenceKind]

class JobKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_KIND_UNSPECIFIED: _ClassVar[JobKind]
    JOB_KIND_PREPASS: _ClassVar[JobKind]
    JOB_KIND_CALIBRATION: _ClassVar[JobKind]

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]
    JOB_STATE_INTERRUPTED: _ClassVar[JobState]

class CalibrationModel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CALIBRATION_MODEL_UNSPECIFIED: _ClassVar[CalibrationModel]
    CALIBRATION_MODEL_MLP: _ClassVar[CalibrationModel]
    CALIBRATION_MODEL_XGB: _ClassVar[CalibrationModel]
    CALIBRATION_MODEL_BOTH: _ClassVar[CalibrationModel]

class AcceptMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACCEPT_METHOD_UNSPECIFIED: _ClassVar[AcceptMethod]
    ACCEPT_METHOD_MLP: _ClassVar[AcceptMethod]
    ACCEPT_METHOD_XGB: _ClassVar[AcceptMethod]
    ACCEPT_METHOD_ACCEPT_ALL: _ClassVar[AcceptMethod]
    ACCEPT_METHOD_BEST_SINGLE_SOURCE: _ClassVar[AcceptMethod]
SERVICE_HEALTH_UNSPECIFIED: ServiceHealth
SERVICE_HEALTH_SERVING: ServiceHealth
SERVICE_HEALTH_NOT_SERVING: ServiceHealth
SERVICE_HEALTH_UNREACHABLE: ServiceHealth
WINDOW_MODE_UNSPECIFIED: WindowMode
WINDOW_MODE_GRID: WindowMode
WINDOW_MODE_SAHI: WindowMode
EXEMPLAR_STRATEGY_UNSPECIFIED: ExemplarStrategy
EXEMPLAR_STRATEGY_TOP: ExemplarStrategy
EXEMPLAR_STRATEGY_RANDOM: ExemplarStrategy
FUSION_MODE_UNSPECIFIED: FusionMode
FUSION_MODE_PRIMARY: FusionMode
FUSION_MODE_WBF: FusionMode
PREPASS_STAGE_UNSPECIFIED: PrepassStage
PREPASS_STAGE_SYNONYMS: PrepassStage
PREPASS_STAGE_DETECTORS: PrepassStage
PREPASS_STAGE_SAM3_TEXT: PrepassStage
PREPASS_STAGE_DEDUPE: PrepassStage
PREPASS_STAGE_SAM3_SIMILARITY: PrepassStage
PREPASS_STAGE_DEDUPE2: PrepassStage
PREPASS_STAGE_CLASSIFIER: PrepassStage
PREPASS_STAGE_CAPTION: PrepassStage
PREPASS_STAGE_CACHE: PrepassStage
ATOM_PASS_UNSPECIFIED: AtomPass
ATOM_PASS_FULL: AtomPass
ATOM_PASS_TILED: AtomPass
ATOM_PASS_WINDOWED: AtomPass
PROMPT_ORIGIN_KIND_UNSPECIFIED: PromptOriginKind
PROMPT_ORIGIN_KIND_BASE: PromptOriginKind
PROMPT_ORIGIN_KIND_GLOSSARY: PromptOriginKind
PROMPT_ORIGIN_KIND_QWEN: PromptOriginKind
REPLAY_DIFFERENCE_KIND_UNSPECIFIED: ReplayDifferenceKind
REPLAY_DIFFERENCE_KIND_MISSING: ReplayDifferenceKind
REPLAY_DIFFERENCE_KIND_EXTRA: ReplayDifferenceKind
REPLAY_DIFFERENCE_KIND_BOX: ReplayDifferenceKind
REPLAY_DIFFERENCE_KIND_SCORE: ReplayDifferenceKind
REPLAY_DIFFERENCE_KIND_OTHER: ReplayDifferenceKind
JOB_KIND_UNSPECIFIED: JobKind
JOB_KIND_PREPASS: JobKind
JOB_KIND_CALIBRATION: JobKind
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState
JOB_STATE_INTERRUPTED: JobState
CALIBRATION_MODEL_UNSPECIFIED: CalibrationModel
CALIBRATION_MODEL_MLP: CalibrationModel
CALIBRATION_MODEL_XGB: CalibrationModel
CALIBRATION_MODEL_BOTH: CalibrationModel
ACCEPT_METHOD_UNSPECIFIED: AcceptMethod
ACCEPT_METHOD_MLP: AcceptMethod
ACCEPT_METHOD_XGB: AcceptMethod
ACCEPT_METHOD_ACCEPT_ALL: AcceptMethod
ACCEPT_METHOD_BEST_SINGLE_SOURCE: AcceptMethod

class Dataset(_message.Message):
    __slots__ = ("id", "layout", "labelmap", "glossary", "glossary_hash", "labelmap_hash", "images_per_split", "image_count", "annotation_count", "has_ground_truth")
    class ImagesPerSplitEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    LAYOUT_FIELD_NUMBER: _ClassVar[int]
    LABELMAP_FIELD_NUMBER: _ClassVar[int]
    GLOSSARY_FIELD_NUMBER: _ClassVar[int]
    GLOSSARY_HASH_FIELD_NUMBER: _ClassVar[int]
    LABELMAP_HASH_FIELD_NUMBER: _ClassVar[int]
    IMAGES_PER_SPLIT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    ANNOTATION_COUNT_FIELD_NUMBER: _ClassVar[int]
    HAS_GROUND_TRUTH_FIELD_NUMBER: _ClassVar[int]
    id: str
    layout: str
    labelmap: _containers.RepeatedScalarFieldContainer[str]
    glossary: str
    glossary_hash: str
    labelmap_hash: str
    images_per_split: _containers.ScalarMap[str, int]
    image_count: int
    annotation_count: int
    has_ground_truth: bool
    def __init__(self, id: _Optional[str] = ..., layout: _Optional[str] = ..., labelmap: _Optional[_Iterable[str]] = ..., glossary: _Optional[str] = ..., glossary_hash: _Optional[str] = ..., labelmap_hash: _Optional[str] = ..., images_per_split: _Optional[_Mapping[str, int]] = ..., image_count: _Optional[int] = ..., annotation_count: _Optional[int] = ..., has_ground_truth: _Optional[bool] = ...) -> None: ...

class ListDatasetsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDatasetsResponse(_message.Message):
    __slots__ = ("datasets", "next_page_token")
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    datasets: _containers.RepeatedCompositeFieldContainer[Dataset]
    next_page_token: str
    def __init__(self, datasets: _Optional[_Iterable[_Union[Dataset, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetDatasetRequest(_message.Message):
    __slots__ = ("dataset_id",)
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    def __init__(self, dataset_id: _Optional[str] = ...) -> None: ...

class GetDatasetResponse(_message.Message):
    __slots__ = ("dataset",)
    DATASET_FIELD_NUMBER: _ClassVar[int]
    dataset: Dataset
    def __init__(self, dataset: _Optional[_Union[Dataset, _Mapping]] = ...) -> None: ...

class GroundTruthBox(_message.Message):
    __slots__ = ("label", "box")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    label: str
    box: _common_pb2.Box
    def __init__(self, label: _Optional[str] = ..., box: _Optional[_Union[_common_pb2.Box, _Mapping]] = ...) -> None: ...

class DatasetImage(_message.Message):
    __slots__ = ("name", "split", "sha256", "width", "height", "ground_truth")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    GROUND_TRUTH_FIELD_NUMBER: _ClassVar[int]
    name: str
    split: str
    sha256: str
    width: int
    height: int
    ground_truth: _containers.RepeatedCompositeFieldContainer[GroundTruthBox]
    def __init__(self, name: _Optional[str] = ..., split: _Optional[str] = ..., sha256: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., ground_truth: _Optional[_Iterable[_Union[GroundTruthBox, _Mapping]]] = ...) -> None: ...

class ListDatasetImagesRequest(_message.Message):
    __slots__ = ("dataset_id", "split", "page_size", "page_token")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    split: str
    page_size: int
    page_token: str
    def __init__(self, dataset_id: _Optional[str] = ..., split: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDatasetImagesResponse(_message.Message):
    __slots__ = ("images", "next_page_token", "total_size")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedCompositeFieldContainer[DatasetImage]
    next_page_token: str
    total_size: int
    def __init__(self, images: _Optional[_Iterable[_Union[DatasetImage, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class GetImageRequest(_message.Message):
    __slots__ = ("dataset_id", "name", "sha256", "max_side")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    MAX_SIDE_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    name: str
    sha256: str
    max_side: int
    def __init__(self, dataset_id: _Optional[str] = ..., name: _Optional[str] = ..., sha256: _Optional[str] = ..., max_side: _Optional[int] = ...) -> None: ...

class GetImageResponse(_message.Message):
    __slots__ = ("data", "mime_type", "sha256", "width", "height", "name")
    DATA_FIELD_NUMBER: _ClassVar[int]
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    mime_type: str
    sha256: str
    width: int
    height: int
    name: str
    def __init__(self, data: _Optional[bytes] = ..., mime_type: _Optional[str] = ..., sha256: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., name: _Optional[str] = ...) -> None: ...

class ServiceModels(_message.Message):
    __slots__ = ("service", "address", "health", "models")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    service: str
    address: str
    health: ServiceHealth
    models: _containers.RepeatedCompositeFieldContainer[_common_pb2.ModelInfo]
    def __init__(self, service: _Optional[str] = ..., address: _Optional[str] = ..., health: _Optional[_Union[ServiceHealth, str]] = ..., models: _Optional[_Iterable[_Union[_common_pb2.ModelInfo, _Mapping]]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("services", "next_page_token")
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    services: _containers.RepeatedCompositeFieldContainer[ServiceModels]
    next_page_token: str
    def __init__(self, services: _Optional[_Iterable[_Union[ServiceModels, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class Glossary(_message.Message):
    __slots__ = ("name", "text", "hash", "terms")
    class TermsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Terms
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Terms, _Mapping]] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    TERMS_FIELD_NUMBER: _ClassVar[int]
    name: str
    text: str
    hash: str
    terms: _containers.MessageMap[str, Terms]
    def __init__(self, name: _Optional[str] = ..., text: _Optional[str] = ..., hash: _Optional[str] = ..., terms: _Optional[_Mapping[str, Terms]] = ...) -> None: ...

class Terms(_message.Message):
    __slots__ = ("terms",)
    TERMS_FIELD_NUMBER: _ClassVar[int]
    terms: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, terms: _Optional[_Iterable[str]] = ...) -> None: ...

class ListGlossariesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListGlossariesResponse(_message.Message):
    __slots__ = ("glossaries", "next_page_token")
    GLOSSARIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    glossaries: _containers.RepeatedCompositeFieldContainer[Glossary]
    next_page_token: str
    def __init__(self, glossaries: _Optional[_Iterable[_Union[Glossary, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetGlossaryRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetGlossaryResponse(_message.Message):
    __slots__ = ("glossary",)
    GLOSSARY_FIELD_NUMBER: _ClassVar[int]
    glossary: Glossary
    def __init__(self, glossary: _Optional[_Union[Glossary, _Mapping]] = ...) -> None: ...

class PutGlossaryRequest(_message.Message):
    __slots__ = ("name", "text")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    name: str
    text: str
    def __init__(self, name: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class PutGlossaryResponse(_message.Message):
    __slots__ = ("glossary",)
    GLOSSARY_FIELD_NUMBER: _ClassVar[int]
    glossary: Glossary
    def __init__(self, glossary: _Optional[_Union[Glossary, _Mapping]] = ...) -> None: ...

class DeleteGlossaryRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteGlossaryResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PrepassConfig(_message.Message):
    __slots__ = ("enable_yolo", "enable_rfdetr", "yolo_id", "rfdetr_id", "detector_conf", "detector_iou", "detector_merge_iou", "detector_full", "detector_sahi", "sahi_window_size", "sahi_overlap_ratio", "enable_sam3_text", "sam3_text_synonym_budget", "sam3_text_window_extension", "window_mode", "sam3_text_score", "sam3_mask_threshold", "enable_sam3_similarity", "similarity_min_exemplar_score", "similarity_exemplar_count", "similarity_exemplar_strategy", "similarity_window_extension", "similarity_score", "grid_cols", "grid_rows", "grid_overlap_ratio", "dedupe_iou", "fusion_mode", "cross_class_dedupe", "cross_class_dedupe_iou", "enable_classifier", "classifier_id", "enable_caption", "caption_windowed", "caption_max_tokens", "seed", "stage_timeout_s", "return_masks")
    ENABLE_YOLO_FIELD_NUMBER: _ClassVar[int]
    ENABLE_RFDETR_FIELD_NUMBER: _ClassVar[int]
    YOLO_ID_FIELD_NUMBER: _ClassVar[int]
    RFDETR_ID_FIELD_NUMBER: _ClassVar[int]
    DETECTOR_CONF_FIELD_NUMBER: _ClassVar[int]
    DETECTOR_IOU_FIELD_NUMBER: _ClassVar[int]
    DETECTOR_MERGE_IOU_FIELD_NUMBER: _ClassVar[int]
    DETECTOR_FULL_FIELD_NUMBER: _ClassVar[int]
    DETECTOR_SAHI_FIELD_NUMBER: _ClassVar[int]
    SAHI_WINDOW_SIZE_FIELD_NUMBER: _ClassVar[int]
    SAHI_OVERLAP_RATIO_FIELD_NUMBER: _ClassVar[int]
    ENABLE_SAM3_TEXT_FIELD_NUMBER: _ClassVar[int]
    SAM3_TEXT_SYNONYM_BUDGET_FIELD_NUMBER: _ClassVar[int]
    SAM3_TEXT_WINDOW_EXTENSION_FIELD_NUMBER: _ClassVar[int]
    WINDOW_MODE_FIELD_NUMBER: _ClassVar[int]
    SAM3_TEXT_SCORE_FIELD_NUMBER: _ClassVar[int]
    SAM3_MASK_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    ENABLE_SAM3_SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_MIN_EXEMPLAR_SCORE_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_EXEMPLAR_COUNT_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_EXEMPLAR_STRATEGY_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_WINDOW_EXTENSION_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_SCORE_FIELD_NUMBER: _ClassVar[int]
    GRID_COLS_FIELD_NUMBER: _ClassVar[int]
    GRID_ROWS_FIELD_NUMBER: _ClassVar[int]
    GRID_OVERLAP_RATIO_FIELD_NUMBER: _ClassVar[int]
    DEDUPE_IOU_FIELD_NUMBER: _ClassVar[int]
    FUSION_MODE_FIELD_NUMBER: _ClassVar[int]
    CROSS_CLASS_DEDUPE_FIELD_NUMBER: _ClassVar[int]
    CROSS_CLASS_DEDUPE_IOU_FIELD_NUMBER: _ClassVar[int]
    ENABLE_CLASSIFIER_FIELD_NUMBER: _ClassVar[int]
    CLASSIFIER_ID_FIELD_NUMBER: _ClassVar[int]
    ENABLE_CAPTION_FIELD_NUMBER: _ClassVar[int]
    CAPTION_WINDOWED_FIELD_NUMBER: _ClassVar[int]
    CAPTION_MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    STAGE_TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    RETURN_MASKS_FIELD_NUMBER: _ClassVar[int]
    enable_yolo: bool
    enable_rfdetr: bool
    yolo_id: str
    rfdetr_id: str
    detector_conf: float
    detector_iou: float
    detector_merge_iou: float
    detector_full: bool
    detector_sahi: bool
    sahi_window_size: int
    sahi_overlap_ratio: float
    enable_sam3_text: bool
    sam3_text_synonym_budget: int
    sam3_text_window_extension: bool
    window_mode: WindowMode
    sam3_text_score: float
    sam3_mask_threshold: float
    enable_sam3_similarity: bool
    similarity_min_exemplar_score: float
    similarity_exemplar_count: int
    similarity_exemplar_strategy: ExemplarStrategy
    similarity_window_extension: bool
    similarity_score: float
    grid_cols: int
    grid_rows: int
    grid_overlap_ratio: float
    dedupe_iou: float
    fusion_mode: FusionMode
    cross_class_dedupe: bool
    cross_class_dedupe_iou: float
    enable_classifier: bool
    classifier_id: str
    enable_caption: bool
    caption_windowed: bool
    caption_max_tokens: int
    seed: int
    stage_timeout_s: float
    return_masks: bool
    def __init__(self, enable_yolo: _Optional[bool] = ..., enable_rfdetr: _Optional[bool] = ..., yolo_id: _Optional[str] = ..., rfdetr_id: _Optional[str] = ..., detector_conf: _Optional[float] = ..., detector_iou: _Optional[float] = ..., detector_merge_iou: _Optional[float] = ..., detector_full: _Optional[bool] = ..., detector_sahi: _Optional[bool] = ..., sahi_window_size: _Optional[int] = ..., sahi_overlap_ratio: _Optional[float] = ..., enable_sam3_text: _Optional[bool] = ..., sam3_text_synonym_budget: _Optional[int] = ..., sam3_text_window_extension: _Optional[bool] = ..., window_mode: _Optional[_Union[WindowMode, str]] = ..., sam3_text_score: _Optional[float] = ..., sam3_mask_threshold: _Optional[float] = ..., enable_sam3_similarity: _Optional[bool] = ..., similarity_min_exemplar_score: _Optional[float] = ..., similarity_exemplar_count: _Optional[int] = ..., similarity_exemplar_strategy: _Optional[_Union[ExemplarStrategy, str]] = ..., similarity_window_extension: _Optional[bool] = ..., similarity_score: _Optional[float] = ..., grid_cols: _Optional[int] = ..., grid_rows: _Optional[int] = ..., grid_overlap_ratio: _Optional[float] = ..., dedupe_iou: _Optional[float] = ..., fusion_mode: _Optional[_Union[FusionMode, str]] = ..., cross_class_dedupe: _Optional[bool] = ..., cross_class_dedupe_iou: _Optional[float] = ..., enable_classifier: _Optional[bool] = ..., classifier_id: _Optional[str] = ..., enable_caption: _Optional[bool] = ..., caption_windowed: _Optional[bool] = ..., caption_max_tokens: _Optional[int] = ..., seed: _Optional[int] = ..., stage_timeout_s: _Optional[float] = ..., return_masks: _Optional[bool] = ...) -> None: ...

class PromptOrigin(_message.Message):
    __slots__ = ("kind", "text")
    KIND_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    kind: PromptOriginKind
    text: str
    def __init__(self, kind: _Optional[_Union[PromptOriginKind, str]] = ..., text: _Optional[str] = ...) -> None: ...

class PromptList(_message.Message):
    __slots__ = ("prompts",)
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    prompts: _containers.RepeatedCompositeFieldContainer[PromptOrigin]
    def __init__(self, prompts: _Optional[_Iterable[_Union[PromptOrigin, _Mapping]]] = ...) -> None: ...

class Atom(_message.Message):
    __slots__ = ("atom_id", "stage", "pass_kind", "detection", "prompts")
    ATOM_ID_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    PASS_KIND_FIELD_NUMBER: _ClassVar[int]
    DETECTION_FIELD_NUMBER: _ClassVar[int]
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    atom_id: str
    stage: PrepassStage
    pass_kind: AtomPass
    detection: _common_pb2.Detection
    prompts: _containers.RepeatedCompositeFieldContainer[PromptOrigin]
    def __init__(self, atom_id: _Optional[str] = ..., stage: _Optional[_Union[PrepassStage, str]] = ..., pass_kind: _Optional[_Union[AtomPass, str]] = ..., detection: _Optional[_Union[_common_pb2.Detection, _Mapping]] = ..., prompts: _Optional[_Iterable[_Union[PromptOrigin, _Mapping]]] = ...) -> None: ...

class Candidate(_message.Message):
    __slots__ = ("index", "box", "label", "score", "source_primary", "sources", "source_scores", "atom_ids", "probabilities", "classifier_label", "classifier_score", "classifier_margin", "classifier_error", "accept_prob", "accepted")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PRIMARY_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    SOURCE_SCORES_FIELD_NUMBER: _ClassVar[int]
    ATOM_IDS_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    CLASSIFIER_LABEL_FIELD_NUMBER: _ClassVar[int]
    CLASSIFIER_SCORE_FIELD_NUMBER: _ClassVar[int]
    CLASSIFIER_MARGIN_FIELD_NUMBER: _ClassVar[int]
    CLASSIFIER_ERROR_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_PROB_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    index: int
    box: _common_pb2.Box
    label: str
    score: float
    source_primary: _common_pb2.DetectionSource
    sources: _containers.RepeatedScalarFieldContainer[_common_pb2.DetectionSource]
    source_scores: _containers.RepeatedCompositeFieldContainer[SourceScore]
    atom_ids: _containers.RepeatedScalarFieldContainer[str]
    probabilities: _containers.RepeatedScalarFieldContainer[float]
    classifier_label: str
    classifier_score: float
    classifier_margin: float
    classifier_error: str
    accept_prob: float
    accepted: bool
    def __init__(self, index: _Optional[int] = ..., box: _Optional[_Union[_common_pb2.Box, _Mapping]] = ..., label: _Optional[str] = ..., score: _Optional[float] = ..., source_primary: _Optional[_Union[_common_pb2.DetectionSource, str]] = ..., sources: _Optional[_Iterable[_Union[_common_pb2.DetectionSource, str]]] = ..., source_scores: _Optional[_Iterable[_Union[SourceScore, _Mapping]]] = ..., atom_ids: _Optional[_Iterable[str]] = ..., probabilities: _Optional[_Iterable[float]] = ..., classifier_label: _Optional[str] = ..., classifier_score: _Optional[float] = ..., classifier_margin: _Optional[float] = ..., classifier_error: _Optional[str] = ..., accept_prob: _Optional[float] = ..., accepted: _Optional[bool] = ...) -> None: ...

class SourceScore(_message.Message):
    __slots__ = ("source", "score")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    source: _common_pb2.DetectionSource
    score: float
    def __init__(self, source: _Optional[_Union[_common_pb2.DetectionSource, str]] = ..., score: _Optional[float] = ...) -> None: ...

class StageReport(_message.Message):
    __slots__ = ("stage", "duration", "image_bytes_sent", "cache_hits", "calls", "ran", "detections", "note", "bytes_sent", "bytes_received")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    IMAGE_BYTES_SENT_FIELD_NUMBER: _ClassVar[int]
    CACHE_HITS_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    RAN_FIELD_NUMBER: _ClassVar[int]
    DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    BYTES_SENT_FIELD_NUMBER: _ClassVar[int]
    BYTES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    stage: PrepassStage
    duration: _duration_pb2.Duration
    image_bytes_sent: int
    cache_hits: int
    calls: int
    ran: bool
    detections: int
    note: str
    bytes_sent: int
    bytes_received: int
    def __init__(self, stage: _Optional[_Union[PrepassStage, str]] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., image_bytes_sent: _Optional[int] = ..., cache_hits: _Optional[int] = ..., calls: _Optional[int] = ..., ran: _Optional[bool] = ..., detections: _Optional[int] = ..., note: _Optional[str] = ..., bytes_sent: _Optional[int] = ..., bytes_received: _Optional[int] = ...) -> None: ...

class PrepassCost(_message.Message):
    __slots__ = ("stages",)
    STAGES_FIELD_NUMBER: _ClassVar[int]
    stages: _containers.RepeatedCompositeFieldContainer[StageReport]
    def __init__(self, stages: _Optional[_Iterable[_Union[StageReport, _Mapping]]] = ...) -> None: ...

class CaptionResult(_message.Message):
    __slots__ = ("caption", "windows", "degenerate_reason")
    CAPTION_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    DEGENERATE_REASON_FIELD_NUMBER: _ClassVar[int]
    caption: str
    windows: _containers.RepeatedCompositeFieldContainer[WindowCaptionText]
    degenerate_reason: str
    def __init__(self, caption: _Optional[str] = ..., windows: _Optional[_Iterable[_Union[WindowCaptionText, _Mapping]]] = ..., degenerate_reason: _Optional[str] = ...) -> None: ...

class WindowCaptionText(_message.Message):
    __slots__ = ("window", "caption")
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    CAPTION_FIELD_NUMBER: _ClassVar[int]
    window: _common_pb2.Window
    caption: str
    def __init__(self, window: _Optional[_Union[_common_pb2.Window, _Mapping]] = ..., caption: _Optional[str] = ...) -> None: ...

class PrepassWarning(_message.Message):
    __slots__ = ("stage", "warning")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    WARNING_FIELD_NUMBER: _ClassVar[int]
    stage: PrepassStage
    warning: _common_pb2.Warning
    def __init__(self, stage: _Optional[_Union[PrepassStage, str]] = ..., warning: _Optional[_Union[_common_pb2.Warning, _Mapping]] = ...) -> None: ...

class PrepassResult(_message.Message):
    __slots__ = ("image_sha256", "image_name", "width", "height", "candidates", "atoms", "classifier_classes", "caption", "stages", "cache_hit", "cache_key", "config_hash", "model_versions", "glossary_hash", "labelmap_hash", "pipeline_version", "warnings", "prompts", "original_cost", "run_id")
    class ModelVersionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class PromptsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: PromptList
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[PromptList, _Mapping]] = ...) -> None: ...
    IMAGE_SHA256_FIELD_NUMBER: _ClassVar[int]
    IMAGE_NAME_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    ATOMS_FIELD_NUMBER: _ClassVar[int]
    CLASSIFIER_CLASSES_FIELD_NUMBER: _ClassVar[int]
    CAPTION_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    CACHE_KEY_FIELD_NUMBER: _ClassVar[int]
    CONFIG_HASH_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    GLOSSARY_HASH_FIELD_NUMBER: _ClassVar[int]
    LABELMAP_HASH_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_VERSION_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_COST_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    image_sha256: str
    image_name: str
    width: int
    height: int
    candidates: _containers.RepeatedCompositeFieldContainer[Candidate]
    atoms: _containers.RepeatedCompositeFieldContainer[Atom]
    classifier_classes: _containers.RepeatedScalarFieldContainer[str]
    caption: CaptionResult
    stages: _containers.RepeatedCompositeFieldContainer[StageReport]
    cache_hit: bool
    cache_key: str
    config_hash: str
    model_versions: _containers.ScalarMap[str, str]
    glossary_hash: str
    labelmap_hash: str
    pipeline_version: str
    warnings: _containers.RepeatedCompositeFieldContainer[PrepassWarning]
    prompts: _containers.MessageMap[str, PromptList]
    original_cost: PrepassCost
    run_id: str
    def __init__(self, image_sha256: _Optional[str] = ..., image_name: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., candidates: _Optional[_Iterable[_Union[Candidate, _Mapping]]] = ..., atoms: _Optional[_Iterable[_Union[Atom, _Mapping]]] = ..., classifier_classes: _Optional[_Iterable[str]] = ..., caption: _Optional[_Union[CaptionResult, _Mapping]] = ..., stages: _Optional[_Iterable[_Union[StageReport, _Mapping]]] = ..., cache_hit: _Optional[bool] = ..., cache_key: _Optional[str] = ..., config_hash: _Optional[str] = ..., model_versions: _Optional[_Mapping[str, str]] = ..., glossary_hash: _Optional[str] = ..., labelmap_hash: _Optional[str] = ..., pipeline_version: _Optional[str] = ..., warnings: _Optional[_Iterable[_Union[PrepassWarning, _Mapping]]] = ..., prompts: _Optional[_Mapping[str, PromptList]] = ..., original_cost: _Optional[_Union[PrepassCost, _Mapping]] = ..., run_id: _Optional[str] = ...) -> None: ...

class PrepassRequest(_message.Message):
    __slots__ = ("image", "dataset_image", "dataset_id", "config", "glossary_name", "refresh", "calibration_id", "recipe_id")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    DATASET_IMAGE_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    GLOSSARY_NAME_FIELD_NUMBER: _ClassVar[int]
    REFRESH_FIELD_NUMBER: _ClassVar[int]
    CALIBRATION_ID_FIELD_NUMBER: _ClassVar[int]
    RECIPE_ID_FIELD_NUMBER: _ClassVar[int]
    image: _common_pb2.ImageRef
    dataset_image: str
    dataset_id: str
    config: PrepassConfig
    glossary_name: str
    refresh: bool
    calibration_id: str
    recipe_id: str
    def __init__(self, image: _Optional[_Union[_common_pb2.ImageRef, _Mapping]] = ..., dataset_image: _Optional[str] = ..., dataset_id: _Optional[str] = ..., config: _Optional[_Union[PrepassConfig, _Mapping]] = ..., glossary_name: _Optional[str] = ..., refresh: _Optional[bool] = ..., calibration_id: _Optional[str] = ..., recipe_id: _Optional[str] = ...) -> None: ...

class PrepassResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: PrepassResult
    def __init__(self, result: _Optional[_Union[PrepassResult, _Mapping]] = ...) -> None: ...

class ReplayRequest(_message.Message):
    __slots__ = ("run_id", "image_data", "max_differences")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_DATA_FIELD_NUMBER: _ClassVar[int]
    MAX_DIFFERENCES_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    image_data: bytes
    max_differences: int
    def __init__(self, run_id: _Optional[str] = ..., image_data: _Optional[bytes] = ..., max_differences: _Optional[int] = ...) -> None: ...

class ReplayDifference(_message.Message):
    __slots__ = ("kind", "stored", "replayed", "fields")
    KIND_FIELD_NUMBER: _ClassVar[int]
    STORED_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    kind: ReplayDifferenceKind
    stored: Candidate
    replayed: Candidate
    fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, kind: _Optional[_Union[ReplayDifferenceKind, str]] = ..., stored: _Optional[_Union[Candidate, _Mapping]] = ..., replayed: _Optional[_Union[Candidate, _Mapping]] = ..., fields: _Optional[_Iterable[str]] = ...) -> None: ...

class ReplayResponse(_message.Message):
    __slots__ = ("identical", "run_id", "new_run_id", "stored_candidates", "replayed_candidates", "difference_count", "differences", "stored_digest", "replayed_digest", "image_sha256", "image_name", "dataset_id", "stored_time", "stages")
    IDENTICAL_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    NEW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STORED_CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    DIFFERENCE_COUNT_FIELD_NUMBER: _ClassVar[int]
    DIFFERENCES_FIELD_NUMBER: _ClassVar[int]
    STORED_DIGEST_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_DIGEST_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SHA256_FIELD_NUMBER: _ClassVar[int]
    IMAGE_NAME_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    STORED_TIME_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    identical: bool
    run_id: str
    new_run_id: str
    stored_candidates: int
    replayed_candidates: int
    difference_count: int
    differences: _containers.RepeatedCompositeFieldContainer[ReplayDifference]
    stored_digest: str
    replayed_digest: str
    image_sha256: str
    image_name: str
    dataset_id: str
    stored_time: _timestamp_pb2.Timestamp
    stages: _containers.RepeatedCompositeFieldContainer[StageReport]
    def __init__(self, identical: _Optional[bool] = ..., run_id: _Optional[str] = ..., new_run_id: _Optional[str] = ..., stored_candidates: _Optional[int] = ..., replayed_candidates: _Optional[int] = ..., difference_count: _Optional[int] = ..., differences: _Optional[_Iterable[_Union[ReplayDifference, _Mapping]]] = ..., stored_digest: _Optional[str] = ..., replayed_digest: _Optional[str] = ..., image_sha256: _Optional[str] = ..., image_name: _Optional[str] = ..., dataset_id: _Optional[str] = ..., stored_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., stages: _Optional[_Iterable[_Union[StageReport, _Mapping]]] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "kind", "state", "dataset_id", "done", "total", "eta", "message", "error", "failed_stage", "create_time", "update_time", "result")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    ETA_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    FAILED_STAGE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: JobKind
    state: JobState
    dataset_id: str
    done: int
    total: int
    eta: _duration_pb2.Duration
    message: str
    error: str
    failed_stage: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    result: JobResult
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[_Union[JobKind, str]] = ..., state: _Optional[_Union[JobState, str]] = ..., dataset_id: _Optional[str] = ..., done: _Optional[int] = ..., total: _Optional[int] = ..., eta: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., message: _Optional[str] = ..., error: _Optional[str] = ..., failed_stage: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., result: _Optional[_Union[JobResult, _Mapping]] = ...) -> None: ...

class JobResult(_message.Message):
    __slots__ = ("prepass", "calibration")
    PREPASS_FIELD_NUMBER: _ClassVar[int]
    CALIBRATION_FIELD_NUMBER: _ClassVar[int]
    prepass: PrepassJobSummary
    calibration: CalibrationJobSummary
    def __init__(self, prepass: _Optional[_Union[PrepassJobSummary, _Mapping]] = ..., calibration: _Optional[_Union[CalibrationJobSummary, _Mapping]] = ...) -> None: ...

class Count(_message.Message):
    __slots__ = ("key", "count")
    KEY_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    key: str
    count: int
    def __init__(self, key: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class StageTotals(_message.Message):
    __slots__ = ("stage", "duration", "image_bytes_sent", "bytes_sent", "bytes_received")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    IMAGE_BYTES_SENT_FIELD_NUMBER: _ClassVar[int]
    BYTES_SENT_FIELD_NUMBER: _ClassVar[int]
    BYTES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    stage: PrepassStage
    duration: _duration_pb2.Duration
    image_bytes_sent: int
    bytes_sent: int
    bytes_received: int
    def __init__(self, stage: _Optional[_Union[PrepassStage, str]] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., image_bytes_sent: _Optional[int] = ..., bytes_sent: _Optional[int] = ..., bytes_received: _Optional[int] = ...) -> None: ...

class PrepassJobSummary(_message.Message):
    __slots__ = ("split", "images", "cache_hits", "candidates", "atoms", "candidates_by_source", "candidates_by_primary_source", "atoms_by_source", "candidates_by_class", "stages", "warnings", "config_hash", "glossary_hash", "labelmap_hash")
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    CACHE_HITS_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    ATOMS_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_BY_SOURCE_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_BY_PRIMARY_SOURCE_FIELD_NUMBER: _ClassVar[int]
    ATOMS_BY_SOURCE_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_BY_CLASS_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_HASH_FIELD_NUMBER: _ClassVar[int]
    GLOSSARY_HASH_FIELD_NUMBER: _ClassVar[int]
    LABELMAP_HASH_FIELD_NUMBER: _ClassVar[int]
    split: str
    images: int
    cache_hits: int
    candidates: int
    atoms: int
    candidates_by_source: _containers.RepeatedCompositeFieldContainer[Count]
    candidates_by_primary_source: _containers.RepeatedCompositeFieldContainer[Count]
    atoms_by_source: _containers.RepeatedCompositeFieldContainer[Count]
    candidates_by_class: _containers.RepeatedCompositeFieldContainer[Count]
    stages: _containers.RepeatedCompositeFieldContainer[StageTotals]
    warnings: int
    config_hash: str
    glossary_hash: str
    labelmap_hash: str
    def __init__(self, split: _Optional[str] = ..., images: _Optional[int] = ..., cache_hits: _Optional[int] = ..., candidates: _Optional[int] = ..., atoms: _Optional[int] = ..., candidates_by_source: _Optional[_Iterable[_Union[Count, _Mapping]]] = ..., candidates_by_primary_source: _Optional[_Iterable[_Union[Count, _Mapping]]] = ..., atoms_by_source: _Optional[_Iterable[_Union[Count, _Mapping]]] = ..., candidates_by_class: _Optional[_Iterable[_Union[Count, _Mapping]]] = ..., stages: _Optional[_Iterable[_Union[StageTotals, _Mapping]]] = ..., warnings: _Optional[int] = ..., config_hash: _Optional[str] = ..., glossary_hash: _Optional[str] = ..., labelmap_hash: _Optional[str] = ...) -> None: ...

class CalibrationJobSummary(_message.Message):
    __slots__ = ("artifacts", "split_images", "feature_schema_hash", "default_model")
    class SplitImagesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    SPLIT_IMAGES_FIELD_NUMBER: _ClassVar[int]
    FEATURE_SCHEMA_HASH_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MODEL_FIELD_NUMBER: _ClassVar[int]
    artifacts: _containers.RepeatedScalarFieldContainer[str]
    split_images: _containers.ScalarMap[str, int]
    feature_schema_hash: str
    default_model: AcceptMethod
    def __init__(self, artifacts: _Optional[_Iterable[str]] = ..., split_images: _Optional[_Mapping[str, int]] = ..., feature_schema_hash: _Optional[str] = ..., default_model: _Optional[_Union[AcceptMethod, str]] = ...) -> None: ...

class StartPrepassJobRequest(_message.Message):
    __slots__ = ("dataset_id", "config", "split", "max_images", "glossary_name", "refresh", "recipe_id")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    MAX_IMAGES_FIELD_NUMBER: _ClassVar[int]
    GLOSSARY_NAME_FIELD_NUMBER: _ClassVar[int]
    REFRESH_FIELD_NUMBER: _ClassVar[int]
    RECIPE_ID_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    config: PrepassConfig
    split: str
    max_images: int
    glossary_name: str
    refresh: bool
    recipe_id: str
    def __init__(self, dataset_id: _Optional[str] = ..., config: _Optional[_Union[PrepassConfig, _Mapping]] = ..., split: _Optional[str] = ..., max_images: _Optional[int] = ..., glossary_name: _Optional[str] = ..., refresh: _Optional[bool] = ..., recipe_id: _Optional[str] = ...) -> None: ...

class StartPrepassJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class CalibrationConfig(_message.Message):
    __slots__ = ("model", "label_iou", "eval_ious", "dedupe_iou", "recall_floor", "seed", "val_fraction", "test_fraction", "max_images", "prepass", "embedding_dims", "allow_training_overlap")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LABEL_IOU_FIELD_NUMBER: _ClassVar[int]
    EVAL_IOUS_FIELD_NUMBER: _ClassVar[int]
    DEDUPE_IOU_FIELD_NUMBER: _ClassVar[int]
    RECALL_FLOOR_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    VAL_FRACTION_FIELD_NUMBER: _ClassVar[int]
    TEST_FRACTION_FIELD_NUMBER: _ClassVar[int]
    MAX_IMAGES_FIELD_NUMBER: _ClassVar[int]
    PREPASS_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_DIMS_FIELD_NUMBER: _ClassVar[int]
    ALLOW_TRAINING_OVERLAP_FIELD_NUMBER: _ClassVar[int]
    model: CalibrationModel
    label_iou: float
    eval_ious: _containers.RepeatedScalarFieldContainer[float]
    dedupe_iou: float
    recall_floor: float
    seed: int
    val_fraction: float
    test_fraction: float
    max_images: int
    prepass: PrepassConfig
    embedding_dims: int
    allow_training_overlap: bool
    def __init__(self, model: _Optional[_Union[CalibrationModel, str]] = ..., label_iou: _Optional[float] = ..., eval_ious: _Optional[_Iterable[float]] = ..., dedupe_iou: _Optional[float] = ..., recall_floor: _Optional[float] = ..., seed: _Optional[int] = ..., val_fraction: _Optional[float] = ..., test_fraction: _Optional[float] = ..., max_images: _Optional[int] = ..., prepass: _Optional[_Union[PrepassConfig, _Mapping]] = ..., embedding_dims: _Optional[int] = ..., allow_training_overlap: _Optional[bool] = ...) -> None: ...

class StartCalibrationRequest(_message.Message):
    __slots__ = ("dataset_id", "config")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    config: CalibrationConfig
    def __init__(self, dataset_id: _Optional[str] = ..., config: _Optional[_Union[CalibrationConfig, _Mapping]] = ...) -> None: ...

class StartCalibrationResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class WatchJobResponse(_message.Message):
    __slots__ = ("job", "image")
    JOB_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    job: Job
    image: str
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ..., image: _Optional[str] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class GetJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class CancelJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class Metrics(_message.Message):
    __slots__ = ("tp", "fp", "fn", "precision", "recall", "f1", "precision_ci", "recall_ci", "f1_ci")
    TP_FIELD_NUMBER: _ClassVar[int]
    FP_FIELD_NUMBER: _ClassVar[int]
    FN_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    RECALL_FIELD_NUMBER: _ClassVar[int]
    F1_FIELD_NUMBER: _ClassVar[int]
    PRECISION_CI_FIELD_NUMBER: _ClassVar[int]
    RECALL_CI_FIELD_NUMBER: _ClassVar[int]
    F1_CI_FIELD_NUMBER: _ClassVar[int]
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    precision_ci: Interval
    recall_ci: Interval
    f1_ci: Interval
    def __init__(self, tp: _Optional[int] = ..., fp: _Optional[int] = ..., fn: _Optional[int] = ..., precision: _Optional[float] = ..., recall: _Optional[float] = ..., f1: _Optional[float] = ..., precision_ci: _Optional[_Union[Interval, _Mapping]] = ..., recall_ci: _Optional[_Union[Interval, _Mapping]] = ..., f1_ci: _Optional[_Union[Interval, _Mapping]] = ...) -> None: ...

class Interval(_message.Message):
    __slots__ = ("lower", "upper")
    LOWER_FIELD_NUMBER: _ClassVar[int]
    UPPER_FIELD_NUMBER: _ClassVar[int]
    lower: float
    upper: float
    def __init__(self, lower: _Optional[float] = ..., upper: _Optional[float] = ...) -> None: ...

class MethodMetrics(_message.Message):
    __slots__ = ("method", "eval_iou", "overall", "per_class", "source", "large_scenes")
    class PerClassEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Metrics
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Metrics, _Mapping]] = ...) -> None: ...
    METHOD_FIELD_NUMBER: _ClassVar[int]
    EVAL_IOU_FIELD_NUMBER: _ClassVar[int]
    OVERALL_FIELD_NUMBER: _ClassVar[int]
    PER_CLASS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    LARGE_SCENES_FIELD_NUMBER: _ClassVar[int]
    method: AcceptMethod
    eval_iou: float
    overall: Metrics
    per_class: _containers.MessageMap[str, Metrics]
    source: _common_pb2.DetectionSource
    large_scenes: Metrics
    def __init__(self, method: _Optional[_Union[AcceptMethod, str]] = ..., eval_iou: _Optional[float] = ..., overall: _Optional[_Union[Metrics, _Mapping]] = ..., per_class: _Optional[_Mapping[str, Metrics]] = ..., source: _Optional[_Union[_common_pb2.DetectionSource, str]] = ..., large_scenes: _Optional[_Union[Metrics, _Mapping]] = ...) -> None: ...

class SplitSummary(_message.Message):
    __slots__ = ("images", "candidates", "positives", "ground_truth", "large_images", "large_ground_truth")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    POSITIVES_FIELD_NUMBER: _ClassVar[int]
    GROUND_TRUTH_FIELD_NUMBER: _ClassVar[int]
    LARGE_IMAGES_FIELD_NUMBER: _ClassVar[int]
    LARGE_GROUND_TRUTH_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedScalarFieldContainer[str]
    candidates: int
    positives: int
    ground_truth: int
    large_images: int
    large_ground_truth: int
    def __init__(self, images: _Optional[_Iterable[str]] = ..., candidates: _Optional[int] = ..., positives: _Optional[int] = ..., ground_truth: _Optional[int] = ..., large_images: _Optional[int] = ..., large_ground_truth: _Optional[int] = ...) -> None: ...

class CandidateMetrics(_message.Message):
    __slots__ = ("rows", "positives", "average_precision", "roc_auc", "brier", "expected_calibration_error", "reliability")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    POSITIVES_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_PRECISION_FIELD_NUMBER: _ClassVar[int]
    ROC_AUC_FIELD_NUMBER: _ClassVar[int]
    BRIER_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_CALIBRATION_ERROR_FIELD_NUMBER: _ClassVar[int]
    RELIABILITY_FIELD_NUMBER: _ClassVar[int]
    rows: int
    positives: int
    average_precision: float
    roc_auc: float
    brier: float
    expected_calibration_error: float
    reliability: _containers.RepeatedCompositeFieldContainer[ReliabilityBin]
    def __init__(self, rows: _Optional[int] = ..., positives: _Optional[int] = ..., average_precision: _Optional[float] = ..., roc_auc: _Optional[float] = ..., brier: _Optional[float] = ..., expected_calibration_error: _Optional[float] = ..., reliability: _Optional[_Iterable[_Union[ReliabilityBin, _Mapping]]] = ...) -> None: ...

class ReliabilityBin(_message.Message):
    __slots__ = ("lower", "upper", "count", "mean_predicted", "fraction_positive")
    LOWER_FIELD_NUMBER: _ClassVar[int]
    UPPER_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    MEAN_PREDICTED_FIELD_NUMBER: _ClassVar[int]
    FRACTION_POSITIVE_FIELD_NUMBER: _ClassVar[int]
    lower: float
    upper: float
    count: int
    mean_predicted: float
    fraction_positive: float
    def __init__(self, lower: _Optional[float] = ..., upper: _Optional[float] = ..., count: _Optional[int] = ..., mean_predicted: _Optional[float] = ..., fraction_positive: _Optional[float] = ...) -> None: ...

class TrainingOverlap(_message.Message):
    __slots__ = ("model_id", "family", "known", "description", "train", "val", "test")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    KNOWN_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TRAIN_FIELD_NUMBER: _ClassVar[int]
    VAL_FIELD_NUMBER: _ClassVar[int]
    TEST_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    family: str
    known: bool
    description: str
    train: int
    val: int
    test: int
    def __init__(self, model_id: _Optional[str] = ..., family: _Optional[str] = ..., known: _Optional[bool] = ..., description: _Optional[str] = ..., train: _Optional[int] = ..., val: _Optional[int] = ..., test: _Optional[int] = ...) -> None: ...

class AcceptModelSummary(_message.Message):
    __slots__ = ("model", "val_f1", "candidate_metrics", "delta_f1_vs_best_single_source", "train_rows", "train_positives")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VAL_F1_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_METRICS_FIELD_NUMBER: _ClassVar[int]
    DELTA_F1_VS_BEST_SINGLE_SOURCE_FIELD_NUMBER: _ClassVar[int]
    TRAIN_ROWS_FIELD_NUMBER: _ClassVar[int]
    TRAIN_POSITIVES_FIELD_NUMBER: _ClassVar[int]
    model: AcceptMethod
    val_f1: float
    candidate_metrics: CandidateMetrics
    delta_f1_vs_best_single_source: float
    train_rows: int
    train_positives: int
    def __init__(self, model: _Optional[_Union[AcceptMethod, str]] = ..., val_f1: _Optional[float] = ..., candidate_metrics: _Optional[_Union[CandidateMetrics, _Mapping]] = ..., delta_f1_vs_best_single_source: _Optional[float] = ..., train_rows: _Optional[int] = ..., train_positives: _Optional[int] = ...) -> None: ...

class CalibrationReport(_message.Message):
    __slots__ = ("job_id", "dataset_id", "results", "split_images", "feature_schema_hash", "artifacts", "labelmap", "primary_eval_iou", "thresholds", "curves", "create_time", "config", "prepass_config_hash", "glossary_hash", "model_versions", "train", "val", "test", "models", "prepass_images", "prepass_cache_hits", "feature_width", "coverage_upper_bound", "duration", "large_side", "warnings", "training_overlap", "run_ids")
    class SplitImagesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class ModelVersionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    SPLIT_IMAGES_FIELD_NUMBER: _ClassVar[int]
    FEATURE_SCHEMA_HASH_FIELD_NUMBER: _ClassVar[int]
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    LABELMAP_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_EVAL_IOU_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    CURVES_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    PREPASS_CONFIG_HASH_FIELD_NUMBER: _ClassVar[int]
    GLOSSARY_HASH_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    TRAIN_FIELD_NUMBER: _ClassVar[int]
    VAL_FIELD_NUMBER: _ClassVar[int]
    TEST_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    PREPASS_IMAGES_FIELD_NUMBER: _ClassVar[int]
    PREPASS_CACHE_HITS_FIELD_NUMBER: _ClassVar[int]
    FEATURE_WIDTH_FIELD_NUMBER: _ClassVar[int]
    COVERAGE_UPPER_BOUND_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    LARGE_SIDE_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    TRAINING_OVERLAP_FIELD_NUMBER: _ClassVar[int]
    RUN_IDS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    dataset_id: str
    results: _containers.RepeatedCompositeFieldContainer[MethodMetrics]
    split_images: _containers.ScalarMap[str, int]
    feature_schema_hash: str
    artifacts: _containers.RepeatedScalarFieldContainer[str]
    labelmap: _containers.RepeatedScalarFieldContainer[str]
    primary_eval_iou: float
    thresholds: _containers.RepeatedCompositeFieldContainer[ModelThresholds]
    curves: _containers.RepeatedCompositeFieldContainer[PrCurve]
    create_time: _timestamp_pb2.Timestamp
    config: CalibrationConfig
    prepass_config_hash: str
    glossary_hash: str
    model_versions: _containers.ScalarMap[str, str]
    train: SplitSummary
    val: SplitSummary
    test: SplitSummary
    models: _containers.RepeatedCompositeFieldContainer[AcceptModelSummary]
    prepass_images: int
    prepass_cache_hits: int
    feature_width: int
    coverage_upper_bound: float
    duration: _duration_pb2.Duration
    large_side: int
    warnings: _containers.RepeatedScalarFieldContainer[str]
    training_overlap: _containers.RepeatedCompositeFieldContainer[TrainingOverlap]
    run_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, job_id: _Optional[str] = ..., dataset_id: _Optional[str] = ..., results: _Optional[_Iterable[_Union[MethodMetrics, _Mapping]]] = ..., split_images: _Optional[_Mapping[str, int]] = ..., feature_schema_hash: _Optional[str] = ..., artifacts: _Optional[_Iterable[str]] = ..., labelmap: _Optional[_Iterable[str]] = ..., primary_eval_iou: _Optional[float] = ..., thresholds: _Optional[_Iterable[_Union[ModelThresholds, _Mapping]]] = ..., curves: _Optional[_Iterable[_Union[PrCurve, _Mapping]]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., config: _Optional[_Union[CalibrationConfig, _Mapping]] = ..., prepass_config_hash: _Optional[str] = ..., glossary_hash: _Optional[str] = ..., model_versions: _Optional[_Mapping[str, str]] = ..., train: _Optional[_Union[SplitSummary, _Mapping]] = ..., val: _Optional[_Union[SplitSummary, _Mapping]] = ..., test: _Optional[_Union[SplitSummary, _Mapping]] = ..., models: _Optional[_Iterable[_Union[AcceptModelSummary, _Mapping]]] = ..., prepass_images: _Optional[int] = ..., prepass_cache_hits: _Optional[int] = ..., feature_width: _Optional[int] = ..., coverage_upper_bound: _Optional[float] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., large_side: _Optional[int] = ..., warnings: _Optional[_Iterable[str]] = ..., training_overlap: _Optional[_Iterable[_Union[TrainingOverlap, _Mapping]]] = ..., run_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ClassThreshold(_message.Message):
    __slots__ = ("label", "threshold", "reason", "val", "tried", "global_threshold")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    VAL_FIELD_NUMBER: _ClassVar[int]
    TRIED_FIELD_NUMBER: _ClassVar[int]
    GLOBAL_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    label: str
    threshold: float
    reason: str
    val: Metrics
    tried: int
    global_threshold: float
    def __init__(self, label: _Optional[str] = ..., threshold: _Optional[float] = ..., reason: _Optional[str] = ..., val: _Optional[_Union[Metrics, _Mapping]] = ..., tried: _Optional[int] = ..., global_threshold: _Optional[float] = ...) -> None: ...

class ModelThresholds(_message.Message):
    __slots__ = ("model", "is_default", "classes")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    model: AcceptMethod
    is_default: bool
    classes: _containers.RepeatedCompositeFieldContainer[ClassThreshold]
    def __init__(self, model: _Optional[_Union[AcceptMethod, str]] = ..., is_default: _Optional[bool] = ..., classes: _Optional[_Iterable[_Union[ClassThreshold, _Mapping]]] = ...) -> None: ...

class PrCurve(_message.Message):
    __slots__ = ("model", "thresholds", "precision", "recall", "f1")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    RECALL_FIELD_NUMBER: _ClassVar[int]
    F1_FIELD_NUMBER: _ClassVar[int]
    model: AcceptMethod
    thresholds: _containers.RepeatedScalarFieldContainer[float]
    precision: _containers.RepeatedScalarFieldContainer[float]
    recall: _containers.RepeatedScalarFieldContainer[float]
    f1: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, model: _Optional[_Union[AcceptMethod, str]] = ..., thresholds: _Optional[_Iterable[float]] = ..., precision: _Optional[_Iterable[float]] = ..., recall: _Optional[_Iterable[float]] = ..., f1: _Optional[_Iterable[float]] = ...) -> None: ...

class GetCalibrationReportRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class GetCalibrationReportResponse(_message.Message):
    __slots__ = ("report",)
    REPORT_FIELD_NUMBER: _ClassVar[int]
    report: CalibrationReport
    def __init__(self, report: _Optional[_Union[CalibrationReport, _Mapping]] = ...) -> None: ...

class Recipe(_message.Message):
    __slots__ = ("id", "name", "description", "config", "glossary", "create_time", "update_time", "schema_version")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    GLOSSARY_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    description: str
    config: PrepassConfig
    glossary: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    schema_version: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., config: _Optional[_Union[PrepassConfig, _Mapping]] = ..., glossary: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., schema_version: _Optional[int] = ...) -> None: ...

class ListRecipesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListRecipesResponse(_message.Message):
    __slots__ = ("recipes", "next_page_token")
    RECIPES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    recipes: _containers.RepeatedCompositeFieldContainer[Recipe]
    next_page_token: str
    def __init__(self, recipes: _Optional[_Iterable[_Union[Recipe, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetRecipeRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetRecipeResponse(_message.Message):
    __slots__ = ("recipe",)
    RECIPE_FIELD_NUMBER: _ClassVar[int]
    recipe: Recipe
    def __init__(self, recipe: _Optional[_Union[Recipe, _Mapping]] = ...) -> None: ...

class PutRecipeRequest(_message.Message):
    __slots__ = ("recipe",)
    RECIPE_FIELD_NUMBER: _ClassVar[int]
    recipe: Recipe
    def __init__(self, recipe: _Optional[_Union[Recipe, _Mapping]] = ...) -> None: ...

class PutRecipeResponse(_message.Message):
    __slots__ = ("recipe",)
    RECIPE_FIELD_NUMBER: _ClassVar[int]
    recipe: Recipe
    def __init__(self, recipe: _Optional[_Union[Recipe, _Mapping]] = ...) -> None: ...

class DeleteRecipeRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteRecipeResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ImportRecipeRequest(_message.Message):
    __slots__ = ("archive",)
    ARCHIVE_FIELD_NUMBER: _ClassVar[int]
    archive: bytes
    def __init__(self, archive: _Optional[bytes] = ...) -> None: ...

class ImportRecipeResponse(_message.Message):
    __slots__ = ("recipe", "notice")
    RECIPE_FIELD_NUMBER: _ClassVar[int]
    NOTICE_FIELD_NUMBER: _ClassVar[int]
    recipe: Recipe
    notice: str
    def __init__(self, recipe: _Optional[_Union[Recipe, _Mapping]] = ..., notice: _Optional[str] = ...) -> None: ...

class ExportRecipeRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ExportRecipeResponse(_message.Message):
    __slots__ = ("archive", "filename")
    ARCHIVE_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    archive: bytes
    filename: str
    def __init__(self, archive: _Optional[bytes] = ..., filename: _Optional[str] = ...) -> None: ...
