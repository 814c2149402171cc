"""Text and exemplar segmentation on Python types, in image-first order.

A call is planned on the event loop (prompts and boxes checked, contexts
built, the fan-out cap enforced) and run on the device thread:

    text embeddings of the call's distinct prompts (cache, else one batch)
    for each context (full frame and/or windows):
        vision embedding (cache by image sha x context box, else computed once)
        decode the prompts in batches against it

so a context's vision embedding is computed at most once per call whatever
the number of prompts, and not at all on later calls while it stays in the
LRU; prompts x contexts is bounded per call.

Window detections are shifted back to full-image pixels and merged per label
(class-aware NMS at `merge_iou`, 0 = keep every raw detection). A prompt text
shared by several labels is decoded once per context and credited to each.
For exemplars each window uses only the exemplars whose box intersects it,
clipped to it (an intersection test: an exemplar whose centre lies outside the
window still counts); a window
without a positive exemplar for a label is skipped with a warning.
"""

from __future__ import annotations

import threading
import time
import unicodedata
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass, field

from svc_sam3.backends.sam3 import ExemplarBoxes, RawDetection, Sam3Backend, TextEmbedding, VisionEmbedding
from svc_sam3.merge import BestRaw, ExemplarHandle, Prompt, merged_prompts
from svc_sam3.metrics import PROMPT_RUNS, TEXT_EMBEDDINGS, VISION_CACHE_BYTES, VISION_CACHE_ITEMS, VISION_EMBEDDINGS
from svc_sam3.settings import Sam3Settings
from svc_sam3.windows import Context, plan_contexts
from tator_core import errors, geometry, rle
from tator_core.cache import BoundedLRU
from tator_core.convert import StageTime
from tator_core.gen.tator.common.v1 import common_pb2
from tator_core.images import DecodedImage
from tator_core.lifecycle import ModelRepository
from tator_core.registry import ModelEntry

TEXT_SCORE, SIMILARITY_SCORE, MASK_THRESHOLD, MERGE_IOU = 0.2, 0.3, 0.2, 0.5
#: The text SAM3's processor pairs with box prompts when none is given.
VISUAL_TEXT = "visual"
SOURCE_TEXT, SOURCE_SIMILARITY = "sam3_text", "sam3_similarity"


@dataclass(frozen=True)
class Options:
    score_threshold: float
    mask_threshold: float = MASK_THRESHOLD
    merge_iou: float = MERGE_IOU
    return_masks: bool = False
    max_results: int = 0  # per prompt and context; 0 = no limit


@dataclass(frozen=True)
class ExemplarQuery:
    label: str
    positives: list[geometry.XYXY]
    negatives: list[geometry.XYXY] = field(default_factory=list)
    text: str = ""


@dataclass
class Detection:
    box: geometry.XYXY  # full-image pixels
    score: float
    label: str
    prompts: list[Prompt]  # the kept one's first
    source: str
    model_id: str
    window: Context
    mask: common_pb2.Mask | None = None


@dataclass
class Stats:
    vision_embeddings_computed: int = 0
    vision_embeddings_cached: int = 0
    text_embeddings_computed: int = 0
    text_embeddings_cached: int = 0
    contexts: int = 0
    prompt_runs: int = 0
    raw_detections: int = 0


@dataclass
class Result:
    detections: list[Detection]
    stats: Stats
    warnings: list[common_pb2.Warning]
    stages: list[StageTime]  # in execution order


class CallCancelled(Exception):
    """The caller went away: the windows not yet run are skipped."""


@dataclass
class TextPlan:
    entry: ModelEntry
    image: DecodedImage
    labels: list[tuple[str, list[str]]]
    contexts: list[Context]
    options: Options
    warnings: list[common_pb2.Warning]
    # Set from the event loop when the RPC is cancelled; the device thread checks it before each window.
    cancelled: threading.Event = field(default_factory=threading.Event)


@dataclass
class ExemplarPlan:
    entry: ModelEntry
    image: DecodedImage
    queries: list[ExemplarQuery]
    contexts: list[Context]
    options: Options
    warnings: list[common_pb2.Warning]
    cancelled: threading.Event = field(default_factory=threading.Event)


def _windows(plan: TextPlan | ExemplarPlan) -> Iterator[Context]:
    """The plan's contexts, stopping with CallCancelled once its caller is gone."""
    for ctx in plan.contexts:
        if plan.cancelled.is_set():
            raise CallCancelled
        yield ctx


