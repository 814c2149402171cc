"""The one dataset abstraction: YOLO and COCO layouts give the same images and
ground truth; unsafe paths are ignored; edits are picked up without a restart."""

from __future__ import annotations

import json
import os
import shutil

import grpc
import pytest

from svc_orchestrator.datasets import DatasetCatalog
from tator_core import errors
from tator_fixtures.synth import generate


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    generate(root / "synth", seed=3, images=12)
    return root


def test_yolo_layout_items_and_ground_truth(synth_root):
    ds = DatasetCatalog(synth_root).get("synth")
    assert ds.layout == "yolo" and ds.labelmap == ["circle", "square", "triangle"]
    assert sum(ds.splits.values()) == 12 == len(ds.items())
    assert set(ds.splits) <= {"train", "val", "test"}
    assert ds.has_ground_truth and ds.annotation_count() > 0
    for it in ds.items():
        w, h = ds.image_size(it)
        for gt in ds.ground_truth(it):
            x1, y1, x2, y2 = gt.box
            assert 0 <= x1 < x2 <= w + 1e-3 and 0 <= y1 < y2 <= h + 1e-3
            assert gt.label == ds.labelmap[gt.class_id]
    assert "disc" in ds.glossary_text or "circle" in ds.glossary_text


def test_coco_layout_matches_yolo(synth_root, tmp_path):
    yolo = DatasetCatalog(synth_root).get("synth")
    coco_root = tmp_path / "cocoonly"
    shutil.copytree(synth_root / "synth", coco_root)
    for split in ("train", "val", "test"):
        shutil.rmtree(coco_root / split / "labels", ignore_errors=True)
    (coco_root / "labelmap.txt").unlink()
    coco = DatasetCatalog(tmp_path).get("cocoonly")
    assert coco.layout == "coco" and coco.labelmap == yolo.labelmap
    assert [i.name for i in coco.items()] == sorted(i.name for i in yolo.items())
    for it in yolo.items():
        a = sorted((g.label, tuple(round(v, 1) for v in g.box)) for g in yolo.ground_truth(it))
        b = sorted((g.label, tuple(round(v, 1) for v in g.box)) for g in coco.ground_truth(coco.item(it.name)))
        assert a == b, it.name


def test_unknown_and_hostile_ids(synth_root):
    cat = DatasetCatalog(synth_root)
    with pytest.raises(errors.TatorError) as ei:
        cat.get("nope")
    assert (ei.value.code, ei.value.reason) == (grpc.StatusCode.NOT_FOUND, "DATASET_NOT_FOUND")
    for bad in ("..", "../etc", "a/b", ""):
        with pytest.raises(errors.TatorError) as ei:
            cat.get(bad)
        assert ei.value.code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)
    with pytest.raises(errors.TatorError) as ei:
        cat.get("synth").item("../../etc/passwd")
    assert ei.value.code == grpc.StatusCode.NOT_FOUND


def test_symlinked_images_are_skipped(synth_root, tmp_path):
    root = tmp_path / "linked"
    shutil.copytree(synth_root / "synth", root)
    outside = tmp_path / "outside.png"
    shutil.copy(next((root / "train" / "images").iterdir()), outside)
    os.symlink(outside, root / "train" / "images" / "zz_link.png")
    ds = DatasetCatalog(tmp_path).get("linked")
    assert not any(i.name.endswith("zz_link.png") for i in ds.items())


def test_glossary_edit_is_seen_without_restart(synth_root, tmp_path):
    root = tmp_path / "edit"
    shutil.copytree(synth_root / "synth", root)
    cat = DatasetCatalog(tmp_path)
    before = cat.get("edit").glossary_hash
    (root / "glossary.json").write_text(json.dumps({"circle": ["orb"]}))
    after = cat.get("edit")
    assert after.glossary_hash != before and "orb" in after.glossary_text


def test_listing_skips_non_datasets(synth_root, tmp_path):
    shutil.copytree(synth_root / "synth", tmp_path / "good")
    (tmp_path / "empty").mkdir()
    (tmp_path / ".hidden").mkdir()
    assert [d.id for d in DatasetCatalog(tmp_path).list()] == ["good"]
