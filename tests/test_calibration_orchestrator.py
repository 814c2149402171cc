"""Calibration through the real orchestrator (gRPC, job manager, report RPC) with a simulated prepass.

The orchestrator runs in-process exactly as in production except that its `CalibrationEnv` (the bridge
to the model services) is replaced by `SimulatedEnv`, so StartCalibration -> WatchJob ->
GetCalibrationReport, the guards as the RPC's own error, CancelJob, JOB_NOT_DONE and applying the
accept model are exercised without the model services. The Tier 1 step runs here too. The same flow
against the live model services is tests/test_calibration_stack.py.
"""

from __future__ import annotations

import random
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from PIL import Image

import svc_orchestrator.app as app_mod
from svc_orchestrator.calibration.simulate import SimulatedEnv
from svc_orchestrator.convert.calibration import prepass_choice, prepass_result_pb
from tator_core.client import ServiceClient
from tator_core.errors import TatorError, parse_rpc_error
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from tator_core.server import start_server
from tator_fixtures import FUZZ_PACK_DIR, LABELMAP
from tator_fixtures.fuzz_pack import load_fuzz_pack
from tator_fixtures.regress import StepContext
from tator_fixtures.steps.calibration import check_report, light_prepass, mlp_xgb_same_cache, run_calibration_job
from tator_fixtures.synth import generate

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(300)]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def orch(tmp_path_factory):
    from svc_orchestrator.server import build_spec
    from svc_orchestrator.settings import OrchestratorSettings

    home = tmp_path_factory.mktemp("orch")
    generate(home / "data" / "synth", seed=5, images=40)
    nogt = home / "data" / "nogt"
    (nogt / "images").mkdir(parents=True)
    (nogt / "labelmap.txt").write_text("\n".join(LABELMAP) + "\n")
    for i in range(4):
        Image.new("RGB", (32, 32)).save(nogt / "images" / f"im{i}.png")
    mp = pytest.MonkeyPatch()
    shared: dict[str, SimulatedEnv] = {}  # one env for all jobs: its cache plays the prepass cache

    def env_for(app):
        return shared.setdefault("env", SimulatedEnv(app.datasets.get("synth")))

    mp.setattr(app_mod, "CalibrationEnv", env_for)
    settings = OrchestratorSettings(host="127.0.0.1", port=0, metrics_port=-1, data_root=home / "data",
                                    state_dir=home / "state", health_timeout_s=0.5,
                                    **{f"{s}_address": "127.0.0.1:1" for s in ("detector", "sam3", "qwen", "classifier")})
    spec = build_spec(settings)
    running = await start_server(spec, settings)
    await running.ready.wait()
    client = ServiceClient(running.address, pb_grpc.OrchestratorServiceStub, timeout_s=120)
    yield client, spec.app, home
    await client.close()
    await running.stop(0)
    mp.undo()


async def test_tier1_step_mlp_and_xgb_on_the_same_cache(orch) -> None:
    client, _, home = orch
    ctx = StepContext(addresses={"orchestrator": client.address}, fuzz_pack=load_fuzz_pack(FUZZ_PACK_DIR),
                      rng=random.Random("0:calibration.mlp_xgb_same_cache"), deadline_s=240,
                      models_dir=home / "models", data_root=home / "data")
    out = await mlp_xgb_same_cache(ctx)
    assert out["cache"]["second_job_hits"] == out["extra"]["images"] > 0
    assert set(out["metrics"]) == {"mlp_f1", "xgb_f1", "accept_all_f1", "best_single_source_f1"}
    assert all(0 <= v <= 1 for v in out["metrics"].values())
    assert out["metrics"]["xgb_f1"] > out["metrics"]["accept_all_f1"]
    assert len(out["hashes"]["feature_schema"]) == 64


async def test_guards_are_the_rpc_error_and_start_no_job(orch) -> None:
    client, app, _ = orch
    before = len(app.jobs.list(1000))
    for dataset, code, reason in (("nogt", grpc.StatusCode.FAILED_PRECONDITION, "NO_GROUND_TRUTH"),
                                  ("nothing", grpc.StatusCode.NOT_FOUND, "DATASET_NOT_FOUND")):
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await client.call("StartCalibration", pb.StartCalibrationRequest(dataset_id=dataset))
        err = parse_rpc_error(exc.value)
        assert (err.code, err.reason) == (code, reason), err
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await client.call("StartCalibration", pb.StartCalibrationRequest(
            dataset_id="synth", config=pb.CalibrationConfig(prepass=pb.PrepassConfig(enable_classifier=False))))
    assert parse_rpc_error(exc.value).code == grpc.StatusCode.INVALID_ARGUMENT
    assert len(app.jobs.list(1000)) == before


async def test_running_job_report_is_not_done_and_cancel_ends_it(orch) -> None:
    client, _, _ = orch
    job = (await client.call("StartCalibration", pb.StartCalibrationRequest(
        dataset_id="synth", config=pb.CalibrationConfig(seed=99)))).job
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await client.call("GetCalibrationReport", pb.GetCalibrationReportRequest(job_id=job.id))
    assert parse_rpc_error(exc.value).reason == "JOB_NOT_DONE"
    await client.call("CancelJob", pb.CancelJobRequest(job_id=job.id))
    final = None
    async for ev in client.stream("WatchJob", pb.WatchJobRequest(job_id=job.id), timeout_s=120):
        final = ev.job
    assert final is not None and final.state == pb.JOB_STATE_CANCELLED, final


async def test_finished_job_report_and_accept_model_applied_by_the_orchestrator(orch) -> None:
    client, app, _ = orch
    config = pb.CalibrationConfig(model=pb.CALIBRATION_MODEL_MLP, max_images=24, prepass=light_prepass(pb))
    job, report, events = await run_calibration_job(client, "synth", config, timeout_s=240)
    assert report is not None, job
    dones = [e.done for e in events]
    assert dones == sorted(dones) and events[-1].done == events[-1].total > 24
    check_report(report, list(LABELMAP), ["mlp"])
    again = (await client.call("GetCalibrationReport", pb.GetCalibrationReportRequest(job_id=job.id))).report
    assert again == report
    assert report.config.prepass == light_prepass(pb)  # what `tator prepass --calibration` runs with
    # the report records the run of every prepass it was built from
    assert len(report.run_ids) == report.prepass_images and len(set(report.run_ids)) == report.prepass_images
    assert all(len(r) == 64 for r in report.run_ids)
    assert Path(report.artifacts[0]).is_file() and Path(report.artifacts[0]).parent == app.calibration_dir(job.id)
    ds = app.datasets.get("synth")
    env = SimulatedEnv(ds)
    choice = prepass_choice(light_prepass(pb))
    result = prepass_result_pb(await env.prepass(ds, ds.items()[0], choice))
    await app.apply_calibration(job.id, result, None)
    assert result.candidates and all(c.HasField("accept_prob") and c.HasField("accepted") for c in result.candidates)
    env.model_versions = {**env.model_versions, "head-sim": "0" * 64}
    other = prepass_result_pb(await env.prepass(ds, ds.items()[0], choice))
    with pytest.raises(TatorError) as exc:
        await app.apply_calibration(job.id, other, None)
    assert exc.value.reason == "CALIBRATION_VERSION_MISMATCH" and "head-sim" in exc.value.message