def _batches(plan: TextPlan | ExemplarPlan, items: Sequence, n: int) -> Iterator[Sequence]:
    """Prompt batches of one context, stopping the same way: one context may hold hundreds of prompts."""
    for chunk in _chunks(items, n):
        if plan.cancelled.is_set():
            raise CallCancelled
        yield chunk


# --- planning (event loop: cheap, no model) -----------------------------------------------

def prompt_key(text: str) -> str:
    """What the CLIP tokenizer sees (its normalizer is NFC, whitespace collapse, lowercase).

    Texts with the same key embed identically, so they are embedded, cached
    and decoded once; each label still reports its own spelling.
    """
    return unicodedata.normalize("NFC", " ".join(text.split())).lower()


def plan_text(entry: ModelEntry, image: DecodedImage, labels: Sequence[tuple[str, Sequence[str]]],
              windows: common_pb2.WindowSpec | None, options: Options, cap: int) -> TextPlan:
    """Check prompts (blank ones refused, repeats by `prompt_key` dropped), join repeated labels, plan contexts."""
    merged: dict[str, list[str]] = {}
    seen: dict[str, set[str]] = {}
    for i, (label, prompts) in enumerate(labels):
        if not label.strip():
            raise errors.invalid_argument(f"labels[{i}].label", "label is blank")
        if not prompts:
            raise errors.invalid_argument(f"labels[{i}].prompts", "a label needs at least one prompt")
        out, keys = merged.setdefault(label, []), seen.setdefault(label, set())
        for j, prompt in enumerate(prompts):
            text = " ".join(prompt.split())
            if not text:
                raise errors.invalid_argument(f"labels[{i}].prompts[{j}]", "prompt is blank")
            if prompt_key(text) not in keys:
                keys.add(prompt_key(text))
                out.append(text)
    if not merged:
        raise errors.invalid_argument("labels", "at least one label with prompts is required")
    runs = sum(len(p) for p in merged.values())
    contexts, warnings = plan_contexts(windows, image.width, image.height, runs_per_context=runs, cap=cap,
                                       fld="labels")
    return TextPlan(entry, image, list(merged.items()), contexts, options, warnings)


def plan_exemplars(entry: ModelEntry, image: DecodedImage, queries: Sequence[ExemplarQuery],
                   windows: common_pb2.WindowSpec | None, options: Options, cap: int) -> ExemplarPlan:
    """Check exemplar boxes (finite, non-empty, touching the image) and clip them to it; plan contexts."""
    if not queries:
        raise errors.invalid_argument("exemplars", "at least one exemplar set is required")
    checked = []
    for i, q in enumerate(queries):
        if not q.label.strip():
            raise errors.invalid_argument(f"exemplars[{i}].label", "label is blank")
        if not q.positives:
            raise errors.invalid_argument(f"exemplars[{i}].positives", "at least one positive box is required")
        pos = [_image_box(b, image, f"exemplars[{i}].positives[{j}]") for j, b in enumerate(q.positives)]
        neg = [_image_box(b, image, f"exemplars[{i}].negatives[{j}]") for j, b in enumerate(q.negatives)]
        checked.append(ExemplarQuery(q.label, pos, neg, " ".join(q.text.split())))
    contexts, warnings = plan_contexts(windows, image.width, image.height, runs_per_context=len(checked), cap=cap,
                                       fld="exemplars")
    return ExemplarPlan(entry, image, checked, contexts, options, warnings)


def _image_box(b: geometry.XYXY, image: DecodedImage, fld: str) -> geometry.XYXY:
    if not geometry.is_valid_box(b):
        raise errors.invalid_argument(fld, "needs finite corners with x2 > x1 and y2 > y1")
    clipped = geometry.clip_box(b, image.width, image.height)
    if not geometry.is_valid_box(clipped):
        raise errors.invalid_argument(fld, f"box {tuple(round(v, 1) for v in b)} lies outside the "
                                           f"{image.width}x{image.height} image")
    return clipped


def _in_context(b: geometry.XYXY, ctx: Context) -> geometry.XYXY:
    """A full-image box clipped to a context, in the context's pixels."""
    ox, oy = ctx.origin
    w, h = ctx.size
    return geometry.clip_box(geometry.shift_box(b, -ox, -oy), w, h)


def _chunks(items: Sequence, n: int) -> Iterator[Sequence]:
    for k in range(0, len(items), n):
        yield items[k:k + n]


# --- running (device thread) --------------------------------------------------------------

