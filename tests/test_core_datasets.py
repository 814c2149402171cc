"""The one YOLO / COCO reader (tator_core.datasets): what is a usable box, what is skipped and counted."""

import json
import math

import pytest

from tator_core.datasets import read_coco, read_yolo_labels, yolo_box


def test_yolo_box_and_polygon_in_pixels() -> None:
    assert yolo_box("1 0.5 0.5 0.2 0.4", 100, 50, 3) == (1, (40.0, 15.0, 60.0, 35.0))
    cls, box = yolo_box("2 0.1 0.2 0.3 0.2 0.2 0.6", 100, 50, 3)
    assert cls == 2 and box == pytest.approx((10.0, 10.0, 30.0, 30.0))


@pytest.mark.parametrize("line", [
    "", "1 0.5 0.5 0.2", "x 0.5 0.5 0.2 0.2", "1 0.5 nope 0.2 0.2", "3 0.5 0.5 0.2 0.2", "-1 0.5 0.5 0.2 0.2",
    "1 0.1 0.2 0.3 0.2 0.2", "1 0.5 0.5 0 0.2", "1 0.5 0.5 nan 0.2", "1 0.5 0.5 inf 0.2"])
def test_unusable_yolo_lines_are_none(line: str) -> None:
    assert yolo_box(line, 100, 100, 3) is None


def test_label_file_counts_unusable_lines_but_not_blank_ones(tmp_path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("0 0.5 0.5 0.5 0.5\n\n   \n9 0.5 0.5 0.5 0.5\ngarbage\n")
    boxes, skipped = read_yolo_labels(path, 10, 10, 3)
    assert boxes == [(0, (2.5, 2.5, 7.5, 7.5))] and skipped == 2


def test_coco_keeps_usable_boxes_per_image_and_counts_the_rest(tmp_path) -> None:
    doc = {"categories": [{"id": 1, "name": "circle"}, {"id": "2", "name": "square"}, {"name": "no id"}],
           "images": [{"id": 7, "file_name": "a/b.png"}, {"id": 8, "file_name": "c.png"}],
           "annotations": [
               {"image_id": 7, "category_id": 1, "bbox": [1, 2, 3, 4]},
               {"image_id": 7, "category_id": 2, "bbox": [0, 0, 0, 4]},       # empty
               {"image_id": 9, "category_id": 1, "bbox": [1, 2, 3, 4]},       # unknown image
               {"image_id": 8, "category_id": 1, "bbox": [1, 2, 3]},          # three numbers
               {"image_id": 8, "category_id": 1, "bbox": [1, 2, math.inf, 4]},  # non-finite (JSON Infinity)
               {"image_id": 8, "bbox": [1, 2, 3, 4]}]}                        # no category
    path = tmp_path / "train.json"
    path.write_text(json.dumps(doc))
    out = read_coco(path)
    assert out.categories == {1: "circle", 2: "square"} and out.images == {7: "a/b.png", 8: "c.png"}
    assert out.boxes == {7: [(1, (1.0, 2.0, 4.0, 6.0))], 8: []} and out.skipped == 5


def test_coco_that_is_not_an_object_is_a_value_error(tmp_path) -> None:
    path = tmp_path / "x.json"
    path.write_text("[1, 2]")
    with pytest.raises(ValueError):
        read_coco(path)
    path.write_text("{not json")
    with pytest.raises(ValueError):
        read_coco(path)
