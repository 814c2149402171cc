"""The shared client's channel over several replicas of a service (real gRPC servers on loopback):
round robin, health-checked subchannels, retry of idempotent calls on UNAVAILABLE, no retry of the
calls that must not run twice, and a probe that still tells NOT_SERVING from UNREACHABLE."""

from __future__ import annotations

import asyncio
from collections import Counter

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from tator_core.client import ServiceClient

PING = "/tator.test.v1.EchoService/Ping"
START = "/tator.orchestrator.v1.OrchestratorService/StartPrepassJob"  # one of the non-idempotent calls


class Replica:
    def __init__(self, name: str, calls: Counter, *, fail_with_unavailable: bool = False) -> None:
        self.name, self.calls, self.fail = name, calls, fail_with_unavailable
        self.server = grpc.aio.server()
        self.health = health.aio.HealthServicer()

    async def start(self) -> Replica:
        def handler(method: str):
            async def h(request, context):
                self.calls[(self.name, method)] += 1
                if self.fail:
                    await context.abort(grpc.StatusCode.UNAVAILABLE, f"{self.name} is overloaded")
                return self.name.encode()
            return grpc.unary_unary_rpc_method_handler(h)

        self.server.add_generic_rpc_handlers([
            grpc.method_handlers_generic_handler("tator.test.v1.EchoService", {"Ping": handler(PING)}),
            grpc.method_handlers_generic_handler("tator.orchestrator.v1.OrchestratorService",
                                                 {"StartPrepassJob": handler(START)})])
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        await self.serving(True)
        return self

    async def serving(self, on: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if on else health_pb2.HealthCheckResponse.NOT_SERVING
        await self.health.set("", status)


def _stub(channel: grpc.aio.Channel):
    class Stub:
        Ping = channel.unary_unary(PING)
        StartPrepassJob = channel.unary_unary(START)
    return Stub()


async def _client(*replicas: Replica) -> ServiceClient:
    target = "ipv4:" + ",".join(f"127.0.0.1:{r.port}" for r in replicas)
    return ServiceClient(target, _stub, timeout_s=5, health_checked=True)


async def _pings(client: ServiceClient, n: int) -> Counter:
    return Counter([(await client.call("Ping", b"")).decode() for _ in range(n)])


async def test_round_robin_over_healthy_replicas_only():
    calls: Counter = Counter()
    a, b = await Replica("a", calls).start(), await Replica("b", calls).start()
    client = await _client(a, b)
    try:
        for _ in range(50):  # until both subchannels connected and passed their health check
            if len(await _pings(client, 2)) == 2:
                break
            await asyncio.sleep(0.1)
        got = await _pings(client, 20)
        assert abs(got["a"] - got["b"]) <= 1  # round robin, not one pinned connection
        await b.serving(False)  # b warms up again or drains: it gets no calls
        await asyncio.sleep(0.5)
        assert await _pings(client, 10) == Counter({"a": 10})
        await b.serving(True)
        for _ in range(50):
            if len(await _pings(client, 4)) == 2:
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("b did not get calls again after it turned SERVING")
        # the probe bypasses the health-checked picking: a NOT_SERVING service says so
        await a.serving(False)
        await b.serving(False)
        assert await client.health() == "NOT_SERVING"
    finally:
        await client.close()
        await a.server.stop(0)
        await b.server.stop(0)


async def test_unavailable_is_retried_on_another_replica_unless_the_call_must_not_repeat():
    calls: Counter = Counter()
    a = await Replica("a", calls, fail_with_unavailable=True).start()
    b = await Replica("b", calls).start()
    client = await _client(a, b)
    try:
        assert await _pings(client, 10) == Counter({"b": 10})  # every call answered, a's refusals retried
        assert calls[("a", PING)] >= 3  # a was tried, and its UNAVAILABLE did not reach the caller
        failures = 0
        for _ in range(10):
            try:
                await client.call("StartPrepassJob", b"")
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.UNAVAILABLE
                failures += 1
        assert failures == calls[("a", START)] > 0  # not retried: each refusal reached the caller once
        # a replica that is gone: calls go to the other at once
        await a.server.stop(0)
        assert await _pings(client, 6) == Counter({"b": 6})
    finally:
        await client.close()
        await b.server.stop(0)
