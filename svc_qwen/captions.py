"""Caption an image, full frame or per window plus a merged caption.

Plain Python on a backend object (`encode` / `generate`, see
backends/qwen_vl.py); `run_caption` runs on the device thread. Every pass
goes through `sanitize.finish_caption`, so a degenerate output is reported
with its reason and never returned as a caption.

WINDOWED: the window crops (and the full frame when asked, as a draft) are
encoded in batched vision calls of up to `window_batch` regions and captioned
in batched generate calls; then one text-only pass merges the usable window
captions (and the draft). Each window's prompt counts only the hints that
overlap it; the merge prompt counts them all. When no window
caption is usable there is nothing to merge and the final caption is reported
as `no_usable_windows` instead of asking the model to invent one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from PIL import Image

from svc_qwen.backends.qwen_vl import Generated, GenSettings, VisionFeatures
from svc_qwen.prompts import Vocabulary, caption_prompt, hint_counts, merge_instruction, merge_prompt
from svc_qwen.sanitize import NO_USABLE_WINDOWS, PassOutcome, finish_caption
from tator_core.convert import Note, StageTime
from tator_core.geometry import XYXY, Win, intersects
from tator_core.images import DecodedImage

FULL, WINDOWED = "full", "windowed"


class Backend(Protocol):
    def encode(self, regions: Sequence[tuple[object, Image.Image]]) -> tuple[list[VisionFeatures], int]: ...

    def generate(self, items: Sequence[tuple[str, VisionFeatures | None]], gen: GenSettings) -> list[Generated]: ...


@dataclass
class Hint:
    """A detection offered as a hint; box None when the client sent none."""

    label: str
    box: XYXY | None = None
    score: float = 0.0


@dataclass
class CaptionJob:
    image: DecodedImage
    mode: str
    vocab: Vocabulary
    gen: GenSettings
    windows: list[Win] = field(default_factory=list)
    include_full: bool = False
    hints: list[Hint] = field(default_factory=list)
    window_batch: int = 8
    warnings: list[Note] = field(default_factory=list)


#: What a sanitizer note (PassOutcome.notes) means, for the warning that carries it.
_NOTES = {"repetition_cut": "a repeated phrase was cut from the text"}

@dataclass
class WindowResult:
    name: str
    box: XYXY
    caption: str
    degenerate_reason: str
    generated_tokens: int


@dataclass
class CaptionResult:
    mode: str
    caption: str = ""
    degenerate_reason: str = ""
    windows: list[WindowResult] = field(default_factory=list)
    rewritten: list[str] = field(default_factory=list)
    flagged: list[str] = field(default_factory=list)
    generated_tokens: int = 0
    stages: list[StageTime] = field(default_factory=list)
    warnings: list[Note] = field(default_factory=list)
    encoded_regions: int = 0
    cached_regions: int = 0

    def absorb(self, outcome: PassOutcome, gen: Generated, what: str) -> None:
        """Collect a pass's tokens, rewrites, flags and notes."""
        self.generated_tokens += gen.tokens
        for token in outcome.rewritten:
            if token not in self.rewritten:
                self.rewritten.append(token)
        for token in outcome.flagged:
            if token not in self.flagged:
                self.flagged.append(token)
        for note in outcome.notes:
            self._warn(Note(note, what, _NOTES.get(note, "")))
        if gen.hit_limit:
            self._warn(Note("max_new_tokens_reached", what, "generation stopped at max_new_tokens; the text may end "
                                                            "mid-way"))

    def _warn(self, note: Note) -> None:
        if note not in self.warnings and len(self.warnings) < 100:
            self.warnings.append(note)


def region_image(image: DecodedImage, box: XYXY) -> Image.Image:
    """The pixels of a window, never empty (a sub-pixel window still gets one pixel)."""
    x1 = min(max(0, math.floor(box[0])), image.width - 1)
    y1 = min(max(0, math.floor(box[1])), image.height - 1)
    x2 = max(x1 + 1, min(image.width, math.ceil(box[2])))
    y2 = max(y1 + 1, min(image.height, math.ceil(box[3])))
    return Image.fromarray(np.ascontiguousarray(image.array[y1:y2, x1:x2]))


def region_key(image: DecodedImage, box: XYXY) -> tuple[str, tuple[int, ...]]:
    return image.sha256, tuple(int(round(v)) for v in box)


