"""The registry's persisted default per family: set_default edits the file atomically, other
families and other entries' fields stay as they were, and a fresh load sees the change."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
import yaml

from tator_core import errors
from tator_core.registry import Registry, edit, read_defaults, set_default

DOC = {"models": [
    {"id": "y1", "family": "yolo", "path": "y1.pt", "default": True, "labelmap": ["a", "b"]},
    {"id": "y2", "family": "yolo", "path": "y2.pt", "options": {"imgsz": 160}},
    {"id": "r1", "family": "rfdetr", "path": "r1.pth", "default": True},
    {"id": "clip1", "family": "clip", "path": "clip1", "default": True},
    {"id": "dino1", "family": "dinov3", "path": "dino1"},
]}


@pytest.fixture()
def reg_path(tmp_path: Path) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(DOC, sort_keys=False))
    return path


def test_set_default_moves_the_flag_within_the_family_only(reg_path: Path) -> None:
    assert read_defaults(reg_path) == {"yolo": "y1", "rfdetr": "r1", "backbone": "clip1"}
    set_default(reg_path, "y2")
    reg = Registry.load(reg_path)
    assert reg.default("yolo").id == "y2"
    assert reg.default("rfdetr").id == "r1"  # another family keeps its default
    assert reg.entries["y2"].options == {"imgsz": 160}  # the rest of the entry is untouched
    assert reg.entries["y1"].labelmap == ["a", "b"]
    assert read_defaults(reg_path)["yolo"] == "y2"


def test_backbones_share_one_default(reg_path: Path) -> None:
    set_default(reg_path, "dino1")
    reg = Registry.load(reg_path)
    assert reg.default_of_group("clip").id == "dino1"
    assert not reg.entries["clip1"].default
    assert read_defaults(reg_path)["backbone"] == "dino1"


def test_unknown_id_is_not_found_and_leaves_the_file(reg_path: Path) -> None:
    before = reg_path.read_bytes()
    with pytest.raises(errors.TatorError) as info:
        set_default(reg_path, "nope")
    assert info.value.reason == "MODEL_NOT_FOUND" and "nope" in info.value.message
    assert reg_path.read_bytes() == before


def test_an_edit_that_raises_writes_nothing(reg_path: Path) -> None:
    before = reg_path.read_bytes()
    with pytest.raises(RuntimeError), edit(reg_path) as doc:
        doc["models"].clear()
        raise RuntimeError("boom")
    assert reg_path.read_bytes() == before
    assert not [p for p in reg_path.parent.iterdir() if p.name.endswith(".tmp")]


def _append(path: str, n: int, start: int) -> None:
    for i in range(start, start + n):
        with edit(path) as doc:
            doc["models"].append({"id": f"m{i}", "family": "yolo", "path": f"m{i}.pt"})


def test_concurrent_writers_lose_no_update(reg_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append, args=(str(reg_path), 10, k * 10)) for k in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert all(p.exitcode == 0 for p in procs)
    ids = set(Registry.load(reg_path).entries)
    assert {f"m{i}" for i in range(30)} <= ids


def test_mark_default_in_memory(reg_path: Path) -> None:
    reg = Registry.load(reg_path)
    reg.mark_default("y2")
    assert reg.default("yolo").id == "y2" and not reg.entries["y1"].default
    assert reg.default("rfdetr").id == "r1"
