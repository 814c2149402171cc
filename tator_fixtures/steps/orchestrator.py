"""Tier 1 steps of the orchestrator: the prepass lanes on a fuzz-pack image, cache reuse, and the
glossary recorded in the cache meta.

The steps prepass through `ctx.addresses["orchestrator"]` against the dataset `fuzz_pack`, which
they install (images, labels, labelmap, glossary; atomically, once) under `ctx.data_root`, the
orchestrator's data root on the local stack. Each step picks its image with `ctx.rng`.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from tator_core.enums import short_name, source_name
from tator_fixtures.regress import StepContext, step

DATASET = "fuzz_pack"
DEADLINE_S = 180.0
#: Lanes: which stages each step switches on. SAM3 similarity needs Part-A clusters for its
#: exemplars, so its lane keeps the detectors and turns SAM3 text off.
LANES: dict[str, dict[str, Any]] = {
    "detectors_only": dict(enable_sam3_text=False, enable_sam3_similarity=False),
    "sam3_text_only": dict(enable_yolo=False, enable_rfdetr=False, enable_sam3_similarity=False),
    "sam3_similarity_only": dict(enable_sam3_text=False, similarity_min_exemplar_score=0.0),
    "windowed_on": dict(sam3_text_window_extension=True, similarity_window_extension=True),
    "windowed_off": dict(sam3_text_window_extension=False, similarity_window_extension=False),
}


def install_fuzz_pack(pack: Path, dest: Path) -> None:
    """Copy the fuzz pack's images, labels, labelmap and glossary as a flat YOLO dataset."""
    if (dest / "labelmap.txt").is_file():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(pack / "images", tmp / "images")
    shutil.copytree(pack / "labels", tmp / "labels")
    for name in ("labelmap.txt", "glossary.json"):
        shutil.copy2(pack / name, tmp / name)
    os.replace(tmp, dest)


async def _prepass(ctx: StepContext, image: Path, refresh: bool = False, **config: Any) -> Any:
    from tator_core.client import ServiceClient, image_ref
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc

    install_fuzz_pack(ctx.fuzz_pack.dir, ctx.data_root / DATASET)
    client = ServiceClient(ctx.addresses["orchestrator"], pb_grpc.OrchestratorServiceStub, timeout_s=ctx.deadline_s)
    try:
        req = pb.PrepassRequest(image=image_ref(image.read_bytes()), dataset_id=DATASET,
                                config=pb.PrepassConfig(enable_caption=False, **config), refresh=refresh)
        return (await client.call("Prepass", req)).result
    finally:
        await client.close()


def _stage(value: int) -> str:
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

    return short_name(pb.PrepassStage, value)


def _run_stages(result: Any) -> list:
    """The stages of the run that computed the result: a cache hit's own stages are the lookup only."""
    return list(result.original_cost.stages if result.cache_hit else result.stages)


def _summary(result: Any) -> dict:
    """Counts of one result in the harness's result fields."""
    for c in result.candidates:
        if [s.source for s in c.source_scores] != list(c.sources) or not c.atom_ids:
            raise AssertionError(f"candidate {c.index}: provenance incomplete")
    ran = [_stage(s.stage) for s in _run_stages(result) if s.ran]
    return {"detections": len(result.candidates), "classes": dict(Counter(c.label for c in result.candidates)),
            "sources": dict(Counter(source_name(s) for c in result.candidates for s in c.sources)),
            "config_hash": result.config_hash,
            "hashes": {"glossary": result.glossary_hash, "labelmap": result.labelmap_hash},
            "extra": {"stages_ran": ran, "atoms": len(result.atoms)}}


def _register_lane(lane: str, config: dict[str, Any], heavy: bool, must_run: tuple[str, ...],
                   must_skip: tuple[str, ...]) -> None:
    @step(f"orchestrator.prepass.{lane}", tier=1, service="orchestrator", heavy=heavy, deadline_s=DEADLINE_S,
          tolerances={"detections": 2, "classes": 2, "sources": 2})
    async def lane_step(ctx: StepContext) -> dict:
        result = await _prepass(ctx, ctx.rng.choice(ctx.fuzz_pack.images), **config)
        stages = {_stage(s.stage): s for s in _run_stages(result)}
        for name in must_run:
            if not stages[name].ran:
                raise AssertionError(f"stage {name} did not run: {stages[name].note}")
        for name in must_skip:
            if stages[name].ran:
                raise AssertionError(f"stage {name} ran although this lane disables it")
        if lane.startswith("windowed"):
            from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

            windowed = any(a.pass_kind == pb.ATOM_PASS_WINDOWED for a in result.atoms)
            if lane == "windowed_off" and windowed:
                raise AssertionError("windowed atoms with the window extensions off")
        return _summary(result)


_register_lane("detectors_only", LANES["detectors_only"], False, ("detectors", "dedupe"),
               ("sam3_text", "sam3_similarity"))
_register_lane("sam3_text_only", LANES["sam3_text_only"], True, ("sam3_text",), ("detectors", "sam3_similarity"))
_register_lane("sam3_similarity_only", LANES["sam3_similarity_only"], True, ("sam3_similarity",), ("sam3_text",))
_register_lane("windowed_on", LANES["windowed_on"], True, ("sam3_text",), ())
_register_lane("windowed_off", LANES["windowed_off"], True, ("sam3_text",), ())


@step("orchestrator.prepass.cache_reuse", tier=1, service="orchestrator", deadline_s=DEADLINE_S)
async def cache_reuse(ctx: StepContext) -> dict:
    """A second identical prepass is a cache hit with the same candidates and no stage re-run."""
    image = ctx.rng.choice(ctx.fuzz_pack.images)
    first = await _prepass(ctx, image, **LANES["detectors_only"])
    second = await _prepass(ctx, image, **LANES["detectors_only"])
    if not second.cache_hit or second.cache_key != first.cache_key:
        raise AssertionError("the second identical prepass was not a cache hit")
    if list(second.candidates) != list(first.candidates) or list(second.atoms) != list(first.atoms):
        raise AssertionError("the cache hit differs from the result it stored")
    out = _summary(second)
    out["cache"] = {"hits": int(second.cache_hit)}
    return out


@step("orchestrator.prepass.cache_meta_glossary", tier=1, service="orchestrator", deadline_s=DEADLINE_S)
async def cache_meta_glossary(ctx: StepContext) -> dict:
    """The cache meta of an entry holds the glossary text and its hash (read from the state dir of the
    local stack, `<data_root>/../state`)."""
    from svc_orchestrator import read_cache_meta
    from tator_core.labels import glossary_hash

    result = await _prepass(ctx, ctx.rng.choice(ctx.fuzz_pack.images), **LANES["detectors_only"])
    try:
        meta = read_cache_meta(ctx.data_root.parent / "state", result.cache_key)
    except FileNotFoundError as exc:
        raise AssertionError(str(exc)) from None
    if meta is None:
        raise AssertionError(f"cache entry {result.cache_key[:12]} has no meta record")
    if meta["glossary_hash"] != result.glossary_hash or glossary_hash(meta["glossary_text"]) != meta["glossary_hash"]:
        raise AssertionError("cache meta glossary hash does not match its text or the result")
    if not all(term in meta["glossary_text"] for term in ("disc", "box", "wedge")):
        raise AssertionError("cache meta glossary text is not the fuzz pack's glossary")
    return {"hashes": {"glossary": meta["glossary_hash"], "labelmap": meta["labelmap_hash"]},
            "config_hash": meta["config_hash"],
            "extra": {"labelmap": meta["labelmap"], "models": sorted(meta["versions"])}}
