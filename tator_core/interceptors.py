"""The one server interceptor every service runs.

Per RPC it: assigns a request id (from `x-request-id` metadata when it is a
short token, else new), bounds in-flight work (RESOURCE_EXHAUSTED / OVERLOADED;
unary calls and server streams have separate budgets, so idle watch streams
never lock out GetJob or CancelJob), refuses bytes that are not the request
message (INVALID_ARGUMENT, without the parser's text), validates the request
with protovalidate plus the door check of `tator_core.text` (control
characters, undefined enum numbers) as INVALID_ARGUMENT with
google.rpc.BadRequest field paths, maps `TatorError` to its status, and maps
anything unexpected to INTERNAL carrying the request id — the traceback goes
to the log, never to the client. At log level DEBUG it writes one access line
per RPC (service, method, status, milliseconds, the deadline it came with);
like every line logged while serving, it carries the request id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc_status import rpc_status

from tator_core import errors, limits
from tator_core.auth import Authenticator
from tator_core.logs import deadline_var, request_id_var
from tator_core.metrics import IN_FLIGHT, RPC_LATENCY, RPC_TOTAL
from tator_core.validation import validation_error

log = logging.getLogger("tator.rpc")
_UNCHECKED_PREFIXES = ("/grpc.health.", "/grpc.reflection.")
# A caller's request id is echoed in logs and trailers: only short plain tokens are kept.
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class Malformed:
    """Stands in for a request whose bytes did not parse, so the guard can answer INVALID_ARGUMENT."""

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name


def _tolerant(deserializer: Callable[[bytes], Any] | None, type_name: str) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception:  # any parser failure is the caller's bytes
            return Malformed(type_name)

    return parse


def request_id(metadata: Any) -> str:
    rid = dict(metadata or ()).get("x-request-id")
    return rid if isinstance(rid, str) and _REQUEST_ID_RE.match(rid) else os.urandom(8).hex()


class TatorServerInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, service: str, max_in_flight: int = 64, max_streams: int = 32, *,
                 authenticator: Authenticator | None = None,
                 max_request_items: int = limits.MAX_REQUEST_ITEMS) -> None:
        self.service = service
        self.max_request_items = max_request_items
        self.authenticator = authenticator
        self.limits = {"unary": max_in_flight, "stream": max_streams}
        self.active = {"unary": 0, "stream": 0}
        # Labelled children looked up once: `labels()` takes a lock and builds a key on every call.
        self._in_flight_gauge = IN_FLIGHT.labels(service)
        self._per_method: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._streams_end = asyncio.Event()

    def begin_drain(self, grace_s: float) -> None:
        """Server streams still open shortly before the drain's grace runs out
        end with UNAVAILABLE / SERVICE_UNAVAILABLE (retryable, says why) and
        their handlers clean up, instead of being cut by the server's stop."""
        margin = min(2.0, grace_s / 4)
        asyncio.get_running_loop().call_later(max(0.0, grace_s - margin), self._streams_end.set)

    async def _until_drain(self, items: Any) -> Any:
        """`items`, advanced one at a time against the drain deadline."""
        it = items.__aiter__()
        while True:
            step = asyncio.ensure_future(it.__anext__())
            end = asyncio.ensure_future(self._streams_end.wait())
            try:
                await asyncio.wait({step, end}, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                step.cancel()
                raise
            finally:
                end.cancel()
            if not step.done():
                step.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await step
                raise errors.unavailable("SERVICE_UNAVAILABLE", f"{self.service} is shutting down; "
                                         "retry the call (another replica answers)", service=self.service)
            try:
                item = step.result()
            except StopAsyncIteration:
                return
            yield item

    @property
    def max_in_flight(self) -> int:
        return self.limits["unary"]

    @property
    def in_flight(self) -> int:
        return self.active["unary"] + self.active["stream"]

    async def intercept_service(self, continuation: Callable[[Any], Awaitable[Any]], details: Any) -> Any:
        handler = await continuation(details)
        if handler is None or details.method.startswith(_UNCHECKED_PREFIXES):
            return handler
        method = details.method.rsplit("/", 1)[-1]
        rid = request_id(details.invocation_metadata)
        denied = self.authenticator.check(method, details.invocation_metadata) if self.authenticator else None
        deserializer = _tolerant(handler.request_deserializer, f"{method} request")
        if handler.unary_unary is not None:
            inner = handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                async with self._guard(method, rid, request, context, "unary", denied):
                    return await inner(request, context)

            return grpc.unary_unary_rpc_method_handler(
                unary, request_deserializer=deserializer, response_serializer=handler.response_serializer)
        if handler.unary_stream is not None:
            inner_stream = handler.unary_stream

            async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                async with self._guard(method, rid, request, context, "stream", denied):
                    async for item in self._until_drain(inner_stream(request, context)):
                        yield item

            return grpc.unary_stream_rpc_method_handler(
                stream, request_deserializer=deserializer, response_serializer=handler.response_serializer)
        return handler

    def _enter(self, kind: str) -> errors.TatorError | None:
        limit = self.limits[kind]
        if self.active[kind] >= limit:
            what = "requests" if kind == "unary" else "streams"
            return errors.resource_exhausted(
                f"{self.service} is serving {self.active[kind]} {what} (limit {limit}); retry later",
                limit=limit, kind=kind)
        self.active[kind] += 1
        self._in_flight_gauge.set(self.in_flight)
        return None

    def _leave(self, kind: str) -> None:
        self.active[kind] -= 1
        self._in_flight_gauge.set(self.in_flight)

    def _record(self, method: str, code: str, seconds: float) -> None:
        children = self._per_method.get((method, code))
        if children is None:
            children = (RPC_TOTAL.labels(self.service, method, code), RPC_LATENCY.labels(self.service, method))
            self._per_method[(method, code)] = children
        children[0].inc()
        children[1].observe(seconds)

    async def _fail(self, context: grpc.aio.ServicerContext[Any, Any], method: str, rid: str, exc: BaseException) -> None:
        mapped = errors.from_exception(exc)
        if mapped is not None:
            err = mapped
            err.metadata.setdefault("request_id", rid)
            if not isinstance(exc, errors.TatorError):  # the downstream detail stays in the log
                log.warning("downstream failure in %s: %s", method, exc)
            log.info("rpc failed", extra={"fields": {"method": method, "code": err.code.name, "reason": err.reason,
                                                     "detail": err.message}})
        else:
            log.error("unexpected error in %s", method, exc_info=exc)
            err = errors.TatorError(grpc.StatusCode.INTERNAL, "INTERNAL",
                                    f"internal error in {method} (request id {rid})", {"request_id": rid})
        await context.abort_with_status(rpc_status.to_status(errors.public(err).to_status()))

    @contextlib.asynccontextmanager
    async def _guard(self, method: str, rid: str, request: Any, context: grpc.aio.ServicerContext[Any, Any],
                     kind: str = "unary", denied: errors.TatorError | None = None) -> AsyncIterator[None]:
        """Limit, validate, map failures to statuses and record metrics around one RPC body."""
        start = time.perf_counter()
        code = "OK"
        request_id_var.set(rid)  # every log line of this RPC, its refusal included, names it
        context.set_trailing_metadata((("x-request-id", rid),))
        remaining = context.time_remaining()
        deadline_var.set(time.monotonic() + remaining if remaining is not None else None)
        # An unauthenticated caller is refused before it takes a slot or costs a validation.
        refused = denied or self._enter(kind)
        try:
            if refused is not None:
                raise refused
            try:
                invalid = (errors.invalid_argument("(request)", f"the request bytes are not a valid {request.type_name}")
                           if isinstance(request, Malformed)
                           else validation_error(request, self.max_request_items))
                if invalid is not None:
                    raise invalid
                yield
            finally:
                self._leave(kind)
        except grpc.aio.AbortError:
            code = "ABORTED"
            raise
        except asyncio.CancelledError:
            code = "CANCELLED"
            raise
        except Exception as exc:  # mapped to a status, never leaked
            mapped = errors.from_exception(exc)
            code = mapped.code.name if mapped is not None else "INTERNAL"
            await self._fail(context, method, rid, exc)
        finally:
            seconds = time.perf_counter() - start
            self._record(method, code, seconds)
            if log.isEnabledFor(logging.DEBUG):  # the access line: one per RPC at log level DEBUG
                log.debug("rpc", extra={"fields": {
                    "rpc_service": self.service, "method": method, "code": code, "ms": round(seconds * 1000, 3),
                    "deadline_s": None if remaining is None else round(remaining, 3)}})
