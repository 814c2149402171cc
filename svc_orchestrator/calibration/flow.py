"""The calibration job: prepass results in, accept models and a report out.

Steps: select and split images (seeded, by image) -> prepass every image
through the environment (cache hit or run; a failure fails the job instead
of being cached as an empty record) -> optional embeddings ->
features (size prior from the training split's GT only) -> one-to-one labels
-> fit each requested model -> per-class thresholds on val -> test-split
evaluation next to the baselines -> report + versioned accept model.

The flow is one async function; CPU-heavy steps run in worker threads
(`asyncio.to_thread`) so the orchestrator's event loop keeps serving, and
`cancelled()` is checked between images and between steps (a cancelled job
raises the job manager's `JobCancelled`, which ends the job CANCELLED). The
orchestrator calls `check_guards` before it creates the job, so guard
failures are the RPC's own error.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from svc_orchestrator.calibration import accept_model as am
from svc_orchestrator.calibration import leakage
from svc_orchestrator.calibration import pipeline as pl
from svc_orchestrator.calibration.candidates import build_table
from svc_orchestrator.calibration.features import FeatureSchema, fit_size_prior, image_features
from svc_orchestrator.calibration.guards import check_guards
from svc_orchestrator.calibration.inputs import CalibrationRequest, ImagePrepass, PrepassChoice, ServiceModels
from svc_orchestrator.calibration.labeling import label_candidates
from svc_orchestrator.calibration.report import ReportDoc, save_report
from svc_orchestrator.calibration.split import Split, select_images, split_images
from svc_orchestrator.jobs import JobCancelled
from tator_core import errors
from tator_core.hashing import atomic_write_text

__all__ = ["CalibrationEnv", "check_guards", "check_leakage", "run_calibration", "apply_accept_model"]

apply_accept_model = am.apply_accept_model
#: Images prepassed concurrently; the model services micro-batch across them.
PREPASS_CONCURRENCY = 4
Progress = Callable[[int, int, str], Awaitable[None]]


class CalibrationEnv(Protocol):
    """What the flow asks of the orchestrator: the model services' state, one image's prepass with
    the request's prepass choices, and the classifier embeddings of boxes."""

    async def list_models(self) -> list[ServiceModels]: ...

    async def prepass(self, dataset, item, config: PrepassChoice) -> ImagePrepass: ...

    async def embed(self, dataset, item, boxes: list[tuple[float, float, float, float]]) -> list[list[float]]: ...


def plan_split(dataset, s: pl.Settings) -> tuple[list[str], Split]:
    """The images a calibration uses and their train/val/test split (seeded, by image)."""
    by_split: dict[str, list[str]] = {}
    for it in dataset.items():
        by_split.setdefault(it.split, []).append(it.name)
    names = select_images(by_split, s.max_images, s.seed)
    return names, split_images(names, val_fraction=s.val_fraction, test_fraction=s.test_fraction, seed=s.seed)


async def check_leakage(models: Sequence[ServiceModels], dataset, request: CalibrationRequest) -> None:
    """Refuse (before the job starts) a test split a model of the stack was trained on."""
    _, split = plan_split(dataset, request.settings)
    found = await asyncio.to_thread(leakage.overlap, dataset, split, leakage.used_models(models, request.prepass))
    leakage.check(found, allow=request.allow_training_overlap)


def _large_scenes(dataset, names: Sequence[str]) -> set[str]:
    return {n for n in names if max(dataset.image_size(dataset.item(n))) >= pl.LARGE_SIDE}


def _check(cancelled: Callable[[], bool]) -> None:
    if cancelled():
        raise JobCancelled("calibration cancelled")


async def _prepass_all(env: CalibrationEnv, dataset, names: list[str], config: PrepassChoice,
                       embedding_dims: int, progress: Callable[[str], Awaitable[None]],
                       cancelled: Callable[[], bool]) -> tuple[list[ImagePrepass], list[list | None]]:
    """Prepass (and embed) every image, a few at a time, keeping image order; the first failure stops all."""
    results: list[ImagePrepass | None] = [None] * len(names)
    embeds: list[list | None] = [None] * len(names)
    queue = list(range(len(names)))[::-1]
    failure: list[BaseException] = []

    async def worker() -> None:
        while queue and not failure:
            if cancelled():
                return
            k = queue.pop()
            item = dataset.item(names[k])
            try:
                res = await env.prepass(dataset, item, config)
                if embedding_dims and res.candidates:
                    boxes = [c.box for c in res.candidates]
                    embeds[k] = await env.embed(dataset, item, boxes)
            except BaseException as exc:  # re-raised below, after the other workers stopped
                failure.append(exc)
                return
            results[k] = res
            await progress(names[k])

    await asyncio.gather(*(worker() for _ in range(min(PREPASS_CONCURRENCY, len(names)))))
    if failure:
        raise failure[0]
    _check(cancelled)
    return [r for r in results if r is not None], embeds


