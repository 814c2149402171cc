"""Calibration metric definitions against hand-computed cases (no services needed).

Covers object-level evaluation (dedupe, greedy matching, FPs on images without GT and for classes absent
from an image), the sklearn cross-check, one-to-one labelling, threshold choice, the
seeded split and the feature schema.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support

from svc_orchestrator.calibration.candidates import build_table
from svc_orchestrator.calibration.evaluate import BACKGROUND, MISSED, Counts, Prediction, evaluate_predictions, prf
from svc_orchestrator.calibration.features import FeatureSchema, SizePrior, fit_size_prior, image_features
from svc_orchestrator.calibration.inputs import ImagePrepass
from svc_orchestrator.calibration.labeling import label_candidates
from svc_orchestrator.calibration.split import select_images, split_images
from svc_orchestrator.calibration.thresholds import (
    SHRINK,
    candidate_thresholds,
    pick,
    tune_class,
    tune_global,
    tune_thresholds,
)
from svc_orchestrator.convert.calibration import image_prepass
from tator_core.enums import source_value
from tator_core.errors import TatorError
from tator_core.gen.tator.common.v1 import common_pb2
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb

LM = ["circle", "square", "triangle"]
GT = {
    "a": [("circle", (0, 0, 10, 10)), ("square", (20, 20, 30, 30))],
    "b": [],
    "c": [("triangle", (0, 0, 10, 10))],
}
PREDS = [
    Prediction("a", "circle", (0, 0, 10, 10), 0.9),    # TP
    Prediction("a", "circle", (0, 0, 10, 12), 0.8),    # IoU 0.833 with the one above: removed by dedupe at 0.75
    Prediction("a", "circle", (0, 0, 10, 16), 0.7),    # IoU 0.625 with the first: kept; GT taken -> duplicate FP
    Prediction("a", "triangle", (20, 20, 30, 30), 0.6),  # on the square: wrong-class FP (class absent from image)
    Prediction("a", "square", (40, 40, 50, 50), 0.5),  # nothing there: background FP; the square GT is an FN
    Prediction("b", "circle", (0, 0, 5, 5), 0.9),      # image without GT: background FP
    Prediction("c", "triangle", (0, 0, 10, 20), 0.9),  # IoU exactly 0.5 with its GT
]


def test_prf_definitions_and_zero_division() -> None:
    assert prf(2, 4, 1) == pytest.approx((2 / 6, 2 / 3, 4 / 9))
    assert prf(0, 0, 0) == (0.0, 0.0, 0.0)
    assert prf(0, 3, 0) == (0.0, 0.0, 0.0)
    assert prf(5, 0, 0) == (1.0, 1.0, 1.0)


def test_hand_computed_case_at_iou_050() -> None:
    res = evaluate_predictions(PREDS, GT, labelmap=LM, eval_iou=0.5, dedupe_iou=0.75)
    pc = {k: (v.tp, v.fp, v.fn) for k, v in res.per_class.items()}
    assert pc == {"circle": (1, 2, 0), "square": (0, 1, 1), "triangle": (1, 1, 0)}
    assert (res.overall.tp, res.overall.fp, res.overall.fn) == (2, 4, 1)
    assert res.overall.precision == pytest.approx(1 / 3)
    assert res.overall.recall == pytest.approx(2 / 3)
    assert res.overall.f1 == pytest.approx(4 / 9)
    assert res.fp_kinds == {"duplicate": 1, "localization": 0, "wrong_class": 1, "background": 2}
    assert res.confusion["triangle"] == {"square": 1, "triangle": 1}
    assert res.confusion["circle"] == {"circle": 1, BACKGROUND: 2}
    assert res.confusion[MISSED] == {"square": 1}
    assert res.predictions == 6 and res.images == 3


def test_iou_threshold_is_inclusive_and_stricter_iou_turns_tp_into_localization_fp() -> None:
    res = evaluate_predictions(PREDS, GT, labelmap=LM, eval_iou=0.6, dedupe_iou=0.75)
    assert (res.per_class["triangle"].tp, res.per_class["triangle"].fp, res.per_class["triangle"].fn) == (0, 2, 1)
    assert res.fp_kinds["localization"] == 1
    # circle's second kept prediction has IoU 0.625 >= 0.6 with the taken GT: still a duplicate
    assert res.fp_kinds["duplicate"] == 1


def test_dedupe_off_keeps_the_near_duplicate_as_an_fp() -> None:
    res = evaluate_predictions(PREDS, GT, labelmap=LM, eval_iou=0.5, dedupe_iou=0.0)
    assert (res.per_class["circle"].tp, res.per_class["circle"].fp) == (1, 3)
    assert res.fp_kinds["duplicate"] == 2


def test_fps_on_images_without_gt_count() -> None:
    """Image b (no GT) and the triangle on image a (a class absent from its GT) are FPs, not skipped."""
    everything = evaluate_predictions(PREDS, GT, labelmap=LM)
    without_b = evaluate_predictions(PREDS, GT, labelmap=LM, images=["a", "c"])
    assert everything.overall.fp == without_b.overall.fp + 1
    only_gt_images = evaluate_predictions([p for p in PREDS if p.image != "b"], GT, labelmap=LM, images=["a", "c"])
    assert only_gt_images.per_class["triangle"].fp == 1  # the triangle on image a, a class absent there


def test_unknown_label_is_an_fp_under_its_own_name() -> None:
    res = evaluate_predictions([Prediction("a", "hexagon", (0, 0, 10, 10))], GT, labelmap=LM)
    assert res.per_class["hexagon"].fp == 1
    assert res.overall.fn == 3


def test_greedy_matching_in_score_order_takes_best_iou_gt() -> None:
    gt = {"x": [("circle", (0, 0, 10, 10)), ("circle", (6, 0, 16, 10))]}
    preds = [Prediction("x", "circle", (5, 0, 15, 10), 0.9),    # IoU 0.333 / 0.818: takes the second GT
             Prediction("x", "circle", (0, 0, 10, 10), 0.8)]    # then the first is free: TP
    res = evaluate_predictions(preds, gt, labelmap=LM, dedupe_iou=0.0)
    assert (res.overall.tp, res.overall.fp, res.overall.fn) == (2, 0, 0)


@pytest.mark.parametrize("eval_iou", [0.5, 0.6])
def test_metrics_match_sklearn(eval_iou: float) -> None:
    """Rebuild one (truth, prediction) pair per TP / FP / FN and let sklearn compute the same numbers."""
    res = evaluate_predictions(PREDS, GT, labelmap=LM, eval_iou=eval_iou)
    y_true, y_pred = [], []
    for lab, c in res.per_class.items():
        y_true += [lab] * c.tp + [BACKGROUND] * c.fp + [lab] * c.fn
        y_pred += [lab] * c.tp + [lab] * c.fp + [BACKGROUND] * c.fn
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=LM, average=None, zero_division=0)
    for k, lab in enumerate(LM):
        c = res.per_class[lab]
        assert (c.precision, c.recall, c.f1) == pytest.approx((p[k], r[k], f[k]))
    pm, rm, fm, _ = precision_recall_fscore_support(y_true, y_pred, labels=LM, average="micro", zero_division=0)
    assert (res.overall.precision, res.overall.recall, res.overall.f1) == pytest.approx((pm, rm, fm))


# --- labelling -------------------------------------------------------------------------

def test_one_to_one_labels_only_best_duplicate_is_positive() -> None:
    table = build_table([
        ("x", [("circle", (0, 0, 10, 10), 0.5, ("yolo",)),     # IoU 1.0 -> positive
               ("circle", (0, 0, 10, 13), 0.9, ("rfdetr",)),   # IoU 0.77, same GT -> negative duplicate
               ("square", (0, 0, 10, 10), 0.9, ("yolo",)),     # wrong class -> negative
               ("circle", (50, 50, 60, 60), 0.9, ("yolo",))],  # nothing there
         [("circle", (0, 0, 10, 10))]),
        ("y", [("circle", (0, 0, 10, 10), 0.5, ())], []),
    ])
    lab = label_candidates(table, 0.5)
    assert lab.y.tolist() == [1, 0, 0, 0, 0]
    assert lab.best_iou[1] == pytest.approx(100 / 130)
    assert lab.gt_index.tolist() == [0, -1, -1, -1, -1]
    assert lab.as_summary()["duplicates_of_matched"] == 1


def test_labels_match_pairs_by_descending_iou() -> None:
    gt = [("circle", (0, 0, 10, 10)), ("circle", (4, 0, 14, 10))]
    cands = [("circle", (3, 0, 13, 10), 0.9, ()),   # IoU 0.54 with GT0, 0.82 with GT1
             ("circle", (1, 0, 11, 10), 0.8, ())]   # IoU 0.82 with GT0, 0.54 with GT1
    lab = label_candidates(build_table([("x", cands, gt)]), 0.5)
    assert lab.y.tolist() == [1, 1]
    assert lab.gt_index.tolist() == [1, 0]


# --- thresholds ------------------------------------------------------------------------

def test_candidate_thresholds_are_midpoints_plus_extremes() -> None:
    ths = candidate_thresholds(np.array([0.2, 0.4, 0.4, 0.8]))
    assert ths.tolist() == pytest.approx([0.1, 0.3, 0.6, 0.9])
    assert len(candidate_thresholds(np.linspace(0, 1, 1000), max_steps=50)) <= 51


def test_pick_prefers_f1_then_middle_of_ties_and_honours_recall_floor() -> None:
    res = [Counts(3, 3, 0), Counts(3, 1, 0), Counts(3, 1, 0), Counts(3, 1, 0), Counts(1, 0, 2)]
    assert pick([0.1, 0.2, 0.3, 0.4, 0.5], res) == (2, "tuned")
    res = [Counts(2, 0, 2), Counts(3, 3, 1)]
    assert pick([0.1, 0.2], res, recall_floor=0.0) == (0, "tuned")   # F1 0.667 beats 0.6
    assert pick([0.1, 0.2], res, recall_floor=0.7) == (1, "tuned")
    assert pick([0.1, 0.2], res, recall_floor=0.9) == (1, "recall_floor_unmet")


def test_tune_class_on_a_hand_made_val_split() -> None:
    gt = [("circle", (0, 0, 10, 10)), ("circle", (20, 0, 30, 10))]
    cands = [("circle", (0, 0, 10, 10), 0, ()), ("circle", (20, 0, 30, 10), 0, ()),
             ("circle", (50, 0, 60, 10), 0, ()), ("circle", (80, 0, 90, 10), 0, ())]
    table = build_table([("v", cands, gt)])
    probs = np.array([0.9, 0.6, 0.7, 0.2])  # one negative (0.7) between the positives
    rows = np.ones(4, dtype=bool)
    ch = tune_class(table, table.frames, probs, rows, "circle", labelmap=LM, eval_iou=0.5, dedupe_iou=0.75)
    # t=0.4 accepts 3 (TP 2, FP 1): F1 0.8; t=0.8 accepts 1: F1 0.667; t=0.65: TP1 FP1 -> 0.5
    assert ch.threshold == pytest.approx(0.4)
    assert (ch.val.tp, ch.val.fp, ch.val.fn) == (2, 1, 0)
    none = np.zeros(4, dtype=bool)
    ch = tune_class(table, table.frames, probs, none, "square", labelmap=LM, eval_iou=0.5, dedupe_iou=0.75)
    assert (ch.reason, ch.threshold, ch.val.fn) == ("no_val_candidates", 0.5, 0)
    sq = build_table([("v", [("square", (0, 0, 10, 10), 0, ())], gt)])
    ch = tune_class(sq, sq.frames, np.array([0.7]), np.ones(1, dtype=bool), "square", labelmap=LM, eval_iou=0.5,
                    dedupe_iou=0.75)
    assert (ch.reason, ch.threshold, ch.val.fp) == ("no_val_gt", 0.5, 1)


# --- split -----------------------------------------------------------------------------

def test_split_is_seeded_disjoint_and_complete() -> None:
    names = [f"im{i:03d}" for i in range(50)]
    a = split_images(names, val_fraction=0.2, test_fraction=0.2, seed=7)
    b = split_images(list(reversed(names)), val_fraction=0.2, test_fraction=0.2, seed=7)
    c = split_images(names, val_fraction=0.2, test_fraction=0.2, seed=8)
    assert a == b and a != c
    assert a.sizes() == {"train": 30, "val": 10, "test": 10}
    assert set(a.train) | set(a.val) | set(a.test) == set(names)
    assert not (set(a.train) & set(a.val)) and not (set(a.val) & set(a.test)) and not (set(a.train) & set(a.test))
    tiny = split_images(["x", "y", "z"], val_fraction=0.1, test_fraction=0.1, seed=0)
    assert tiny.sizes() == {"train": 1, "val": 1, "test": 1}
    with pytest.raises(TatorError) as exc:
        split_images(["x", "y"])
    assert exc.value.reason == "INVALID_FIELD"


def test_select_images_prefers_held_out_splits() -> None:
    by_split = {"train": [f"t{i}" for i in range(10)], "val": ["v1", "v2"], "test": ["s1"]}
    assert select_images(by_split, 3, seed=1) == ["s1", "v1", "v2"]
    assert len(select_images(by_split, 5, seed=1)) == 5
    assert select_images(by_split, 0, seed=1) == sorted(sum(by_split.values(), []))


# --- features --------------------------------------------------------------------------

def _result() -> ImagePrepass:
    """A hand-made result in its message form, read the way the orchestrator hands it to the calibration."""
    def det(box, label, score, source):
        return common_pb2.Detection(box=common_pb2.Box(x1=box[0], y1=box[1], x2=box[2], y2=box[3]), label=label,
                                    score=score, source=source_value(source))

    D, T = pb.PREPASS_STAGE_DETECTORS, pb.PREPASS_STAGE_SAM3_TEXT
    FULL, TILED, WIN = pb.ATOM_PASS_FULL, pb.ATOM_PASS_TILED, pb.ATOM_PASS_WINDOWED
    YOLO, RFDETR = common_pb2.DETECTION_SOURCE_YOLO, common_pb2.DETECTION_SOURCE_RFDETR
    atoms = [pb.Atom(atom_id="a1", stage=D, pass_kind=FULL, detection=det((10, 10, 30, 30), "circle", 0.9, "yolo")),
             pb.Atom(atom_id="a2", stage=D, pass_kind=TILED, detection=det((10, 10, 30, 31), "circle", 0.7, "yolo")),
             pb.Atom(atom_id="a3", stage=T, pass_kind=WIN,
                     detection=det((12, 10, 30, 30), "circle", 0.5, "sam3_text")),
             pb.Atom(atom_id="a4", stage=D, pass_kind=FULL, detection=det((60, 60, 64, 64), "square", 0.4, "rfdetr"))]
    cands = [pb.Candidate(index=0, box=common_pb2.Box(x1=10, y1=10, x2=30, y2=30), label="circle", score=0.9,
                          source_primary=YOLO, sources=[YOLO], source_scores=[pb.SourceScore(source=YOLO, score=0.9)],
                          atom_ids=["a1", "a2"], probabilities=[0.7, 0.1, 0.1, 0.1]),
             pb.Candidate(index=1, box=common_pb2.Box(x1=60, y1=60, x2=64, y2=64), label="square", score=0.4,
                          source_primary=RFDETR, sources=[RFDETR], source_scores=[pb.SourceScore(source=RFDETR, score=0.4)],
                          atom_ids=["a4"])]
    return image_prepass(pb.PrepassResult(image_name="x", width=100, height=50, atoms=atoms, candidates=cands,
                                          classifier_classes=["circle", "square", "triangle", "__bg_0"]))


def test_feature_schema_documents_every_column_and_hashes_what_matters() -> None:
    s = FeatureSchema(tuple(LM), ("circle", "square", "triangle", "__bg_0"))
    assert len(s.names) == len(set(s.names)) == s.width
    assert all(c.doc and c.block for c in s.columns)
    assert s.hash == FeatureSchema.from_dict(s.to_dict()).hash
    assert s.hash != FeatureSchema(tuple(LM), ("circle", "square", "triangle")).hash
    assert s.hash != FeatureSchema(tuple(LM), s.classifier_classes, embedding_dims=4, embedding_input_dim=8).hash
    assert s.hash != FeatureSchema(("circle", "square"), s.classifier_classes).hash
    e = FeatureSchema(tuple(LM), s.classifier_classes, embedding_dims=4, embedding_input_dim=8, embedding_seed=3)
    assert e.width == s.width + 4 and e.projection.shape == (8, 4)
    assert np.array_equal(e.projection, FeatureSchema.from_dict(e.to_dict()).projection)


def test_image_features_on_a_hand_made_result() -> None:
    s = FeatureSchema(tuple(LM), ("circle", "square", "triangle", "__bg_0"))
    prior = SizePrior({"circle": (math.log(400 / 5000), 0.5, 0.0, 0.2)})
    X = image_features(_result(), s, prior)
    assert X.shape == (2, s.width) and X.dtype == np.float32
    f = {n: X[0, i] for n, i in s.index.items()}
    assert f["clf_prob::circle"] == pytest.approx(0.7) and f["clf_prob_label"] == pytest.approx(0.7)
    assert f["clf_margin"] == pytest.approx(0.6) and f["clf_agrees"] == 1 and f["clf_background"] == pytest.approx(0.1)
    assert f["src_has::yolo"] == 1 and f["src_has::sam3_text"] == 0 and f["src_atoms::yolo"] == 2
    assert f["src_primary::yolo"] == 1 and f["atoms_n"] == 2 and f["atom_score_mean"] == pytest.approx(0.8)
    assert f["run_n::yolo_full"] == 1 and f["run_n::yolo_sahi"] == 1 and f["run_max::yolo_sahi"] == pytest.approx(0.7)
    assert f["ovl_max::sam3_text"] == pytest.approx(0.9) and f["ovl_n::sam3_text"] == 1  # atom outside the cluster
    assert f["geom_cx"] == pytest.approx(0.2) and f["geom_cy"] == pytest.approx(0.4)
    assert f["geom_area_z"] == pytest.approx(0.0, abs=1e-5)  # exactly the prior's mean area
    assert f["label::circle"] == 1 and f["label::square"] == 0 and f["clf_missing"] == 0
    g = {n: X[1, i] for n, i in s.index.items()}
    assert g["clf_missing"] == 1 and g["label::square"] == 1 and g["src_has::rfdetr"] == 1
    assert g["geom_log_min_side_px"] == pytest.approx(math.log(4), rel=1e-5)


def test_size_prior_uses_only_what_it_is_given() -> None:
    prior = fit_size_prior([("circle", (0, 0, 10, 10), 100, 100), ("circle", (0, 0, 20, 20), 100, 100),
                            ("square", (0, 0, 5, 5), 100, 100)])
    mu = (math.log(0.01) + math.log(0.04)) / 2
    assert prior.get("circle")[0] == pytest.approx(mu)
    assert "square" not in prior.stats  # one box gives no spread: pooled fallback
    assert prior.get("square") == prior.fallback


def test_class_thresholds_shrink_toward_the_global_one_by_val_support() -> None:
    gt = [("circle", (0, 0, 10, 10)), ("circle", (20, 0, 30, 10)), ("square", (40, 0, 50, 10))]
    cands = [("circle", (0, 0, 10, 10), 0, ()), ("circle", (20, 0, 30, 10), 0, ()), ("circle", (60, 0, 70, 10), 0, ()),
             ("square", (40, 0, 50, 10), 0, ()), ("square", (80, 0, 90, 10), 0, ())]
    table = build_table([("v", cands, gt)])
    probs = np.array([0.9, 0.6, 0.7, 0.3, 0.1])
    rows = np.ones(5, dtype=bool)
    labels = np.asarray(table.labels)
    kw = dict(labelmap=LM, eval_iou=0.5, dedupe_iou=0.75)
    t_global = tune_global(table, table.frames, probs, rows, **kw)
    t_circle = tune_class(table, table.frames, probs, labels == "circle", "circle", **kw).threshold
    out = tune_thresholds(table, table.frames, probs, rows, **kw)
    assert out["circle"].threshold == pytest.approx((2 * t_circle + SHRINK * t_global) / (2 + SHRINK))
    assert out["circle"].global_threshold == pytest.approx(t_global)
    assert out["triangle"].reason == "no_val_candidates" and out["triangle"].threshold == pytest.approx(t_global)
    c = out["circle"].val  # val counts are those of the final (shrunk) threshold
    accepted = int(((labels == "circle") & (probs >= out["circle"].threshold)).sum())
    assert c.tp + c.fp == accepted
    unshrunk = tune_thresholds(table, table.frames, probs, rows, shrink=0, **kw)
    assert unshrunk["circle"].threshold == pytest.approx(t_circle)