def _finish(job: CaptionJob, gen: Generated, prompt: str) -> PassOutcome:
    return finish_caption(gen.text, echo_reference=prompt, raw_labels=job.vocab.raw_labels,
                          preferred=job.vocab.preferred)


def _timed(stages: list[StageTime], name: str, batch: int, fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    stages.append(StageTime(name, (time.perf_counter() - t0) * 1000, batch))
    return out


def _encode(backend: Backend, res: CaptionResult, regions: list[tuple[object, Image.Image]]) -> list[VisionFeatures]:
    """Vision features per region, recording the image-first accounting as stages:
    "encode" (batch_size = regions run through the vision tower) and
    "feature_cache" (batch_size = regions whose features were reused)."""
    t0 = time.perf_counter()
    feats, cached = backend.encode(regions)
    ms = (time.perf_counter() - t0) * 1000
    fresh = len(regions) - cached
    res.encoded_regions += fresh
    res.cached_regions += cached
    if fresh:
        res.stages.append(StageTime("encode", ms, fresh))
    if cached:
        res.stages.append(StageTime("feature_cache", 0.0 if fresh else ms, cached))
    return feats


def run_caption(backend: Backend, job: CaptionJob) -> CaptionResult:
    """The whole caption request, on the device thread."""
    res = CaptionResult(mode=job.mode, warnings=list(job.warnings))
    full_box: XYXY = (0.0, 0.0, float(job.image.width), float(job.image.height))
    all_counts = hint_counts([h.label for h in job.hints], job.vocab)
    if job.mode == FULL:
        feats = _encode(backend, res, [(region_key(job.image, full_box), job.image.pil())])
        prompt = caption_prompt(job.vocab, all_counts)
        gen = _timed(res.stages, "generate", 1, backend.generate, [(prompt, feats[0])], job.gen)[0]
        outcome = _finish(job, gen, prompt)
        res.absorb(outcome, gen, "full")
        res.caption, res.degenerate_reason = outcome.caption, outcome.degenerate_reason
        return res
    return _run_windowed(backend, job, res, full_box, all_counts)


def _run_windowed(backend: Backend, job: CaptionJob, res: CaptionResult, full_box: XYXY,
                  all_counts: list[tuple[str, int]]) -> CaptionResult:
    regions: list[tuple[str, XYXY, str]] = []  # (name, box, prompt)
    for win in job.windows:
        labels = [h.label for h in job.hints if h.box is not None and intersects(h.box, win.box)]
        regions.append((win.name, win.box, caption_prompt(job.vocab, hint_counts(labels, job.vocab), window=True)))
    if job.include_full:
        regions.append(("full", full_box, caption_prompt(job.vocab, all_counts)))
    outcomes: list[tuple[PassOutcome, Generated]] = []
    step = max(1, job.window_batch)
    for start in range(0, len(regions), step):
        chunk = regions[start:start + step]
        feats = _encode(backend, res, [(region_key(job.image, box), region_image(job.image, box))
                                       for _, box, _ in chunk])
        gens = _timed(res.stages, "generate", len(chunk), backend.generate,
                      [(prompt, f) for (_, _, prompt), f in zip(chunk, feats)], job.gen)
        outcomes.extend((_finish(job, g, prompt), g) for (_, _, prompt), g in zip(chunk, gens))
    draft = ""
    draft_index = len(regions) - 1 if job.include_full else -1
    for i, ((name, box, _), (outcome, gen)) in enumerate(zip(regions, outcomes)):
        res.absorb(outcome, gen, name)
        if i == draft_index:
            draft = outcome.caption
            continue
        res.windows.append(WindowResult(name, box, outcome.caption, outcome.degenerate_reason, gen.tokens))
    usable = [(w.name, w.caption) for w in res.windows if w.caption]
    if not usable and not draft:
        res.degenerate_reason = NO_USABLE_WINDOWS
        return res
    instruction = merge_instruction(job.vocab, all_counts)
    gen = _timed(res.stages, "merge", 1, backend.generate, [(merge_prompt(instruction, usable, draft), None)],
                 job.gen)[0]
    outcome = _finish(job, gen, instruction)
    res.absorb(outcome, gen, "merge")
    res.caption, res.degenerate_reason = outcome.caption, outcome.degenerate_reason
    return res
