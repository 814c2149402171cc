"""Load-testing kit: the ghz configs name real calls with valid request data,
the protoset they point at is self-contained, and benchmarks/load.py drives
a real server counting every grpc-status (what h2load cannot do)."""

from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path
from typing import Any

import protovalidate
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
GHZ = sorted((ROOT / "deploy" / "ghz").glob("*.json"))
# Every inference RPC (TrainHead streams: ghz configs here are unary) and the web UI's reads.
REQUIRED_CALLS = {
    "tator.detector.v1.DetectorService.Detect",
    "tator.sam3.v1.Sam3Service.SegmentText",
    "tator.sam3.v1.Sam3Service.SegmentExemplars",
    "tator.qwen.v1.QwenService.Caption",
    "tator.qwen.v1.QwenService.ExpandSynonyms",
    "tator.classifier.v1.ClassifierService.Classify",
    "tator.classifier.v1.ClassifierService.Embed",
    "tator.orchestrator.v1.OrchestratorService.Prepass",
    *(f"tator.orchestrator.v1.OrchestratorService.{m}" for m in (
        "ListDatasets", "GetDataset", "ListDatasetImages", "GetImage", "ListModels", "ListJobs", "ListGlossaries",
        "ListRecipes")),
}

pytestmark = pytest.mark.timeout(60)


def _load_module() -> Any:
    spec = importlib.util.spec_from_file_location("tator_bench_load", ROOT / "benchmarks" / "load.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]  # a file spec always has a loader
    return module


load = _load_module()


@pytest.fixture(scope="module")
def png() -> bytes:
    img = Image.new("RGB", (96, 96), "white")
    draw = ImageDraw.Draw(img)
    draw.ellipse((8, 8, 40, 40), fill="red")
    draw.rectangle((50, 50, 90, 90), fill="blue")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def generated_method(call: str) -> Any:
    """Look the call up the way the brief asks: the generated module's DESCRIPTOR."""
    service_full, method = call.rsplit(".", 1)
    package, service = service_full.rsplit(".", 1)
    short = package.split(".")[1]
    module = importlib.import_module(f"tator_core.gen.{package}.{short}_pb2")
    return module.DESCRIPTOR.services_by_name[service].methods_by_name[method]


def test_configs_cover_the_brief() -> None:
    calls = {json.loads(p.read_text())["call"] for p in GHZ}
    assert calls >= REQUIRED_CALLS


@pytest.mark.parametrize("path", GHZ, ids=[p.stem for p in GHZ])
def test_config_names_a_real_call_with_valid_data(path: Path, png: bytes) -> None:
    cfg = json.loads(path.read_text())
    for key, kind in {"call": str, "host": str, "total": int, "concurrency": int, "timeout": str,
                      "insecure": bool, "data": dict, "protoset": str}.items():
        assert isinstance(cfg[key], kind), key
    assert cfg["total"] >= cfg["concurrency"] >= 1  # ghz refuses total < concurrency
    assert cfg["protoset"] == str(load.PROTOSET.relative_to(ROOT))
    method = generated_method(cfg["call"])
    assert not method.server_streaming and not method.client_streaming
    assert isinstance(cfg["_gpu_p95_ms"], int) and cfg["_gpu_p95_ms"] > 0  # the target it states
    text = json.dumps(cfg["data"])
    request = json_format.ParseDict(load.render_data(cfg["data"], png),
                                    message_factory.GetMessageClass(method.input_type)())
    protovalidate.validate(request)  # would be INVALID_ARGUMENT at the server otherwise
    if "image" in method.input_type.fields_by_name:
        assert load.SHA_PLACEHOLDER in text, "data must name its image by sha256"
        assert request.image.sha256 == load.sha256_hex(png)
    else:
        assert load.SHA_PLACEHOLDER not in text
    # The port is the service's port in the local stack.
    stack_ports = {"detector": 50051, "sam3": 50052, "qwen": 50053, "classifier": 50054, "orchestrator": 50050}
    assert int(cfg["host"].rsplit(":", 1)[1]) == stack_ports[cfg["call"].split(".")[1]]


def test_placeholders_need_an_image() -> None:
    cfg = json.loads((ROOT / "deploy" / "ghz" / "detect.json").read_text())
    with pytest.raises(SystemExit, match="--image"):
        load.render_data(cfg["data"], None)


def test_protoset_is_self_contained(tmp_path: Path) -> None:
    """A fresh pool (nothing imported) builds from the set alone and has every call."""
    path = load.write_protoset(tmp_path / "tator.protoset")
    fds = descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())
    names = [f.name for f in fds.file]
    assert "buf/validate/validate.proto" in names and "tator/common/v1/common.proto" in names
    pool = descriptor_pool.DescriptorPool()
    for f in fds.file:  # dependencies first, or Add fails
        pool.Add(f)
    for p in GHZ:
        service, method = json.loads(p.read_text())["call"].rsplit(".", 1)
        assert method in pool.FindServiceByName(service).methods_by_name


def test_emit_ghz_fills_placeholders(tmp_path: Path, png: bytes) -> None:
    out = tmp_path / "detect.ghz.json"
    info = load.emit_ghz(ROOT / "deploy" / "ghz" / "detect.json", png, out, bytes_every_call=True)
    cfg = json.loads(out.read_text())
    assert cfg["data"]["image"]["sha256"] == info["image_sha256"] == load.sha256_hex(png)
    assert load.base64.b64decode(cfg["data"]["image"]["data"]) == png
    assert Path(cfg["protoset"]).is_file()


async def test_load_client_counts_statuses(png: bytes) -> None:
    running = await load._start_stub_detector()
    try:
        cfg = json.loads((ROOT / "deploy" / "ghz" / "detect.json").read_text())
        method, _ = load.resolve_call(cfg["call"])
        ok = await load.run_load(running.address, cfg["call"], load.build_request(method, cfg["data"], png),
                                 image=png, concurrency=4, total=24)
        assert ok["statuses"] == {"OK": 24} and ok["total"] == 24
        assert ok["image_protocol"] and ok["image_bytes_sent"] == len(png)  # bytes once, then sha only
        assert 0 < ok["p50_ms"] <= ok["p95_ms"] <= ok["p99_ms"] and ok["rps"] > 0

        bad = load.build_request(method, cfg["data"], png)
        bad.image.sha256 = "0" * 64  # well-formed sha the server never saw, no bytes
        failed = await load.run_load(running.address, cfg["call"], bad, image=None, concurrency=4, total=12)
        assert failed["statuses"] == {"FAILED_PRECONDITION": 12}
        assert failed["reasons"] == {"FAILED_PRECONDITION:IMAGE_NOT_CACHED": 12}

        # dns:/// targets get the round_robin policy and still work.
        rr = await load.run_load(f"dns:///127.0.0.1:{running.port}", cfg["call"],
                                 load.build_request(method, cfg["data"], png), image=png, concurrency=2,
                                 total=6, bytes_every_call=True)
        assert rr["statuses"] == {"OK": 6} and rr["image_bytes_sent"] == 6 * len(png)
    finally:
        await running.stop(0)


def test_configs_are_generated_from_the_one_table(tmp_path):
    """deploy/ghz is exactly what benchmarks/load_table.py renders: edit the table, then --write-ghz."""
    written = load.write_ghz(tmp_path)
    assert sorted(p.name for p in written) == [p.name for p in GHZ]
    for path in written:
        assert path.read_text() == (ROOT / "deploy" / "ghz" / path.name).read_text(), \
            f"{path.name} is stale: run .venv/bin/python benchmarks/load.py --write-ghz"
