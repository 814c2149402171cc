"""TLS material made by `tator up` and used by every client: the CLI, the orchestrator's clients of the
model services, Envoy's upstream. One live stack (orchestrator + classifier + Envoy, real processes)
with TATOR_TLS=mtls; a plaintext client and a TLS client without the stack's client certificate are
refused, the stack's own clients get through."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
import yaml
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tator_cli import edge, tls
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2
from tator_core.gen.tator.orchestrator.v1.orchestrator_pb2_grpc import OrchestratorServiceStub

pytestmark = pytest.mark.timeout(300)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sans(path: Path) -> set[str]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(v) for v in ext.get_values_for_type(x509.DNSName)} | \
        {str(v) for v in ext.get_values_for_type(x509.IPAddress)}


def test_material_is_made_once_and_remade_when_it_no_longer_fits(tmp_path, monkeypatch):
    monkeypatch.setenv("TATOR_HOME", str(tmp_path))
    pairs = tls.stack_material({"detector": "127.0.0.1", "orchestrator": "10.1.2.3"}, "mtls")
    d = tls.tls_dir()
    assert sans(pairs["detector"].cert) == {"127.0.0.1", "detector", "localhost", "::1"}
    assert "10.1.2.3" in sans(pairs["orchestrator"].cert) and "detector" not in sans(pairs["orchestrator"].cert)
    for key in (d / "ca.key", pairs["detector"].key, pairs[tls.CLIENT].key):
        assert key.stat().st_mode & 0o077 == 0, key
    client = x509.load_pem_x509_certificate(pairs[tls.CLIENT].cert.read_bytes())
    usage = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
    assert tls.client_env() == {"TATOR_TLS_CA_FILE": str(d / "ca.crt"),
                                "TATOR_TLS_CERT_FILE": str(pairs[tls.CLIENT].cert),
                                "TATOR_TLS_KEY_FILE": str(pairs[tls.CLIENT].key)}
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    tls.stack_material({"detector": "127.0.0.1", "orchestrator": "10.1.2.3"}, "mtls")
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before      # a second start reuses it all
    tls.stack_material({"detector": "10.9.9.9", "orchestrator": "10.1.2.3"}, "on")   # address moved
    assert "10.9.9.9" in sans(pairs["detector"].cert)
    assert pairs["orchestrator"].cert.read_bytes() == before["orchestrator.crt"]
    assert "TATOR_TLS_CERT_FILE" not in tls.client_env()                # plain TLS: no client certificate
    (d / "ca.key").unlink()                                              # a new CA: every leaf is remade
    tls.stack_material({"detector": "10.9.9.9", "orchestrator": "10.1.2.3"}, "on")
    assert pairs["orchestrator"].cert.read_bytes() != before["orchestrator.crt"]
    ca = x509.load_pem_x509_certificate((d / "ca.crt").read_bytes())
    x509.load_pem_x509_certificate(pairs["orchestrator"].cert.read_bytes()).verify_directly_issued_by(ca)


def test_stack_mode_refuses_a_typo(monkeypatch):
    monkeypatch.setenv("TATOR_TLS", "mtsl")
    with pytest.raises(ValueError, match="TATOR_TLS"):
        tls.stack_mode()


def test_envoy_upstream_tls_renders_and_validates(tmp_path):
    ca, cert, key = (str(tmp_path / n) for n in ("ca.crt", "client.crt", "client.key"))
    cfg = edge.render_envoy_config(edge.EdgeConf(), "127.0.0.1:50050", tls_env={
        "TATOR_TLS_CA_FILE": ca, "TATOR_TLS_CERT_FILE": cert, "TATOR_TLS_KEY_FILE": key})
    (cluster,) = [c for c in cfg["static_resources"]["clusters"] if c["name"] == "orchestrator"]
    ctx = cluster["transport_socket"]["typed_config"]["common_tls_context"]
    assert ctx["validation_context"]["trusted_ca"] == {"filename": ca}
    assert ctx["validation_context"]["match_typed_subject_alt_names"] == [
        {"san_type": "IP_ADDRESS", "matcher": {"exact": "127.0.0.1"}}]
    assert ctx["tls_certificates"][0]["certificate_chain"] == {"filename": cert} and ctx["alpn_protocols"] == ["h2"]
    plain = edge.render_envoy_config(edge.EdgeConf(), "127.0.0.1:50050", tls_env={})
    assert "transport_socket" not in plain["static_resources"]["clusters"][0]
    if edge.envoy_binary() is None:
        pytest.skip("envoy binary not installed")
    tls.ensure_leaf(tmp_path, "client", [], client=True)  # validate mode reads the files it names
    path = tmp_path / "envoy.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = subprocess.run([str(edge.envoy_binary()), "--mode", "validate", "-c", str(path)], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


def tls_env(home: Path) -> dict[str, str]:
    return json.loads((home / "run" / "tls.json").read_text())


def test_tls_k8s_names_every_cluster_service(tmp_path):
    from typer.testing import CliRunner

    from tator_cli.main import app

    res = CliRunner().invoke(app, ["tls", "k8s", "--out", str(tmp_path), "--namespace", "ml"])
    assert res.exit_code == 0, res.output
    names = sans(tmp_path / "tls.crt")
    for svc in ("orchestrator", "detector", "sam3", "qwen", "classifier"):
        assert {svc, f"{svc}-headless", f"{svc}-headless.ml.svc.cluster.local", f"{svc}.ml.svc"} <= names, svc
    assert {"127.0.0.1", "localhost"} <= names and "kubectl -n ml create secret generic tator-tls" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca.crt", "ca.key", "client.crt", "client.key", "tls.crt",
                                                           "tls.key"]


def _health(address: str, creds: grpc.ChannelCredentials | None) -> str:
    channel = grpc.secure_channel(address, creds) if creds else grpc.insecure_channel(address)
    with channel:
        try:
            resp = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        except grpc.RpcError as exc:
            return exc.code().name
        return health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)


def _grpc_web(port: int, method: str) -> tuple[int, dict, bytes]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", f"/tator.orchestrator.v1.OrchestratorService/{method}", body=b"\x00\x00\x00\x00\x00",
                 headers={"content-type": "application/grpc-web+proto", "x-grpc-web": "1"})
    resp = conn.getresponse()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()


def test_tator_up_with_mtls_serves_its_clients_and_refuses_plaintext(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    (home / "models").mkdir()
    # One classifier model whose weights are missing: the service starts (the model is MISSING) and
    # the orchestrator's ListModels has to reach it over mTLS to list it.
    (home / "models" / "registry.yaml").write_text(yaml.safe_dump(
        {"models": [{"id": "clip-gone", "family": "clip", "path": "clip-gone", "default": True}]}))
    ports = {n: free_port() for n in ("envoy", "admin", "ui")}
    cfg = tmp_path / "stack.yaml"
    services = {name: {"address": f"127.0.0.1:{free_port()}", "metrics_port": -1, "module": f"svc_{name}",
                       "gpu": False} for name in ("orchestrator", "detector", "sam3", "qwen", "classifier")}
    cfg.write_text(yaml.safe_dump({"services": services, "web": {"envoy_port": ports["envoy"],
                                   "admin_port": ports["admin"], "ui_port": ports["ui"]}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TATOR_TLS", "TATOR_TOKEN", "TATOR_AUTH"))}
    env.update(TATOR_HOME=str(home), TATOR_STACK_CONFIG=str(cfg), TATOR_TLS="mtls")
    tator = [sys.executable, "-m", "tator_cli.main"]
    up = subprocess.run([*tator, "up", "--detach", "--only", "orchestrator", "--only", "classifier",
                         "--timeout", "180"], env=env, capture_output=True, text=True, timeout=240)
    orch, clf = services["orchestrator"]["address"], services["classifier"]["address"]
    d = home / "secrets" / "tls"
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        ca = (d / "ca.crt").read_bytes()
        client = grpc.ssl_channel_credentials(ca, (d / "client.key").read_bytes(), (d / "client.crt").read_bytes())
        # Refused: plaintext, and TLS without the stack's client certificate (mTLS). Accepted: the client pair.
        assert _health(orch, None) == "UNAVAILABLE" and _health(clf, None) == "UNAVAILABLE"
        assert _health(orch, grpc.ssl_channel_credentials(ca)) == "UNAVAILABLE"
        assert _health(orch, client) == "SERVING" and _health(clf, client) == "SERVING"
        # The exec probe of the k8s TLS component: SERVING with the stack's client env, refused without.
        probe = [sys.executable, "-m", "tator_core.health_probe", orch.rsplit(":", 1)[1]]
        with_tls = subprocess.run(probe, env={**env, **tls_env(home)}, capture_output=True, text=True, timeout=30)
        plain = subprocess.run(probe, env=env, capture_output=True, text=True, timeout=30)
        assert (with_tls.returncode, with_tls.stdout.strip()) == (0, "SERVING"), with_tls.stderr
        assert plain.returncode == 1 and plain.stdout.strip() == "UNAVAILABLE"
        # The regression harness's own channels (tator_core.auth.aio_channel) follow TATOR_TLS_* too.
        from tator_fixtures.regress.runner import health

        for key in ("TATOR_TLS_CA_FILE", "TATOR_TLS_CERT_FILE", "TATOR_TLS_KEY_FILE"):
            monkeypatch.delenv(key, raising=False)
        assert asyncio.run(health(orch)) == "UNREACHABLE"
        for key, value in tls_env(home).items():
            monkeypatch.setenv(key, value)
        assert asyncio.run(health(orch)) == "SERVING"
        # The CLI (a later command, without TATOR_TLS) finds the material `tator up` recorded.
        cli_env = {k: v for k, v in env.items() if k != "TATOR_TLS"}
        status = subprocess.run([*tator, "status", "--json"], env=cli_env, capture_output=True, text=True,
                                timeout=60)
        rows = {r["service"]: r for r in json.loads(status.stdout)}
        assert rows["orchestrator"]["health"] == "SERVING" and rows["classifier"]["health"] == "SERVING"
        assert [m["id"] for m in rows["classifier"]["models"]] == ["clip-gone"]
        # The orchestrator's own client of the classifier speaks mTLS: its ListModels reaches it.
        token = json.loads((home / "secrets" / "tokens.json").read_text())["read"]
        with grpc.secure_channel(orch, client) as channel:
            resp = OrchestratorServiceStub(channel).ListModels(
                orchestrator_pb2.ListModelsRequest(), timeout=30, metadata=(("authorization", f"Bearer {token}"),))
        (row,) = [r for r in resp.services if r.service == "classifier"]
        assert [m.id for m in row.models] == ["clip-gone"], row
        # Envoy's upstream is mTLS too: grpc-web reaches the orchestrator.
        code, headers, body = _grpc_web(ports["envoy"], "ListDatasets")
        assert code == 200 and headers.get("grpc-status", "0") == "0" and body[:1] == b"\x00", headers
    finally:
        down = subprocess.run([*tator, "down"], env=env, capture_output=True, text=True, timeout=120)
    assert "stopped" in down.stderr + down.stdout
    assert not (home / "run" / "tls.json").exists()
