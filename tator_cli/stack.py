"""The local stack: five services as child processes on loopback.

`start()` launches every service whose package is installed, one GPU per
model service when GPUs exist (else cpu), and records the pids in
`$TATOR_HOME/run/stack.json`; beside them Envoy (grpc-web edge) and the UI's static
server (tator_cli/edge.py); `wait_serving()` polls grpc.health.v1 until all
are SERVING; `supervise()` restarts a crashed child (bounded) until a signal;
`stop()` sends SIGTERM (the services drain), then SIGKILL after a grace period.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tator_cli import edge as edge_mod
from tator_cli import tls
from tator_core.auth import default_tokens_file, generate_tokens, load_tokens
from tator_core.settings import tator_home

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO / "config" / "stack.yaml"
ORDER = ("detector", "sam3", "qwen", "classifier", "orchestrator")


@dataclass
class ServiceConf:
    name: str
    address: str
    metrics_port: int
    module: str
    gpu: bool
    device: str = "cpu"
    pid: int | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return self.address.rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])

    @property
    def installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None


def _config_doc(path: Path | None) -> dict:
    # TATOR_STACK_CONFIG lets several stacks (e.g. two checkouts) run side by side on other ports.
    path = path or Path(os.environ.get("TATOR_STACK_CONFIG") or DEFAULT_CONFIG)
    return yaml.safe_load(path.read_text())


def load_edge(path: Path | None = None) -> edge_mod.EdgeConf:
    """Ports of Envoy and the UI server (the config's `web:` section; defaults 8080/9901/8081)."""
    return edge_mod.load_edge(_config_doc(path))


def load_config(path: Path | None = None) -> dict[str, ServiceConf]:
    doc = _config_doc(path)
    out = {}
    for name in ORDER:
        raw = doc["services"][name]
        out[name] = ServiceConf(name, raw["address"], int(raw.get("metrics_port", -1)), raw["module"],
                                bool(raw.get("gpu", False)))
    return out


def gpu_count() -> int:
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for ln in out.stdout.splitlines() if ln.startswith("GPU "))


def assign_devices(services: dict[str, ServiceConf], gpus: int) -> None:
    """One GPU per model service, round-robin when there are fewer GPUs."""
    k = 0
    for svc in services.values():
        if svc.gpu and gpus > 0:
            svc.device = f"cuda:{k % gpus}"
            k += 1
        else:
            svc.device = "cpu"


def visible_gpu_ids(count: int, visible: str | None) -> list[str]:
    """The physical GPUs the stack may hand out: CUDA_VISIBLE_DEVICES's entries when it is set (indexes or
    UUIDs, read up to the first invalid one as CUDA does; empty = none), else 0..count-1."""
    if visible is None:
        return [str(i) for i in range(count)]
    ids = []
    for raw in visible.split(","):
        raw = raw.strip()
        if not raw or raw.startswith("-"):
            break
        ids.append(raw)
    return ids


def visible_device_env(services: dict[str, ServiceConf], gpu_ids: list[str]) -> dict[str, tuple[str, dict]]:
    """Per service: (device flag, extra environment) for one GPU per model service by masking.

    Each model service sees only its own GPU (CUDA_VISIBLE_DEVICES = one physical id), so it addresses
    it as cuda:0 and can neither allocate on nor initialise a context on another service's GPU; with
    fewer GPUs than services they are shared round-robin, as in `assign_devices`. CPU services (and
    every service when there is no GPU) get an empty CUDA_VISIBLE_DEVICES and the cpu device."""
    out: dict[str, tuple[str, dict]] = {}
    k = 0
    for name, svc in services.items():
        if svc.gpu and gpu_ids:
            out[name] = ("cuda:0", {"CUDA_VISIBLE_DEVICES": gpu_ids[k % len(gpu_ids)]})
            k += 1
        else:
            out[name] = ("cpu", {"CUDA_VISIBLE_DEVICES": ""})
    return out


def run_dir() -> Path:
    d = tator_home() / "run"
    d.mkdir(parents=True, exist_ok=True)
    return d


def state_file() -> Path:
    return run_dir() / "stack.json"


def registry_path() -> Path:
    return tator_home() / "models" / "registry.yaml"


