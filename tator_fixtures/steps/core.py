"""Tier 0 smoke steps: health and model listings of every service, and the orchestrator's catalogues.

Checks are strict on purpose: an empty id, family, device or state in a listing is how a half-wired
service shows up first. Names of listed models, datasets and glossaries go into `extra` as keys, so the
baseline diff reports one that disappears (it checks the presence of every baseline key).
"""

from __future__ import annotations

import importlib
from typing import Any

from tator_core.auth import aio_channel, call_metadata
from tator_fixtures.regress import StepContext, step

MODEL_SERVICES = {
    "detector": ("DetectorService", ("yolo", "rfdetr")),
    "sam3": ("Sam3Service", ("sam3",)),
    "qwen": ("QwenService", ("qwen",)),
    "classifier": ("ClassifierService", ("clip", "dinov3", "head")),
}
FAMILIES = ("yolo", "rfdetr", "sam3", "qwen", "clip", "dinov3", "head")
DEADLINE_S = 10.0


def _modules(service: str) -> tuple[Any, Any]:
    base = f"tator_core.gen.tator.{service}.v1.{service}_pb2"
    return importlib.import_module(base), importlib.import_module(f"{base}_grpc")


async def _call(ctx: StepContext, service: str, method: str, request_name: str) -> Any:
    """One unary call on `service` with an empty request of type `request_name`."""

    pb2, pb2_grpc = _modules(service)
    stub_name = MODEL_SERVICES[service][0] if service in MODEL_SERVICES else "OrchestratorService"
    async with aio_channel(ctx.addresses[service]) as channel:
        stub = getattr(pb2_grpc, f"{stub_name}Stub")(channel)
        return await getattr(stub, method)(getattr(pb2, request_name)(), timeout=ctx.deadline_s,
                                           metadata=call_metadata())


async def _list_models(ctx: StepContext, service: str) -> Any:
    """The first page (up to 1000, more than any registry here) of a model service's models, from its
    tator.common.v1.ModelManagementService."""
    import grpc

    from tator_core.gen.tator.common.v1 import models_pb2, models_pb2_grpc

    async with grpc.aio.insecure_channel(ctx.addresses[service]) as channel:
        stub = models_pb2_grpc.ModelManagementServiceStub(channel)
        return await stub.ListModels(models_pb2.ListModelsRequest(page_size=1000), timeout=ctx.deadline_s,
                                     metadata=call_metadata())


def check_model(info: Any, where: str, families: tuple[str, ...] = FAMILIES) -> None:
    """Strict ModelInfo check: required fields non-empty, version present unless the weights are missing."""
    from tator_core.gen.tator.common.v1 import common_pb2

    state = common_pb2.ModelState.Name(info.state)
    problems = []
    if not info.id:
        problems.append("empty id")
    if info.family not in families:
        problems.append(f"family {info.family!r} not in {families}")
    if not info.device:
        problems.append("empty device")
    if info.state == common_pb2.MODEL_STATE_UNSPECIFIED:
        problems.append("state unspecified")
    if info.state != common_pb2.MODEL_STATE_MISSING and not info.version:
        problems.append(f"empty version while {state}")
    if info.state in (common_pb2.MODEL_STATE_MISSING, common_pb2.MODEL_STATE_FAILED) and not info.reason:
        problems.append(f"empty reason while {state}")
    if problems:
        raise AssertionError(f"{where}: model {info.id or '?'}: {'; '.join(problems)}")


