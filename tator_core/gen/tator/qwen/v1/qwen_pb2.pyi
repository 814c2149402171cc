from tator_core.gen.buf.validate import validate_pb2 as _validate_pb2
from tator_core.gen.tator.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CaptionMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CAPTION_MODE_UNSPECIFIED: _ClassVar[CaptionMode]
    CAPTION_MODE_FULL: _ClassVar[CaptionMode]
    CAPTION_MODE_WINDOWED: _ClassVar[CaptionMode]

class TermsOrigin(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TERMS_ORIGIN_UNSPECIFIED: _ClassVar[TermsOrigin]
    TERMS_ORIGIN_GLOSSARY: _ClassVar[TermsOrigin]
    TERMS_ORIGIN_MODEL: _ClassVar[TermsOrigin]
    TERMS_ORIGIN_DEFAULT: _ClassVar[TermsOrigin]
CAPTION_MODE_UNSPECIFIED: CaptionMode
CAPTION_MODE_FULL: CaptionMode
CAPTION_MODE_WINDOWED: CaptionMode
TERMS_ORIGIN_UNSPECIFIED: TermsOrigin
TERMS_ORIGIN_GLOSSARY: TermsOrigin
TERMS_ORIGIN_MODEL: TermsOrigin
TERMS_ORIGIN_DEFAULT: TermsOrigin

class LabelHint(_message.Message):
    __slots__ = ("label", "box", "score")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    label: str
    box: _common_pb2.Box
    score: float
    def __init__(self, label: _Optional[str] = ..., box: _Optional[_Union[_common_pb2.Box, _Mapping]] = ..., score: _Optional[float] = ...) -> None: ...

class CaptionRequest(_message.Message):
    __slots__ = ("image", "mode", "windows", "avoid_labels", "hints", "generation", "model_id", "glossary")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    AVOID_LABELS_FIELD_NUMBER: _ClassVar[int]
    HINTS_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    GLOSSARY_FIELD_NUMBER: _ClassVar[int]
    image: _common_pb2.ImageRef
    mode: CaptionMode
    windows: _common_pb2.WindowSpec
    avoid_labels: _containers.RepeatedScalarFieldContainer[str]
    hints: _containers.RepeatedCompositeFieldContainer[LabelHint]
    generation: _common_pb2.GenerationSettings
    model_id: str
    glossary: str
    def __init__(self, image: _Optional[_Union[_common_pb2.ImageRef, _Mapping]] = ..., mode: _Optional[_Union[CaptionMode, str]] = ..., windows: _Optional[_Union[_common_pb2.WindowSpec, _Mapping]] = ..., avoid_labels: _Optional[_Iterable[str]] = ..., hints: _Optional[_Iterable[_Union[LabelHint, _Mapping]]] = ..., generation: _Optional[_Union[_common_pb2.GenerationSettings, _Mapping]] = ..., model_id: _Optional[str] = ..., glossary: _Optional[str] = ...) -> None: ...

class WindowCaption(_message.Message):
    __slots__ = ("window", "caption", "degenerate_reason", "generated_tokens")
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    CAPTION_FIELD_NUMBER: _ClassVar[int]
    DEGENERATE_REASON_FIELD_NUMBER: _ClassVar[int]
    GENERATED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    window: _common_pb2.Window
    caption: str
    degenerate_reason: str
    generated_tokens: int
    def __init__(self, window: _Optional[_Union[_common_pb2.Window, _Mapping]] = ..., caption: _Optional[str] = ..., degenerate_reason: _Optional[str] = ..., generated_tokens: _Optional[int] = ...) -> None: ...

class CaptionResponse(_message.Message):
    __slots__ = ("caption", "degenerate_reason", "windows", "rewritten_tokens", "flagged_tokens", "generated_tokens", "timing", "mode", "warnings", "vision_regions_encoded", "vision_regions_cached")
    CAPTION_FIELD_NUMBER: _ClassVar[int]
    DEGENERATE_REASON_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    REWRITTEN_TOKENS_FIELD_NUMBER: _ClassVar[int]
    FLAGGED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    GENERATED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    VISION_REGIONS_ENCODED_FIELD_NUMBER: _ClassVar[int]
    VISION_REGIONS_CACHED_FIELD_NUMBER: _ClassVar[int]
    caption: str
    degenerate_reason: str
    windows: _containers.RepeatedCompositeFieldContainer[WindowCaption]
    rewritten_tokens: _containers.RepeatedScalarFieldContainer[str]
    flagged_tokens: _containers.RepeatedScalarFieldContainer[str]
    generated_tokens: int
    timing: _common_pb2.Timing
    mode: CaptionMode
    warnings: _containers.RepeatedCompositeFieldContainer[_common_pb2.Warning]
    vision_regions_encoded: int
    vision_regions_cached: int
    def __init__(self, caption: _Optional[str] = ..., degenerate_reason: _Optional[str] = ..., windows: _Optional[_Iterable[_Union[WindowCaption, _Mapping]]] = ..., rewritten_tokens: _Optional[_Iterable[str]] = ..., flagged_tokens: _Optional[_Iterable[str]] = ..., generated_tokens: _Optional[int] = ..., timing: _Optional[_Union[_common_pb2.Timing, _Mapping]] = ..., mode: _Optional[_Union[CaptionMode, str]] = ..., warnings: _Optional[_Iterable[_Union[_common_pb2.Warning, _Mapping]]] = ..., vision_regions_encoded: _Optional[int] = ..., vision_regions_cached: _Optional[int] = ...) -> None: ...

class ExpandSynonymsRequest(_message.Message):
    __slots__ = ("labels", "glossary", "max_terms_per_class", "generation", "model_id")
    LABELS_FIELD_NUMBER: _ClassVar[int]
    GLOSSARY_FIELD_NUMBER: _ClassVar[int]
    MAX_TERMS_PER_CLASS_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    labels: _containers.RepeatedScalarFieldContainer[str]
    glossary: str
    max_terms_per_class: int
    generation: _common_pb2.GenerationSettings
    model_id: str
    def __init__(self, labels: _Optional[_Iterable[str]] = ..., glossary: _Optional[str] = ..., max_terms_per_class: _Optional[int] = ..., generation: _Optional[_Union[_common_pb2.GenerationSettings, _Mapping]] = ..., model_id: _Optional[str] = ...) -> None: ...

class LabelTerms(_message.Message):
    __slots__ = ("label", "terms", "terms_origin")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    TERMS_FIELD_NUMBER: _ClassVar[int]
    TERMS_ORIGIN_FIELD_NUMBER: _ClassVar[int]
    label: str
    terms: _containers.RepeatedScalarFieldContainer[str]
    terms_origin: TermsOrigin
    def __init__(self, label: _Optional[str] = ..., terms: _Optional[_Iterable[str]] = ..., terms_origin: _Optional[_Union[TermsOrigin, str]] = ...) -> None: ...

class ExpandSynonymsResponse(_message.Message):
    __slots__ = ("labels", "raw_output", "parsed_json", "dropped_by_cap", "timing", "warnings")
    LABELS_FIELD_NUMBER: _ClassVar[int]
    RAW_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    PARSED_JSON_FIELD_NUMBER: _ClassVar[int]
    DROPPED_BY_CAP_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    labels: _containers.RepeatedCompositeFieldContainer[LabelTerms]
    raw_output: str
    parsed_json: bool
    dropped_by_cap: int
    timing: _common_pb2.Timing
    warnings: _containers.RepeatedCompositeFieldContainer[_common_pb2.Warning]
    def __init__(self, labels: _Optional[_Iterable[_Union[LabelTerms, _Mapping]]] = ..., raw_output: _Optional[str] = ..., parsed_json: _Optional[bool] = ..., dropped_by_cap: _Optional[int] = ..., timing: _Optional[_Union[_common_pb2.Timing, _Mapping]] = ..., warnings: _Optional[_Iterable[_Union[_common_pb2.Warning, _Mapping]]] = ...) -> None: ...
