"""gRPC transport of the Qwen service: proto in, plain functions, proto out."""

from __future__ import annotations

import dataclasses
import logging
import time

import torch

from svc_qwen import convert
from svc_qwen.backends.qwen_vl import QwenVL
from svc_qwen.captions import FULL, CaptionJob, run_caption
from svc_qwen.models import FAMILY, GENERATED_TOKENS, VISION_REGIONS, make_repository
from svc_qwen.prompts import Vocabulary
from svc_qwen.settings import QwenSettings
from svc_qwen.synonyms import ResultCache, SynonymJob, SynonymResult, expand
from tator_core.convert import Note, StageTime, timing_pb
from tator_core.gen.tator.qwen.v1 import qwen_pb2, qwen_pb2_grpc
from tator_core.hashing import stable_hash
from tator_core.images import ImageStore
from tator_core.labels import glossary_hash
from tator_core.lifecycle import ModelRepository
from tator_core.registry import Registry
from tator_core.server import ServiceSpec
from tator_core.settings import resolve_device

log = logging.getLogger("svc_qwen.server")
DEFAULT_CAP = 10


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000


class QwenServicer(qwen_pb2_grpc.QwenServiceServicer):
    def __init__(self, settings: QwenSettings, models: ModelRepository[QwenVL], store: ImageStore) -> None:
        self.settings, self.models, self.store = settings, models, store
        self.synonym_cache = ResultCache(settings.synonyms_cache_items)

    async def _model(self, model_id: str) -> tuple[str, QwenVL]:
        """The named model (or the default), loaded."""
        mid = self.models.resolve(model_id, FAMILY)
        return mid, await self.models.acquire(mid)

    async def Caption(self, request: qwen_pb2.CaptionRequest, context) -> qwen_pb2.CaptionResponse:
        t0 = time.perf_counter()
        avoid = convert.check_labels(request.avoid_labels, "avoid_labels")
        hints = convert.hints_from(request.hints)
        vocab = Vocabulary.build(avoid, convert.glossary_terms(
            request.glossary, list(dict.fromkeys([*avoid, *(h.label for h in hints)]))))
        gen = convert.gen_settings(request.generation, self.settings.caption_max_new_tokens)
        image = await self.store.aresolve(request.image)
        decode = StageTime("decode", _ms(t0), batch_size=1)
        job = CaptionJob(image, convert.mode_of(request.mode), vocab, gen, hints=hints,
                         window_batch=self.settings.window_batch)
        if job.mode == FULL and request.HasField("windows"):
            job.warnings.append(Note("windows_ignored_in_full_mode", "windows", "mode FULL captions the whole image"))
        elif job.mode != FULL:
            job.windows, job.include_full = convert.windows_from(request.windows, image.width, image.height,
                                                                 self.settings.max_windows)
        mid, backend = await self._model(request.model_id)
        result, stats = await self.models.run(run_caption, backend, job, model_id=mid)
        VISION_REGIONS.labels(mid, "computed").inc(result.encoded_regions)
        VISION_REGIONS.labels(mid, "cached").inc(result.cached_regions)
        GENERATED_TOKENS.labels(mid, "Caption").inc(result.generated_tokens)
        return convert.caption_response(result, timing_pb([decode, *result.stages], _ms(t0), stats.queue_ms))

    async def ExpandSynonyms(self, request: qwen_pb2.ExpandSynonymsRequest, context) -> qwen_pb2.ExpandSynonymsResponse:
        t0 = time.perf_counter()
        labels = convert.check_labels(request.labels, "labels", unique=True)
        cap = request.max_terms_per_class if request.HasField("max_terms_per_class") else DEFAULT_CAP
        job = SynonymJob(labels, convert.glossary_terms(request.glossary, labels), cap, self.settings.synonyms_max_labels)
        result, stages, queue_ms = await self._expand(job, request)
        return convert.synonyms_response(result, timing_pb(stages, _ms(t0), queue_ms))

    async def _expand(self, job: SynonymJob, request: qwen_pb2.ExpandSynonymsRequest
                      ) -> tuple[SynonymResult, list[StageTime], float]:
        """Glossary-only answers need no model; model answers come from the LRU when
        (labels, glossary, cap, generation settings, model version) were seen before."""
        asked = job.to_ask()
        if not asked:
            if request.model_id:
                self.models.entry(request.model_id)  # an unknown id is NOT_FOUND even when no call is needed
            return expand(job, None), [], 0.0
        t0 = time.perf_counter()
        gen = convert.gen_settings(request.generation, min(4096, max(
            self.settings.synonyms_max_new_tokens, self.settings.synonyms_tokens_per_label * len(asked) + 16)))
        mid, backend = await self._model(request.model_id)
        key = stable_hash({"labels": job.labels, "glossary": glossary_hash(request.glossary), "cap": job.cap,
                           "gen": dataclasses.asdict(gen), "model": mid, "version": self.models.entry(mid).version()})
        cached = self.synonym_cache.get(key)
        if cached is not None:
            return cached, [StageTime("cache", _ms(t0), batch_size=1)], 0.0

        def generate(prompt: str) -> tuple[str, int]:
            out = backend.generate([(prompt, None)], gen)[0]
            return out.text, out.tokens

        result, stats = await self.models.run(expand, job, generate, model_id=mid)
        GENERATED_TOKENS.labels(mid, "ExpandSynonyms").inc(result.generated_tokens)
        self.synonym_cache.put(key, result)
        return result, [StageTime("generate", stats.compute_ms, batch_size=1)], stats.queue_ms


def build_spec(settings: QwenSettings) -> ServiceSpec:
    device = resolve_device(settings.device)
    threads_before = torch.get_num_threads()
    if device == "cpu" and settings.cpu_threads > 0:
        # Small decode steps lose more to thread hand-offs than they gain on a
        # shared CPU: 64 tiny-model tokens took 7 s on 2 busy cores, 0.3 s on 1.
        torch.set_num_threads(settings.cpu_threads)
    registry = Registry.load(settings.registry, families={"qwen"})
    models = make_repository(registry, device, feature_cache_items=settings.feature_cache_items,
                             warmup_tokens=settings.warmup_tokens)
    store = ImageStore.from_settings("qwen", settings)
    servicer = QwenServicer(settings, models, store)

    async def warmup() -> None:
        """Load (and so warm up) the default model; a missing one is logged, not fatal."""
        if models.default_id(FAMILY) is None:
            log.warning("no qwen model in the registry; Caption and ExpandSynonyms will answer MODEL_MISSING")
            return
        await models.warm_defaults()

    async def shutdown() -> None:
        await models.close()
        torch.set_num_threads(threads_before)  # a process-wide setting: leave it as found (tests share a process)

    return ServiceSpec(
        name="qwen", full_name="tator.qwen.v1.QwenService",
        add_to_server=lambda server: qwen_pb2_grpc.add_QwenServiceServicer_to_server(servicer, server),
        warmup=warmup, shutdown=shutdown, models=models)