def stack_tokens_file() -> Path | None:
    """The local stack's bearer tokens, generated on first start ($TATOR_HOME/secrets/tokens.json,
    mode 0600); None when TATOR_AUTH=off asks for an open stack."""
    if os.environ.get("TATOR_AUTH", "").lower() in ("off", "0", "false", "no"):
        return None
    path = Path(os.environ.get("TATOR_AUTH_TOKENS_FILE") or default_tokens_file())
    generate_tokens(path)
    return path


def stack_tls(services: dict[str, ServiceConf]) -> dict[str, tls.Pair] | None:
    """The stack's TLS material when TATOR_TLS asks for it (made on first start, see tator_cli/tls.py):
    a server pair per service, plus the client pair under `tls.CLIENT` for mTLS. Off: None, and the
    record that told clients to use TLS is gone, here and for later CLI calls."""
    if tls.stack_mode() == "off":
        for key, value in tls.client_env().items():
            if os.environ.get(key) == value:
                os.environ.pop(key)
        tls.client_file().unlink(missing_ok=True)
        return None
    pairs = tls.stack_material({n: s.host for n, s in services.items()}, tls.stack_mode())
    os.environ.update(tls.client_env())  # this process probes health through the same TLS
    return pairs


def command_for(svc: ServiceConf, services: dict[str, ServiceConf]) -> tuple[list[str], dict[str, str]]:
    cmd = [sys.executable, "-m", svc.module, "--host", svc.host, "--port", str(svc.port),
           "--metrics-port", str(svc.metrics_port), "--device", svc.device]
    env = dict(os.environ, TATOR_HOME=str(tator_home()), PYTHONUNBUFFERED="1")
    tokens = stack_tokens_file()
    if tokens is not None:  # every service checks tokens; the orchestrator also sends them
        env[f"TATOR_{svc.name.upper()}_AUTH_TOKENS_FILE"] = str(tokens)
        env["TATOR_AUTH_TOKENS_FILE"] = str(tokens)
    pairs = stack_tls(services)
    if pairs is not None:  # every service serves TLS; the orchestrator's clients trust the stack's CA
        prefix = f"TATOR_{svc.name.upper()}_TLS_"
        env.update({f"{prefix}CERT_FILE": str(pairs[svc.name].cert), f"{prefix}KEY_FILE": str(pairs[svc.name].key)})
        if tls.CLIENT in pairs:
            env[f"{prefix}CLIENT_CA_FILE"] = str(tls.tls_dir() / "ca.crt")
        env.update(tls.client_env())
    if svc.name == "orchestrator":
        for other in ("detector", "sam3", "qwen", "classifier"):
            env[f"TATOR_ORCHESTRATOR_{other.upper()}_ADDRESS"] = services[other].address
    else:
        cmd += ["--registry", str(registry_path())]
    env.update(svc.extra_env)
    return cmd, env


def spawn(svc: ServiceConf, services: dict[str, ServiceConf]) -> subprocess.Popen:
    cmd, env = command_for(svc, services)
    logs = tator_home() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / f"{svc.name}.log", "ab") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                start_new_session=True)
    svc.pid = proc.pid
    return proc


def start(config: Path | None = None, only: list[str] | None = None, *, web: bool = True
          ) -> tuple[dict[str, ServiceConf], dict[str, subprocess.Popen]]:
    """Start the services and, with the orchestrator and `web`, Envoy and the UI server."""
    services = load_config(config)
    edge = load_edge(config)
    assign_devices(services, gpu_count())
    procs = {}
    for name in ORDER:
        svc = services[name]
        if (only and name not in only) or not svc.installed:
            continue
        procs[name] = spawn(svc, services)
    if web and edge.enabled and "orchestrator" in procs:
        for name, cmd in _edge_commands(services, edge).items():
            procs[name] = edge_mod.spawn_edge(name, cmd, tator_home() / "logs")
    write_state(services, procs, edge)
    return services, procs


def _edge_commands(services: dict[str, ServiceConf], edge: edge_mod.EdgeConf) -> dict[str, list[str]]:
    """Envoy sends the stack's admin token and speaks the stack's TLS to the orchestrator."""
    tokens = stack_tokens_file()
    token = load_tokens(tokens).first("admin") if tokens is not None else None
    return edge_mod.edge_commands(edge, services["orchestrator"].address, run_dir(), token=token,
                                  tls_env=tls.client_env())


