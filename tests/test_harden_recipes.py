"""Recipe archives with the wrong JSON types: every one is INVALID_ARGUMENT / ARCHIVE_INVALID
naming the member, and a glossary object is kept as glossary text, not as a Python repr."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import grpc
import pytest

from svc_orchestrator.recipes import RecipeStore
from tator_core import errors


def archive(recipe: object, manifest: object = None, raw_recipe: bytes | None = None) -> bytes:
    data = raw_recipe if raw_recipe is not None else json.dumps(recipe).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("recipe.json", data)
        if manifest is None:
            manifest = {"assets": {"copied": [{"path": "recipe.json", "size": len(data),
                                               "sha256": hashlib.sha256(data).hexdigest()}]}}
        zf.writestr("manifest.json", json.dumps(manifest))
    return buf.getvalue()


BASE = {"id": "r1", "name": "r1", "config": {"detector_conf": 0.5}}
DEEP = b'{"id": "r", "config": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


@pytest.mark.parametrize("data", [
    archive(BASE, manifest={"assets": []}),
    archive(BASE, manifest={"assets": "x"}),
    archive(BASE, manifest=[1, 2]),
    archive(BASE, manifest={"assets": {"copied": [{"path": ""}]}}),
    archive({**BASE, "created_at": "abc"}),
    archive({**BASE, "created_at": 1e300}),
    archive({**BASE, "updated_at": [1]}),
    archive({**BASE, "schema_version": 2**40}),
    archive({**BASE, "schema_version": "1"}),
    archive({**BASE, "schema_version": -1}),
    archive({**BASE, "config": 5}),
    archive({**BASE, "config": [1]}),
    archive({**BASE, "config": {"detector_conf": "x"}}),
    archive({**BASE, "name": {"a": 1}}),
    archive({**BASE, "description": 7}),
    archive({**BASE, "name": "evil\x1b[2J"}),
    archive({**BASE, "glossary": "circle: disc\u202e"}),
    archive(None, raw_recipe=DEEP),
    archive(None, raw_recipe=b"[" * 100_000),
    archive([1, 2, 3]),
])
def test_wrong_json_types_are_archive_invalid(tmp_path, data):
    with pytest.raises(errors.TatorError) as ei:
        RecipeStore(tmp_path).import_archive(data)
    assert (ei.value.code, ei.value.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "ARCHIVE_INVALID")


def test_glossary_object_is_kept_as_glossary_text(tmp_path):
    store = RecipeStore(tmp_path)
    recipe, _ = store.import_archive(archive({**BASE, "glossary": {"circle": ["disc", "ring"]}}))
    assert recipe.glossary == "circle: disc, ring"
    assert "{" not in recipe.glossary and "'" not in recipe.glossary
    recipe, _ = store.import_archive(archive({**BASE, "id": "r2", "glossary": ["circle: disc"]}))
    assert "[" not in recipe.glossary and "disc" in recipe.glossary


def test_a_member_placed_before_the_archive_start_is_archive_invalid(tmp_path):
    """The end record claims the central directory lies further on than it does, so zipfile places
    every member before byte 0 (a negative seek, ValueError): found by the long fuzz run."""
    data = bytearray(archive(BASE))
    end = data.rindex(b"PK\x05\x06")
    claimed = int.from_bytes(data[end + 16:end + 20], "little") + 100_000
    data[end + 16:end + 20] = claimed.to_bytes(4, "little")
    with pytest.raises(errors.TatorError) as ei:
        RecipeStore(tmp_path).import_archive(bytes(data))
    assert (ei.value.code, ei.value.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "ARCHIVE_INVALID")
    assert ei.value.metadata["member"] == "recipe.json"
