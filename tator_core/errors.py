"""Errors that map to a gRPC status with a documented reason.

Plain service code raises `TatorError` (or one of the helpers below); the
interceptor turns it into a status carrying `google.rpc.ErrorInfo` (domain
"tator") and, for field errors, `google.rpc.BadRequest`. The reasons are the
`tator.common.v1.ErrorReason` names without their prefix, so the proto enum is
the one documented list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from tator_core.gen.tator.common.v1 import common_pb2

DOMAIN = "tator"
_PREFIX = "ERROR_REASON_"
REASONS = frozenset(
    name[len(_PREFIX):] for name in common_pb2.ErrorReason.keys()  # noqa: SIM118 (an enum wrapper, not a dict)
    if name != "ERROR_REASON_UNSPECIFIED"
)


@dataclass
class TatorError(Exception):
    """An error with a gRPC code, a documented reason and optional details."""

    code: grpc.StatusCode
    reason: str
    message: str
    metadata: dict[str, str] = field(default_factory=dict)
    field_violations: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.reason not in REASONS:
            raise ValueError(f"undocumented error reason {self.reason!r}")
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.code.name} {self.reason}: {self.message}"

    def to_status(self) -> status_pb2.Status:
        details = []
        info = any_pb2.Any()
        info.Pack(error_details_pb2.ErrorInfo(
            reason=self.reason, domain=DOMAIN, metadata={k: str(v) for k, v in self.metadata.items()}))
        details.append(info)
        if self.field_violations:
            bad = any_pb2.Any()
            bad.Pack(error_details_pb2.BadRequest(field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                for f, d in self.field_violations
            ]))
            details.append(bad)
        return status_pb2.Status(code=getattr(code_pb2, self.code.name), message=self.message,
                                 details=details)


def invalid_argument(fld: str, message: str, reason: str = "INVALID_FIELD", **metadata: object) -> TatorError:
    return TatorError(grpc.StatusCode.INVALID_ARGUMENT, reason, f"{fld}: {message}",
                      {"field": fld, **{k: str(v) for k, v in metadata.items()}}, [(fld, message)])


def not_found(reason: str, message: str, **metadata: object) -> TatorError:
    return TatorError(grpc.StatusCode.NOT_FOUND, reason, message, {k: str(v) for k, v in metadata.items()})


def failed_precondition(reason: str, message: str, **metadata: object) -> TatorError:
    return TatorError(grpc.StatusCode.FAILED_PRECONDITION, reason, message,
                      {k: str(v) for k, v in metadata.items()})


def resource_exhausted(message: str, **metadata: object) -> TatorError:
    return TatorError(grpc.StatusCode.RESOURCE_EXHAUSTED, "OVERLOADED", message,
                      {k: str(v) for k, v in metadata.items()})


def unavailable(reason: str, message: str, **metadata: object) -> TatorError:
    return TatorError(grpc.StatusCode.UNAVAILABLE, reason, message, {k: str(v) for k, v in metadata.items()})


_SEG = r"[^\s/'\"`,;:()\[\]{}<>]+"
# An absolute POSIX path: a "/" not inside a word, URL or relative path, then one or more segments.
_ABS_PATH = re.compile(rf"(?<![\w.~:/\\-])/{_SEG}(?:/{_SEG})*/?")


def scrub_paths(text: str) -> str:
    """`text` with every absolute server path cut to its last part (`/srv/models/x/best.pt` ->
    `…/best.pt`): what a client reads (status messages, model reasons, job errors) names the file but
    not the server's layout. The full text stays in the server's log."""
    def last(m: re.Match[str]) -> str:
        parts = [p for p in m.group().split("/") if p]
        return f"…/{parts[-1]}" if parts else m.group()

    return _ABS_PATH.sub(last, text)


#: What one status may carry back. The details travel in a base64 trailer beside the message, and gRPC
#: clients refuse a call whose metadata passes 8 KiB (soft limit, at random) or 16 KiB (hard limit:
#: "received metadata size exceeds hard limit", RESOURCE_EXHAUSTED). A request with a thousand bad items
#: must still get its INVALID_ARGUMENT, so a status is trimmed to MAX_STATUS_BYTES before it is sent.
MAX_VIOLATIONS = 10
MAX_TEXT = 160
MAX_STATUS_BYTES = 4096


def _cut(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def public(err: TatorError) -> TatorError:
    """The error as a client may read it: message, metadata and field violations without server paths,
    and bounded in size: at most MAX_VIOLATIONS violations (the count of all in metadata
    `violations_total`), every text cut, then entries dropped from the end until the status fits
    MAX_STATUS_BYTES (`request_id` is kept)."""
    shown = [(_cut(f, 100), _cut(scrub_paths(d))) for f, d in err.field_violations[:MAX_VIOLATIONS]]
    items = [(k, v) for k, v in err.metadata.items() if k != "request_id"]
    meta = {_cut(k, 40): _cut(scrub_paths(str(v))) for k, v in items[:12]}
    if len(err.field_violations) > MAX_VIOLATIONS:
        meta["violations_total"] = str(len(err.field_violations))
    if "request_id" in err.metadata:
        meta["request_id"] = _cut(str(err.metadata["request_id"]), 64)
    out = TatorError(err.code, err.reason, _cut(scrub_paths(err.message), 400), meta, shown)
    while len(out.to_status().SerializeToString()) > MAX_STATUS_BYTES:
        if out.field_violations:
            out.field_violations.pop()
        elif len(out.metadata) > 1:
            out.metadata.pop(next(k for k in reversed(out.metadata) if k != "request_id"))
        else:
            break
    return out


def public_text(exc: BaseException) -> str:
    """What a caller may read about an unexpected exception: its type, and for an OS error its
    reason (\"No space left on device\"), never the message text, which can hold server paths or
    internals. The traceback goes to the log."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return type(exc).__name__


#: Downstream codes a retry may cure: the caller sees UNAVAILABLE (DEADLINE_EXCEEDED keeps its own code).
_TRANSIENT = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.CANCELLED,
                        grpc.StatusCode.ABORTED})


