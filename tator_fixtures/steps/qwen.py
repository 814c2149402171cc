"""Tier 1 Qwen steps: caption full frame, caption windowed (2x2), synonym expansion.

Inputs are drawn from the step's rng: a fuzz-pack image, its ground-truth boxes as hints, a token
budget, a grid overlap, a glossary with one class removed (so the model is asked about it). The tiny
model writes random bytes, so the steps check the contract rather than words: a caption or a
degenerate reason (never both, never neither), token limits honoured, window geometry, no raw
labelmap tag in a returned caption, the same answer for the same request, the second call on an image
reusing its vision features (image-first), and a capped, cleaned, correctly-sourced synonym list.
"""

from __future__ import annotations

import json
from typing import Any

from tator_fixtures.regress import StepContext, step
from tator_fixtures.regress.registry import StepImage

RAW_TAG = "light_vehicle"


class _Qwen(StepImage):
    """One drawn image and a client for one step."""

    def __init__(self, ctx: StepContext) -> None:
        from tator_core.gen.tator.qwen.v1 import qwen_pb2_grpc

        super().__init__(ctx, "qwen", qwen_pb2_grpc.QwenServiceStub)
        self.max_new_tokens = ctx.rng.randint(12, 32)

    def hints(self) -> list[Any]:
        from tator_core.convert import box_pb
        from tator_core.gen.tator.qwen.v1 import qwen_pb2

        return [qwen_pb2.LabelHint(label=label, score=1.0, box=box_pb(box))
                for label, box in self.ctx.fuzz_pack.ground_truth(self.path, self.width, self.height)]

    async def caption(self, windows: Any = None) -> Any:
        from tator_core.client import image_ref
        from tator_core.gen.tator.common.v1 import common_pb2
        from tator_core.gen.tator.qwen.v1 import qwen_pb2

        req = qwen_pb2.CaptionRequest(
            image=image_ref(self.data, with_bytes=False), hints=self.hints(),
            mode=qwen_pb2.CAPTION_MODE_WINDOWED if windows is not None else qwen_pb2.CAPTION_MODE_FULL,
            avoid_labels=[*self.ctx.fuzz_pack.labelmap, RAW_TAG], glossary=self.ctx.fuzz_pack.glossary_text,
            generation=common_pb2.GenerationSettings(max_new_tokens=self.max_new_tokens))
        if windows is not None:
            req.windows.CopyFrom(windows)
        resp = await self.client.call("Caption", req, image_data=self.data)
        _check_text(resp.caption, resp.degenerate_reason, "caption")
        return resp

    async def close(self) -> None:
        await self.client.close()


def _check_text(caption: str, reason: str, where: str) -> None:
    if bool(caption) == bool(reason):
        raise AssertionError(f"{where}: caption {caption!r} and degenerate_reason {reason!r} (exactly one expected)")
    if RAW_TAG in caption:
        raise AssertionError(f"{where}: raw tag {RAW_TAG} returned in {caption!r}")


def _stage_batch(resp: Any, name: str) -> int:
    return sum(s.batch_size for s in resp.timing.stages if s.stage == name)


def _same(a: Any, b: Any, what: str) -> None:
    if (a.caption, a.degenerate_reason, a.generated_tokens) != (b.caption, b.degenerate_reason, b.generated_tokens):
        raise AssertionError(f"{what}: the same request gave a different answer")


@step("qwen.caption_full", tier=1, service="qwen", heavy=True, deadline_s=120)
async def caption_full(ctx: StepContext) -> dict:
    q = _Qwen(ctx)
    try:
        first = await q.caption()
        second = await q.caption()
    finally:
        await q.close()
    if first.generated_tokens > q.max_new_tokens or first.windows:
        raise AssertionError(f"{first.generated_tokens} tokens > {q.max_new_tokens} or windows in FULL mode")
    _same(first, second, "caption_full")
    if _stage_batch(second, "encode") != 0:
        raise AssertionError("the second caption of the same image ran the vision tower again")
    return {"cache": {"regions_encoded_second_call": _stage_batch(second, "encode"),
                      "regions_reused_second_call": _stage_batch(second, "feature_cache")},
            "extra": {"image": q.path.name, "degenerate_reason": first.degenerate_reason,
                      "has_caption": bool(first.caption)}}


