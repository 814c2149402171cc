"""Detect request settings: defaults, validation, and what the response echoes.

Every setting is request data with a documented default (conf 0.45, NMS IoU 0.45, max_det 300,
overlap 0.2, merge IoU 0.5; the tile size defaults to each model's input size, see
`detect.tile_size_for`). Out-of-range values are refused with INVALID_ARGUMENT naming the field:
clamping them would let a typo silently change results.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tator_core import errors, limits
from tator_core.convert import Note
from tator_core.labels import LabelmapError, validate_labelmap

MODES = ("full", "tiled", "both")
MERGE_METHODS = ("nms", "wbf")
DEFAULT_CONF = 0.45
DEFAULT_IOU = 0.45
DEFAULT_MAX_DET = 300
#: Tile size for a model that states no input size.
DEFAULT_TILE = 640
DEFAULT_OVERLAP = 0.2
DEFAULT_MERGE_IOU = 0.5
MIN_TILE = limits.TILE_MIN
MAX_TILE = limits.TILE_MAX
MAX_OVERLAP = 0.9
MAX_DET_LIMIT = 10_000


@dataclass(frozen=True)
class DetectParams:
    """Resolved settings of one Detect call."""

    mode: str = "full"
    conf: float = DEFAULT_CONF
    iou: float = DEFAULT_IOU
    max_det: int = DEFAULT_MAX_DET
    tile_size: int = 0  # 0 = each model's input size
    overlap: float = DEFAULT_OVERLAP
    merge_method: str = "nms"
    merge_iou: float = DEFAULT_MERGE_IOU
    expected_labelmap: tuple[str, ...] = ()

    @property
    def passes(self) -> tuple[str, ...]:
        return {"full": ("full",), "tiled": ("tiled",), "both": ("full", "tiled")}[self.mode]


def _unit(fld: str, value: float | None, default: float, hi: float = 1.0) -> float:
    if value is None:
        return default
    if not math.isfinite(value) or not 0.0 <= value <= hi:
        raise errors.invalid_argument(fld, f"must be in [0, {hi:g}], got {value!r}")
    return float(value)


def resolve_params(*, mode: str | None = None, conf: float | None = None, iou: float | None = None,
                   max_det: int | None = None, tile_size: int | None = None, overlap: float | None = None,
                   include_full: bool = False, merge_method: str | None = None, merge_iou: float | None = None,
                   expected_labelmap: Sequence[str] = ()) -> tuple[DetectParams, list[Note]]:
    """Defaults for unset values, INVALID_ARGUMENT for bad ones; returns (params, warnings)."""
    warnings: list[Note] = []
    mode = (mode or "full").lower()
    if mode not in MODES:
        raise errors.invalid_argument("mode", f"must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "tiled" and include_full:
        mode = "both"
        warnings.append(Note("include_full_promoted", "tile_plan.include_full",
                             "with mode TILED the full frame ran too (mode BOTH)"))
    if max_det is not None and not 1 <= max_det <= MAX_DET_LIMIT:
        raise errors.invalid_argument("max_det", f"must be in [1, {MAX_DET_LIMIT}], got {max_det}")
    size = tile_size or 0
    if size and not MIN_TILE <= size <= MAX_TILE:
        raise errors.invalid_argument(
            "tile_plan.size", f"must be 0 (each model's input size) or in [{MIN_TILE}, {MAX_TILE}], got {size}")
    method = (merge_method or "nms").lower()
    if method not in MERGE_METHODS:
        raise errors.invalid_argument("merge.method", f"must be one of {', '.join(MERGE_METHODS)}, got {method!r}")
    try:
        expected = tuple(validate_labelmap(list(expected_labelmap))) if expected_labelmap else ()
    except LabelmapError as exc:
        raise errors.invalid_argument("expected_labelmap", str(exc)) from exc
    params = DetectParams(
        mode=mode, conf=_unit("conf", conf, DEFAULT_CONF), iou=_unit("iou", iou, DEFAULT_IOU),
        max_det=DEFAULT_MAX_DET if max_det is None else int(max_det), tile_size=size,
        overlap=_unit("tile_plan.overlap", overlap, DEFAULT_OVERLAP, MAX_OVERLAP), merge_method=method,
        merge_iou=_unit("merge.iou", merge_iou, DEFAULT_MERGE_IOU), expected_labelmap=expected)
    return params, warnings
