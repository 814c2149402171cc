"""The orchestrator's state and its job bodies, behind the transport layer (server.py).

`Orchestrator` owns the typed clients, the dataset catalog, the glossary library, the recipe store,
the prepass cache and runner, and the job manager. Layout under the state dir:
`orchestrator.sqlite` (jobs, job events, prepass cache and replay records, glossaries and recipes;
PostgreSQL instead when `store_url` names one, shared by every replica) and `calibration/<job_id>/`.
The `glossaries/` and `recipes/` files and the `jobs.sqlite` / `prepass_cache.sqlite` of an older
layout are imported into the store at the first start.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from svc_orchestrator.browse import ImageBrowser
from svc_orchestrator.clients import RemoteCallError, ServiceClients
from svc_orchestrator.convert import list_models
from svc_orchestrator.convert.jobs import result_column
from svc_orchestrator.datasets import Dataset, DatasetCatalog, ImageItem
from svc_orchestrator.job_types import Job, JobKind, JobState
from svc_orchestrator.jobs import JobHandle, JobManager
from svc_orchestrator.legacy import import_legacy
from svc_orchestrator.prepass.cache import PrepassCache
from svc_orchestrator.prepass.config import ServiceCaps
from svc_orchestrator.prepass.context import PrepassContext
from svc_orchestrator.prepass.plan import remote_stage_failed
from svc_orchestrator.prepass.replay import replay
from svc_orchestrator.prepass.runner import PrepassRunner
from svc_orchestrator.prepass.sharding import merge_summaries, split_units
from svc_orchestrator.settings import OrchestratorSettings
from svc_orchestrator.shared_docs import StoreGlossaries, StoreRecipes, import_files
from svc_orchestrator.store import JobRecord, WorkUnit, open_store
from svc_orchestrator.workers import UnitProgress, UnitWorkers
from tator_core import errors
from tator_core.convert import box_xyxy
from tator_core.enums import source_name
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
from tator_core.images import sha256_hex

if TYPE_CHECKING:
    from svc_orchestrator.calibration.inputs import ImagePrepass, PrepassChoice, ServiceModels

EMBED_BOXES_PER_CALL = 4096


def calibration_module() -> Any:
    """The calibration package (svc_orchestrator/calibration), imported on first use: it pulls in
    xgboost and scikit-learn, which a prepass-only orchestrator never needs to load."""
    try:
        from svc_orchestrator import calibration
    except ImportError as exc:
        raise errors.failed_precondition("MODEL_REQUIRED", f"calibration is not available: {exc}") from exc
    return calibration


def calibration_convert() -> Any:
    """The calibration's message conversions (inputs, report), imported on first use like the package."""
    calibration_module()
    from svc_orchestrator.convert import calibration, calibration_report

    return SimpleNamespace(inputs=calibration, report=calibration_report)


class JobSummary:
    """What a prepass job reports when it ends: counts per source, class and stage."""

    def __init__(self, ctx: PrepassContext, split: str) -> None:
        self.ctx, self.split = ctx, split
        self.images = self.hits = self.candidates = self.atoms = 0
        self.sources: Counter[str] = Counter()
        self.primary: Counter[str] = Counter()
        self.atom_sources: Counter[str] = Counter()
        self.classes: Counter[str] = Counter()
        self.stage_ns: dict[int, int] = defaultdict(int)
        self.stage_bytes: Counter[int] = Counter()
        self.stage_sent: Counter[int] = Counter()
        self.stage_received: Counter[int] = Counter()
        self.warnings = 0

    def add(self, result: pb.PrepassResult) -> None:
        self.images += 1
        self.hits += int(result.cache_hit)
        self.candidates += len(result.candidates)
        self.atoms += len(result.atoms)
        self.warnings += len(result.warnings)
        for c in result.candidates:
            self.sources.update(source_name(s) for s in c.sources)
            self.primary[source_name(c.source_primary)] += 1
            self.classes[c.label] += 1
        self.atom_sources.update(source_name(a.detection.source) for a in result.atoms)
        for s in result.stages:  # a cache hit's own cost, not the original run's
            self.stage_ns[s.stage] += s.duration.ToNanoseconds()
            self.stage_bytes[s.stage] += s.image_bytes_sent
            self.stage_sent[s.stage] += s.bytes_sent
            self.stage_received[s.stage] += s.bytes_received

    def to_proto(self) -> pb.JobResult:
        def counts(c: Counter[str]) -> list[pb.Count]:
            return [pb.Count(key=k, count=n) for k, n in sorted(c.items())]

        out = pb.PrepassJobSummary(
            split=self.split, images=self.images, cache_hits=self.hits, candidates=self.candidates, atoms=self.atoms,
            candidates_by_source=counts(self.sources), candidates_by_primary_source=counts(self.primary),
            atoms_by_source=counts(self.atom_sources), candidates_by_class=counts(self.classes),
            warnings=self.warnings, config_hash=self.ctx.config_hash, glossary_hash=self.ctx.glossary_hash,
            labelmap_hash=self.ctx.labelmap_hash)
        for stage, ns in self.stage_ns.items():
            st = out.stages.add(stage=stage, image_bytes_sent=self.stage_bytes[stage],
                                bytes_sent=self.stage_sent[stage], bytes_received=self.stage_received[stage])
            st.duration.FromNanoseconds(ns)
        return pb.JobResult(prepass=out)


