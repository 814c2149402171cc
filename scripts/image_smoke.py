"""Smoke test of the built image (run by `scripts/image.sh check`, as root).

`--root` is the image's root filesystem, already mounted read-only with the
models volume at /tator/models (read-only) and tmpfs on /tmp and /tator.
Every service is started from it with chroot as uid/gid 10001, the way the
pod runs it, on CPU with the volume's registry; each must reach SERVING on
grpc.health.v1, run as the non-root user, and exit cleanly on SIGTERM.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVICES = ["detector", "sam3", "qwen", "classifier", "orchestrator"]
UID = 10001


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health(port: int) -> str:
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=2)
            return health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
    except grpc.RpcError:
        return "UNREACHABLE"


def uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise RuntimeError(f"no Uid for {pid}")


def start(root: Path, name: str, ports: dict[str, int], log_dir: Path) -> subprocess.Popen:
    args = [shutil.which("chroot") or "/usr/sbin/chroot", f"--userspec={UID}:{UID}", str(root), "/opt/venv/bin/python", "-m", f"svc_{name}",
            "--host", "127.0.0.1", "--port", str(ports[name]), "--metrics-port", "-1"]
    if name == "orchestrator":
        args += [f"--{s}-address=127.0.0.1:{ports[s]}" for s in SERVICES if s != "orchestrator"]
    else:
        args += ["--device", "cpu"]
    args += ["--registry", "/tator/models/registry.yaml"]
    env = {"PATH": "/opt/venv/bin:/usr/bin:/bin", "HOME": "/tmp", "TATOR_HOME": "/tator",
           "NVIDIA_VISIBLE_DEVICES": "void"}
    log = (log_dir / f"{name}.log").open("w")
    return subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def smoke_web(root: Path) -> dict:
    """The tator-web image: its static server as uid 10001 answers /healthz and
    serves the UI, then fails /healthz and exits 0 on SIGTERM."""
    port = free_port()
    # chroot starts in /; the image's WORKDIR is /app (where tator_cli lies).
    args = [shutil.which("chroot") or "/usr/sbin/chroot", f"--userspec={UID}:{UID}", str(root), "/bin/sh", "-c",
            "cd /app && exec python3 -m tator_cli.webserver --root /app/dist --host 127.0.0.1 "
            f"--port {port} --drain-s 1"]
    proc = subprocess.Popen(args, env={"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"},
                            stderr=subprocess.PIPE)
    out: dict = {"port": port}
    try:
        deadline = time.monotonic() + 30
        while "healthz" not in out and time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    out["healthz"] = r.status
            except OSError:
                time.sleep(0.2)
        out["uid"] = uid_of(proc.pid) if proc.poll() is None else None
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
            body = r.read().lower()
            out["index"] = r.status if b"<!doctype html" in body else -1
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
            out["healthz_draining"] = 200
        except urllib.error.HTTPError as e:
            out["healthz_draining"] = e.code
        out["exit_rc"] = proc.wait(15)
    except OSError as exc:  # reported below, with the server's stderr
        out["error"] = repr(exc)
    finally:
        if proc.poll() is None:
            proc.kill()
    if "error" in out:
        out["stderr"] = proc.stderr.read().decode(errors="replace")[-2000:] if proc.stderr else ""
    out["ok"] = (out.get("healthz") == 200 and out.get("uid") == UID and out.get("index") == 200
                 and out.get("healthz_draining") == 503 and out.get("exit_rc") == 0)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--web-root", type=Path, help="the tator-web image's root, smoke-tested too")
    parser.add_argument("--timeout-s", type=float, default=600)
    parser.add_argument("--log-dir", type=Path, default=Path("build/image-smoke"))
    args = parser.parse_args()
    args.log_dir.mkdir(parents=True, exist_ok=True)
    ports = {s: free_port() for s in SERVICES}
    t0 = time.monotonic()
    procs = {s: start(args.root, s, ports, args.log_dir) for s in SERVICES}
    result: dict[str, dict] = {s: {"port": ports[s]} for s in SERVICES}
    ok = True
    try:
        pending = set(SERVICES)
        while pending and time.monotonic() - t0 < args.timeout_s:
            for s in sorted(pending):
                if procs[s].poll() is not None:
                    result[s].update(status="EXITED", rc=procs[s].returncode)
                    pending.discard(s)
                elif health(ports[s]) == "SERVING":
                    # chroot execs python, so the pid is the service itself.
                    result[s].update(status="SERVING", serving_s=round(time.monotonic() - t0, 1),
                                     uid=uid_of(procs[s].pid))
                    pending.discard(s)
            time.sleep(1)
        for s in pending:
            result[s].update(status=health(ports[s]))
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for s, proc in procs.items():
            try:
                result[s]["exit_rc"] = proc.wait(60)
            except subprocess.TimeoutExpired:
                result[s]["exit_rc"] = "timeout"
        ok = all(r.get("status") == "SERVING" and r.get("uid") == UID and r.get("exit_rc") == 0
                 for r in result.values())
        if args.web_root is not None:
            result["web"] = smoke_web(args.web_root)
            ok = ok and result["web"]["ok"]
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    print(json.dumps({"smoke": "ok" if ok else "FAILED", "services": result}))
    if not ok:
        for s in SERVICES:
            if result[s].get("status") != "SERVING" or result[s].get("exit_rc") != 0:
                print(f"--- {s} log (tail)", file=sys.stderr)
                print((args.log_dir / f"{s}.log").read_text()[-3000:], file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
