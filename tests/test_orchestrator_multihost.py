"""Failover across hosts on one machine: two detector and two SAM3 replicas, each on a host of its own
(a network namespace on a veth link to a shared bridge), two orchestrator processes on one
PostgreSQL. Mid-job one detector host's link goes down (it vanishes without a word, as a dead node
does) and one orchestrator is killed with SIGKILL; the job still finishes, on the surviving
orchestrator and detector, and every image is prepassed exactly once.

Runs where network namespaces can be made (root with iproute2; `make test-multihost`), and skips
with the reason elsewhere. The namespaces are deleted, and what ran in them killed, even when the
test fails.
"""

from __future__ import annotations

import asyncio
import sys
import time
import urllib.request

import pytest
import pytest_asyncio
from replica_fixture import REPO, Replica, cache_writes
from stack_fixture import SYNTH_IMAGES, Stack, build_models, make_datasets

from tator_core.client import ServiceClient
from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
from tator_fixtures import netns

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.stack]
PORT, METRICS_PORT = 50051, 9464
HOSTS = {"det1": "detector", "det2": "detector", "sam1": "sam3", "sam2": "sam3"}


@pytest.fixture(scope="module")
def hosts():
    reason = netns.available()
    if reason:
        pytest.skip(f"no network namespaces on this machine: {reason}")
    made = netns.Hosts()
    try:
        for host in HOSTS:
            made.add(host)
        yield made
    finally:
        made.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory, stack_models, hosts) -> Stack:
    """Qwen and the classifier in this process; a detector or SAM3 process on each host."""
    home = tmp_path_factory.mktemp("home")
    make_datasets(home / "data")
    stack = Stack(home, build_models(stack_models, home / "data" / "synth"))
    try:
        for name in ("qwen", "classifier"):
            await stack.start_service(name)
        for host, service in HOSTS.items():
            hosts.popen(host, [sys.executable, "-m", f"svc_{service}", "--host", hosts.address(host), "--port",
                               str(PORT), "--metrics-port", str(METRICS_PORT), "--device", "cpu",
                               "--registry", str(stack.registry)], log=home / f"{host}.log", cwd=REPO)
        for host in HOSTS:
            probe = ServiceClient(f"{hosts.address(host)}:{PORT}", lambda _channel: None, timeout_s=5)
            try:
                deadline = time.monotonic() + 300
                while await probe.health(timeout_s=2.0) != "SERVING":
                    assert time.monotonic() < deadline, (home / f"{host}.log").read_text()[-3000:]
                    await asyncio.sleep(0.5)
            finally:
                await probe.close()
        yield stack
    finally:
        await stack.close()


def _target(hosts: netns.Hosts, service: str) -> str:
    """One gRPC target naming every replica of a service: the client round-robins over them."""
    return "ipv4:" + ",".join(f"{hosts.address(h)}:{PORT}" for h, s in HOSTS.items() if s == service)


def _served(hosts: netns.Hosts, host: str, method: str) -> float:
    """Calls of `method` the service on `host` answered, from its Prometheus endpoint."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the host is on our own bridge
    for attempt in range(20):  # a link just brought back up may take a moment to pass traffic again
        try:
            text = opener.open(f"http://{hosts.address(host)}:{METRICS_PORT}/metrics", timeout=10).read()
            break
        except OSError:
            if attempt == 19:
                raise
            time.sleep(0.5)
    total = 0.0
    for line in text.decode().splitlines():
        if line.startswith("tator_rpc_total{") and f'method="{method}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_a_job_survives_a_detector_host_cut_off_and_an_orchestrator_killed(hosts, stack, pg_server,
                                                                                tmp_path):
    url = pg_server.create_database()
    targets = {"detector": _target(hosts, "detector"), "sam3": _target(hosts, "sam3")}
    a = await Replica("a", stack, url, tmp_path, addresses=targets).start()
    b = await Replica("b", stack, url, tmp_path, addresses=targets).start()
    try:
        total = SYNTH_IMAGES
        job = (await a.client.call("StartPrepassJob", pb.StartPrepassJobRequest(dataset_id="synth"))).job
        cut_at, after_cut, final, det2_at_cut = None, [], None, 0.0
        async for ev in b.client.stream("WatchJob", pb.WatchJobRequest(job_id=job.id)):
            final = ev.job
            if not ev.image:
                continue
            if cut_at is None:
                cut_at = ev.job.done
                det2_at_cut = await asyncio.to_thread(_served, hosts, "det2", "Detect")
                hosts.link("det1", up=False)  # det1 is gone mid-job: its calls in flight get no answer
                await a.kill()  # and so is orchestrator A, with the units (and images) it held
            else:
                after_cut.append(ev.job.done)
        assert cut_at is not None and cut_at < total
        assert final.state == pb.JOB_STATE_SUCCEEDED and final.done == total, final
        assert final.result.prepass.images == total
        assert after_cut and after_cut[-1] == total  # images finished after the cut: B and det2 did them
        # every image prepassed exactly once: one cache entry each, none written twice
        assert cache_writes(url, "synth") == (total, total)
        # det1 back on the wire, to read its counters: both detectors served Detect calls, and det2 the
        # ones after the cut (everything B prepassed once det1 was gone).
        hosts.link("det1", up=True)
        det1, det2 = _served(hosts, "det1", "Detect"), _served(hosts, "det2", "Detect")
        assert det1 > 0 and det1 + det2 >= total, (det1, det2)  # round robin used both before the cut
        assert det2 > det2_at_cut, (det2_at_cut, det2)
        print(f"multihost: cut at {cut_at}/{total} images; Detect calls det1 {det1:.0f}, det2 {det2_at_cut:.0f} "
              f"before the cut and {det2:.0f} at the end")
        assert _served(hosts, "sam1", "SegmentText") + _served(hosts, "sam2", "SegmentText") >= total
    finally:
        await a.stop()
        await b.stop()
