"""Contract enums <-> the short names used in logs, feature columns, job counts and the CLI.

A value's short name is its proto name without the enum's prefix, in lower case
(DETECTION_SOURCE_SAM3_TEXT -> "sam3_text", PREPASS_STAGE_DEDUPE2 -> "dedupe2"): the names the
strings carried before these fields became enums, so stored calibration feature schemas and
regression baselines keep their keys.
"""

from __future__ import annotations

from typing import Any

from tator_core.gen.tator.common.v1 import common_pb2


def _prefix(enum: Any) -> str:
    first = enum.DESCRIPTOR.values[0].name  # every contract enum starts with <PREFIX>_UNSPECIFIED
    return first[: -len("UNSPECIFIED")]


def short_name(enum: Any, value: int) -> str:
    """"" for UNSPECIFIED (unset), else the short name."""
    if value == 0:
        return ""
    return enum.Name(value)[len(_prefix(enum)):].lower()


def from_short(enum: Any, name: str) -> int:
    """The value of a short name; UNSPECIFIED (0) for "" ; ValueError for a name the enum lacks."""
    if not name:
        return 0
    return int(enum.Value(_prefix(enum) + name.upper()))


def source_name(value: int) -> str:
    return short_name(common_pb2.DetectionSource, value)


def source_value(name: str) -> int:
    return from_short(common_pb2.DetectionSource, name)
