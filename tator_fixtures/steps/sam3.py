"""Tier 1 SAM3 steps: text only, similarity only, windowed text + similarity, and the same with windows off.

Prompts are the fuzz pack's labels plus glossary synonyms drawn from the step's rng; exemplars are the
pack's ground-truth boxes of the drawn image. Besides counts, each step checks the contract: boxes
inside the image and their window, scores within [threshold, 1], labels and prompts from the request,
one prompt run per prompt and context, and the image-first cache order (the second call on an image
computes no vision embedding). Cache counters are reported in a history-free form (embeddings used,
second-call computations), so a warm stack and a fresh one give the same summary.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from tator_core.enums import source_name
from tator_fixtures.regress import StepContext, step
from tator_fixtures.regress.registry import StepImage

TEXT_SCORE = 0.2
#: The tiny random model scores about 0.25; 0.2 keeps its similarity detections visible.
SIMILARITY_SCORE = 0.2


class _Sam3(StepImage):
    """One drawn image and a client for the steps of one run."""

    def __init__(self, ctx: StepContext) -> None:
        from tator_core.gen.tator.sam3.v1 import sam3_pb2_grpc

        super().__init__(ctx, "sam3", sam3_pb2_grpc.Sam3ServiceStub)

    def windows(self):
        from tator_core.gen.tator.common.v1 import common_pb2

        return common_pb2.WindowSpec(grid=common_pb2.GridSpec(
            cols=2, rows=2, overlap=round(self.ctx.rng.uniform(0.1, 0.3), 2)), include_full=True)

    def prompts(self) -> dict[str, list[str]]:
        pack = self.ctx.fuzz_pack
        return {label: [label, *self.ctx.rng.sample(pack.glossary.get(label, []),
                                                    min(2, len(pack.glossary.get(label, []))))]
                for label in pack.labelmap}

    def exemplars(self) -> dict[str, list[tuple[float, float, float, float]]]:
        """Ground-truth boxes of the drawn image (YOLO txt), at most two per label."""
        out: dict[str, list[tuple[float, float, float, float]]] = {}
        for label, box in self.ctx.fuzz_pack.ground_truth(self.path, self.width, self.height):
            if len(out.setdefault(label, [])) < 2:
                out[label].append(box)
        if not out:
            raise AssertionError(f"{self.ctx.fuzz_pack.label_path(self.path)} holds no box to use as an exemplar")
        return out

    async def text(self, windows) -> Any:
        from tator_core.client import image_ref
        from tator_core.gen.tator.sam3.v1 import sam3_pb2 as pb

        prompts = self.prompts()
        req = pb.SegmentTextRequest(image=image_ref(self.data, with_bytes=False), windows=windows,
                                    labels=[pb.LabelPrompts(label=k, prompts=v) for k, v in prompts.items()])
        resp = await self.client.call("SegmentText", req, image_data=self.data)
        self.check(resp, TEXT_SCORE, "sam3_text", windows)
        for d in resp.detections:
            texts = [p.text for p in d.prompts if p.WhichOneof("kind") == "text"]
            if not texts or len(texts) != len(d.prompts) or any(t not in prompts[d.label] for t in texts) \
                    or len(set(texts)) != len(texts):
                raise AssertionError(f"prompts {texts!r} were not asked for label {d.label!r} (or repeat or not text)")
        n = sum(len(v) for v in prompts.values())
        if resp.stats.prompt_runs != n * resp.stats.contexts:
            raise AssertionError(f"{resp.stats.prompt_runs} prompt runs for {n} prompts x {resp.stats.contexts} contexts")
        return resp

    async def similarity(self, windows) -> Any:
        from tator_core.client import image_ref
        from tator_core.convert import boxes_pb
        from tator_core.gen.tator.sam3.v1 import sam3_pb2 as pb

        sets = [pb.ExemplarSet(label=label, positives=boxes_pb(boxes))
                for label, boxes in self.exemplars().items()]
        req = pb.SegmentExemplarsRequest(image=image_ref(self.data, with_bytes=False), exemplars=sets,
                                         windows=windows, score_threshold=SIMILARITY_SCORE)
        resp = await self.client.call("SegmentExemplars", req, image_data=self.data)
        self.check(resp, SIMILARITY_SCORE, "sam3_similarity", windows)
        sent = {s.label: len(s.positives) for s in sets}
        for d in resp.detections:
            used = [p.exemplar for p in d.prompts if p.WhichOneof("kind") == "exemplar"]
            if not used or len(used) != len(d.prompts) or any(
                    e.label != d.label or not e.positive_indexes or len(e.positives) != len(e.positive_indexes)
                    or not all(0 <= i < sent[d.label] for i in e.positive_indexes) for e in used):
                raise AssertionError(f"similarity detection {d.label!r} lacks its exemplars (label, indexes, boxes)")
        return resp

    def check(self, resp, threshold: float, source: str, windows) -> None:
        expected_contexts = 1 if windows is None else 5
        if resp.stats.contexts > expected_contexts or resp.stats.contexts < 1:
            raise AssertionError(f"{resp.stats.contexts} contexts ran, expected at most {expected_contexts}")
        s = resp.stats
        if s.vision_embeddings_computed + s.vision_embeddings_cached != s.contexts:
            raise AssertionError(f"vision embeddings {s.vision_embeddings_computed}+{s.vision_embeddings_cached} "
                                 f"!= {s.contexts} contexts")
        labels = set(self.ctx.fuzz_pack.labelmap)
        for d in resp.detections:
            b, w = d.box, d.window.box
            if d.label not in labels or source_name(d.source) != source or not threshold <= d.score <= 1:
                raise AssertionError(f"bad detection {d.label}/{source_name(d.source)}/{d.score}")
            if not (0 <= b.x1 < b.x2 <= self.width and 0 <= b.y1 < b.y2 <= self.height):
                raise AssertionError(f"box {b} outside the {self.width}x{self.height} image")
            if not (w.x1 <= b.x1 and b.x2 <= w.x2 and w.y1 <= b.y1 and b.y2 <= w.y2):
                raise AssertionError(f"box {b} outside its window {d.window.name}")

    async def close(self) -> None:
        await self.client.close()


def _summary(responses: list[Any], image: str) -> dict[str, Any]:
    dets = [d for r in responses for d in r.detections]
    return {
        "detections": len(dets),
        "classes": dict(Counter(d.label for d in dets)),
        "sources": dict(Counter(source_name(d.source) for d in dets)),
        "cache": {"contexts": sum(r.stats.contexts for r in responses),
                  "prompt_runs": sum(r.stats.prompt_runs for r in responses),
                  "vision_embeddings_used": sum(r.stats.vision_embeddings_computed + r.stats.vision_embeddings_cached
                                                for r in responses)},
        "extra": {"image": image, "windows": sorted({d.window.name for d in dets}),
                  "warnings": sorted({w.code for r in responses for w in r.warnings})},
    }


async def _text_and_similarity(ctx: StepContext, *, windowed: bool) -> dict[str, Any]:
    sam = _Sam3(ctx)
    try:
        windows = sam.windows() if windowed else None
        text = await sam.text(windows)
        sim = await sam.similarity(windows)
        # image-first order: the second call on the same image and windows computes no vision embedding
        if sim.stats.vision_embeddings_computed != 0:
            raise AssertionError(f"similarity recomputed {sim.stats.vision_embeddings_computed} vision embeddings "
                                 "that the text call had cached")
        if windowed and text.stats.contexts != 5:
            raise AssertionError(f"windowed text ran {text.stats.contexts} contexts, not full + 2x2")
    finally:
        await sam.close()
    out = _summary([text, sim], sam.path.name)
    out["cache"]["second_call_vision_computed"] = sim.stats.vision_embeddings_computed
    return out


async def _one_call(ctx: StepContext, kind: str) -> dict[str, Any]:
    sam = _Sam3(ctx)
    try:
        resp = await (sam.text(None) if kind == "text" else sam.similarity(None))
    finally:
        await sam.close()
    return _summary([resp], sam.path.name)


@step("sam3.text", tier=1, service="sam3", heavy=True, deadline_s=120, tolerances={"detections": 2})
async def text_only(ctx: StepContext) -> dict:
    return await _one_call(ctx, "text")


@step("sam3.similarity", tier=1, service="sam3", heavy=True, deadline_s=120, tolerances={"detections": 2})
async def similarity_only(ctx: StepContext) -> dict:
    return await _one_call(ctx, "similarity")


@step("sam3.windowed", tier=1, service="sam3", heavy=True, deadline_s=240, tolerances={"detections": 4})
async def windowed(ctx: StepContext) -> dict:
    return await _text_and_similarity(ctx, windowed=True)


@step("sam3.windowed_off", tier=1, service="sam3", heavy=True, deadline_s=120, tolerances={"detections": 2})
async def windowed_off(ctx: StepContext) -> dict:
    return await _text_and_similarity(ctx, windowed=False)
