"""A seeded stand-in for the orchestrator's prepass, for tests and the benchmark.

`SimulatedEnv` implements `CalibrationEnv` from a dataset's ground truth:
YOLO finds most objects with jittered boxes (sometimes twice, from the SAHI
run, sometimes with the wrong class, sometimes a false box), RF-DETR and
SAM3 text find fewer objects and add random tiny noise boxes, atoms are
clustered class-aware at 0.75 IoU like the prepass, and the "classifier"
gives true objects most mass on their class and noise most mass on the
background class. It exercises every code path of the flow without model
services; it says nothing about real model quality.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from tator_core.convert import ModelStatus, box_pb, box_xyxy, model_info_pb
from tator_core.enums import source_value
from tator_core.gen.tator.common.v1 import common_pb2
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
from tator_core.geometry import Scored, greedy_clusters, iou
from tator_core.labels import labelmap_hash

if TYPE_CHECKING:
    from svc_orchestrator.datasets import Dataset

BACKGROUND = "__bg_0"
_STAGES = {"detector": pb.PREPASS_STAGE_DETECTORS, "sam3_text": pb.PREPASS_STAGE_SAM3_TEXT}


@dataclass
class SimParams:
    yolo_recall: float = 0.92
    yolo_duplicate: float = 0.15
    yolo_wrong_class: float = 0.05
    yolo_false_per_image: float = 0.3
    rfdetr_recall: float = 0.5
    sam3_recall: float = 0.6
    noise_per_image: float = 2.0          # tiny random boxes per noisy source (RF-DETR, SAM3 text)
    jitter: float = 0.04
    classifier_sharpness: float = 6.0


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)])


def _flag(cfg: pb.PrepassConfig, name: str) -> bool:
    return getattr(cfg, name) if cfg.HasField(name) else True


@dataclass
class SimulatedEnv:
    dataset: Dataset
    seed: int = 0
    params: SimParams = field(default_factory=SimParams)
    model_versions: dict[str, str] = field(default_factory=lambda: {
        "yolo-sim": "y" * 64, "rfdetr-sim": "r" * 64, "sam3-sim": "s" * 64, "head-sim": "h" * 64})
    prepass_calls: int = 0
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def classes(self) -> list[str]:
        return [*self.dataset.labelmap, BACKGROUND]

    async def list_models(self) -> pb.ListModelsResponse:
        lm = list(self.dataset.labelmap)

        def info(mid: str, fam: str, labelmap: list[str]) -> common_pb2.ModelInfo:
            return model_info_pb(ModelStatus(id=mid, family=fam, version=self.model_versions.get(mid, ""),
                                             device="cpu", state="READY", is_default=True, loaded=True,
                                             labelmap=labelmap))

        return pb.ListModelsResponse(services=[
            pb.ServiceModels(service="detector", address="sim", health=pb.SERVICE_HEALTH_SERVING,
                             models=[info("yolo-sim", "yolo", lm), info("rfdetr-sim", "rfdetr", lm)]),
            pb.ServiceModels(service="sam3", address="sim", health=pb.SERVICE_HEALTH_SERVING, models=[info("sam3-sim", "sam3", [])]),
            pb.ServiceModels(service="qwen", address="sim", health=pb.SERVICE_HEALTH_SERVING, models=[info("qwen-sim", "qwen", [])]),
            pb.ServiceModels(service="classifier", address="sim", health=pb.SERVICE_HEALTH_SERVING,
                             models=[info("head-sim", "head", self.classes)]),
        ])

    def _atoms(self, rng: np.random.Generator, gts, w: int, h: int, cfg: pb.PrepassConfig) -> list[pb.Atom]:
        p, lm = self.params, list(self.dataset.labelmap)
        atoms: list[pb.Atom] = []

        def add(stage: str, source: str, run: str, label: str, box, score: float) -> None:
            x1, y1, x2, y2 = (float(np.clip(box[0], 0, w)), float(np.clip(box[1], 0, h)),
                              float(np.clip(box[2], 0, w)), float(np.clip(box[3], 0, h)))
            if x2 - x1 < 1 or y2 - y1 < 1:
                return
            det = common_pb2.Detection(box=box_pb((x1, y1, x2, y2)), label=label, score=float(score),
                                       source=source_value(source), model_id=f"{source.split('_')[0]}-sim",
                                       class_id=lm.index(label))
            kind = (pb.ATOM_PASS_TILED if run.endswith("_sahi") else pb.ATOM_PASS_WINDOWED if run == "windowed"
                    else pb.ATOM_PASS_FULL)
            atoms.append(pb.Atom(atom_id=f"a{len(atoms) + 1:07d}", stage=_STAGES[stage], pass_kind=kind,
                                 detection=det))

        def jitter(box, scale: float):
            bw, bh = box[2] - box[0], box[3] - box[1]
            return [box[0] + rng.normal(0, scale) * bw, box[1] + rng.normal(0, scale) * bh,
                    box[2] + rng.normal(0, scale) * bw, box[3] + rng.normal(0, scale) * bh]

        def noise(stage: str, source: str, run: str, lo: float, hi: float) -> None:
            for _ in range(rng.poisson(p.noise_per_image)):
                s = rng.uniform(4, 14)
                x, y = rng.uniform(0, max(w - s, 1)), rng.uniform(0, max(h - s, 1))
                add(stage, source, run, str(rng.choice(lm)), (x, y, x + s, y + s * rng.uniform(0.7, 1.4)),
                    rng.uniform(lo, hi))

        yolo, rfdetr = _flag(cfg, "enable_yolo"), _flag(cfg, "enable_rfdetr")
        sam3 = _flag(cfg, "enable_sam3_text")
        for g in gts:
            if yolo and rng.random() < p.yolo_recall:
                wrong = rng.random() < p.yolo_wrong_class
                label = str(rng.choice([x for x in lm if x != g.label])) if wrong else g.label
                add("detector", "yolo", "yolo_full", label, jitter(g.box, p.jitter),
                    rng.uniform(0.45, 0.7) if wrong else rng.uniform(0.5, 0.97))
                if rng.random() < p.yolo_duplicate:
                    add("detector", "yolo", "yolo_sahi", label, jitter(g.box, 3 * p.jitter), rng.uniform(0.45, 0.8))
            if rfdetr and rng.random() < p.rfdetr_recall:
                add("detector", "rfdetr", "rfdetr_full", g.label, jitter(g.box, 2 * p.jitter), rng.uniform(0.3, 0.8))
            if sam3 and rng.random() < p.sam3_recall:
                add("sam3_text", "sam3_text", "full", g.label, jitter(g.box, p.jitter), rng.uniform(0.2, 0.9))
        if yolo:
            for _ in range(rng.poisson(p.yolo_false_per_image)):
                s = rng.uniform(0.1, 0.3) * min(w, h)
                x, y = rng.uniform(0, w - s), rng.uniform(0, h - s)
                add("detector", "yolo", "yolo_full", str(rng.choice(lm)), (x, y, x + s, y + s), rng.uniform(0.45, 0.6))
        if rfdetr:
            noise("detector", "rfdetr", "rfdetr_full", 0.3, 0.7)
        if sam3:
            noise("sam3_text", "sam3_text", "full", 0.2, 0.8)
        return atoms

    def _probs(self, rng: np.random.Generator, box, label: str, gts) -> list[float]:
        best = max(((iou(tuple(box), g.box), g.label) for g in gts), default=(0.0, ""))
        classes = self.classes
        alpha = np.ones(len(classes))
        target = classes.index(best[1]) if best[0] >= 0.5 else len(classes) - 1
        alpha[target] += self.params.classifier_sharpness
        if best[0] < 0.5 and label in classes:  # noise is sometimes confused with its claimed class
            alpha[classes.index(label)] += 1.5
        return [float(v) for v in rng.dirichlet(alpha)]

    async def prepass(self, dataset, item, config: pb.PrepassConfig) -> pb.PrepassResult:
        """Deterministic per (seed, image, config); a repeat is answered from a cache, marked cache_hit."""
        self.prepass_calls += 1
        key = (dataset.id, item.name, config.SerializeToString(deterministic=True),
               tuple(sorted(self.model_versions.items())))
        if key in self._cache:
            hit = pb.PrepassResult()
            hit.CopyFrom(self._cache[key])
            hit.cache_hit = True
            return hit
        res = self._simulate(dataset, item, config)
        self._cache[key] = res
        out = pb.PrepassResult()
        out.CopyFrom(res)
        return out

    def _simulate(self, dataset, item, config: pb.PrepassConfig) -> pb.PrepassResult:
        rng = _rng(self.seed, item.name)
        w, h = dataset.image_size(item)
        gts = dataset.ground_truth(item)
        atoms = self._atoms(rng, gts, w, h, config)
        scored = [Scored(box_xyxy(a.detection.box),
                         a.detection.score, a.detection.label, a) for a in atoms]
        res = pb.PrepassResult(image_name=item.name, width=w, height=h, atoms=atoms, classifier_classes=self.classes,
                               model_versions=self.model_versions, config_hash="sim-" + str(self.seed),
                               labelmap_hash=labelmap_hash(dataset.labelmap), glossary_hash=dataset.glossary_hash,
                               run_id=hashlib.sha256(f"sim-{self.seed}:{item.name}".encode()).hexdigest())
        for k, cl in enumerate(greedy_clusters(scored, 0.75)):
            members = [scored[i] for i in cl]
            rep = members[0]
            by_src: dict[common_pb2.DetectionSource, float] = {}
            for m in members:
                src = m.ref.detection.source
                by_src[src] = max(by_src.get(src, 0.0), m.score)
            probs = self._probs(rng, rep.box, rep.label, gts)
            top = sorted(probs, reverse=True)
            res.candidates.append(pb.Candidate(
                index=k, box=box_pb(rep.box), label=rep.label, score=rep.score,
                source_primary=rep.ref.detection.source, sources=sorted(by_src),
                source_scores=[pb.SourceScore(source=s, score=v) for s, v in sorted(by_src.items())],
                atom_ids=[m.ref.atom_id for m in members], probabilities=probs,
                classifier_label=self.classes[int(np.argmax(probs))], classifier_score=top[0],
                classifier_margin=top[0] - top[1]))
        return res

    async def embed(self, dataset, item, boxes) -> list[list[float]]:
        """Unit vectors: a label direction for boxes on an object, noise elsewhere."""
        gts = dataset.ground_truth(item)
        rng = _rng(self.seed + 1, item.name)
        dirs = np.random.default_rng(self.seed).standard_normal((len(self.classes), 16))
        out = []
        for b in boxes:
            best = max(((iou(tuple(b), g.box), g.label) for g in gts), default=(0.0, ""))
            k = self.classes.index(best[1]) if best[0] >= 0.5 else len(self.classes) - 1
            v = dirs[k] + rng.normal(0, 0.5, 16)
            out.append([float(x) for x in v / np.linalg.norm(v)])
        return out