class DownstreamError(Exception):
    """A call to another service failed. Clients raise it (or a subclass) with the decoded status, so
    a handler that does not map it still answers with a status that says which call failed."""

    def __init__(self, service: str, method: str, remote: RemoteError) -> None:
        super().__init__(f"{service}.{method}: {remote.code.name} {remote.reason or ''} {remote.message}".strip())
        self.service, self.method, self.remote = service, method, remote


def downstream_failed(service: str, method: str, code: grpc.StatusCode, reason: str = "") -> TatorError:
    """The status for a failed downstream call: DEADLINE_EXCEEDED stays itself, a transient failure is
    UNAVAILABLE (retry), anything else FAILED_PRECONDITION; reason STAGE_FAILED with the service, method
    and upstream status in metadata. The upstream message is not repeated: it is another service's text."""
    where = f"{service}.{method}" if service else "a downstream call"
    meta = {"stage": service or "downstream", "service": service, "method": method, "upstream_code": code.name,
            "upstream_reason": reason}
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return TatorError(code, "STAGE_FAILED", f"{where} did not answer before its deadline", meta)
    text = f"{where} failed: {code.name}{' ' + reason if reason else ''}"
    if code in _TRANSIENT:
        return unavailable("STAGE_FAILED", text, **meta)
    return failed_precondition("STAGE_FAILED", text, **meta)


def from_exception(exc: BaseException) -> TatorError | None:
    """The status of an exception a handler let through: a TatorError as it is; a failed downstream
    call (DownstreamError, or a raw gRPC error) by its code; a timeout as DEADLINE_EXCEEDED. None for
    anything else, which is an INTERNAL error."""
    if isinstance(exc, TatorError):
        return exc
    if isinstance(exc, DownstreamError):
        return downstream_failed(exc.service, exc.method, exc.remote.code, exc.remote.reason)
    if isinstance(exc, grpc.RpcError) and callable(getattr(exc, "code", None)):
        remote = parse_rpc_error(exc)
        return downstream_failed("", "", remote.code, remote.reason)
    if isinstance(exc, TimeoutError):
        return TatorError(grpc.StatusCode.DEADLINE_EXCEEDED, "STAGE_FAILED",
                          "a step of this call did not finish before its deadline", {"stage": "timeout"})
    return None


@dataclass
class RemoteError:
    """What a client learns from a failed call."""

    code: grpc.StatusCode
    message: str
    reason: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    field_violations: list[tuple[str, str]] = field(default_factory=list)


def parse_rpc_error(exc: grpc.RpcError) -> RemoteError:
    """Decode the rich status of a failed call (sync or aio)."""
    from grpc_status import rpc_status

    code = exc.code() if callable(getattr(exc, "code", None)) else grpc.StatusCode.UNKNOWN
    details = exc.details() if callable(getattr(exc, "details", None)) else str(exc)
    out = RemoteError(code=code, message=details or "")
    try:
        status = rpc_status.from_call(exc)
    except Exception:  # a status whose details do not parse is still a status
        status = None
    if status is None:
        return out
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            out.reason, out.metadata = info.reason, dict(info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            out.field_violations = [(v.field, v.description) for v in bad.field_violations]
    return out