def _consistent(results: list[ImagePrepass]) -> tuple[dict[str, str], tuple[str, ...], str, str]:
    """The model versions, classifier classes, config hash and glossary hash every result must share: the
    accept model records them and refuses results that differ in any of them."""
    versions = dict(results[0].model_versions)
    classes: tuple[str, ...] = ()
    for r in results:
        if dict(r.model_versions) != versions:
            raise errors.failed_precondition(
                "CALIBRATION_VERSION_MISMATCH", f"prepass results disagree on model versions ({r.image_name}); "
                "models changed during the calibration, start it again", image=r.image_name)
        for what, got, first in (("config", r.config_hash, results[0].config_hash),
                                 ("glossary", r.glossary_hash, results[0].glossary_hash)):
            if got != first:
                raise errors.failed_precondition(
                    "CALIBRATION_VERSION_MISMATCH", f"prepass results disagree on the {what} hash ({r.image_name}); "
                    "start the calibration again", image=r.image_name)
        if r.candidates:
            if not r.classifier_classes:
                raise errors.failed_precondition("STAGE_FAILED", f"prepass of {r.image_name} has no classifier "
                                                 "probabilities; calibration needs the classifier stage",
                                                 stage="classifier", image=r.image_name)
            if classes and tuple(r.classifier_classes) != classes:
                raise errors.failed_precondition("CALIBRATION_VERSION_MISMATCH", "prepass results disagree on the "
                                                 "classifier classes", image=r.image_name)
            classes = tuple(r.classifier_classes)
    if not classes:
        raise errors.failed_precondition("STAGE_FAILED", "the prepass found no candidates in any selected image",
                                         stage="prepass")
    return versions, classes, results[0].config_hash, results[0].glossary_hash


def _build_features(dataset, names: list[str], results: list[ImagePrepass], embeds: list, schema: FeatureSchema,
                    train: Sequence[str], cancelled: Callable[[], bool]):
    """(size prior, X, table); reads GT files and image headers, so it runs in a worker thread."""
    prior = fit_size_prior([(g.label, g.box, *dataset.image_size(it)) for it in map(dataset.item, train)
                            for g in dataset.ground_truth(it)])
    blocks, per_image = [], []
    for name, res, emb in zip(names, results, embeds):
        if cancelled():
            return None
        blocks.append(image_features(res, schema, prior, emb))
        cands = [(c.label, c.box, c.score, c.sources) for c in res.candidates]
        gts = [(g.label, g.box) for g in dataset.ground_truth(dataset.item(name))]
        per_image.append((name, cands, gts))
    X = np.concatenate(blocks) if blocks else np.zeros((0, schema.width), dtype=np.float32)
    return prior, X, build_table(per_image)


