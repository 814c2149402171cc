"""`serve()`: the gRPC bootstrap every service uses.

One `grpc.aio` server with the Tator interceptor, max message size from
settings, `grpc.health.v1` (NOT_SERVING until the warm-up — model load plus one
inference — finished, then SERVING), server reflection, Prometheus metrics on
a side port, JSON logs, and a graceful drain on SIGTERM/SIGINT: health flips
to NOT_SERVING first so load balancers stop routing, then in-flight RPCs get
`grace_s` to finish.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar
from wsgiref.simple_server import WSGIServer

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from tator_core import model_management, tracing
from tator_core.auth import Authenticator, load_tokens, server_credentials
from tator_core.interceptors import TatorServerInterceptor
from tator_core.logs import setup_logging
from tator_core.settings import ServiceSettings

log = logging.getLogger("tator.server")

#: The settings type one service's spec factory takes.
SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


@dataclass
class ServiceSpec:
    """What a service plugs into the bootstrap."""

    name: str                                        # short name: detector, sam3, ...
    full_name: str                                   # tator.detector.v1.DetectorService
    add_to_server: Callable[[grpc.aio.Server], None]
    warmup: Callable[[], Awaitable[None]] | None = None
    shutdown: Callable[[], Awaitable[None]] | None = None
    # A model service's models: served as tator.common.v1.ModelManagementService next to its own service.
    models: model_management.ManagedModels | None = None


@dataclass
class RunningServer:
    spec: ServiceSpec
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    interceptor: TatorServerInterceptor
    metrics_port: int | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    warmup_error: BaseException | None = None
    _metrics_httpd: WSGIServer | None = None
    _warmup_task: asyncio.Task[None] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", self.spec.full_name):
            await self.health.set(name, status)

    async def stop(self, grace: float | None = 0) -> None:
        await self.set_serving(False)
        self.interceptor.begin_drain(grace or 0.0)
        if self._warmup_task is not None and not self._warmup_task.done():
            self._warmup_task.cancel()
        await self.server.stop(grace)
        if self.spec.shutdown is not None:
            await self.spec.shutdown()
        if self._metrics_httpd is not None:
            self._metrics_httpd.shutdown()


async def start_server(spec: ServiceSpec, settings: ServiceSettings) -> RunningServer:
    """Start the server and its warm-up; returns at once (health NOT_SERVING)."""
    max_bytes = settings.max_message_mb * 1024 * 1024
    authenticator = Authenticator(load_tokens(settings.auth_tokens_file)) if settings.auth_tokens_file else None
    interceptor = TatorServerInterceptor(spec.name, settings.max_in_flight, settings.max_streams,
                                         authenticator=authenticator, max_request_items=settings.max_request_items)
    server = grpc.aio.server(
        # The tracing interceptor is outermost, so the Tator interceptor's log
        # lines (and the handler's) carry the RPC's trace id.
        interceptors=[tracing.server_interceptor(), interceptor],
        options=[("grpc.max_send_message_length", max_bytes), ("grpc.max_receive_message_length", max_bytes),
                 ("grpc.so_reuseport", 0),
                 # Clients reconnect now and then, so a scale-up is noticed without
                 # waiting for a connection to break; in-flight calls finish first.
                 ("grpc.max_connection_age_ms", 300_000),
                 # Clients ping idle connections every 10 s to notice a dead peer; accept that.
                 ("grpc.keepalive_permit_without_calls", 1),
                 ("grpc.http2.min_recv_ping_interval_without_data_ms", 5_000),
                 ("grpc.http2.max_ping_strikes", 0)],
    )
    spec.add_to_server(server)
    names = [spec.full_name]
    if spec.models is not None:
        model_management.add_to_server(spec.models, server)
        names.append(model_management.FULL_NAME)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((*names, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    bind = f"{settings.host}:{settings.port}"
    if settings.tls_cert_file and settings.tls_key_file:
        port = server.add_secure_port(bind, server_credentials(settings.tls_cert_file, settings.tls_key_file,
                                                               settings.tls_client_ca_file))
    else:
        port = server.add_insecure_port(bind)
    if port == 0:
        raise OSError(f"cannot bind {settings.host}:{settings.port}")
    running = RunningServer(spec, server, port, health_servicer, interceptor)
    await running.set_serving(False)
    if settings.metrics_port >= 0:
        httpd, _thread = start_http_server(settings.metrics_port, addr=settings.host)
        running._metrics_httpd = httpd
        running.metrics_port = httpd.server_port
    await server.start()
    log.info("listening", extra={"fields": {"port": port, "metrics_port": running.metrics_port,
                                            "device": settings.device}})

    async def warm() -> None:
        try:
            if spec.warmup is not None and settings.warmup:
                await spec.warmup()
            await running.set_serving(True)
            log.info("serving")
        except Exception as exc:  # health stays NOT_SERVING; the log says why
            running.warmup_error = exc
            log.error("warm-up failed; staying NOT_SERVING", exc_info=exc)
        finally:
            running.ready.set()

    running._warmup_task = asyncio.create_task(warm())
    return running


async def serve(spec: ServiceSpec, settings: ServiceSettings) -> None:
    """Run until SIGTERM/SIGINT, then drain."""
    running = await start_server(spec, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server_done = asyncio.create_task(running.server.wait_for_termination())
    stop_wait = asyncio.create_task(stop.wait())
    await asyncio.wait({server_done, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
    log.info("draining", extra={"fields": {"grace_s": settings.grace_s}})
    await running.stop(settings.grace_s)
    server_done.cancel()
    stop_wait.cancel()
    log.info("stopped")


def run(spec_factory: Callable[[SettingsT], ServiceSpec], settings: SettingsT) -> None:
    """Synchronous entry point for `python -m svc_<name>`."""
    name = spec_factory.__module__.split(".")[0]
    setup_logging(name, settings.log_level)
    tracing.setup(name.removeprefix("svc_"), settings.otlp_endpoint)

    async def main() -> None:
        await serve(spec_factory(settings), settings)

    try:
        asyncio.run(main())
    finally:
        tracing.shutdown()