@step("qwen.caption_windowed", tier=1, service="qwen", heavy=True, deadline_s=240)
async def caption_windowed(ctx: StepContext) -> dict:
    from tator_core.gen.tator.common.v1 import common_pb2

    q = _Qwen(ctx)
    spec = common_pb2.WindowSpec(grid=common_pb2.GridSpec(cols=2, rows=2, overlap=round(ctx.rng.uniform(0.1, 0.3), 2)))
    try:
        resp = await q.caption(spec)
    finally:
        await q.close()
    names = [w.window.name for w in resp.windows]
    if names != ["A1", "B1", "A2", "B2"]:
        raise AssertionError(f"windows {names}, expected the 2x2 grid A1 B1 A2 B2")
    for w in resp.windows:
        b = w.window.box
        if not (0 <= b.x1 < b.x2 <= q.width and 0 <= b.y1 < b.y2 <= q.height):
            raise AssertionError(f"window {w.window.name} box {b} outside the {q.width}x{q.height} image")
        if w.generated_tokens > q.max_new_tokens:
            raise AssertionError(f"window {w.window.name}: {w.generated_tokens} tokens > {q.max_new_tokens}")
        _check_text(w.caption, w.degenerate_reason, f"window {w.window.name}")
    window_tokens = sum(w.generated_tokens for w in resp.windows)
    if not window_tokens <= resp.generated_tokens <= window_tokens + q.max_new_tokens:
        raise AssertionError(f"total tokens {resp.generated_tokens} vs windows {window_tokens} + one merge pass")
    if _stage_batch(resp, "encode") + _stage_batch(resp, "feature_cache") != 4:
        raise AssertionError("each of the 4 windows needs exactly one vision encoding (or a cached one)")
    return {"cache": {"windows": len(resp.windows),
                      "merge_passes": sum(1 for s in resp.timing.stages if s.stage == "merge")},
            "extra": {"image": q.path.name, "degenerate_reason": resp.degenerate_reason,
                      "window_reasons": sorted({w.degenerate_reason for w in resp.windows})}}


@step("qwen.synonyms", tier=1, service="qwen", heavy=True, deadline_s=180)
async def synonyms(ctx: StepContext) -> dict:
    from tator_core.client import ServiceClient
    from tator_core.enums import short_name
    from tator_core.gen.tator.qwen.v1 import qwen_pb2, qwen_pb2_grpc
    from tator_core.labels import clean_term

    pack = ctx.fuzz_pack
    dropped = ctx.rng.choice(pack.labelmap)  # this class loses its glossary terms, so the model is asked
    glossary = {k: v for k, v in pack.glossary.items() if k != dropped}
    labels = [*pack.labelmap, RAW_TAG]
    cap = ctx.rng.randint(2, 4)
    req = qwen_pb2.ExpandSynonymsRequest(labels=labels, glossary=json.dumps(glossary), max_terms_per_class=cap)
    client = ServiceClient(ctx.addresses["qwen"], qwen_pb2_grpc.QwenServiceStub, timeout_s=ctx.deadline_s)
    try:
        resp = await client.call("ExpandSynonyms", req)
        again = await client.call("ExpandSynonyms", req)
    finally:
        await client.close()
    if [lt.label for lt in resp.labels] != labels:
        raise AssertionError(f"labels {[lt.label for lt in resp.labels]} not in request order {labels}")
    origins = {lt.label: short_name(qwen_pb2.TermsOrigin, lt.terms_origin) for lt in resp.labels}
    for lt in resp.labels:
        if len(lt.terms) > cap or len({t.lower() for t in lt.terms}) != len(lt.terms):
            raise AssertionError(f"{lt.label}: {list(lt.terms)} over the cap {cap} or duplicated")
        if any(clean_term(t) != t for t in lt.terms):
            raise AssertionError(f"{lt.label}: unclean term in {list(lt.terms)}")
        expected = "glossary" if glossary.get(lt.label) else None
        origin = origins[lt.label]
        if (origin == "glossary") != (expected == "glossary") or origin not in ("glossary", "model", "default"):
            raise AssertionError(f"{lt.label}: origin {origin!r}")
    if not resp.raw_output:
        raise AssertionError(f"{dropped} and {RAW_TAG} lack glossary terms, yet the model was not asked")
    if [s.stage for s in again.timing.stages] != ["cache"] or again.labels != resp.labels:
        raise AssertionError("the repeated request was not answered from the synonym cache")
    return {"classes": {lt.label: len(lt.terms) for lt in resp.labels},
            "extra": {"origins": origins, "cap": cap,
                      "dropped_by_cap": resp.dropped_by_cap}}
