"""The regression harness: the baseline diff catches regressions, and the runner works without a stack
and against a (fake) live service."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from typer.testing import CliRunner

from tator_cli.main import app
from tator_core.gen.tator.common.v1 import common_pb2, models_pb2, models_pb2_grpc
from tator_core.gen.tator.detector.v1 import detector_pb2_grpc
from tator_fixtures import REPO_ROOT
from tator_fixtures.regress import diff_summaries, run_regress
from tator_fixtures.regress.diff import accept_baseline, compare
from tator_fixtures.regress.registry import registered_steps

BASELINE = REPO_ROOT / "tests" / "baselines" / "regress.json"
TOLERANCES = {"flow.prepass": {"detections": 2, "classes.circle": 1}}


@pytest.fixture
def base() -> dict:
    return {
        "schema": 1, "pipeline_version": "1", "seed": 0, "tiers": [0, 1], "fast": False,
        "fingerprint": {"detector": "aa", "orchestrator": "bb"},
        "hashes": {"glossary": "g", "labelmap": "l", "fuzz_pack": "f"},
        "config_hash": "c",
        "steps": {
            "core.detector.health": {"tier": 0, "service": "detector", "heavy": False, "status": "ok",
                                     "extra": {"health": "SERVING"}},
            "flow.prepass": {"tier": 1, "service": "orchestrator", "heavy": False, "status": "ok",
                             "detections": 10, "classes": {"circle": 4, "square": 6},
                             "sources": {"yolo": 6, "sam3_text": 4}, "cache": {"hits": 0, "misses": 1},
                             "config_hash": "p1", "extra": {"models": {"yolo-synth": "yolo"}}},
            "flow.calibration": {"tier": 1, "service": "orchestrator", "heavy": False, "status": "ok",
                                 "metrics": {"precision": 0.9, "recall": 0.8, "f1": 0.85},
                                 "hashes": {"recipe": "r1"}},
            "sam3.text": {"tier": 1, "service": "sam3", "heavy": True, "status": "ok", "detections": 3},
            "deep.val": {"tier": 2, "service": "orchestrator", "heavy": False, "status": "ok", "detections": 50},
        },
    }


def _diff(baseline: dict, current: dict) -> list[str]:
    return diff_summaries(baseline, current, TOLERANCES)


def test_identical_summaries_pass(base: dict) -> None:
    assert _diff(base, copy.deepcopy(base)) == []


def test_f1_down_3_percent_fails_and_1_percent_passes(base: dict) -> None:
    cur = copy.deepcopy(base)
    cur["steps"]["flow.calibration"]["metrics"]["f1"] = 0.82
    assert _diff(base, cur) == ["step flow.calibration: metrics.f1: 0.85 -> 0.82 (drop > 0.02)"]
    cur["steps"]["flow.calibration"]["metrics"]["f1"] = 0.84
    assert _diff(base, cur) == []
    cur["steps"]["flow.calibration"]["metrics"]["f1"] = 0.95  # improvements never fail
    assert _diff(base, cur) == []


@pytest.mark.parametrize(
    "path", [("detections",), ("sources", "sam3_text"), ("extra", "models", "yolo-synth"), ("config_hash",)]
)
def test_removed_field_fails(base: dict, path: tuple[str, ...]) -> None:
    cur = copy.deepcopy(base)
    holder = cur["steps"]["flow.prepass"]
    for key in path[:-1]:
        holder = holder[key]
    del holder[path[-1]]
    problems = _diff(base, cur)
    assert len(problems) == 1 and problems[0].startswith(f"step flow.prepass: {'.'.join(path)}: missing")


def test_changed_fingerprint_fails(base: dict) -> None:
    cur = copy.deepcopy(base)
    cur["fingerprint"]["detector"] = "ab"
    assert _diff(base, cur) == ["summary: fingerprint.detector: aa -> ab"]
    del cur["fingerprint"]["orchestrator"]
    assert "summary: fingerprint.orchestrator: missing" in _diff(base, cur)


def test_pinned_values_fail_when_changed(base: dict) -> None:
    cur = copy.deepcopy(base)
    cur["pipeline_version"] = "2"
    cur["hashes"]["glossary"] = "g2"
    cur["steps"]["flow.calibration"]["hashes"]["recipe"] = "r2"
    cur["steps"]["flow.prepass"]["config_hash"] = "p2"
    assert sorted(_diff(base, cur)) == [
        "step flow.calibration: hashes.recipe: 'r1' -> 'r2'",
        "step flow.prepass: config_hash: 'p1' -> 'p2'",
        "summary: hashes.glossary: g -> g2",
        "summary: pipeline_version: '1' -> '2'",
    ]


def test_counts_respect_declared_tolerances(base: dict) -> None:
    cur = copy.deepcopy(base)
    prepass = cur["steps"]["flow.prepass"]
    prepass["detections"], prepass["classes"]["circle"] = 12, 3  # within 2 and 1
    assert _diff(base, cur) == []
    prepass["detections"], prepass["classes"]["square"] = 13, 7  # beyond 2; squares have no tolerance
    assert sorted(_diff(base, cur)) == [
        "step flow.prepass: classes.square: 6 -> 7 (tolerance 0)",
        "step flow.prepass: detections: 10 -> 13 (tolerance 2)",
    ]


def test_status_regressions(base: dict) -> None:
    cur = copy.deepcopy(base)
    cur["steps"]["core.detector.health"] = {"tier": 0, "service": "detector", "heavy": False,
                                            "status": "skipped", "reason": "detector at x is UNREACHABLE"}
    cur["steps"]["flow.prepass"] = {"tier": 1, "service": "orchestrator", "heavy": False,
                                    "status": "failed", "error": "deadline exceeded (20 s)"}
    del cur["steps"]["flow.calibration"]
    assert sorted(_diff(base, cur)) == [
        "step core.detector.health: status: ok -> skipped (detector at x is UNREACHABLE)",
        "step flow.calibration: missing from the run",
        "step flow.prepass: status: ok -> failed (deadline exceeded (20 s))",
    ]


def test_unselected_tiers_and_fast_skips_are_not_compared(base: dict) -> None:
    cur = copy.deepcopy(base)
    cur["tiers"], cur["fast"] = [0, 1], True
    del cur["steps"]["deep.val"]
    cur["steps"]["sam3.text"] = {"tier": 1, "service": "sam3", "heavy": True, "status": "skipped", "reason": "fast"}
    assert _diff(base, cur) == []
    cur["fast"] = False
    assert _diff(base, cur) == ["step sam3.text: status: ok -> skipped (fast)"]


def test_improvements_and_new_things_are_changes_not_regressions(base: dict) -> None:
    old = copy.deepcopy(base)
    old["steps"]["core.detector.health"] = {"tier": 0, "service": "detector", "heavy": False, "status": "skipped"}
    cur = copy.deepcopy(base)
    cur["steps"]["flow.new"] = {"tier": 1, "service": "local", "heavy": False, "status": "ok"}
    cur["steps"]["flow.prepass"]["sources"]["sam3_similarity"] = 2
    diff = compare(old, cur, TOLERANCES)
    assert diff.regressions == []
    assert sorted(diff.changes) == [
        "step core.detector.health: status skipped -> ok",
        "step flow.new: new step (status ok)",
        "step flow.prepass: sources.sam3_similarity: new field (2)",
    ]


def test_accepting_a_partial_run_keeps_the_other_records(base: dict) -> None:
    cur = copy.deepcopy(base)
    cur["tiers"], cur["fast"], cur["timings"] = [0, 1], True, {"flow.prepass": 1.5}
    del cur["steps"]["deep.val"]
    cur["steps"]["sam3.text"] = {"tier": 1, "service": "sam3", "heavy": True, "status": "skipped", "reason": "fast"}
    cur["steps"]["flow.prepass"]["detections"] = 11
    new = accept_baseline(base, cur)
    assert new["steps"]["deep.val"] == base["steps"]["deep.val"]
    assert new["steps"]["sam3.text"] == base["steps"]["sam3.text"]
    assert new["steps"]["flow.prepass"]["detections"] == 11
    assert new["tiers"] == [0, 1] and "timings" not in new and "fast" not in new


def test_offline_run_matches_the_committed_baseline_pins() -> None:
    """Without a stack every service step is skipped; fingerprints and input hashes still must match
    the committed baseline, so a proto or fuzz-pack change cannot land without a deliberate update."""
    summary = run_regress(tiers=(0, 1, 2), addresses={})
    baseline = json.loads(BASELINE.read_text())
    for key in ("schema", "pipeline_version", "seed", "fingerprint", "hashes"):
        assert summary[key] == baseline[key], key
    assert all(r["status"] == "skipped" for r in summary["steps"].values() if r["service"] != "local")
    assert {s.name for s in registered_steps()} >= {"core.detector.list_models", "core.orchestrator.list_glossaries"}


# --- against a live (fake) detector -------------------------------------------------------------


class FakeDetectorModels(models_pb2_grpc.ModelManagementServiceServicer):
    """The model listing a detector serves (tator.common.v1.ModelManagementService)."""

    def __init__(self, device: str) -> None:
        self.device = device

    def ListModels(self, request, context):
        return models_pb2.ListModelsResponse(models=[common_pb2.ModelInfo(
            id="yolo-synth", family="yolo", version="sha256:ab", device=self.device,
            state=common_pb2.MODEL_STATE_AVAILABLE, is_default=True, labelmap=["circle", "square", "triangle"],
        )])


@pytest.fixture(params=["cpu", ""], ids=["valid", "empty-device"])
def detector(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    detector_pb2_grpc.add_DetectorServiceServicer_to_server(detector_pb2_grpc.DetectorServiceServicer(), server)
    models_pb2_grpc.add_ModelManagementServiceServicer_to_server(FakeDetectorModels(request.param), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", "tator.detector.v1.DetectorService"):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", request.param
    server.stop(grace=None)


def test_tier0_against_a_live_detector(detector: tuple[str, str]) -> None:
    address, device = detector
    steps = run_regress(tiers=(0,), addresses={"detector": address})["steps"]
    assert steps["core.detector.health"]["status"] == "ok"
    assert steps["core.sam3.list_models"] == {"tier": 0, "service": "sam3", "heavy": False,
                                              "status": "skipped", "reason": "no address for sam3"}
    listing = steps["core.detector.list_models"]
    if device:
        assert listing["status"] == "ok" and listing["extra"] == {"models": {"yolo-synth": "yolo"}}
    else:
        assert listing["status"] == "failed" and "empty device" in listing["error"]


def test_cli_update_then_compare(tmp_path: Path) -> None:
    stack = tmp_path / "stack.yaml"
    stack.write_text("services:\n  detector: {address: '127.0.0.1:1'}\n")
    baseline = tmp_path / "baseline.json"
    runner = CliRunner()
    args = ["regress", "--tier", "0", "--stack-config", str(stack), "--baseline", str(baseline)]
    updated = runner.invoke(app, [*args, "--update-baseline"])
    assert updated.exit_code == 0, updated.output
    assert "accept: (new baseline)" in updated.output
    again = runner.invoke(app, [*args, "--out", str(tmp_path / "summary.json")])
    assert again.exit_code == 0, again.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps"]["core.detector.health"]["reason"] == "detector at 127.0.0.1:1 is UNREACHABLE"
    doc = json.loads(baseline.read_text())
    doc["fingerprint"]["qwen"] = "0" * 64
    baseline.write_text(json.dumps(doc))
    failed = runner.invoke(app, args)
    assert failed.exit_code == 1
    assert "regression: summary: fingerprint.qwen" in failed.output
    accepted = runner.invoke(app, [*args, "--update-baseline"])
    assert accepted.exit_code == 0 and "accept: summary: fingerprint.qwen" in accepted.output
    assert runner.invoke(app, args).exit_code == 0


def test_cli_reads_the_stack_config_tator_up_uses(tmp_path: Path) -> None:
    """Without --stack-config, `tator regress` probes the stack that TATOR_STACK_CONFIG names (as `tator up`
    and `tator status` do), not the default ports."""
    stack = tmp_path / "stack.yaml"
    stack.write_text("services:\n  detector: {address: '127.0.0.1:2'}\n")
    out = tmp_path / "summary.json"
    done = CliRunner().invoke(app, ["regress", "--tier", "0", "--out", str(out)],
                              env={"TATOR_STACK_CONFIG": str(stack)})
    assert done.exit_code == 0, done.output
    steps = json.loads(out.read_text())["steps"]
    assert steps["core.detector.health"]["reason"] == "detector at 127.0.0.1:2 is UNREACHABLE"
    assert steps["core.sam3.health"]["reason"] == "no address for sam3"


# --- runner mechanics, with throwaway local steps -----------------------------------------------


@pytest.fixture
def local_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from tator_fixtures.regress import registry

    registered_steps()  # import the real step modules first, then swap in a scratch registry
    monkeypatch.setattr(registry, "_STEPS", {})

    @registry.step("t.draw", tier=1, service="local")
    async def draw(ctx):
        return {"detections": ctx.rng.randrange(1000), "extra": {"images": len(ctx.fuzz_pack.images)}}

    @registry.step("t.slow", tier=1, service="local", deadline_s=0.05)
    async def slow(ctx):
        await asyncio.sleep(1)
        return {}

    @registry.step("t.bad", tier=1, service="local")
    async def bad(ctx):
        return {"detections": "three"}

    @registry.step("t.heavy", tier=1, service="local", heavy=True)
    async def heavy(ctx):
        return {}


@pytest.mark.usefixtures("local_steps")
def test_runner_seeds_bounds_and_validates_steps() -> None:
    first = run_regress(tiers=(1,), addresses={})["steps"]
    assert first["t.draw"]["status"] == "ok" and first["t.draw"]["extra"] == {"images": 4}
    assert run_regress(tiers=(1,), addresses={})["steps"]["t.draw"] == first["t.draw"]
    assert run_regress(tiers=(1,), addresses={}, seed=1)["steps"]["t.draw"] != first["t.draw"]
    assert first["t.slow"]["error"] == "deadline exceeded (0.05 s)"
    assert first["t.bad"]["status"] == "failed" and "'detections' must be int" in first["t.bad"]["error"]
    assert first["t.heavy"]["status"] == "ok"
    assert run_regress(tiers=(1,), addresses={}, fast=True)["steps"]["t.heavy"]["reason"] == "fast"
