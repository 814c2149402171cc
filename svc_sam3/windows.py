"""Contexts a call runs in: the full frame and/or windows of a `WindowSpec`.

Windows come from the shared geometry (`grid_windows`, `tile_windows`); this
module only turns the request into a checked, de-duplicated list and bounds
the fan-out *before* any window is materialised, so a TilePlan of 1-px tiles
over a large image is refused instead of allocating millions of windows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tator_core import errors, geometry
from tator_core.convert import box_xyxy, window_pb
from tator_core.gen.tator.common.v1 import common_pb2

FULL = "full"
DEFAULT_GRID_OVERLAP = 0.2
DEFAULT_TILE_SIZE = 640
DEFAULT_TILE_OVERLAP = 0.2


@dataclass(frozen=True)
class Context:
    """Where prompts run: a window in full-image pixels, integer-aligned to the crop it reads."""

    name: str
    box: tuple[int, int, int, int]

    @property
    def origin(self) -> tuple[int, int]:
        return self.box[0], self.box[1]

    @property
    def size(self) -> tuple[int, int]:
        return self.box[2] - self.box[0], self.box[3] - self.box[1]

    @property
    def is_full(self) -> bool:
        return self.name == FULL


def fanout_error(fld: str, requested: int, cap: int, what: str) -> errors.TatorError:
    return errors.invalid_argument(
        fld, f"{what} = {requested} prompt runs exceed the per-call cap of {cap} (setting max_prompt_runs); "
             "send fewer prompts or windows", "FANOUT_CAP_EXCEEDED", cap=cap, requested=requested)


def _axis_count(length: int, size: int, overlap: float) -> int:
    size = min(size, length)
    if size >= length:
        return 1
    step = max(1, int(round(size * (1 - overlap))))
    return math.ceil((length - size) / step) + 1


def _aligned(box: tuple[float, float, float, float], width: int, height: int) -> tuple[int, int, int, int]:
    """The integer box `DecodedImage.crop` reads, so embeddings and offsets agree."""
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    return max(0, x1), max(0, y1), min(width, x2), min(height, y2)


def has_windows(spec: common_pb2.WindowSpec | None) -> bool:
    return spec is not None and (len(spec.windows) > 0 or spec.HasField("grid") or spec.HasField("tiles"))


def plan_contexts(spec: common_pb2.WindowSpec | None, width: int, height: int, *, runs_per_context: int,
                  cap: int, fld: str) -> tuple[list[Context], list[common_pb2.Warning]]:
    """Checked contexts for a request, and warnings.

    No windows -> the full frame only. With windows the full frame joins only
    when `include_full` (of the spec, or of its TilePlan) is set. Contexts that
    read the same pixels as an earlier one are dropped with a warning.
    `runs_per_context` x contexts must stay within `cap` (FANOUT_CAP_EXCEEDED).
    """
    full = Context(FULL, (0, 0, width, height))
    if not has_windows(spec):
        _check_cap(1, runs_per_context, cap, fld)
        return [full], []
    assert spec is not None
    tiles = spec.tiles if spec.HasField("tiles") else None
    tile_size = (tiles.size or DEFAULT_TILE_SIZE) if tiles is not None else 0
    tile_overlap = (tiles.overlap if tiles.HasField("overlap") else DEFAULT_TILE_OVERLAP) if tiles is not None else 0.0
    include_full = spec.include_full or (tiles is not None and tiles.include_full)
    estimate = len(spec.windows) + int(include_full)
    if spec.HasField("grid"):
        estimate += spec.grid.cols * spec.grid.rows
    if tiles is not None:
        estimate += _axis_count(width, tile_size, tile_overlap) * _axis_count(height, tile_size, tile_overlap)
    _check_cap(estimate, runs_per_context, cap, fld)

    wins: list[tuple[str, tuple[float, float, float, float], str]] = []  # name, box, field for errors
    if include_full:
        wins.append((FULL, full.box, "windows.include_full"))
    for i, w in enumerate(spec.windows):
        b = box_xyxy(w.box)
        path = f"windows.windows[{i}]"
        if not w.HasField("box") or not geometry.is_valid_box(b):
            raise errors.invalid_argument(f"{path}.box", "needs finite corners with x2 > x1 and y2 > y1")
        wins.append((w.name or f"window_{i}", b, path))
    if spec.HasField("grid"):
        g = spec.grid
        overlap = g.overlap if g.HasField("overlap") else DEFAULT_GRID_OVERLAP
        wins += [(w.name, w.box, "windows.grid") for w in geometry.grid_windows(width, height, g.cols, g.rows, overlap)]
    if tiles is not None:
        wins += [(w.name, w.box, "windows.tiles")
                 for w in geometry.tile_windows(width, height, tile_size, tile_overlap)]

    contexts: list[Context] = []
    warnings: list[common_pb2.Warning] = []
    seen_boxes: dict[tuple[int, int, int, int], str] = {}
    names: set[str] = set()
    for name, box, path in wins:
        if name in names:
            raise errors.invalid_argument(f"{path}.name", f"window name {name!r} is used twice")
        names.add(name)
        aligned = _aligned(box, width, height)
        if aligned[2] - aligned[0] < 1 or aligned[3] - aligned[1] < 1:
            raise errors.invalid_argument(f"{path}.box", f"window {name!r} covers no pixel of the "
                                                         f"{width}x{height} image")
        if aligned in seen_boxes:
            warnings.append(common_pb2.Warning(code="window_duplicate", subject=name,
                                               message=f"same pixels as {seen_boxes[aligned]}; ran once"))
            continue
        seen_boxes[aligned] = name
        contexts.append(Context(name, aligned))
    return contexts, warnings


def _check_cap(contexts: int, runs_per_context: int, cap: int, fld: str) -> None:
    requested = contexts * runs_per_context
    if requested > cap:
        raise fanout_error(fld, requested, cap, f"{runs_per_context} prompts x {contexts} contexts")


def window_proto(ctx: Context) -> common_pb2.Window:
    return window_pb(ctx.name, ctx.box)