class Orchestrator:
    def __init__(self, settings: OrchestratorSettings) -> None:
        self.settings = settings
        state = Path(settings.state_dir)
        state.mkdir(parents=True, exist_ok=True)
        self.clients = ServiceClients(settings.service_addresses(), settings.service_timeouts(),
                                      max_message_mb=settings.max_message_mb,
                                      health_timeout_s=settings.health_timeout_s, models_ttl_s=settings.models_ttl_s)
        self.datasets = DatasetCatalog(Path(settings.data_root))
        self.browser = ImageBrowser(max_message_bytes=settings.max_message_mb * 1024 * 1024)
        self.store = open_store(settings.store_url, state)
        self.cache = PrepassCache(self.store)
        self.jobs = JobManager(self.store, max_concurrent=settings.max_concurrent_jobs,
                               replica_id=settings.replica_id, lease_s=settings.lease_s,
                               event_keep=settings.event_keep, event_retention_s=settings.event_retention_s)
        import_legacy(self.store, state, self.jobs.replica_id)  # a state dir from before the store
        import_files(self.store, state, self.jobs.replica_id)
        self.glossaries = StoreGlossaries(self.store)
        self.recipes = StoreRecipes(self.store)
        self._unit_contexts: dict[str, PrepassContext] = {}
        self.workers = UnitWorkers(self.store, self.jobs.replica_id, execute=self.run_unit,
                                   finalize=lambda _rec, summaries: merge_summaries(summaries),
                                   notify=self.jobs.notify, slots=settings.max_concurrent_jobs,
                                   lease_s=settings.lease_s, max_attempts=settings.unit_max_attempts)
        self.jobs.on_cancel = lambda job_id: self.workers.stop(job_id=job_id)
        self.runner = PrepassRunner(self.clients, self.cache, self.datasets, glossary_lookup=self.glossaries.text,
                                    recipe_lookup=self.recipes.get, max_image_pixels=settings.max_image_pixels,
                                    caps=ServiceCaps(tile_min=settings.detector_min_tile,
                                                     sam3_max_prompt_runs=settings.sam3_max_prompt_runs))
        self.calibration_root = state / "calibration"

    async def close(self) -> None:
        await self.workers.close()
        await self.jobs.close()
        await self.clients.close()
        self.store.close()

    # --- prepass --------------------------------------------------------------------------------
    async def prepass(self, request: pb.PrepassRequest) -> pb.PrepassResult:
        ctx = self.runner.context(request.dataset_id, request.config if request.HasField("config") else None,
                                  glossary_name=request.glossary_name, recipe_id=request.recipe_id)
        if request.calibration_id:  # before any model runs: an unknown id must not cost a full prepass
            self.calibration_job(request.calibration_id)
        if request.WhichOneof("source") == "dataset_image":
            item = ctx.dataset.item(request.dataset_image)
            data: bytes | None = await asyncio.to_thread(item.path.read_bytes)
            result = await self.runner.run(ctx, data=data, name=item.name, refresh=request.refresh, request=request)
        else:
            ref = request.image
            data = ref.data if ref.HasField("data") else None
            result = await self.runner.run(ctx, data=data, sha256=ref.sha256, refresh=request.refresh,
                                           request=request)
        if request.calibration_id:
            await self.apply_calibration(request.calibration_id, result, data)
        return result

    async def replay(self, request: pb.ReplayRequest) -> pb.ReplayResponse:
        return await replay(self.runner, self.store, self.browser, request)

    def calibration_job(self, job_id: str) -> Job:
        """The succeeded calibration job `job_id`, else NOT_FOUND / INVALID_ARGUMENT / FAILED_PRECONDITION."""
        job = self.jobs.get(job_id)
        if job.kind != JobKind.CALIBRATION:
            raise errors.invalid_argument("calibration_id", f"job {job_id} is not a calibration job")
        if job.state != JobState.SUCCEEDED:
            raise errors.failed_precondition("JOB_NOT_DONE", f"calibration {job_id} has not succeeded", job_id=job_id)
        return job

    async def apply_calibration(self, job_id: str, result: pb.PrepassResult, data: bytes | None) -> None:
        """Accept-model scores on the candidates (never stored in the cache: they depend on the job)."""
        self.calibration_job(job_id)
        cal = calibration_module()
        job_dir = self.calibration_dir(job_id)
        embeddings = None
        if getattr(cal, "needs_embeddings", lambda _d: False)(job_dir):
            if data is None:
                raise errors.failed_precondition("IMAGE_NOT_CACHED", "this calibration needs embeddings: send the "
                                                 "image bytes", sha256=result.image_sha256)
            boxes = [box_xyxy(c.box) for c in result.candidates]
            embeddings = await self.embed_boxes(result.image_sha256, data, boxes)
        view = calibration_convert().inputs.image_prepass(result)
        decisions = await asyncio.to_thread(cal.apply_accept_model, job_dir, view, embeddings=embeddings)
        for cand, (prob, accepted) in zip(result.candidates, decisions):
            cand.accept_prob, cand.accepted = float(prob), bool(accepted)

    async def embed_boxes(self, sha: str, data: bytes, boxes: list[tuple[float, float, float, float]]
                          ) -> list[list[float]]:
        """L2-normalised backbone embeddings of the boxes, in order (empty list for a failed box)."""
        out: list[list[float]] = []
        for start in range(0, len(boxes), EMBED_BOXES_PER_CALL):
            part = boxes[start:start + EMBED_BOXES_PER_CALL]
            try:
                resp, _ = await self.clients.classifier.embed(sha, data, part, normalize=True)
            except RemoteCallError as exc:
                raise remote_stage_failed("embed", exc) from exc
            by_index = {e.index: list(e.values) if e.ok else [] for e in resp.embeddings if e.index >= 0}
            out.extend(by_index.get(i, []) for i in range(len(part)))
        return out

    def select_items(self, ctx: PrepassContext, split: str, max_images: int) -> list[ImageItem]:
        items = ctx.dataset.items(split or None)
        if not items:
            raise errors.invalid_argument("split", f"dataset {ctx.dataset.id!r} has no images in split {split!r} "
                                          f"(splits: {', '.join(ctx.dataset.splits)})")
        if max_images and max_images < len(items):
            # Seeded shuffle, keep the first N, then dataset order so progress reads naturally.
            order = list(range(len(items)))
            random.Random(ctx.config.seed).shuffle(order)
            items = [items[i] for i in sorted(order[:max_images])]
        return items

    def start_prepass_job(self, request: pb.StartPrepassJobRequest) -> Job:
        """A sharded job: its units wait in the store for the workers of every replica."""
        ctx = self.runner.context(request.dataset_id, request.config if request.HasField("config") else None,
                                  glossary_name=request.glossary_name, recipe_id=request.recipe_id)
        items = self.select_items(ctx, request.split, request.max_images)
        units = split_units([item.name for item in items], self.settings.unit_images)
        job = self.jobs.start_sharded(JobKind.PREPASS, ctx.dataset.id, units, request.SerializeToString())
        self.workers.start()
        self.workers.wake()
        return job

    async def run_unit(self, rec: JobRecord, unit: WorkUnit, progress: UnitProgress) -> str:
        """One work unit of a prepass job, on whichever replica claimed it; its summary as the store
        keeps it (a JobResult in protobuf JSON), merged by `merge_summaries` when the last unit ends."""
        request = pb.StartPrepassJobRequest.FromString(rec.spec)
        ctx = self._unit_contexts.get(rec.job.id)
        if ctx is None:
            ctx = await asyncio.to_thread(
                self.runner.context, request.dataset_id, request.config if request.HasField("config") else None,
                glossary_name=request.glossary_name, recipe_id=request.recipe_id)
            while len(self._unit_contexts) >= 8:
                self._unit_contexts.pop(next(iter(self._unit_contexts)))
            self._unit_contexts[rec.job.id] = ctx
        # Several images in flight, so one image's classifier stage overlaps the next one's detectors and
        # every service stays busy; bounded, so memory and the services' queues stay bounded too. The
        # summary only counts, so completion order does not change it.
        summary = JobSummary(ctx, request.split)
        pending = iter(unit.items)
        done = 0
        in_order = asyncio.Lock()  # progress writes land in the order of their counts (FIFO lock)

        async def worker() -> None:
            nonlocal done
            for name in pending:
                progress.check()
                result = await self.runner.run_item(ctx, ctx.dataset.item(name), refresh=request.refresh)
                summary.add(result)
                done += 1
                count = done
                note = "cache hit" if result.cache_hit else f"{len(result.candidates)} candidates"
                async with in_order:
                    await progress.advance(count, f"{name}: {note}", image=name)

        workers = [asyncio.create_task(worker())
                   for _ in range(min(self.settings.prepass_images_in_flight, len(unit.items)))]
        try:
            await asyncio.gather(*workers)
        finally:
            for w in workers:  # one image failed or the unit was stopped: stop the others too
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        return result_column(summary.to_proto())

    # --- calibration ----------------------------------------------------------------------------
    def calibration_dir(self, job_id: str) -> Path:
        return self.calibration_root / job_id

    async def start_calibration(self, request: pb.StartCalibrationRequest) -> Job:
        dataset = self.datasets.get(request.dataset_id)
        cal, conv = calibration_module(), calibration_convert()
        env = CalibrationEnv(self)
        models = await env.list_models()
        config = conv.inputs.calibration_request(request.config)
        cal.check_guards(models, dataset, config)
        await cal.check_leakage(models, dataset, config)

        async def body(handle: JobHandle) -> str:
            async def progress(done: int, total: int, message: str) -> None:
                await handle.progress(done, total, message)

            job_dir = self.calibration_dir(handle.job_id)
            job_dir.mkdir(parents=True, exist_ok=True)
            doc = await cal.run_calibration(env, dataset, config, job_id=handle.job_id, job_dir=job_dir,
                                            progress=progress, cancelled=handle.cancelled)
            report = await asyncio.to_thread(conv.report.save_report_pb, job_dir, doc)
            handle.check_cancelled()
            return result_column(conv.report.summary_pb(report))

        return self.jobs.start(JobKind.CALIBRATION, dataset.id, 0, body)

    def calibration_report(self, job_id: str) -> pb.CalibrationReport:
        job = self.jobs.get(job_id)
        if job.kind != JobKind.CALIBRATION:
            raise errors.not_found("NOT_FOUND", f"job {job_id} is not a calibration job", job_id=job_id)
        if job.state != JobState.SUCCEEDED:
            raise errors.failed_precondition("JOB_NOT_DONE", f"calibration {job_id} is "
                                             f"{pb.JobState.Name(job.state)}", job_id=job_id)
        report: pb.CalibrationReport = calibration_convert().report.load_report(self.calibration_dir(job_id))
        return report


class CalibrationEnv:
    """What the calibration flow may ask of the orchestrator (svc_orchestrator.calibration)."""

    def __init__(self, app: Orchestrator) -> None:
        self.app = app

    async def list_models(self) -> list[ServiceModels]:
        models: list[ServiceModels] = calibration_convert().inputs.service_models(await list_models(self.app.clients))
        return models

    async def prepass(self, dataset: Dataset, item: ImageItem, config: PrepassChoice) -> ImagePrepass:
        conv = calibration_convert().inputs
        ctx = self.app.runner.context(dataset.id, conv.prepass_config_pb(config))
        view: ImagePrepass = conv.image_prepass(await self.app.runner.run_item(ctx, item))
        return view

    async def embed(self, dataset: Dataset, item: ImageItem,
                    boxes: list[tuple[float, float, float, float]]) -> list[list[float]]:
        if not boxes:
            return []
        data = await asyncio.to_thread(item.path.read_bytes)
        return await self.app.embed_boxes(sha256_hex(data), data, boxes)
