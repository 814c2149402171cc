"""Raw detections of one call until the merge: a bounded keeper, and the prompts a merged detection stands for."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from tator_core import geometry


@dataclass(frozen=True)
class ExemplarHandle:
    """The exemplars of one label that one prompt run used: indexes into the set's positives (those
    intersecting the window) and those boxes in full-image pixels. Frozen, so a merge can tell repeats."""

    label: str
    indexes: tuple[int, ...]
    positives: tuple[geometry.XYXY, ...]
    text: str = ""


#: The prompt behind a raw detection: a text as the request spelled it, or exemplars.
Prompt = str | ExemplarHandle


class BestRaw:
    """At most `cap` raw detections, the best-scored, handed back in the order they came.

    A call with a low score threshold over many prompts and windows finds every query of every prompt
    run, each with its mask probabilities; holding all of them until the merge made one call's memory
    grow with its prompt count. Keeping the best `cap` bounds it by a setting; dropping the lowest
    scores first loses the detections the merge and the caller rank last. On equal scores the later
    one goes, so a call under the cap keeps exactly what it found, in the same order.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.dropped = 0
        self._heap: list[tuple[float, int, geometry.Scored]] = []  # (score, -arrival, item): min = first to go
        self._arrival = itertools.count()

    def add(self, item: geometry.Scored) -> None:
        entry = (item.score, -next(self._arrival), item)
        if len(self._heap) < self.cap:
            heapq.heappush(self._heap, entry)
            return
        self.dropped += 1
        if entry[:2] > self._heap[0][:2]:
            heapq.heapreplace(self._heap, entry)

    def items(self) -> list[geometry.Scored]:
        return [item for *_, item in sorted(self._heap, key=lambda e: -e[1])]


def merged_prompts(kept: Sequence[geometry.Scored], raw: Sequence[geometry.Scored],
                   iou_thr: float) -> list[list[Prompt]]:
    """Per kept detection (NMS order), its own prompt, then the prompts of the raw detections it
    suppressed: same label, not a better score, IoU > iou_thr with it (the first such kept one, as NMS
    would have suppressed them). Without this a merged detection forgot every prompt but one."""
    out: list[list[Prompt]] = [[k.ref[2]] for k in kept]
    kept_ids = {id(k) for k in kept}
    by_label: dict[str, list[int]] = {}
    for i, k in enumerate(kept):
        by_label.setdefault(k.label, []).append(i)
    rest = sorted((r for r in raw if id(r) not in kept_ids), key=lambda r: -r.score)
    for label, idx in by_label.items():
        mine = [r for r in rest if r.label == label]
        if not mine:
            continue
        ious = geometry.iou_matrix([kept[i].box for i in idx], [r.box for r in mine]).numpy()
        for j, r in enumerate(mine):
            for row, i in enumerate(idx):
                if kept[i].score >= r.score and float(ious[row, j]) > iou_thr:
                    out[i] += [] if r.ref[2] in out[i] else [r.ref[2]]
                    break
    return out