class Engine:
    """The caches and the two runs; one per service process."""

    def __init__(self, settings: Sam3Settings, models: ModelRepository[Sam3Backend]) -> None:
        self.settings = settings
        self.models = models
        self.vision_cache: BoundedLRU[Hashable, VisionEmbedding] = BoundedLRU(
            settings.vision_cache_items, settings.vision_cache_mb * 1024 * 1024, lambda v: v.nbytes)
        self.text_cache: BoundedLRU[Hashable, TextEmbedding] = BoundedLRU(settings.text_cache_items)

    def _vision(self, backend: Sam3Backend, model_id: str, image: DecodedImage, ctx: Context,
                stats: Stats) -> VisionEmbedding:
        key = (model_id, image.sha256, ctx.box)
        emb = self.vision_cache.get(key)
        if emb is not None:
            stats.vision_embeddings_cached += 1
            VISION_EMBEDDINGS.labels(model_id, "cached").inc()
            return emb
        emb = backend.embed_image(image.crop(ctx.box))
        stats.vision_embeddings_computed += 1
        VISION_EMBEDDINGS.labels(model_id, "computed").inc()
        self.vision_cache.put(key, emb)
        VISION_CACHE_BYTES.set(self.vision_cache.size)
        VISION_CACHE_ITEMS.set(len(self.vision_cache))
        return emb

    def _texts(self, backend: Sam3Backend, model_id: str, texts: Sequence[str], stats: Stats,
               warnings: list[common_pb2.Warning]) -> dict[str, TextEmbedding]:
        out: dict[str, TextEmbedding] = {}
        missing = []
        for text in dict.fromkeys(texts):
            emb = self.text_cache.get((model_id, text))
            if emb is None:
                missing.append(text)
            else:
                out[text] = emb
        stats.text_embeddings_cached += len(out)
        TEXT_EMBEDDINGS.labels(model_id, "cached").inc(len(out))
        for chunk in _chunks(missing, self.settings.prompt_batch):
            for text, emb in zip(chunk, backend.embed_texts(chunk)):
                out[text] = emb
                self.text_cache.put((model_id, text), emb)
        stats.text_embeddings_computed += len(missing)
        TEXT_EMBEDDINGS.labels(model_id, "computed").inc(len(missing))
        warnings += [common_pb2.Warning(code="prompt_truncated", subject=t, message="longer than the model's text "
                                        "window; its tail was ignored") for t in dict.fromkeys(texts) if out[t].truncated]
        return out

    def run_text(self, plan: TextPlan, queued_at: float | None = None) -> Result:
        run = _Run(self, plan.entry, plan.options, plan.warnings, queued_at, self.settings.max_raw_detections)
        users: dict[str, list[tuple[str, str]]] = {}  # prompt key -> (label, its spelling)
        for label, prompts in plan.labels:
            for p in prompts:
                users.setdefault(prompt_key(p), []).append((label, p))
        keys = list(users)
        texts = run.timed("text_embed", lambda: self._texts(run.backend, run.model_id, keys, run.stats,
                                                            run.warnings))
        for ctx in _windows(plan):
            vision = run.timed("vision_embed", lambda ctx=ctx: self._vision(run.backend, run.model_id, plan.image, ctx,
                                                                    run.stats))
            run.stats.contexts += 1
            for chunk in _batches(plan, keys, self.settings.prompt_batch):
                found = run.decode(vision, [texts[k] for k in chunk], ctx, None, "text")
                for key, dets in zip(chunk, found):
                    for label, spelling in users[key]:
                        run.add(dets, ctx, label, spelling, SOURCE_TEXT)
        return run.finish(plan.image)

    def run_exemplars(self, plan: ExemplarPlan, queued_at: float | None = None) -> Result:
        run = _Run(self, plan.entry, plan.options, plan.warnings, queued_at, self.settings.max_raw_detections)
        wanted = [prompt_key(q.text or VISUAL_TEXT) for q in plan.queries]
        texts = run.timed("text_embed", lambda: self._texts(run.backend, run.model_id, wanted, run.stats,
                                                            run.warnings))
        for ctx in _windows(plan):
            jobs = []  # (query, its text, handle, boxes in context pixels)
            for q, text in zip(plan.queries, wanted):
                pos = [(j, b) for j, b in enumerate(q.positives) if ctx.is_full or geometry.intersects(b, ctx.box)]
                if not pos:
                    run.warnings.append(common_pb2.Warning(code="similarity_window_skipped", subject=ctx.name,
                                                           message=f"no positive {q.label} exemplar intersects it"))
                    continue
                neg = [b for b in q.negatives if ctx.is_full or geometry.intersects(b, ctx.box)]
                boxes = ExemplarBoxes([_in_context(b, ctx) for _, b in pos], [_in_context(b, ctx) for b in neg])
                handle = ExemplarHandle(q.label, tuple(j for j, _ in pos), tuple(b for _, b in pos), q.text)
                jobs.append((q, text, handle, boxes))
            if not jobs:
                continue
            vision = run.timed("vision_embed", lambda ctx=ctx: self._vision(run.backend, run.model_id, plan.image, ctx,
                                                                    run.stats))
            run.stats.contexts += 1
            for chunk in _batches(plan, jobs, self.settings.prompt_batch):
                found = run.decode(vision, [texts[t] for _, t, _, _ in chunk], ctx, [b for *_, b in chunk],
                                   "exemplar")
                for (q, _, handle, _), dets in zip(chunk, found):
                    run.add(dets, ctx, q.label, handle, SOURCE_SIMILARITY)
        return run.finish(plan.image)


