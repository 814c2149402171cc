"""The committed fuzz pack: contents, reproducibility, and refusal on any hash mismatch."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from tator_cli.main import app
from tator_fixtures import FUZZ_PACK_DIR, LABELMAP
from tator_fixtures.fuzz_pack import FuzzPackError, build_fuzz_pack, load_fuzz_pack, pack_files, sha256_file
from tator_fixtures.regress import run_regress


@pytest.fixture
def pack_copy(tmp_path: Path) -> Path:
    dest = tmp_path / "pack"
    shutil.copytree(FUZZ_PACK_DIR, dest)
    return dest


def test_committed_pack_loads() -> None:
    pack = load_fuzz_pack(FUZZ_PACK_DIR)
    assert 2 <= len(pack.images) <= 4
    for image in pack.images:
        with Image.open(image) as im:
            assert max(im.size) <= 320
        assert pack.label_path(image).read_text().strip()
    assert pack.labelmap == list(LABELMAP)
    assert set(pack.glossary) == set(LABELMAP)
    assert all(3 <= len(terms) <= 5 for terms in pack.glossary.values())
    families = {entry["family"] for entry in pack.models}
    assert families == {"yolo", "head", "sam3"}
    assert all(entry["id"] and entry["path"] and not Path(entry["path"]).is_absolute() for entry in pack.models)


def test_pack_is_reproducible_from_the_generator(tmp_path: Path) -> None:
    """The committed bytes are exactly what build_fuzz_pack writes, so the pack can be rebuilt on purpose."""
    rebuilt = build_fuzz_pack(tmp_path)
    assert rebuilt == {rel: sha256_file(FUZZ_PACK_DIR / rel) for rel in pack_files(FUZZ_PACK_DIR)}
    assert (tmp_path / "manifest.json").read_bytes() == (FUZZ_PACK_DIR / "manifest.json").read_bytes()


def test_altered_byte_is_refused_naming_the_file(pack_copy: Path) -> None:
    target = sorted((pack_copy / "images").iterdir())[1]
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(FuzzPackError, match=f"images/{target.name}: sha256 mismatch") as info:
        load_fuzz_pack(pack_copy)
    assert info.value.path == f"images/{target.name}"


def test_missing_file_is_refused(pack_copy: Path) -> None:
    (pack_copy / "glossary.json").unlink()
    with pytest.raises(FuzzPackError, match="glossary.json: missing"):
        load_fuzz_pack(pack_copy)


def test_unlisted_file_is_refused(pack_copy: Path) -> None:
    (pack_copy / "images" / "extra.png").write_bytes(b"not in the manifest")
    with pytest.raises(FuzzPackError, match="images/extra.png: not listed"):
        load_fuzz_pack(pack_copy)


def test_harness_refuses_to_run_on_a_mismatch(pack_copy: Path) -> None:
    (pack_copy / "labelmap.txt").write_text("circle\nsquare\nhexagon\n")
    with pytest.raises(FuzzPackError, match="labelmap.txt"):
        run_regress(tiers=(0,), addresses={}, fuzz_pack_dir=pack_copy)
    result = CliRunner().invoke(app, ["regress", "--tier", "0", "--fuzz-pack", str(pack_copy)])
    assert result.exit_code == 2
    assert "labelmap.txt" in result.output


def test_pack_models_are_what_models_build_writes() -> None:
    """The pack names models by the ids the builders use, so steps can look them up in the registry."""
    from svc_classifier import tiny as classifier_tiny
    from svc_sam3 import tiny as sam3_tiny
    from tator_fixtures.train_yolo import YOLO_ENTRY

    models = {entry["family"]: entry for entry in load_fuzz_pack(FUZZ_PACK_DIR).models}
    assert models["yolo"] == YOLO_ENTRY
    assert models["head"]["id"] == classifier_tiny.HEAD_ID
    assert models["head"]["options"]["backbone"] == classifier_tiny.CLIP_ID
    assert models["sam3"]["id"] == sam3_tiny.MODEL_ID
