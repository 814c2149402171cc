"""The one server interceptor every service runs.

Per RPC it: assigns a request id (from `x-request-id` metadata or new), bounds
in-flight work (RESOURCE_EXHAUSTED / OVERLOADED), validates the request with
protovalidate (INVALID_ARGUMENT with google.rpc.BadRequest field paths), maps
`TatorError` to its status, and maps anything unexpected to INTERNAL carrying
the request id — the traceback goes to the log, never to the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from grpc_status import rpc_status

from tator_core import errors
from tator_core.logs import request_id_var
from tator_core.metrics import IN_FLIGHT, RPC_LATENCY, RPC_TOTAL
from tator_core.validation import validation_error

log = logging.getLogger("tator.rpc")
_UNCHECKED_PREFIXES = ("/grpc.health.", "/grpc.reflection.")


class TatorServerInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, service: str, max_in_flight: int = 64) -> None:
        self.service = service
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        # Labelled children looked up once: `labels()` takes a lock and builds a key on every call.
        self._in_flight_gauge = IN_FLIGHT.labels(service)
        self._per_method: dict[tuple[str, str], tuple[Any, Any]] = {}

    async def intercept_service(self, continuation: Callable[[Any], Awaitable[Any]], details: Any) -> Any:
        handler = await continuation(details)
        if handler is None or details.method.startswith(_UNCHECKED_PREFIXES):
            return handler
        method = details.method.rsplit("/", 1)[-1]
        rid = dict(details.invocation_metadata or ()).get("x-request-id") or os.urandom(8).hex()
        if handler.unary_unary is not None:
            inner = handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                async with self._guard(method, rid, request, context):
                    return await inner(request, context)

            return grpc.unary_unary_rpc_method_handler(
                unary, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
        if handler.unary_stream is not None:
            inner_stream = handler.unary_stream

            async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
                async with self._guard(method, rid, request, context):
                    async for item in inner_stream(request, context):
                        yield item

            return grpc.unary_stream_rpc_method_handler(
                stream, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
        return handler

    def _enter(self, rid: str) -> errors.TatorError | None:
        request_id_var.set(rid)
        if self.in_flight >= self.max_in_flight:
            return errors.resource_exhausted(
                f"{self.service} is serving {self.in_flight} requests (limit {self.max_in_flight}); retry later",
                limit=self.max_in_flight)
        self.in_flight += 1
        self._in_flight_gauge.set(self.in_flight)
        return None

    def _leave(self) -> None:
        self.in_flight -= 1
        self._in_flight_gauge.set(self.in_flight)

    def _record(self, method: str, code: str, seconds: float) -> None:
        children = self._per_method.get((method, code))
        if children is None:
            children = (RPC_TOTAL.labels(self.service, method, code), RPC_LATENCY.labels(self.service, method))
            self._per_method[(method, code)] = children
        children[0].inc()
        children[1].observe(seconds)

    async def _fail(self, context: grpc.aio.ServicerContext, method: str, rid: str, exc: BaseException) -> None:
        if isinstance(exc, errors.TatorError):
            err = exc
            err.metadata.setdefault("request_id", rid)
            log.info("rpc failed", extra={"fields": {"method": method, "code": err.code.name, "reason": err.reason,
                                                     "detail": err.message}})
        else:
            log.error("unexpected error in %s", method, exc_info=exc)
            err = errors.TatorError(grpc.StatusCode.INTERNAL, "INTERNAL",
                                    f"internal error in {method} (request id {rid})", {"request_id": rid})
        await context.abort_with_status(rpc_status.to_status(err.to_status()))

    @contextlib.asynccontextmanager
    async def _guard(self, method: str, rid: str, request: Any, context: grpc.aio.ServicerContext):
        """Limit, validate, map failures to statuses and record metrics around one RPC body."""
        start = time.perf_counter()
        code = "OK"
        context.set_trailing_metadata((("x-request-id", rid),))
        refused = self._enter(rid)
        try:
            if refused is not None:
                raise refused
            try:
                invalid = validation_error(request)
                if invalid is not None:
                    raise invalid
                yield
            finally:
                self._leave()
        except grpc.aio.AbortError:
            code = "ABORTED"
            raise
        except asyncio.CancelledError:
            code = "CANCELLED"
            raise
        except Exception as exc:  # mapped to a status, never leaked
            code = exc.code.name if isinstance(exc, errors.TatorError) else "INTERNAL"
            await self._fail(context, method, rid, exc)
        finally:
            self._record(method, code, time.perf_counter() - start)
