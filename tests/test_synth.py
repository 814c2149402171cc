"""The synthetic dataset generator: determinism and layout validity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tator_fixtures import LABELMAP
from tator_fixtures.synth import LARGE_OBJECT, SPLITS, generate, is_large

SEED, IMAGES = 3, 24  # indices 7, 15, 23 are large scenes


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    generate(out, seed=SEED, images=IMAGES)
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files(dataset: Path, tmp_path: Path) -> None:
    generate(tmp_path, seed=SEED, images=IMAGES)
    first, second = _files(dataset), _files(tmp_path)
    assert first.keys() == second.keys()
    assert [name for name in first if first[name] != second[name]] == []


def test_other_seed_gives_other_images(dataset: Path, tmp_path: Path) -> None:
    generate(tmp_path, seed=SEED + 1, images=IMAGES)
    name = next(iter(sorted((dataset / "train" / "images").iterdir()))).name
    other = next(p for split in SPLITS for p in (tmp_path / split / "images").glob(name))
    assert other.read_bytes() != next(dataset.rglob(name)).read_bytes()


def test_subset_of_splits_renders_the_same_images(dataset: Path, tmp_path: Path) -> None:
    generate(tmp_path, seed=SEED, images=IMAGES, splits=("test",))
    assert _files(tmp_path / "test") == _files(dataset / "test")
    assert not (tmp_path / "train").exists()


def test_regenerating_replaces_the_old_dataset(tmp_path: Path) -> None:
    generate(tmp_path, seed=SEED, images=16)
    generate(tmp_path, seed=SEED, images=8)
    assert len(list(tmp_path.glob("*/images/*.png"))) == 8
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="holds no synthetic dataset"):
        generate(tmp_path / "other", seed=SEED, images=8)


def test_metadata_files(dataset: Path) -> None:
    assert (dataset / "labelmap.txt").read_text().splitlines() == list(LABELMAP)
    glossary = json.loads((dataset / "glossary.json").read_text())
    assert list(glossary) == sorted(LABELMAP)
    assert all(3 <= len(terms) <= 5 for terms in glossary.values())
    meta = json.loads((dataset / "dataset.json").read_text())
    assert (meta["seed"], meta["images"]) == (SEED, IMAGES)
    assert sum(meta["splits"][s]["images"] for s in SPLITS) == IMAGES
    for split in SPLITS:
        assert meta["splits"][split]["images"] == len(list((dataset / split / "images").glob("*.png")))
    data_yaml = yaml.safe_load((dataset / "data.yaml").read_text())
    assert data_yaml["names"] == list(LABELMAP)
    assert all((dataset / data_yaml[s]).is_dir() for s in SPLITS)


def test_split_ratio_and_large_scenes_in_every_split(tmp_path: Path) -> None:
    meta = generate(tmp_path, seed=0, images=40)
    assert [meta["splits"][s]["images"] for s in SPLITS] == [28, 6, 6]
    assert all(meta["splits"][s]["large_images"] >= 1 for s in SPLITS)


def _yolo_boxes(dataset: Path, split: str, stem: str, w: int, h: int) -> list[tuple[int, list[float]]]:
    boxes = []
    for line in (dataset / split / "labels" / f"{stem}.txt").read_text().splitlines():
        parts = line.split()
        assert len(parts) == 5, line
        cls, cx, cy, bw, bh = int(parts[0]), *map(float, parts[1:])
        assert 0 <= cls < len(LABELMAP)
        assert all(0.0 <= v <= 1.0 for v in (cx, cy, bw, bh)) and bw > 0 and bh > 0
        assert cx - bw / 2 >= -1e-6 and cx + bw / 2 <= 1 + 1e-6
        assert cy - bh / 2 >= -1e-6 and cy + bh / 2 <= 1 + 1e-6
        boxes.append((cls, [(cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h]))
    return boxes


def test_yolo_labels_valid_and_coco_consistent(dataset: Path) -> None:
    for split in SPLITS:
        coco = json.loads((dataset / "coco" / f"{split}.json").read_text())
        assert coco["categories"] == [{"id": i, "name": n} for i, n in enumerate(LABELMAP)]
        assert len(coco["images"]) == len(list((dataset / split / "images").glob("*.png")))
        anns: dict[int, list] = {}
        for ann in coco["annotations"]:
            anns.setdefault(ann["image_id"], []).append(ann)
        for image in coco["images"]:
            assert (dataset / split / "images" / image["file_name"]).is_file()
            stem = Path(image["file_name"]).stem
            yolo = _yolo_boxes(dataset, split, stem, image["width"], image["height"])
            mine = anns.get(image["id"], [])
            assert len(yolo) == len(mine) >= 1
            for (cls, box), ann in zip(yolo, mine):
                assert ann["category_id"] == cls
                assert ann["bbox"] == pytest.approx(box, abs=0.01)
                x, y, bw, bh = ann["bbox"]
                assert x >= 0 and y >= 0 and x + bw <= image["width"] and y + bh <= image["height"]


def test_scene_sizes(dataset: Path) -> None:
    """Most scenes are 160–320 px; every 8th is large with objects small enough to need tiling."""
    for split in SPLITS:
        coco = json.loads((dataset / "coco" / f"{split}.json").read_text())
        for image in coco["images"]:
            side = max(image["width"], image["height"])
            sizes = [max(a["bbox"][2:]) for a in coco["annotations"] if a["image_id"] == image["id"]]
            if is_large(image["id"]):
                assert 800 <= side <= 1024
                assert max(sizes) <= LARGE_OBJECT[1] + 2
            else:
                assert 160 <= side <= 320


def test_ultralytics_resolves_data_yaml(dataset: Path) -> None:
    """data.yaml carries relative paths; ultralytics must resolve them next to the file."""
    from ultralytics.data.utils import check_det_dataset

    resolved = check_det_dataset(str(dataset / "data.yaml"))
    assert Path(resolved["train"]) == dataset / "train" / "images"
    assert resolved["names"] == dict(enumerate(LABELMAP))
