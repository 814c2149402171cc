"""Errors that map to a gRPC status with a documented reason.

Plain service code raises `TatorError` (or one of the helpers below); the
interceptor turns it into a status carrying `google.rpc.ErrorInfo` (domain
"tator") and, for field errors, `google.rpc.BadRequest`. The reasons are the
`tator.common.v1.ErrorReason` names without their prefix, so the proto enum is
the one documented list.
"""

from __future__ import annotations

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


def public_text(exc: BaseException) -> str:
    """What a caller may read about an unexpected exception: its type, and for an OS error its
    reason (\"No space left on device\"), never the message text, which can hold server paths or
    internals. The traceback goes to the log."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return type(exc).__name__


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