async def run_calibration(env: CalibrationEnv, dataset, request: CalibrationRequest, *, job_id: str, job_dir: Path,
                          progress: Progress, cancelled: Callable[[], bool]) -> ReportDoc:
    """The job: its report document (also saved as report.json next to the accept model)."""
    s = request.settings
    job_dir = Path(job_dir)
    timing: dict[str, float] = {}
    t_all = time.perf_counter()
    names, split = plan_split(dataset, s)
    models = await env.list_models()
    found = await asyncio.to_thread(leakage.overlap, dataset, split, leakage.used_models(models, request.prepass))
    warnings = leakage.check(found, allow=request.allow_training_overlap)
    steps = ["features", "labels", *(f"train {k}" for k in s.kinds), "thresholds", "evaluate", "report"]
    total, done = len(names) + len(steps), 0

    ordered = asyncio.Lock()  # prepass workers report concurrently; events must reach the job in order

    async def step_done(message: str) -> None:
        nonlocal done
        async with ordered:
            done += 1
            await progress(done, total, message)

    await progress(0, total, f"prepass of {len(names)} images ({split.sizes()})")
    t = time.perf_counter()
    results, embeds = await _prepass_all(env, dataset, names, request.prepass, s.embedding_dims,
                                         lambda n: step_done(f"prepass: {n}"), cancelled)
    timing["prepass"] = time.perf_counter() - t
    versions, classes, config_hash, glossary = _consistent(results)
    input_dim = next((len(v) for e in embeds if e for v in e if len(v)), 0) if s.embedding_dims else 0
    if s.embedding_dims and not input_dim:
        raise errors.failed_precondition("STAGE_FAILED", "config.embedding_dims is set but the classifier returned "
                                         "no embeddings", stage="embed")
    schema = FeatureSchema(labelmap=tuple(dataset.labelmap), classifier_classes=classes,
                           embedding_dims=s.embedding_dims if input_dim else 0, embedding_input_dim=input_dim,
                           embedding_seed=s.seed)
    t = time.perf_counter()
    built = await asyncio.to_thread(_build_features, dataset, names, results, embeds, schema, split.train,
                                    cancelled)
    _check(cancelled)
    prior, X, table = built
    timing["features"] = time.perf_counter() - t
    await step_done(f"features: {X.shape[0]} candidates x {X.shape[1]} columns")
    labels = await asyncio.to_thread(label_candidates, table, s.label_iou)
    masks = pl.Masks.of(table, split)
    pl.check_trainable(labels.y, masks)
    await step_done(f"labels: {int(labels.y.sum())} positive of {len(labels.y)}")

    trained: list[pl.Trained] = []
    for kind in s.kinds:
        _check(cancelled)
        t = time.perf_counter()
        trained.append(await asyncio.to_thread(pl.fit_one, kind, X, labels.y, masks, s.seed))
        timing[f"train_{kind}"] = time.perf_counter() - t
        await step_done(f"trained {kind}")
    _check(cancelled)
    t = time.perf_counter()
    for tr in trained:
        await asyncio.to_thread(pl.tune, tr, table, split, masks, dataset.labelmap, s)
    timing["thresholds"] = time.perf_counter() - t
    await step_done("thresholds tuned on val")
    _check(cancelled)
    t = time.perf_counter()
    large = await asyncio.to_thread(_large_scenes, dataset, split.test)
    evaluation = await asyncio.to_thread(pl.evaluate_test, table, labels.y, trained, split, masks,
                                         dataset.labelmap, s, large)
    timing["evaluate"] = time.perf_counter() - t
    await step_done("evaluated on test")
    _check(cancelled)

    default = max(trained, key=lambda tr: tr.val_f1).kind
    accept = am.AcceptModel(schema=schema, prior=prior, model_versions=versions, config_hash=config_hash,
                            glossary_hash=glossary, dedupe_iou=s.dedupe_iou, models={tr.kind: tr.model for tr in trained},
                            thresholds={tr.kind: tr.threshold_map for tr in trained}, default=default,
                            extra={"job_id": job_id, "dataset_id": dataset.id, "val_f1": {tr.kind: tr.val_f1
                                                                                           for tr in trained}})
    report = {
        "job_id": job_id, "dataset_id": dataset.id, "created_at": time.time(), "labelmap": list(dataset.labelmap),
        "settings": s.as_dict(), "prepass_config": dict(request.prepass.recorded),
        "prepass_config_hash": config_hash, "model_versions": versions,
        "glossary_hash": glossary,
        "split": {"sizes": split.sizes(), "images": split.as_dict()},
        "leakage": {"forced": request.allow_training_overlap, "models": leakage.summary(found)},
        "warnings": warnings,
        "prepass": {"images": len(results), "cache_hits": sum(int(r.cache_hit) for r in results),
                    "run_ids": [r.run_id for r in results],
                    "candidates": len(table), "atoms": sum(len(r.atoms) for r in results),
                    "warnings": sum(r.warnings for r in results)},
        "data": {**pl.data_summary(table, labels.y, split, masks, large), "labels": labels.as_summary()},
        "feature_schema": {"hash": schema.hash, "width": schema.width, "columns": schema.describe()},
        "size_prior": prior.to_dict(),
        "models": {tr.kind: {"fit": tr.model.info.as_dict(),
                             "thresholds": {lab: ch.as_dict() for lab, ch in tr.thresholds.items()},
                             "val_f1": tr.val_f1, "default": tr.kind == default,
                             **({"importance": tr.model.importance(schema.names)}
                                if isinstance(tr.model, am.mdl.XgbModel) else {})} for tr in trained},
        **evaluation,
        "comparison": pl.comparison(evaluation["results"], s.kinds, s.primary_iou),
    }

    def persist() -> ReportDoc:
        am.save(job_dir, accept)
        np.savez_compressed(job_dir / "features.npz", X=X, y=labels.y, image_index=table.image_index,
                            names=np.asarray(schema.names), images=np.asarray(table.images))
        atomic_write_text(job_dir / "split.json", json.dumps(split.as_dict(), indent=1))
        report["timing"] = {**{k: round(v, 3) for k, v in timing.items()},
                            "total": round(time.perf_counter() - t_all, 3)}
        return save_report(job_dir, report)

    job_dir.mkdir(parents=True, exist_ok=True)
    doc = await asyncio.to_thread(persist)
    await step_done("report saved")
    return doc
