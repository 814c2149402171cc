"""Client helper shared by the orchestrator, the CLI and tests.

`ServiceClient` wraps one channel and one generated stub and implements the
image protocol: an image's bytes go to a service once; later calls send the
sha256 only; if the service answers FAILED_PRECONDITION / IMAGE_NOT_CACHED
(it evicted or restarted) the request is resent once with bytes,
transparently. It counts the image bytes it sent, so wire economy is testable.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tator_core import tracing
from tator_core.auth import channel_credentials, client_token
from tator_core.cache import BoundedLRU
from tator_core.errors import parse_rpc_error
from tator_core.gen.tator.common.v1 import common_pb2
from tator_core.images import sha256_hex
from tator_core.logs import downstream_timeout, request_id_var


def image_ref(data: bytes, with_bytes: bool = True) -> common_pb2.ImageRef:
    ref = common_pb2.ImageRef(sha256=sha256_hex(data))
    if with_bytes:
        ref.data = data
    return ref


# Calls that must not run twice: each starts a new job, trains a head or imports a recipe under a
# new id. Every other call is idempotent (inference is a pure function of its request; Get/List/Put/
# Delete/Load/Unload converge), so it is retried on UNAVAILABLE, on another replica.
NON_IDEMPOTENT = (
    ("tator.orchestrator.v1.OrchestratorService", "StartPrepassJob"),
    ("tator.orchestrator.v1.OrchestratorService", "StartCalibration"),
    ("tator.orchestrator.v1.OrchestratorService", "ImportRecipe"),
    ("tator.classifier.v1.ClassifierService", "TrainHead"),
)
KEEPALIVE_S = 10.0        # ping an idle connection this often...
KEEPALIVE_TIMEOUT_S = 5.0  # ...and drop it when the ping is unanswered this long: a dead peer in seconds


def service_config(*, health_checked: bool = True, max_attempts: int = 4) -> dict[str, Any]:
    """Round robin over every address the target resolves to (with pick_first one long-lived
    connection pins all calls to one replica); subchannels whose replica's health is not SERVING
    get no calls (a warming or draining replica is skipped); UNAVAILABLE is retried with backoff,
    which round robin sends to the next replica, except for the non-idempotent calls."""
    config: dict[str, Any] = {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [
            {"name": [{}], "retryPolicy": {
                "maxAttempts": max_attempts, "initialBackoff": "0.1s", "maxBackoff": "2s",
                "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}},
            {"name": [{"service": svc, "method": m} for svc, m in NON_IDEMPOTENT]},
        ],
    }
    if health_checked:
        config["healthCheckConfig"] = {"serviceName": ""}
    return config


def channel_options(max_message_mb: int = 64, *, health_checked: bool = True) -> list[tuple[str, object]]:
    n = max_message_mb * 1024 * 1024
    opts: list[tuple[str, object]] = [
        ("grpc.max_send_message_length", n), ("grpc.max_receive_message_length", n),
        ("grpc.service_config", json.dumps(service_config(health_checked=health_checked))),
        ("grpc.enable_retries", 1),
        # A request is kept for a retry only if it fits the buffer: one whole image request must.
        ("grpc.per_rpc_retry_buffer_size", n), ("grpc.retry_buffer_size", 4 * n),
        ("grpc.keepalive_time_ms", int(KEEPALIVE_S * 1000)),
        ("grpc.keepalive_timeout_ms", int(KEEPALIVE_TIMEOUT_S * 1000)),
        ("grpc.keepalive_permit_without_calls", 1), ("grpc.http2.max_pings_without_data", 0),
        # Reconnect to a replica that comes back within a second or two, not after the default 20 s+.
        ("grpc.initial_reconnect_backoff_ms", 200), ("grpc.max_reconnect_backoff_ms", 2000),
    ]
    if not health_checked:
        opts.append(("grpc.inhibit_health_checking", 1))
    return opts


# The calls a unary RPC made on the wire, filled by `_RecordCall` inside grpc's interceptor task.
_wire_calls: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar("wire_calls", default=None)


class _RecordCall(grpc.aio.UnaryUnaryClientInterceptor):
    """Innermost interceptor: hands the wire call to `_cancellable`. The tracing interceptor awaits
    the call's status inside grpc's interceptor task, so cancelling the intercepted call only stops
    that wait and leaves the RPC running on the service; cancelling the wire call stops it."""

    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        call = await continuation(client_call_details, request)
        held = _wire_calls.get()
        if held is not None:
            held.append(call)
        return call


async def _cancellable(rpc: Any, request: Any, timeout: float, metadata: Any) -> Any:
    """One unary call; when the awaiting task is cancelled (its own caller went away), the RPC is
    cancelled on the wire too, so the service stops working on it."""
    held: list[Any] = []
    token = _wire_calls.set(held)
    try:
        call = rpc(request, timeout=timeout, metadata=metadata)  # grpc copies the context here
    finally:
        _wire_calls.reset(token)
    try:
        return await call
    except asyncio.CancelledError:
        call.cancel()
        for wire in held:
            wire.cancel()
        raise


class ServiceClient:
    """One service: channel, stub, image protocol and counters."""

    def __init__(self, address: str, stub_factory: Callable[[grpc.aio.Channel], Any], *,
                 max_message_mb: int = 64, timeout_s: float = 120.0,
                 options: Sequence[tuple[str, object]] | None = None, max_held_images: int = 4096,
                 token: str | None = None, role: str = "admin", health_checked: bool = False) -> None:
        """`token` defaults to `client_token(role)` (TATOR_TOKEN or the stack's tokens file); TLS
        comes from TATOR_TLS_* (see tator_core/auth.py). `health_checked`: send calls only to replicas
        whose health is SERVING (the orchestrator's clients of the model services); off, a call
        reaches a replica still warming up and gets its answer (the CLI and tests talking to one server)."""
        self.address = address
        self._max_message_mb, self._options = max_message_mb, list(options or ())
        self._creds = channel_credentials()
        self.channel = self._open(health_checked)
        # Health probes go around the health-checked picking: through it a replica that is not SERVING
        # would look UNREACHABLE, and a probe must tell the two apart.
        self._probe: grpc.aio.Channel | None = None
        self.token = token if token is not None else client_token(role)
        self.stub = stub_factory(self.channel)
        self.timeout_s = timeout_s
        self.image_bytes_sent = 0
        self.calls = 0
        self.resends = 0
        # shas the service is believed to hold; bounded, since a long-running
        # orchestrator sees unbounded numbers of images (a forgotten sha costs
        # at most one resend of its bytes).
        self._held: BoundedLRU[str, None] = BoundedLRU(max_held_images)

    def _metadata(self, request_id: str | None) -> tuple[tuple[str, str], ...]:
        # Inside an RPC being served, its request id goes on, so one id is in every service's log line.
        rid = request_id or request_id_var.get() or uuid.uuid4().hex[:16]
        meta: tuple[tuple[str, str], ...] = (("x-request-id", rid),)
        if self.token:
            meta += (("authorization", f"Bearer {self.token}"),)
        return meta

    async def call(self, method: str, request: Any, *, image_data: bytes | None = None,
                   timeout_s: float | None = None, request_id: str | None = None, stub: Any = None) -> Any:
        """Unary call. With image_data, `request.image` follows the image protocol. `stub`: another
        service on the same channel (e.g. a model service's ModelManagementService)."""
        rpc = getattr(stub if stub is not None else self.stub, method)
        timeout = downstream_timeout(timeout_s or self.timeout_s)
        meta = self._metadata(request_id)
        sha = request.image.sha256 if image_data is not None else None
        if image_data is not None:
            if sha in self._held:
                request.image.ClearField("data")
            else:
                request.image.data = image_data
        self.calls += 1
        try:
            response = await _cancellable(rpc, request, timeout, meta)
            self._count_sent(request, image_data)
        except grpc.aio.AioRpcError as exc:
            if sha is None or request.image.HasField("data") or parse_rpc_error(exc).reason != "IMAGE_NOT_CACHED":
                raise
            self._held.pop(sha)
            request.image.data = image_data
            self.resends += 1
            self.calls += 1
            response = await _cancellable(rpc, request, timeout, meta)
            self._count_sent(request, image_data)
        if sha is not None:
            self._held.put(sha, None)
        return response

    def _count_sent(self, request: Any, image_data: bytes | None) -> None:
        if image_data is not None and request.image.HasField("data"):
            self.image_bytes_sent += len(request.image.data)

    async def list_models(self, *, timeout_s: float | None = None, page_size: int = 1000) -> list[Any]:
        """Every model of a model service, from tator.common.v1.ModelManagementService (all pages)."""
        from tator_core.gen.tator.common.v1 import models_pb2, models_pb2_grpc

        stub = models_pb2_grpc.ModelManagementServiceStub(self.channel)
        models: list[Any] = []
        token = ""
        while True:
            resp = await self.call("ListModels", models_pb2.ListModelsRequest(page_size=page_size, page_token=token),
                                   timeout_s=timeout_s, stub=stub)
            models += resp.models
            token = resp.next_page_token
            if not token:
                return models

    async def stream(self, method: str, request: Any, *, timeout_s: float | None = None,
                     request_id: str | None = None) -> AsyncIterator[Any]:
        rpc = getattr(self.stub, method)
        self.calls += 1
        async for item in rpc(request, timeout=downstream_timeout(timeout_s or self.timeout_s),
                              metadata=self._metadata(request_id)):
            yield item

    def _open(self, health_checked: bool) -> grpc.aio.Channel:
        opts = channel_options(self._max_message_mb, health_checked=health_checked) + self._options
        # Client spans carry the caller's trace context to the service.
        if self._creds is not None:
            return grpc.aio.secure_channel(self.address, self._creds, options=opts,
                                           interceptors=[*tracing.client_interceptors(), _RecordCall()])
        return grpc.aio.insecure_channel(self.address, options=opts, interceptors=[*tracing.client_interceptors(), _RecordCall()])

    async def health(self, service: str = "", timeout_s: float = 3.0) -> str:
        """SERVING, NOT_SERVING, UNKNOWN or UNREACHABLE."""
        if self._probe is None:
            self._probe = self._open(health_checked=False)
        stub = health_pb2_grpc.HealthStub(self._probe)
        try:
            resp = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        except grpc.aio.AioRpcError:
            return "UNREACHABLE"
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status))

    async def close(self) -> None:
        await self.channel.close()
        if self._probe is not None:
            await self._probe.close()
