"""The plain greedy dedupe loop, as a reference for the shared walk (tator_core.geometry.greedy_groups).

Written the obvious way on purpose (each item against each kept head, first match wins): the property
tests check the shared walk against it, and benchmarks/dedupe.py measures the walk's speed against it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def reference_groups(order: Sequence[int], joins: Callable[[int, int], bool]) -> list[list[int]]:
    """By `order`, an item joins the first group whose head `joins(head, item)`; else it heads a new one."""
    groups: list[list[int]] = []
    for i in order:
        for g in groups:
            if joins(g[0], int(i)):
                g.append(int(i))
                break
        else:
            groups.append([int(i)])
    return groups


def reference_dedupe_frame(frame, accept: np.ndarray, rank: np.ndarray, dedupe_iou: float) -> list[int]:
    """The calibration's per-frame dedupe: same label, a candidate goes unless its IoU with every kept
    one is below dedupe_iou (so a NaN IoU counts as a duplicate)."""
    local = np.flatnonzero(accept[frame.rows])
    order = local[np.lexsort((local, -rank[frame.rows][local]))] if len(local) else local
    if dedupe_iou <= 0:
        return [int(i) for i in order]
    return [g[0] for g in reference_groups(order, lambda k, i: frame.same[k, i] and not frame.cc[i, k] < dedupe_iou)]
