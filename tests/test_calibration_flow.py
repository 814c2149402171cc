"""The calibration job end to end on simulated prepass results (no services needed).

`SimulatedEnv` stands in for the orchestrator's prepass on a real synthetic dataset (real `Dataset`, real
ground truth), so everything after the prepass is the production code: features, labels, both models,
thresholds, test-split evaluation, report files, the versioned accept model and its refusals.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import replace
from pathlib import Path

import grpc
import numpy as np
import pytest

from svc_orchestrator.calibration import apply_accept_model, needs_embeddings, pipeline, run_calibration
from svc_orchestrator.calibration.accept_model import load as load_accept
from svc_orchestrator.calibration.evaluate import Prediction, evaluate_predictions
from svc_orchestrator.calibration.features import fit_size_prior
from svc_orchestrator.calibration.inputs import PrepassChoice
from svc_orchestrator.calibration.report import REPORT_JSON
from svc_orchestrator.calibration.simulate import SimParams, SimulatedEnv
from svc_orchestrator.convert.calibration import calibration_request
from svc_orchestrator.convert.calibration_report import load_report, method_name, save_report_pb
from svc_orchestrator.datasets import DatasetCatalog
from svc_orchestrator.jobs import JobCancelled
from tator_core.enums import source_name
from tator_core.errors import TatorError
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
from tator_fixtures.synth import generate

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def ds(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("caldata")
    generate(root / "synth", seed=3, images=60)
    return DatasetCatalog(root).get("synth")


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[int, int, str]] = []

    async def __call__(self, done: int, total: int, message: str) -> None:
        self.events.append((done, total, message))


async def _run(ds, job_dir: Path, config: pb.CalibrationConfig, env: SimulatedEnv | None = None,
               cancelled=lambda: False) -> tuple[pb.CalibrationReport, Recorder]:
    """The job as the orchestrator runs it: the config converted in, the report's message saved out."""
    rec = Recorder()
    doc = await run_calibration(env or SimulatedEnv(ds), ds, calibration_request(config), job_id=job_dir.name,
                                job_dir=job_dir, progress=rec, cancelled=cancelled)
    return save_report_pb(job_dir, doc), rec


@pytest.fixture(scope="module")
def both(ds, tmp_path_factory: pytest.TempPathFactory):
    job_dir = tmp_path_factory.mktemp("jobs") / "cal_both"
    config = pb.CalibrationConfig(model=pb.CALIBRATION_MODEL_BOTH, eval_ious=[0.5, 0.75], seed=11)
    rep, rec = asyncio.run(_run(ds, job_dir, config))
    return rep, rec, job_dir


def _name(r: pb.MethodMetrics) -> str:
    return method_name(r.method, source_name(r.source))


def _at(rep: pb.CalibrationReport, method: str, iou: float = 0.5) -> pb.MethodMetrics:
    return next(r for r in rep.results if _name(r) == method and abs(r.eval_iou - iou) < 1e-6)


def _doc(job_dir: Path) -> dict:
    """The full report.json artifact (confusion counts, size prior, feature columns)."""
    return json.loads((job_dir / REPORT_JSON).read_text())


def test_report_is_typed_for_clients(both, ds) -> None:
    """Thresholds and PR curves are messages (a browser draws them), equal to the JSON they come from,
    and a report saved without them is upgraded on load."""
    rep, _, job_dir = both
    report = _doc(job_dir)
    assert list(rep.labelmap) == ds.labelmap and rep.primary_eval_iou == pytest.approx(0.5)
    assert [t.model for t in rep.thresholds] == [pb.ACCEPT_METHOD_MLP, pb.ACCEPT_METHOD_XGB]
    assert sum(t.is_default for t in rep.thresholds) == 1
    for t in rep.thresholds:
        assert [c.label for c in t.classes] == ds.labelmap
        for c in t.classes:
            src = report["models"][method_name(t.model)]["thresholds"][c.label]
            assert c.threshold == pytest.approx(src["threshold"]) and c.reason == src["reason"]
            assert c.val.tp == src["val"]["tp"]
    for curve in rep.curves:
        src = report["curves"][method_name(curve.model)]
        n = len(curve.thresholds)
        assert n > 2 and len(curve.precision) == len(curve.recall) == len(curve.f1) == n
        assert list(curve.thresholds) == sorted(curve.thresholds)
        assert list(curve.recall) == pytest.approx(src["recall"])
    assert [c.model for c in rep.curves] == [pb.ACCEPT_METHOD_MLP, pb.ACCEPT_METHOD_XGB]
    legacy = pb.CalibrationReport()
    legacy.CopyFrom(rep)
    for name in ("labelmap", "thresholds", "curves", "primary_eval_iou", "models", "train", "val", "test"):
        legacy.ClearField(name)
    copy_dir = job_dir.parent / "legacy_report"
    copy_dir.mkdir(exist_ok=True)
    (copy_dir / "report.pb").write_bytes(legacy.SerializeToString())
    (copy_dir / REPORT_JSON).write_text((job_dir / REPORT_JSON).read_text())
    upgraded = load_report(copy_dir)
    assert upgraded.thresholds == rep.thresholds and upgraded.curves == rep.curves
    assert upgraded.models == rep.models and upgraded.test == rep.test