class _Run:
    """The state of one call on the device thread: stats, stage clocks, raw detections."""

    def __init__(self, engine: Engine, entry: ModelEntry, options: Options, warnings: list[common_pb2.Warning],
                 queued_at: float | None, max_raw: int) -> None:
        self.started = time.perf_counter()
        self.stages: dict[str, float] = {}
        if queued_at is not None:
            self.stages["queue"] = (self.started - queued_at) * 1000
        self.options = options
        self.model_id = entry.id
        self.stats = Stats()
        self.warnings = list(warnings)
        self.raw = BestRaw(max_raw)
        self.batch_size = 0
        self.backend = engine.models.loaded(entry.id)  # the servicer acquired it before queueing the call

    def timed(self, stage: str, fn):  # a tiny stopwatch
        t0 = time.perf_counter()
        try:
            return fn()
        finally:
            self.stages[stage] = self.stages.get(stage, 0.0) + (time.perf_counter() - t0) * 1000

    def decode(self, vision: VisionEmbedding, texts: list[TextEmbedding], ctx: Context,
               boxes: list[ExemplarBoxes] | None, kind: str) -> list[list[RawDetection]]:
        o = self.options
        found = self.timed("decode", lambda: self.backend.decode(
            vision, texts, ctx.size, score_threshold=o.score_threshold, max_results=o.max_results,
            with_masks=o.return_masks, exemplars=boxes))
        self.stats.prompt_runs += len(texts)
        self.batch_size = max(self.batch_size, len(texts))
        PROMPT_RUNS.labels(self.model_id, kind).inc(len(texts))
        return found

    def add(self, dets: list[RawDetection], ctx: Context, label: str, prompt: Prompt, source: str) -> None:
        ox, oy = ctx.origin
        for d in dets:
            self.raw.add(geometry.Scored(geometry.shift_box(d.box, ox, oy), d.score, label, (d, ctx, prompt, source)))
        self.stats.raw_detections += len(dets)

    def finish(self, image: DecodedImage) -> Result:
        o, raw = self.options, self.raw.items()
        if self.raw.dropped:
            self.warnings.append(common_pb2.Warning(
                code="raw_detections_capped", subject=str(self.raw.cap), message=f"{self.raw.dropped} lower-scored "
                "raw detections dropped before the merge (setting max_raw_detections); raise score_threshold, "
                "set max_results_per_prompt or send fewer prompts"))
        if o.merge_iou > 0:
            kept = self.timed("merge", lambda: [item for item, _ in geometry.merge(raw, o.merge_iou)])
            prompts = self.timed("merge", lambda: merged_prompts(kept, raw, o.merge_iou))
        else:
            kept = sorted(raw, key=lambda s: -s.score)
            prompts = [[item.ref[2]] for item in kept]
        detections = self.timed("masks", lambda: [self._detection(item, p, image) for item, p in zip(kept, prompts)])
        # Each stage's milliseconds were summed over every prompt run; the queue is waiting time, and
        # only the decode ran batched (all prompts of a context at once).
        stages = [StageTime(name, queue_ms=ms) if name == "queue" else
                  StageTime(name, ms, batch_size=self.batch_size if name == "decode" else 0)
                  for name, ms in self.stages.items()]
        return Result(detections, self.stats, self.warnings, stages)

    def _detection(self, item: geometry.Scored, prompts: list[Prompt], image: DecodedImage) -> Detection:
        raw, ctx, _, source = item.ref
        box = geometry.clip_box(item.box, image.width, image.height)
        det = Detection(box, item.score, item.label, prompts, source, self.model_id, ctx)
        if self.options.return_masks:
            mask = rle.encode(Sam3Backend.mask(raw, ctx.size, self.options.mask_threshold))
            mask.x0 += ctx.origin[0]
            mask.y0 += ctx.origin[1]
            det.mask = mask
        return det