def write_state(services: dict[str, ServiceConf], procs: dict[str, subprocess.Popen],
                edge: edge_mod.EdgeConf | None = None) -> None:
    state = {}
    for n, p in procs.items():
        if n in services:
            state[n] = {"pid": p.pid, "address": services[n].address, "device": services[n].device}
        elif edge is not None:
            state[n] = {"pid": p.pid, "address": edge_mod.edge_address(n, edge), "device": ""}
    state_file().write_text(json.dumps(state))


async def health_of(address: str, service: str = "") -> str:
    from tator_core.client import ServiceClient

    client = ServiceClient(address, lambda ch: None)
    try:
        return await client.health(service)
    finally:
        await client.close()


async def wait_serving(addresses: dict[str, str], timeout_s: float = 600.0,
                       procs: dict[str, subprocess.Popen] | None = None,
                       on_poll=None, edge: edge_mod.EdgeConf | None = None) -> dict[str, str]:
    """Poll health (gRPC for services, HTTP for the edge) until everything is SERVING; raises on
    timeout or a dead child."""
    deadline = time.monotonic() + timeout_s
    children = procs or {}
    edge_names = [n for n in children if n in edge_mod.EDGE] if edge is not None else []
    while True:
        states = dict(zip(addresses, await asyncio.gather(*(health_of(a) for a in addresses.values()))))
        if edge is not None:
            for name in edge_names:
                states[name] = await asyncio.to_thread(edge_mod.edge_health, name, edge)
        if on_poll is not None:
            on_poll(states)
        # The edge only serves browsers: when Envoy or the UI server dies (say, its port is taken)
        # the services are still usable, so it is reported, not fatal.
        for name in edge_names:
            proc = children[name]
            if proc.poll() is not None:
                states[name] = f"EXITED({proc.returncode})"
        if all(s == "SERVING" or (n in edge_names and s.startswith("EXITED")) for n, s in states.items()):
            return states
        for name, proc in children.items():
            if name in edge_names:
                continue
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with code {proc.returncode}; see {tator_home()}/logs/{name}.log")
        if time.monotonic() > deadline:
            bad = {n: s for n, s in states.items() if s != "SERVING"}
            raise TimeoutError(f"not SERVING after {timeout_s:.0f}s: {bad}")
        await asyncio.sleep(0.5)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop(grace_s: float = 15.0) -> list[str]:
    """SIGTERM every recorded child, SIGKILL what is left after grace_s."""
    path = state_file()
    if not path.exists():
        tls.client_file().unlink(missing_ok=True)
        return []
    state = json.loads(path.read_text())
    pids = {name: int(v["pid"]) for name, v in state.items()}
    for pid in pids.values():
        if _alive(pid):
            os.killpg(pid, signal.SIGTERM) if _is_group_leader(pid) else os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(_alive(p) for p in pids.values()):
        time.sleep(0.2)
    for pid in pids.values():
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    path.unlink(missing_ok=True)
    tls.client_file().unlink(missing_ok=True)
    return list(pids)


def _is_group_leader(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def supervise(services: dict[str, ServiceConf], procs: dict[str, subprocess.Popen], max_restarts: int = 3,
              on_event=None) -> None:
    """Block until SIGINT/SIGTERM; restart crashed children at most max_restarts times each."""
    stopping = False

    def handler(_signum, _frame):
        nonlocal stopping
        stopping = True

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    restarts = {n: 0 for n in procs}
    try:
        while not stopping:
            for name, proc in list(procs.items()):
                if proc.poll() is None:
                    continue
                if restarts[name] >= max_restarts:
                    if on_event:
                        on_event(f"{name} exited ({proc.returncode}); restart budget spent")
                    procs.pop(name)
                    continue
                restarts[name] += 1
                if on_event:
                    on_event(f"{name} exited ({proc.returncode}); restarting ({restarts[name]}/{max_restarts})")
                if name in services:
                    procs[name] = spawn(services[name], services)
                else:
                    cmd = _edge_commands(services, load_edge())[name]
                    procs[name] = edge_mod.spawn_edge(name, cmd, tator_home() / "logs")
                write_state(services, procs, load_edge())
            time.sleep(0.5)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        stop()
