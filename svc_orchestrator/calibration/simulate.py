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
import json
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from svc_orchestrator.calibration.inputs import Atom, Candidate, ImagePrepass, PrepassChoice, ServiceModels
from tator_core.convert import ModelStatus
from tator_core.geometry import Scored, greedy_clusters, iou
from tator_core.labels import labelmap_hash

if TYPE_CHECKING:
    from svc_orchestrator.datasets import Dataset

BACKGROUND = "__bg_0"
#: Sources in the order of their contract enum, the order a candidate lists them in.
_SOURCE_ORDER = ("yolo", "rfdetr", "sam3_text", "sam3_similarity")


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


@dataclass
class SimulatedEnv:
    dataset: Dataset
    seed: int = 0
    params: SimParams = field(default_factory=SimParams)
    model_versions: dict[str, str] = field(default_factory=lambda: {
        "yolo-sim": "y" * 64, "rfdetr-sim": "r" * 64, "sam3-sim": "s" * 64, "head-sim": "h" * 64})
    prepass_calls: int = 0
    _cache: dict[tuple, ImagePrepass] = field(default_factory=dict, repr=False)

    @property
    def classes(self) -> list[str]:
        return [*self.dataset.labelmap, BACKGROUND]

    async def list_models(self) -> list[ServiceModels]:
        lm = list(self.dataset.labelmap)

        def info(mid: str, fam: str, labelmap: list[str]) -> ModelStatus:
            return ModelStatus(id=mid, family=fam, version=self.model_versions.get(mid, ""), device="cpu",
                               state="READY", is_default=True, loaded=True, labelmap=labelmap)

        return [
            ServiceModels("detector", "sim", "SERVING", (info("yolo-sim", "yolo", lm), info("rfdetr-sim", "rfdetr", lm))),
            ServiceModels("sam3", "sim", "SERVING", (info("sam3-sim", "sam3", []),)),
            ServiceModels("qwen", "sim", "SERVING", (info("qwen-sim", "qwen", []),)),
            ServiceModels("classifier", "sim", "SERVING", (info("head-sim", "head", self.classes),)),
        ]

    def _atoms(self, rng: np.random.Generator, gts, w: int, h: int, cfg: PrepassChoice) -> list[Atom]:
        p, lm = self.params, list(self.dataset.labelmap)
        atoms: list[Atom] = []

        def add(source: str, run: str, label: str, box, score: float) -> None:
            # The message's box and score are float32: round through it so simulated results score
            # exactly as they did when they travelled as messages.
            x1, y1, x2, y2 = (float(np.clip(box[0], 0, w)), float(np.clip(box[1], 0, h)),
                              float(np.clip(box[2], 0, w)), float(np.clip(box[3], 0, h)))
            if x2 - x1 < 1 or y2 - y1 < 1:
                return
            x1, y1, x2, y2 = (float(np.float32(v)) for v in (x1, y1, x2, y2))
            kind = "tiled" if run.endswith("_sahi") else "windowed" if run == "windowed" else "full"
            atoms.append(Atom(atom_id=f"a{len(atoms) + 1:07d}", source=source, label=label,
                              score=float(np.float32(score)), box=(x1, y1, x2, y2), pass_kind=kind))

        def jitter(box, scale: float):
            bw, bh = box[2] - box[0], box[3] - box[1]
            return [box[0] + rng.normal(0, scale) * bw, box[1] + rng.normal(0, scale) * bh,
                    box[2] + rng.normal(0, scale) * bw, box[3] + rng.normal(0, scale) * bh]

        def noise(source: str, run: str, lo: float, hi: float) -> None:
            for _ in range(rng.poisson(p.noise_per_image)):
                s = rng.uniform(4, 14)
                x, y = rng.uniform(0, max(w - s, 1)), rng.uniform(0, max(h - s, 1))
                add(source, run, str(rng.choice(lm)), (x, y, x + s, y + s * rng.uniform(0.7, 1.4)),
                    rng.uniform(lo, hi))

        yolo, rfdetr, sam3 = cfg.yolo, cfg.rfdetr, cfg.sam3_text
        for g in gts:
            if yolo and rng.random() < p.yolo_recall:
                wrong = rng.random() < p.yolo_wrong_class
                label = str(rng.choice([x for x in lm if x != g.label])) if wrong else g.label
                add("yolo", "yolo_full", label, jitter(g.box, p.jitter),
                    rng.uniform(0.45, 0.7) if wrong else rng.uniform(0.5, 0.97))
                if rng.random() < p.yolo_duplicate:
                    add("yolo", "yolo_sahi", label, jitter(g.box, 3 * p.jitter), rng.uniform(0.45, 0.8))
            if rfdetr and rng.random() < p.rfdetr_recall:
                add("rfdetr", "rfdetr_full", g.label, jitter(g.box, 2 * p.jitter), rng.uniform(0.3, 0.8))
            if sam3 and rng.random() < p.sam3_recall:
                add("sam3_text", "full", g.label, jitter(g.box, p.jitter), rng.uniform(0.2, 0.9))
        if yolo:
            for _ in range(rng.poisson(p.yolo_false_per_image)):
                s = rng.uniform(0.1, 0.3) * min(w, h)
                x, y = rng.uniform(0, w - s), rng.uniform(0, h - s)
                add("yolo", "yolo_full", str(rng.choice(lm)), (x, y, x + s, y + s), rng.uniform(0.45, 0.6))
        if rfdetr:
            noise("rfdetr", "rfdetr_full", 0.3, 0.7)
        if sam3:
            noise("sam3_text", "full", 0.2, 0.8)
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

    async def prepass(self, dataset, item, config: PrepassChoice) -> ImagePrepass:
        """Deterministic per (seed, image, config); a repeat is answered from a cache, marked cache_hit.
        Each answer is a copy: a caller that edits its versions leaves the cache as it was."""
        self.prepass_calls += 1
        key = (dataset.id, item.name, json.dumps(asdict(config), sort_keys=True),
               tuple(sorted(self.model_versions.items())))
        if key in self._cache:
            hit = self._cache[key]
            return replace(hit, model_versions=dict(hit.model_versions), cache_hit=True)
        res = self._simulate(dataset, item, config)
        self._cache[key] = res
        return replace(res, model_versions=dict(res.model_versions))

    def _simulate(self, dataset, item, config: PrepassChoice) -> ImagePrepass:
        rng = _rng(self.seed, item.name)
        w, h = dataset.image_size(item)
        gts = dataset.ground_truth(item)
        atoms = self._atoms(rng, gts, w, h, config)
        scored = [Scored(a.box, a.score, a.label, a) for a in atoms]
        candidates = []
        for cl in greedy_clusters(scored, 0.75):
            members = [scored[i] for i in cl]
            rep = members[0]
            by_src: dict[str, float] = {}
            for m in members:
                by_src[m.ref.source] = max(by_src.get(m.ref.source, 0.0), m.score)
            probs = self._probs(rng, rep.box, rep.label, gts)
            candidates.append(Candidate(
                box=rep.box, label=rep.label, score=rep.score, primary=rep.ref.source,
                sources=tuple(sorted(by_src, key=_SOURCE_ORDER.index)),
                source_scores={s: by_src[s] for s in sorted(by_src, key=_SOURCE_ORDER.index)},
                atom_ids=tuple(m.ref.atom_id for m in members),
                probabilities=tuple(float(np.float32(p)) for p in probs)))
        return ImagePrepass(image_name=item.name, width=w, height=h, candidates=tuple(candidates), atoms=tuple(atoms),
                            classifier_classes=tuple(self.classes), model_versions=dict(self.model_versions),
                            config_hash="sim-" + str(self.seed), labelmap_hash=labelmap_hash(dataset.labelmap),
                            glossary_hash=dataset.glossary_hash,
                            run_id=hashlib.sha256(f"sim-{self.seed}:{item.name}".encode()).hexdigest())

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
