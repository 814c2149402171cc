"""One prepass end to end: inputs resolved, model plan, cache lookup, run, store.

Used by the Prepass RPC, by prepass jobs (one context per job, one `run` per image) and by the
calibration environment, so all three share one cache and one definition of a cache key.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from svc_orchestrator.clients import ServiceClients
from svc_orchestrator.datasets import DatasetCatalog, ImageItem
from svc_orchestrator.prepass import prompts
from svc_orchestrator.prepass.cache import CacheMeta, PrepassCache
from svc_orchestrator.prepass.config import ServiceCaps, config_from_doc, merge, resolve
from svc_orchestrator.prepass.context import PrepassContext
from svc_orchestrator.prepass.flow import FlowInput, ImageInput, SynonymCache, run_prepass
from svc_orchestrator.prepass.plan import ModelPlan, needed_services, resolve_plan
from svc_orchestrator.prepass.replay import replay_record, sent_request
from tator_core import errors, tracing
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
from tator_core.images import decode_image, sha256_hex
from tator_core.labels import glossary_hash
from tator_core.timestamps import duration_ms

if TYPE_CHECKING:  # recipes imports the prepass config, which this package holds
    from svc_orchestrator.recipes import Recipe


def _as_hit(stored: pb.PrepassResult, name: str, ms: float) -> pb.PrepassResult:
    """A stored result as the answer of a cache hit: `stages` report what this answer cost (the model plan and
    the store lookup, no model-service work), the computing run's stages move to `original_cost`."""
    stored.cache_hit = True
    stored.image_name = name
    stored.original_cost.stages.extend(stored.stages)
    del stored.stages[:]
    stored.stages.add(stage=pb.PREPASS_STAGE_CACHE, ran=True, duration=duration_ms(ms), cache_hits=1,
                      note="answered from the prepass cache")
    return stored


class PrepassRunner:
    def __init__(self, clients: ServiceClients, cache: PrepassCache, datasets: DatasetCatalog, *,
                 glossary_lookup: Callable[[str], str], recipe_lookup: Callable[[str], Recipe],
                 max_image_pixels: int = 50_000_000, caps: ServiceCaps | None = None) -> None:
        self.clients = clients
        self.cache = cache
        self.datasets = datasets
        self.glossary_lookup = glossary_lookup
        self.recipe_lookup = recipe_lookup
        self.max_image_pixels = max_image_pixels
        self.caps = caps or ServiceCaps()
        self.synonyms = SynonymCache()

    def context(self, dataset_id: str, config: pb.PrepassConfig | None = None, *, glossary_name: str = "",
                recipe_id: str = "") -> PrepassContext:
        dataset = self.datasets.get(dataset_id)
        cfg_pb = config if config is not None else pb.PrepassConfig()
        glossary_text = dataset.glossary_text
        if recipe_id:
            recipe = self.recipe_lookup(recipe_id)
            cfg_pb = merge(config_from_doc(recipe.config), cfg_pb)
            if recipe.glossary:
                glossary_text = recipe.glossary
        if glossary_name:
            glossary_text = self.glossary_lookup(glossary_name)
        resolved = resolve(cfg_pb, caps=self.caps)
        request = pb.PrepassRequest(dataset_id=dataset_id, glossary_name=glossary_name, recipe_id=recipe_id)
        if config is not None:
            request.config.CopyFrom(config)
        return PrepassContext(dataset, list(dataset.labelmap), glossary_text, glossary_hash(glossary_text), cfg_pb,
                              resolved, resolved.config_hash(), prompts.glossary_terms(glossary_text, dataset.labelmap),
                              request)

    async def plan(self, ctx: PrepassContext) -> tuple[ModelPlan, CacheMeta]:
        states = await self.clients.states(needed_services(ctx.config, ctx.wants_expansion))
        plan = resolve_plan(ctx.config, states, wants_expansion=ctx.wants_expansion)
        meta = CacheMeta(ctx.glossary_text, ctx.glossary_hash, tuple(ctx.labelmap), ctx.labelmap_hash,
                         ctx.config.canonical(), ctx.config_hash, dict(plan.versions))
        return plan, meta

    async def run(self, ctx: PrepassContext, *, data: bytes | None, sha256: str = "", name: str = "",
                  refresh: bool = False, request: pb.PrepassRequest | None = None) -> pb.PrepassResult:
        """One `prepass` span per image, holding the stage spans and the model calls. `request` is what the
        caller sent, kept in the run's replay record (default: the context's request naming `name`)."""
        with tracing.span("prepass", dataset=ctx.dataset.id, image_bytes=len(data or b"")) as span:
            result = await self._run(ctx, data=data, sha256=sha256, name=name, refresh=refresh, request=request)
            span.set_attribute("tator.cache_hit", result.cache_hit)
            return result

    async def _run(self, ctx: PrepassContext, *, data: bytes | None, sha256: str = "", name: str = "",
                   refresh: bool = False, request: pb.PrepassRequest | None = None) -> pb.PrepassResult:
        """Cache hit, or run and store. Without bytes only a hit can answer (else IMAGE_NOT_CACHED)."""
        started = time.perf_counter()
        sha = sha256_hex(data) if data is not None else sha256
        if data is not None and sha256 and sha256 != sha:
            raise errors.invalid_argument("image.sha256", f"bytes hash to {sha}, not {sha256}", "IMAGE_SHA_MISMATCH")
        plan, meta = await self.plan(ctx)
        key = meta.key(sha)
        if not refresh:
            hit = await self.cache.aget(key)
            if hit is not None:
                return _as_hit(hit, name, (time.perf_counter() - started) * 1000)
        if data is None:
            raise errors.failed_precondition("IMAGE_NOT_CACHED", f"no cached prepass for image {sha}; "
                                             "resend it with bytes", sha256=sha)
        img = await asyncio.to_thread(decode_image, data, max_pixels=self.max_image_pixels, sha256=sha)
        flow_input = FlowInput(ImageInput(sha, data, name, img.width, img.height), ctx, plan)
        result = await run_prepass(self.clients, flow_input, self.synonyms)
        result.cache_key = key
        record = replay_record(result, request or sent_request(ctx, name=name, sha256=sha), meta, ctx.dataset.id)
        await self.cache.aput(key, meta, result, ctx.dataset.id, record)
        return result

    async def recompute(self, ctx: PrepassContext, plan: ModelPlan, meta: CacheMeta, *, data: bytes, sha256: str,
                        name: str) -> pb.PrepassResult:
        """The prepass run again from scratch for Replay: no cache lookup, nothing written (neither the
        cache nor a replay record), and a synonym cache of its own so Qwen is asked again too."""
        img = await asyncio.to_thread(decode_image, data, max_pixels=self.max_image_pixels, sha256=sha256)
        result = await run_prepass(self.clients, FlowInput(ImageInput(sha256, data, name, img.width, img.height),
                                                           ctx, plan), SynonymCache())
        result.cache_key = meta.key(sha256)
        return result

    async def run_item(self, ctx: PrepassContext, item: ImageItem, *, refresh: bool = False) -> pb.PrepassResult:
        data = await asyncio.to_thread(item.path.read_bytes)
        return await self.run(ctx, data=data, name=item.name, refresh=refresh)
