"""One rule for hostile text, and the door check that applies it to every request.

Control characters (NUL, ANSI escapes, C1 codes) and bidirectional overrides never belong in a
label, a name, a key or a prompt: they corrupt terminals and logs, truncate C strings and make a
name read differently from what it is. Tab, newline and carriage return stay allowed (glossaries
and prompts are multi-line). The same `bad_char` serves the gRPC door (`message_error`, which
also refuses enum numbers the contract does not define) and text read from files or archives.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from google.protobuf.descriptor import FieldDescriptor

from tator_core import errors

# C0 except \t \n \r, DEL, C1, and the bidi embedding/override/isolate/mark controls.
_BAD_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_MAX_DEPTH = 32  # messages nest far less than this; protobuf itself stops at 100


def bad_char(text: str) -> str | None:
    """The first forbidden character, as U+XXXX, or None when the text is clean."""
    m = _BAD_RE.search(text)
    return None if m is None else f"U+{ord(m.group()):04X}"


def check_text(fld: str, text: str) -> str:
    """`text` unchanged, or INVALID_ARGUMENT naming the field and the character."""
    bad = bad_char(text)
    if bad is not None:
        raise errors.invalid_argument(fld, f"contains the control or bidi character {bad}")
    return text


@functools.cache
def _checked(desc: Any, seen: frozenset[str] = frozenset()) -> bool:
    """Whether a message type can hold a string or an enum anywhere: boxes, scores and other
    all-number messages are skipped whole, so a request with thousands of boxes costs nothing here."""
    if desc.full_name in seen:
        return True  # recursive types: assume yes
    for fd in desc.fields:
        if fd.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_ENUM):
            return True
        if fd.message_type is not None and _checked(fd.message_type, seen | {desc.full_name}):
            return True
    return False


def _walk(msg: Any, path: str, depth: int) -> tuple[str, str] | None:
    if depth > _MAX_DEPTH:
        return path or "(message)", "nested too deeply"
    for fd, value in msg.ListFields():
        if fd.message_type is not None and not _checked(fd.message_type):
            continue
        name = f"{path}.{fd.name}" if path else fd.name
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            key_fd, val_fd = fd.message_type.fields_by_name["key"], fd.message_type.fields_by_name["value"]
            for k, v in value.items():
                sub = f"{name}[{k!r}]"
                if key_fd.type == FieldDescriptor.TYPE_STRING and bad_char(k):
                    return sub, f"key contains the control or bidi character {bad_char(k)}"
                found = _value(val_fd, v, sub, depth)
                if found:
                    return found
            continue
        items = value if fd.is_repeated else [value]
        for i, item in enumerate(items):
            found = _value(fd, item, f"{name}[{i}]" if fd.is_repeated else name, depth)
            if found:
                return found
    return None


def _value(fd: FieldDescriptor, value: Any, name: str, depth: int) -> tuple[str, str] | None:
    if fd.type == FieldDescriptor.TYPE_STRING:
        bad = bad_char(value)
        return (name, f"contains the control or bidi character {bad}") if bad else None
    if fd.type == FieldDescriptor.TYPE_ENUM:
        enum = fd.enum_type  # always set on an enum field
        if enum is not None and enum.values_by_number.get(value) is None:
            return name, f"{value} is not a defined {enum.name} value"
        return None
    if fd.type in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP):
        return _walk(value, name, depth + 1)
    return None


def message_error(msg: Any) -> errors.TatorError | None:
    """INVALID_ARGUMENT for the first hostile string or undefined enum number in `msg`, else None."""
    found = _walk(msg, "", 0)
    if found is None:
        return None
    fld, why = found
    return errors.invalid_argument(fld, why)
