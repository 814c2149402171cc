"""Request validation with protovalidate: the rules written in the .proto files, turned into one
INVALID_ARGUMENT `TatorError` whose google.rpc.BadRequest lists every violated field by path.

The server interceptor runs it on every request; code that validates a message it built itself (a
stored recipe's config) runs it too, so both answer in the same shape.

Checking a request must cost bounded time and memory whatever it holds. protovalidate evaluates every
item of a repeated field and keeps about 4 KB per violation (measured: a 0.6 MB SegmentText with
64 labels x 5,000 empty prompts made 320,000 violations, 1.3 GB and 33 s, all on the event loop, so
no deadline could stop it). So before any rule runs, a walk that only counts (`len` of each repeated
field and map) refuses a field longer than its contract's `max_items` / `max_pairs` without looking at
its items, and a request holding more than `max_request_items` items in all (an operator setting);
requests with more than FULL_REPORT_ITEMS items get only their first violation listed.
"""

from __future__ import annotations

import functools
from typing import Any

import grpc
import protovalidate
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from tator_core import errors, limits
from tator_core.gen.buf.validate import validate_pb2
from tator_core.text import message_error

#: Up to this many items every violation is listed (~4 KB each while protovalidate holds them, so
#: ~21 MB at most; every request within its contract's bounds that the services exchange stays under
#: it); above it only the first.
FULL_REPORT_ITEMS = 5000
_MAX_DEPTH = 32  # messages nest far less than this; protobuf itself stops at 100


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


@functools.cache
def _contract_cap(fd: FieldDescriptor) -> tuple[int, str] | None:
    """The contract's bound on a repeated field or map, and its rule id, or None when it has none."""
    rules: validate_pb2.FieldRules = fd.GetOptions().Extensions[validate_pb2.field]  # type: ignore[index]  # the stub types the extension as a plain FieldDescriptor
    if rules.HasField("repeated") and rules.repeated.HasField("max_items"):
        return rules.repeated.max_items, "repeated.max_items"
    if rules.HasField("map") and rules.map.HasField("max_pairs"):
        return rules.map.max_pairs, "map.max_pairs"
    return None


@functools.cache
def _may_repeat(desc: Descriptor, seen: frozenset[str] = frozenset()) -> bool:
    """Whether a message type can hold a repeated field anywhere (a Box cannot: 4,096 boxes are one len())."""
    if desc.full_name in seen:
        return True  # recursive types: assume yes
    return any(fd.is_repeated or (fd.message_type is not None and _may_repeat(fd.message_type, seen | {desc.full_name}))
               for fd in desc.fields)


class _Count:
    def __init__(self, limit: int) -> None:
        self.limit, self.items = limit, 0


def _size_error(msg: Any, path: str, count: _Count, depth: int) -> errors.TatorError | None:
    if depth > _MAX_DEPTH:
        return errors.invalid_argument(path or "(message)", "nested too deeply")
    for fd, value in msg.ListFields():
        name = f"{path}.{fd.name}" if path else fd.name
        is_map = fd.message_type is not None and fd.message_type.GetOptions().map_entry
        if fd.is_repeated:
            n = len(value)
            cap = _contract_cap(fd)
            if cap is not None and n > cap[0]:
                return errors.invalid_argument(name, f"{cap[1]}: must contain no more than {cap[0]} item(s), "
                                                     f"not {n}", limit=cap[0], count=n)
            count.items += n
            if count.items > count.limit:
                return errors.invalid_argument(
                    name, f"the request holds more than {count.limit} repeated items in all (setting "
                          "max_request_items)", limit=count.limit)
        elements: Any = ()
        if is_map:
            val_fd = fd.message_type.fields_by_name["value"]
            if val_fd.message_type is not None and _may_repeat(val_fd.message_type):
                elements = ((f"{name}[{k!r}]", v) for k, v in value.items())
        elif fd.message_type is not None and _may_repeat(fd.message_type):
            elements = ((f"{name}[{i}]", v) for i, v in enumerate(value)) if fd.is_repeated else ((name, value),)
        for sub, item in elements:
            found = _size_error(item, sub, count, depth + 1)
            if found is not None:
                return found
    return None


def size_error(request: Any, max_items: int = limits.MAX_REQUEST_ITEMS) -> tuple[errors.TatorError | None, int]:
    """A repeated field over its contract's bound, or the request over `max_items` items in all, as
    INVALID_ARGUMENT naming the field; and the items counted. Reads only lengths: no item is checked."""
    count = _Count(max_items)
    return _size_error(request, "", count, 0), count.items


def validation_error(request: Any, max_items: int = limits.MAX_REQUEST_ITEMS) -> errors.TatorError | None:
    """INVALID_ARGUMENT naming every violated field of `request` (the first only for a request of more
    than FULL_REPORT_ITEMS items), or None when it is valid.

    After the .proto rules, `message_error` refuses what no rule can express for every field at
    once: control and bidi characters in any string, enum numbers the contract does not define."""
    oversized, items = size_error(request, max_items)
    if oversized is not None:
        return oversized
    violations = protovalidate.collect_violations(request, fail_fast=items > FULL_REPORT_ITEMS)
    if not violations:
        return message_error(request)
    fvs = [(field_path(v) or "(message)", f"{v.proto.rule_id}: {v.proto.message}") for v in violations]
    msg = "; ".join(f"{f}: {d}" for f, d in fvs)
    meta = {"field": fvs[0][0]}
    if items > FULL_REPORT_ITEMS:
        meta["violations_listed"] = f"the first only (the request holds {items} repeated items)"
    return errors.TatorError(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", f"invalid request: {msg}", meta, fvs)