def test_models_beat_the_best_single_source_on_test(both) -> None:
    rep, _, _ = both
    best = next(r for r in rep.results if r.method == pb.ACCEPT_METHOD_BEST_SINGLE_SOURCE and r.eval_iou == 0.5)
    accept_all = _at(rep, "accept_all")
    for kind in ("mlp", "xgb"):
        f1 = _at(rep, kind).overall.f1
        print(f"{kind}: test F1 {f1:.3f}; {_name(best)} {best.overall.f1:.3f}; accept_all {accept_all.overall.f1:.3f}")
        assert f1 >= best.overall.f1
        assert f1 >= 0.85


def test_report_shape_and_invariants(both, ds) -> None:
    rep, _, job_dir = both
    methods = {_name(r) for r in rep.results}
    assert {"mlp", "xgb", "accept_all"} <= methods and any(m.startswith("best_single_source:") for m in methods)
    assert sorted({r.eval_iou for r in rep.results}) == [0.5, 0.75]
    report = _doc(job_dir)
    test_gt = report["data"]["test"]["gt"]
    assert rep.test.ground_truth == test_gt
    assert test_gt > 0
    for r in rep.results:
        assert set(ds.labelmap) <= set(r.per_class)
        o = r.overall
        assert o.tp + o.fn == test_gt  # every method is measured against the same test GT
        assert sum(c.tp for c in r.per_class.values()) == o.tp
        assert sum(c.fp for c in r.per_class.values()) == o.fp
        for m in (o, *r.per_class.values()):
            assert 0 <= m.precision <= 1 and 0 <= m.recall <= 1
            if m.precision + m.recall:
                assert m.f1 == pytest.approx(2 * m.precision * m.recall / (m.precision + m.recall))
    assert dict(rep.split_images) == report["split"]["sizes"]
    assert sum(rep.split_images.values()) == 60 == rep.prepass_images
    sp = report["split"]["images"]
    assert not (set(sp["train"]) & set(sp["test"])) and not (set(sp["val"]) & set(sp["test"]))
    assert [list(rep.train.images), list(rep.val.images), list(rep.test.images)] == \
        [sorted(sp["train"]), sorted(sp["val"]), sorted(sp["test"])]
    assert [m.model for m in rep.models] == [pb.ACCEPT_METHOD_MLP, pb.ACCEPT_METHOD_XGB]
    for m, t in zip(rep.models, rep.thresholds):
        kind = method_name(m.model)
        assert m.candidate_metrics.average_precision > 0.5
        assert m.candidate_metrics.average_precision == report["candidate_metrics"][kind]["average_precision"]
        assert report["comparison"][kind]["f1"] == pytest.approx(_at(rep, kind).overall.f1)
        assert m.delta_f1_vs_best_single_source == report["comparison"][kind]["delta_vs_best_single_source"]
        assert m.val_f1 == report["models"][kind]["val_f1"] and m.train_rows > m.train_positives > 0
        assert t.is_default == report["models"][kind]["default"]
        assert all(c.tried > 0 for c in t.classes)
    assert rep.feature_width == report["feature_schema"]["width"] == len(report["feature_schema"]["columns"])
    assert list(rep.labelmap) == list(ds.labelmap) and rep.primary_eval_iou == pytest.approx(0.5)
    assert rep.config.model == pb.CALIBRATION_MODEL_BOTH and rep.config.seed == 11
    assert rep.config.HasField("label_iou") and list(rep.config.eval_ious) == pytest.approx([0.5, 0.75])
    assert rep.prepass_config_hash == report["prepass_config_hash"] and dict(rep.model_versions)
    assert 0 < rep.coverage_upper_bound <= 1 and rep.duration.ToNanoseconds() > 0
    assert rep.feature_schema_hash == load_accept(job_dir).schema.hash
    for entry in report["results"]:  # confusion counts add up to the metric counts
        conf, o = entry["confusion"], entry["overall"]
        assert sum(sum(row.values()) for lab, row in conf.items() if lab != "__missed__") == o["tp"] + o["fp"]
        assert sum(conf.get("__missed__", {}).values()) == o["fn"]
        assert sum(entry["fp_kinds"].values()) == o["fp"]


