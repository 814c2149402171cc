"""The orchestrator's conversion layer: its contract messages <-> the plain Python values its domain
works on. This module holds the catalogs' conversions (the server calls them); `calibration` converts
what the calibration reads and `calibration_report` its report, both imported on first use like the
calibration package itself (it pulls in xgboost and scikit-learn). Domain modules import no message."""

from __future__ import annotations

from collections.abc import Iterable

from svc_orchestrator.browse import ImageBytes, ImagePage
from svc_orchestrator.catalogs import Glossary
from svc_orchestrator.clients import ServiceClients, ServiceState
from svc_orchestrator.datasets import Dataset
from tator_core.convert import box_pb
from tator_core.gen.tator.common.v1 import common_pb2
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
from tator_core.paging import page_by_key


def dataset_pb(ds: Dataset) -> pb.Dataset:
    return pb.Dataset(id=ds.id, layout=ds.layout, labelmap=ds.labelmap, glossary=ds.glossary_text,
                      glossary_hash=ds.glossary_hash, labelmap_hash=ds.labelmap_hash, images_per_split=ds.splits,
                      image_count=len(ds.items()), annotation_count=ds.annotation_count(),
                      has_ground_truth=ds.has_ground_truth)


def image_page_pb(page: ImagePage) -> pb.ListDatasetImagesResponse:
    return pb.ListDatasetImagesResponse(
        images=[pb.DatasetImage(name=v.name, split=v.split, sha256=v.sha256, width=v.width, height=v.height,
                                ground_truth=[pb.GroundTruthBox(label=label, box=box_pb(box))
                                              for label, box in v.ground_truth]) for v in page.images],
        total_size=page.total_size, next_page_token=page.next_page_token)


def image_bytes_pb(image: ImageBytes) -> pb.GetImageResponse:
    return pb.GetImageResponse(sha256=image.sha256, width=image.width, height=image.height, name=image.name,
                               data=image.data, mime_type=image.mime_type)


def glossary_pb(g: Glossary) -> pb.Glossary:
    out = pb.Glossary(name=g.name, text=g.text, hash=g.hash)
    for key, terms in g.terms.items():
        out.terms[key].terms.extend(terms)
    return out


def health_enum(status: str) -> pb.ServiceHealth:
    """A grpc.health.v1 status name (or UNREACHABLE) as a ServiceHealth: anything reachable that is
    not SERVING (NOT_SERVING, SERVICE_UNKNOWN, UNKNOWN) cannot take calls, so it is NOT_SERVING."""
    if status == "SERVING":
        return pb.SERVICE_HEALTH_SERVING
    return pb.SERVICE_HEALTH_UNREACHABLE if status == "UNREACHABLE" else pb.SERVICE_HEALTH_NOT_SERVING


def list_models_pb(states: Iterable[ServiceState]) -> pb.ListModelsResponse:
    """Every service's models with its health; a down service is UNREACHABLE, not an error."""
    return pb.ListModelsResponse(services=[
        pb.ServiceModels(service=s.service, address=s.address, health=health_enum(s.health), models=s.models)
        for s in states])


async def list_models(clients: ServiceClients) -> pb.ListModelsResponse:
    """The models of every service, each asked afresh, as the RPC's answer."""
    return list_models_pb((await clients.states(fresh=True)).values())


def page_models(every: pb.ListModelsResponse, size: int, token: str) -> pb.ListModelsResponse:
    """One page of every service's models (AIP-158): models counted one by one in service order, then
    by id; a service without models takes one place, so its health shows. A service whose models run
    past the page's end is listed again, with the rest, on the next page."""
    places: list[tuple[int, pb.ServiceModels, common_pb2.ModelInfo | None]] = []
    for i, s in enumerate(every.services):
        places += [(i, s, m) for m in s.models] if s.models else [(i, s, None)]
    page, next_token = page_by_key(places, lambda p: f"{p[0]:04d}/{p[2].id if p[2] is not None else ''}",
                                   size, token, {"list": "models"})
    out = pb.ListModelsResponse(next_page_token=next_token)
    for _, s, m in page:
        if not out.services or out.services[-1].service != s.service:
            out.services.add(service=s.service, address=s.address, health=s.health)
        if m is not None:
            out.services[-1].models.append(m)
    return out
