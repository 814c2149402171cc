"""SAM3 similarity exemplars chosen from the Part-A clusters.

Per label: clusters scoring at least `min_score`, best first (ties broken by box, so the choice
does not depend on arrival order), the top `count` of them (`top`), or `count` drawn from the same
set with a seeded shuffle (`random`). Exemplars are the clusters' own pixel xyxy boxes, sent as
such: no box changes format on the way, so none can be read in the wrong one.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

from svc_orchestrator.prepass.provenance import Cluster
from tator_core.geometry import XYXY, is_valid_box


def label_rng(seed: int, label: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}:{label}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def select_exemplars(clusters: Sequence[Cluster], labels: Sequence[str], *, min_score: float, count: int,
                     strategy: str = "top", seed: int = 0) -> dict[str, list[XYXY]]:
    """{label: exemplar boxes}; a label without a qualifying cluster is absent."""
    out: dict[str, list[XYXY]] = {}
    for label in labels:
        pool = sorted((c for c in clusters if c.label == label and c.score >= min_score and is_valid_box(c.box)),
                      key=lambda c: (-c.score, c.box))
        if not pool:
            continue
        if strategy == "random":
            label_rng(seed, label).shuffle(pool)
        elif strategy != "top":
            raise ValueError(f"unknown exemplar strategy {strategy!r}")
        out[label] = [c.box for c in pool[:count]]
    return out
