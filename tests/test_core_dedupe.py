"""The one greedy dedupe (tator_core.geometry.greedy_groups) under each caller's rule.

Each rule is checked on random cases against an independent reference: the plain per-item loop
(tests/dedupe_reference.py) for clustering and the calibration's dedupe, torchvision's batched_nms
for NMS. Small integer boxes and a few score values make exact-threshold IoUs, empty boxes and ties
common, which is where two implementations of one rule drift apart.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torchvision.ops import batched_nms

from svc_orchestrator.calibration.candidates import build_table
from svc_orchestrator.calibration.evaluate import dedupe_frame
from tator_core import geometry as g
from tests.dedupe_reference import reference_dedupe_frame, reference_groups

coord = st.integers(0, 12)
size = st.integers(0, 6)  # 0: empty boxes, whose IoU with each other is NaN
box = st.builds(lambda x, y, w, h: (float(x), float(y), float(x + w), float(y + h)), coord, coord, size, size)
score = st.sampled_from([0.25, 0.5, 0.75]) | st.floats(0, 1)
item = st.builds(g.Scored, box, score, st.sampled_from("abc"))
items = st.lists(item, max_size=40)
threshold = st.sampled_from([0.0, 0.25, 0.5, 0.7, 0.75]) | st.floats(0, 1)


def _reference_clusters(its, iou_thr, class_aware=True, cross_class_iou=None):
    order = sorted(range(len(its)), key=lambda i: -its[i].score)
    if iou_thr <= 0:
        return [[i] for i in order]
    ious = g.iou_matrix([it.box for it in its], [it.box for it in its])

    def joins(h, i):
        same = its[h].label == its[i].label or not class_aware
        thr = iou_thr if same else cross_class_iou
        return thr is not None and float(ious[h, i]) >= thr

    return reference_groups(order, joins)


# The block size fixture is the same for every generated case of one test run: nothing to reset.
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(params=[g.GROUP_BLOCK_CELLS, 7], ids=["one-block", "many-blocks"])
def block_cells(request, monkeypatch):
    """Run each property once as deployed and once with blocks of a few cells, so the walk's
    hand-over between blocks is exercised on every case."""
    monkeypatch.setattr(g, "GROUP_BLOCK_CELLS", request.param)


@pytest.mark.usefixtures("block_cells")
@PROPERTY
@given(its=items, thr=threshold, class_aware=st.booleans(), cross=st.none() | threshold)
def test_clusters_match_the_reference(its, thr, class_aware, cross):
    assert g.greedy_clusters(its, thr, class_aware=class_aware, cross_class_iou=cross) == \
        _reference_clusters(its, thr, class_aware, cross)


@pytest.mark.usefixtures("block_cells")
@PROPERTY
@given(its=items, thr=threshold)
def test_nms_matches_torchvision(its, thr):
    kept = g.nms_keep(its, thr)
    if not its:
        assert kept == []
        return
    labels = sorted({it.label for it in its})
    ref = batched_nms(torch.tensor([it.box for it in its], dtype=torch.float32),
                      torch.tensor([it.score for it in its], dtype=torch.float32),
                      torch.tensor([labels.index(it.label) for it in its]), thr).tolist()
    # torchvision orders equal scores as its sort happens to; nms_keep by index. Same boxes kept,
    # and the same order wherever scores differ.
    assert sorted(kept) == sorted(ref)
    scores = np.array([it.score for it in its], dtype=np.float32)
    assert [scores[i] for i in kept] == [scores[i] for i in ref]
    assert kept == sorted(kept, key=lambda i: (-scores[i], i))


@pytest.mark.usefixtures("block_cells")
@PROPERTY
@given(its=items, thr=threshold, accept_bits=st.lists(st.booleans(), min_size=40, max_size=40))
def test_calibration_dedupe_matches_the_reference(its, thr, accept_bits):
    table = build_table([("im", [(it.label, it.box, it.score, ()) for it in its], [])])
    accept = np.array(accept_bits[:len(its)], dtype=bool)
    rank = np.array([it.score for it in its])
    frame = table.frames[0]
    assert dedupe_frame(frame, accept, rank, thr) == reference_dedupe_frame(frame, accept, rank, thr)


def test_an_item_joins_the_first_head_that_takes_it():
    # 0 and 1 are far apart; 2 overlaps both and goes to 0, the first head in walk order, even though
    # 1 takes it too; 3 is taken by nobody and heads its own group.
    takes = {(0, 2), (1, 2)}

    def absorbs(heads, rest):
        return np.array([[(int(h), int(r)) in takes for r in rest] for h in heads], dtype=bool)

    assert g.greedy_groups([0, 1, 2, 3], absorbs) == [[0, 2], [1], [3]]
    assert g.greedy_groups([1, 0, 2, 3], absorbs) == [[1, 2], [0], [3]]
    assert g.greedy_groups([], absorbs) == []


def test_nan_iou_is_a_duplicate_only_for_the_calibration():
    # Two identical empty boxes: IoU 0/0. Clustering and NMS never merge them (NaN is not >= or >);
    # the calibration's dedupe keeps a candidate only when its IoU is below the threshold, so it drops one.
    its = [g.Scored((1.0, 1.0, 1.0, 1.0), 0.9, "a"), g.Scored((1.0, 1.0, 1.0, 1.0), 0.8, "a")]
    assert g.greedy_clusters(its, 0.5) == [[0], [1]]
    assert g.nms_keep(its, 0.5) == [0, 1]
    table = build_table([("im", [(it.label, it.box, it.score, ()) for it in its], [])])
    assert dedupe_frame(table.frames[0], np.ones(2, dtype=bool), np.array([0.9, 0.8]), 0.5) == [0]
