"""OpenTelemetry tracing shared by every service and client.

- `setup(service, otlp_endpoint)`: the process's tracer provider, named
  `tator-<service>`; spans are exported over OTLP/gRPC when an endpoint is
  set, otherwise only created (their ids still join the JSON logs and travel
  to the next service, so one request is one trace either way).
- `server_interceptor()` / `client_interceptors()`: the gRPC instrumentation
  (opentelemetry-instrumentation-grpc), one span per RPC on each side with
  W3C trace context carried in the metadata. Health checks and reflection
  are left out: probes every few seconds would drown the traces.
- `span(name, **attrs)` and `annotate(**attrs)`: a span for a unit of work
  inside an RPC (a prepass stage) and `tator.*` attributes on the current one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor, filters
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

log = logging.getLogger("tator.tracing")
_TRACED = filters.negate(filters.any_of(filters.service_prefix("grpc.health."),
                                        filters.service_prefix("grpc.reflection.")))
_tracer = trace.get_tracer("tator")
T = TypeVar("T")


def make_provider(service: str, otlp_endpoint: str = "") -> TracerProvider:
    """A tracer provider named `tator-<service>`, exporting over OTLP/gRPC
    (batched, off the request path) when an endpoint is given."""
    provider = TracerProvider(resource=Resource.create({"service.name": f"tator-{service}"}))
    if otlp_endpoint:
        # Imported only when used: the exporter pulls in its own gRPC stubs.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=otlp_endpoint, insecure=otlp_endpoint.startswith("http://"))
        provider.add_span_processor(BatchSpanProcessor(exporter))
        log.info("exporting traces", extra={"fields": {"otlp_endpoint": otlp_endpoint}})
    return provider


def setup(service: str, otlp_endpoint: str = "") -> TracerProvider:
    """Install the process's tracer provider once and return it; a provider
    installed earlier (a test's, or another service's in the same process) is
    kept and returned."""
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    provider = make_provider(service, otlp_endpoint)
    trace.set_tracer_provider(provider)
    return provider


def shutdown() -> None:
    """Flush spans still queued for export (at process exit)."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()


def server_interceptor() -> Any:
    return aio_server_interceptor(filter_=_TRACED)


def client_interceptors() -> list[Any]:
    interceptors: list[Any] = aio_client_interceptors(filter_=_TRACED)
    return interceptors


@contextmanager
def span(name: str, **attrs: Any) -> Iterator[trace.Span]:
    with _tracer.start_as_current_span(name, attributes={f"tator.{k}": v for k, v in attrs.items()}) as s:
        yield s


def annotate(**attrs: Any) -> None:
    current = trace.get_current_span()
    if current.is_recording():
        for key, value in attrs.items():
            current.set_attribute(f"tator.{key}", value)


def log_ids() -> dict[str, str]:
    """trace_id / span_id of the current span, as in W3C traceparent; {} outside one."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return {}
    return {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}


async def traced(name: str, call: Awaitable[T], **attrs: Any) -> T:
    """Await `call` inside its own span (the span ends when the call does)."""
    with span(name, **attrs):
        return await call
