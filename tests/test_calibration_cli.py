"""`tator calibrate` and `tator report` against an in-process stand-in of the orchestrator's calibration RPCs.

The stand-in serves StartCalibration / WatchJob / GetCalibrationReport through the real server bootstrap
(interceptor, validation, rich errors), so the CLI's request building, progress following, table, JSON
output and error handling are what is tested; the live orchestrator is covered by the stack test.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from typer.testing import CliRunner

from svc_orchestrator.calibration.evaluate import Counts
from svc_orchestrator.convert.calibration_report import method_proto
from tator_cli.main import app
from tator_core import errors
from tator_core.gen.tator.common.v1 import common_pb2
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from tator_core.server import ServiceSpec, start_server
from tator_core.settings import ServiceSettings


def _entry(method: str, tp: int, fp: int, fn: int) -> pb.MethodMetrics:
    out = method_proto({"method": method, "eval_iou": 0.5, "overall": Counts(tp, fp, fn).as_dict(),
                        "per_class": {"circle": Counts(tp, fp, fn).as_dict(), "square": Counts(0, 0, 0).as_dict()}})
    return out


REPORT = pb.CalibrationReport(
    job_id="job-1", dataset_id="synth", feature_schema_hash="f" * 64, labelmap=["circle", "square"],
    primary_eval_iou=0.5, split_images={"train": 6, "val": 2, "test": 2},
    results=[_entry("xgb", 9, 1, 1), _entry("accept_all", 10, 30, 0), _entry("best_single_source:yolo", 8, 3, 2)],
    thresholds=[pb.ModelThresholds(model=pb.ACCEPT_METHOD_XGB, is_default=True,
                                   classes=[pb.ClassThreshold(label="circle", threshold=0.42),
                                            pb.ClassThreshold(label="square", threshold=0.5)])],
    models=[pb.AcceptModelSummary(model=pb.ACCEPT_METHOD_XGB, delta_f1_vs_best_single_source=0.14)],
    artifacts=["/state/calibration/job-1/report.json"],
    config=pb.CalibrationConfig(prepass=pb.PrepassConfig(detector_conf=0.25, enable_caption=False,
                                                         sam3_text_synonym_budget=0)))


class FakeOrchestrator(pb_grpc.OrchestratorServiceServicer):
    def __init__(self) -> None:
        self.requests: list[pb.StartCalibrationRequest] = []
        self.prepasses: list[pb.PrepassRequest] = []

    async def Prepass(self, request, context):
        self.prepasses.append(request)
        cands = [pb.Candidate(index=0, label="circle", score=0.9, sources=[common_pb2.DETECTION_SOURCE_YOLO]),
                 pb.Candidate(index=1, label="square", score=0.3, sources=[common_pb2.DETECTION_SOURCE_YOLO])]
        if request.calibration_id:
            cands[0].accept_prob, cands[0].accepted = 0.93, True
            cands[1].accept_prob, cands[1].accepted = 0.12, False
        return pb.PrepassResponse(result=pb.PrepassResult(image_sha256=request.image.sha256, candidates=cands))

    async def StartCalibration(self, request, context):
        self.requests.append(request)
        if request.dataset_id == "nogt":
            raise errors.failed_precondition("NO_GROUND_TRUTH", "dataset 'nogt' has no ground-truth boxes")
        return pb.StartCalibrationResponse(job=pb.Job(id=f"job-{request.dataset_id}", kind=pb.JOB_KIND_CALIBRATION,
                                                      state=pb.JOB_STATE_QUEUED, dataset_id=request.dataset_id))

    async def WatchJob(self, request, context):
        for k in range(3):
            yield pb.WatchJobResponse(job=pb.Job(id=request.job_id, state=pb.JOB_STATE_RUNNING, done=k, total=3,
                                                 message=f"step {k}"))
        if request.job_id == "job-broken":
            yield pb.WatchJobResponse(job=pb.Job(id=request.job_id, state=pb.JOB_STATE_FAILED, done=2, total=3,
                                                 error="UNAVAILABLE STAGE_FAILED: detector down",
                                                 failed_stage="detectors"))
            return
        yield pb.WatchJobResponse(job=pb.Job(id=request.job_id, state=pb.JOB_STATE_SUCCEEDED, done=3, total=3))

    async def GetCalibrationReport(self, request, context):
        if request.job_id == "job-missing":
            raise errors.not_found("JOB_NOT_FOUND", "no job 'job-missing'")
        return pb.GetCalibrationReportResponse(report=REPORT)


@pytest.fixture
async def orch():
    fake = FakeOrchestrator()
    settings = ServiceSettings(host="127.0.0.1", port=0, metrics_port=-1, warmup=False)
    spec = ServiceSpec("orchestrator", "tator.orchestrator.v1.OrchestratorService",
                       lambda server: pb_grpc.add_OrchestratorServiceServicer_to_server(fake, server))
    running = await start_server(spec, settings)
    await running.ready.wait()
    yield fake, running.address
    await running.stop(0)


async def _cli(*args: str):
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))


async def test_calibrate_builds_the_request_follows_the_job_and_prints_the_table(orch) -> None:
    fake, address = orch
    res = await _cli("calibrate", "--dataset", "synth", "--model", "xgb", "--max-images", "30", "--eval-iou", "0.5",
                     "--eval-iou", "0.7", "--seed", "7", "--no-sam3-windows", "--no-rfdetr", "--sahi-window-size", "224",
                     "--classifier-id", "head-x", "--address", address)
    assert res.exit_code == 0, res.output
    req = fake.requests[-1]
    assert req.dataset_id == "synth" and req.config.model == pb.CALIBRATION_MODEL_XGB
    assert req.config.max_images == 30 and list(req.config.eval_ious) == pytest.approx([0.5, 0.7])
    assert req.config.seed == 7 and req.config.HasField("seed") and not req.config.HasField("label_iou")
    assert req.config.prepass.enable_rfdetr is False and req.config.prepass.sam3_text_window_extension is False
    assert req.config.prepass.HasField("enable_sam3_text") is False  # SAM3 itself stays at its default
    assert req.config.prepass.sahi_window_size == 224 and req.config.prepass.classifier_id == "head-x"
    for text in ("job-synth", "best_single_source:yolo", "accept_all", "0.900", "per-class F1", "circle 0.420",
                 "report.json"):
        assert text in res.output, (text, res.output)


async def test_calibrate_json_prints_the_report_document(orch) -> None:
    _, address = orch
    res = await _cli("calibrate", "--dataset", "synth", "--json", "--address", address)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout[res.stdout.index("{"):])
    assert doc["job_id"] == "job-1" and doc["thresholds"][0]["model"] == "ACCEPT_METHOD_XGB"
    assert doc["results"][2]["method"] == "ACCEPT_METHOD_BEST_SINGLE_SOURCE" and doc["results"][2]["source"] == "DETECTION_SOURCE_YOLO"


async def test_guard_failure_and_failed_job_exit_non_zero(orch) -> None:
    fake, address = orch
    res = await _cli("calibrate", "--dataset", "nogt", "--address", address)
    assert res.exit_code == 1 and "FAILED_PRECONDITION" in res.output and "NO_GROUND_TRUTH" in res.output
    res = await _cli("calibrate", "--dataset", "broken", "--model", "mlp", "--address", address)
    assert res.exit_code == 1 and "JOB_STATE_FAILED" in res.output and "detectors" in res.output
    assert fake.requests[-1].config.model == pb.CALIBRATION_MODEL_MLP


async def test_report_command(orch) -> None:
    _, address = orch
    res = await _cli("report", "job-1", "--address", address)
    assert res.exit_code == 0 and "best_single_source:yolo" in res.output and "+0.140" in res.output
    res = await _cli("report", "job-missing", "--address", address)
    assert res.exit_code == 1 and "JOB_NOT_FOUND" in res.output


async def test_prepass_with_a_calibration_runs_its_prepass_config_and_prints_the_decisions(orch, tmp_path) -> None:
    fake, address = orch
    image = tmp_path / "im.png"
    image.write_bytes(b"not decoded by the stand-in")
    res = await _cli("prepass", str(image), "--dataset", "synth", "--calibration", "job-1", "--address", address)
    assert res.exit_code == 0, res.output
    req = fake.prepasses[-1]
    assert req.calibration_id == "job-1"
    # the accept model refuses another prepass config hash: the CLI starts from the one it was trained on
    assert req.config == REPORT.config.prepass
    assert "accept" in res.output and "yes 0.93" in res.output and "no 0.12" in res.output
    # flags still apply on top of it
    res = await _cli("prepass", str(image), "--dataset", "synth", "--calibration", "job-1", "--caption",
                     "--address", address)
    assert res.exit_code == 0, res.output
    assert fake.prepasses[-1].config.enable_caption is True and fake.prepasses[-1].config.detector_conf == 0.25
    # an explicit config is the user's choice: sent as given
    res = await _cli("prepass", str(image), "--dataset", "synth", "--calibration", "job-1", "--config",
                     '{"detectorConf": 0.5}', "--address", address)
    assert res.exit_code == 0, res.output
    assert fake.prepasses[-1].config == pb.PrepassConfig(detector_conf=0.5)
    # without a calibration there is no accept column
    res = await _cli("prepass", str(image), "--dataset", "synth", "--address", address)
    assert res.exit_code == 0 and "accept" not in res.output and not fake.prepasses[-1].calibration_id
    res = await _cli("prepass", "--dataset", "synth", "--calibration", "job-1", "--address", address)
    assert res.exit_code == 2 and "one IMAGE" in res.output


def test_report_in_a_pipe_keeps_every_interval_whole(capsys, monkeypatch) -> None:
    """Written to a pipe (CI logs, `| tee`), the table is not cut to 80 columns: no interval is elided."""
    from tator_cli.commands.calibration import print_report

    monkeypatch.delenv("COLUMNS", raising=False)
    report = pb.CalibrationReport()
    report.CopyFrom(REPORT)
    for r in report.results:
        for name, (lo, hi) in {"precision": (0.9251, 0.9999), "recall": (0.9031, 0.9899), "f1": (0.9221, 0.9861)}.items():
            ci = getattr(r.overall, f"{name}_ci")
            ci.lower, ci.upper = lo, hi
    print_report(report)
    out = capsys.readouterr().out
    assert out.count("[0.925-1.000]") == 3 and out.count("[0.922-0.986]") == 3, out
    assert "…" not in out, out