def _register_model_service(service: str, service_name: str, families: tuple[str, ...]) -> None:
    full_name = f"tator.{service}.v1.{service_name}"

    @step(f"core.{service}.health", tier=0, service=service, deadline_s=DEADLINE_S)
    async def health(ctx: StepContext) -> dict:
        """The per-service health name must be SERVING too, not only the server's overall status."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        async with aio_channel(ctx.addresses[service]) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=full_name), timeout=ctx.deadline_s
            )
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        if status != "SERVING":
            raise AssertionError(f"{full_name} is {status}")
        return {"extra": {"health": status}}

    @step(f"core.{service}.list_models", tier=0, service=service, deadline_s=DEADLINE_S)
    async def list_models(ctx: StepContext) -> dict:
        reply = await _list_models(ctx, service)
        if not reply.models:
            raise AssertionError(f"{service}: ListModels returned no models")
        for info in reply.models:
            check_model(info, service, families)
        ids = [m.id for m in reply.models]
        if len(set(ids)) != len(ids):
            raise AssertionError(f"{service}: duplicate model ids {sorted(ids)}")
        defaults = [m.id for m in reply.models if m.is_default]
        if len(defaults) > len({m.family for m in reply.models}):
            raise AssertionError(f"{service}: more than one default per family: {defaults}")
        return {"extra": {"models": {m.id: m.family for m in reply.models}}}


for _service, (_name, _families) in MODEL_SERVICES.items():
    _register_model_service(_service, _name, _families)


HARNESS_DATASETS = frozenset({"fuzz_pack"})


@step("core.orchestrator.list_datasets", tier=0, service="orchestrator", deadline_s=DEADLINE_S)
async def list_datasets(ctx: StepContext) -> dict:
    reply = await _call(ctx, "orchestrator", "ListDatasets", "ListDatasetsRequest")
    for ds in reply.datasets:
        where = f"dataset {ds.id or '?'}"
        if not ds.id or ds.layout not in ("yolo", "coco"):
            raise AssertionError(f"{where}: empty id or layout {ds.layout!r} not yolo/coco")
        if not ds.labelmap or not ds.labelmap_hash or not ds.glossary_hash:
            raise AssertionError(f"{where}: empty labelmap, labelmap_hash or glossary_hash")
        if ds.image_count != sum(ds.images_per_split.values()):
            raise AssertionError(f"{where}: image_count {ds.image_count} != sum of images_per_split")
    # Datasets the harness installs itself (the fuzz pack) are left out, so the
    # record does not depend on whether an earlier run's Tier 1 steps made them.
    return {"extra": {"datasets": {ds.id: ds.layout for ds in reply.datasets if ds.id not in HARNESS_DATASETS}}}


@step("core.orchestrator.list_models", tier=0, service="orchestrator", deadline_s=DEADLINE_S)
async def orchestrator_models(ctx: StepContext) -> dict:
    pb2, pb2_grpc = _modules("orchestrator")
    entries, token = [], ""
    async with aio_channel(ctx.addresses["orchestrator"]) as channel:
        stub = pb2_grpc.OrchestratorServiceStub(channel)
        while True:  # every page (a service can span two; its models are joined below)
            reply = await stub.ListModels(pb2.ListModelsRequest(page_size=1000, page_token=token),
                                          timeout=ctx.deadline_s, metadata=call_metadata())
            entries += reply.services
            token = reply.next_page_token
            if not token:
                break
    seen: dict[str, dict[str, str]] = {}
    for entry in entries:
        if entry.service not in MODEL_SERVICES or not entry.address:
            raise AssertionError(f"service entry {entry.service!r}: unknown service or empty address")
        if entry.health not in (1, 2, 3):  # ServiceHealth SERVING, NOT_SERVING, UNREACHABLE; never UNSPECIFIED
            raise AssertionError(f"service {entry.service}: health {entry.health!r}")
        for info in entry.models:
            check_model(info, f"orchestrator/{entry.service}", MODEL_SERVICES[entry.service][1])
        seen.setdefault(entry.service, {}).update({m.id: m.family for m in entry.models})
    missing = set(MODEL_SERVICES) - set(seen)
    if missing:
        raise AssertionError(f"ListModels lacks services {sorted(missing)}")
    return {"extra": {"services": seen}}


@step("core.orchestrator.list_glossaries", tier=0, service="orchestrator", deadline_s=DEADLINE_S)
async def list_glossaries(ctx: StepContext) -> dict:
    reply = await _call(ctx, "orchestrator", "ListGlossaries", "ListGlossariesRequest")
    for g in reply.glossaries:
        if not g.name or not g.text or not g.hash:
            raise AssertionError(f"glossary {g.name or '?'}: empty name, text or hash")
        empty = [key for key, terms in g.terms.items() if not terms.terms]
        if empty:
            raise AssertionError(f"glossary {g.name}: no terms for {empty}")
    return {"extra": {"glossaries": {g.name: g.hash for g in reply.glossaries}}}