def test_prior_comes_from_training_split_only(both, ds) -> None:
    _, _, job_dir = both
    report = _doc(job_dir)
    train = [(g.label, g.box, *ds.image_size(ds.item(n))) for n in report["split"]["images"]["train"]
             for g in ds.ground_truth(ds.item(n))]
    assert report["size_prior"] == fit_size_prior(train).to_dict()
    everything = [(g.label, g.box, *ds.image_size(it)) for it in ds.items() for g in ds.ground_truth(it)]
    assert report["size_prior"] != fit_size_prior(everything).to_dict()


def test_every_rate_has_an_interval_and_the_report_says_what_it_rests_on(both, ds) -> None:
    rep, _, job_dir = both
    report = _doc(job_dir)
    test = report["data"]["test"]
    assert (len(rep.test.images), rep.test.ground_truth) == (test["images"], test["gt"]) and test["images"] > 0
    large = [n for n in rep.test.images if max(ds.image_size(ds.item(n))) >= pipeline.LARGE_SIDE]
    assert rep.large_side == pipeline.LARGE_SIDE and rep.test.large_images == len(large)
    assert rep.test.large_ground_truth == sum(len(ds.ground_truth(ds.item(n))) for n in large)
    for r in rep.results:
        for m in (r.overall, *r.per_class.values()):
            for name in ("precision", "recall", "f1"):
                ci = getattr(m, f"{name}_ci")
                assert m.HasField(f"{name}_ci") and ci.lower - 1e-4 <= getattr(m, name) <= ci.upper + 1e-4
        big = r.large_scenes
        assert big.tp + big.fn == rep.test.large_ground_truth
        assert big.recall_ci.lower - 1e-4 <= big.recall <= big.recall_ci.upper + 1e-4
    assert len(rep.models) == 2
    for m in rep.models:
        cm = m.candidate_metrics
        assert cm.HasField("expected_calibration_error") and 0 <= cm.expected_calibration_error <= 1
        assert len(cm.reliability) == 10 and sum(b.count for b in cm.reliability) == cm.rows
        assert cm.reliability[0].lower == 0 and cm.reliability[-1].upper == 1
    assert rep.training_overlap and not any(o.known for o in rep.training_overlap) and not rep.warnings


def test_artifacts_and_load_report(both) -> None:
    rep, _, job_dir = both
    assert len(rep.artifacts) == 4  # report.json, PR curves, per-class F1, reliability diagram
    for path in rep.artifacts:
        p = Path(path)
        assert p.is_file() and p.parent == job_dir
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
    assert load_report(job_dir) == rep
    with pytest.raises(TatorError) as exc:
        load_report(job_dir.parent / "nope")
    assert (exc.value.code, exc.value.reason) == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND")


def test_progress_is_monotonic_and_complete(both) -> None:
    _, rec, _ = both
    dones = [d for d, _, _ in rec.events]
    assert dones == sorted(dones) and dones[0] == 0
    assert rec.events[-1][0] == rec.events[-1][1] == 60 + 7  # images + features, labels, 2 fits, thresholds, eval, report
    assert any("trained xgb" in m for _, _, m in rec.events)


