"""Proto <-> Python for the Qwen service, with the checks protovalidate cannot express.

Every bad input becomes INVALID_ARGUMENT naming the field (non-finite or
empty boxes, labels with line breaks, a glossary that cannot be read, too
many windows), so nothing a client sends reaches an unexpected exception.
The window count is capped per call (FANOUT_CAP_EXCEEDED), counted before
tiles are built, so one request cannot fan out without bound.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from svc_qwen.backends.qwen_vl import GenSettings
from svc_qwen.captions import FULL, WINDOWED, CaptionResult, Hint
from svc_qwen.prompts import one_line
from svc_qwen.synonyms import SynonymResult
from tator_core import errors
from tator_core.convert import box_xyxy, warnings_pb, window_pb
from tator_core.enums import from_short
from tator_core.gen.tator.common.v1 import common_pb2
from tator_core.gen.tator.qwen.v1 import qwen_pb2
from tator_core.geometry import XYXY, Win, clip_box, grid_windows, is_valid_box, tile_windows
from tator_core.labels import match_key, parse_glossary

DEFAULT_GRID = (2, 2)
DEFAULT_OVERLAP = 0.2
DEFAULT_TILE = 640
def gen_settings(msg: common_pb2.GenerationSettings, default_max: int) -> GenSettings:
    return GenSettings(
        max_new_tokens=msg.max_new_tokens if msg.HasField("max_new_tokens") else default_max,
        do_sample=msg.do_sample,
        temperature=round(msg.temperature, 6) if msg.do_sample and msg.HasField("temperature") else None,
        top_p=round(msg.top_p, 6) if msg.do_sample and msg.HasField("top_p") else None,
        seed=msg.seed if msg.do_sample and msg.HasField("seed") else 0,  # greedy ignores it: keep cache keys equal
    )


def check_labels(labels: Sequence[str], fld: str, *, unique: bool = False) -> list[str]:
    """Stripped labels; a line break, a blank or (unique=True) a key clash is INVALID_ARGUMENT."""
    out: list[str] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(labels):
        label = raw.strip()
        if not label:
            raise errors.invalid_argument(f"{fld}[{i}]", "label is blank")
        if "\n" in label or "\r" in label:
            raise errors.invalid_argument(f"{fld}[{i}]", "label contains a line break")
        key = match_key(label) or label
        if unique and key in seen:
            raise errors.invalid_argument(f"{fld}[{i}]", f"{label!r} duplicates {fld}[{seen[key]}] "
                                          "(labels match case- and punctuation-insensitively)")
        seen.setdefault(key, i)
        out.append(label)
    return out


def glossary_terms(text: str, labels: Sequence[str] | None) -> dict[str, list[str]]:
    """Glossary text -> {label: cleaned terms}; text that parses to nothing gives no terms."""
    if not text.strip():
        return {}
    return parse_glossary(text, labels or None)


def box_of(msg: common_pb2.Box, fld: str) -> XYXY:
    box = box_xyxy(msg)
    if not all(math.isfinite(v) for v in box):
        raise errors.invalid_argument(fld, "box has a non-finite coordinate")
    if not is_valid_box(box):
        raise errors.invalid_argument(fld, "box needs x2 > x1 and y2 > y1")
    return box


def hints_from(msgs: Sequence[qwen_pb2.LabelHint]) -> list[Hint]:
    out = []
    for i, h in enumerate(msgs):
        label = check_labels([h.label], f"hints[{i}].label")[0]
        box = box_of(h.box, f"hints[{i}].box") if h.HasField("box") else None
        out.append(Hint(label, box, h.score))
    return out


def _axis_count(length: int, size: int, step: int) -> int:
    return 1 if size >= length else -(-(length - size) // step) + 1


def windows_from(spec: common_pb2.WindowSpec, width: int, height: int, max_windows: int) -> tuple[list[Win], bool]:
    """Resolve a WindowSpec on an image: explicit windows, then grid, then tiles; empty = 2x2 grid."""
    wins: list[Win] = []
    for i, w in enumerate(spec.windows):
        fld = f"windows.windows[{i}].box"
        if not w.HasField("box"):
            raise errors.invalid_argument(fld, "window needs a box")
        box = clip_box(box_of(w.box, fld), width, height)
        if not is_valid_box(box):
            raise errors.invalid_argument(fld, f"window lies outside the {width}x{height} image")
        wins.append(Win(one_line(w.name, 40) or f"win_{i}", box))
    tiles: list[Win] = []
    if spec.HasField("tiles"):
        size = spec.tiles.size or DEFAULT_TILE
        overlap = spec.tiles.overlap if spec.tiles.HasField("overlap") else DEFAULT_OVERLAP
        tw, th = min(size, width), min(size, height)
        n = (_axis_count(width, tw, max(1, round(tw * (1 - overlap))))
             * _axis_count(height, th, max(1, round(th * (1 - overlap)))))
        if len(wins) + n > max_windows:  # counted before the tiles exist: size 1 would mean millions
            raise _fanout(len(wins) + n, max_windows)
        tiles = tile_windows(width, height, size, overlap)
    if spec.HasField("grid"):
        overlap = spec.grid.overlap if spec.grid.HasField("overlap") else DEFAULT_OVERLAP
        wins.extend(grid_windows(width, height, spec.grid.cols, spec.grid.rows, overlap))
    wins.extend(tiles)
    if not wins:
        wins = grid_windows(width, height, *DEFAULT_GRID, DEFAULT_OVERLAP)
    if len(wins) > max_windows:
        raise _fanout(len(wins), max_windows)
    return wins, spec.include_full


def _fanout(n: int, cap: int) -> errors.TatorError:
    return errors.invalid_argument("windows", f"{n} windows exceed the per-call cap of {cap}",
                                   "FANOUT_CAP_EXCEEDED", windows=n, cap=cap)


def mode_of(mode: int) -> str:
    return WINDOWED if mode == qwen_pb2.CAPTION_MODE_WINDOWED else FULL


def caption_response(res: CaptionResult, timing: common_pb2.Timing) -> qwen_pb2.CaptionResponse:
    return qwen_pb2.CaptionResponse(
        caption=res.caption, degenerate_reason=res.degenerate_reason,
        windows=[qwen_pb2.WindowCaption(window=window_pb(w.name, w.box),
                                        caption=w.caption, degenerate_reason=w.degenerate_reason,
                                        generated_tokens=w.generated_tokens) for w in res.windows],
        rewritten_tokens=res.rewritten, flagged_tokens=res.flagged, generated_tokens=res.generated_tokens,
        timing=timing, warnings=warnings_pb(res.warnings),
        mode=qwen_pb2.CAPTION_MODE_WINDOWED if res.mode == WINDOWED else qwen_pb2.CAPTION_MODE_FULL)


def synonyms_response(res: SynonymResult, timing: common_pb2.Timing) -> qwen_pb2.ExpandSynonymsResponse:
    return qwen_pb2.ExpandSynonymsResponse(
        labels=[qwen_pb2.LabelTerms(label=lt.label, terms=lt.terms,
                                  terms_origin=from_short(qwen_pb2.TermsOrigin, lt.origin)) for lt in res.labels],
        raw_output=res.raw_output, parsed_json=res.parsed_json, dropped_by_cap=res.dropped_by_cap,
        warnings=warnings_pb(res.warnings), timing=timing)
