"""Contract enums <-> the short names used in logs, feature columns, job counts and the CLI.

A value's short name is its proto name without the enum's prefix, in lower case
(DETECTION_SOURCE_SAM3_TEXT -> "sam3_text", PREPASS_STAGE_DEDUPE2 -> "dedupe2"): the names the
strings carried before these fields became enums, so stored calibration feature schemas and
regression baselines keep their keys.
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

from tator_core.gen.tator.common.v1 import common_pb2

#: A contract enum's value type (the generated stubs declare each enum as an int subclass).
E = TypeVar("E", bound=int)


def _prefix(enum: Any) -> str:
    first: str = enum.DESCRIPTOR.values[0].name  # every contract enum starts with <PREFIX>_UNSPECIFIED
    return first[: -len("UNSPECIFIED")]


def short_name(enum: Any, value: int) -> str:
    """"" for UNSPECIFIED (unset), else the short name."""
    if value == 0:
        return ""
    name: str = enum.Name(value)
    return name[len(_prefix(enum)):].lower()


def from_short(enum: type[E], name: str) -> E:
    """The value of a short name, typed as the enum the message fields take; UNSPECIFIED (0) for "";
    ValueError for a name the enum lacks."""
    wrapper: Any = enum  # at run time a protobuf EnumTypeWrapper (Value, DESCRIPTOR), not a class
    return cast(E, int(wrapper.Value(_prefix(wrapper) + name.upper())) if name else 0)


def source_name(value: int) -> str:
    return short_name(common_pb2.DetectionSource, value)


def source_value(name: str) -> common_pb2.DetectionSource:
    return from_short(common_pb2.DetectionSource, name)
