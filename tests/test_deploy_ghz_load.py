"""Load-testing kit: the ghz configs name real calls with valid request data,
the protoset they point at is self-contained, and benchmarks/load.py drives
a real server counting every grpc-status (what h2load cannot do)."""

from __future__ import annotations

import importlib.util
import io
import json
import sys
from pathlib import Path
from typing import Any

import protovalidate
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
GHZ = sorted((ROOT / "deploy" / "ghz").glob("*.json"))
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
    """Look the call up the way the brief asks: the generated module's DESCRIPTOR (the module is named
    after the proto file, which is not always the package: ModelManagementService is in common/models)."""
    method, _ = load.resolve_call(call)
    service_full, name = call.rsplit(".", 1)
    module = importlib.import_module("tator_core.gen." + method.containing_service.file.name[:-len(".proto")]
                                     .replace("/", ".") + "_pb2")
    return module.DESCRIPTOR.services_by_name[service_full.rsplit(".", 1)[1]].methods_by_name[name]


def test_every_rpc_has_a_config_or_a_reason() -> None:
    """Every RPC in protos/ is load-tested by a config or named in NOT_LOAD_TESTED with why, never both."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import rpc_inventory  # a script, importable once scripts/ is on the path

    load_table = load.load_table
    rpcs = {f"{r.package}.{r.service}.{r.name}" for r in rpc_inventory.read_rpcs()}
    configured = {json.loads(p.read_text())["call"] for p in GHZ}
    assert configured <= rpcs, configured - rpcs
    assert not configured & set(load_table.NOT_LOAD_TESTED), configured & set(load_table.NOT_LOAD_TESTED)
    assert rpcs - configured == set(load_table.NOT_LOAD_TESTED), rpcs - configured ^ set(load_table.NOT_LOAD_TESTED)
    assert all(len(why) > 20 for why in load_table.NOT_LOAD_TESTED.values())
    # the shared model management is load-tested on every model service, each at its own port
    hosts = {json.loads(p.read_text())["host"] for p in GHZ
             if json.loads(p.read_text())["call"] == "tator.common.v1.ModelManagementService.ListModels"}
    assert hosts == {f"127.0.0.1:{port}" for port in (50051, 50052, 50053, 50054)}


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
    package = cfg["call"].split(".")[1]
    if package == "common":  # served by every model service: the config names which one
        package = cfg["name"].split()[1]
        assert package in ("detector", "sam3", "qwen", "classifier"), cfg["name"]
    assert int(cfg["host"].rsplit(":", 1)[1]) == stack_ports[package]


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


async def test_the_orchestrator_configs_answer_as_their_notes_say(tmp_path: Path) -> None:
    """Each config of an orchestrator call that needs no model service, sent as written (writes first, so
    the reads of ghz-load find it) to a real orchestrator over a synthetic dataset: OK, except the two whose
    notes say to replace a job id, which answer NOT_FOUND until one is filled in."""
    from stack_fixture import start_orchestrator_only

    from tator_fixtures.synth import generate

    generate(tmp_path / "data" / "synth", seed=0, images=2)
    running, _ = await start_orchestrator_only(tmp_path)
    placeholders = {"get_job", "get_calibration_report"}
    needs_models = {"prepass", "replay", "list_models"}
    configs = [p for p in GHZ if ".OrchestratorService." in json.loads(p.read_text())["call"]
               and p.stem not in needs_models]
    configs.sort(key=lambda p: not p.stem.startswith("put_"))
    try:
        for path in configs:
            cfg = json.loads(path.read_text())
            method, _ = load.resolve_call(cfg["call"])
            out = await load.run_load(running.address, cfg["call"], load.build_request(method, cfg["data"], None),
                                      image=None, concurrency=2, total=4)
            want = "NOT_FOUND" if path.stem in placeholders else "OK"
            assert out["statuses"] == {want: 4}, (path.name, out["statuses"], out.get("reasons"))
    finally:
        await running.stop(0)
