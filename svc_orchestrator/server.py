"""Transport: OrchestratorService RPCs, each a few lines over `app.Orchestrator`."""

from __future__ import annotations

import asyncio

from svc_orchestrator.app import Orchestrator
from svc_orchestrator.convert import dataset_pb, glossary_pb, image_bytes_pb, image_page_pb, list_models, page_models
from svc_orchestrator.convert.jobs import job_pb
from svc_orchestrator.convert.recipes import recipe_from_pb, recipe_pb
from svc_orchestrator.settings import OrchestratorSettings
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from tator_core.paging import page_by_key
from tator_core.server import ServiceSpec

FULL_NAME = "tator.orchestrator.v1.OrchestratorService"


class OrchestratorServicer(pb_grpc.OrchestratorServiceServicer):
    def __init__(self, app: Orchestrator) -> None:
        self.app = app

    # --- catalogs -------------------------------------------------------------------------------
    async def ListDatasets(self, request, context):
        def listing() -> pb.ListDatasetsResponse:
            page, token = page_by_key(self.app.datasets.list(), lambda d: d.id, request.page_size,
                                      request.page_token, {"list": "datasets"})
            return pb.ListDatasetsResponse(datasets=[dataset_pb(d) for d in page], next_page_token=token)

        return await asyncio.to_thread(listing)

    async def GetDataset(self, request, context):
        dataset = await asyncio.to_thread(lambda: dataset_pb(self.app.datasets.get(request.dataset_id)))
        return pb.GetDatasetResponse(dataset=dataset)

    async def ListDatasetImages(self, request, context):
        page = await asyncio.to_thread(
            lambda: self.app.browser.list_images(self.app.datasets.get(request.dataset_id), split=request.split,
                                                 page_size=request.page_size, page_token=request.page_token))
        return image_page_pb(page)

    async def GetImage(self, request, context):
        which = request.WhichOneof("image")
        image = await asyncio.to_thread(
            lambda: self.app.browser.get_image(self.app.datasets.get(request.dataset_id),
                                               name=request.name if which == "name" else None,
                                               sha256=request.sha256 if which == "sha256" else None,
                                               max_side=request.max_side))
        return image_bytes_pb(image)

    async def ListModels(self, request, context):
        return page_models(await list_models(self.app.clients), request.page_size, request.page_token)

    async def ListGlossaries(self, request, context):
        page, token = page_by_key(self.app.glossaries.list(), lambda g: g.name, request.page_size,
                                  request.page_token, {"list": "glossaries"})
        return pb.ListGlossariesResponse(glossaries=[glossary_pb(g) for g in page], next_page_token=token)

    async def GetGlossary(self, request, context):
        return pb.GetGlossaryResponse(glossary=glossary_pb(self.app.glossaries.get(request.name)))

    async def PutGlossary(self, request, context):
        return pb.PutGlossaryResponse(glossary=glossary_pb(self.app.glossaries.put(request.name, request.text)))

    async def DeleteGlossary(self, request, context):
        self.app.glossaries.delete(request.name)
        return pb.DeleteGlossaryResponse()

    # --- prepass and jobs -------------------------------------------------------------------------
    async def Prepass(self, request, context):
        return pb.PrepassResponse(result=await self.app.prepass(request))

    async def Replay(self, request, context):
        return await self.app.replay(request)

    async def StartPrepassJob(self, request, context):
        return pb.StartPrepassJobResponse(job=job_pb(self.app.start_prepass_job(request)))

    async def StartCalibration(self, request, context):
        return pb.StartCalibrationResponse(job=job_pb(await self.app.start_calibration(request)))

    async def WatchJob(self, request, context):
        async for job, image in self.app.jobs.watch(request.job_id):
            yield pb.WatchJobResponse(job=job_pb(job), image=image)

    async def GetJob(self, request, context):
        return pb.GetJobResponse(job=job_pb(self.app.jobs.get(request.job_id)))

    async def ListJobs(self, request, context):
        jobs, token = self.app.jobs.page(request.page_size, request.page_token)
        return pb.ListJobsResponse(jobs=[job_pb(j) for j in jobs], next_page_token=token)

    async def CancelJob(self, request, context):
        return pb.CancelJobResponse(job=job_pb(self.app.jobs.cancel(request.job_id)))

    async def GetCalibrationReport(self, request, context):
        report = await asyncio.to_thread(self.app.calibration_report, request.job_id)
        return pb.GetCalibrationReportResponse(report=report)

    # --- recipes --------------------------------------------------------------------------------
    async def ListRecipes(self, request, context):
        page, token = page_by_key(self.app.recipes.list(), lambda r: r.id, request.page_size, request.page_token,
                                  {"list": "recipes"})
        return pb.ListRecipesResponse(recipes=[recipe_pb(r) for r in page], next_page_token=token)

    async def GetRecipe(self, request, context):
        return pb.GetRecipeResponse(recipe=recipe_pb(self.app.recipes.get(request.id)))

    async def PutRecipe(self, request, context):
        return pb.PutRecipeResponse(recipe=recipe_pb(self.app.recipes.put(recipe_from_pb(request.recipe))))

    async def DeleteRecipe(self, request, context):
        self.app.recipes.delete(request.id)
        return pb.DeleteRecipeResponse()

    async def ImportRecipe(self, request, context):
        recipe, notice = await asyncio.to_thread(self.app.recipes.import_archive, request.archive)
        return pb.ImportRecipeResponse(recipe=recipe_pb(recipe), notice=notice)

    async def ExportRecipe(self, request, context):
        archive, filename = self.app.recipes.export(request.id)
        return pb.ExportRecipeResponse(archive=archive, filename=filename)


def build_spec(settings: OrchestratorSettings) -> ServiceSpec:
    """The orchestrator loads no model; its warm-up only looks at the model services once (logged)."""
    app = Orchestrator(settings)
    servicer = OrchestratorServicer(app)

    async def warmup() -> None:
        app.workers.start()  # work units of sharded jobs, whichever replica started them
        app.jobs.start_upkeep()  # prunes the events of jobs that ended long ago
        await list_models(app.clients)

    spec = ServiceSpec(name="orchestrator", full_name=FULL_NAME,
                       add_to_server=lambda server: pb_grpc.add_OrchestratorServiceServicer_to_server(servicer, server),
                       warmup=warmup, shutdown=app.close)
    spec.app = app  # type: ignore[attr-defined]  # tests and benchmarks reach the state through the spec
    return spec
