"""`tator models add|list|activate|remove` on a registry of its own: the check runs in the detector's own
`check-model` process (real ultralytics load + one inference on the committed YOLO fixture), and the
registry is written only after it passed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tator_cli.main import app
from tator_core.registry import Registry, add_entry, remove_entry
from tator_fixtures import LABELMAP, YOLO_FIXTURE

pytestmark = pytest.mark.skipif(not YOLO_FIXTURE.is_file(), reason="the committed YOLO fixture is absent")


def tator(*args: str | Path):
    return CliRunner().invoke(app, [str(a) for a in args])


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    return tmp_path / "models" / "registry.yaml"


def labelmap_file(tmp_path: Path, names: list[str]) -> Path:
    path = tmp_path / f"labels-{len(names)}.txt"
    path.write_text("".join(f"{n}\n" for n in names))
    return path


def test_add_copies_checks_in_the_detector_and_registers(registry, tmp_path):
    res = tator("models", "add", "yolo", YOLO_FIXTURE, "--name", "my-yolo", "--option", "imgsz=192",
                "--labelmap", labelmap_file(tmp_path, list(LABELMAP)), "--registry", registry, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    # The check ran the service's loader with the entry's options: the input size is the option, not the
    # checkpoint's training size (160).
    assert out["check"]["extra"]["imgsz"] == "192" and out["check"]["labelmap"] == list(LABELMAP)
    entry = Registry.load(registry).get("my-yolo")
    assert entry.path == registry.parent / "user" / "my-yolo" / "best.pt"
    assert sha256(entry.path) == sha256(YOLO_FIXTURE)  # a copy of the user's bytes
    assert (entry.labelmap, entry.options, entry.default) == (list(LABELMAP), {"imgsz": 192}, True)
    assert not list((registry.parent / "user").glob(".adding-*"))  # the staging folder was renamed

    again = tator("models", "add", "yolo", YOLO_FIXTURE, "--name", "my-yolo", "--registry", registry)
    assert again.exit_code == 1 and "already registered" in again.output


def test_a_labelmap_that_does_not_match_the_weights_is_refused_naming_both(registry, tmp_path):
    wrong = labelmap_file(tmp_path, ["car", "person"])
    res = tator("models", "add", "yolo", YOLO_FIXTURE, "--name", "wrong", "--labelmap", wrong,
                "--registry", registry)
    text = " ".join(res.output.split())  # rich wraps long lines
    assert res.exit_code == 1
    assert str(wrong) in text and "best.pt" in text
    assert "(2 classes: car, person)" in text and "(3 classes: circle, square, triangle)" in text
    assert not registry.exists() and not list((registry.parent / "user").iterdir())


def test_a_file_that_is_no_checkpoint_is_refused_and_leaves_nothing(registry, tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    res = tator("models", "add", "yolo", junk, "--registry", registry)
    assert res.exit_code == 1 and "did not load and run one inference" in " ".join(res.output.split())
    assert not registry.exists() and not list((registry.parent / "user").iterdir())


@pytest.mark.parametrize("args, text", [
    (["sam3", YOLO_FIXTURE], "Hugging Face folder"),
    (["head", YOLO_FIXTURE], "cannot be added"),
    (["yolo", Path("/nonexistent/best.pt")], "no such file"),
    (["yolo", YOLO_FIXTURE, "--name", "Bad Name"], "name 'Bad Name'"),
    (["yolo", YOLO_FIXTURE, "--option", "imgsz"], "expected key=value"),
])
def test_bad_arguments_are_refused_before_any_copy(registry, args, text):
    res = tator("models", "add", *args, "--registry", registry)
    assert res.exit_code == 1 and text in " ".join(res.output.split())
    assert not (registry.parent / "user").exists()


def _seed(registry: Path, tmp_path: Path) -> Path:
    """Two yolo entries on disk inside the model dir and one whose weights lie outside it."""
    for name in ("a", "b"):
        weights = registry.parent / "user" / name / "best.pt"
        weights.parent.mkdir(parents=True)
        weights.write_bytes(name.encode())
        add_entry(registry, {"id": name, "family": "yolo", "path": f"user/{name}/best.pt", "default": name == "a"})
    outside = tmp_path / "elsewhere.pt"
    outside.write_bytes(b"user's own file")
    add_entry(registry, {"id": "ext", "family": "yolo", "path": str(outside)})
    return outside


def test_list_activate_remove(registry, tmp_path):
    outside = _seed(registry, tmp_path)
    rows = [json.loads(line) for line in tator("models", "list", "--registry", registry, "--json").stdout.splitlines()]
    assert [(r["name"], r["default"]) for r in rows] == [("a", True), ("b", False), ("ext", False)]
    assert rows[0]["sha256"] == hashlib.sha256(b"a").hexdigest() and rows[0]["path"] == "user/a/best.pt"

    assert tator("models", "activate", "b", "--registry", registry).exit_code == 0
    reg = Registry.load(registry)
    assert [e.id for e in reg.family("yolo") if e.default] == ["b"]  # one default per family, persisted
    assert tator("models", "activate", "nobody", "--registry", registry).exit_code == 1

    refused = tator("models", "remove", "b", "--registry", registry)
    assert refused.exit_code == 1 and "default" in refused.output and "b" in Registry.load(registry).entries
    assert tator("models", "remove", "a", "--registry", registry).exit_code == 0
    assert not (registry.parent / "user" / "a").exists()  # its own folder inside the model dir goes

    assert tator("models", "remove", "ext", "--registry", registry).exit_code == 0
    assert outside.read_bytes() == b"user's own file"  # never deletes outside the model directory
    assert tator("models", "remove", "b", "--force", "--registry", registry).exit_code == 0
    assert Registry.load(registry).entries == {}


def test_files_another_entry_uses_are_kept(registry, tmp_path):
    _seed(registry, tmp_path)
    add_entry(registry, {"id": "twin", "family": "yolo", "path": "user/b/best.pt"})
    remove_entry(registry, "b")
    assert tator("models", "remove", "twin", "--registry", registry).exit_code == 0
    assert (registry.parent / "user" / "b" / "best.pt").exists() is False  # nobody uses it any more
    add_entry(registry, {"id": "c", "family": "yolo", "path": "user/a/best.pt"})
    assert tator("models", "remove", "c", "--registry", registry).exit_code == 0
    assert (registry.parent / "user" / "a" / "best.pt").exists()  # 'a' still uses it


def test_a_registry_edit_that_would_not_load_is_not_written(registry, tmp_path):
    _seed(registry, tmp_path)
    before = registry.read_text()
    with pytest.raises(ValueError, match="unknown family"):
        add_entry(registry, {"id": "z", "family": "nonsense", "path": "x"})
    assert registry.read_text() == before
    assert yaml.safe_load(before)["models"][0]["id"] == "a"


def test_a_hugging_face_sam3_folder_is_checked_in_the_sam3_service(registry, tmp_path):
    import shutil

    from svc_sam3 import tiny
    from tator_core.hashing import path_version

    (built,) = tiny.build(tmp_path / "built")
    source = tmp_path / "built" / built["path"]
    res = tator("models", "add", "sam3", source, "--name", "my-sam3", "--registry", registry, "--json")
    assert res.exit_code == 0, res.output
    entry = Registry.load(registry).get("my-sam3")
    assert entry.path == registry.parent / "user" / "my-sam3" / source.name
    assert path_version(entry.path) == path_version(source)  # the whole folder, byte for byte
    assert (entry.labelmap, entry.default) == (None, True)
    assert json.loads(res.stdout)["check"]["inference_s"] >= 0

    refused = tator("models", "add", "sam3", source, "--name", "mapped", "--registry", registry,
                    "--labelmap", labelmap_file(tmp_path, list(LABELMAP)))
    assert refused.exit_code == 1 and "no fixed classes" in " ".join(refused.output.split())

    broken = tmp_path / "broken-sam3"
    shutil.copytree(source, broken)
    (broken / "model.safetensors").write_bytes(b"\0" * 64)
    res = tator("models", "add", "sam3", broken, "--registry", registry)
    assert res.exit_code == 1 and "did not load and run one inference as a sam3 model" in " ".join(res.output.split())
    assert set(Registry.load(registry).entries) == {"my-sam3"}
    assert sorted(p.name for p in (registry.parent / "user").iterdir()) == ["my-sam3"]


def test_a_qwen_folder_is_checked_by_captioning_in_the_qwen_service(registry, tmp_path):
    from svc_qwen import tiny

    (built,) = tiny.build(tmp_path / "built")
    res = tator("models", "add", "qwen", tmp_path / "built" / built["path"], "--name", "my-qwen",
                "--option", "dtype=float32", "--registry", registry, "--json")
    assert res.exit_code == 0, res.output
    check = json.loads(res.stdout)["check"]
    assert check["extra"]["model_type"].startswith("qwen") and check["labelmap"] == []
    entry = Registry.load(registry).get("my-qwen")
    assert (entry.family, entry.options, entry.labelmap) == ("qwen", {"dtype": "float32"}, None)


def test_an_rfdetr_checkpoint_is_checked_with_its_options_and_labelmap(registry, tmp_path):
    from svc_detector import tiny

    (built,) = tiny.build(tmp_path / "built")
    weights = tmp_path / "built" / built["path"]
    options = [f"--option={k}={v}" for k, v in built["options"].items()]
    wrong = tator("models", "add", "rfdetr", weights, "--name", "rf-wrong", *options, "--registry", registry,
                  "--labelmap", labelmap_file(tmp_path, ["circle", "square", "hexagon"]))
    text = " ".join(wrong.output.split())
    assert wrong.exit_code == 1 and "[2] 'triangle' != 'hexagon'" in text
    assert "rf-wrong" not in Registry.load(registry).entries

    res = tator("models", "add", "rfdetr", weights, "--name", "my-rfdetr", *options, "--registry", registry, "--json")
    assert res.exit_code == 0, res.output
    check = json.loads(res.stdout)["check"]
    assert check["extra"]["resolution"] == str(tiny.RESOLUTION) and check["labelmap"] == list(LABELMAP)
    assert Registry.load(registry).get("my-rfdetr").options == built["options"]


def test_clip_and_dinov3_backbones_are_checked_by_embedding_and_share_one_default(registry, tmp_path):
    from svc_classifier import tiny

    tiny.build_clip(tmp_path / "clip-b", seed=0)
    tiny.build_dinov3(tmp_path / "dino-b", seed=0)
    res = tator("models", "add", "clip", tmp_path / "clip-b", "--option", "pooling=cls", "--registry", registry,
                "--json")
    assert res.exit_code == 0, res.output
    check = json.loads(res.stdout)["check"]
    assert check["extra"]["pooling"] == "cls" and int(check["extra"]["dim"]) > 0  # the option reached the loader
    res = tator("models", "add", "dinov3", tmp_path / "dino-b", "--registry", registry, "--json")
    assert res.exit_code == 0, res.output
    reg = Registry.load(registry)
    # the first backbone stays the classifier's default: CLIP and DINOv3 share one
    assert reg.default_of_group("dinov3").id == "clip-b" and not reg.get("dino-b").default

    # an option the loader refuses is the check's failure, not a registry entry
    bad = tator("models", "add", "clip", tmp_path / "clip-b", "--name", "bad-pool", "--option", "pooling=nope",
                "--registry", registry)
    assert bad.exit_code == 1 and "nope" in bad.output and "bad-pool" not in Registry.load(registry).entries
