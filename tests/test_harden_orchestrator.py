"""The orchestrator refuses at the door what would fail later: configs a model service would
refuse (limits shared through tator_core.limits), an unknown calibration id (before any model
runs), NUL bytes in ids. Model services point nowhere here, so anything that tried to run a
stage would fail with another code."""

from __future__ import annotations

import grpc
import pytest
import pytest_asyncio

from svc_orchestrator.prepass.config import ServiceCaps, resolve
from tator_core import errors, limits
from tator_core.client import ServiceClient
from tator_core.errors import parse_rpc_error
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from tator_core.server import start_server
from tator_fixtures.synth import generate


def refused(cfg: pb.PrepassConfig) -> errors.TatorError:
    with pytest.raises(errors.TatorError) as ei:
        resolve(cfg)
    assert ei.value.code == grpc.StatusCode.INVALID_ARGUMENT
    return ei.value


def test_limits_are_the_services_own_defaults():
    from svc_detector.params import MAX_TILE, MIN_TILE
    from svc_detector.settings import DetectorSettings
    from svc_sam3.settings import Sam3Settings

    assert (MIN_TILE, MAX_TILE) == (limits.TILE_MIN, limits.TILE_MAX) == (ServiceCaps().tile_min,
                                                                          ServiceCaps().tile_max)
    assert Sam3Settings.model_fields["max_prompt_runs"].default == ServiceCaps().sam3_max_prompt_runs
    assert DetectorSettings.model_fields["max_tiles"].default == limits.DETECTOR_MAX_TILES


def test_configs_the_services_refuse_are_refused_at_the_door():
    assert refused(pb.PrepassConfig(sahi_window_size=limits.TILE_MIN - 1)).field_violations[0][0] == \
        "config.sahi_window_size"
    err = refused(pb.PrepassConfig(grid_cols=16, grid_rows=16))
    assert err.reason == "FANOUT_CAP_EXCEEDED" and err.field_violations[0][0] == "config.grid_cols"
    resolve(pb.PrepassConfig(grid_cols=15, grid_rows=16))                    # 241 contexts: within the cap
    resolve(pb.PrepassConfig(grid_cols=16, grid_rows=16, sam3_text_window_extension=False,
                             similarity_window_extension=False))              # not windowed: no SAM3 grid
    resolve(pb.PrepassConfig(sahi_window_size=limits.TILE_MIN - 1, detector_sahi=False,
                             window_mode=pb.WINDOW_MODE_GRID))                 # no SAHI pass at all
    with pytest.raises(errors.TatorError):
        resolve(pb.PrepassConfig(grid_cols=4, grid_rows=4), caps=ServiceCaps(sam3_max_prompt_runs=16))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(tmp_path_factory):
    from svc_orchestrator.server import build_spec
    from svc_orchestrator.settings import OrchestratorSettings

    home = tmp_path_factory.mktemp("harden-orch")
    generate(home / "data" / "synth", seed=1, images=3)
    nowhere = "127.0.0.1:1"
    settings = OrchestratorSettings(host="127.0.0.1", port=0, metrics_port=-1, data_root=home / "data",
                                    state_dir=home / "state", detector_address=nowhere, sam3_address=nowhere,
                                    qwen_address=nowhere, classifier_address=nowhere, health_timeout_s=0.5)
    spec = build_spec(settings)
    running = await start_server(spec, settings)
    await running.ready.wait()
    client = ServiceClient(running.address, pb_grpc.OrchestratorServiceStub, timeout_s=60)
    root = home / "data" / "synth"
    client.first_image = str(sorted(root.glob("*/images/*.png"))[0].relative_to(root))
    client.home = home
    yield client
    await client.close()
    await running.stop(0)


async def status(coro):
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await coro
    return parse_rpc_error(exc.value)


@pytest.mark.asyncio(loop_scope="module")
async def test_unknown_calibration_id_fails_before_any_stage(served):
    err = await status(served.call("Prepass", pb.PrepassRequest(
        dataset_id="synth", dataset_image=served.first_image, calibration_id="no-such-job")))
    assert (err.code, err.reason) == (grpc.StatusCode.NOT_FOUND, "JOB_NOT_FOUND")


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("method,request_", [
    ("Prepass", pb.PrepassRequest(dataset_id="syn\x00th", dataset_image="x.png")),
    ("StartPrepassJob", pb.StartPrepassJobRequest(dataset_id="syn\x00th")),
    ("StartCalibration", pb.StartCalibrationRequest(dataset_id="syn\x00th")),
    ("Prepass", pb.PrepassRequest(dataset_id="synth", dataset_image="x.png",
                                  config=pb.PrepassConfig(grid_cols=16, grid_rows=16))),
])
async def test_hostile_requests_are_invalid_argument(served, method, request_):
    err = await status(served.call(method, request_))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT, err


@pytest.mark.asyncio(loop_scope="module")
async def test_not_found_names_no_server_path(served):
    err = await status(served.call("Prepass", pb.PrepassRequest(dataset_id="nope", dataset_image="x.png")))
    assert err.code == grpc.StatusCode.NOT_FOUND
    assert str(served.home) not in err.message and all(str(served.home) not in v for v in err.metadata.values())
