"""`tator models activate` on the stack's registry: through the running detector's SetDefaultModel when it
is up (the service switches at once and persists it), else straight into the registry file; and a model
added to the registry while the detector runs is served without a restart."""

from __future__ import annotations

import asyncio
import io
import shutil
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
import yaml
from typer.testing import CliRunner

from svc_detector.server import build_spec
from svc_detector.settings import DetectorSettings
from tator_cli.main import app
from tator_core.client import ServiceClient, image_ref
from tator_core.gen.tator.common.v1 import models_pb2, models_pb2_grpc
from tator_core.gen.tator.detector.v1 import detector_pb2 as pb
from tator_core.gen.tator.detector.v1 import detector_pb2_grpc
from tator_core.registry import Registry, add_entry
from tator_core.server import start_server
from tator_fixtures import REPO_ROOT, YOLO_FIXTURE
from tator_fixtures.synth import render_scene

pytestmark = [pytest.mark.asyncio(loop_scope="module"),
              pytest.mark.skipif(not YOLO_FIXTURE.is_file(), reason="the committed YOLO fixture is absent")]


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """A TATOR_HOME whose registry holds two YOLO models ('a' the default) on one weights file."""
    home = tmp_path_factory.mktemp("activate-home")
    weights = home / "models" / "user" / "shared" / "best.pt"
    weights.parent.mkdir(parents=True)
    shutil.copyfile(YOLO_FIXTURE, weights)
    for name in ("a", "b"):
        add_entry(home / "models" / "registry.yaml",
                  {"id": name, "family": "yolo", "path": "user/shared/best.pt", "default": name == "a"})
    return home


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def detector(home):
    settings = DetectorSettings.load([], port=0, device="cpu", registry=home / "models" / "registry.yaml",
                                     metrics_port=-1)
    running = await start_server(build_spec(settings), settings)
    await asyncio.wait_for(running.ready.wait(), 300)
    yield running
    await running.stop()


def point_cli_at(monkeypatch, home: Path, detector_address: str) -> None:
    """The CLI's stack: this home (so its registry) and a stack config naming the test's detector."""
    doc = yaml.safe_load((REPO_ROOT / "config" / "stack.yaml").read_text())
    doc["services"]["detector"]["address"] = detector_address
    config = home / "stack.yaml"
    config.write_text(yaml.safe_dump(doc))
    monkeypatch.setenv("TATOR_HOME", str(home))
    monkeypatch.setenv("TATOR_STACK_CONFIG", str(config))
    monkeypatch.delenv("TATOR_TOKEN", raising=False)


def png(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


async def tator(*args: str):
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))


async def served_default(address: str) -> str:
    client = ServiceClient(address, models_pb2_grpc.ModelManagementServiceStub, timeout_s=60)
    try:
        resp = await client.call("ListModels", models_pb2.ListModelsRequest())
    finally:
        await client.close()
    return next(m.id for m in resp.models if m.is_default)


async def test_a_running_service_switches_at_once_and_the_file_keeps_it(detector, home, monkeypatch):
    point_cli_at(monkeypatch, home, detector.address)
    assert await served_default(detector.address) == "a"
    res = await tator("models", "activate", "b")
    assert res.exit_code == 0 and "running service switched" in " ".join(res.output.split()), res.output
    assert await served_default(detector.address) == "b"
    assert Registry.load(home / "models" / "registry.yaml").default("yolo").id == "b"


async def test_a_model_added_while_the_service_runs_is_served_and_activated_live(detector, home, monkeypatch):
    """`tator models add` on a running stack: the repository adopts the new entry (ListModels, Detect),
    and activate switches to it at once."""
    point_cli_at(monkeypatch, home, detector.address)
    add_entry(home / "models" / "registry.yaml", {"id": "late", "family": "yolo", "path": "user/shared/best.pt"})
    client = ServiceClient(detector.address, models_pb2_grpc.ModelManagementServiceStub, timeout_s=120)
    try:
        listed = await client.call("ListModels", models_pb2.ListModelsRequest())
        assert "late" in {m.id for m in listed.models}
    finally:
        await client.close()
    image, _ = render_scene(11, 0)
    detect = ServiceClient(detector.address, detector_pb2_grpc.DetectorServiceStub, timeout_s=120)
    try:
        resp = await detect.call("Detect", pb.DetectRequest(image=image_ref(png(image)), model_ids=["late"], conf=0.3))
    finally:
        await detect.close()
    assert [r.model_id for r in resp.runs] == ["late"] and resp.detections  # the fixture finds the shapes
    res = await tator("models", "activate", "late")
    assert res.exit_code == 0 and "running service switched" in " ".join(res.output.split()), res.output
    assert await served_default(detector.address) == "late"
    assert Registry.load(home / "models" / "registry.yaml").default("yolo").id == "late"


async def test_remove_unloads_the_model_on_the_running_service(detector, home, monkeypatch):
    point_cli_at(monkeypatch, home, detector.address)
    add_entry(home / "models" / "registry.yaml", {"id": "brief", "family": "yolo", "path": "user/shared/best.pt"})
    manage = ServiceClient(detector.address, models_pb2_grpc.ModelManagementServiceStub, timeout_s=120)
    detect = ServiceClient(detector.address, detector_pb2_grpc.DetectorServiceStub, timeout_s=120)
    try:
        loaded = await manage.call("LoadModel", models_pb2.LoadModelRequest(model_id="brief"))
        assert loaded.model.loaded
        res = await tator("models", "remove", "brief")
        assert res.exit_code == 0 and "the running service unloaded it" in " ".join(res.output.split()), res.output
        assert "brief" not in Registry.load(home / "models" / "registry.yaml").entries
        assert (home / "models" / "user" / "shared" / "best.pt").exists()  # the other entries still use it
        image, _ = render_scene(11, 0)
        with pytest.raises(grpc.aio.AioRpcError) as err:  # no call runs a model the registry dropped
            await detect.call("Detect", pb.DetectRequest(image=image_ref(png(image)), model_ids=["brief"]))
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "brief" in (err.value.details() or "")
    finally:
        await manage.close()
        await detect.close()


async def test_without_a_running_service_the_registry_file_is_written(home, monkeypatch):
    point_cli_at(monkeypatch, home, "127.0.0.1:9")  # nothing listens there
    res = await tator("models", "activate", "a")
    assert res.exit_code == 0 and "not running" in " ".join(res.output.split())
    assert Registry.load(home / "models" / "registry.yaml").default("yolo").id == "a"
    res = await tator("models", "activate", "nobody")
    assert res.exit_code == 1 and "nobody" in res.output
