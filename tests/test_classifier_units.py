"""Classifier logic without a real model: crops, head math and artifacts, fitting,
OOM back-off and per-crop failure isolation, dataset reading, plain classify."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import grpc
import numpy as np
import pytest
import torch
from prometheus_client import REGISTRY

from svc_classifier import classify as plain
from svc_classifier.crops import DEGENERATE, NON_FINITE, OUTSIDE, box_error, padded_region, plan_crops
from svc_classifier.datasets import read_dataset
from svc_classifier.embedding import embed_batched
from svc_classifier.fit import fit
from svc_classifier.heads import Head, HeadError, load_head, softmax
from tator_core.errors import TatorError
from tator_core.images import DecodedImage


class FakeBackbone:
    """Embedding = per-channel means and the crop size: deterministic and cheap."""

    dim = 5
    pooling = "fake"

    def __init__(self, oom_above: int | None = None, oom_message: bool = False, poison: int | None = None) -> None:
        self.oom_above, self.oom_message, self.poison = oom_above, oom_message, poison
        self.batches: list[int] = []

    def embed(self, crops):
        if self.oom_above is not None and len(crops) > self.oom_above:
            if self.oom_message:
                raise RuntimeError("CUDA error: out of memory (injected)")
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
        if self.poison is not None and any(c.shape[0] == self.poison for c in crops):
            raise ValueError("poisoned crop")
        self.batches.append(len(crops))
        return np.stack([np.r_[c.reshape(-1, 3).mean(0), c.shape[0], c.shape[1]] for c in crops]).astype(np.float32)


def image(w: int = 100, h: int = 80) -> DecodedImage:
    arr = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    return DecodedImage("x" * 64, arr, 0)


def make_head(dim: int = 5, classes=("a", "b", "__bg_background"), normalize: bool = False, seed: int = 0) -> Head:
    rng = np.random.default_rng(seed)
    arrays = {"input.mean": rng.normal(size=dim), "input.scale": rng.uniform(0.5, 2, size=dim),
              "layer0.weight": rng.normal(size=(dim, len(classes))), "layer0.bias": rng.normal(size=len(classes))}
    return Head(id="h", head_type="logreg", classes=list(classes), arrays=arrays, backbone_id="bb",
                backbone_version="v1", backbone_pooling="fake", normalize=normalize)


# --- crops -------------------------------------------------------------------

@pytest.mark.parametrize("box,code", [
    ((float("nan"), 0, 5, 5), NON_FINITE), ((0, 0, float("inf"), 5), NON_FINITE),
    ((5, 5, 5, 9), DEGENERATE), ((9, 5, 5, 9), DEGENERATE), ((5, 9, 9, 2), DEGENERATE),
    ((100, 0, 120, 10), OUTSIDE), ((-30, -30, 0, 0), OUTSIDE), ((1e9, 1e9, 2e9, 2e9), OUTSIDE),
    ((-10, -10, 5, 5), ""), ((99.5, 79.5, 200, 200), ""), ((10.2, 10.2, 10.4, 10.4), ""),
])
def test_box_error_codes(box, code):
    assert box_error(box, 100, 80) == code


def test_padded_region_is_inside_and_never_empty():
    rng = np.random.default_rng(1)
    for _ in range(500):
        x1, y1 = rng.uniform(-50, 150, 2)
        box = (x1, y1, x1 + rng.uniform(0.01, 80), y1 + rng.uniform(0.01, 80))
        if box_error(box, 100, 80):
            continue
        r = padded_region(box, 100, 80, float(rng.uniform(0, 2)))
        assert 0 <= r[0] < r[2] <= 100 and 0 <= r[1] < r[3] <= 80


def test_padding_grows_the_crop_by_a_fraction_of_the_box():
    assert padded_region((20, 20, 40, 30), 100, 80, 0.0) == (20, 20, 40, 30)
    assert padded_region((20, 20, 40, 30), 100, 80, 0.5) == (10, 15, 50, 35)


# --- heads -------------------------------------------------------------------

def test_probabilities_are_distributions_even_for_huge_logits():
    head = make_head()
    x = np.random.default_rng(2).normal(size=(50, 5)) * 1e6
    p = head.probabilities(x)
    assert p.shape == (50, 3) and np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-9)
    assert head.background == [False, False, True]


def test_head_roundtrip_is_exact_and_not_pickle(tmp_path):
    head = make_head(normalize=True)
    head.val_accuracy = 0.75
    head.save(tmp_path / "h")
    assert sorted(p.name for p in (tmp_path / "h").iterdir()) == ["head.json", "head.safetensors"]
    meta = json.loads((tmp_path / "h" / "head.json").read_text())
    assert meta["background_classes"] == ["__bg_background"] and meta["backbone"]["version"] == "v1"
    assert meta["normalize_embeddings"] is True and meta["head_type"] == "logreg"
    back = load_head(tmp_path / "h")
    x = np.random.default_rng(3).normal(size=(7, 5))
    np.testing.assert_allclose(back.probabilities(x), head.probabilities(x), atol=1e-5)
    assert back.val_accuracy == 0.75 and back.backbone_pooling == "fake"


def test_head_training_record_round_trips_and_a_damaged_one_is_refused(tmp_path):
    from tator_core.registry import TrainingRecord

    head = make_head()
    head.trained_on = TrainingRecord("two images", frozenset({"a" * 64, "b" * 64}))
    d = head.save(tmp_path / "h")
    assert load_head(d).trained_on == head.trained_on
    (d / "trained_on.json").write_text(json.dumps({"image_sha256": ["not-a-digest"]}))
    with pytest.raises(HeadError, match="training record"):   # never read back as "unknown"
        load_head(d)
    head.trained_on = None
    head.save(d)   # a head saved without a record under that id drops the old one
    assert load_head(d).trained_on is None and not (d / "trained_on.json").exists()


@pytest.mark.parametrize("damage", ["pickle", "truncated", "bad_shape", "wrong_format", "nan"])
def test_damaged_heads_are_refused(tmp_path, damage):
    head = make_head()
    d = head.save(tmp_path / "h")
    if damage == "pickle":
        import pickle

        (d / "head.safetensors").write_bytes(pickle.dumps({"layer0.weight": [1]}))
    elif damage == "truncated":
        (d / "head.safetensors").write_bytes((d / "head.safetensors").read_bytes()[:40])
    elif damage == "wrong_format":
        (d / "head.json").write_text(json.dumps({"format": "sklearn"}))
    else:
        meta = json.loads((d / "head.json").read_text())
        meta["classes"] = meta["classes"][:2] if damage == "bad_shape" else meta["classes"]
        (d / "head.json").write_text(json.dumps(meta))
        if damage == "nan":
            bad = make_head()
            bad.arrays["layer0.bias"][0] = np.nan
            from safetensors.numpy import save_file

            save_file({k: v.astype(np.float32) for k, v in bad.arrays.items()}, str(d / "head.safetensors"))
    with pytest.raises(HeadError):
        load_head(d)


def test_binary_logreg_matches_sklearn():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(4)
    x = np.r_[rng.normal(0, 1, (40, 3)), rng.normal(1.5, 1, (40, 3))]
    y = np.r_[np.zeros(40, int), np.ones(40, int)]
    fitted = fit(x, y, ["neg", "pos"], head_type="logreg")
    head = Head(id="b", head_type="logreg", classes=fitted.classes, arrays=fitted.arrays, backbone_id="bb",
                backbone_version="v")
    z = (x - fitted.arrays["input.mean"]) / fitted.arrays["input.scale"]
    ref = LogisticRegression(C=1.0, max_iter=2000, random_state=0).fit(z, y).predict_proba(z)
    np.testing.assert_allclose(head.probabilities(x), ref, atol=1e-6)


def test_fit_drops_unseen_classes_and_mlp_is_deterministic():
    rng = np.random.default_rng(5)
    x = np.r_[rng.normal(0, 1, (30, 4)), rng.normal(3, 1, (30, 4))]
    y = np.r_[np.zeros(30, int), np.full(30, 2)]
    a = fit(x, y, ["a", "b", "c"], head_type="mlp", seed=1)
    b = fit(x, y, ["a", "b", "c"], head_type="mlp", seed=1)
    assert a.classes == ["a", "c"] and a.dropped == ["b"]
    assert all(np.array_equal(a.arrays[k], b.arrays[k]) for k in a.arrays)
    head = Head(id="m", head_type="mlp", classes=a.classes, arrays=a.arrays, backbone_id="bb", backbone_version="v")
    assert (head.probabilities(x).argmax(1) == (y == 2)).mean() > 0.9
    with pytest.raises(ValueError):
        fit(x, np.zeros(60, int), ["a", "b"])


def test_softmax_rows_sum_to_one():
    np.testing.assert_allclose(softmax(np.array([[1000.0, -1000.0, 0.0]])).sum(), 1.0)


# --- OOM back-off and failure isolation ----------------------------------------

def shrinks(name: str) -> float:
    return REGISTRY.get_sample_value("tator_classifier_oom_shrinks_total", {"backbone": name}) or 0.0


@pytest.mark.parametrize("message_only", [False, True])
def test_oom_halves_the_batch_and_keeps_every_result(message_only):
    crops = [np.full((4 + i % 7, 5, 3), i, np.uint8) for i in range(40)]
    expected = FakeBackbone().embed(crops)
    name = f"fake-oom-{message_only}"
    before = shrinks(name)
    bb = FakeBackbone(oom_above=5, oom_message=message_only)
    got = embed_batched(bb, crops, 32, name=name)
    assert got.batch_size_used == 4 and got.shrinks == 3 and not got.errors   # 32 -> 16 -> 8 -> 4
    np.testing.assert_array_equal(got.vectors, expected)
    assert max(bb.batches) == 4
    assert shrinks(name) - before == 3
    assert REGISTRY.get_sample_value("tator_classifier_batch_size_used", {"backbone": name}) == 4


def test_oom_at_batch_one_is_resource_exhausted():
    with pytest.raises(TatorError) as exc:
        embed_batched(FakeBackbone(oom_above=0), [np.zeros((4, 4, 3), np.uint8)] * 3, 8, name="fake-oom-all")
    assert exc.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_a_failing_crop_is_isolated():
    crops = [np.zeros((4 + i, 4, 3), np.uint8) for i in range(10)]
    got = embed_batched(FakeBackbone(poison=7), crops, 4, name="fake-poison")
    assert list(got.errors) == [3] and got.errors[3].startswith("embed_failed: ValueError")
    assert np.all(got.vectors[[0, 1, 2, 4, 5, 6, 7, 8, 9], 3] > 0)


# --- plain classify --------------------------------------------------------------

def test_classify_keeps_request_order_and_per_box_errors():
    head = make_head()
    boxes = [(10, 10, 30, 30), (5, 5, 5, 9), (200, 200, 220, 220), (0, 0, float("nan"), 4), (50, 40, 90, 79)]
    res = plain.classify(head, FakeBackbone(), image(), boxes, backbone_id="bb", batch_size=2, want_embeddings=True)
    assert [r.index for r in res.results] == list(range(5))
    assert [(r.ok, r.error) for r in res.results] == [(True, ""), (False, DEGENERATE), (False, OUTSIDE),
                                                      (False, NON_FINITE), (True, "")]
    for r in (res.results[0], res.results[4]):
        assert len(r.probabilities) == 3 and math.isclose(sum(r.probabilities), 1.0, abs_tol=1e-6)
        assert r.label == head.classes[r.class_id] and r.score == max(r.probabilities)
        assert r.margin == pytest.approx(sorted(r.probabilities)[-1] - sorted(r.probabilities)[-2])
        assert len(r.embedding) == 5
    assert res.batch_size_used == 2


def test_classify_with_only_bad_boxes_answers_each():
    res = plain.classify(make_head(), FakeBackbone(), image(), [(1, 1, 1, 1), (500, 500, 600, 600)],
                         backbone_id="bb")
    assert [r.ok for r in res.results] == [False, False] and res.batch_size_used == 0


def test_embed_whole_image_last_and_normalised():
    res = plain.embed(FakeBackbone(), image(), [(10, 10, 30, 30), (3, 3, 3, 3)], backbone_id="bb",
                      include_full_image=True, normalize=True)
    assert [(e.index, e.ok) for e in res.items] == [(0, True), (1, False), (-1, True)]
    assert np.linalg.norm(res.items[2].values) == pytest.approx(1.0)
    assert res.items[2].values != res.items[0].values


def test_plan_crops_uses_padding():
    plans = plan_crops([(20, 20, 40, 30)], 100, 80, 0.5)
    assert plans[0].region == (10, 15, 50, 35) and plans[0].ok


# --- datasets ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    from tator_fixtures.synth import generate

    root = tmp_path_factory.mktemp("cls_units_synth")
    generate(root, seed=3, images=10)
    return root


def test_yolo_and_coco_layouts_give_the_same_boxes(synth, tmp_path):
    yolo = read_dataset(synth)
    coco_root = tmp_path / "coco_only"
    shutil.copytree(synth, coco_root)
    for split in ("train", "val", "test"):
        shutil.rmtree(coco_root / split / "labels")
    coco = read_dataset(coco_root)
    assert yolo.layout == "yolo_split" and coco.layout == "coco" and yolo.labelmap == coco.labelmap
    for split in ("train", "val"):
        a = {p.image.name: sorted((c, tuple(round(v) for v in b)) for c, b in p.boxes) for p in yolo.splits[split]}
        b = {p.image.name: sorted((c, tuple(round(v) for v in b)) for c, b in p.boxes) for p in coco.splits[split]}
        assert a == b and sum(len(v) for v in a.values()) > 0


def test_flat_yolo_layout_and_bad_lines(synth, tmp_path):
    flat = tmp_path / "flat"
    shutil.copytree(synth / "train" / "images", flat / "images")
    shutil.copytree(synth / "train" / "labels", flat / "labels")
    shutil.copy(synth / "labelmap.txt", flat / "labelmap.txt")
    first = sorted((flat / "labels").glob("*.txt"))[0]
    first.write_text(first.read_text() + "9 0.5 0.5 0.1 0.1\nnot a line\n0 0.1 0.1 0.3 0.1 0.2 0.3\n")
    ds = read_dataset(flat)
    assert ds.layout == "yolo_flat" and ds.skipped == 2 and list(ds.splits) == ["train"]


def crop_folders(synth: Path, dest: Path) -> Path:
    """A crop-folder dataset cut from a synth set: <split>/<class>/*.png plus __bg_background corners."""
    from PIL import Image

    ds = read_dataset(synth)
    for split, items in ds.splits.items():
        for item in items:
            im = Image.open(item.image).convert("RGB")
            for k, (cls, box) in enumerate(item.boxes):
                out = dest / split / ds.labelmap[cls].upper() / f"{item.image.stem}_{k}.png"  # case-insensitive match
                out.parent.mkdir(parents=True, exist_ok=True)
                im.crop(tuple(int(v) for v in box)).save(out)
            bg = dest / split / "__bg_background" / f"{item.image.stem}.png"
            bg.parent.mkdir(parents=True, exist_ok=True)
            im.crop((0, 0, 12, 12)).save(bg)
    shutil.copy(synth / "labelmap.txt", dest / "labelmap.txt")
    return dest


def test_crop_folder_layout(synth, tmp_path):
    ds = read_dataset(crop_folders(synth, tmp_path / "crops"))
    assert ds.layout == "crops" and ds.labelmap == ["circle", "square", "triangle", "__bg_background"]
    item = ds.splits["train"][0]
    assert len(item.boxes) == 1 and item.boxes[0][1][:2] == (0.0, 0.0)
    from PIL import Image

    assert item.boxes[0][1][2:] == tuple(float(v) for v in Image.open(item.image).size)
    assert {c for a in ds.splits["train"] for c, _ in a.boxes} == {0, 1, 2, 3}


def test_dataset_errors(tmp_path, synth):
    with pytest.raises(TatorError) as exc:
        read_dataset(tmp_path / "nope")
    assert exc.value.reason == "DATASET_NOT_FOUND" and exc.value.code == grpc.StatusCode.NOT_FOUND
    (tmp_path / "nolabelmap").mkdir()
    with pytest.raises(TatorError) as exc:
        read_dataset(tmp_path / "nolabelmap")
    assert exc.value.code == grpc.StatusCode.INVALID_ARGUMENT
    empty = tmp_path / "empty"
    (empty / "train" / "labels").mkdir(parents=True)
    shutil.copy(synth / "labelmap.txt", empty / "labelmap.txt")
    with pytest.raises(TatorError) as exc:
        read_dataset(empty)
    assert exc.value.reason == "NO_GROUND_TRUTH"


def test_coco_file_names_cannot_escape_the_root(synth, tmp_path):
    root = tmp_path / "escape"
    shutil.copytree(synth, root)
    for split in ("train", "val", "test"):
        shutil.rmtree(root / split / "labels")
    doc = json.loads((root / "coco" / "train.json").read_text())
    outside = tmp_path / "secret.png"
    shutil.copy(next((root / "train" / "images").glob("*.png")), outside)
    doc["images"][0]["file_name"] = "../../secret.png"
    (root / "coco" / "train.json").write_text(json.dumps(doc))
    ds = read_dataset(root)
    assert all(a.image.resolve().is_relative_to(root.resolve()) for a in ds.splits["train"])
