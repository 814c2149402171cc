"""The stack's browser edge: Envoy (grpc-web -> the orchestrator) and the static server of the built UI.

The Envoy config is the shipped deploy/envoy/envoy.yaml with its ports moved to the stack
config's `web:` section and CORS narrowed to the UI's own origin, written under
$TATOR_HOME/run. The UI learns Envoy's URL from /config.json on its static server, so one build
works on any ports.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
ENVOY_TEMPLATE = REPO / "deploy" / "envoy" / "envoy.yaml"
UI_DIST = REPO / "web" / "dist"
EDGE = ("envoy", "web")


@dataclass
class EdgeConf:
    host: str = "127.0.0.1"
    envoy_port: int = 8080
    admin_port: int = 9901
    ui_port: int = 8081
    enabled: bool = True

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.envoy_port}"

    @property
    def ui_url(self) -> str:
        return f"http://{self.host}:{self.ui_port}/"

    def origins(self) -> list[str]:
        hosts = {self.host, "localhost", "127.0.0.1"} if self.host in ("127.0.0.1", "localhost") else {self.host}
        return sorted(f"http://{h}:{self.ui_port}" for h in hosts)


def load_edge(doc: dict) -> EdgeConf:
    """The config's `web:` section. Ports it leaves out keep the orchestrator's offset from its
    default port (50050), so a stack config that moved its services moves its edge too."""
    raw = doc.get("web") or {}
    try:
        shift = int(str(doc["services"]["orchestrator"]["address"]).rsplit(":", 1)[1]) - 50050
    except (KeyError, TypeError, ValueError, IndexError):
        shift = 0
    return EdgeConf(host=str(raw.get("host", "127.0.0.1")), envoy_port=int(raw.get("envoy_port", 8080 + shift)),
                    admin_port=int(raw.get("admin_port", 9901 + shift)),
                    ui_port=int(raw.get("ui_port", 8081 + shift)), enabled=bool(raw.get("enabled", True)))


def envoy_binary() -> Path | None:
    local = Path(sys.executable).parent / "envoy"
    if local.exists():
        return local
    found = shutil.which("envoy")
    return Path(found) if found else None


def upstream_tls(ca_file: str, name: str, cert_file: str | None = None, key_file: str | None = None) -> dict:
    """Envoy's transport socket for TLS to the orchestrator: trust only `ca_file`, accept only a
    certificate naming `name` (a host name or IP address; any other certificate of the same CA, say a
    model service's, is refused), speak h2 (gRPC), and present a client certificate when given (mTLS)."""
    try:
        ipaddress.ip_address(name)
        san_type = "IP_ADDRESS"
    except ValueError:
        san_type = "DNS"
    context: dict = {"alpn_protocols": ["h2"],
                     "validation_context": {"trusted_ca": {"filename": ca_file},
                                            "match_typed_subject_alt_names": [
                                                {"san_type": san_type, "matcher": {"exact": name}}]}}
    if cert_file and key_file:
        context["tls_certificates"] = [{"certificate_chain": {"filename": cert_file},
                                        "private_key": {"filename": key_file}}]
    tls: dict = {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                 "common_tls_context": context}
    if san_type == "DNS":
        tls["sni"] = name
    return {"name": "envoy.transport_sockets.tls", "typed_config": tls}


def render_envoy_config(edge: EdgeConf, orchestrator: str, *, token: str | None = None,
                        tls_env: dict[str, str] | None = None) -> dict:
    """The shipped config on this stack's ports, with CORS allowing only the UI's origin.

    With `token`, Envoy sends it to the orchestrator on every call: the local UI then acts with the
    stack's admin role, as it did before tokens existed. The edge binds the stack's host only and
    CORS admits only the UI's origin; a deployment that exposes the edge authenticates users there."""
    cfg = yaml.safe_load(ENVOY_TEMPLATE.read_text())
    cfg["admin"]["address"]["socket_address"].update(address=edge.host, port_value=edge.admin_port)
    listener = cfg["static_resources"]["listeners"][0]
    listener["address"]["socket_address"].update(address=edge.host, port_value=edge.envoy_port)
    host, port = orchestrator.rsplit(":", 1)
    cluster = next(c for c in cfg["static_resources"]["clusters"] if c["name"] == "orchestrator")
    endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    endpoint["address"]["socket_address"].update(address=host, port_value=int(port))
    if tls_env and tls_env.get("TATOR_TLS_CA_FILE"):  # the stack serves TLS: so does Envoy's upstream
        cluster["transport_socket"] = upstream_tls(tls_env["TATOR_TLS_CA_FILE"], host,
                                                   tls_env.get("TATOR_TLS_CERT_FILE"), tls_env.get("TATOR_TLS_KEY_FILE"))
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    for vhost in hcm["route_config"]["virtual_hosts"]:
        cors = vhost.get("typed_per_filter_config", {}).get("envoy.filters.http.cors")
        if cors is not None:
            cors["allow_origin_string_match"] = [{"exact": o} for o in edge.origins()]
        if token:
            vhost["request_headers_to_add"] = [{"header": {"key": "authorization", "value": f"Bearer {token}"},
                                                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}]
    return cfg


K8S_ENVOY = REPO / "k8s" / "base" / "envoy-config" / "envoy.yaml"
K8S_TLS_ENVOY = REPO / "k8s" / "components" / "tls" / "envoy.yaml"
K8S_TLS_DIR = "/etc/tator/tls"


def k8s_tls_envoy_config() -> dict:
    """The cluster's Envoy config with mTLS to the orchestrator (the `tator-tls` Secret's files);
    k8s/components/tls/envoy.yaml holds it, and a test keeps the two equal."""
    cfg = yaml.safe_load(K8S_ENVOY.read_text())
    cluster = next(c for c in cfg["static_resources"]["clusters"] if c["name"] == "orchestrator")
    cluster["transport_socket"] = upstream_tls(f"{K8S_TLS_DIR}/ca.crt", "orchestrator-headless",
                                               f"{K8S_TLS_DIR}/client.crt", f"{K8S_TLS_DIR}/client.key")
    return cfg


def write_k8s_tls_envoy() -> None:
    header = ("# Generated from k8s/base/envoy-config/envoy.yaml by tator_cli.edge.write_k8s_tls_envoy():\n"
              "# the same config with mTLS to the orchestrator. Edit the base, then regenerate.\n")
    K8S_TLS_ENVOY.write_text(header + yaml.safe_dump(k8s_tls_envoy_config(), sort_keys=False))


def edge_commands(edge: EdgeConf, orchestrator: str, run_dir: Path, *, token: str | None = None,
                  tls_env: dict[str, str] | None = None) -> dict[str, list[str]]:
    """Command lines of the edge processes that can run here (Envoy needs its binary)."""
    out: dict[str, list[str]] = {}
    envoy = envoy_binary()
    if envoy is not None:
        path = run_dir / "envoy.yaml"
        path.touch(mode=0o600)  # may hold the stack's token
        path.chmod(0o600)
        path.write_text(yaml.safe_dump(render_envoy_config(edge, orchestrator, token=token,
                                                                   tls_env=tls_env), sort_keys=False))
        # No hot restart: several stacks (and tests) may run their own Envoy on one machine.
        out["envoy"] = [str(envoy), "-c", str(path), "--disable-hot-restart", "--log-level", "warn"]
    out["web"] = [sys.executable, "-m", "tator_cli.webserver", "--root", str(UI_DIST), "--host", edge.host,
                  "--port", str(edge.ui_port), "--api", edge.api_url]
    return out


def spawn_edge(name: str, cmd: list[str], logs: Path) -> subprocess.Popen:
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / f"{name}.log", "ab") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True,
                                env=dict(os.environ, PYTHONUNBUFFERED="1"))


def edge_health(name: str, edge: EdgeConf) -> str:
    """SERVING when Envoy's admin says ready / the static server answers, else UNREACHABLE."""
    url = f"http://{edge.host}:{edge.admin_port}/ready" if name == "envoy" else f"{edge.ui_url}config.json"
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return "SERVING" if resp.status == 200 else "NOT_SERVING"
    except OSError:
        return "UNREACHABLE"


async def wait_edge(edge: EdgeConf, names: tuple[str, ...] = EDGE, timeout_s: float = 20.0) -> None:
    """Until every named edge process answers; TimeoutError names the ones that do not."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        missing = [n for n in names if await asyncio.to_thread(edge_health, n, edge) != "SERVING"]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"not serving after {timeout_s:.0f}s: {', '.join(missing)}")
        await asyncio.sleep(0.1)


def edge_address(name: str, edge: EdgeConf) -> str:
    return edge.api_url if name == "envoy" else edge.ui_url
