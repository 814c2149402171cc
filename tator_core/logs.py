"""Structured JSON logs carrying the request id of the RPC being served."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time

from tator_core import tracing

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
# time.monotonic() by which the RPC being served must answer (its caller's deadline), None when the
# caller set none. ServiceClient gives every call it makes the time left, less a margin.
deadline_var: contextvars.ContextVar[float | None] = contextvars.ContextVar("deadline", default=None)
# Left for the caller's own work after a downstream call returns: a tenth of the time left, at most this.
DEADLINE_MARGIN_S = 0.25


def downstream_timeout(timeout_s: float) -> float:
    """`timeout_s`, cut to the served RPC's remaining deadline less a margin. Never below 1 ms: a
    call past the deadline fails at once with DEADLINE_EXCEEDED instead of being sent without one."""
    deadline = deadline_var.get()
    if deadline is None:
        return timeout_s
    left = deadline - time.monotonic()
    return max(0.001, min(timeout_s, left - min(DEADLINE_MARGIN_S, left / 10)))


def detach(request_id: str = "") -> None:
    """Background work started from inside an RPC (a job, a worker) is not bound by that RPC's
    deadline; it logs and forwards `request_id` (e.g. the job id) instead of the RPC's."""
    deadline_var.set(None)
    request_id_var.set(request_id)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": round(time.time(), 3),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = request_id_var.get()
        if rid:
            doc["request_id"] = rid
        doc.update(tracing.log_ids())
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            doc.update(extra)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def setup_logging(service: str, level: str = "INFO") -> None:
    """Route the root logger to stderr as one JSON object per line."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