async def test_accept_model_reproduces_the_reported_decisions(both, ds) -> None:
    """Runtime decisions (apply) give exactly the report's test metrics: no train/serve skew."""
    rep, _, job_dir = both
    report = _doc(job_dir)
    accept = load_accept(job_dir)
    env = SimulatedEnv(ds)
    preds, gt = [], {}
    for name in report["split"]["images"]["test"]:
        item = ds.item(name)
        res = await env.prepass(ds, item, PrepassChoice())
        decisions = apply_accept_model(job_dir, res)
        assert len(decisions) == len(res.candidates)
        assert all(0.0 <= p <= 1.0 for p, _ in decisions)
        preds += [Prediction(name, c.label, c.box, p)
                  for c, (p, ok) in zip(res.candidates, decisions) if ok]
        gt[name] = [(g.label, g.box) for g in ds.ground_truth(item)]
    again = evaluate_predictions(preds, gt, labelmap=ds.labelmap, images=list(gt), eval_iou=0.5, dedupe_iou=0.75)
    reported = _at(rep, accept.default).overall
    assert (again.overall.tp, again.overall.fp, again.overall.fn) == (reported.tp, reported.fp, reported.fn)


async def test_version_and_schema_mismatch_are_refused(both, ds) -> None:
    _, _, job_dir = both
    item = ds.items()[0]
    env = SimulatedEnv(ds)
    env.model_versions = {**env.model_versions, "yolo-sim": "z" * 64}
    res = await env.prepass(ds, item, PrepassChoice())
    with pytest.raises(TatorError) as exc:
        apply_accept_model(job_dir, res)
    assert (exc.value.code, exc.value.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CALIBRATION_VERSION_MISMATCH")
    assert "yolo-sim" in exc.value.message
    res = await SimulatedEnv(ds).prepass(ds, item, PrepassChoice())
    del res.model_versions["sam3-sim"]
    with pytest.raises(TatorError) as exc:
        apply_accept_model(job_dir, res)
    assert exc.value.reason == "CALIBRATION_VERSION_MISMATCH" and "sam3-sim" in exc.value.message
    res = await SimulatedEnv(ds).prepass(ds, item, PrepassChoice())
    res = replace(res, classifier_classes=(*res.classifier_classes, "__bg_1"))
    with pytest.raises(TatorError) as exc:
        apply_accept_model(job_dir, res)
    assert exc.value.reason == "CALIBRATION_VERSION_MISMATCH" and "feature schema" in exc.value.message
    # Same models, other prepass config or glossary: other candidates and scores than it was trained on.
    for field, message in (("config_hash", "config hash"), ("glossary_hash", "glossary hash")):
        res = await SimulatedEnv(ds).prepass(ds, item, PrepassChoice())
        trained = getattr(res, field)
        res = replace(res, **{field: "f" * 64})
        with pytest.raises(TatorError) as exc:
            apply_accept_model(job_dir, res)
        assert (exc.value.code, exc.value.reason) == (grpc.StatusCode.FAILED_PRECONDITION,
                                                      "CALIBRATION_VERSION_MISMATCH")
        assert message in exc.value.message
        assert exc.value.metadata[f"trained_{field}"] == trained
        assert exc.value.metadata[f"result_{field}"] == "f" * 64
    res = await SimulatedEnv(ds).prepass(ds, item, PrepassChoice())
    ok = apply_accept_model(job_dir, res, kind="mlp")
    assert len(ok) == len(res.candidates)


async def test_deterministic_for_a_seed_and_fitting_runs_off_the_event_loop(ds, tmp_path: Path, monkeypatch) -> None:
    threads: list[bool] = []
    real = pipeline.fit_one

    def spy(*a, **kw):
        threads.append(threading.current_thread() is threading.main_thread())
        return real(*a, **kw)

    monkeypatch.setattr(pipeline, "fit_one", spy)
    config = pb.CalibrationConfig(model=pb.CALIBRATION_MODEL_MLP, seed=5, max_images=40)
    a, _ = await _run(ds, tmp_path / "a", config)
    b, _ = await _run(ds, tmp_path / "b", config)
    assert threads == [False, False]
    assert [(r.method, r.overall) for r in a.results] == [(r.method, r.overall) for r in b.results]
    assert list(a.thresholds) == list(b.thresholds)
    assert a.split_images == b.split_images and (a.train, a.val, a.test) == (b.train, b.val, b.test)
    assert sum(a.split_images.values()) == 40


async def test_embedding_projection_block(ds, tmp_path: Path) -> None:
    config = pb.CalibrationConfig(model=pb.CALIBRATION_MODEL_XGB, embedding_dims=6, max_images=30)
    rep, _ = await _run(ds, tmp_path / "emb", config)
    cols = _doc(tmp_path / "emb")["feature_schema"]["columns"]
    assert sum(c["block"] == "embedding" for c in cols) == 6
    assert needs_embeddings(tmp_path / "emb")
    env = SimulatedEnv(ds)
    item = ds.items()[1]
    res = await env.prepass(ds, item, PrepassChoice())
    with pytest.raises(TatorError) as exc:
        apply_accept_model(tmp_path / "emb", res)
    assert exc.value.reason == "MODEL_REQUIRED"
    boxes = [c.box for c in res.candidates]
    out = apply_accept_model(tmp_path / "emb", res, embeddings=await env.embed(ds, item, boxes))
    assert len(out) == len(res.candidates)


async def test_cancellation_between_images_stops_without_a_report(ds, tmp_path: Path) -> None:
    env = SimulatedEnv(ds)
    with pytest.raises(JobCancelled):
        await _run(ds, tmp_path / "c", pb.CalibrationConfig(), env=env, cancelled=lambda: env.prepass_calls >= 5)
    assert env.prepass_calls < 10
    assert not (tmp_path / "c" / "report.pb").exists()


async def test_no_positive_candidates_is_a_stage_failure(ds, tmp_path: Path) -> None:
    blind = SimulatedEnv(ds, params=SimParams(yolo_recall=0, rfdetr_recall=0, sam3_recall=0))
    with pytest.raises(TatorError) as exc:
        await _run(ds, tmp_path / "n", pb.CalibrationConfig(max_images=20), env=blind)
    assert (exc.value.code, exc.value.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "STAGE_FAILED")
    assert "training split" in exc.value.message


async def test_results_from_mixed_model_versions_are_refused(ds, tmp_path: Path) -> None:
    env = SimulatedEnv(ds)
    real = env.prepass

    async def drifting(dataset, item, config):
        res = await real(dataset, item, config)
        if env.prepass_calls > 3:
            res.model_versions["yolo-sim"] = "new" + "0" * 61
        return res

    env.prepass = drifting  # type: ignore[method-assign]  # the test swaps the prepass source
    with pytest.raises(TatorError) as exc:
        await _run(ds, tmp_path / "m", pb.CalibrationConfig(max_images=12), env=env)
    assert exc.value.reason == "CALIBRATION_VERSION_MISMATCH"


async def test_prepass_failure_fails_the_job_instead_of_caching_empty(ds, tmp_path: Path) -> None:
    env = SimulatedEnv(ds)

    async def broken(dataset, item, config):
        env.prepass_calls += 1
        from tator_core import errors
        raise errors.unavailable("STAGE_FAILED", "detector down", stage="detectors")

    env.prepass = broken  # type: ignore[method-assign]  # the test swaps the prepass source
    with pytest.raises(TatorError) as exc:
        await _run(ds, tmp_path / "f", pb.CalibrationConfig(max_images=12), env=env)
    assert exc.value.reason == "STAGE_FAILED"
    assert env.prepass_calls <= 4  # one per worker at most: the first failure stops the rest
    assert np.all([not (tmp_path / "f" / n).exists() for n in ("report.pb", "accept_model")])


async def test_the_message_forms_carry_what_the_calibration_reads(ds) -> None:
    """The orchestrator converts each prepass result and the request's prepass config at the boundary:
    through the message and back, nothing the calibration reads changes, and the prepass runs with the
    exact config the request gave."""
    from svc_orchestrator.convert.calibration import image_prepass, prepass_choice, prepass_config_pb, prepass_result_pb

    env = SimulatedEnv(ds)
    for item in ds.items()[:5]:
        view = await env.prepass(ds, item, PrepassChoice())
        assert view.candidates and view.atoms
        assert image_prepass(prepass_result_pb(view)) == view
    config = pb.PrepassConfig(enable_yolo=False, detector_conf=0.3, sahi_overlap_ratio=0.21, yolo_id="y",
                              sam3_text_synonym_budget=0, enable_caption=True)
    choice = prepass_choice(config)
    assert (choice.yolo, choice.rfdetr, choice.caption, choice.sam3_text_synonym_budget) == (False, True, True, 0)
    assert prepass_config_pb(choice) == config
