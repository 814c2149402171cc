"""Request validation with protovalidate: the rules written in the .proto files, turned into one
INVALID_ARGUMENT `TatorError` whose google.rpc.BadRequest lists every violated field by path.

The server interceptor runs it on every request; code that validates a message it built itself (a
stored recipe's config) runs it too, so both answer in the same shape.
"""

from __future__ import annotations

from typing import Any

import grpc
import protovalidate

from tator_core import errors
from tator_core.text import message_error


def field_path(violation: Any) -> str:
    """protovalidate FieldPath -> 'image.sha256' / 'model_ids[0]'."""
    parts = []
    for el in violation.proto.field.elements:
        name = el.field_name
        sub = getattr(el, "subscript", None)  # protobuf-py oneof: .field / .value
        if sub is not None and getattr(sub, "field", None) == "index":
            name += f"[{sub.value}]"
        elif sub is not None and getattr(sub, "field", None):
            name += f"[{sub.value!r}]"
        parts.append(name)
    return ".".join(parts)


def validation_error(request: Any) -> errors.TatorError | None:
    """INVALID_ARGUMENT naming every violated field of `request`, or None when it is valid.

    After the .proto rules, `message_error` refuses what no rule can express for every field at
    once: control and bidi characters in any string, enum numbers the contract does not define."""
    violations = protovalidate.collect_violations(request)
    if not violations:
        return message_error(request)
    fvs = [(field_path(v) or "(message)", f"{v.proto.rule_id}: {v.proto.message}") for v in violations]
    msg = "; ".join(f"{f}: {d}" for f, d in fvs)
    return errors.TatorError(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", f"invalid request: {msg}",
                             {"field": fvs[0][0]}, fvs)
