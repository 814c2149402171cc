"""The web UI's TypeScript stubs come from protos/ through protoc-gen-es, and the freshness check sees drift."""

from __future__ import annotations

import importlib.util
import pathlib
import shutil

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("protos_script", ROOT / "scripts" / "protos.py")
protos = importlib.util.module_from_spec(spec)
spec.loader.exec_module(protos)

pytestmark = pytest.mark.skipif(not protos.PROTOC_GEN_ES.exists(), reason="npm install has not run")


def test_ts_stubs_cover_every_proto_and_are_fresh(tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    fresh = tmp_path / "gen"
    protos.generate_ts(fresh, work)
    names = {str(p.relative_to(fresh)) for p in fresh.rglob("*_pb.ts")}
    expected = {p.replace(".proto", "_pb.ts") for p in protos._proto_files(protos.PROTO_DIR)}
    assert expected | {"buf/validate/validate_pb.ts"} == names
    assert protos._dirs_equal(fresh, protos.TS_GEN_DIR) == []
    text = (fresh / "tator/orchestrator/v1/orchestrator_pb.ts").read_text()
    assert "export const OrchestratorService" in text


def test_stale_ts_stub_is_reported(tmp_path):
    copy = tmp_path / "gen"
    shutil.copytree(protos.TS_GEN_DIR, copy)
    target = copy / "tator/qwen/v1/qwen_pb.ts"
    target.write_text(target.read_text() + "// edited by hand\n")
    (copy / "tator/extra_pb.ts").write_text("")
    diffs = protos._dirs_equal(copy, protos.TS_GEN_DIR)
    assert "tator/qwen/v1/qwen_pb.ts" in diffs and "tator/extra_pb.ts" in diffs
