"""Recipes: CRUD, export/import round trip, and hostile archives refused with ARCHIVE_INVALID."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import grpc
import pytest
from recipe_messages import MessageRecipes

from svc_orchestrator.recipes import MAX_ENTRY_BYTES, RecipeStore, read_archive
from tator_core import errors
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb


@pytest.fixture()
def store(tmp_path):
    return MessageRecipes(RecipeStore(tmp_path / "recipes"))


def _recipe(**kw) -> pb.Recipe:
    r = pb.Recipe(name=kw.pop("name", "Windowed lane"), glossary=kw.pop("glossary", '{"circle": ["disc"]}'), **kw)
    r.config.CopyFrom(pb.PrepassConfig(detector_conf=0.3, sam3_text_window_extension=True, enable_caption=False))
    return r


def test_put_get_list_delete(store):
    saved = store.put(_recipe())
    assert saved.id == "Windowed-lane" and saved.schema_version == 1 and saved.create_time.seconds > 0
    assert saved.glossary == "circle: disc"  # normalised like every glossary
    again = store.put(_recipe())  # same name, empty id: a new id, never a silent replace
    assert again.id == "Windowed-lane-2"
    replaced = store.put(_recipe(id=saved.id, description="v2"))
    assert replaced.create_time == saved.create_time and replaced.description == "v2"
    assert replaced.update_time.ToNanoseconds() >= saved.update_time.ToNanoseconds()
    assert [r.id for r in store.list()] == ["Windowed-lane", "Windowed-lane-2"]
    assert store.get(saved.id).config.detector_conf == pytest.approx(0.3)
    store.delete(again.id)
    with pytest.raises(errors.TatorError) as exc:
        store.get(again.id)
    assert exc.value.code == grpc.StatusCode.NOT_FOUND
    for bad_id in ("../x", "..", "a b", "x/y"):
        with pytest.raises(errors.TatorError) as exc:
            store.put(_recipe(id=bad_id))
        assert exc.value.code == grpc.StatusCode.INVALID_ARGUMENT
    bad = _recipe()
    bad.config.detector_full, bad.config.detector_sahi = False, False
    with pytest.raises(errors.TatorError) as exc:
        store.put(bad)
    assert exc.value.metadata["field"] == "recipe.config.detector_full"


def test_export_import_round_trip_renames_on_collision(store, tmp_path):
    saved = store.put(_recipe())
    archive, filename = store.export(saved.id)
    assert filename == "Windowed-lane.recipe.zip"
    names = zipfile.ZipFile(io.BytesIO(archive)).namelist()
    assert set(names) == {"manifest.json", "recipe.json", "glossary.json"}
    other = MessageRecipes(RecipeStore(tmp_path / "other"))
    imported, notice = other.import_archive(archive)
    assert imported.id == saved.id and notice == ""
    assert imported.config == saved.config and imported.glossary == saved.glossary
    again, notice = other.import_archive(archive)
    assert again.id == "Windowed-lane-2" and "imported as" in notice


def _zip(entries: list[tuple[str | zipfile.ZipInfo, bytes]], manifest: bool = True) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        files = {}
        for name, data in entries:
            zf.writestr(name, data)
            files[name.filename if isinstance(name, zipfile.ZipInfo) else name] = data
        if manifest:
            copied = [{"path": n, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()} for n, d in files.items()]
            zf.writestr("manifest.json", json.dumps({"assets": {"copied": copied}}))
    return buf.getvalue()


RECIPE = json.dumps({"id": "r1", "name": "r1", "config": {"detector_conf": 0.5}}).encode()


def _symlink_entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (0o120777 << 16)
    return info


def _duplicate_archive() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("recipe.json", RECIPE)
        zf.writestr("Recipe.JSON", RECIPE)
    return buf.getvalue()


def _bomb() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("recipe.json", RECIPE)
        zf.writestr("big.bin", b"\0" * (MAX_ENTRY_BYTES + 1))
    return buf.getvalue()


def _lying_header() -> bytes:
    """A member whose header claims 10 bytes but inflates to more than the cap."""
    data = bytearray(_bomb())
    # patch the central-directory and local-header uncompressed sizes of big.bin to 10
    for sig in (b"PK\x01\x02", b"PK\x03\x04"):
        start = 0
        while (pos := data.find(sig, start)) >= 0:
            off = 24 if sig == b"PK\x01\x02" else 22
            name_len_off = 28 if sig == b"PK\x01\x02" else 26
            name_len = int.from_bytes(data[pos + name_len_off:pos + name_len_off + 2], "little")
            name_start = pos + (46 if sig == b"PK\x01\x02" else 30)
            if bytes(data[name_start:name_start + name_len]) == b"big.bin":
                data[pos + off:pos + off + 4] = (10).to_bytes(4, "little")
            start = pos + 4
    return bytes(data)


@pytest.mark.parametrize("archive, needle", [
    (b"not a zip", "not a zip"),
    (_zip([("/etc/passwd", b"x"), ("recipe.json", RECIPE)]), "absolute"),
    (_zip([("\\windows\\x", b"x"), ("recipe.json", RECIPE)]), "absolute"),
    (_zip([("C:/x.json", b"x"), ("recipe.json", RECIPE)]), "drive letter"),
    (_zip([("../evil.json", b"x"), ("recipe.json", RECIPE)]), ".."),
    (_zip([("a/../../evil.json", b"x"), ("recipe.json", RECIPE)]), ".."),
    (_zip([("a\\..\\evil.json", b"x"), ("recipe.json", RECIPE)]), ".."),
    (_zip([(_symlink_entry("link"), b"/etc/passwd"), ("recipe.json", RECIPE)]), "symlink"),
    (_duplicate_archive(), "duplicate"),
    (_bomb(), "cap"),
    (_lying_header(), "big.bin"),  # zipfile stops at the claimed size; the CRC then fails
    (_zip([("recipe.json", RECIPE)], manifest=False), "manifest.json: required member is missing"),
    (_zip([("x.json", b"{}")]), "recipe.json: required member is missing"),
    (_zip([("recipe.json", json.dumps({"id": "r", "config": {"cross_iou": 0.5}}).encode())]), "does not parse"),
    (_zip([("recipe.json", json.dumps({"id": "r", "config": {"detector_conf": 7}}).encode())]), "invalid"),
    (_zip([("recipe.json", json.dumps({"id": "../r", "config": {}}).encode())]), "recipe id"),
])
def test_hostile_archives_are_refused(store, archive, needle):
    with pytest.raises(errors.TatorError) as exc:
        store.import_archive(archive)
    err = exc.value
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and err.reason == "ARCHIVE_INVALID", err
    assert needle in err.message, err.message
    assert store.list() == []  # nothing was written


def test_manifest_must_match_every_member(store):
    good = _zip([("recipe.json", RECIPE)])
    assert store.import_archive(good)[0].id == "r1"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("recipe.json", RECIPE)
        zf.writestr("extra.txt", b"unlisted")
        zf.writestr("manifest.json", json.dumps({"assets": {"copied": [
            {"path": "recipe.json", "size": len(RECIPE), "sha256": hashlib.sha256(RECIPE).hexdigest()}]}}))
    with pytest.raises(errors.TatorError, match="not listed"):
        store.import_archive(buf.getvalue())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("recipe.json", RECIPE)
        zf.writestr("manifest.json", json.dumps({"assets": {"copied": [
            {"path": "recipe.json", "size": len(RECIPE), "sha256": "0" * 64}]}}))
    with pytest.raises(errors.TatorError, match="sha256"):
        store.import_archive(buf.getvalue())


def test_too_many_members():
    with pytest.raises(errors.TatorError, match="cap"):
        read_archive(_zip([(f"f{i}", b"x") for i in range(70)], manifest=False))
