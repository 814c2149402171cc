"""Separate "hosts" on one machine for failover tests: Linux network namespaces joined by veth links to
a bridge that lives in a namespace of its own.

Each host is a namespace with its loopback and one `eth0` on a private /24; the root namespace (where
the test, the orchestrators and PostgreSQL run) joins the same bridge through one veth, so it reaches
every host by address and nothing else on the machine changes: no real interface is touched, and the
subnet is picked from 10.x.y.0/24 ranges no existing route covers. Taking a host's `eth0` down cuts it
off silently (no reset, no ICMP), as a pulled cable or a dead node does, which is what keepalive and
leases exist for.

Needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and iproute2: `available()` says whether this machine
allows it, and why not. `Hosts.close()` kills what was started in the namespaces and deletes them; it
is safe to call twice and after a partial setup.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import subprocess
import uuid
from pathlib import Path


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True, timeout=30)


def available() -> str:
    """'' when namespaces can be made here, else the reason they cannot."""
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    probe = f"ttprobe{uuid.uuid4().hex[:6]}"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"`ip netns add` is not allowed here: {made.stderr.strip()}"
    try:
        veth = _ip("-n", probe, "link", "add", "a0", "type", "veth", "peer", "name", "b0", check=False)
        if veth.returncode != 0:
            return f"veth links cannot be created here: {veth.stderr.strip()}"
    finally:
        _ip("netns", "del", probe, check=False)
    return ""


def _free_subnet() -> ipaddress.IPv4Network:
    """A 10.a.b.0/24 that no route of the root namespace overlaps."""
    routes = []
    for line in _ip("-4", "route", "show", "table", "all").stdout.splitlines():
        word = line.split()[0] if line.split() else ""
        if word in ("local", "broadcast", "unreachable", "prohibit", "blackhole"):
            word = line.split()[1]
        if word == "default":
            continue
        try:
            routes.append(ipaddress.ip_network(word, strict=False))
        except ValueError:
            continue
    seed = int(uuid.uuid4().hex[:4], 16)
    for k in range(256):
        net = ipaddress.IPv4Network(f"10.{200 + (seed + k) % 50}.{(seed // 50 + k) % 256}.0/24")
        if not any(net.overlaps(r) for r in routes):
            return net
    raise RuntimeError("no free private /24 for the test network")


class Hosts:
    """Namespaces named `<prefix><host>` on one bridge; `address(host)` is the host's IP."""

    def __init__(self) -> None:
        self.prefix = f"tt{uuid.uuid4().hex[:5]}"
        self.net = _free_subnet()
        self._hosts: dict[str, ipaddress.IPv4Address] = {}
        self._procs: list[subprocess.Popen[bytes]] = []
        self._router = f"{self.prefix}r"
        self._root_if = f"{self.prefix}0"
        ips = list(self.net.hosts())
        self._next_ip = iter(ips[1:])
        _ip("netns", "add", self._router)
        try:
            _ip("-n", self._router, "link", "set", "lo", "up")
            _ip("-n", self._router, "link", "add", "br0", "type", "bridge")
            _ip("-n", self._router, "link", "set", "br0", "up")
            # The root namespace's own link to the bridge.
            _ip("link", "add", self._root_if, "type", "veth", "peer", "name", f"{self.prefix}p0")
            _ip("link", "set", f"{self.prefix}p0", "netns", self._router)
            self._plug(f"{self.prefix}p0")
            _ip("addr", "add", f"{ips[0]}/{self.net.prefixlen}", "dev", self._root_if)
            _ip("link", "set", self._root_if, "up")
        except BaseException:
            self.close()
            raise

    def _plug(self, router_end: str) -> None:
        _ip("-n", self._router, "link", "set", router_end, "master", "br0")
        _ip("-n", self._router, "link", "set", router_end, "up")

    def add(self, host: str) -> str:
        """A new host on the bridge; its IP address."""
        ns, ip = self.namespace(host), next(self._next_ip)
        router_end = f"{self.prefix}{host}"[:15]
        _ip("netns", "add", ns)
        self._hosts[host] = ip
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("link", "add", router_end, "type", "veth", "peer", "name", f"{router_end[:13]}h")
        _ip("link", "set", router_end, "netns", self._router)
        _ip("link", "set", f"{router_end[:13]}h", "netns", ns)
        _ip("-n", ns, "link", "set", f"{router_end[:13]}h", "name", "eth0")
        _ip("-n", ns, "addr", "add", f"{ip}/{self.net.prefixlen}", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        self._plug(router_end)
        return str(ip)

    def namespace(self, host: str) -> str:
        return f"{self.prefix}{host}"

    def address(self, host: str) -> str:
        return str(self._hosts[host])

    def popen(self, host: str, args: list[str], *, log: Path, cwd: Path | None = None) -> subprocess.Popen[bytes]:
        """Run a command on a host (inside its namespace); output to `log`."""
        with open(log, "ab") as out:
            proc = subprocess.Popen(["ip", "netns", "exec", self.namespace(host), *args], cwd=cwd, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self._procs.append(proc)
        return proc

    def link(self, host: str, up: bool) -> None:
        """Take a host's only link down (or up again): it drops off the network without a word."""
        _ip("-n", self.namespace(host), "link", "set", "eth0", "up" if up else "down")

    def close(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        for proc in self._procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        self._procs.clear()
        for ns in [self.namespace(h) for h in self._hosts] + [self._router]:
            _ip("netns", "del", ns, check=False)
        self._hosts.clear()
        # Deleting the router namespace destroys the bridge end, and with it the root end; if setup
        # stopped before the move, the root end is still here.
        _ip("link", "del", self._root_if, check=False)
