"""The prepass of one image, as a plain async function over the typed clients.

    synonyms (Qwen, only labels without glossary terms) -> SAM3 text  ┐ concurrently
    detectors (YOLO + RF-DETR in one Detect call, full and/or tiled)  ┘
      -> dedupe (class-aware clusters with provenance)
      -> SAM3 similarity (exemplars = top clusters per label) -> dedupe2
      -> classifier (full probability vector per candidate)  ┐ concurrently
      -> caption (optional)                                  ┘

Any stage that fails raises STAGE_FAILED naming it; nothing partial is returned, so nothing partial
can be cached (a failure turned into a warning would be cached as an empty success). A
classifier failure on one box is per-box data (`classifier_error`), not a stage failure.
Wire economy: the image bytes go to each service at most once; the second SAM3 call and every
later call on the same image send the sha only (see clients.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from svc_orchestrator.clients import CallStats, RemoteCallError, ServiceClients
from svc_orchestrator.convert.prepass import stage_report_pb
from svc_orchestrator.prepass import prompts
from svc_orchestrator.prepass.config import ResolvedConfig
from svc_orchestrator.prepass.context import PrepassContext
from svc_orchestrator.prepass.exemplars import select_exemplars
from svc_orchestrator.prepass.plan import ModelPlan, remote_stage_failed
from svc_orchestrator.prepass.provenance import (
    AtomLog,
    Cluster,
    dedupe,
    detector_pass,
    sam3_pass,
    singleton,
    to_candidate,
    usable,
)
from svc_orchestrator.prepass.reports import StageReports
from tator_core import tracing
from tator_core.cache import BoundedLRU
from tator_core.convert import box_xyxy
from tator_core.gen.tator.common.v1 import common_pb2
from tator_core.gen.tator.detector.v1 import detector_pb2
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
from tator_core.gen.tator.qwen.v1 import qwen_pb2
from tator_core.hashing import stable_hash
from tator_core.labels import natural_label
from tator_core.version import PIPELINE_VERSION

LABELS_PER_CALL = 64       # SegmentText / SegmentExemplars accept at most 64 labels per call
BOXES_PER_CALL = 4096      # Classify accepts at most 4096 boxes per call
CAPTION_HINTS = 160        # the top 160 detections are offered to the captioner as hints


@dataclass
class ImageInput:
    sha256: str
    data: bytes
    name: str
    width: int
    height: int


@dataclass
class FlowInput:
    image: ImageInput
    ctx: PrepassContext
    plan: ModelPlan


class SynonymCache(BoundedLRU[str, dict[str, list[str]]]):
    """Qwen expansions by (labels, glossary, budget, model version): a dataset job asks once."""

    def __init__(self, max_items: int = 64) -> None:
        super().__init__(max_items)


def _timeout(cfg: ResolvedConfig) -> float | None:
    return cfg.stage_timeout_s or None


def window_spec(cfg: ResolvedConfig, windowed: bool) -> common_pb2.WindowSpec:
    if not windowed:
        return common_pb2.WindowSpec(include_full=True)
    if cfg.window_mode == "sahi":
        return common_pb2.WindowSpec(include_full=True, tiles=common_pb2.TilePlan(
            size=cfg.sahi_window_size, overlap=cfg.sahi_overlap_ratio))
    return common_pb2.WindowSpec(include_full=True, grid=common_pb2.GridSpec(
        cols=cfg.grid_cols, rows=cfg.grid_rows, overlap=cfg.grid_overlap_ratio))


async def _guard(stage: str, call: Awaitable):
    try:
        return await call
    except RemoteCallError as exc:
        raise remote_stage_failed(stage, exc) from exc


def _chunks(items: Sequence, n: int) -> list[list]:
    return [list(items[i:i + n]) for i in range(0, len(items), n)]


async def _split_on_fanout(stage: str, units: dict[str, list], call: Callable[[dict[str, list]], Awaitable],
                           *, split_values: bool) -> list:
    """Run `call` on {label: prompts|exemplars}; if SAM3 refuses it as too large (FANOUT_CAP_EXCEEDED),
    halve the labels, or a single label's prompts (never its exemplars: they form one prompt)."""
    try:
        return [await call(units)]
    except RemoteCallError as exc:
        labels = list(units)
        one = len(labels) == 1
        if exc.remote.reason != "FANOUT_CAP_EXCEEDED" or (one and (not split_values or len(units[labels[0]]) < 2)):
            raise remote_stage_failed(stage, exc) from exc
    if one:
        values = units[labels[0]]
        halves = [{labels[0]: values[:len(values) // 2]}, {labels[0]: values[len(values) // 2:]}]
    else:
        halves = [{k: units[k] for k in labels[:len(labels) // 2]}, {k: units[k] for k in labels[len(labels) // 2:]}]
    out = []
    for half in halves:
        out.extend(await _split_on_fanout(stage, half, call, split_values=split_values))
    return out


# --- stages -------------------------------------------------------------------------------------

async def _synonyms(clients: ServiceClients, inp: FlowInput, reports: StageReports, log: list, cache: SynonymCache,
                    terms: dict[str, list[str]]) -> dict[str, list[str]]:
    cfg, plan = inp.ctx.config, inp.plan
    missing = prompts.labels_needing_expansion(inp.ctx.labelmap, terms)
    if not missing or cfg.sam3_text_synonym_budget <= 0:
        reports.skip("synonyms", "every label has glossary terms" if not missing else "budget is 0")
        return {}
    if not plan.qwen_id:
        reports.skip("synonyms", "no Qwen model; labels without glossary terms use their names only")
        return {}
    key = stable_hash({"labels": missing, "glossary": inp.ctx.glossary_hash, "budget": cfg.sam3_text_synonym_budget,
                       "model": plan.versions.get(plan.qwen_id, ""), "seed": cfg.seed})
    tracing.annotate(batch_size=len(missing))
    hit = cache.get(key)
    if hit is not None:
        reports.record("synonyms", CallStats(), cache_hits=1, note=f"{len(missing)} labels (cached)")
        return hit
    resp, stats = await _guard("synonyms", clients.qwen.expand_synonyms(
        missing, inp.ctx.glossary_text, max_terms=cfg.sam3_text_synonym_budget, model_id=plan.qwen_id, seed=cfg.seed,
        timeout_s=_timeout(cfg)))
    wanted = set(missing)
    out = {lt.label: list(lt.terms)[:cfg.sam3_text_synonym_budget] for lt in resp.labels if lt.label in wanted}
    cache.put(key, out)
    # Qwen's notes go on the result of the prepass that made the call. A synonym-cache hit (a later image of
    # the same labels, glossary and model) repeats none: the cache keeps the terms, not the notes about them.
    log.extend(pb.PrepassWarning(stage=pb.PREPASS_STAGE_SYNONYMS, warning=w) for w in resp.warnings)
    reports.record("synonyms", stats, note=f"{len(missing)} labels expanded")
    return out


async def _detectors(clients: ServiceClients, inp: FlowInput, reports: StageReports, log: list) -> list:
    cfg, plan = inp.ctx.config, inp.plan
    if not plan.detector_ids:
        reports.skip("detectors", "disabled" if not cfg.detectors_on else "no detector model")
        return []
    tracing.annotate(batch_size=len(plan.detector_ids))  # models run on the image in one call
    mode = (detector_pb2.DETECT_MODE_BOTH if cfg.detector_full and cfg.detector_sahi
            else detector_pb2.DETECT_MODE_FULL if cfg.detector_full else detector_pb2.DETECT_MODE_TILED)
    resp, stats = await _guard("detectors", clients.detector.detect(
        inp.image.sha256, inp.image.data, model_ids=plan.detector_ids, mode=mode, tile_size=cfg.sahi_window_size,
        tile_overlap=cfg.sahi_overlap_ratio, conf=cfg.detector_conf, iou=cfg.detector_iou,
        merge_iou=cfg.detector_merge_iou, expected_labelmap=inp.ctx.labelmap, timeout_s=_timeout(cfg)))
    out: list[tuple[common_pb2.Detection, pb.PrepassStage, int, list]] = [
        (det, pb.PREPASS_STAGE_DETECTORS, detector_pass(det), []) for det in resp.detections]
    runs = ", ".join(f"{r.model_id}:{detector_pb2.PassKind.Name(r.kind).removeprefix('PASS_KIND_').lower()}"
                     for r in resp.runs)
    reports.record("detectors", stats, detections=len(out), note=runs)
    reports.tiles = sorted((r.model_id, r.kind, r.tile_size, r.tiles) for r in resp.runs)
    log.extend(pb.PrepassWarning(stage=pb.PREPASS_STAGE_DETECTORS, warning=w) for w in resp.warnings)
    return out


async def _sam3_text(clients: ServiceClients, inp: FlowInput, reports: StageReports, log: list,
                     prompt_map: dict[str, list[tuple[str, prompts.Origin]]]) -> list:
    cfg, plan = inp.ctx.config, inp.plan
    if not cfg.enable_sam3_text or not plan.sam3_id:
        reports.skip("sam3_text", "disabled" if not cfg.enable_sam3_text else "no SAM3 model")
        return []
    windows = window_spec(cfg, cfg.sam3_text_window_extension)
    origin = {(label, text.lower()): pb.PromptOrigin(kind=o, text=text)
              for label, items in prompt_map.items() for text, o in items}
    total = CallStats()
    hits = 0
    out = []

    async def call(units: dict[str, list]):
        return await clients.sam3.segment_text(
            inp.image.sha256, inp.image.data, prompts=units, windows=windows, score=cfg.sam3_text_score,
            mask_threshold=cfg.sam3_mask_threshold, return_masks=cfg.return_masks, model_id=plan.sam3_id,
            timeout_s=_timeout(cfg))

    for chunk in _chunks([k for k in prompt_map if prompt_map[k]], LABELS_PER_CALL):
        units = {k: [t for t, _ in prompt_map[k]] for k in chunk}
        tracing.annotate(batch_size=max(len(v) for v in units.values()) * len(units))  # prompts per call
        for resp, stats in await _split_on_fanout("sam3_text", units, call, split_values=True):
            total.add(stats)
            hits += resp.stats.vision_embeddings_cached
            log.extend(pb.PrepassWarning(stage=pb.PREPASS_STAGE_SAM3_TEXT, warning=w) for w in resp.warnings)
            for det in resp.detections:
                found = [o for p in det.prompts if (o := origin.get((det.label, p.text.lower()))) is not None]
                out.append((det, pb.PREPASS_STAGE_SAM3_TEXT, sam3_pass(det), found))
    reports.record("sam3_text", total, detections=len(out), cache_hits=hits)
    return out


async def _similarity(clients: ServiceClients, inp: FlowInput, reports: StageReports, log: list,
                      clusters: list[Cluster]) -> list:
    cfg, plan = inp.ctx.config, inp.plan
    if not cfg.enable_sam3_similarity or not plan.sam3_id:
        reports.skip("sam3_similarity", "disabled" if not cfg.enable_sam3_similarity else "no SAM3 model")
        return []
    exemplars = select_exemplars(clusters, inp.ctx.labelmap, min_score=cfg.similarity_min_exemplar_score,
                                 count=cfg.similarity_exemplar_count, strategy=cfg.similarity_exemplar_strategy,
                                 seed=cfg.seed)
    if not exemplars:
        reports.skip("sam3_similarity", f"no cluster scored >= {cfg.similarity_min_exemplar_score:g}")
        return []
    windows = window_spec(cfg, cfg.similarity_window_extension)
    total, hits, out = CallStats(), 0, list[Any]()

    async def call(units: dict[str, list]):
        return await clients.sam3.segment_exemplars(
            inp.image.sha256, inp.image.data, exemplars=units, windows=windows, score=cfg.similarity_score,
            mask_threshold=cfg.sam3_mask_threshold, return_masks=cfg.return_masks, model_id=plan.sam3_id,
            timeout_s=_timeout(cfg))

    for chunk in _chunks(list(exemplars), LABELS_PER_CALL):
        units = {k: exemplars[k] for k in chunk}
        tracing.annotate(batch_size=sum(len(v) for v in units.values()))  # exemplars per call
        for resp, stats in await _split_on_fanout("sam3_similarity", units, call, split_values=False):
            total.add(stats)
            hits += resp.stats.vision_embeddings_cached
            log.extend(pb.PrepassWarning(stage=pb.PREPASS_STAGE_SAM3_SIMILARITY, warning=w) for w in resp.warnings)
            out.extend((det, pb.PREPASS_STAGE_SAM3_SIMILARITY, sam3_pass(det), []) for det in resp.detections)
    reports.record("sam3_similarity", total, detections=len(out), cache_hits=hits,
                   note=f"exemplars: {sum(len(v) for v in exemplars.values())} over {len(exemplars)} labels")
    return out


async def _classify(clients: ServiceClients, inp: FlowInput, reports: StageReports,
                    result: pb.PrepassResult) -> None:
    cfg, plan = inp.ctx.config, inp.plan
    if not cfg.enable_classifier or not plan.head_id:
        reports.skip("classifier", "disabled" if not cfg.enable_classifier else "no classifier head")
        return
    cands = list(result.candidates)
    total = CallStats()
    tracing.annotate(batch_size=min(len(cands), BOXES_PER_CALL))  # boxes per call
    for start in range(0, len(cands), BOXES_PER_CALL):
        part = cands[start:start + BOXES_PER_CALL]
        boxes = [box_xyxy(c.box) for c in part]
        resp, stats = await _guard("classifier", clients.classifier.classify(
            inp.image.sha256, inp.image.data, boxes, head_id=plan.head_id, timeout_s=_timeout(cfg)))
        total.add(stats)
        if not result.classifier_classes:
            result.classifier_classes.extend(resp.classes)
        by_index = {r.index: r for r in resp.results}
        for i, cand in enumerate(part):
            r = by_index.get(i)
            if r is None:
                cand.classifier_error = "no result for this box"
            elif not r.ok:
                cand.classifier_error = r.error or "failed"
            else:
                cand.probabilities.extend(r.probabilities)
                cand.classifier_label, cand.classifier_score, cand.classifier_margin = r.label, r.score, r.margin
    errors_n = sum(1 for c in cands if c.classifier_error)
    reports.record("classifier", total, detections=len(cands),
                   note=f"{errors_n} boxes not scored" if errors_n else "")


async def _caption(clients: ServiceClients, inp: FlowInput, reports: StageReports, log: list,
                   result: pb.PrepassResult) -> None:
    cfg, plan = inp.ctx.config, inp.plan
    if not cfg.enable_caption or not plan.qwen_id:
        reports.skip("caption", "disabled" if not cfg.enable_caption else "no Qwen model")
        return
    top = sorted(result.candidates, key=lambda c: -c.score)[:CAPTION_HINTS]
    hints = [qwen_pb2.LabelHint(label=c.label, box=c.box, score=min(1.0, max(0.0, c.score))) for c in top]
    avoid = [label for label in inp.ctx.labelmap if "_" in label or natural_label(label) != label]
    resp, stats = await _guard("caption", clients.qwen.caption(
        inp.image.sha256, inp.image.data, windowed=cfg.caption_windowed, windows=window_spec(cfg, True),
        avoid_labels=avoid, hints=hints, glossary=inp.ctx.glossary_text, max_new_tokens=cfg.caption_max_tokens,
        seed=cfg.seed, model_id=plan.qwen_id, timeout_s=_timeout(cfg)))
    result.caption.caption = resp.caption
    result.caption.degenerate_reason = resp.degenerate_reason
    for w in resp.windows:
        result.caption.windows.add(window=w.window, caption=w.caption)
    log.extend(pb.PrepassWarning(stage=pb.PREPASS_STAGE_CAPTION, warning=w) for w in resp.warnings)
    reports.record("caption", stats, note=resp.degenerate_reason and f"degenerate: {resp.degenerate_reason}")


# --- the flow -----------------------------------------------------------------------------------

async def _both(a: Coroutine[Any, Any, Any], b: Coroutine[Any, Any, Any]) -> tuple[Any, Any]:
    """Run two stages at once; the first failure cancels the other and is raised as itself."""
    try:
        async with asyncio.TaskGroup() as tg:
            ta, tb = tg.create_task(a), tg.create_task(b)
    except BaseExceptionGroup as group:
        raise group.exceptions[0] from None
    return ta.result(), tb.result()


async def run_prepass(clients: ServiceClients, inp: FlowInput, synonyms: SynonymCache | None = None) -> pb.PrepassResult:
    cfg = inp.ctx.config
    reports = StageReports()
    notes: list[pb.PrepassWarning] = list(inp.plan.warnings)
    # Not `synonyms or ...`: an empty cache is falsy (it has a length), and the shared one must fill up.
    synonyms = synonyms if synonyms is not None else SynonymCache()
    terms = inp.ctx.terms

    async def text_branch() -> tuple[list, dict]:
        expansions = await tracing.traced("prepass.synonyms", _synonyms(
            clients, inp, reports, notes, synonyms, terms)) if cfg.enable_sam3_text else {}
        prompt_map = prompts.build_prompts(inp.ctx.labelmap, terms, expansions, cfg.sam3_text_synonym_budget)
        return await tracing.traced("prepass.sam3_text", _sam3_text(clients, inp, reports, notes, prompt_map)), \
            prompt_map

    det_raw, (text_raw, prompt_map) = await _both(
        tracing.traced("prepass.detectors", _detectors(clients, inp, reports, notes)), text_branch())
    if not cfg.enable_sam3_text:
        reports.skip("synonyms", "SAM3 text disabled")

    log = AtomLog()
    part_a = [log.add(stage, kind, det, origins) for det, stage, kind, origins in det_raw + text_raw]
    merge_kw: dict[str, Any] = dict(iou=cfg.dedupe_iou, fusion=cfg.fusion_mode, cross_class=cfg.cross_class_dedupe,
                    cross_class_iou=cfg.cross_class_dedupe_iou)
    started = time.perf_counter()
    with tracing.span("prepass.dedupe", batch_size=len(part_a)):
        good, bad = usable(part_a, inp.ctx.labelmap)
        notes.extend(bad)
        clusters = dedupe([singleton(a) for a in good], **merge_kw)
        reports.record("dedupe", CallStats(), detections=len(clusters), ms=(time.perf_counter() - started) * 1000)

    sim_raw = await tracing.traced("prepass.sam3_similarity", _similarity(clients, inp, reports, notes, clusters))
    sim_atoms = [log.add(stage, kind, det, origins) for det, stage, kind, origins in sim_raw]
    final = clusters
    if sim_atoms:
        started = time.perf_counter()
        good, bad = usable(sim_atoms, inp.ctx.labelmap, pb.PREPASS_STAGE_DEDUPE2)
        notes.extend(bad)
        final = dedupe(clusters + [singleton(a) for a in good], **merge_kw)
        reports.record("dedupe2", CallStats(), detections=len(final), ms=(time.perf_counter() - started) * 1000)
    else:
        reports.skip("dedupe2", "no similarity detections to merge")

    result = pb.PrepassResult(
        image_sha256=inp.image.sha256, image_name=inp.image.name, width=inp.image.width, height=inp.image.height,
        candidates=[to_candidate(i, c) for i, c in enumerate(final)], atoms=log.atoms, config_hash=inp.ctx.config_hash,
        model_versions=inp.plan.versions, glossary_hash=inp.ctx.glossary_hash, labelmap_hash=inp.ctx.labelmap_hash,
        pipeline_version=PIPELINE_VERSION)
    for label, items in prompt_map.items():
        if cfg.enable_sam3_text and items:
            result.prompts[label].prompts.extend(pb.PromptOrigin(kind=o, text=t) for t, o in items)
    await _both(tracing.traced("prepass.classifier", _classify(clients, inp, reports, result)),
                tracing.traced("prepass.caption", _caption(clients, inp, reports, notes, result)))
    result.stages.extend(stage_report_pb(row) for row in reports.in_order())
    result.warnings.extend(notes)
    result.run_id = stable_hash({"image": inp.image.sha256, "dataset": inp.ctx.dataset.id,
                                 "config": inp.ctx.config.canonical(), "tiles": reports.tiles,
                                 "models": inp.plan.versions, "glossary": inp.ctx.glossary_hash,
                                 "labelmap": inp.ctx.labelmap_hash, "pipeline": PIPELINE_VERSION})
    return result
