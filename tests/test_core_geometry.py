"""Geometry against hand-computed cases."""

from __future__ import annotations

import math

import pytest

from tator_core import geometry as g


def test_conversions_round_trip():
    b = (10.0, 20.0, 50.0, 80.0)
    assert g.xyxy_to_xywh(b) == (10.0, 20.0, 40.0, 60.0)
    assert g.xywh_to_xyxy((10.0, 20.0, 40.0, 60.0)) == b
    yolo = g.xyxy_to_yolo(b, 100, 200)
    assert yolo == pytest.approx((0.3, 0.25, 0.4, 0.3))
    assert g.yolo_to_xyxy(yolo, 100, 200) == pytest.approx(b)


def test_norm1000_clamps_and_reorders():
    assert g.xyxy_to_norm1000((50, 20, 10, 80), 100, 100) == (100, 200, 500, 800)
    assert g.xyxy_to_norm1000((-10, 0, 120, 50), 100, 100) == (0, 0, 1000, 500)
    assert g.norm1000_to_xyxy([500, 800, 100, 200], 200, 100) == pytest.approx((20, 20, 100, 80))


def test_iou_hand_computed():
    a, b = (0, 0, 10, 10), (5, 5, 15, 15)
    assert g.iou(a, b) == pytest.approx(25 / 175)
    assert g.iou(a, (20, 20, 30, 30)) == 0.0
    assert g.iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0  # empty union
    assert float(g.iou_matrix([a], [b])[0, 0]) == pytest.approx(25 / 175)


def test_tiles_cover_and_align_to_edges():
    wins = g.tile_windows(1000, 500, size=400, overlap=0.2)
    xs = sorted({w.box[0] for w in wins})
    ys = sorted({w.box[1] for w in wins})
    assert xs == [0, 320, 600] and ys == [0, 100]
    assert all(w.width == 400 and w.height == 400 for w in wins)
    assert max(w.box[2] for w in wins) == 1000 and max(w.box[3] for w in wins) == 500
    # an image smaller than the tile gives one tile of the image size
    (only,) = g.tile_windows(300, 200, size=640)
    assert only.box == (0, 0, 300, 200)


def test_grid_cells_named_and_grown():
    wins = g.grid_windows(200, 100, cols=2, rows=2, overlap=0.2)
    assert [w.name for w in wins] == ["A1", "B1", "A2", "B2"]
    # cell 100x50, grown by 0.2*100/2 = 10 px in x and 5 px in y, clipped
    assert wins[0].box == (0, 0, 110, 55)
    assert wins[3].box == (90, 45, 200, 100)
    assert g.cell_name(26, 0) == "AA1"
    assert g.parse_grid("3x2") == (3, 2)
    with pytest.raises(ValueError):
        g.parse_grid("0x2")


def test_clusters_class_aware_first_kept_wins():
    items = [
        g.Scored((0, 0, 10, 10), 0.9, "a"),
        g.Scored((1, 1, 11, 11), 0.8, "a"),   # IoU 0.68 with the first
        g.Scored((1, 1, 11, 11), 0.95, "b"),  # other class: own cluster
        g.Scored((50, 50, 60, 60), 0.5, "a"),
    ]
    clusters = g.greedy_clusters(items, 0.5)
    assert clusters == [[2], [0, 1], [3]]
    assert g.greedy_clusters(items, 0.7) == [[2], [0], [1], [3]]
    assert g.greedy_clusters(items, 0.5, cross_class_iou=0.6) == [[2, 0, 1], [3]]
    assert g.greedy_clusters(items, 0) == [[2], [0], [1], [3]]  # 0 disables merging


def test_merge_nms_and_wbf():
    items = [g.Scored((0, 0, 10, 10), 0.9, "a"), g.Scored((2, 0, 12, 10), 0.3, "a"),
             g.Scored((0, 0, 10, 10), 0.4, "b")]
    nms = g.merge(items, 0.5, "nms")
    assert [(m.label, m.score) for m, _ in nms] == [("a", 0.9), ("b", 0.4)]
    wbf = g.merge(items, 0.5, "wbf")
    fused, members = wbf[0]
    assert members == [0, 1]
    assert fused.box[0] == pytest.approx((0 * 0.9 + 2 * 0.3) / 1.2)
    assert len(g.merge(items, 0.5, "nms", max_det=1)) == 1
    with pytest.raises(ValueError):
        g.merge(items, 0.5, "mean")


def test_box_helpers():
    assert g.is_valid_box((0, 0, 1, 1)) and not g.is_valid_box((0, 0, 0, 1))
    assert not g.is_valid_box((0, 0, math.nan, 1))
    assert g.clip_box((-5, -5, 50, 50), 20, 10) == (0, 0, 20, 10)
    assert g.intersects((0, 0, 10, 10), (9, 9, 20, 20)) and not g.intersects((0, 0, 10, 10), (10, 0, 20, 10))
