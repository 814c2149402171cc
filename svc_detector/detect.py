"""Detect: run one or several detectors on one decoded image, full frame and/or tiles.

Tiles are coordinates on the cached image (numpy views, never re-encoded
crops); all windows of one image go to each model as one job, so its tiles run
as a batch. Tile detections are shifted back to full-image pixels and merged
class-aware per model (NMS or weighted box fusion at the request's merge IoU).
Models are not merged with each other: every detection keeps its source,
model id and window, and deduplication across sources is the caller's business.

A TILED pass that finds nothing stays empty: there is no silent second
full-frame pass, and `runs` lists exactly the passes that ran.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from svc_detector.backends import RawDetections
from svc_detector.models import DetectorModels
from svc_detector.params import DEFAULT_TILE, MAX_TILE, DetectParams
from tator_core import errors
from tator_core.convert import Note, StageTime
from tator_core.geometry import XYXY, Scored, Win, clip_box, is_valid_box, merge, shift_box, tile_windows
from tator_core.images import DecodedImage
from tator_core.labels import labelmap_diff

FULL = "full"
TILED = "tiled"


@dataclass(frozen=True)
class Det:
    """One detection in full-image pixels."""

    box: XYXY
    label: str
    class_id: int
    score: float
    source: str
    model_id: str
    window: Win


@dataclass
class PassRun:
    """What one model pass did (ModelRun)."""

    model_id: str
    source: str
    pass_: str
    tiles: int
    raw_detections: int
    kept_detections: int = 0
    compute_ms: float = 0.0
    batch_size: int = 0
    tile_size: int = 0


@dataclass
class DetectResult:
    detections: list[Det]
    runs: list[PassRun]
    stages: list[StageTime]
    warnings: list[Note]
    params: DetectParams
    model_ids: list[str] = field(default_factory=list)


def plan_windows(width: int, height: int, params: DetectParams, max_tiles: int) -> dict[str, list[Win]]:
    """The windows of each pass; more tiles than `max_tiles` is refused, not truncated."""
    plan: dict[str, list[Win]] = {}
    if FULL in params.passes:
        plan[FULL] = [Win(FULL, (0.0, 0.0, float(width), float(height)))]
    if TILED in params.passes:
        tiles = tile_windows(width, height, params.tile_size, params.overlap)
        if len(tiles) > max_tiles:
            raise errors.invalid_argument(
                "tile_plan", f"{len(tiles)} tiles of {params.tile_size} px (overlap {params.overlap:g}) on a "
                f"{width}x{height} image exceed the limit of {max_tiles}; use larger tiles or less overlap",
                "FANOUT_CAP_EXCEEDED", tiles=len(tiles), limit=max_tiles)
        plan[TILED] = tiles
    return plan


def tile_size_for(width: int, height: int, params: DetectParams, input_size: int, max_tiles: int,
                  warnings: list[Note], model_id: str) -> int:
    """The request's tile size, else the model's own input size: a tile then reaches the model at
    its native scale, where a 640 px tile fed to a 160 px model shrinks a 20 px object to 5 px.
    A default that would need more than `max_tiles` tiles grows (with a warning) until it fits; an
    explicit size is the caller's choice and is refused instead (plan_windows)."""
    if params.tile_size:
        return params.tile_size
    size = input_size or DEFAULT_TILE
    first = size
    while size < MAX_TILE and len(tile_windows(width, height, size, params.overlap)) > max_tiles:
        size = min(MAX_TILE, int(size * 1.25) + 1)
    if size != first:
        warnings.append(Note("tiles_enlarged", model_id, f"tiles enlarged from its input size {first} px to {size} px "
                             f"to stay within {max_tiles} tiles on a {width}x{height} image"))
    return size


def check_labelmap(model_id: str, labelmap: Sequence[str], expected: Sequence[str]) -> None:
    diffs = labelmap_diff(labelmap, expected)
    if diffs:
        raise errors.failed_precondition(
            "LABELMAP_MISMATCH", f"model {model_id} labelmap differs from expected_labelmap: {'; '.join(diffs[:10])}",
            model_id=model_id, positions=",".join(diffs[:50]), model_labelmap=",".join(labelmap[:100]))


