"""The committed YOLO fixture (loads, is pinned, detects the synthetic world) and `tator models build`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tator_core.registry import Registry
from tator_fixtures import DEMO_IMAGES, DEMO_SEED, LABELMAP, TRAIN_SEED, YOLO_FIXTURE
from tator_fixtures import models as models_mod
from tator_fixtures.fuzz_pack import sha256_file
from tator_fixtures.synth import generate
from tator_fixtures.train_yolo import FIXTURE_IMGSZ, evaluate, training_record
from tator_fixtures.trained_on import RECORD_FILE, read_record, split_images

README = YOLO_FIXTURE.parent / "README.md"


def test_weights_are_pinned_by_the_readme() -> None:
    assert YOLO_FIXTURE.stat().st_size < 10 * 1024 * 1024
    documented = re.search(r"sha256[^0-9a-f]*([0-9a-f]{64})", README.read_text())
    assert documented and documented.group(1) == sha256_file(YOLO_FIXTURE)


def test_weights_load_with_the_synthetic_labelmap() -> None:
    from ultralytics import YOLO

    assert list(YOLO(str(YOLO_FIXTURE)).names.values()) == list(LABELMAP)


def test_recall_on_the_synthetic_test_split(tmp_path: Path) -> None:
    """Same seed and size as the README's dataset command; only the test split is rendered."""
    generate(tmp_path, seed=TRAIN_SEED, images=DEMO_IMAGES, splits=("test",))
    result = evaluate(YOLO_FIXTURE, tmp_path, split="test", imgsz=FIXTURE_IMGSZ, conf=0.25, iou=0.5)
    assert result["gt"] >= 40
    assert result["recall"] >= 0.9, result


def test_training_record_is_the_regenerated_training_world(tmp_path: Path) -> None:
    """The committed record lists exactly the files `train_yolo` fits and selects on, as this machine
    renders them: if rendering drifted, the leakage check would miss them, so this test fails instead."""
    generate(tmp_path, seed=TRAIN_SEED, images=DEMO_IMAGES, splits=("train", "val"))
    committed = read_record(YOLO_FIXTURE.parent / RECORD_FILE)
    assert training_record(tmp_path).image_sha256 == committed.image_sha256
    assert len(committed.image_sha256) == 149  # 123 small train + 26 small val images (see the README)
    assert "seed 0" in committed.description


def test_demo_seed_is_not_the_training_seed() -> None:
    assert DEMO_SEED != TRAIN_SEED


# --- tator models build ---------------------------------------------------------------------------

FAKE_BUILDER = '''
from pathlib import Path

def build(models_dir, *, seed=0, **kw):
    out = Path(models_dir) / "{id}"
    out.mkdir(exist_ok=True)
    (out / "weights.bin").write_bytes(bytes([seed]))
    with open(Path(models_dir) / "calls.log", "a") as log:
        log.write("{id} " + " ".join(sorted(kw)) + "\\n")
    return [{{"id": "{id}", "family": "{family}", "path": "{id}", "default": True, "options": {{}}}}]
'''


@pytest.fixture
def fake_builders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stand-in service builders, so the aggregation is tested without building real models."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "fake_sam3_tiny.py").write_text(FAKE_BUILDER.format(id="sam3-tiny", family="sam3"))
    (src / "fake_head_tiny.py").write_text(FAKE_BUILDER.format(id="head-synth", family="head"))
    monkeypatch.syspath_prepend(str(src))
    monkeypatch.setattr(models_mod, "BUILDERS", {"fake_sam3_tiny": (), "fake_head_tiny": ("dataset_dir",)})


@pytest.fixture
def small_dataset(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    generate(data, seed=5, images=8)
    return data


@pytest.mark.usefixtures("fake_builders")
def test_models_build_writes_a_registry_once(small_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "models"
    registry_path = models_mod.build_models(out, data=small_dataset)
    registry = Registry.load(registry_path)
    assert sorted(registry.entries) == ["head-synth", "sam3-tiny", "yolo-synth"]
    yolo = registry.get("yolo-synth")
    assert yolo.family == "yolo" and yolo.default and yolo.labelmap == list(LABELMAP)
    assert sha256_file(yolo.path) == sha256_file(YOLO_FIXTURE)
    assert yolo.options == {"imgsz": FIXTURE_IMGSZ}
    assert yolo.trained_on == read_record(YOLO_FIXTURE.parent / RECORD_FILE)
    head = registry.get("head-synth").trained_on
    assert head is not None and len(head.image_sha256) == len(split_images(small_dataset, ("train", "val"))) > 0
    assert (out / "calls.log").read_text() == "sam3-tiny \nhead-synth dataset_dir\n"

    models_mod.build_models(out, data=small_dataset)  # stamp matches: nothing is rebuilt
    assert (out / "calls.log").read_text().count("\n") == 2
    (out / "sam3-tiny" / "weights.bin").unlink()
    (out / "sam3-tiny").rmdir()
    models_mod.build_models(out, data=small_dataset)  # a listed path vanished: rebuilt
    assert (out / "calls.log").read_text().count("\n") == 4
    assert yaml.safe_load(registry_path.read_text())["models"][0]["id"] == "yolo-synth"


@pytest.mark.usefixtures("fake_builders")
def test_models_build_fails_loudly_on_a_missing_builder(
    small_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(models_mod.BUILDERS, "svc_nowhere.tiny", ())
    with pytest.raises(RuntimeError, match="model builder svc_nowhere.tiny is missing"):
        models_mod.build_models(tmp_path / "models", data=small_dataset)


@pytest.mark.usefixtures("fake_builders")
def test_a_rebuild_keeps_users_models_and_their_default(small_dataset: Path, tmp_path: Path) -> None:
    from tator_core.registry import add_entry

    out = tmp_path / "models"
    registry_path = models_mod.build_models(out, data=small_dataset)
    mine = out / "user" / "mine" / "weights.bin"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"user's model")
    add_entry(registry_path, {"id": "mine", "family": "sam3", "path": "user/mine/weights.bin", "default": True})

    models_mod.build_models(out, data=small_dataset, force=True)
    registry = Registry.load(registry_path)
    assert sorted(registry.entries) == ["head-synth", "mine", "sam3-tiny", "yolo-synth"]
    assert registry.default("sam3").id == "mine" and not registry.get("sam3-tiny").default
    assert registry.default("yolo").id == "yolo-synth"
    calls = (out / "calls.log").read_text().count("\n")
    mine.unlink()  # the user's file vanishing is not the build's to repair
    models_mod.build_models(out, data=small_dataset)
    assert (out / "calls.log").read_text().count("\n") == calls