def to_dets(raw: RawDetections, window: Win, labelmap: Sequence[str], source: str, model_id: str,
            width: int, height: int) -> list[Det]:
    """Shift a window's raw output to full-image pixels, clip, and drop degenerate boxes."""
    dx, dy = window.box[0], window.box[1]
    out = []
    for (x1, y1, x2, y2), score, cid in zip(raw.xyxy.tolist(), raw.scores.tolist(), raw.class_ids.tolist()):
        box = clip_box(shift_box((x1, y1, x2, y2), dx, dy), width, height)
        if not is_valid_box(box) or not 0 <= cid < len(labelmap) or score != score:
            continue
        out.append(Det(box, labelmap[cid], int(cid), float(score), source, model_id, window))
    return out


def merge_model(dets: dict[str, list[Det]], params: DetectParams) -> list[Det]:
    """FULL keeps the model's own output; TILED and BOTH merge class-aware at merge_iou."""
    if params.mode == FULL:
        return sorted(dets.get(FULL, []), key=lambda d: -d.score)[:params.max_det]
    pool = [d for p in params.passes for d in dets.get(p, [])]
    merged = merge([Scored(d.box, d.score, d.label, d) for d in pool], params.merge_iou, params.merge_method,
                   params.max_det)
    return [dataclasses.replace(item.ref, box=item.box) for item, _ in merged]


async def detect(image: DecodedImage, model_ids: Sequence[str], params: DetectParams, manager: DetectorModels,
                 *, max_tiles: int = 256) -> DetectResult:
    ids, warnings = manager.select(model_ids)
    if params.tile_size:  # an explicit plan over the cap fails before any model loads
        plan_windows(image.width, image.height, params, max_tiles)
    # Load and check every model before any inference: a mismatch fails the call, it is not a warning.
    backends = {mid: await manager.acquire(mid) for mid in ids}
    if params.expected_labelmap:
        for mid, backend in backends.items():
            check_labelmap(mid, backend.labelmap, params.expected_labelmap)
    sizes = {mid: tile_size_for(image.width, image.height, params, getattr(backends[mid], "input_size", 0),
                                max_tiles, warnings, mid) if TILED in params.passes else 0 for mid in ids}
    plans = {mid: plan_windows(image.width, image.height, dataclasses.replace(params, tile_size=sizes[mid]),
                               max_tiles) for mid in ids}
    views: dict[XYXY, Any] = {}  # models with the same tile size share the crops
    crops = {mid: [views.setdefault(w.box, image.crop(w.box)) for p in params.passes for w in plans[mid][p]]
             for mid in ids}
    outcomes = await asyncio.gather(
        *(manager.infer(mid, crops[mid], conf=params.conf, iou=params.iou, max_det=params.max_det) for mid in ids),
        return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome

    detections: list[Det] = []
    runs: list[PassRun] = []
    stages: list[StageTime] = []
    done = [o for o in outcomes if not isinstance(o, BaseException)]  # every one, after the raise above
    for mid, (out, stats) in zip(ids, done):
        backend = backends[mid]
        plan = plans[mid]
        t0 = time.perf_counter()
        by_pass: dict[str, list[Det]] = {}
        model_runs: dict[str, PassRun] = {}
        k = 0
        for p in params.passes:
            run = PassRun(mid, backend.family, p, len(plan[p]), 0, tile_size=sizes[mid] if p == TILED else 0)
            by_pass[p] = []
            for win in plan[p]:
                raw = out.dets[k]
                run.raw_detections += len(raw)
                run.compute_ms += out.compute_ms[k]
                run.batch_size = max(run.batch_size, out.forward_size[k])
                by_pass[p] += to_dets(raw, win, backend.labelmap, backend.family, mid, image.width, image.height)
                k += 1
            model_runs[p] = run
        kept = merge_model(by_pass, params)
        for p, n in Counter(FULL if d.window.name == FULL else TILED for d in kept).items():
            model_runs[p].kept_detections = n
        detections += kept
        runs += model_runs.values()
        stages.append(StageTime(f"model:{mid}", stats.compute_ms, stats.batch_size, stats.queue_ms))
        stages.append(StageTime(f"merge:{mid}", compute_ms=(time.perf_counter() - t0) * 1000))
    return DetectResult(detections, runs, stages, warnings, params, ids)
